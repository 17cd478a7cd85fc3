"""Chapter 2's checkers accept right answers and explain wrong ones."""
import numpy as np
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
    with pytest.raises(ExerciseError, match="IoU > 0.5"):
        ch02.check_rq_by_hand(4, 1, 1, 0.8)
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


def test_pq_checker():
    def right(tp, fp, fn, s):
        sq = s / tp if tp else 0.0
        rq = tp / (tp + fp / 2 + fn / 2)
        return sq * rq, sq, rq

    assert ch02.check_pq_from_counts(right)
    with pytest.raises(ExerciseError, match="division by zero"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (s / (tp + fp / 2 + fn / 2), s / tp, tp / (tp + fp / 2 + fn / 2)))
    with pytest.raises(ExerciseError, match="expected"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (0.0, 0.0, tp / (tp + fp + fn)))
