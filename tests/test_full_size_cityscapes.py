"""The command line end to end on a tiny Cityscapes tree converted by cityscapesScripts with train ids.

* every family (tiny) and the full Panoptic-DeepLab: ``train --data cityscapes`` records the 19
  train-id categories, ``evaluate --data cityscapes`` writes predictions with Cityscapes label ids that
  cityscapesScripts' panoptic evaluator and panopticapi score, against the label-id
  conversion, as ``evaluate`` does on the train-id one;
* a ``--data`` run interrupted after its second step and continued with ``--resume`` ends with
  the weights and history of an uninterrupted run; without ``--resume`` it is refused;
* a tree without the train-id conversion is refused, naming the missing file.
"""
import json
import multiprocessing
import shutil

import numpy as np
import pytest
import torch
from cityscapes_tree import write_cityscapes_tree

from panopticlab.commands import main
from panopticlab.data.categories import CategorySet
from panopticlab.data.cityscapes import (
    CITYSCAPES_CATEGORIES,
    CITYSCAPES_TRAIN_ID_CATEGORIES,
    TRAIN_ID_TO_LABEL_ID,
    cityscapes_panoptic_paths,
)
from panopticlab.engine.checkpoint import load_checkpoint
from panopticlab.engine.runs import read_run
from panopticlab.engine.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUN_OPTIONS = ["--profile", "ci", "--no-progress", "--device", "cpu", "--weights", "random"]  # no ImageNet download


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    return write_cityscapes_tree(tmp_path_factory.mktemp("cityscapes"))


@pytest.fixture
def one_evaluator_process(monkeypatch):
    """cityscapesScripts and panopticapi start one process per CPU; two images need one."""
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 1)


def train_argv(family, config, root, output, steps):
    return ["train", "--model", family, "--config", config, "--data", "cityscapes", str(root),
            "--steps", str(steps), "--output", str(output), *RUN_OPTIONS]


@pytest.mark.usefixtures("one_evaluator_process")
# Panoptic FPN trains long enough to find some segments, so that the label-id mapping is
# checked on true positives and not only on empty tables
@pytest.mark.parametrize("family, config, steps", [("baseline", "tiny", 2), ("panoptic-fpn", "tiny", 40),
                                                   ("upsnet", "tiny", 2), ("panoptic-deeplab", "tiny", 2),
                                                   ("panoptic-deeplab", "full", 2)])
def test_train_and_evaluate_on_a_cityscapes_tree(family, config, steps, cityscapes_root, tmp_path):
    from cityscapesscripts.evaluation import (
        evalPanopticSemanticLabeling as cityscapes_evaluation,
    )
    from panopticapi.evaluation import pq_compute

    run, name = tmp_path / "run", f"{family}-{config}"
    assert main(train_argv(family, config, cityscapes_root, run, steps=steps)) == 0
    record = read_run(run)
    assert record.model == name and record.steps == steps * len(record.recipes) and record.results["num_images"] == 2
    assert {recipe["num_train"] for recipe in record.recipes.values()} == {4}  # the tree's train images
    assert CategorySet.from_coco(json.loads((run / "categories.json").read_text())) == CITYSCAPES_TRAIN_ID_CATEGORIES

    predictions, results_json = tmp_path / "pred.json", tmp_path / "results.json"
    assert main(["evaluate", "--model", name, "--checkpoint", str(run), "--data", "cityscapes", str(cityscapes_root),
                 "--predictions", str(predictions), "--results-json", str(results_json), "--no-progress",
                 "--device", "cpu"]) == 0
    ours = json.loads(results_json.read_text())["results"]
    assert ours["All"]["pq"] == pytest.approx(record.results["All"]["pq"], abs=1e-12)  # the same weights, images
    # the predictions carry label ids: scored against the label-id conversion, the benchmark's
    gt = cityscapes_panoptic_paths(cityscapes_root, "val", use_train_id=False)
    written = json.loads(predictions.read_text())
    assert sorted(a["image_id"] for a in written["annotations"]) == \
        sorted(a["image_id"] for a in json.loads(gt["json_path"].read_text())["annotations"])
    assert {s["category_id"] for a in written["annotations"] for s in a["segments_info"]} <= set(CITYSCAPES_CATEGORIES.ids)
    assert written["categories"] == CITYSCAPES_CATEGORIES.to_coco()

    # both report PQ, SQ and RQ as fractions (0..1), as our results do
    cityscapes = cityscapes_evaluation.evaluatePanoptic(str(gt["json_path"]), str(gt["png_folder"]), str(predictions),
                                                        str(predictions.with_suffix("")),
                                                        str(tmp_path / "cityscapes_results.json"))
    panopticapi = pq_compute(str(gt["json_path"]), str(predictions), str(gt["png_folder"]))
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq"):
            assert ours[group][key] == pytest.approx(cityscapes[group][key], abs=1e-12), (group, key)
            assert ours[group][key] == pytest.approx(panopticapi[group][key], abs=1e-12), (group, key)
        assert ours[group]["n"] == cityscapes[group]["n"] == panopticapi[group]["n"]
    assert sorted(cityscapes["per_class"]) == CITYSCAPES_CATEGORIES.ids
    for train_id, label_id in TRAIN_ID_TO_LABEL_ID.items():
        theirs = cityscapes["per_class"][label_id]
        assert ours["per_class"][str(train_id)]["pq"] == pytest.approx(theirs["pq"], abs=1e-12), label_id
    if steps > 2:
        assert sum(c["tp"] for c in ours["per_class"].values()) >= 2, "a trained model matches some segments"


class Interrupted(Exception):
    pass


def test_an_interrupted_data_run_resumes_to_the_uninterrupted_result(cityscapes_root, tmp_path, monkeypatch,
                                                                     capsys):
    uninterrupted, resumed = tmp_path / "A", tmp_path / "B"
    saved_at = []
    save_checkpoint, train_step = Trainer.save_checkpoint, Trainer.train_step

    def recorded_save(trainer, path=None):
        saved_at.append(trainer.step)
        return save_checkpoint(trainer, path)

    monkeypatch.setattr(Trainer, "save_checkpoint", recorded_save)
    assert main(train_argv("panoptic-fpn", "tiny", cityscapes_root, uninterrupted, steps=4)) == 0
    assert saved_at == [1, 2, 3, 4]  # fit's checkpoint_every: max(1, min(100, 4 // 10))

    steps_begun = []

    def dying_step(trainer, images, targets):
        steps_begun.append(trainer.step + 1)
        if len(steps_begun) == 3:
            raise Interrupted
        return train_step(trainer, images, targets)

    saved_at.clear()
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_step", dying_step)
        with pytest.raises(Interrupted):
            main(train_argv("panoptic-fpn", "tiny", cityscapes_root, resumed, steps=4))
    assert steps_begun == [1, 2, 3] and saved_at == [1, 2]
    at_step_2 = load_checkpoint(resumed / "last.pt")
    assert at_step_2["step"] == 2 and not (resumed / "run.json").exists()

    capsys.readouterr()
    assert main(train_argv("panoptic-fpn", "tiny", cityscapes_root, resumed, steps=4)) == 1
    assert "--resume" in capsys.readouterr().err
    assert load_checkpoint(resumed / "last.pt")["step"] == 2

    saved_at.clear()
    torch.manual_seed(987)  # a new process would start from other generator states
    np.random.seed(987)
    assert main(train_argv("panoptic-fpn", "tiny", cityscapes_root, resumed, steps=4) + ["--resume"]) == 0
    assert saved_at == [3, 4]
    expected, got = load_checkpoint(uninterrupted / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert got["step"] == expected["step"] == 4
    assert expected["model"].keys() == got["model"].keys()
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), key
    assert not all(torch.equal(at_step_2["model"][key], value) for key, value in expected["model"].items())
    assert got["history"] == expected["history"]
    for name in ("history.json", "results.json", "categories.json"):
        assert json.loads((resumed / name).read_text()) == json.loads((uninterrupted / name).read_text()), name
    assert read_run(resumed).results == read_run(uninterrupted).results


def test_a_tree_without_the_train_id_conversion_is_named(cityscapes_root, tmp_path, capsys):
    label_ids_only, no_val = tmp_path / "label-ids", tmp_path / "no-val"
    (label_ids_only / "gtFine").mkdir(parents=True)
    shutil.copy(cityscapes_root / "gtFine" / "cityscapes_panoptic_train.json", label_ids_only / "gtFine")
    train = cityscapes_panoptic_paths(cityscapes_root, "train", use_train_id=True)
    (no_val / "gtFine").mkdir(parents=True)
    shutil.copy(train["json_path"], no_val / "gtFine")
    shutil.copytree(train["png_folder"], no_val / "gtFine" / train["png_folder"].name)
    shutil.copytree(cityscapes_root / "leftImg8bit", no_val / "leftImg8bit")
    output = tmp_path / "run"
    for root, missing in ((tmp_path / "nowhere", "train"), (label_ids_only, "train"), (no_val, "val")):
        assert main(train_argv("panoptic-fpn", "tiny", root, output, steps=1)) == 1
        error = capsys.readouterr().err
        assert f"gtFine/cityscapes_panoptic_{missing}_trainId.json: no Cityscapes panoptic '{missing}' split " \
               f"with train ids" in error, error
    assert not output.exists()
