"""Every number against independent implementations: panopticapi, hotcoco, torchmetrics, and a
direct re-implementation from the definitions (boolean masks, one pair at a time).

The generated sets have crowd regions, void borders, shifted and rescaled masks, merges,
splits, misses, category swaps, false positives, and predictions that leave pixels void.
"""
import contextlib
import io
import math
from collections import defaultdict

import numpy as np
import pytest

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.metrics import SIZE_RANGES, evaluate_folders, evaluate_pairs
from panopticlab.metrics.simulate import random_pair, write_result_set

GROUPS = ("All", "Things", "Stuff")
PREDICTION = {"shift": 0.15, "split": 0.2, "merge": 0.2, "swap": 0.1, "false_positives": 2.0}
SETS = {
    # COCO-like ground truth: one crowd region per category, one segment per stuff class
    "coco": dict(scene_options={"crowd_probability": 0.25, "void_fraction": 0.3},
                 prediction_options={**PREDICTION, "void_fraction": 0.2}),
    # several crowd segments of one category, several segments of one stuff class
    "unusual": dict(scene_options={"crowd_probability": 0.4, "one_crowd_region_per_category": False,
                                   "unique_stuff": False, "num_stuff": (2, 5)},
                    prediction_options=PREDICTION),
}


def make_pairs(name, num=24, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [(48, 64), (96, 128), (240, 200)]  # large enough for all three COCO sizes
    return [random_pair(rng, sizes[k % len(sizes)], **SETS[name]) for k in range(num)]


@pytest.fixture(scope="module", params=list(SETS))
def result_set(request, tmp_path_factory):
    pairs = make_pairs(request.param)
    paths = write_result_set(tmp_path_factory.mktemp(request.param), pairs, CATS)
    return request.param, pairs, paths, evaluate_folders(**paths, progress=False)


def assert_groups_equal(ours, theirs, tolerance=1e-9):
    for group in GROUPS:
        for key in ("pq", "sq", "rq", "n"):
            assert math.isclose(ours[group][key], theirs[group][key], rel_tol=0, abs_tol=tolerance), (group, key)


def test_against_panopticapi(result_set):
    from panopticapi.evaluation import pq_compute

    _, _, paths, ours = result_set
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = pq_compute(str(paths["gt_json"]), str(paths["pred_json"]),
                            str(paths["gt_folder"]), str(paths["pred_folder"]))
    assert_groups_equal(ours, theirs)
    assert set(theirs["per_class"]) == set(ours["per_class"]) == set(CATS.ids)
    for category_id, scores in theirs["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert math.isclose(ours["per_class"][category_id][key], scores[key], abs_tol=1e-9), (category_id, key)
    assert ours["All"]["n"] >= 7  # the set exercises (nearly) every category


def test_against_hotcoco(result_set):
    from hotcoco import panoptic

    _, _, paths, ours = result_set
    evaluator = panoptic.PanopticEval(str(paths["gt_json"]), str(paths["pred_json"]),
                                      gt_folder=str(paths["gt_folder"]), pred_folder=str(paths["pred_folder"]))
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
    theirs = evaluator.results()
    assert_groups_equal(ours, theirs)
    for category_id, scores in theirs["per_class"].items():
        mine = ours["per_class"][category_id]
        assert (mine["tp"], mine["fp"], mine["fn"]) == (scores["tp"], scores["fp"], scores["fn"])
        assert math.isclose(mine["iou"], scores["iou"], abs_tol=1e-9)
        if scores["tp"] + scores["fp"] + scores["fn"]:  # hotcoco reports -1 for absent classes
            for key in ("pq", "sq", "rq"):
                assert math.isclose(mine[key], scores[key], abs_tol=1e-9), (category_id, key)


# --- a direct re-implementation from the definitions ---------------------------------------
def size_of(area):
    return next(name for name, (low, high) in SIZE_RANGES.items() if low <= area < high)


def naive_counts(pairs, threshold=0.5):
    """Per (size or None, category): [tp, fp, fn, iou]; and PQ-dagger stuff sums. Masks, no histogram."""
    counts = defaultdict(lambda: [0, 0, 0, 0.0])
    dagger = defaultdict(lambda: [0.0, 0])
    for gt, pred in pairs:
        void = gt.id_map == 0
        gmask = {s.id: gt.id_map == s.id for s in gt.segments}
        pmask = {s.id: pred.id_map == s.id for s in pred.segments}
        crowd_of = {}
        for s in gt.segments:  # the last crowd segment of a category, as panopticapi
            if s.iscrowd:
                crowd_of[s.category_id] = gmask[s.id]
        matched_pred = set()
        for g in gt.segments:
            if g.iscrowd:
                continue
            dagger[g.category_id][1] += 1
            partner = None
            for p in pred.segments:
                if p.category_id != g.category_id:
                    continue
                intersection = np.sum(gmask[g.id] & pmask[p.id])
                if intersection == 0:
                    continue
                iou = intersection / np.sum(gmask[g.id] | (pmask[p.id] & ~void))
                dagger[g.category_id][0] += iou
                if iou > threshold:
                    assert partner is None, "two partners above 0.5 cannot happen"
                    partner = (p.id, iou)
            size = size_of(int(gmask[g.id].sum()))
            for key in (None, size):
                if partner is None:
                    counts[key, g.category_id][2] += 1
                else:
                    counts[key, g.category_id][0] += 1
                    counts[key, g.category_id][3] += partner[1]
            if partner is not None:
                matched_pred.add(partner[0])
        for p in pred.segments:
            if p.id in matched_pred:
                continue
            excused = np.sum(pmask[p.id] & void)
            if p.category_id in crowd_of:
                excused += np.sum(pmask[p.id] & crowd_of[p.category_id])
            if excused / pmask[p.id].sum() > 0.5:
                continue
            for key in (None, size_of(int(pmask[p.id].sum()))):
                counts[key, p.category_id][1] += 1
    return counts, dagger


def naive_group_means(counts, size=None):
    scores = {}
    for category in CATS:
        tp, fp, fn, iou = counts[size, category.id]
        if tp + fp + fn:
            scores[category.id] = (iou / (tp + fp / 2 + fn / 2), iou / tp if tp else 0.0, tp / (tp + fp / 2 + fn / 2))
    groups = {}
    for group, keep in (("All", CATS.ids), ("Things", CATS.thing_ids), ("Stuff", CATS.stuff_ids)):
        rows = [scores[c] for c in keep if c in scores]
        means = np.mean(rows, axis=0) if rows else [math.nan] * 3
        groups[group] = {"pq": means[0], "sq": means[1], "rq": means[2], "n": len(rows)}
    return groups


def assert_close_or_both_nan(a, b):
    assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, abs_tol=1e-9)


@pytest.mark.parametrize("threshold", [0.5, 0.75])
def test_against_the_definitions(result_set, threshold):
    name, pairs, _, _ = result_set
    ours = evaluate_pairs(pairs, CATS, iou_threshold=threshold)
    counts, dagger = naive_counts(pairs, threshold)
    for category in CATS:
        tp, fp, fn, iou = counts[None, category.id]
        mine = ours["per_class"][category.id]
        assert (mine["tp"], mine["fp"], mine["fn"]) == (tp, fp, fn)
        assert math.isclose(mine["iou"], iou, abs_tol=1e-9)
    for size in SIZE_RANGES:
        expected = naive_group_means(counts, size)
        for group in GROUPS:
            assert ours["by_size"][size][group]["n"] == expected[group]["n"]
            for key in ("pq", "sq", "rq"):
                assert_close_or_both_nan(ours["by_size"][size][group][key], expected[group][key])
    assert_groups_equal(ours, naive_group_means(counts))
    # PQ-dagger: things as PQ, stuff by summed IoU over ground-truth segments
    for category in CATS:
        expected = (ours["per_class"][category.id]["pq"] if category.isthing
                    else dagger[category.id][0] / max(dagger[category.id][1], 1))
        assert math.isclose(ours["pq_dagger"]["per_class"][category.id], expected, abs_tol=1e-9)
    assert all(ours["by_size"][size]["All"]["n"] > 0 for size in SIZE_RANGES)  # every size occurs


# --- torchmetrics: same semantics when predictions leave nothing void and there is no crowd ---
def as_category_instance(segmentation, void_category):
    """(H, W, 2) int64 (category, instance) pixels, torchmetrics' input; void -> an unused category."""
    lut = {s.id: s.category_id for s in segmentation.segments}
    ids, inverse = np.unique(segmentation.id_map, return_inverse=True)
    categories = np.array([lut.get(int(i), void_category) for i in ids])[inverse].reshape(segmentation.shape)
    return np.stack([categories, segmentation.id_map], axis=-1).astype(np.int64)


def test_against_torchmetrics_pq_and_pq_dagger():
    torch = pytest.importorskip("torch")
    detection = pytest.importorskip("torchmetrics.detection")

    rng = np.random.default_rng(11)
    pairs = [random_pair(rng, (48, 64), scene_options={"crowd_probability": 0.0},
                         prediction_options={**PREDICTION, "void_fraction": 0.0, "stuff_swap": 0.0})
             for _ in range(16)]
    things, stuffs = set(CATS.thing_ids), set(CATS.stuff_ids)
    metrics = (detection.PanopticQuality(things, stuffs, return_sq_and_rq=True, return_per_class=True),
               detection.ModifiedPanopticQuality(things, stuffs))
    for gt, pred in pairs:
        target = torch.from_numpy(as_category_instance(gt, 99))[None]
        preds = torch.from_numpy(as_category_instance(pred, 99))[None]
        for metric in metrics:
            metric.update(preds, target)
    ours = evaluate_pairs(pairs, CATS)

    # torchmetrics divides integer tensors, which gives float32 IoUs: agreement to 1e-6, not 1e-9
    tolerance = 1e-6
    per_class = metrics[0].compute().numpy()  # (C, 3) pq, sq, rq; things then stuff, each sorted by id
    order = sorted(things) + sorted(stuffs)
    for row, category_id in zip(per_class, order):
        mine = ours["per_class"][category_id]
        assert np.allclose(row, [mine["pq"], mine["sq"], mine["rq"]], rtol=0, atol=tolerance), category_id
    assert ours["All"]["n"] == 9
    dagger = metrics[1]
    assert math.isclose(float(dagger.compute()), ours["pq_dagger"]["All"]["pq"], abs_tol=tolerance)
    for index, category_id in enumerate(order):  # torchmetrics keeps stuff's IoU sum and segment count
        if category_id in stuffs:
            expected = float(dagger.iou_sum[index]) / max(int(dagger.true_positives[index]), 1)
            assert math.isclose(ours["pq_dagger"]["per_class"][category_id], expected, abs_tol=tolerance)
    # the modified metric must differ from PQ here, or this test would not test it
    assert abs(ours["pq_dagger"]["Stuff"]["pq"] - ours["Stuff"]["pq"]) > 0.01
