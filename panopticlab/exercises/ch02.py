"""Checkers for chapter 2: segment matching and Panoptic Quality."""
from __future__ import annotations

import itertools
import math

import numpy as np

from .. import metrics
from ..data import PanopticSegmentation
from ..data.synthetic import render_scene, second_annotation
from ..metrics import Outcome, match_segments
from ..metrics import matching as matching_module
from ..metrics import overlap as overlap_module
from .checking import ExerciseError, answered, call, checker, passed
from .forbidden import forbidden

DISC, BOX, SKY = 1, 2, 11


def rq_case() -> tuple[PanopticSegmentation, PanopticSegmentation]:
    """The drawn case of exercise 2.1: boxes on a sky, ground truth and prediction (48 x 96).

    Ground truth: five boxes, a void strip along the bottom. Prediction: three boxes
    found well, one found but shifted too far, one missed, one box that is not there,
    and one box drawn on the void strip.
    """
    gt = np.ones((48, 96), np.int32)            # sky, segment 1
    gt[44:] = 0                                 # void strip
    pred = np.ones((48, 96), np.int32)
    boxes = [(4, 4), (4, 24), (4, 44), (4, 64), (24, 4)]   # (top, left) of 12 x 12 boxes
    for k, (y, x) in enumerate(boxes, start=2):
        gt[y:y + 12, x:x + 12] = k
    for k, (y, x) in enumerate(boxes[:3], start=2):          # three found, one pixel off
        pred[y + 1:y + 13, x:x + 12] = k
    pred[4 + 6:4 + 18, 64 + 6:64 + 18] = 5                 # the fourth, shifted by half its size
    pred[24:36, 40:52] = 8                                 # a box that is not there
    pred[41:48, 70:82] = 9                                 # a box mostly on the void strip
    categories_of = lambda ids: {int(i): (SKY if i == 1 else BOX) for i in np.unique(ids) if i}
    return (PanopticSegmentation.from_id_map(gt, categories_of(gt)),
            PanopticSegmentation.from_id_map(pred, categories_of(pred)))


@checker
def check_rq_by_hand(tp: int, fp: int, fn: int, rq: float) -> bool:
    """Exercise 2.1: the counts and RQ of the category *box* in :func:`rq_case`."""
    answered("2.1", tp, fp, fn, rq)
    gt, pred = rq_case()
    matching = match_segments(gt, pred)
    boxes_gt = matching.gt.category_ids == BOX
    boxes_pred = matching.pred.category_ids == BOX
    want_tp = int(np.sum(matching.gt_outcome[boxes_gt] == Outcome.TP))
    want_fn = int(np.sum(matching.gt_outcome[boxes_gt] == Outcome.FN))
    want_fp = int(np.sum(matching.pred_outcome[boxes_pred] == Outcome.FP))
    ignored = int(np.sum(matching.pred_outcome[boxes_pred] == Outcome.IGNORED))
    sky_tp = int(np.sum(matching.gt_outcome[~boxes_gt] == Outcome.TP))
    if any(not float(v).is_integer() for v in (tp, fp, fn)):
        raise ExerciseError("Exercise 2.1: TP, FP and FN are counts of segments: whole numbers.")
    if sky_tp and tp == want_tp + sky_tp and (fp, fn) == (want_fp, want_fn):
        raise ExerciseError(f"Exercise 2.1: TP = {tp} counts the sky too; the exercise asks for the category "
                            f"*box* alone (PQ, and so RQ, is computed per category).")
    if tp > want_tp:
        raise ExerciseError(f"Exercise 2.1: TP = {tp} is too many. A match needs IoU > 0.5; a box shifted by "
                            f"half its size overlaps its ground truth with IoU well below 0.5.")
    if tp < want_tp:
        raise ExerciseError(f"Exercise 2.1: TP = {tp} is too few. A box one pixel off its ground truth still "
                            f"overlaps it with IoU far above 0.5, and that is a match.")
    if fp == want_fp + ignored:
        raise ExerciseError("Exercise 2.1: one of your false positives lies mostly on void: an unmatched "
                            "prediction with more than half of its pixels on void (or crowd) is ignored.")
    if (fp, fn) != (want_fp, want_fn):
        raise ExerciseError(f"Exercise 2.1: FP = {fp}, FN = {fn} is not right. Every unmatched prediction is a "
                            f"FP (unless ignored), every unmatched ground-truth segment a FN - a shifted box "
                            f"counts twice.")
    want_rq = want_tp / (want_tp + 0.5 * want_fp + 0.5 * want_fn)
    if math.isclose(rq, 100 * want_rq, rel_tol=1e-6):
        raise ExerciseError("Exercise 2.1: that is RQ in percent; give it as a fraction in [0, 1].")
    if math.isclose(rq, want_tp / (want_tp + want_fp + want_fn), rel_tol=1e-6):
        raise ExerciseError("Exercise 2.1: the counts are right, but FP and FN each count half in RQ = "
                            "TP / (TP + FP/2 + FN/2).")
    if not math.isclose(rq, want_rq, rel_tol=1e-6):
        raise ExerciseError(f"Exercise 2.1: the counts are right but RQ = {rq:.4f}; RQ = TP / (TP + FP/2 + FN/2).")
    return passed("2.1", f"TP={tp}, FP={fp}, FN={fn}, RQ = {want_rq:.3f}.")


def _scene_pairs(num: int = 4, size: int = 64):
    for index in range(num):
        sample = render_scene(index, size=size, seed=202, split="val")
        yield index, sample.panoptic, second_annotation(index, size=size, seed=202, split="val")


def _case(gt: np.ndarray, pred: np.ndarray, gt_categories: dict, pred_categories: dict, crowd=()):
    return (PanopticSegmentation.from_id_map(gt, gt_categories, iscrowd={i: 1 for i in crowd}),
            PanopticSegmentation.from_id_map(pred, pred_categories))


def _rule_cases():
    """(name, gt, pred, hint if a wrong match is returned, hint if a match is missed).

    Each case is built so that one misreading of the rules matches a pair it must not,
    or misses one it must find. The sky is segment 2 everywhere.
    """
    def board():
        return np.full((8, 8), 2, np.int32)

    cats = {1: BOX, 2: SKY}
    # same pixels, other category: an IoU of 1 that is still no match
    gt = board()
    gt[:, :4] = 1
    yield ("a box predicted as a disc", *_case(gt, gt.copy(), cats, {1: DISC, 2: SKY}),
           "Only segments of the same category can match.", "")
    # IoU exactly 0.5: a 4 x 4 box against the 2 x 4 upper half of it
    gt, pred = board(), board()
    gt[2:6, 2:6] = 1
    pred[2:4, 2:6] = 1
    yield ("a box with IoU exactly 0.5", *_case(gt, pred, cats, cats),
           "A match needs IoU strictly above 0.5: 8 / 16 = 0.5 is not one.", "")
    # a prediction twice the size of its object: it covers all of it, but IoU = 16 / 32
    gt, pred = board(), board()
    gt[2:6, 0:4] = 1
    pred[2:6, 0:8] = 1
    yield ("a box predicted twice its size", *_case(gt, pred, cats, cats),
           ("IoU divides by the union, not by the ground truth's area: covering all of an object "
           "with a prediction twice its size gives 16 / 32 = 0.5, no match."), "")
    # a crowd region found exactly: it is still never matched
    gt = board()
    gt[0:4, 0:4] = 1
    yield ("a crowd found exactly", *_case(gt, gt.copy(), cats, cats, crowd=(1,)),
           "Crowd ground-truth segments are never matched (iscrowd=1): skip them.", "")
    # a prediction spilling onto ground-truth void: those pixels leave the union
    gt, pred = board(), board()
    gt[0:4, 0:4] = 1
    gt[4:8, 0:4] = 0
    pred[0:8, 0:4] = 1
    yield ("a box that spills onto void", *_case(gt, pred, cats, cats), "",
           ("The union leaves out the predicted pixels that are void in the ground truth: here "
           "16 / (16 + 32 - 16 - 16) = 1."))
    # the prediction leaves half of the box void: only *ground-truth* void leaves the union
    gt, pred = board(), board()
    gt[0:4, 0:4] = 1
    pred[0:2, 0:4] = 1
    pred[2:4, 0:4] = 0
    yield ("a box half left void by the prediction", *_case(gt, pred, cats, cats),
           ("Only pixels that are void in the *ground truth* leave the union; the prediction's own void "
           "pixels do not: 8 / 16 = 0.5, no match."), "")


FORBIDDEN_MATCHERS = {
    "metrics.match_segments": metrics.match_segments,
    "metrics.match_overlaps": metrics.match_overlaps,
    "metrics.bipartite_matching": metrics.bipartite_matching,
    "metrics.matching.candidate_pairs": matching_module.candidate_pairs,
    "metrics.overlaps_of": overlap_module.overlaps_of,
    "metrics.compute_overlaps": overlap_module.compute_overlaps,
}


def _matches(fn, gt, pred) -> tuple[set, set]:
    """The evaluator's ``(gt_id, pred_id)`` matches of one image, and the ones ``fn`` returns.

    ``fn`` runs with the package's matching functions made unavailable: the exercise is to
    write the matching.
    """
    matching = match_segments(gt, pred)
    expected = set(zip(matching.gt.ids[matching.matched_gt].tolist(), matching.pred.ids[matching.matched_pred].tolist()))
    with forbidden("2.2", functions=FORBIDDEN_MATCHERS):
        got = call("2.2", fn, gt, pred)
    try:
        return expected, {(int(g), int(p)) for g, p in got}
    except (TypeError, ValueError):
        raise ExerciseError(f"Exercise 2.2: return a set of (gt_id, pred_id) pairs, got {got!r:.80}.") from None


@checker
def check_matching(fn) -> bool:
    """Exercise 2.2: ``fn(gt, pred)`` -> set of matched ``(gt_id, pred_id)`` pairs at IoU > 0.5.

    Drawn cases first, one per rule a reader can misread, then scenes scored by both annotators.
    """
    for name, gt, pred, extra_hint, missing_hint in _rule_cases():
        expected, got = _matches(fn, gt, pred)
        if got != expected:
            missing, extra = sorted(expected - got), sorted(got - expected)
            hint = extra_hint if extra else missing_hint
            raise ExerciseError(f"Exercise 2.2: on {name}: missing matches {missing}, wrong matches {extra}."
                                + (f" {hint}" if hint else ""))
    for index, gt, pred in _scene_pairs():
        expected, got = _matches(fn, gt, pred)
        if got == expected:
            continue
        missing, extra = sorted(expected - got), sorted(got - expected)
        hint = ""
        if extra:
            g, p = extra[0]
            if gt.segment(g).category_id != pred.segment(p).category_id:
                hint = " Only segments of the same category can match."
            elif gt.segment(g).iscrowd:
                hint = " Crowd ground-truth segments are never matched."
            else:
                hint = " Is the IoU strictly above 0.5?"
        elif missing:
            hint = (" Remember that the union leaves out the predicted pixels that are void in the ground "
                    "truth: union = |gt| + |pred| - |gt & pred| - |pred & void|.")
        raise ExerciseError(f"Exercise 2.2: scene {index}: missing matches {missing[:5]}, wrong matches "
                            f"{extra[:5]}.{hint}")
    return passed("2.2", "Your matching equals the evaluator's on every scene.")


def _same(values, others) -> bool:
    return all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(values, others))


@checker
def check_pq_from_counts(fn) -> bool:
    """Exercise 2.3: ``fn(tp, fp, fn, iou_sum)`` -> ``(pq, sq, rq)`` of one category."""
    cases = [(4, 1, 2, 3.2), (10, 0, 0, 9.1), (0, 3, 2, 0.0), (7, 5, 1, 4.9)]
    for tp, fp, fn_, iou_sum in cases:
        sq = iou_sum / tp if tp else 0.0
        rq = tp / (tp + fp / 2 + fn_ / 2)
        want = (sq * rq, sq, rq)
        try:
            got = tuple(float(v) for v in call("2.3", fn, tp, fp, fn_, iou_sum))
        except ZeroDivisionError:
            raise ExerciseError("Exercise 2.3: division by zero with TP = 0: define SQ = 0 when there is no "
                                "match.") from None
        if len(got) == 3 and any(math.isnan(v) for v in got):
            raise ExerciseError(f"Exercise 2.3: TP={tp}, FP={fp}, FN={fn_}: got {got}. With no match SQ is "
                                f"undefined; report it, and so PQ, as 0 (panopticapi's convention).")
        if len(got) != 3:
            raise ExerciseError(f"Exercise 2.3: return three numbers (pq, sq, rq), got {len(got)}.")
        if not _same(got, want) and any(_same(got, order) for order in itertools.permutations(want)):
            raise ExerciseError(f"Exercise 2.3: the right numbers in the wrong order: return (pq, sq, rq), got "
                                f"{got} for (PQ, SQ, RQ) = {tuple(round(v, 4) for v in want)}.")
        if tp and fp + fn_ and math.isclose(got[2], tp / (tp + fp + fn_), abs_tol=1e-9):
            raise ExerciseError(f"Exercise 2.3: TP={tp}, FP={fp}, FN={fn_}: RQ = {got[2]:.4f} counts FP and FN "
                                f"whole; each counts half: RQ = TP / (TP + FP/2 + FN/2).")
        if tp and fp + fn_ and math.isclose(got[1], iou_sum / (tp + fp / 2 + fn_ / 2), abs_tol=1e-9):
            raise ExerciseError(f"Exercise 2.3: SQ = {got[1]:.4f} divides by the whole denominator; SQ is the mean "
                                f"IoU of the matches, sum of IoUs / TP.")
        if not all(math.isclose(a, b, abs_tol=1e-9) for a, b in zip(got, want)):
            raise ExerciseError(f"Exercise 2.3: TP={tp}, FP={fp}, FN={fn_}, sum of IoUs {iou_sum}: expected "
                                f"(PQ, SQ, RQ) = {tuple(round(v, 4) for v in want)}, got {got}.")
    return passed("2.3", "PQ = SQ x RQ = (sum of IoUs / TP) x TP / (TP + FP/2 + FN/2).")
