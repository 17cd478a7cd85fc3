"""Panoptic-DeepLab's post-processing again, on kept network outputs: new centre settings, no network.

The network's three maps do not depend on the centre threshold or the NMS kernel: only
the post-processing does. A chapter (or a widget) that moves those knobs therefore keeps
the maps once (:class:`DeepLabOutputs`, from the predictions an evaluation kept) and
re-runs centre finding, grouping and the majority vote for each setting
(:func:`repostprocess`). Re-running with the model's own setting reproduces its panoptic
output exactly (the tests check it), so a difference is the setting's alone; scoring a
validation set this way is :mod:`panopticlab.engine.center_analysis`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import LABEL_DIVISOR, CategorySet
from .centers import NMS_KERNEL, THRESHOLD, TOP_K
from .deeplab import DeepLabPanoptic, panoptic_deeplab_postprocess

__all__ = ["DeepLabOutputs", "repostprocess"]


@dataclass(frozen=True)
class DeepLabOutputs:
    """The three network maps of one image, as the post-processing reads them.

    Attributes:
        semantic: (H, W) integer dataset category ids (the semantic arg-max).
        center_heatmap: (H, W) floating centre heatmap.
        offsets: (2, H, W) floating ``(dy, dx)`` in pixels, pointing to the centres.
    """

    semantic: np.ndarray
    center_heatmap: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, prediction: Any, where: str = "prediction") -> DeepLabOutputs:
        """The maps a Panoptic-DeepLab prediction kept (``prediction.semantic`` and
        ``prediction.outputs["center_heatmap"]`` / ``["offsets"]``, tensors or arrays).

        Raises:
            ValueError: ``prediction`` is not a Panoptic-DeepLab prediction (names what is missing).
        """
        if isinstance(prediction, DeepLabOutputs):
            return prediction
        outputs = getattr(prediction, "outputs", None) or {}
        missing = [key for key in ("center_heatmap", "offsets") if key not in outputs]
        if getattr(prediction, "semantic", None) is None:
            missing.insert(0, "semantic")
        if missing:
            raise ValueError(f"{where}: not a Panoptic-DeepLab prediction, it has no {', '.join(missing)} "
                             f"(keep them with evaluate(..., keep_predictions=True) on a Panoptic-DeepLab model)")
        heatmap = _numpy(outputs["center_heatmap"])
        return cls(semantic=_numpy(prediction.semantic),
                   center_heatmap=heatmap[0] if heatmap.ndim == 3 and heatmap.shape[0] == 1 else heatmap,
                   offsets=_numpy(outputs["offsets"]))


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def repostprocess(outputs: DeepLabOutputs | Any, categories: CategorySet, *, stuff_area: int,
                  threshold: float = THRESHOLD, nms_kernel: int = NMS_KERNEL, top_k: int | None = TOP_K,
                  label_divisor: int = LABEL_DIVISOR, where: str = "kept outputs") -> DeepLabPanoptic:
    """Centres, grouping and majority vote of one image's kept maps with the given setting.

    Args:
        outputs: :class:`DeepLabOutputs`, or a prediction that kept them (:meth:`DeepLabOutputs.of`).
        categories: the dataset's categories.
        stuff_area: the stuff area of the model's post-processing (for the tiny models
            ``model.config.stuff_area_for(H * W)``); a required argument, because a
            different one would change PQ_st and hide what the centre setting does.
        threshold, nms_kernel, top_k, label_divisor: as
            :func:`~.deeplab.panoptic_deeplab_postprocess`, which checks them.

    Returns:
        :class:`~.deeplab.DeepLabPanoptic`.
    """
    maps = DeepLabOutputs.of(outputs, where)
    return panoptic_deeplab_postprocess(maps.semantic, maps.center_heatmap, maps.offsets, categories,
                                        threshold=threshold, nms_kernel=nms_kernel, top_k=top_k,
                                        stuff_area=stuff_area, label_divisor=label_divisor, source=where)
