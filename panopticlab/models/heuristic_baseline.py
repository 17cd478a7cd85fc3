"""The paper's baseline as one panoptic model: PSPNet + Mask R-CNN + the heuristic merge.

The two networks stay independent (no shared layer, no shared loss term): training the
wrapper on a batch trains each network on its own target, exactly as two separate
trainings with the same schedule would; the book trains them separately, each with its
own recipe (:data:`~panopticlab.models.zoo.MODELS` lists them as the baseline's
components). In eval mode the wrapper runs both and merges their outputs image by image
with :func:`~panopticlab.postprocess.heuristic.heuristic_merge` and the published
:class:`~panopticlab.postprocess.heuristic.MergeConfig`.

Interface, for images float [B, 3, H, W] in [0, 1]:

* train mode: ``model(images, targets)`` with the collated batch (``semantic`` and
  ``instances`` targets) -> both networks' losses in one dict;
* eval mode: ``model(images)`` -> ``{"semantic": int64 [B, H, W] category ids,
  "detections": B torchvision-style dicts}``, the two networks' outputs;
* ``model.postprocess(outputs)`` -> their merge, and ``model.inference(images)`` (both
  steps) -> B :class:`~.common.PanopticPrediction` with the merged ``panoptic``, the
  ``semantic`` map, the ``detections`` and the ``merge`` with its steps.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..data.categories import CategorySet
from ..postprocess.ablations import ablation_merge
from ..postprocess.heuristic import MergeConfig
from .common import PanopticModel, PanopticPrediction, detections_to_numpy
from .mask_rcnn import MaskRCNN
from .mask_rcnn import for_categories as mask_rcnn_for_categories
from .pspnet import PSPNet
from .pspnet import for_categories as pspnet_for_categories

__all__ = ["HeuristicBaseline"]


class HeuristicBaseline(PanopticModel):
    """Semantic and instance networks merged by the heuristic.

    Args:
        semantic_model: a :class:`~panopticlab.models.pspnet.PSPNet` for the dataset's categories
            (its ``semantic`` output holds category ids).
        instance_model: a :class:`~panopticlab.models.mask_rcnn.MaskRCNN` for them (its
            detections name their category ids).
        categories: the dataset's categories.
        merge: the merge's settings (default: the semantic network's, the published ones for
            ``full`` and :meth:`~panopticlab.postprocess.heuristic.MergeConfig.tiny` for ``tiny``).
    """

    def __init__(self, semantic_model: PSPNet, instance_model: MaskRCNN, categories: CategorySet,
                 merge: MergeConfig | None = None):
        super().__init__()
        self.semantic_model = semantic_model
        self.instance_model = instance_model
        self.categories = categories
        self.merge_config = merge if merge is not None else semantic_model.merge_config

    @classmethod
    def for_categories(cls, categories: CategorySet, size: str = "tiny", merge: MergeConfig | None = None,
                       dataset: str | None = None, thing_labels: Sequence[int] | None = None) -> "HeuristicBaseline":
        """Both networks in their ``tiny`` or ``full`` configuration for ``categories`` (and the
        full networks' published one for ``dataset``); ``thing_labels``: the detector's labels
        (see :class:`~panopticlab.models.mask_rcnn.MaskRCNN`, e.g. torchvision's COCO weights)."""
        return cls(pspnet_for_categories(categories, size, dataset),
                   mask_rcnn_for_categories(categories, size, dataset, thing_labels), categories, merge)

    def forward(self, images: torch.Tensor, targets: dict | None = None):
        if not self.training:
            return {"semantic": self.semantic_model(images)["semantic"], "detections": self.instance_model(images)}
        if not isinstance(targets, dict):
            raise ValueError("training the baseline needs the collated target dict with 'semantic' and "
                             "'instances' (PanopticDataset(..., targets=('semantic', 'instances')))")
        losses = dict(self.semantic_model(images, targets))
        losses.update(self.instance_model(images, targets))
        return losses

    def postprocess(self, outputs: dict) -> list[PanopticPrediction]:
        """The eval-mode outputs merged image by image (no network runs here)."""
        semantic = outputs["semantic"].cpu().numpy()
        return [self.merge(s, detections_to_numpy(d)) for s, d in zip(semantic, outputs["detections"])]

    def merge(self, semantic: np.ndarray, detections: dict[str, np.ndarray]) -> PanopticPrediction:
        """Merge one image's semantic map (H, W) and detections (numpy arrays)."""
        merged = ablation_merge("baseline", semantic, detections, self.categories, self.merge_config)
        return PanopticPrediction(merged.panoptic, semantic=semantic, detections=detections, merge=merged)
