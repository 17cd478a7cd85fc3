"""Segment matching and PQ on hand-worked images, the joint histogram, and every in-memory error."""
import numpy as np
import pytest

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticSegmentation
from panopticlab.metrics import (
    Outcome,
    PQAccumulator,
    SegmentTable,
    bipartite_matching,
    compute_overlaps,
    evaluate_pairs,
    match_segments,
)
from panopticlab.metrics.overlap import dense_index
from panopticlab.metrics.simulate import random_pair

DISC, BOX, TRIANGLE, SKY = 1, 2, 3, 11


def pan(id_map, category_of, iscrowd=None):
    return PanopticSegmentation.from_id_map(np.asarray(id_map, np.int32), category_of, iscrowd or {})


def worked_example():
    """Six ground-truth discs on void; four matches, one miss, one 'half' prediction.

    G1..G6 are 4x4 squares. P1 = G1 (IoU 1); P2 = 12 px of G2 (0.75); P3 = G3 plus 4 px of
    void (void is not in the union: IoU 1); P4 = 10 px of G4 (0.625); P5 = 8 px of G5, IoU
    exactly 0.5, which is not above 0.5: a FP, and G5 a FN; G6 has no prediction: a FN.
    """
    gt = np.zeros((6, 40), np.int32)
    for k in range(6):
        gt[1:5, 1 + 6 * k:5 + 6 * k] = 10 + k
    pred = np.zeros_like(gt)
    pred[1:5, 1:5] = 1
    pred[1:5, 7:10] = 2
    pred[1:5, 13:18] = 3
    pred[1:5, 19:21] = 4
    pred[1:3, 21] = 4
    pred[1:5, 25:27] = 5
    return (pan(gt, {10 + k: DISC for k in range(6)}), pan(pred, {k: DISC for k in range(1, 6)}))


def test_worked_example_tp4_fn2_fp1():
    gt, pred = worked_example()
    matching = match_segments(gt, pred)
    assert matching.counts() == {"tp": 4, "fp": 1, "fn": 2, "ignored_gt": 0, "ignored_pred": 0}
    iou = dict(zip(matching.gt.ids[matching.matched_gt].tolist(), matching.matched_iou.tolist()))
    assert iou == {10: 1.0, 11: 0.75, 12: 1.0, 13: 0.625}
    assert matching.gt_outcome.tolist() == [Outcome.TP] * 4 + [Outcome.FN] * 2
    assert matching.pred_outcome.tolist() == [Outcome.TP] * 4 + [Outcome.FP]

    accumulator = PQAccumulator(CATS)
    accumulator.update(gt, pred)
    disc = accumulator.results()["per_class"][DISC]
    assert (disc["tp"], disc["fp"], disc["fn"]) == (4, 1, 2)
    assert disc["rq"] == pytest.approx(4 / (4 + 1 / 2 + 2 / 2))  # = 4 / 5.5
    assert disc["sq"] == pytest.approx((1 + 0.75 + 1 + 0.625) / 4)
    assert disc["pq"] == pytest.approx(disc["sq"] * disc["rq"])
    results = accumulator.results()
    assert results["All"]["n"] == results["Things"]["n"] == 1 and results["Stuff"]["n"] == 0
    assert results["All"]["pq"] == pytest.approx(disc["pq"])
    assert np.isnan(results["Stuff"]["pq"])  # nothing to average


def test_records_describe_every_segment():
    gt, pred = worked_example()
    records = match_segments(gt, pred).records()
    by_key = {(r["side"], r["id"]): r for r in records}
    assert len(records) == 11
    assert by_key[("gt", 11)] == {"side": "gt", "id": 11, "category_id": DISC, "iscrowd": False, "area": 16,
                                  "outcome": "TP", "iou": 0.75, "partner": 2}
    assert by_key[("pred", 5)]["outcome"] == "FP" and by_key[("pred", 5)]["iou"] is None
    assert by_key[("gt", 14)]["partner"] is None and by_key[("gt", 14)]["outcome"] == "FN"


def crowd_and_void_example():
    """Void background; a disc crowd region, a disc A, a triangle B.

    P1 disc all on the disc crowd -> ignored; P2 box on the disc crowd -> FP (crowd only
    excuses its own category); P3 disc all on void -> ignored; P4 disc = A -> TP;
    P5 disc half on B, half on void -> exactly half is not more than half: FP.
    """
    gt = np.zeros((4, 30), np.int32)
    gt[:, 0:6] = 7      # crowd, disc
    gt[:, 10:14] = 8    # A, disc
    gt[:, 20:24] = 9    # B, triangle
    pred = np.zeros_like(gt)
    pred[:, 0:2] = 1
    pred[:, 2:6] = 2
    pred[:, 15:19] = 3
    pred[:, 10:14] = 4
    pred[:, 22:26] = 5
    return (pan(gt, {7: DISC, 8: DISC, 9: TRIANGLE}, {7: 1}),
            pan(pred, {1: DISC, 2: BOX, 3: DISC, 4: DISC, 5: DISC}))


def test_crowd_and_void_exemptions():
    gt, pred = crowd_and_void_example()
    matching = match_segments(gt, pred)
    assert matching.gt_outcome.tolist() == [Outcome.IGNORED, Outcome.TP, Outcome.FN]
    assert matching.pred_outcome.tolist() == [Outcome.IGNORED, Outcome.FP, Outcome.IGNORED, Outcome.TP, Outcome.FP]
    assert matching.pred_on_crowd.tolist() == [8, 0, 0, 0, 0]  # only P1 counts: same category as the crowd
    per_class = evaluate_pairs([(gt, pred)], CATS)["per_class"]
    assert [(per_class[c]["tp"], per_class[c]["fp"], per_class[c]["fn"]) for c in (DISC, BOX, TRIANGLE)] == [
        (1, 1, 0), (0, 1, 0), (0, 0, 1)]


def test_void_is_left_out_of_the_union():
    gt = np.zeros((2, 10), np.int32)
    gt[:, 0:4] = 5
    pred = np.zeros_like(gt)
    pred[:, 0:8] = 1          # 8 px: 8 on the disc, 8 on void
    matching = match_segments(pan(gt, {5: DISC}), pan(pred, {1: DISC}))
    assert matching.matched_iou.tolist() == [1.0]
    gt[:, 6:10] = 6           # now half the prediction lies on a sky segment: it counts
    matching = match_segments(pan(gt, {5: DISC, 6: SKY}), pan(pred, {1: DISC}))
    assert matching.candidate_iou.tolist() == [8 / 12] and matching.matched_iou.tolist() == [8 / 12]


def test_crowd_region_of_a_category_is_its_last_listed_crowd_segment():
    # panopticapi keeps one crowd segment per category: the last one listed
    gt = np.zeros((2, 12), np.int32)
    gt[:, 0:4], gt[:, 4:8] = 1, 2
    pred = np.zeros_like(gt)
    pred[:, 0:4] = 9
    gt_pan = PanopticSegmentation.from_id_map(gt, {1: DISC, 2: DISC}, {1: 1, 2: 1})
    pred_pan = pan(pred, {9: DISC})
    assert match_segments(gt_pan, pred_pan).pred_outcome.tolist() == [Outcome.FP]
    gt_pan.segments.reverse()   # now segment 1 is listed last
    assert match_segments(gt_pan, pred_pan).pred_outcome.tolist() == [Outcome.IGNORED]


def test_different_categories_never_match():
    gt = np.ones((3, 3), np.int32)
    matching = match_segments(pan(gt, {1: DISC}), pan(gt, {1: BOX}))
    assert matching.counts()["tp"] == 0 and len(matching.candidate_iou) == 0
    assert matching.gt_outcome.tolist() == [Outcome.FN] and matching.pred_outcome.tolist() == [Outcome.FP]


def conflicting_pairs():
    """One row: g1 = [0, 10), g2 = [10, 20); p1 = [4, 14), p2 = [0, 4).

    IoU(g1, p1) = 6/14, IoU(g2, p1) = 4/16, IoU(g1, p2) = 4/10. At threshold 0.2 greedy
    takes (g1, p1) and nothing else; the best assignment is (g1, p2) + (g2, p1).
    """
    gt = np.zeros((1, 20), np.int32)
    gt[0, :10], gt[0, 10:] = 1, 2
    pred = np.zeros_like(gt)
    pred[0, 4:14], pred[0, :4] = 1, 2
    return pan(gt, {1: DISC, 2: DISC}), pan(pred, {1: DISC, 2: DISC})


def test_below_one_half_greedy_and_bipartite_matching_differ():
    gt, pred = conflicting_pairs()
    greedy = match_segments(gt, pred, iou_threshold=0.2)
    assert list(zip(greedy.matched_gt.tolist(), greedy.matched_pred.tolist())) == [(0, 0)]
    rows, cols, iou = bipartite_matching(greedy, iou_threshold=0.2)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    assert iou.sum() == pytest.approx(4 / 10 + 4 / 16)
    assert iou.sum() > greedy.matched_iou.sum() == pytest.approx(6 / 14)
    # at 0.5 nothing qualifies in either
    assert len(match_segments(gt, pred).matched_iou) == 0 and len(bipartite_matching(greedy)[0]) == 0
    assert len(greedy.at_threshold(0.5).matched_gt) == 0


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.75])
def test_from_one_half_up_the_matching_is_the_maximum_weight_one(threshold):
    rng = np.random.default_rng(3)
    for _ in range(6):
        gt, pred = random_pair(rng, (60, 80), prediction_options={"shift": 0.3, "split": 0.3, "merge": 0.3})
        matching = match_segments(gt, pred, iou_threshold=threshold)
        rows, cols, iou = bipartite_matching(matching, iou_threshold=threshold)
        assert sorted(zip(rows.tolist(), cols.tolist())) == sorted(
            zip(matching.matched_gt.tolist(), matching.matched_pred.tolist()))
        # uniqueness: no segment has two partners above the threshold
        above = matching.candidate_iou > threshold
        for index in (matching.candidate_gt[above], matching.candidate_pred[above]):
            assert len(np.unique(index)) == len(index)


def test_threshold_sweep_is_monotone_and_matches_fresh_matching():
    rng = np.random.default_rng(4)
    gt, pred = random_pair(rng, (60, 80))
    matching = match_segments(gt, pred)
    counts = [matching.at_threshold(t).counts()["tp"] for t in (0.5, 0.6, 0.7, 0.8, 0.9)]
    assert counts == sorted(counts, reverse=True)
    again = match_segments(gt, pred, iou_threshold=0.7)
    assert np.array_equal(matching.at_threshold(0.7).matched_gt, again.matched_gt)


def test_joint_histogram_equals_panopticapis_offset_histogram():
    rng = np.random.default_rng(5)
    gt, pred = random_pair(rng, (50, 70))
    overlaps = compute_overlaps(gt.id_map, SegmentTable.from_segments(gt.segments),
                                pred.id_map, SegmentTable.from_segments(pred.segments))
    offset = 256**3
    keys, counts = np.unique(gt.id_map.astype(np.uint64) * offset + pred.id_map.astype(np.uint64),
                             return_counts=True)
    reference = {(int(k // offset), int(k % offset)): int(c) for k, c in zip(keys, counts)}
    ours = {}
    for i, g in enumerate(overlaps.gt.ids.tolist()):
        for j, p in enumerate(overlaps.pred.ids.tolist()):
            if overlaps.intersection[i, j]:
                ours[(g, p)] = int(overlaps.intersection[i, j])
        if overlaps.gt_on_void[i]:
            ours[(g, 0)] = int(overlaps.gt_on_void[i])
    for j, p in enumerate(overlaps.pred.ids.tolist()):
        if overlaps.pred_on_void[j]:
            ours[(0, p)] = int(overlaps.pred_on_void[j])
    reference.pop((0, 0), None)
    assert ours == reference
    assert overlaps.gt_area.tolist() == [s.area for s in gt.segments]
    assert overlaps.pred_area.tolist() == [s.area for s in pred.segments]


def test_ids_beyond_the_lookup_table_give_the_same_result():
    rng = np.random.default_rng(6)
    gt, pred = random_pair(rng, (40, 50))
    shift = 2**40  # int64 ids far beyond 256**3 take the binary-search path
    big_gt = PanopticSegmentation(np.where(gt.id_map > 0, gt.id_map.astype(np.int64) + shift, 0),
                                  [s.__class__(**{**s.__dict__, "id": s.id + shift}) for s in gt.segments])
    small, big = match_segments(gt, pred), match_segments(big_gt, pred)
    assert np.array_equal(small.overlaps.intersection, big.overlaps.intersection)
    assert np.array_equal(small.matched_iou, big.matched_iou)
    ids = np.array([5, 2**30, 3], np.int64)
    id_map = np.array([[0, 5, 3], [2**30, 7, 0]], np.int64)
    assert dense_index(id_map, ids).tolist() == [[0, 1, 3], [2, 4, 0]]  # 7 is unlisted: n + 1 = 4


def test_listing_order_and_dtype_do_not_matter():
    rng = np.random.default_rng(7)
    gt, pred = random_pair(rng, (40, 50))
    reference = evaluate_pairs([(gt, pred)], CATS)
    shuffled = PanopticSegmentation(gt.id_map.astype(np.uint32), list(reversed(gt.segments)))
    again = evaluate_pairs([(shuffled, PanopticSegmentation(pred.id_map.astype(np.int64), pred.segments))], CATS)
    for group in ("All", "Things", "Stuff"):
        assert again[group] == pytest.approx(reference[group], abs=1e-12)


# --- errors ------------------------------------------------------------------------------
def two_discs():
    gt = np.zeros((4, 6), np.int32)
    gt[:2], gt[2:] = 3, 4
    return gt


@pytest.mark.parametrize("mutate, message", [
    (lambda gt, pred: (gt, pan(np.zeros((4, 7), np.int32), {})),
     r"image 0: ground truth is \(6, 4\) .* prediction is \(7, 4\)"),
    (lambda gt, pred: (PanopticSegmentation(gt.id_map, gt.segments[:1]), pred),
     r"image 0: ground truth ids \[4\] occur in the id map but no segment lists them"),
    (lambda gt, pred: (gt, PanopticSegmentation(pred.id_map, pred.segments[1:])),
     r"prediction ids \[3\] occur in the id map"),
    (lambda gt, pred: (gt, PanopticSegmentation(pred.id_map, pred.segments + [pred.segments[0].__class__(99, DISC)])),
     r"prediction segments \[99\] are listed but have no pixel"),
    (lambda gt, pred: (PanopticSegmentation(gt.id_map, gt.segments + gt.segments[:1]), pred),
     r"ground truth: segment id 3 is listed more than once"),
    (lambda gt, pred: (gt, PanopticSegmentation(pred.id_map, pred.segments + [pred.segments[0].__class__(0, DISC)])),
     r"prediction: segment id 0 is not positive"),
    (lambda gt, pred: (gt, PanopticSegmentation(pred.id_map.astype(float), pred.segments)), r"must hold integers"),
    (lambda gt, pred: (gt, PanopticSegmentation(-pred.id_map, pred.segments)), r"prediction id map holds negative ids"),
    (lambda gt, pred: (gt, pan(pred.id_map, {3: DISC, 4: 42})),
     r"image 0: prediction segment 4 has category id 42, which is not among the categories"),
    (lambda gt, pred: (pan(gt.id_map, {3: 99, 4: DISC}), pred), r"ground truth segment 3 has category id 99"),
])
def test_bad_pairs_raise_one_clear_error(mutate, message):
    gt = pan(two_discs(), {3: DISC, 4: DISC})
    pred = pan(two_discs(), {3: DISC, 4: DISC})
    bad_gt, bad_pred = mutate(gt, pred)
    accumulator = PQAccumulator(CATS)
    with pytest.raises(PanopticFormatError, match=message):
        accumulator.update(bad_gt, bad_pred, image_id=0)
    # nothing was counted, and the next (good) image is unaffected by the failure
    assert accumulator.num_images == 0
    accumulator.update(gt, pred)
    assert accumulator.results()["per_class"][DISC]["tp"] == 2


def test_argument_errors():
    gt = pan(two_discs(), {3: DISC, 4: DISC})
    with pytest.raises(ValueError, match=r"iou_threshold must lie in \[0, 1\)"):
        match_segments(gt, gt, iou_threshold=1.0)
    with pytest.raises(ValueError, match="iou_threshold"):
        bipartite_matching(match_segments(gt, gt), iou_threshold=-0.1)
    with pytest.raises(ValueError, match="different category sets"):
        PQAccumulator(CATS).merge(PQAccumulator(CATS.__class__(list(CATS)[:3])))
    with pytest.raises(ValueError, match="IoU thresholds 0.5 and 0.75"):
        PQAccumulator(CATS).merge(PQAccumulator(CATS, 0.75))
    with pytest.raises(ValueError, match="matching made at IoU > 0.75"):
        PQAccumulator(CATS).add(match_segments(gt, gt, iou_threshold=0.75))
    with pytest.raises(ValueError, match="one length"):
        SegmentTable.from_arrays([1, 2], [DISC])


def test_run_length_histogram_equals_pixel_counting():
    """Counting runs of equal (gt, pred) pairs gives the per-pixel joint histogram, on regions and on noise."""
    from panopticlab.metrics.overlap import (RUNS_LIMIT, SegmentTable, compute_overlaps, dense_index,
                                             joint_histogram, pixel_runs)
    from panopticlab.metrics.simulate import random_pair

    rng = np.random.default_rng(7)
    noise = rng.integers(0, 5, size=(40, 50))
    for gt_map, pred_map in [(p.id_map, q.id_map) for p, q in (random_pair(rng, size=(60, 80)) for _ in range(5))] + \
            [(noise, rng.integers(0, 5, size=(40, 50))), (np.zeros((0, 0), int), np.zeros((0, 0), int))]:
        starts, lengths = pixel_runs(gt_map, pred_map)
        assert lengths.sum() == gt_map.size
        gt_ids = np.unique(gt_map[gt_map > 0])
        pred_ids = np.unique(pred_map[pred_map > 0])
        gt, pred = SegmentTable.from_arrays(gt_ids, np.ones_like(gt_ids)), SegmentTable.from_arrays(pred_ids, np.ones_like(pred_ids))
        rows, cols = len(gt_ids) + 2, len(pred_ids) + 2
        reference = joint_histogram(dense_index(gt_map, gt_ids), dense_index(pred_map, pred_ids), rows, cols)
        if gt_map.size:
            overlaps = compute_overlaps(gt_map, gt, pred_map, pred)
            assert np.array_equal(overlaps.intersection, reference[1:-1, 1:-1])
            assert np.array_equal(overlaps.pred_on_void, reference[0, 1:-1])
            assert np.array_equal(overlaps.gt_on_void, reference[1:-1, 0])
    assert len(pixel_runs(noise, noise)[0]) > RUNS_LIMIT * noise.size  # noise takes the per-pixel path
