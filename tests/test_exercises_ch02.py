"""Chapter 2's checkers accept right answers and explain wrong ones."""
import math

import pytest

from panopticlab.exercises import ExerciseError, ch02
from panopticlab.metrics import match_segments


def test_rq_case_has_every_kind_of_outcome():
    gt, pred = ch02.rq_case()
    counts = match_segments(gt, pred).counts()
    assert counts["fp"] >= 2 and counts["fn"] >= 2 and counts["ignored_pred"] == 1


def test_rq_checker():
    assert ch02.check_rq_by_hand(3, 2, 2, 3 / 5)
    with pytest.raises(ExerciseError, match="lies mostly on void"):
        ch02.check_rq_by_hand(3, 3, 2, 3 / 5.5)
    with pytest.raises(ExerciseError, match="too many. A match needs IoU > 0.5"):
        ch02.check_rq_by_hand(4, 1, 1, 0.8)
    with pytest.raises(ExerciseError, match="too few. A box one pixel off"):
        ch02.check_rq_by_hand(2, 3, 3, 0.4)
    with pytest.raises(ExerciseError, match="counts twice"):
        ch02.check_rq_by_hand(3, 2, 1, 3 / 4.5)
    with pytest.raises(ExerciseError, match="RQ = TP / "):
        ch02.check_rq_by_hand(3, 2, 2, 3 / 7)


def reference_match(gt, pred):
    m = match_segments(gt, pred)
    return set(zip(m.gt.ids[m.matched_gt].tolist(), m.pred.ids[m.matched_pred].tolist()))


def test_matching_checker():
    assert ch02.check_matching(reference_match)

    def plain_union(gt, pred):  # forgets to leave void out of the union
        pairs = set()
        for g in gt.segments:
            for p in pred.segments:
                if g.category_id == p.category_id and not g.iscrowd:
                    a, b = gt.id_map == g.id, pred.id_map == p.id
                    if (a & b).sum() / (a | b).sum() > 0.5:
                        pairs.add((g.id, p.id))
        return pairs

    with pytest.raises(ExerciseError, match="void"):
        ch02.check_matching(plain_union)
    with pytest.raises(ExerciseError, match="missing matches"):
        ch02.check_matching(lambda gt, pred: set())

    def any_category(gt, pred):  # forgets the category test
        return {(g, p) for g, p in reference_match(gt, pred)} | {
            (g.id, p.id) for g in gt.segments for p in pred.segments
            if not g.iscrowd and ((gt.id_map == g.id) & (pred.id_map == p.id)).sum() * 2 > (gt.id_map == g.id).sum()
            and g.category_id != p.category_id}

    with pytest.raises(ExerciseError, match="a box predicted as a disc: .*Only segments of the same category"):
        ch02.check_matching(any_category)

    def at_least_half(gt, pred):  # IoU >= 0.5 instead of > 0.5
        m = match_segments(gt, pred, iou_threshold=0.4999)
        return set(zip(m.gt.ids[m.matched_gt].tolist(), m.pred.ids[m.matched_pred].tolist()))

    with pytest.raises(ExerciseError, match="IoU exactly 0.5: .*strictly above 0.5"):
        ch02.check_matching(at_least_half)


def test_pq_checker():
    def right(tp, fp, fn, s):
        sq = s / tp if tp else 0.0
        rq = tp / (tp + fp / 2 + fn / 2)
        return sq * rq, sq, rq

    assert ch02.check_pq_from_counts(right)
    with pytest.raises(ExerciseError, match="report it, and so PQ, as 0"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (math.nan, math.nan, tp / (tp + fp / 2 + fn / 2))
                                  if tp == 0 else right(tp, fp, fn, s))
    with pytest.raises(ExerciseError, match="division by zero"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (s / (tp + fp / 2 + fn / 2), s / tp, tp / (tp + fp / 2 + fn / 2)))
    with pytest.raises(ExerciseError, match="expected"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (0.0, 0.0, tp / (tp + fp + fn)))
