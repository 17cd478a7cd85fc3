"""Score kept matchings again: another IoU threshold or size split, without reading a pixel.

A chapter's slider moves the IoU threshold and wants the new PQ at once. The joint
histogram of each image (:class:`~.overlap.OverlapTable`, inside every
:class:`~.matching.ImageMatching`) already holds every pair's intersection, so matching
again at another threshold is arithmetic on it; no id map is decoded or compared again.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..data.categories import CategorySet
from .matching import MATCH_IOU, ImageMatching, bipartite_matching
from .pq import PQAccumulator


def rescore_matchings(matchings: Iterable[ImageMatching], categories: CategorySet,
                      iou_threshold: float = MATCH_IOU, size_ranges: dict | None = None) -> dict:
    """PQ results of kept matchings, matched again at ``iou_threshold``.

    Args:
        matchings: one :class:`ImageMatching` per image, at any threshold.
        categories: the dataset's categories.
        iou_threshold: pairs match when IoU > threshold (below 0.5 conflicts resolve
            greedily, see :func:`~.matching.match_overlaps`).
        size_ranges: the size breakdown's ranges (COCO's by default; see
            :func:`~.pq.quantile_size_ranges`).

    Returns:
        :meth:`PQAccumulator.results`: at 0.5 exactly what scoring the images gives.
    """
    accumulator = PQAccumulator(categories, iou_threshold, size_ranges=size_ranges)
    for matching in matchings:
        accumulator.add(matching.at_threshold(iou_threshold))
    return accumulator.results()


def bipartite_match_ious(matchings: Iterable[ImageMatching]) -> np.ndarray:
    """IoUs of the maximum-weight bipartite matching of every image, over all pairs with IoU > 0.

    The paper's check of the 0.5 threshold: let an assignment solver pair segments with
    any positive IoU (same category, crowd left out), and see how many of its pairs fall
    at or below 0.5, where the IoU > 0.5 rule refuses them.

    Returns:
        (m,) float64, the matched pairs' IoUs of all images in order.
    """
    ious = [bipartite_matching(m, iou_threshold=0.0)[2] for m in matchings]
    return np.concatenate(ious) if ious else np.zeros(0)
