"""Named models, training recipes, measuring trained networks, and the train / evaluate commands."""
import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.coco import write_coco_panoptic
from panopticlab.data.targets import instance_target, semantic_target
from panopticlab.engine import History, cli, recipes
from panopticlab.engine.checkpoint import load_checkpoint
from panopticlab.engine.recipes import TrainRecipe
from panopticlab.models import HeuristicBaseline, MaskRCNN, PSPNet, zoo
from panopticlab.profiles import get_profile, seed_everything

CI = get_profile("ci")


# --- the zoo --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_every_name_builds_the_model_it_names(name):
    model = zoo.build_model(name, CATS)
    expected = {"pspnet": PSPNet, "maskrcnn": MaskRCNN, "baseline": HeuristicBaseline}[zoo.family(name)]
    assert isinstance(model, expected)
    semantic = model.semantic_model if isinstance(model, HeuristicBaseline) else model
    instance = model.instance_model if isinstance(model, HeuristicBaseline) else model
    if isinstance(semantic, PSPNet):
        assert semantic.config.num_classes == len(CATS)
        assert semantic.train_id_to_category.tolist() == CATS.ids
        assert (semantic.config.backbone.name == "tiny") == name.endswith("-tiny")
    if isinstance(instance, MaskRCNN):
        assert instance.config.num_classes == len(CATS.thing_ids) + 1
        assert instance.label_to_category.tolist() == [0, *CATS.thing_ids]
        assert (instance.config.backbone.name == "tiny") == name.endswith("-tiny")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        zoo.build_model("pspnet-huge", CATS)
    assert all(name in str(error.value) for name in zoo.MODEL_NAMES)


def test_each_baseline_names_its_two_networks():
    for name, (semantic, instance) in zoo.COMPONENTS.items():
        assert zoo.family(semantic) == "pspnet" and zoo.family(instance) == "maskrcnn"
        assert semantic.split("-")[1] == instance.split("-")[1] == name.split("-")[1]


# --- recipes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pspnet-tiny", "maskrcnn-tiny", "pspnet-full", "maskrcnn-full"])
def test_recipes_grow_with_the_profile(name):
    ci, laptop = recipes.recipe(name, "ci"), recipes.recipe(name, get_profile("laptop"))
    assert ci.model == laptop.model == name
    assert ci.steps < laptop.steps
    assert ci.image_size <= laptop.image_size
    if name.endswith("-tiny"):
        assert (ci.image_size, ci.num_train, ci.batch_size) == (CI.image_size, CI.num_train, CI.batch_size)
        assert ci.steps <= 10  # seconds, not minutes


def test_recipe_steps_override_lays_the_schedule_over_them():
    base = recipes.recipe("maskrcnn-tiny", "laptop")
    longer = recipes.recipe("maskrcnn-tiny", "laptop", steps=3 * base.steps)
    assert longer.steps == 3 * base.steps
    assert longer.optim.warmup_steps == 3 * base.optim.warmup_steps
    assert longer.replace(steps=base.steps, optim=base.optim) == base
    with pytest.raises(ValueError, match="steps"):
        recipes.recipe("maskrcnn-tiny", "laptop", steps=0)


def test_baseline_recipe_points_to_its_networks():
    with pytest.raises(ValueError) as error:
        recipes.recipe("baseline-tiny", CI)
    assert "pspnet-tiny" in str(error.value) and "maskrcnn-tiny" in str(error.value)


def test_recipe_dict_round_trip_and_json():
    original = recipes.recipe("maskrcnn-tiny", "laptop")
    values = json.loads(json.dumps(original.to_dict()))
    assert TrainRecipe.from_dict(values) == original


@pytest.mark.parametrize("changes, word", [({"steps": 0}, "steps"), ({"batch_size": 64}, "num_train"),
                                          ({"augment_scale": (1.5, 1.0)}, "augment_scale"),
                                          ({"grad_clip": -1.0}, "grad_clip"), ({"model": "unet"}, "unknown model")])
def test_bad_recipes_are_refused_by_name(changes, word):
    with pytest.raises(ValueError, match=word):
        recipes.recipe("pspnet-tiny", CI).replace(**changes)


def test_train_data_has_the_targets_and_size_of_the_recipe():
    recipe = recipes.recipe("maskrcnn-tiny", CI).replace(augment_scale=(0.5, 2.0))
    data = recipes.train_data(recipe, CATS, seed=3)
    assert len(data) == recipe.num_train and data.targets == ("instances",)
    image, target = data[1]
    assert image.shape == (3, recipe.image_size, recipe.image_size) and image.dtype == torch.float32
    # the targets describe the augmented annotation that comes with the image
    expected = instance_target(target["panoptic"], CATS)
    assert torch.equal(target["instances"]["masks"], expected["masks"])
    again_image, _ = data[1]
    assert torch.equal(image, again_image)  # augmentation is a function of (seed, epoch, index)
    data.set_epoch(1)
    assert not torch.equal(image, data[1][0])
    semantic_data = recipes.train_data(recipes.recipe("pspnet-tiny", CI), CATS)
    image, target = semantic_data[0]
    assert semantic_data.targets == ("semantic",)
    assert torch.equal(target["semantic"], semantic_target(target["panoptic"], CATS))


def test_val_data_is_the_synthetic_val_split():
    samples = recipes.val_data(size=48, num=3, seed=1)
    assert len(samples) == 3 and samples[2].image.shape == (48, 48, 3)
    assert np.array_equal(samples[0].image, recipes.val_data(size=48, num=1, seed=1)[0].image)
    assert not np.array_equal(samples[0].image, recipes.val_data(size=48, num=1, seed=2)[0].image)


# --- training -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pspnet-tiny", "maskrcnn-tiny"])
def test_ci_recipe_trains_with_finite_losses(name):
    recipe = recipes.recipe(name, CI)
    seed_everything(0)
    model = zoo.build_model(name, CATS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = recipes.fit(model, recipe, CATS, progress=False)
    losses = history.values("loss")
    assert len(losses) == recipe.steps and np.isfinite(losses).all()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    expected_losses = {"pspnet-tiny": {"loss_semantic", "loss_aux"},
                       "maskrcnn-tiny": {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                                         "loss_rpn_box_reg"}}[name]
    assert expected_losses <= set(history.names)


class Interrupt(Exception):
    pass


def interrupt_after(step):
    def callback(trainer):
        if trainer.step == step:
            raise Interrupt

    return callback


def _pspnet_run(recipe, checkpoint_dir=None, callback=None):
    seed_everything(0)
    model = zoo.build_model("pspnet-tiny", CATS)
    history = recipes.fit(model, recipe, CATS, seed=5, checkpoint_dir=checkpoint_dir, progress=False,
                          checkpoint_every=2, callback=callback)
    return model, history


def test_fit_with_a_checkpoint_dir_resumes_exactly(tmp_path):
    # 6 steps over 16 images in batches of 4: the interruption falls inside the second epoch
    recipe = recipes.recipe("pspnet-tiny", CI, steps=6).replace(augment_scale=(0.75, 1.25))
    straight, straight_history = _pspnet_run(recipe)
    with pytest.raises(Interrupt):
        _pspnet_run(recipe, tmp_path, interrupt_after(5))  # killed after step 5; the checkpoint holds step 4
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4
    resumed, resumed_history = _pspnet_run(recipe, tmp_path)
    assert resumed_history == straight_history
    assert list(resumed_history.steps("loss")) == list(range(1, 7))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_fit_refuses_a_model_of_another_kind():
    with pytest.raises(ValueError, match="PSPNet"):
        recipes.fit(zoo.build_model("maskrcnn-tiny", CATS), recipes.recipe("pspnet-tiny", CI), CATS)


# --- measuring --------------------------------------------------------------------------------
def test_mean_iou_matches_torchmetrics(rng):
    from torchmetrics.classification import MulticlassJaccardIndex

    target = rng.integers(0, 6, size=(5, 20, 30))
    target[rng.random(target.shape) < 0.1] = 255
    predicted = np.where(rng.random(target.shape) < 0.6, np.where(target == 255, 0, target),
                         rng.integers(0, 6, size=target.shape))
    predicted[predicted == 4] = 0  # class 4 predicted nowhere
    target[target == 5] = 0
    predicted[predicted == 5] = 0  # class 5 nowhere at all: left out of the mean
    confusion = recipes.confusion_matrix(predicted, target, 6)
    assert confusion.sum() == (target != 255).sum()
    reference = MulticlassJaccardIndex(6, average="macro", ignore_index=255)
    expected = reference(torch.from_numpy(predicted), torch.from_numpy(target)).item()
    assert recipes.mean_iou(confusion) == pytest.approx(expected, abs=1e-6)


def test_abstaining_predictions_count_as_misses_only():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    predicted = np.array([[0, 255, 1, 0], [2, 255, 1, 255]])
    confusion = recipes.confusion_matrix(predicted, target, 3, void_prediction=255)
    assert confusion.shape == (3, 4) and confusion[:, 3].tolist() == [1, 1, 1]
    # by hand: class 0 TP 1, FP 1, FN 1; class 1 TP 1, FN 2; class 2 TP 1, FN 1
    assert recipes.mean_iou(confusion) == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        recipes.confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
    with pytest.raises(ValueError, match="0..2"):
        recipes.confusion_matrix(np.full((2, 2), 3), np.zeros((2, 2), int), 3)


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


def test_oracle_networks_score_perfectly(val_samples):
    results = recipes.evaluate_networks(val_samples, CATS, semantic_model=OracleSemantic(val_samples),
                                        instance_model=OracleInstances(val_samples), batch_size=4,
                                        merge_options={"stuff_area_limit": 0})
    assert results["main"] == "baseline"
    assert results["miou"] == 1.0
    for group in ("All", "Things", "Stuff"):
        assert results["baseline"][group]["pq"] == 1.0, group
    assert results["instance_only"]["Things"]["pq"] == 1.0 and results["instance_only"]["Stuff"]["pq"] == 0.0
    assert results["semantic_only"]["Stuff"]["pq"] == 1.0
    # the val split has touching instances of one class, which connected regions merge
    assert results["semantic_only"]["Things"]["pq"] < 1.0


def test_measured_scores_match_panopticapi_on_the_written_predictions(tmp_path, val_samples):
    from panopticapi.evaluation import pq_compute

    ground_truth = write_coco_panoptic(tmp_path / "gt", "val", val_samples, CATS)
    predictions_json = tmp_path / "predictions.json"
    results = recipes.evaluate_networks(val_samples, CATS, semantic_model=OracleSemantic(val_samples),
                                        instance_model=OracleInstances(val_samples, damage=True), batch_size=4,
                                        predictions_json=predictions_json)
    reference = pq_compute(str(ground_truth["json_path"]), str(predictions_json), str(ground_truth["png_folder"]))
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq"):
            assert results["baseline"][group][key] == pytest.approx(reference[group][key], abs=1e-12)
    assert 0.2 < results["baseline"]["Things"]["pq"] < 0.95  # the damage shows


def test_as_panoptic_model_wraps_single_networks(val_samples):
    images = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1) for s in val_samples[:2]]).float() / 255
    instance_only = zoo.InstanceOnly(OracleInstances(val_samples), CATS).eval()
    for sample, prediction in zip(val_samples, instance_only(images)):
        assert all(CATS.isthing(s.category_id) for s in prediction.segments)
        expected = {s.id for s in sample.panoptic.segments if CATS.isthing(s.category_id) and not s.iscrowd}
        assert len(prediction.segments) == len(expected)
    baseline = zoo.build_model("baseline-tiny", CATS)
    assert zoo.as_panoptic_model(baseline, CATS) is baseline
    assert isinstance(zoo.as_panoptic_model(baseline.semantic_model, CATS), zoo.SemanticOnly)
    assert isinstance(zoo.as_panoptic_model(baseline.instance_model, CATS), zoo.InstanceOnly)
    with pytest.raises(ValueError, match="Linear"):
        zoo.as_panoptic_model(nn.Linear(2, 2), CATS)


# --- the command line -----------------------------------------------------------------------
def parse_train(*argv):
    return cli.add_train_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def parse_evaluate(*argv):
    return cli.add_model_evaluation_arguments(argparse.ArgumentParser()).parse_args(list(argv))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """``panopticlab train --model baseline-tiny --profile ci``: both networks, a few steps each."""
    output = tmp_path_factory.mktemp("run")
    status = cli.run_train(parse_train("--model", "baseline-tiny", "--profile", "ci", "--steps", "3",
                                       "--output", str(output), "--no-progress", "--num-val", "4"))
    assert status == 0
    return output


def test_train_command_writes_the_run(trained_run, capsys):
    for name in zoo.COMPONENTS["baseline-tiny"]:
        folder = trained_run / name
        assert load_checkpoint(folder / "last.pt")["step"] == 3
        history = History.from_state_dict(json.loads((folder / "history.json").read_text()))
        assert list(history.steps("loss")) == [1, 2, 3] and np.isfinite(history.values("loss")).all()
        assert TrainRecipe.from_dict(json.loads((folder / "recipe.json").read_text())).steps == 3
    results = json.loads((trained_run / "results.json").read_text())
    assert results["main"] == "baseline" and {"semantic_only", "instance_only", "miou"} <= set(results)
    assert 0 <= results["baseline"]["All"]["pq"] <= 1


def test_train_command_resumes_only_when_asked(trained_run, capsys):
    before = (trained_run / "pspnet-tiny" / "history.json").read_text()
    assert cli.run_train(parse_train("--model", "baseline-tiny", "--profile", "ci", "--steps", "3",
                                     "--output", str(trained_run), "--no-progress", "--num-val", "4")) == 1
    assert "--resume" in capsys.readouterr().err
    assert cli.run_train(parse_train("--model", "baseline-tiny", "--profile", "ci", "--steps", "3", "--resume",
                                     "--output", str(trained_run), "--no-progress", "--num-val", "4")) == 0
    assert (trained_run / "pspnet-tiny" / "history.json").read_text() == before  # finished: nothing more to do
    assert "PQ" in capsys.readouterr().out


def test_evaluate_command_scores_a_checkpoint_like_panopticapi(trained_run, tmp_path, capsys):
    from panopticapi.evaluation import pq_compute

    samples = list(recipes.val_data(size=64, num=4, seed=0))
    ground_truth = write_coco_panoptic(tmp_path / "gt", "val", samples, CATS)
    predictions = tmp_path / "pred.json"
    results_json = tmp_path / "results.json"
    status = cli.run_model_evaluation(parse_evaluate(
        "--model", "maskrcnn-tiny", "--checkpoint", str(trained_run / "maskrcnn-tiny" / "last.pt"),
        "--num-images", "4", "--image-size", "64", "--predictions", str(predictions),
        "--results-json", str(results_json), "--no-progress"))
    assert status == 0
    results = json.loads(results_json.read_text())
    assert results["main"] == "instance_only" and "miou" not in results
    reference = pq_compute(str(ground_truth["json_path"]), str(predictions), str(ground_truth["png_folder"]))
    assert results["instance_only"]["All"]["pq"] == pytest.approx(reference["All"]["pq"], abs=1e-12)
    assert "instance network only" in capsys.readouterr().out


def test_evaluate_command_reads_a_baseline_run_folder(trained_run, tmp_path, capsys):
    results_json = tmp_path / "results.json"
    assert cli.run_model_evaluation(parse_evaluate(
        "--model", "baseline-tiny", "--checkpoint", str(trained_run), "--num-images", "4", "--image-size", "64",
        "--results-json", str(results_json), "--no-progress", "--per-class")) == 0
    assert json.loads(results_json.read_text())["main"] == "baseline"
    out = capsys.readouterr().out
    assert "mIoU" in out and "sky" in out  # the per-class table


@pytest.mark.parametrize("argv, message", [
    (["--model", "pspnet-tiny"], "--checkpoint"),
    (["--model", "pspnet-tiny", "--checkpoint", "no/such/file.pt"], "no/such/file.pt"),
    (["--model", "pspnet-full", "--pretrained"], "no shipped weights"),
    (["--model", "baseline-tiny", "--checkpoint", __file__], "run folder"),
    ([], "--model"),
])
def test_evaluate_command_explains_bad_input(argv, message, capsys):
    assert cli.run_model_evaluation(parse_evaluate(*argv, "--no-progress")) == 1
    assert message in capsys.readouterr().err


def test_evaluate_command_refuses_weights_of_another_model(trained_run, capsys):
    status = cli.run_model_evaluation(parse_evaluate(
        "--model", "pspnet-tiny", "--checkpoint", str(trained_run / "maskrcnn-tiny"), "--no-progress"))
    assert status == 1
    assert "do not fit PSPNet" in capsys.readouterr().err


def test_cli_options_share_a_parser_with_the_file_evaluator():
    from panopticlab.metrics.cli import add_evaluate_arguments

    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    cli.add_model_evaluation_arguments(parser)  # no clash with --per-class / --no-progress
    args = parser.parse_args(["--gt-json", "g", "--pred-json", "p", "--model", "pspnet-tiny", "--per-class"])
    assert args.model == "pspnet-tiny" and args.per_class
