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
    assert ch02.check_matching(own_match)

    def plain_union(gt, pred):  # forgets to leave void out of the union
        return own_match(gt, pred, void_out=False)

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
    with pytest.raises(ExerciseError, match="report it, and so PQ, as 0"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (math.nan, math.nan, tp / (tp + fp / 2 + fn / 2))
                                  if tp == 0 else right(tp, fp, fn, s))
    with pytest.raises(ExerciseError, match="division by zero"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (s / (tp + fp / 2 + fn / 2), s / tp, tp / (tp + fp / 2 + fn / 2)))
    with pytest.raises(ExerciseError, match="counts FP and FN whole"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (0.0, 0.0, tp / (tp + fp + fn)))
    with pytest.raises(ExerciseError, match="expected"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (0.0, 0.0, 1.0))


def own_match(gt, pred, skip_crowd=True, same_category=True, void_out=True, threshold=0.5, strict=True,
              divide_by="union", pred_void_out=False):
    """A matcher written from the rules, with one switch per misreading."""
    gt_void, pred_void = gt.id_map == 0, pred.id_map == 0
    pairs = set()
    for g in gt.segments:
        if skip_crowd and g.iscrowd:
            continue
        a = gt.id_map == g.id
        for p in pred.segments:
            if same_category and p.category_id != g.category_id:
                continue
            b = pred.id_map == p.id
            inter = int((a & b).sum())
            if not inter:
                continue
            union = int(a.sum() + b.sum() - inter) - (int((b & gt_void).sum()) if void_out else 0)
            union -= int((a & pred_void).sum()) if pred_void_out else 0
            iou = inter / (union if divide_by == "union" else a.sum())
            if iou > threshold if strict else iou >= threshold:
                pairs.add((g.id, p.id))
    return pairs


def test_matching_checker_rejects_each_misreading():
    assert ch02.check_matching(own_match)
    wrong = {
        "a crowd found exactly: .*Crowd ground-truth segments are never matched": {"skip_crowd": False},
        "a box predicted as a disc: .*same category": {"same_category": False},
        "a box that spills onto void: .*leaves out the predicted pixels that are void": {"void_out": False},
        "IoU exactly 0.5: .*strictly above": {"strict": False},
        "twice its size: .*divides by the union": {"divide_by": "gt"},
        "half left void by the prediction: .*ground truth\\* leave the union": {"pred_void_out": True},
    }
    for hint, switches in wrong.items():
        with pytest.raises(ExerciseError, match=hint):
            ch02.check_matching(lambda gt, pred, s=switches: own_match(gt, pred, **s))


def test_matching_checker_refuses_the_package_matcher():
    from panopticlab import metrics

    with pytest.raises(ExerciseError, match="without metrics.match_segments"):
        ch02.check_matching(reference_match)

    def through_overlaps(gt, pred):
        m = metrics.match_overlaps(metrics.overlaps_of(gt, pred, "x"))
        return set(zip(m.gt.ids[m.matched_gt].tolist(), m.pred.ids[m.matched_pred].tolist()))

    with pytest.raises(ExerciseError, match="without metrics"):
        ch02.check_matching(through_overlaps)
    # the package's functions are back afterwards
    assert reference_match(*ch02.rq_case())
    with pytest.raises(ExerciseError, match="set of \\(gt_id, pred_id\\) pairs"):
        ch02.check_matching(lambda gt, pred: 3)


def test_rq_checker_names_more_misreadings():
    with pytest.raises(ExerciseError, match="counts the sky too"):
        ch02.check_rq_by_hand(4, 2, 2, 4 / 6)
    with pytest.raises(ExerciseError, match="in percent"):
        ch02.check_rq_by_hand(3, 2, 2, 60.0)
    with pytest.raises(ExerciseError, match="FP and FN each count half"):
        ch02.check_rq_by_hand(3, 2, 2, 3 / 7)
    with pytest.raises(ExerciseError, match="whole numbers"):
        ch02.check_rq_by_hand(3, 2.5, 2, 0.6)


def test_pq_checker_names_more_misreadings():
    def right(tp, fp, fn, s):
        sq = s / tp if tp else 0.0
        rq = tp / (tp + fp / 2 + fn / 2)
        return sq * rq, sq, rq

    with pytest.raises(ExerciseError, match="wrong order"):
        ch02.check_pq_from_counts(lambda *a: tuple(reversed(right(*a))))
    with pytest.raises(ExerciseError, match="counts FP and FN whole"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: ((s / tp if tp else 0) * tp / (tp + fp + fn),
                                                         s / tp if tp else 0, tp / (tp + fp + fn)))
    with pytest.raises(ExerciseError, match="SQ is the mean IoU"):
        ch02.check_pq_from_counts(lambda tp, fp, fn, s: (s / (tp + fp / 2 + fn / 2), s / (tp + fp / 2 + fn / 2),
                                                         tp / (tp + fp / 2 + fn / 2)))
