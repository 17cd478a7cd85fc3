"""Shared by the full-size path tests: a tiny COCO-format dataset with COCO-like ids, and the
end-to-end check of one model family (`train --config full --data coco --input-size 64`, then
`evaluate --data coco` with the recorded categories and input size, scored again by panopticapi).
The full models' published input size is checked where they are built (tests/test_models_*.py)."""
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
from panopticlab.models.common import ImageBatcher
from panopticlab.models.zoo import build_model

# COCO-like sparse ids in another order than the built-in data's (stuff listed first), so
# nothing can lean on the built-in ids or on things coming first
COCO_IDS = {11: 184, 12: 149, 13: 125, 14: 199, 15: 178, 1: 7, 2: 3, 3: 25, 4: 90}
CATEGORIES = CategorySet([Category(COCO_IDS[c.id], f"coco-{c.name}", c.isthing, c.color)
                          for c in sorted(SYNTHETIC_CATEGORIES, key=lambda c: (c.isthing, c.id))])


def remapped(sample):
    segments = [dataclasses.replace(s, category_id=COCO_IDS[s.category_id]) for s in sample.panoptic.segments]
    return dataclasses.replace(sample, panoptic=PanopticSegmentation(sample.panoptic.id_map, segments))


def write_coco_root(root):
    for split, num in (("train", 4), ("val", 2)):
        samples = [remapped(s) for s in SyntheticPanoptic(num, size=64, seed=3, split=split)]
        write_coco_panoptic(root, split, samples, CATEGORIES)
    return root


def check_full_model_on_coco_files(family, coco_root, tmp_path):
    from panopticapi.evaluation import pq_compute

    run = tmp_path / "run"
    # --input-size 64: the networks that resize inside take the 64 px images at 64 px, not the
    # published 800 (which costs minutes a step on two cores); evaluate reads it from the run
    assert main(["train", "--model", family, "--config", "full", "--data", "coco", str(coco_root), "--profile", "ci",
                 "--steps", "2", "--input-size", "64", "--output", str(run), "--no-progress", "--device", "cpu",
                 "--weights", "random"]) == 0  # the ImageNet start is a download: tests/test_start_weights.py
    record = read_run(run)
    assert record.model == f"{family}-full" and record.steps == 2 * len(record.recipes) and record.results["num_images"] == 2
    for name, recipe in record.recipes.items():  # recorded where the network resizes its images
        resizes = any(isinstance(m, ImageBatcher) and not m.keep_size for m in build_model(name, CATEGORIES).modules())
        assert recipe["input_size"] == (64 if resizes else None), name
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
