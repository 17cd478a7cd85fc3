"""What kind of mistake each unmatched segment is: misses, false alarms, merges and splits.

Read from an :class:`~.matching.ImageMatching` (no pixel is read again). Among segments of
the same category, with crowd ground truth left out:

* a **false negative** is a ground-truth segment without a match, a **false positive**
  a predicted segment without one (ignored predictions, mostly on void or crowd, are
  neither);
* a **merge** is a predicted segment that holds more than ``share`` of the pixels of each
  of two or more ground-truth segments: one prediction for several objects (their
  false negatives, and often its false positive, are this one mistake);
* a **split** is a ground-truth segment of which two or more predicted segments each lie
  more than ``share`` inside it: one object cut into several predictions.

With ``share`` = 0.5 a ground-truth segment is merged into at most one prediction and a
prediction belongs to at most one split, so the lists do not double count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .matching import ImageMatching, Outcome

__all__ = ["ImageErrors", "error_analysis"]


@dataclass(frozen=True)
class ImageErrors:
    """One image's mistakes, by segment id.

    Attributes:
        false_negatives: (a,) int64 ids of unmatched ground-truth segments.
        false_positives: (b,) int64 ids of unmatched predicted segments.
        merges: ``(predicted id, (ground-truth ids, ...))`` per merging prediction.
        splits: ``(ground-truth id, (predicted ids, ...))`` per split object.
    """

    false_negatives: np.ndarray
    false_positives: np.ndarray
    merges: list[tuple[int, tuple[int, ...]]]
    splits: list[tuple[int, tuple[int, ...]]]

    def counts(self) -> dict[str, int]:
        return {"fn": len(self.false_negatives), "fp": len(self.false_positives), "merges": len(self.merges),
                "splits": len(self.splits)}


def error_analysis(matching: ImageMatching, share: float = 0.5) -> ImageErrors:
    """Classify the unmatched segments of one image (see the module docstring).

    Args:
        matching: from :func:`~.matching.match_segments` or :meth:`PQAccumulator.add_overlaps`.
        share: the part of a segment that must lie in the other one (0.5: more than half).

    Raises:
        ValueError: ``share`` is not in [0.5, 1) (below one half a segment could count
            in two merges).
    """
    if not 0.5 <= share < 1:
        raise ValueError(f"share must be in [0.5, 1), got {share}")
    overlaps = matching.overlaps
    gt, pred = overlaps.gt, overlaps.pred
    rows, cols, pixels = overlaps.pair_gt, overlaps.pair_pred, overlaps.pair_pixels
    same = (gt.category_ids[rows] == pred.category_ids[cols]) & ~gt.iscrowd[rows]
    rows, cols, pixels = rows[same], cols[same], pixels[same]
    gt_inside_pred = pixels > share * overlaps.gt_area[rows]  # most of the object lies in that prediction
    pred_inside_gt = pixels > share * overlaps.pred_area[cols]  # most of the prediction lies in that object
    merges = _groups(cols[gt_inside_pred], rows[gt_inside_pred], pred.ids, gt.ids)
    splits = _groups(rows[pred_inside_gt], cols[pred_inside_gt], gt.ids, pred.ids)
    return ImageErrors(false_negatives=gt.ids[matching.gt_outcome == Outcome.FN],
                       false_positives=pred.ids[matching.pred_outcome == Outcome.FP], merges=merges, splits=splits)


def _groups(keys: np.ndarray, members: np.ndarray, key_ids: np.ndarray, member_ids: np.ndarray):
    """``(key id, (member ids...))`` for every key with two or more members, keys in order."""
    groups = []
    for key in np.unique(keys):
        inside = np.sort(member_ids[members[keys == key]])
        if len(inside) >= 2:
            groups.append((int(key_ids[key]), tuple(int(i) for i in inside)))
    return groups
