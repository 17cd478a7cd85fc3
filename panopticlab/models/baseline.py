"""The paper's baseline as one panoptic model: PSPNet + Mask R-CNN + the heuristic merge.

The two networks stay independent (no shared layer, no shared loss term): training the
wrapper on a batch trains each network on its own target, exactly as two separate
trainings with the same schedule would. In eval mode the wrapper runs both and merges
their outputs image by image with
:func:`~panopticlab.postprocess.heuristic.heuristic_merge`, so the engine's evaluation
loop scores it like any other panoptic model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.categories import CategorySet
from ..data.panoptic import PanopticSegmentation
from ..postprocess.heuristic import (
    OVERLAP_THRESHOLD,
    SCORE_THRESHOLD,
    STUFF_AREA_LIMIT,
    HeuristicMerge,
    heuristic_merge,
    scaled_stuff_area,
)
from .instance import MaskRCNN
from .instance import for_categories as instance_for_categories
from .semantic import PSPNet
from .semantic import for_categories as semantic_for_categories

__all__ = ["BaselinePrediction", "HeuristicBaseline"]


@dataclass
class BaselinePrediction:
    """One image's prediction, with the two networks' outputs it was merged from.

    Attributes:
        panoptic: the merged segmentation.
        merge: the merge and its steps (:class:`~panopticlab.postprocess.heuristic.HeuristicMerge`).
        semantic: (H, W) int64 category ids predicted by the semantic network.
        detections: the instance network's detections for this image (torchvision's
            dict: ``boxes``, ``labels``, ``scores``, ``masks`` [N, 1, H, W], ``category_ids``), on the CPU.
    """

    panoptic: PanopticSegmentation
    merge: HeuristicMerge
    semantic: np.ndarray
    detections: dict


class HeuristicBaseline(nn.Module):
    """Semantic and instance networks merged by the heuristic.

    Args:
        semantic_model: a :class:`~panopticlab.models.semantic.PSPNet` built with the
            dataset's category ids (its ``semantic`` output holds category ids).
        instance_model: a :class:`~panopticlab.models.instance.MaskRCNN` built with the
            dataset's thing ids.
        categories: the dataset's categories.
        score_threshold, overlap_threshold, mask_threshold: the merge's thresholds.
        stuff_area_limit: the merge's stuff limit in pixels; ``None`` scales the
            published 4096 px to each image's area (:func:`scaled_stuff_area`).

    Train mode: ``model(images, targets)`` with the collated batch (``semantic`` and
    ``instances`` targets) -> both networks' losses in one dict. Eval mode:
    ``model(images)`` -> list of B :class:`BaselinePrediction`.
    """

    def __init__(self, semantic_model: PSPNet, instance_model: MaskRCNN, categories: CategorySet, *,
                 score_threshold: float = SCORE_THRESHOLD, overlap_threshold: float = OVERLAP_THRESHOLD,
                 stuff_area_limit: float | None = None, mask_threshold: float = 0.5):
        super().__init__()
        self.semantic_model = semantic_model
        self.instance_model = instance_model
        self.categories = categories
        self.score_threshold = score_threshold
        self.overlap_threshold = overlap_threshold
        self.stuff_area_limit = stuff_area_limit
        self.mask_threshold = mask_threshold

    @classmethod
    def for_categories(cls, categories: CategorySet, size: str = "tiny", **merge_options) -> "HeuristicBaseline":
        """Both networks in their ``tiny`` or ``full`` configuration for ``categories``."""
        return cls(semantic_for_categories(categories, size), instance_for_categories(categories, size),
                   categories, **merge_options)

    def forward(self, images: torch.Tensor, targets: dict | None = None):
        if self.training:
            if not isinstance(targets, dict):
                raise ValueError("training the baseline needs the collated target dict with 'semantic' and "
                                 "'instances' (PanopticDataset(..., targets=('semantic', 'instances')))")
            losses = dict(self.semantic_model(images, targets))
            losses.update(self.instance_model(images, targets))
            return losses
        semantic = self.semantic_model(images)["semantic"].cpu().numpy()
        detections = [{key: value.cpu() for key, value in d.items()} for d in self.instance_model(images)]
        return [self.merge(s, d) for s, d in zip(semantic, detections)]

    def merge(self, semantic: np.ndarray, detections: dict) -> BaselinePrediction:
        """Merge one image's semantic map (H, W) and detections."""
        limit = self.stuff_area_limit
        if limit is None:
            limit = scaled_stuff_area(STUFF_AREA_LIMIT, semantic.size)
        merged = heuristic_merge(semantic, detections["masks"].float().numpy(), detections["scores"].float().numpy(),
                                 detections["category_ids"].numpy(), self.categories,
                                 score_threshold=self.score_threshold, overlap_threshold=self.overlap_threshold,
                                 stuff_area_limit=limit, mask_threshold=self.mask_threshold)
        return BaselinePrediction(merged.panoptic, merged, semantic, detections)
