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


def test_sixty_thousand_segments_in_one_image(tmp_path):
    """Cost grows with the overlapping pairs: a dense (n + 2)^2 histogram here would take 27 GiB."""
    rng = np.random.default_rng(60000)
    gt, pred = many_segment_pair(rng, (500, 1000), (250, 250), void_labels=0.0)
    assert len(gt.segments) > 60000 and len(pred.segments) > 40000
    paths = write_set(tmp_path, [(gt, pred)])
    start = time.perf_counter()
    ours = evaluate_folders(**paths, progress=False)
    seconds = time.perf_counter() - start
    assert seconds < 30, f"{seconds:.1f} s"  # under 1 s here (panopticapi: 3 s)
    assert_same_as_panopticapi(ours, panopticapi_results(paths))
    assert 0.05 < ours["All"]["pq"] < 0.95
    # memory of the histogram and the matching, on the in-memory path (tracing would slow the JSON reading)
    tracemalloc.start()  # numpy reports its arrays to tracemalloc
    try:
        again = evaluate_pairs([(gt, pred)], CATS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # about 30 MiB
    assert_same_as_panopticapi(again, ours, tolerance=1e-12)

def random_maps(rng):
    """(gt map, gt table, pred map, pred table) of region-like and noise-like images, small and large."""
    cases = [(p.id_map, p.segments, q.id_map, q.segments) for p, q in (random_pair(rng, (60, 80)) for _ in range(3))]
    cases += [(p.id_map, p.segments, q.id_map, q.segments)
              for p, q in (many_segment_pair(rng, (60, 90), (20, 30)), many_segment_pair(rng, (30, 40), (15, 20)))]
    noise = rng.integers(0, 40, size=(30, 40)), rng.integers(0, 40, size=(30, 40))
    tables = [SegmentTable.from_arrays(np.unique(m[m > 0]), np.full(len(np.unique(m[m > 0])), 1)) for m in noise]
    return [(gt_map, SegmentTable.from_segments(gt) if isinstance(gt, list) else gt,
             pred_map, SegmentTable.from_segments(pred) if isinstance(pred, list) else pred)
            for gt_map, gt, pred_map, pred in cases + [(noise[0], tables[0], noise[1], tables[1])]]


@pytest.mark.parametrize("dense_limit", [0, 2**8])
def test_sparse_pair_counting_equals_dense(monkeypatch, dense_limit):
    """Below DENSE_LIMIT cells the histogram is dense; lowering the limit forces the sparse count."""
    cases = random_maps(np.random.default_rng(3))
    dense = [compute_overlaps(*case) for case in cases]
    monkeypatch.setattr(overlap_module, "DENSE_LIMIT", dense_limit)
    assert any(len(pixel_runs(c[0], c[2])[0]) > overlap_module.RUNS_LIMIT * c[0].size for c in cases)  # both paths
    for case, reference in zip(cases, dense):
        sparse = compute_overlaps(*case)
        for field in ("pair_gt", "pair_pred", "pair_pixels", "gt_area", "pred_area", "pred_on_void", "gt_on_void"):
            ours, theirs = getattr(sparse, field), getattr(reference, field)
            assert ours.dtype == theirs.dtype == np.int64 and np.array_equal(ours, theirs), field
        assert np.array_equal(sparse.intersection, reference.intersection)
        assert (reference.pair_pixels > 0).all()
        keys = reference.pair_gt * (len(reference.pred) + 1) + reference.pair_pred
        assert (np.diff(keys) > 0).all()  # sorted by row, then column, each pair once
