"""The full-size path end to end on a tiny COCO-format dataset the test writes: `train --config
full --data coco`, then `evaluate --data coco` with the recorded categories, scored again by
panopticapi from the written predictions."""
import dataclasses
import json

import pytest

from panopticlab.commands import main
from panopticlab.data import SYNTHETIC_CATEGORIES
from panopticlab.data.categories import Category, CategorySet
from panopticlab.data.coco import write_coco_panoptic
from panopticlab.data.panoptic import PanopticSegmentation
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.engine.runs import read_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# COCO-like sparse ids in another order than the built-in data's (stuff listed first), so
# nothing can lean on the built-in ids or on things coming first
COCO_IDS = {11: 184, 12: 149, 13: 125, 14: 199, 15: 178, 1: 7, 2: 3, 3: 25, 4: 90}
CATEGORIES = CategorySet([Category(COCO_IDS[c.id], f"coco-{c.name}", c.isthing, c.color)
                          for c in sorted(SYNTHETIC_CATEGORIES, key=lambda c: (c.isthing, c.id))])


def remapped(sample):
    segments = [dataclasses.replace(s, category_id=COCO_IDS[s.category_id]) for s in sample.panoptic.segments]
    return dataclasses.replace(sample, panoptic=PanopticSegmentation(sample.panoptic.id_map, segments))


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    for split, num in (("train", 4), ("val", 2)):
        samples = [remapped(s) for s in SyntheticPanoptic(num, size=64, seed=3, split=split)]
        write_coco_panoptic(root, split, samples, CATEGORIES)
    return root


@pytest.mark.parametrize("family", ["baseline", "panoptic-fpn", "upsnet", "panoptic-deeplab"])
def test_train_and_evaluate_a_full_model_on_coco_files(family, coco_root, tmp_path, capsys):
    from panopticapi.evaluation import pq_compute

    run = tmp_path / "run"
    assert main(["train", "--model", family, "--config", "full", "--data", "coco", str(coco_root), "--profile", "ci",
                 "--steps", "2", "--output", str(run), "--no-progress", "--device", "cpu"]) == 0
    record = read_run(run)
    assert record.model == f"{family}-full" and record.steps == 2 * len(record.recipes) and record.results["num_images"] == 2
    assert CategorySet.from_coco(json.loads((run / "categories.json").read_text())) == CATEGORIES
    predictions, results_json = tmp_path / "pred.json", tmp_path / "results.json"
    assert main(["evaluate", "--model", f"{family}-full", "--checkpoint", str(run), "--data", "coco", str(coco_root),
                 "--predictions", str(predictions), "--results-json", str(results_json), "--no-progress",
                 "--device", "cpu"]) == 0
    ours = json.loads(results_json.read_text())["results"]
    assert ours["All"]["pq"] == pytest.approx(record.results["All"]["pq"], abs=1e-12)  # the same weights, images
    written = json.loads(predictions.read_text())
    assert {s["category_id"] for a in written["annotations"] for s in a["segments_info"]} <= set(CATEGORIES.ids)
    reference = pq_compute(str(coco_root / "annotations" / "panoptic_val.json"), str(predictions),
                           str(coco_root / "annotations" / "panoptic_val"))
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["pq"] == pytest.approx(reference[group]["pq"], abs=1e-12)


def test_bad_data_options_are_named(coco_root, tmp_path, capsys):
    argv = ["train", "--model", "panoptic-fpn-full", "--profile", "ci", "--steps", "1", "--output", str(tmp_path / "r")]
    assert main(argv + ["--data", "coco", str(tmp_path / "nowhere")]) == 1
    assert "panoptic_train.json: no COCO panoptic 'train' split" in capsys.readouterr().err
    assert main(argv + ["--data", "kitti", str(coco_root)]) == 1
    assert "unknown dataset kind 'kitti'" in capsys.readouterr().err
    assert main(["train", "--model", "panoptic-fpn-full", "--config", "tiny", "--output", str(tmp_path / "r")]) == 1
    assert "already names its size" in capsys.readouterr().err
    assert not (tmp_path / "r" / "last.pt").exists()
