"""The size breakdown: COCO's ranges stay the default, the paper's quantile split is an option."""
import math

import numpy as np
import pytest

from panopticlab import metrics
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.synthetic import render_scene, second_annotation
from panopticlab.metrics import Outcome, PQAccumulator, quantile_size_ranges


@pytest.fixture(scope="module")
def matchings():
    pairs = [(render_scene(i, size=64, seed=5, split="val").panoptic, second_annotation(i, size=64, seed=5, split="val"))
             for i in range(6)]
    return [metrics.match_segments(g, p) for g, p in pairs]


def test_quantile_ranges_on_known_areas():
    ranges = quantile_size_ranges(np.arange(1, 101))
    # np.quantile(1..100, 0.25) = 25.75 and (0.75) = 75.25, rounded up to whole pixels
    assert ranges == {"small": (0, 26), "medium": (26, 76), "large": (76, math.inf)}
    areas = np.arange(1, 101)
    counts = [int(((areas >= low) & (areas < high)).sum()) for low, high in ranges.values()]
    assert counts == [25, 50, 25]


def test_quantile_ranges_reject_bad_input():
    with pytest.raises(ValueError, match="at least one area"):
        quantile_size_ranges([])
    with pytest.raises(ValueError, match="increase strictly"):
        quantile_size_ranges([1, 2, 3], quantiles=(0.75, 0.25))
    with pytest.raises(ValueError, match="names"):
        quantile_size_ranges([1, 2, 3], names=("a", "b"))
    with pytest.raises(ValueError, match="empty ranges"):
        quantile_size_ranges([5, 5, 5, 5])
    with pytest.raises(ValueError, match="contiguous"):
        PQAccumulator(CATS, size_ranges={"a": (0, 10), "b": (20, math.inf)})


def test_default_is_coco_and_unchanged(matchings):
    default, explicit = PQAccumulator(CATS), PQAccumulator(CATS, size_ranges=metrics.SIZE_RANGES)
    for m in matchings:
        default.add(m)
        explicit.add(m)
    assert default.results() == explicit.results()
    assert default.results()["size_ranges"] == {"small": [0, 1024], "medium": [1024, 9216], "large": [9216, None]}


def brute_force_by_size(matchings, ranges):
    """TP / FP / FN per size range for Things, counted segment by segment."""
    def bucket(area):
        return next(name for name, (low, high) in ranges.items() if low <= area < high)

    out = {name: {"tp": 0, "fp": 0, "fn": 0} for name in ranges}
    for m in matchings:
        for row in m.records():
            if not CATS.isthing(row["category_id"]):
                continue
            if row["side"] == "gt" and row["outcome"] in ("TP", "FN"):
                out[bucket(row["area"])][row["outcome"].lower()] += 1
            elif row["side"] == "pred" and row["outcome"] == "FP":
                out[bucket(row["area"])]["fp"] += 1
    return out


def test_quantile_split_counts_match_a_segment_by_segment_count(matchings):
    thing_areas = [a for m in matchings for a, c, crowd in zip(m.overlaps.gt_area, m.gt.category_ids, m.gt.iscrowd)
                   if CATS.isthing(int(c)) and not crowd]
    ranges = quantile_size_ranges(thing_areas)
    accumulator = PQAccumulator(CATS, size_ranges=ranges)
    for m in matchings:
        accumulator.add(m)
    expected = brute_force_by_size(matchings, ranges)
    things = np.array([c.isthing for c in CATS])
    for s, name in enumerate(ranges):
        got = {key: int(getattr(accumulator.size_counts, key)[s][things].sum()) for key in ("tp", "fp", "fn")}
        assert got == expected[name], name
    # every bucket holds ground-truth things, and the buckets together hold all the counts
    assert all(v["tp"] + v["fn"] > 0 for v in expected.values())
    total_tp = sum(int((m.gt_outcome == Outcome.TP).sum()) for m in matchings)
    assert int(accumulator.size_counts.tp.sum()) == total_tp
    results = accumulator.results()
    assert list(results["by_size"]) == ["small", "medium", "large"] and results["by_size"]["large"]["Things"]["n"] > 0


def test_accumulators_with_different_ranges_do_not_merge():
    with pytest.raises(ValueError, match="size ranges"):
        PQAccumulator(CATS).merge(PQAccumulator(CATS, size_ranges=quantile_size_ranges(np.arange(1, 101))))
