"""Panoptic-DeepLab's post-processing again, on kept network outputs: new centre settings, no network.

The network's three maps do not depend on the centre threshold or the NMS kernel: only
the post-processing does. A chapter (or a widget) that moves those knobs therefore keeps
the maps once (:class:`DeepLabOutputs`, from the predictions an evaluation kept) and
re-runs centre finding, grouping and the majority vote for each setting:

* :func:`repostprocess`: one image, one setting -> :class:`~.deeplab.DeepLabPanoptic`;
* :func:`rescore_deeplab`: a validation set, one setting -> PQ and every image's result;
* :func:`center_setting_grid`: a validation set, a grid of thresholds x kernels -> PQ of
  each cell.

Re-running with the model's own setting reproduces its panoptic output exactly (the
tests check it), so a difference in PQ is the setting's alone. Scoring uses the same
in-memory PQ accumulator as the evaluation loop.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import CategorySet, PanopticSegmentation
from ..metrics.matching import MATCH_IOU
from ..metrics.pq import PQAccumulator
from .centers import NMS_KERNEL, THRESHOLD, TOP_K
from .deeplab import LABEL_DIVISOR, DeepLabPanoptic, panoptic_deeplab_postprocess

__all__ = ["DeepLabOutputs", "Rescored", "center_setting_grid", "repostprocess", "rescore_deeplab"]


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


@dataclass
class Rescored:
    """PQ of a validation set post-processed again with one setting.

    Attributes:
        results: :meth:`~panopticlab.metrics.pq.PQAccumulator.results` (``results["All"]["pq"]``, ...).
        merged: every image's :class:`~.deeplab.DeepLabPanoptic`, in the order of the input.
        setting: the centre setting used (``threshold``, ``nms_kernel``, ``top_k``).
    """

    results: dict
    merged: list[DeepLabPanoptic]
    setting: dict

    @property
    def num_centers(self) -> int:
        """Centres found over all images."""
        return sum(len(result.centers) for result in self.merged)


def _pairs(kept: Sequence) -> list[tuple[PanopticSegmentation, Any]]:
    """``(ground truth, prediction)`` from ``Evaluation.predictions`` (record dicts) or plain pairs."""
    pairs = []
    for index, item in enumerate(kept):
        try:
            truth, prediction = item
        except (TypeError, ValueError):
            raise TypeError(f"kept[{index}]: expected a (ground truth, prediction) pair, "
                             f"got {type(item).__name__}") from None
        if isinstance(truth, dict):
            truth = truth.get("panoptic")
        if not isinstance(truth, PanopticSegmentation):
            raise TypeError(f"kept[{index}]: the ground truth must be a PanopticSegmentation (or a record with "
                             f"one under 'panoptic'), got {type(truth).__name__}")
        pairs.append((truth, prediction))
    return pairs


def rescore_deeplab(kept: Sequence, categories: CategorySet, *, stuff_area: int | Sequence[int],
                    threshold: float = THRESHOLD, nms_kernel: int = NMS_KERNEL, top_k: int | None = TOP_K,
                    iou_threshold: float = MATCH_IOU) -> Rescored:
    """PQ of kept Panoptic-DeepLab outputs post-processed again with another centre setting.

    Args:
        kept: ``Evaluation.predictions`` of ``evaluate(..., keep_predictions=True)`` (pairs of a
            record with the ground truth under ``"panoptic"`` and a prediction), or pairs
            ``(ground truth PanopticSegmentation, DeepLabOutputs or prediction)``.
        categories: the dataset's categories.
        stuff_area: of the model's post-processing, one for all images or one per image.
        threshold, nms_kernel, top_k: the centre setting.
        iou_threshold: of the PQ matching.

    Returns:
        :class:`Rescored`.
    """
    pairs = _pairs(kept)
    areas = [stuff_area] * len(pairs) if np.ndim(stuff_area) == 0 else list(stuff_area)
    if len(areas) != len(pairs):
        raise ValueError(f"stuff_area: {len(areas)} values for {len(pairs)} images")
    accumulator = PQAccumulator(categories, iou_threshold)
    merged = []
    for index, ((truth, prediction), area) in enumerate(zip(pairs, areas)):
        result = repostprocess(prediction, categories, stuff_area=area, threshold=threshold, nms_kernel=nms_kernel,
                               top_k=top_k, where=f"kept[{index}]")
        accumulator.update(truth, result.panoptic, image_id=index)
        merged.append(result)
    return Rescored(accumulator.results(), merged, {"threshold": threshold, "nms_kernel": nms_kernel,
                                                    "top_k": top_k})


def center_setting_grid(kept: Sequence, categories: CategorySet, thresholds: Iterable[float],
                        kernels: Iterable[int], *, stuff_area: int | Sequence[int], top_k: int | None = TOP_K,
                        iou_threshold: float = MATCH_IOU) -> dict[tuple[float, int], dict]:
    """PQ results for every (threshold, kernel) of a grid, from one set of kept outputs.

    The maps are extracted once; each cell re-runs only the post-processing and the scoring.

    Returns:
        ``{(threshold, kernel): PQ results}`` in the order thresholds x kernels.
    """
    thresholds, kernels = [float(t) for t in thresholds], [int(k) for k in kernels]
    if not thresholds or not kernels:
        raise ValueError("the grid needs at least one threshold and one kernel")
    pairs = [(truth, DeepLabOutputs.of(prediction, f"kept[{i}]")) for i, (truth, prediction) in enumerate(_pairs(kept))]
    return {(threshold, kernel): rescore_deeplab(pairs, categories, stuff_area=stuff_area, threshold=threshold,
                                                 nms_kernel=kernel, top_k=top_k, iou_threshold=iou_threshold).results
            for threshold in thresholds for kernel in kernels}
