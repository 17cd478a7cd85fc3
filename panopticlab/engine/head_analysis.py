"""UPSNet's panoptic head against other fusions on the same kept outputs: no network run.

* :func:`rescore_unified`: the head again on each image's kept semantic logits, detections
  and mask logits, e.g. with the unknown channel removed (``unknown=False``);
* :func:`per_image_pq`: PQ (and PQ of things) of each image, for the model's own output,
  a re-run of the head or one of the evaluator's ablations (the heuristic merge);
* :func:`largest_gains`: the images where one fusion beats another by the most.

``predictions`` is :attr:`~.evaluator.Evaluation.predictions` of an UPSNet
(``evaluate(..., keep_predictions=True)``): each prediction carries
``outputs["semantic_logits"]`` float [C, H, W], ``outputs["mask_logits"]`` float [N, M, M]
and ``detections`` (``boxes``, ``scores``, ``category_ids``) at the same resolution.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data import CategorySet, PanopticSegmentation
from ..metrics.matching import MATCH_IOU
from ..models.upsnet_head import unified_panoptic
from ..postprocess.ablations import ablation_merge
from ..postprocess.heuristic import MergeConfig
from ..postprocess.upsnet import UPSNetHeadConfig, UPSNetPanoptic
from .evaluator import rescore_kept

DEFAULT_HEAD = UPSNetHeadConfig()  # the published inference settings

__all__ = ["largest_gains", "per_image_pq", "rescore_unified", "unified_results"]


def unified_results(prediction: Any, categories: CategorySet, config: UPSNetHeadConfig = DEFAULT_HEAD, *,
                    unknown: bool = True) -> UPSNetPanoptic:
    """The panoptic head on one kept UPSNet prediction (see the module docstring)."""
    outputs = getattr(prediction, "outputs", None) or {}
    detections = getattr(prediction, "detections", None)
    if "semantic_logits" not in outputs or "mask_logits" not in outputs or detections is None:
        raise ValueError("the prediction lacks UPSNet's kept outputs: outputs['semantic_logits'], "
                         "outputs['mask_logits'] and detections (evaluate an UPSNet with keep_predictions=True)")
    logits = torch.as_tensor(outputs["semantic_logits"]).float()
    boxes = torch.as_tensor(np.asarray(detections["boxes"], dtype=np.float32)).reshape(-1, 4)
    scores = torch.as_tensor(np.asarray(detections["scores"], dtype=np.float32)).reshape(-1)
    category_ids = torch.as_tensor(np.asarray(detections["category_ids"], dtype=np.int64)).reshape(-1)
    return unified_panoptic(logits, boxes, scores, category_ids, torch.as_tensor(outputs["mask_logits"]).float(),
                            categories, config, unknown=unknown)


def rescore_unified(predictions: Sequence[tuple[dict, Any]], categories: CategorySet,
                    config: UPSNetHeadConfig = DEFAULT_HEAD, *, unknown: bool = True,
                    iou_threshold: float = MATCH_IOU) -> dict:
    """PQ results of the head re-run on every kept prediction (``unknown=False``: without its unknown channel)."""
    return rescore_kept(predictions, categories, lambda _, prediction: unified_results(
        prediction, categories, config, unknown=unknown), iou_threshold=iou_threshold).results


def _fused(prediction: Any, categories: CategorySet, variant: str | None, unknown: bool, config: UPSNetHeadConfig,
           merge: MergeConfig) -> PanopticSegmentation:
    if variant is None:
        return prediction.panoptic
    if variant == "head":
        return unified_results(prediction, categories, config, unknown=unknown).panoptic
    return ablation_merge(variant, getattr(prediction, "semantic", None), getattr(prediction, "detections", None),
                          categories, merge).panoptic


def per_image_pq(predictions: Sequence[tuple[dict, Any]], categories: CategorySet, variant: str | None = None, *,
                 unknown: bool = True, group: str = "All", iou_threshold: float = MATCH_IOU,
                 config: UPSNetHeadConfig = DEFAULT_HEAD, merge: MergeConfig = MergeConfig()) -> np.ndarray:
    """PQ of each image alone, float [num_images] in [0, 1] (NaN where the group has no segment).

    Args:
        variant: ``None`` the model's own panoptic output; ``"head"`` the panoptic head re-run
            (with ``unknown``); else an ablation of the evaluator (``"baseline"``: the heuristic
            merge of chapter 3 on the same semantic map and detections).
        group: ``"All"``, ``"Things"`` or ``"Stuff"``.
        config, merge: the head's and the merge's settings for the re-runs (pass the model's
            ``head_config`` and ``merge_config``; the defaults are the published ones).
    """
    if group not in ("All", "Things", "Stuff"):
        raise ValueError(f"group must be 'All', 'Things' or 'Stuff', got {group!r}")
    rescored = rescore_kept(predictions, categories, lambda _, prediction: _fused(
        prediction, categories, variant, unknown, config, merge), iou_threshold=iou_threshold, per_image=True)
    return np.asarray([image[group]["pq"] if image[group]["n"] else np.nan for image in rescored.per_image],
                      dtype=np.float64)


def largest_gains(ours: np.ndarray, theirs: np.ndarray, count: int = 1) -> np.ndarray:
    """Indices of the ``count`` images where ``ours - theirs`` is largest and positive, largest first.

    NaN entries (no segment of the group) never count. Fewer indices come back when fewer
    images gain; none when no image does.
    """
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape or ours.ndim != 1:
        raise ValueError(f"per-image scores of shapes {ours.shape} and {theirs.shape}: expected two equal 1-d arrays")
    gain = np.where(np.isfinite(ours) & np.isfinite(theirs), ours - theirs, -np.inf)
    order = np.argsort(-gain, kind="stable")
    return order[gain[order] > 0][:count]
