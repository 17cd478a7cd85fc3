"""The evaluation loop, cross-checked against panopticapi's pq_compute on the files it writes."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_engine_support import CATS, dataset, samples, tiny_model
from torch import nn

from panopticlab.data import PanopticSegmentation
from panopticlab.data.coco import write_coco_panoptic
from panopticlab.data.targets import instance_target
from panopticlab.engine import recipes
from panopticlab.metrics import evaluate_pairs
from panopticlab.models import HeuristicBaseline
from panopticlab.postprocess.ablations import ablation_merge
from panopticlab.postprocess.heuristic import MergeConfig
from panopticlab.engine import OptimConfig, PeriodicEvaluation, Trainer, evaluate, make_eval_loader, \
    make_train_loader, summary_metrics

NUM_VAL = 6


class Oracle(nn.Module):
    """Looks each image up among the validation samples and returns a damaged copy of its annotation.

    Damage, so that TP, FP, FN and IoU < 1 all occur: every third thing segment is dropped
    (a false negative), and on odd images the map is shifted one pixel to the right.
    """

    def __init__(self, samples, wrap=False):
        super().__init__()
        self.samples = samples
        self.wrap = wrap
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, images):
        results = []
        for image in images:
            pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            index = next(i for i, s in enumerate(self.samples) if np.array_equal(s.image, pixels))
            gt = self.samples[index].panoptic
            dropped = {s.id for s in gt.segments if CATS.isthing(s.category_id) and s.id % 3 == 0}
            id_map = np.where(np.isin(gt.id_map, list(dropped)), 0, gt.id_map)
            if index % 2:
                id_map = np.concatenate([np.zeros_like(id_map[:, :1]), id_map[:, :-1]], axis=1)
            kept = {s.id: s.category_id for s in gt.segments if s.id in np.unique(id_map)}
            prediction = PanopticSegmentation.from_id_map(id_map, kept)
            results.append(SimpleNamespace(panoptic=prediction) if self.wrap else prediction)
        return results


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return write_coco_panoptic(root, "val", list(samples(NUM_VAL, "val")), CATS)


def reference_pq(ground_truth, predictions_json):
    from panopticapi.evaluation import pq_compute

    return pq_compute(str(ground_truth["json_path"]), str(predictions_json), str(ground_truth["png_folder"]),
                      str(predictions_json.with_suffix("")))


def assert_matches_reference(ours, theirs):
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == theirs[group]["n"]
        for key in ("pq", "sq", "rq"):
            assert ours[group][key] == pytest.approx(theirs[group][key], abs=1e-12), (group, key)
    for category_id, scores in theirs["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert ours["per_class"][category_id][key] == pytest.approx(scores[key], abs=1e-12)


@pytest.mark.parametrize("wrap", [False, True])
def test_oracle_scores_match_panopticapi(tmp_path, ground_truth, wrap):
    model = Oracle(samples(NUM_VAL, "val"), wrap=wrap)
    loader = make_eval_loader(dataset(NUM_VAL, "val", augment=False), batch_size=4)
    predictions_json = tmp_path / "predictions.json"
    ours = evaluate(model, loader, CATS, "cpu", predictions_json=predictions_json, progress=False).results
    theirs = reference_pq(ground_truth, predictions_json)
    assert_matches_reference(ours, theirs)
    assert 0.2 < ours["All"]["pq"] < 0.95 and ours["All"]["sq"] < 1  # the damage shows
    assert ours["num_images"] == NUM_VAL
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == \
        sorted(s.file_name for s in samples(NUM_VAL, "val"))


def test_trained_model_scores_match_panopticapi_and_mode_is_restored(tmp_path, ground_truth):
    model = tiny_model()
    trainer = Trainer(model, make_train_loader(dataset(8), batch_size=4), OptimConfig(lr=0.1), 15, "cpu",
                      progress=False)
    trainer.fit()
    assert model.training
    loader = make_eval_loader(dataset(NUM_VAL, "val", augment=False), batch_size=3)
    predictions_json = tmp_path / "tiny.json"
    ours = evaluate(model, loader, CATS, predictions_json=predictions_json, progress=False).results
    assert model.training  # evaluate switched to eval mode and back
    assert_matches_reference(ours, reference_pq(ground_truth, predictions_json))
    assert summary_metrics(ours) == {"pq": ours["All"]["pq"], "sq": ours["All"]["sq"], "rq": ours["All"]["rq"],
                                     "pq_th": ours["Things"]["pq"], "pq_st": ours["Stuff"]["pq"]}


def test_periodic_evaluation_logs_metrics_into_the_history():
    model = tiny_model()
    val_loader = make_eval_loader(dataset(4, "val", augment=False), batch_size=2)
    periodic = PeriodicEvaluation(val_loader, CATS, every=4)
    trainer = Trainer(model, make_train_loader(dataset(8), batch_size=4), OptimConfig(lr=0.1), 10, "cpu",
                      callback=periodic, progress=False)
    history = trainer.fit()
    assert history.steps("val/pq").tolist() == [4, 8, 10]  # every 4 steps and at the end
    final = evaluate(model, val_loader, CATS, progress=False).results
    assert history.last("val/pq") == final["All"]["pq"]
    assert history.last("val/pq_st") == final["Stuff"]["pq"]
    assert periodic.results["All"] == final["All"]


def test_prediction_of_the_wrong_size_names_the_image():
    class Cropping(Oracle):
        def forward(self, images):
            return [PanopticSegmentation(p.id_map[:-1], p.segments).with_statistics() for p in super().forward(images)]

    loader = make_eval_loader(dataset(2, "val", augment=False), batch_size=2)
    with pytest.raises(ValueError, match=r"image 0: prediction of size \(31, 32\)"):
        evaluate(Cropping(samples(2, "val")), loader, CATS, progress=False)


def test_output_that_is_not_panoptic_is_a_type_error():
    class Semantic(nn.Module):
        def forward(self, images):
            return [torch.zeros(images.shape[-2:]) for _ in images]

    loader = make_eval_loader(dataset(2, "val", augment=False), batch_size=2)
    with pytest.raises(TypeError, match="Semantic output 0: expected a PanopticSegmentation"):
        evaluate(Semantic(), loader, CATS, progress=False)


class _Lookup(nn.Module):
    """Finds each image among known samples (by its pixels)."""

    def __init__(self, samples):
        super().__init__()
        self.samples = list(samples)
        self.dummy = nn.Parameter(torch.zeros(1))

    def find(self, image):
        pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        return next(s for s in self.samples if np.array_equal(s.image, pixels))


class OracleSemantic(_Lookup):
    """A semantic network that outputs the ground truth: category ids, 255 on void."""

    def forward(self, images):
        maps = []
        for image in images:
            pan = self.find(image).panoptic
            maps.append(torch.from_numpy(pan.category_map(void=255)).long())
        return {"semantic": torch.stack(maps)}


class OracleInstances(_Lookup):
    """An instance network that detects the ground-truth things (not the crowds) with score 0.9.

    With ``damage``, every third instance gets score 0.2 (below the threshold: a false
    negative) and on odd images every mask is shifted one pixel down (IoU below 1).
    """

    def __init__(self, samples, damage=False):
        super().__init__(samples)
        self.damage = damage

    def forward(self, images):
        detections = []
        for image in images:
            sample = self.find(image)
            target = instance_target(sample.panoptic, CATS)
            masks = target["masks"].float()[:, None]
            scores = torch.full((len(masks),), 0.9)
            if self.damage:
                scores[::3] = 0.2
                if sample.image_id % 2:
                    masks = torch.cat([torch.zeros_like(masks[..., :1, :]), masks[..., :-1, :]], dim=-2)
            labels = target["labels"]
            detections.append({"boxes": target["boxes"], "labels": labels, "scores": scores, "masks": masks,
                                "category_ids": torch.tensor([0, *CATS.thing_ids])[labels]})
        return detections


@pytest.fixture(scope="module")
def val_samples():
    return list(recipes.val_data(size=64, num=6, seed=0))


def oracle_baseline(val_samples, damage=False, **merge):
    return HeuristicBaseline(OracleSemantic(val_samples), OracleInstances(val_samples, damage), CATS,
                             MergeConfig(**merge))


def test_oracle_networks_score_perfectly_and_their_ablations_do_not(val_samples):
    # a sequence of Samples is evaluated as it is, in batches
    evaluation = evaluate(oracle_baseline(val_samples, stuff_area_limit=0), val_samples, CATS, batch_size=4,
                          ablations=("semantic_only", "instance_only"), progress=False)
    assert evaluation.miou == 1.0 and evaluation.confusion.sum() > 0
    for group in ("All", "Things", "Stuff"):
        assert evaluation.results[group]["pq"] == 1.0, group
    instance_only, semantic_only = evaluation.ablations["instance_only"], evaluation.ablations["semantic_only"]
    assert instance_only["Things"]["pq"] == 1.0 and instance_only["Stuff"]["pq"] == 0.0
    assert semantic_only["Stuff"]["pq"] == 1.0
    # the val split has touching instances of one class, which connected regions merge
    assert semantic_only["Things"]["pq"] < 1.0
    assert evaluation.headline("instance_only")["pq_th"] == 1.0 and evaluation.predictions is None


def test_ablations_match_panopticapi_and_kept_predictions_rescore_alike(tmp_path, val_samples):
    from panopticapi.evaluation import pq_compute

    ground_truth = write_coco_panoptic(tmp_path / "gt", "val", val_samples, CATS)
    predictions_json = tmp_path / "predictions.json"
    model = oracle_baseline(val_samples, damage=True)
    evaluation = evaluate(model, val_samples, CATS, batch_size=4, predictions_json=predictions_json,
                          keep_predictions=True, ablations=("semantic_only",), progress=False)
    reference = pq_compute(str(ground_truth["json_path"]), str(predictions_json), str(ground_truth["png_folder"]))
    assert_matches_reference(evaluation.results, reference)
    assert 0.2 < evaluation.results["Things"]["pq"] < 0.95  # the damage shows
    # the kept raw outputs give the same numbers again, merged by the same function
    assert [record["image_id"] for record, _ in evaluation.predictions] == [s.image_id for s in val_samples]
    rescored = evaluate_pairs([(record["panoptic"], ablation_merge("semantic_only", p.semantic, p.detections, CATS,
                                                                   model.merge_config).panoptic)
                               for record, p in evaluation.predictions], CATS)
    assert rescored["All"] == evaluation.ablations["semantic_only"]["All"]


def test_unwritable_predictions_are_refused_before_the_model_runs(tmp_path, val_samples):
    class Untouchable(nn.Module):
        def forward(self, images):
            raise AssertionError("the model ran")

    (tmp_path / "predictions").write_text("x")  # where the PNGs would go
    with pytest.raises(NotADirectoryError, match=r"the PNG folder .*predictions: cannot write files into it, it is a "
                                                 r"file"):
        evaluate(Untouchable(), val_samples, CATS, predictions_json=tmp_path / "predictions.json", progress=False)
    with pytest.raises(IsADirectoryError, match=r"cannot write a file there, it is a folder"):
        evaluate(Untouchable(), val_samples, CATS, predictions_json=tmp_path, predictions_folder=tmp_path / "pngs",
                 progress=False)


def test_an_ablation_needs_the_outputs_it_merges(val_samples):
    model = Oracle(val_samples)  # bare panoptic results: no semantic map, no detections
    with pytest.raises(ValueError, match="semantic_only merge needs a semantic map"):
        evaluate(model, val_samples[:2], CATS, ablations=("semantic_only",), progress=False)


def test_a_split_of_mixed_image_sizes_is_evaluated_image_by_image():
    """Real validation splits mix sizes (COCO's val): a batch of them is predicted one image at
    a time, with exactly the scores of a batch size of one."""
    from panopticlab.data.synthetic import SyntheticPanoptic
    from panopticlab.models import zoo

    mixed = [*SyntheticPanoptic(2, size=64, seed=1, split="val"), *SyntheticPanoptic(2, size=(64, 96), seed=2,
                                                                                     split="val")]
    assert len({sample.image.shape for sample in mixed}) == 2
    torch.manual_seed(0)
    model = zoo.build_model("panoptic-fpn-tiny", CATS)
    batched = evaluate(model, mixed, CATS, "cpu", batch_size=4, keep_predictions=True, progress=False)
    one_by_one = evaluate(model, mixed, CATS, "cpu", batch_size=1, progress=False)
    assert batched.results == one_by_one.results and batched.results["num_images"] == 4
    assert [p.panoptic.shape for _, p in batched.predictions] == [(64, 64), (64, 64), (64, 96), (64, 96)]
