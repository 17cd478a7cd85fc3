"""Panoptic-DeepLab's centre settings scored on kept outputs: PQ per setting, no network run.

* :func:`rescore_deeplab`: a validation set, one setting -> PQ and every image's result;
* :func:`center_setting_grid`: a validation set, a grid of thresholds x kernels -> PQ of
  each cell.

Each image's maps go through :func:`~panopticlab.postprocess.deeplab_outputs.repostprocess`
(the post-processing alone, which with the model's own setting reproduces its output
exactly), and scoring uses the same in-memory PQ accumulator as the evaluation loop
(:mod:`.evaluator`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import CategorySet, PanopticSegmentation
from ..metrics.matching import MATCH_IOU
from ..metrics.pq import PQAccumulator
from ..postprocess.centers import NMS_KERNEL, THRESHOLD, TOP_K
from ..postprocess.deeplab import DeepLabPanoptic
from ..postprocess.deeplab_outputs import DeepLabOutputs, repostprocess

__all__ = ["Rescored", "center_setting_grid", "rescore_deeplab"]


@dataclass
class Rescored:
    """PQ of a validation set post-processed again with one setting.

    Attributes:
        results: :meth:`~panopticlab.metrics.pq.PQAccumulator.results` (``results["All"]["pq"]``, ...).
        merged: every image's :class:`~panopticlab.postprocess.deeplab.DeepLabPanoptic`, in the order of the input.
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
