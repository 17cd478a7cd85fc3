"""Re-scoring kept matchings equals scoring the images again."""
import itertools

import numpy as np
import pytest

from panopticlab import metrics
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation
from panopticlab.data.synthetic import render_scene, second_annotation
from panopticlab.metrics.rescore import bipartite_match_ious, rescore_matchings


@pytest.fixture(scope="module")
def pairs():
    return [(render_scene(i, size=64, seed=9, split="val").panoptic, second_annotation(i, size=64, seed=9, split="val"))
            for i in range(5)]


def test_rescore_equals_scoring_the_images(pairs):
    matchings = [metrics.match_segments(g, p) for g, p in pairs]
    assert rescore_matchings(matchings, CATS) == metrics.evaluate_pairs(pairs, CATS)
    by_threshold = metrics.evaluate_thresholds(pairs, CATS, [0.3, 0.75])
    for threshold in (0.3, 0.75):
        assert rescore_matchings(matchings, CATS, threshold) == by_threshold[threshold]
    # a re-score from matchings made at another threshold gives the same
    assert rescore_matchings([m.at_threshold(0.75) for m in matchings], CATS) == metrics.evaluate_pairs(pairs, CATS)


def test_rescore_with_the_quantile_split(pairs):
    matchings = [metrics.match_segments(g, p) for g, p in pairs]
    ranges = metrics.quantile_size_ranges(np.arange(1, 300))
    results = rescore_matchings(matchings, CATS, size_ranges=ranges)
    assert results["size_ranges"]["small"] == [0, ranges["small"][1]]
    assert results["All"] == metrics.evaluate_pairs(pairs, CATS)["All"]


def brute_force_best(iou):
    """Largest total IoU over every one-to-one assignment of a small matrix."""
    n, m = iou.shape
    best = 0.0
    for cols in itertools.permutations(range(max(n, m)), n):
        best = max(best, sum(iou[r, c] for r, c in enumerate(cols) if c < m))
    return best


def test_bipartite_ious_are_the_best_assignment():
    # two ground-truth boxes, two predictions: the greedy best pair is not the best assignment
    gt = np.full((4, 12), 3, np.int32)
    gt[:, 0:6], gt[:, 6:12] = 1, 2
    pred = np.full((4, 12), 3, np.int32)
    pred[:, 0:4], pred[:, 4:12] = 1, 2
    g = PanopticSegmentation.from_id_map(gt, {1: 2, 2: 2, 3: 11})
    p = PanopticSegmentation.from_id_map(pred, {1: 2, 2: 2, 3: 11})
    m = metrics.match_segments(g, p)
    ious = bipartite_match_ious([m])
    table = np.zeros((len(m.gt), len(m.pred)))
    table[m.candidate_gt, m.candidate_pred] = m.candidate_iou
    assert ious.sum() == pytest.approx(brute_force_best(table))
    assert len(bipartite_match_ious([])) == 0
