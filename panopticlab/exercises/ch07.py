"""Checkers for chapter 7: telling one kind of mistake from another."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.panoptic import PanopticSegmentation
from ..metrics.errors import error_analysis
from ..metrics.matching import match_segments
from .checking import ExerciseError, call, checker, either, passed
from .forbidden import forbidden

__all__ = ["check_find_merges", "merge_case", "merge_case_more"]

DISC = 1  # one thing category: the exercise is about the pixels, not the classes


def merge_case() -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth and predicted (12, 16) id maps of one thing category, 0 = void.

    Prediction 7 covers all of objects 1 and 2 (a merge); prediction 8 covers exactly half
    of object 3 and all of object 4 (not a merge: half is not more than half); prediction 9
    lies inside object 5 and covers most of it, with a small part of object 6 (one object:
    no merge); prediction 10 covers objects 3's other half and nothing else.
    """
    gt = np.zeros((12, 16), np.int64)
    gt[0:4, 0:4], gt[0:4, 4:8] = 1, 2
    gt[0:4, 9:13], gt[5:8, 9:13] = 3, 4
    gt[8:12, 0:6], gt[8:12, 6:10] = 5, 6
    pred = np.zeros_like(gt)
    pred[0:4, 0:8] = 7
    pred[0:2, 9:13], pred[5:8, 9:13] = 8, 8
    pred[2:4, 9:13] = 10
    pred[8:12, 0:7] = 9
    return gt, pred


def _segmentation(id_map: np.ndarray) -> PanopticSegmentation:
    return PanopticSegmentation.from_id_map(id_map, {int(i): DISC for i in np.unique(id_map) if i})


def merge_case_more() -> tuple[np.ndarray, np.ndarray]:
    """A second pair of (12, 16) id maps, 0 = void, against the other misreadings.

    Prediction 7 covers all of objects 1, 2 and 3 (a merge of three); objects 4 and 5 are
    not predicted at all (their pixels are 0 in the prediction: no merge); prediction 8
    covers all of object 6 and 9 of the 16 pixels of object 7 (a merge, though most of the
    prediction's pixels lie in object 6).
    """
    gt = np.zeros((12, 16), np.int64)
    gt[0:4, 0:4], gt[0:4, 4:8], gt[0:4, 8:12] = 1, 2, 3
    gt[6:9, 0:3], gt[6:9, 4:7] = 4, 5
    gt[6:10, 8:12], gt[6:10, 12:16] = 6, 7
    pred = np.zeros_like(gt)
    pred[0:4, 0:12] = 7
    pred[6:10, 8:14] = 8
    pred[6, 14] = 8
    return gt, pred


def _merges_variant(gt, pred, *, strict=True, by_pred_area=False, iou=False, minimum=2, void_pred=False):
    """The merges, or those of a typical misreading of the rule."""
    found = []
    for p in np.unique(pred if void_pred else pred[pred > 0]):
        inside = []
        for g in np.unique(gt[gt > 0]):
            shared = np.sum((gt == g) & (pred == p))
            if iou:
                area = np.sum((gt == g) | (pred == p))
            else:
                area = np.sum(pred == p) if by_pred_area else np.sum(gt == g)
            if (shared > area / 2) if strict else (shared >= area / 2):
                inside.append(int(g))
        if len(inside) >= minimum:
            found.append((int(p), tuple(inside)))
    return found


MERGE_MISTAKES = {
    "more than half is strict: an object with exactly half of its pixels in the prediction is not in it "
    "(use >, not >=)": dict(strict=False),
    "the share is of the ground-truth segment's pixels (how much of each object lies in the prediction), "
    "not of the prediction's": dict(by_pred_area=True),
    "the share is of the object's own pixels, not the IoU: a prediction over two objects never has an IoU "
    "above 0.5 with either": dict(iou=True),
    "a merge needs two or more objects in one prediction; a prediction over one object is no merge": dict(minimum=1),
    "two objects are enough for a merge: 'two or more' is >= 2, not > 2": dict(minimum=3),
    "0 in the prediction is void, no predicted segment: pixels nobody predicted merge nothing": dict(void_pred=True),
}

#: 7.1 asks for the merges the package's error analysis finds: its answers run without these.
FORBIDDEN_MERGES = {
    "metrics.error_analysis": error_analysis,
    "ch07._merges_variant": _merges_variant,
}


def _as_merges(got, exercise: str) -> list[tuple[int, tuple[int, ...]]]:
    try:
        return sorted((int(p), tuple(sorted(int(g) for g in gs))) for p, gs in got)
    except (TypeError, ValueError):
        raise ExerciseError(f"Exercise {exercise}: return a list of (predicted id, (ground-truth ids, ...)) pairs, "
                            f"got {got!r}.") from None


@checker
def check_find_merges(fn: Callable) -> bool:
    """Exercise 7.1: ``fn(gt, pred)`` -> ``[(predicted id, (ground-truth ids, ...)), ...]``.

    ``gt`` and ``pred`` are (H, W) integer id maps of one thing category (0 = void). A
    predicted segment merges the ground-truth segments of which it holds more than half of
    the pixels, when there are two or more of them. Compared with
    :func:`panopticlab.metrics.error_analysis` on :func:`merge_case_more` and
    :func:`merge_case`, order ignored; the answer runs with :data:`FORBIDDEN_MERGES`
    made unavailable.

    Rejects:
        - an object with exactly half of its pixels in the prediction counted (``>=``)
        - the share taken of the prediction's pixels instead of the object's
        - the IoU compared with 0.5 instead of the object's share
        - a prediction over a single object reported as a merge
        - "two or more" read as more than two
        - the unpredicted pixels (0 in the prediction) treated as a predicted segment
        - anything but a list of ``(predicted id, (ground-truth ids, ...))`` pairs
        - an answer that calls ``error_analysis``
    """
    # the second case first: there each misreading but two (>=, one object) gives its own answer
    for name, (gt, pred) in (("the case ch07.merge_case_more()", merge_case_more()),
                             ("the case ch07.merge_case()", merge_case())):
        expected = sorted(error_analysis(match_segments(_segmentation(gt), _segmentation(pred))).merges)
        with forbidden("7.1", functions=FORBIDDEN_MERGES):
            got = _as_merges(call("7.1", fn, gt.copy(), pred.copy()), "7.1")
        if got == expected:
            continue
        named = [m for m, variant in MERGE_MISTAKES.items() if got == sorted(_merges_variant(gt, pred, **variant))]
        where = f"Exercise 7.1: on {name}: expected {expected}, got {got}"
        raise ExerciseError(f"{where}: {either(named)}." if named else f"{where}.")
    return passed("7.1", "More than half of each of two or more objects in one prediction.")
