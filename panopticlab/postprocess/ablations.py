"""The baseline with one of its two networks taken away: the ablations of chapter 3.

:func:`ablation_merge` is the heuristic merge of the semantic map and the detections
with one input replaced:

* ``"baseline"``: both, as the paper's baseline;
* ``"semantic_only"``: no detector; each 4-connected region of a thing category of the
  semantic map becomes one instance (:func:`connected_component_instances`), which
  merges touching objects of one class (chapter 1) but needs no detector;
* ``"instance_only"``: no semantic map; detections become things, everything else void.

The evaluator scores these variants from the same network outputs as the baseline
itself, and chapter 3 draws them; both call this one function.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy import ndimage

from ..data.categories import CategorySet
from .heuristic import HeuristicMerge, MergeConfig

__all__ = ["ABLATIONS", "connected_component_instances", "ablation_merge"]

ABLATIONS = ("baseline", "semantic_only", "instance_only")


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


def ablation_merge(variant: str, semantic: np.ndarray | None, detections: Mapping[str, np.ndarray] | None,
                   categories: CategorySet, config: MergeConfig = MergeConfig()) -> HeuristicMerge:
    """One image's merge for one of :data:`ABLATIONS`.

    Args:
        variant: ``"baseline"``, ``"semantic_only"`` or ``"instance_only"``.
        semantic: (H, W) dataset category ids of the semantic network (needed by
            ``baseline`` and ``semantic_only``).
        detections: the detector's output as numpy arrays: ``masks`` [N, H, W]
            probabilities, ``scores`` [N], ``category_ids`` [N] (needed by ``baseline``
            and ``instance_only``).
        categories: the dataset's categories.
        config: the merge's settings.

    Raises:
        ValueError: an unknown variant, or an input the variant needs is ``None``.
    """
    if variant not in ABLATIONS:
        raise ValueError(f"unknown ablation {variant!r}; choose one of {', '.join(ABLATIONS)}")
    if variant != "instance_only" and semantic is None:
        raise ValueError(f"the {variant} merge needs a semantic map")
    if variant != "semantic_only" and detections is None:
        raise ValueError(f"the {variant} merge needs detections")
    if variant == "semantic_only":
        masks, scores, category_ids = connected_component_instances(semantic, categories)
    else:
        masks, scores, category_ids = detections["masks"], detections["scores"], detections["category_ids"]
    return config.merge(None if variant == "instance_only" else semantic, masks, scores, category_ids, categories)
