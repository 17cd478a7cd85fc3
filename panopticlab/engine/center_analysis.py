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
from dataclasses import dataclass, field

import numpy as np

from ..data import CategorySet
from ..metrics.matching import MATCH_IOU
from ..postprocess.centers import NMS_KERNEL, THRESHOLD, TOP_K
from ..postprocess.deeplab import DeepLabPanoptic
from ..postprocess.deeplab_outputs import DeepLabOutputs, repostprocess
from . import evaluator
from .evaluator import kept_pair, rescore_kept

__all__ = ["Rescored", "center_setting_grid", "rescore_deeplab"]


@dataclass
class Rescored(evaluator.Rescored):
    """PQ of a validation set post-processed again with one setting: the re-scoring loop's
    record (:class:`~.evaluator.Rescored`), each image's fused result a
    :class:`~panopticlab.postprocess.deeplab.DeepLabPanoptic`.

    Attributes:
        setting: the centre setting used (``threshold``, ``nms_kernel``, ``top_k``).
    """

    setting: dict = field(default_factory=dict)

    @property
    def merged(self) -> list[DeepLabPanoptic]:
        """Every image's :class:`~panopticlab.postprocess.deeplab.DeepLabPanoptic`, in the order of the input."""
        return self.fused

    @property
    def num_centers(self) -> int:
        """Centres found over all images."""
        return sum(len(result.centers) for result in self.merged)


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
    areas = [stuff_area] * len(kept) if np.ndim(stuff_area) == 0 else list(stuff_area)
    if len(areas) != len(kept):
        raise ValueError(f"stuff_area: {len(areas)} values for {len(kept)} images")
    rescored = rescore_kept(kept, categories, lambda index, prediction: repostprocess(
        prediction, categories, stuff_area=areas[index], threshold=threshold, nms_kernel=nms_kernel, top_k=top_k,
        where=f"kept[{index}]"), iou_threshold=iou_threshold)
    return Rescored(rescored.results, rescored.fused,
                    setting={"threshold": threshold, "nms_kernel": nms_kernel, "top_k": top_k})


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
    pairs = []
    for index, item in enumerate(kept):  # the maps extracted once, for every cell
        truth, prediction = kept_pair(item, index)
        pairs.append((truth, DeepLabOutputs.of(prediction, f"kept[{index}]")))
    return {(threshold, kernel): rescore_deeplab(pairs, categories, stuff_area=stuff_area, threshold=threshold,
                                                 nms_kernel=kernel, top_k=top_k, iou_threshold=iou_threshold).results
            for threshold in thresholds for kernel in kernels}
