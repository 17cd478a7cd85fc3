"""Segment matching for Panoptic Quality, as data a chapter can draw.

A ground-truth and a predicted segment of the same category *match* when their IoU is
above 0.5 (the union leaves out pixels that are void in the ground truth). At that
threshold the matching is unique without any assignment solver: two predictions
cannot both cover more than half of one ground-truth segment, because predicted
segments do not overlap, and symmetrically. The argument breaks for thresholds below
0.5, where one segment can have several partners above the threshold; there
:func:`match_overlaps` resolves conflicts greedily by decreasing IoU, and
:func:`bipartite_matching` gives the maximum-weight assignment to compare with.

Every segment gets an :class:`Outcome`:

* ground truth: ``TP`` (matched), ``FN`` (unmatched), ``IGNORED`` (crowd: never a false negative);
* prediction: ``TP``, ``FP`` (unmatched), ``IGNORED`` (unmatched, but more than half of it
  lies on ground-truth void or on the crowd region of its own category).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ..data.panoptic import PanopticSegmentation
from .overlap import OverlapTable, SegmentTable, overlaps_of

MATCH_IOU = 0.5  # COCO's threshold; the one where matching is unique
IGNORE_FRACTION = 0.5  # an unmatched prediction more than this much on void/crowd is not a FP


class Outcome(IntEnum):
    """What happened to a segment in the matching."""

    TP = 0
    FP = 1
    FN = 2
    IGNORED = 3


@dataclass(frozen=True)
class ImageMatching:
    """The matching of one image: candidate pairs, matches and every segment's outcome.

    Indices refer to rows of ``overlaps.gt`` / ``overlaps.pred`` (listing order), not to ids.

    Attributes:
        overlaps: the joint histogram this matching was computed from.
        iou_threshold: pairs match when their IoU is strictly above it.
        candidate_gt, candidate_pred: (k,) int64 every pair of the same category, with a
            non-crowd ground truth, that shares at least one pixel; sorted by row, then column.
        candidate_iou: (k,) float64 their IoU.
        matched_gt, matched_pred: (m,) int64 the matched pairs.
        matched_iou: (m,) float64 their IoU.
        gt_outcome: (n_gt,) int8 :class:`Outcome` of each ground-truth segment.
        pred_outcome: (n_pred,) int8 :class:`Outcome` of each predicted segment.
        pred_on_crowd: (n_pred,) int64 pixels of each prediction on the crowd region of its category.
    """

    overlaps: OverlapTable
    iou_threshold: float
    candidate_gt: np.ndarray
    candidate_pred: np.ndarray
    candidate_iou: np.ndarray
    matched_gt: np.ndarray
    matched_pred: np.ndarray
    matched_iou: np.ndarray
    gt_outcome: np.ndarray
    pred_outcome: np.ndarray
    pred_on_crowd: np.ndarray

    @property
    def gt(self) -> SegmentTable:
        return self.overlaps.gt

    @property
    def pred(self) -> SegmentTable:
        return self.overlaps.pred

    def at_threshold(self, iou_threshold: float) -> "ImageMatching":
        """The same image matched at another IoU threshold (no pixel is read again)."""
        return match_overlaps(self.overlaps, iou_threshold)

    def counts(self) -> dict[str, int]:
        """Numbers of true positives, false positives, false negatives and ignored segments."""
        return {"tp": int(np.sum(self.gt_outcome == Outcome.TP)),
                "fp": int(np.sum(self.pred_outcome == Outcome.FP)),
                "fn": int(np.sum(self.gt_outcome == Outcome.FN)),
                "ignored_gt": int(np.sum(self.gt_outcome == Outcome.IGNORED)),
                "ignored_pred": int(np.sum(self.pred_outcome == Outcome.IGNORED))}

    def gt_iou(self) -> np.ndarray:
        """(n_gt,) float64 IoU of each ground-truth segment with its match, NaN when unmatched."""
        iou = np.full(len(self.gt), np.nan)
        iou[self.matched_gt] = self.matched_iou
        return iou

    def pred_iou(self) -> np.ndarray:
        """(n_pred,) float64 IoU of each predicted segment with its match, NaN when unmatched."""
        iou = np.full(len(self.pred), np.nan)
        iou[self.matched_pred] = self.matched_iou
        return iou

    def records(self) -> list[dict]:
        """One dict per segment: side, id, category, crowd flag, area, outcome name, IoU and partner id."""
        partner_of_gt = dict(zip(self.matched_gt.tolist(), self.pred.ids[self.matched_pred].tolist()))
        partner_of_pred = dict(zip(self.matched_pred.tolist(), self.gt.ids[self.matched_gt].tolist()))
        rows = []
        for side, table, area, outcome, iou, partner in (
                ("gt", self.gt, self.overlaps.gt_area, self.gt_outcome, self.gt_iou(), partner_of_gt),
                ("pred", self.pred, self.overlaps.pred_area, self.pred_outcome, self.pred_iou(), partner_of_pred)):
            for k in range(len(table)):
                rows.append({"side": side, "id": int(table.ids[k]), "category_id": int(table.category_ids[k]),
                             "iscrowd": bool(table.iscrowd[k]), "area": int(area[k]),
                             "outcome": Outcome(outcome[k]).name,
                             "iou": None if np.isnan(iou[k]) else float(iou[k]), "partner": partner.get(k)})
        return rows


def candidate_pairs(overlaps: OverlapTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs that could match: same category, non-crowd ground truth, at least one shared pixel.

    Returns:
        gt_index, pred_index: (k,) int64 row and column of each pair.
        iou: (k,) float64 its IoU (union without ground-truth void).
    """
    gt, pred = overlaps.gt, overlaps.pred
    # the overlapping pairs, not all n_gt x n_pred: images can hold thousands of segments
    eligible = ((gt.category_ids[overlaps.pair_gt] == pred.category_ids[overlaps.pair_pred])
                & ~gt.iscrowd[overlaps.pair_gt])
    gt_index, pred_index = overlaps.pair_gt[eligible], overlaps.pair_pred[eligible]
    intersection = overlaps.pair_pixels[eligible]
    union = (overlaps.gt_area[gt_index] + overlaps.pred_area[pred_index] - intersection
             - overlaps.pred_on_void[pred_index])
    return gt_index, pred_index, intersection / union


def _greedy_one_to_one(gt_index: np.ndarray, pred_index: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Positions of pairs kept by taking pairs in decreasing IoU while both sides are free."""
    order = np.lexsort((pred_index, gt_index, -iou))
    used_gt, used_pred, keep = set(), set(), []
    for k in order.tolist():
        g, p = int(gt_index[k]), int(pred_index[k])
        if g not in used_gt and p not in used_pred:
            used_gt.add(g)
            used_pred.add(p)
            keep.append(k)
    return np.sort(np.asarray(keep, dtype=np.int64))


def _check_threshold(iou_threshold: float) -> float:
    iou_threshold = float(iou_threshold)
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must lie in [0, 1), got {iou_threshold}")
    return iou_threshold


def match_overlaps(overlaps: OverlapTable, iou_threshold: float = MATCH_IOU) -> ImageMatching:
    """Match the segments of one image and give every segment its outcome.

    Args:
        overlaps: the image's joint histogram (:func:`~panopticlab.metrics.overlap.compute_overlaps`).
        iou_threshold: pairs match when IoU > threshold. At 0.5 and above the matching is
            unique; below 0.5 conflicts are resolved greedily by decreasing IoU.

    The false-positive exemption (more than half on void or crowd) keeps COCO's 0.5 at
    every threshold. As in panopticapi, the crowd region of a category is its last crowd
    segment in listing order (COCO has at most one per category and image).
    """
    iou_threshold = _check_threshold(iou_threshold)
    gt, pred = overlaps.gt, overlaps.pred
    cand_gt, cand_pred, cand_iou = candidate_pairs(overlaps)
    above = np.flatnonzero(cand_iou > iou_threshold)
    if iou_threshold < MATCH_IOU:
        above = above[_greedy_one_to_one(cand_gt[above], cand_pred[above], cand_iou[above])]
    matched_gt, matched_pred, matched_iou = cand_gt[above], cand_pred[above], cand_iou[above]

    gt_outcome = np.full(len(gt), Outcome.FN, dtype=np.int8)
    gt_outcome[gt.iscrowd] = Outcome.IGNORED
    gt_outcome[matched_gt] = Outcome.TP

    pred_on_crowd = np.zeros(len(pred), dtype=np.int64)
    crowd_row_of_category = {int(gt.category_ids[row]): row for row in np.flatnonzero(gt.iscrowd)}
    if crowd_row_of_category:
        pair_category = pred.category_ids[overlaps.pair_pred]
        for category_id, row in crowd_row_of_category.items():
            on_crowd = (overlaps.pair_gt == row) & (pair_category == category_id)
            pred_on_crowd[overlaps.pair_pred[on_crowd]] = overlaps.pair_pixels[on_crowd]
    # integer form of (void + crowd) / area > 0.5
    exempt = (overlaps.pred_on_void + pred_on_crowd) > IGNORE_FRACTION * overlaps.pred_area
    pred_outcome = np.where(exempt, Outcome.IGNORED, Outcome.FP).astype(np.int8)
    pred_outcome[matched_pred] = Outcome.TP
    return ImageMatching(overlaps, iou_threshold, cand_gt, cand_pred, cand_iou, matched_gt, matched_pred,
                         matched_iou, gt_outcome, pred_outcome, pred_on_crowd)


def match_segments(gt: PanopticSegmentation, pred: PanopticSegmentation, iou_threshold: float = MATCH_IOU,
                   source: str = "image") -> ImageMatching:
    """Match a ground truth and a prediction of one image (see :func:`match_overlaps`).

    Raises:
        PanopticFormatError: the two differ in size, or an id map and its segments disagree;
            the message starts with ``source``.
    """
    return match_overlaps(overlaps_of(gt, pred, source), iou_threshold)


def bipartite_matching(matching: ImageMatching | OverlapTable, iou_threshold: float = MATCH_IOU
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-weight bipartite matching (scipy's ``linear_sum_assignment``) of one image.

    Among the pairs of the same category with IoU > ``iou_threshold``, pick a one-to-one
    subset with the largest total IoU. For thresholds >= 0.5 this is exactly the unique
    matching of :func:`match_overlaps`; below, the two can differ.

    Returns:
        gt_index, pred_index: (m,) int64 matched rows and columns, sorted by ``gt_index``.
        iou: (m,) float64 their IoU.
    """
    iou_threshold = _check_threshold(iou_threshold)
    overlaps = matching.overlaps if isinstance(matching, ImageMatching) else matching
    cand_gt, cand_pred, cand_iou = candidate_pairs(overlaps)
    weight = np.zeros((len(overlaps.gt), len(overlaps.pred)))
    eligible = cand_iou > iou_threshold
    weight[cand_gt[eligible], cand_pred[eligible]] = cand_iou[eligible]
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize is slow to import

    rows, cols = linear_sum_assignment(weight, maximize=True)
    keep = weight[rows, cols] > 0
    rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
    return rows, cols, weight[rows, cols]
