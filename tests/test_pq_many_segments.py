"""Images with hundreds to tens of thousands of segments, scored against panopticapi.

Segment counts above 255 per side once made the run-length pair keys wrap around in 16
bits (wrong PQ, or a false "listed but have no pixel" error), and 60000 segments made a
dense (n + 2)^2 joint histogram of tens of GiB.
"""
import time
import tracemalloc

import numpy as np
import pytest

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.metrics import evaluate_folders, evaluate_pairs
from panopticlab.metrics import overlap as overlap_module
from panopticlab.metrics.overlap import SegmentTable, compute_overlaps, pixel_runs
from panopticlab.metrics.simulate import random_pair

from panoptic_cases import assert_same_as_panopticapi, many_segment_pair, panopticapi_results, write_set

# name: (image size, ground-truth grid (rows, cols), split of each predicted rectangle)
CASES = {
    "80 vs 960": ((240, 320), (8, 10), (3, 4)),       # the case: few ground truths, many fragments
    "300 per side": ((150, 200), (15, 20), (1, 1)),
    "1000 per side": ((200, 320), (25, 40), (1, 1)),
    "1000 per side, 2-pixel cells": ((40, 100), (20, 50), (1, 1)),  # more runs than pixels / 4: per-pixel path
}


@pytest.mark.parametrize("name", list(CASES))
def test_many_segments_per_side_score_as_panopticapi(tmp_path, name):
    shape, gt_grid, split = CASES[name]
    rng = np.random.default_rng(list(CASES).index(name))
    pairs = [many_segment_pair(rng, shape, gt_grid, split) for _ in range(2)]
    for gt, pred in pairs:
        assert len(gt.segments) >= 75 and len(pred.segments) > 255  # past what 8 bits of index hold
        if name != "80 vs 960":
            assert len(gt.segments) > 255
    paths = write_set(tmp_path, pairs)
    ours = evaluate_folders(**paths, progress=False)
    assert_same_as_panopticapi(ours, panopticapi_results(paths))
    assert ours["All"]["n"] == len(CATS)
    if split == (1, 1):  # matches and misses both occur, or the test would test little
        assert 0.05 < ours["All"]["pq"] < 0.95
    else:  # a twelfth of a rectangle never matches it: every segment is a miss or a false positive
        assert sum(c["fp"] for c in ours["per_class"].values()) > 900
    # the in-memory path reads the same pairs to the same numbers
    assert_same_as_panopticapi(evaluate_pairs(pairs, CATS), ours, tolerance=1e-12)
