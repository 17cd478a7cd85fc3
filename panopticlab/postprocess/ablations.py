"""Stand-ins for one of the baseline's two networks, for ablations.

:func:`connected_component_instances` answers "what if we only had the semantic
network?": each 4-connected region of a thing category becomes one instance, which
merges touching objects of one class (chapter 1) but needs no detector.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data.categories import CategorySet


def connected_component_instances(semantic: np.ndarray, categories: CategorySet):
    """Instances from a semantic map: one per 4-connected region of each thing category.

    Args:
        semantic: (H, W) integer dataset category ids.

    Returns:
        masks: (N, H, W) bool; scores: (N,) float64, all 1; category_ids: (N,) int64 -
        the inputs :func:`~panopticlab.postprocess.heuristic.heuristic_merge` takes.
    """
    semantic = np.asarray(semantic)
    masks, category_ids = [], []
    for category_id in categories.thing_ids:
        labels, count = ndimage.label(semantic == category_id)
        for k in range(1, count + 1):
            masks.append(labels == k)
            category_ids.append(category_id)
    stacked = np.stack(masks) if masks else np.zeros((0, *semantic.shape), bool)
    return stacked, np.ones(len(masks)), np.array(category_ids, dtype=np.int64)
