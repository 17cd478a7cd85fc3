"""Checkers for chapter 7: telling one kind of mistake from another."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.panoptic import PanopticSegmentation
from ..metrics.errors import error_analysis
from ..metrics.matching import match_segments
from .checking import ExerciseError, call, passed

__all__ = ["check_find_merges", "merge_case"]

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


def _merges_variant(gt, pred, *, strict=True, by_pred_area=False, minimum=2):
    found = []
    for p in np.unique(pred[pred > 0]):
        inside = []
        for g in np.unique(gt[gt > 0]):
            shared = np.sum((gt == g) & (pred == p))
            area = np.sum(pred == p) if by_pred_area else np.sum(gt == g)
            if (shared > area / 2) if strict else (shared >= area / 2):
                inside.append(int(g))
        if len(inside) >= minimum:
            found.append((int(p), tuple(inside)))
    return found


def _as_merges(got, exercise: str) -> list[tuple[int, tuple[int, ...]]]:
    try:
        return sorted((int(p), tuple(sorted(int(g) for g in gs))) for p, gs in got)
    except (TypeError, ValueError):
        raise ExerciseError(f"Exercise {exercise}: return a list of (predicted id, (ground-truth ids, ...)) pairs, "
                            f"got {got!r}.") from None


def check_find_merges(fn: Callable) -> bool:
    """Exercise 7.1: ``fn(gt, pred)`` -> ``[(predicted id, (ground-truth ids, ...)), ...]``.

    ``gt`` and ``pred`` are (H, W) integer id maps of one thing category (0 = void). A
    predicted segment merges the ground-truth segments of which it holds more than half of
    the pixels, when there are two or more of them. Compared with
    :func:`panopticlab.metrics.error_analysis` on :func:`merge_case`, order ignored.
    """
    gt, pred = merge_case()
    expected = error_analysis(match_segments(_segmentation(gt), _segmentation(pred))).merges
    got = _as_merges(call("7.1", fn, gt.copy(), pred.copy()), "7.1")
    if got == sorted(expected):
        return passed("7.1", f"prediction {expected[0][0]} merges objects {expected[0][1]}; the others are not merges.")
    mistakes = {
        "more than half is strict: prediction 8 holds exactly half of object 3 (use >, not >=)":
            _merges_variant(gt, pred, strict=False),
        "the share is of the ground-truth segment's pixels (how much of each object lies in the prediction), "
        "not of the prediction's": _merges_variant(gt, pred, by_pred_area=True),
        "a merge needs two or more objects in one prediction; a prediction over one object is no merge":
            _merges_variant(gt, pred, minimum=1),
    }
    for mistake, wrong in mistakes.items():
        if got == sorted(wrong):
            raise ExerciseError(f"Exercise 7.1: expected {sorted(expected)}, got {got}: {mistake}.")
    raise ExerciseError(f"Exercise 7.1: expected {sorted(expected)}, got {got}.")
