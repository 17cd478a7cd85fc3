"""Panoptic Quality, accumulated image by image.

Per category c, over the whole dataset (Kirillov et al., Panoptic Segmentation, 2019):

    SQ_c = (sum of the IoUs of the matches) / TP_c
    RQ_c = TP_c / (TP_c + FP_c / 2 + FN_c / 2)
    PQ_c = SQ_c * RQ_c

Categories with no TP, FP or FN are left out of the averages over All, Things and
Stuff. :class:`PQAccumulator` keeps only per-category counts (constant memory), so it
streams over a dataset and merges across worker processes. From the same pass it also
keeps:

* a breakdown by object size, with COCO's area ranges (:data:`SIZE_RANGES`, the
  default) or any other contiguous ones, such as the paper's split of the objects into
  the smallest 25 %, the middle 50 % and the largest 25 % (:func:`quantile_size_ranges`): for a
  range, ground-truth segments outside it are ignored together with the predictions
  matched to them, and an unmatched prediction is a false positive of the range its own
  area falls in (COCO detection's rule for area ranges);
* PQ-dagger (Porzi et al., Seamless Scene Segmentation, 2019): things scored as in PQ;
  a stuff class scored by the sum of the IoUs of all its overlapping (ground truth,
  prediction) pairs, without the 0.5 threshold, over its number of ground-truth segments.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..data.categories import CategorySet
from ..data.errors import PanopticFormatError
from ..data.panoptic import PanopticSegmentation
from .matching import MATCH_IOU, ImageMatching, Outcome, match_overlaps
from .overlap import OverlapTable, SegmentTable, compute_overlaps, overlaps_of

# COCO's object sizes by area in pixels: [low, high)
SIZE_RANGES = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, math.inf)}
GROUPS = (("All", None), ("Things", True), ("Stuff", False))


def quantile_size_ranges(areas, quantiles=(0.25, 0.75), names=("small", "medium", "large")) -> dict:
    """Size ranges that split the given object areas at their quantiles.

    The panoptic segmentation paper's human-consistency study calls the smallest 25 % of
    the objects small, the middle 50 % medium and the largest 25 % large; with COCO's
    fixed 32^2 / 96^2 thresholds small images leave the large range empty.

    Args:
        areas: (N,) areas in pixels of the objects to split (e.g. the ground-truth things).
        quantiles: increasing fractions in (0, 1), one per boundary.
        names: one name per range, ``len(quantiles) + 1`` of them.

    Returns:
        ``{name: (low, high)}``, contiguous ``[low, high)`` ranges from 0 to infinity, in the
        form of :data:`SIZE_RANGES`. A boundary is the area quantile rounded up to a whole
        pixel, so an object of exactly that area falls in the upper range.
    """
    areas = np.asarray(areas, dtype=np.float64).ravel()
    quantiles = [float(q) for q in quantiles]
    if len(areas) == 0:
        raise ValueError("quantile_size_ranges needs at least one area")
    if len(names) != len(quantiles) + 1:
        raise ValueError(f"{len(quantiles)} quantiles make {len(quantiles) + 1} ranges, got {len(names)} names")
    if not quantiles or not all(a < b for a, b in itertools.pairwise([0.0, *quantiles, 1.0])):
        raise ValueError(f"quantiles must increase strictly inside (0, 1), got {quantiles}")
    edges = [0.0, *(float(np.ceil(np.quantile(areas, q))) for q in quantiles), math.inf]
    if any(a >= b for a, b in itertools.pairwise(edges)):
        raise ValueError(f"the areas give empty ranges at these quantiles (boundaries {edges[1:-1]}); "
                         f"too few distinct areas")
    return {name: (low, high) for name, low, high in zip(names, edges, edges[1:])}


def _check_size_ranges(size_ranges: dict) -> dict:
    ranges = list(size_ranges.values())
    if not ranges or ranges[0][0] != 0 or ranges[-1][1] != math.inf or any(
            a[1] != b[0] or a[0] >= a[1] for a, b in zip(ranges, ranges[1:] + [(math.inf, math.inf)])):
        raise ValueError(f"size_ranges must be contiguous [low, high) ranges from 0 to infinity, got {size_ranges}")
    return dict(size_ranges)


@dataclass
class PQCounts:
    """Per-category sums that PQ is computed from; arrays of shape (..., C), C categories.

    Attributes:
        tp, fp, fn: int64 numbers of true positives, false positives, false negatives.
        iou: float64 sum of the IoUs of the true positives.
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou: np.ndarray

    @classmethod
    def zeros(cls, shape) -> "PQCounts":
        return cls(np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64),
                   np.zeros(shape, np.float64))

    def __iadd__(self, other: "PQCounts") -> "PQCounts":
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou += other.iou
        return self

    def scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-category ``pq, sq, rq`` (float64, 0 where undefined) and ``present`` (bool)."""
        denominator = self.tp + 0.5 * self.fp + 0.5 * self.fn
        present = (self.tp + self.fp + self.fn) > 0
        safe = np.where(present, denominator, 1.0)
        pq = np.where(present, self.iou / safe, 0.0)
        sq = np.where(self.tp > 0, self.iou / np.maximum(self.tp, 1), 0.0)
        rq = np.where(present, self.tp / safe, 0.0)
        return pq, sq, rq, present


def _mean(values: np.ndarray, keep: np.ndarray) -> float:
    """Mean over ``keep``; NaN when nothing is kept (e.g. Stuff in a dataset without stuff)."""
    return float(values[keep].sum() / keep.sum()) if keep.any() else math.nan


class PQAccumulator:
    """Streaming Panoptic Quality over a dataset.

    ``update`` one image at a time (or ``add`` a ready :class:`ImageMatching`), ``merge``
    accumulators of other workers, then read :meth:`results`.

    Args:
        categories: the dataset's categories; segments of any other category are an error.
        iou_threshold: matching threshold (COCO: 0.5); see :func:`match_overlaps` for
            thresholds below 0.5.
        size_ranges: ``{name: (low, high)}`` area ranges of the size breakdown, contiguous
            from 0 to infinity; COCO's :data:`SIZE_RANGES` by default.
    """

    def __init__(self, categories: CategorySet, iou_threshold: float = MATCH_IOU, size_ranges: dict | None = None):
        self.categories = categories
        self.iou_threshold = float(iou_threshold)
        self.size_ranges = _check_size_ranges(SIZE_RANGES if size_ranges is None else size_ranges)
        num = len(categories)
        self.counts = PQCounts.zeros(num)
        self.size_counts = PQCounts.zeros((len(self.size_ranges), num))
        self.dagger_iou = np.zeros(num, np.float64)  # stuff: IoU sum of all overlapping pairs
        self.dagger_segments = np.zeros(num, np.int64)  # stuff: number of ground-truth segments
        self.num_images = 0
        self._position = categories.id_to_train_id_lut(fill=-1)
        self._isthing = np.array([c.isthing for c in categories], dtype=bool)
        self._size_edges = np.array([high for _, high in self.size_ranges.values()][:-1])

    # --- accumulation ------------------------------------------------------------------
    def update(self, gt: PanopticSegmentation, pred: PanopticSegmentation,
               image_id: int | str | None = None) -> ImageMatching:
        """Match one image and add it; returns the matching (for drawing its errors)."""
        return self.add_overlaps(overlaps_of(gt, pred, self._source(image_id)))

    def update_arrays(self, gt_map: np.ndarray, gt: SegmentTable, pred_map: np.ndarray, pred: SegmentTable,
                      source: str | None = None) -> ImageMatching:
        """:meth:`update` from raw (H, W) id maps and segment tables (the file-reading path)."""
        return self.add_overlaps(compute_overlaps(gt_map, gt, pred_map, pred, source or self._source(None)))

    def add_overlaps(self, overlaps: OverlapTable) -> ImageMatching:
        """Match a ready joint histogram at this accumulator's threshold and add it."""
        matching = match_overlaps(overlaps, self.iou_threshold)
        self.add(matching)
        return matching

    def add(self, matching: ImageMatching) -> None:
        """Add one image's matching (made at this accumulator's threshold)."""
        if matching.iou_threshold != self.iou_threshold:
            raise ValueError(f"matching made at IoU > {matching.iou_threshold}, "
                             f"accumulator counts at IoU > {self.iou_threshold}")
        source = matching.overlaps.source
        gt_pos = self._positions(matching.gt, "ground truth", source)
        pred_pos = self._positions(matching.pred, "prediction", source)
        num = len(self.categories)

        def per_category(positions, weights=None):
            return np.bincount(positions, weights=weights, minlength=num)

        matched_pos = gt_pos[matching.matched_gt]
        fn_rows = matching.gt_outcome == Outcome.FN
        fp_cols = matching.pred_outcome == Outcome.FP
        self.counts += PQCounts(per_category(matched_pos), per_category(pred_pos[fp_cols]),
                                per_category(gt_pos[fn_rows]), per_category(matched_pos, matching.matched_iou))

        # sizes: TP and FN by the ground truth's area, FP by the prediction's own area
        gt_cell = np.digitize(matching.overlaps.gt_area, self._size_edges) * num + gt_pos
        pred_cell = np.digitize(matching.overlaps.pred_area, self._size_edges) * num + pred_pos
        shape = self.size_counts.tp.shape

        def per_cell(cells, weights=None):
            return np.bincount(cells, weights=weights, minlength=shape[0] * shape[1]).reshape(shape)

        matched_cell = gt_cell[matching.matched_gt]
        self.size_counts += PQCounts(per_cell(matched_cell), per_cell(pred_cell[fp_cols]),
                                     per_cell(gt_cell[fn_rows]), per_cell(matched_cell, matching.matched_iou))

        self.dagger_iou += per_category(gt_pos[matching.candidate_gt], matching.candidate_iou)
        self.dagger_segments += per_category(gt_pos[~matching.gt.iscrowd])
        self.num_images += 1

    def merge(self, other: "PQAccumulator") -> "PQAccumulator":
        """Add another accumulator's counts (e.g. from a worker process) into this one."""
        if other.categories.ids != self.categories.ids:
            raise ValueError("cannot merge accumulators over different category sets")
        if other.iou_threshold != self.iou_threshold:
            raise ValueError(f"cannot merge accumulators at IoU thresholds {self.iou_threshold} "
                             f"and {other.iou_threshold}")
        if other.size_ranges != self.size_ranges:
            raise ValueError(f"cannot merge accumulators with size ranges {self.size_ranges} and {other.size_ranges}")
        self.counts += other.counts
        self.size_counts += other.size_counts
        self.dagger_iou += other.dagger_iou
        self.dagger_segments += other.dagger_segments
        self.num_images += other.num_images
        return self

    __iadd__ = merge

    # --- results -----------------------------------------------------------------------
    def results(self) -> dict:
        """Everything in panopticapi's shape, plus the extra breakdowns under their own keys.

        Returns:
            ``{"All"|"Things"|"Stuff": {"pq", "sq", "rq", "n"}, "per_class": {category_id:
            {"name", "isthing", "pq", "sq", "rq", "tp", "fp", "fn", "iou"}}, "by_size": {"small"|"medium"|"large":
            {"All"|"Things"|"Stuff": {...}}}, "pq_dagger": {"All"|"Things"|"Stuff": {"pq", "n"},
            "per_class": {category_id: pq}}, "num_images", "iou_threshold", "size_ranges"}``.
            Scores are fractions in [0, 1]; a group with no category to average (n = 0) has NaN
            scores. A category that never occurs scores 0.0 and is left out of the averages.
        """
        pq, sq, rq, present = self.counts.scores()
        results = self._groups(pq, sq, rq, present)
        results["per_class"] = {
            category.id: {"name": category.name, "isthing": category.isthing,
                          "pq": float(pq[k]), "sq": float(sq[k]), "rq": float(rq[k]),
                          "tp": int(self.counts.tp[k]), "fp": int(self.counts.fp[k]),
                          "fn": int(self.counts.fn[k]), "iou": float(self.counts.iou[k])}
            for k, category in enumerate(self.categories)}
        results["by_size"] = {}
        for s, name in enumerate(self.size_ranges):
            counts = PQCounts(self.size_counts.tp[s], self.size_counts.fp[s], self.size_counts.fn[s],
                              self.size_counts.iou[s])
            results["by_size"][name] = self._groups(*counts.scores())
        results["pq_dagger"] = self._dagger(pq, present)
        results["num_images"] = self.num_images
        results["iou_threshold"] = self.iou_threshold
        results["size_ranges"] = {name: [low, high if math.isfinite(high) else None]
                                  for name, (low, high) in self.size_ranges.items()}
        return results

    def _groups(self, pq, sq, rq, present) -> dict:
        groups = {}
        for name, isthing in GROUPS:
            keep = present if isthing is None else present & (self._isthing == isthing)
            groups[name] = {"pq": _mean(pq, keep), "sq": _mean(sq, keep), "rq": _mean(rq, keep),
                            "n": int(keep.sum())}
        return groups

    def _dagger(self, pq: np.ndarray, present: np.ndarray) -> dict:
        stuff_present = self.dagger_segments > 0
        stuff_pq = self.dagger_iou / np.maximum(self.dagger_segments, 1)
        dagger_pq = np.where(self._isthing, pq, np.where(stuff_present, stuff_pq, 0.0))
        dagger_present = np.where(self._isthing, present, stuff_present)
        dagger = {}
        for name, isthing in GROUPS:
            keep = dagger_present if isthing is None else dagger_present & (self._isthing == isthing)
            dagger[name] = {"pq": _mean(dagger_pq, keep), "n": int(keep.sum())}
        dagger["per_class"] = {category.id: float(dagger_pq[k]) for k, category in enumerate(self.categories)}
        return dagger

    # --- helpers -----------------------------------------------------------------------
    def _source(self, image_id) -> str:
        return f"image {image_id}" if image_id is not None else f"image #{self.num_images}"

    def _positions(self, table: SegmentTable, side: str, source: str) -> np.ndarray:
        """Category positions 0..C-1 of a table's segments; unknown categories are an error."""
        ids = table.category_ids
        inside = (ids >= 0) & (ids < len(self._position))
        positions = np.where(inside, self._position[np.where(inside, ids, 0)], -1)
        if (positions < 0).any():
            k = int(np.argmax(positions < 0))
            raise PanopticFormatError(f"{source}: {side} segment {int(table.ids[k])} has category id "
                                      f"{int(ids[k])}, which is not among the categories {self.categories.ids}")
        return positions
