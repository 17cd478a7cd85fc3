"""Panoptic FPN (Kirillov, Girshick, He and Dollar, CVPR 2019): one network, two branches.

    images -> ImageBatcher -> ResNet-FPN (P2-P6) -+-> RPN -> RoI heads      (boxes, classes, masks)
                                                  +-> SemanticFPNHead (P2-P5) -> 4x up (stuff + "things")
    detections + semantic arg-max -> the heuristic merge of chapter 3 -> panoptic

Mask R-CNN's four parts (:func:`~.mask_rcnn.detector_parts`: ``transform``, ``backbone``,
``rpn``, ``roi_heads``, under torchvision's names) plus ``semantic_head``
(:class:`~.semantic_fpn.SemanticFPNHead`). One backbone pass per batch feeds both
branches, in training and in inference. The semantic branch predicts the stuff classes
and one merged "things" class (index ``num_stuff``, last, as mmdetection; detectron2
puts it first): which thing a pixel belongs to is the detector's job. The merge is
chapter 3's :func:`~panopticlab.postprocess.heuristic.heuristic_merge` with a
:class:`~panopticlab.postprocess.heuristic.MergeConfig`; "things" pixels of the semantic
map are void there, so stuff fills only what the instances leave.

Loss (published): the five Mask R-CNN losses, each weight 1, plus ``loss_semantic`` =
0.5 x the pixel cross-entropy of the semantic branch (void ignored).

* ``full``: ResNet-50-FPN (256 channels), the published detection branch, a 128-channel
  GroupNorm(32) semantic branch, images at short side 800 (long side at most 1333). For
  COCO (torchvision's 91 detector labels, 53 stuff classes) 46,085,287 parameters:
  torchvision's Mask R-CNN (44,454,513) plus a semantic branch of 1,630,774. Its
  ``transform``, ``backbone``, ``rpn`` and ``roi_heads`` take torchvision's
  ``maskrcnn_resnet50_fpn`` state dict as they are (``thing_labels=categories.thing_ids``):
  only ``semantic_head.*`` stays new.
* ``tiny``: the tiny Mask R-CNN of chapter 3 (the shipped pretrained tiny ResNet-FPN,
  :meth:`~.detection.DetectionConfig.tiny`) and a 64-channel semantic branch.

Interface, for images float [B, 3, H, W] in [0, 1]:

* train mode: ``model(images, targets)`` with the collated batch dict (``semantic``: int64
  [B, H, W] train ids of all categories, void 255; ``instances``: B detection targets) ->
  ``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg``,
  ``loss_mask``, ``loss_semantic`` (weighted: their sum is the objective);
* eval mode: ``model(images)`` -> ``{"logits": float [B, S + 1, H, W], "semantic": int64
  [B, H, W] category ids (stuff; void 255 where the branch says "things"), "detections":
  B torchvision detection dicts with ``category_ids``}``;
* ``model.inference(images)`` -> B :class:`~.common.PanopticPrediction` (the merged
  result, the semantic map, the detections, the merge with its steps;
  ``outputs["semantic_logits"]`` float [S + 1, H, W]).

Published training settings: :data:`PUBLISHED_SCHEDULES`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.categories import VOID_LABEL, CategorySet
from ..postprocess.ablations import ablation_merge
from ..postprocess.heuristic import MergeConfig
from .backbones import level_names
from .common import PanopticModel, PanopticPrediction, as_image_list, config_for_size, detections_to_numpy, \
    map_train_ids, semantic_targets, stack_if_one_size
from .detection import detect
from .mask_rcnn import COCO_1X, MaskRCNNConfig, detector_classes, detector_parts, relabelled_instances, \
    thing_label_tables
from .semantic_fpn import SemanticFPNHead

__all__ = ["PanopticFPNConfig", "PanopticFPN", "PUBLISHED_SCHEDULES", "for_categories",
           "semantic_class_names"]


@dataclass
class PanopticFPNConfig:
    """Every choice of Panoptic FPN; defaults are the published (``full``) ones.

    Attributes:
        num_stuff: stuff classes; the semantic branch has ``num_stuff + 1`` outputs.
        detector: the Mask R-CNN branch and the shared backbone (:class:`~.mask_rcnn.MaskRCNNConfig`).
        semantic_channels: width of the semantic branch (128).
        semantic_norm_groups: its GroupNorm groups (32).
        semantic_loss_weight: weight of the semantic cross-entropy (0.5).
        ignore_index: semantic target label without loss (void).
    """

    num_stuff: int = 53
    detector: MaskRCNNConfig = field(default_factory=MaskRCNNConfig)
    semantic_channels: int = 128
    semantic_norm_groups: int = 32
    semantic_loss_weight: float = 0.5
    ignore_index: int = VOID_LABEL

    @classmethod
    def full(cls, num_classes: int = 81, num_stuff: int = 53, dataset: str = "coco",
             **overrides) -> "PanopticFPNConfig":
        """The published Panoptic FPN R50 (detectron2's ``panoptic_fpn_R_50_1x``); ``num_classes``
        counts the things plus background (COCO: 81). ``dataset="cityscapes"`` takes the full
        1024 x 2048 images, as the detector's Cityscapes configuration
        (:meth:`~.mask_rcnn.MaskRCNNConfig.full`); the rest is COCO's."""
        return replace(cls(num_stuff=num_stuff, detector=MaskRCNNConfig.full(num_classes, dataset)), **overrides)

    @classmethod
    def tiny(cls, num_classes: int, num_stuff: int, **overrides) -> "PanopticFPNConfig":
        """Chapter 3's tiny Mask R-CNN plus a semantic branch as wide as its FPN (64 channels;
        GroupNorm keeps its 32 groups, two channels each)."""
        return replace(cls(num_stuff=num_stuff, detector=MaskRCNNConfig.tiny(num_classes), semantic_channels=64),
                       **overrides)


# COCO only: detectron2 publishes no Cityscapes Panoptic FPN configuration, and the paper's
# Cityscapes schedule is not restated here without its text at hand to check it against.
PUBLISHED_SCHEDULES = {
    "coco": replace(COCO_1X, source="detectron2 configs/Base-RCNN-FPN.yaml + COCO-PanopticSegmentation/"
                                    "Base-Panoptic-FPN.yaml + panoptic_fpn_R_50_1x.yaml"),
}


class PanopticFPN(PanopticModel):
    """Panoptic FPN from a :class:`PanopticFPNConfig`; see the module docstring.

    Args:
        config: the architecture.
        categories: the dataset's categories; stuff become the semantic classes 0..S-1 in
            ``categories.stuff_ids`` order.
        merge: the merge settings of inference.
        thing_labels: the detector label of each thing category (``categories.thing_ids``
            order); default 1..K. torchvision's COCO detector numbers its 91 labels by COCO
            category id: ``thing_labels=categories.thing_ids`` with 91 classes loads it.
    """

    def __init__(self, config: PanopticFPNConfig, categories: CategorySet, merge: MergeConfig = MergeConfig(),
                 thing_labels: Sequence[int] | None = None):
        super().__init__()
        things, stuff = categories.thing_ids, categories.stuff_ids
        num_classes = config.detector.num_classes
        thing_labels, to_detector, to_category = thing_label_tables(things, num_classes, thing_labels)
        if len(stuff) != config.num_stuff:
            raise ValueError(f"the categories have {len(stuff)} stuff classes, the config {config.num_stuff}")
        self.config = config
        self.categories = categories
        self.merge_config = merge
        self.transform, self.backbone, self.rpn, self.roi_heads = detector_parts(config.detector)
        names = level_names(config.detector.returned_layers)
        self.semantic_head = SemanticFPNHead(self.backbone.out_channels, config.num_stuff + 1,
                                             SemanticFPNHead.strides_of(names), config.semantic_channels,
                                             config.semantic_norm_groups)
        things_label = config.num_stuff
        # train id (all categories, the dataset's targets) -> semantic-branch label
        to_label = torch.tensor([things_label if c.isthing else stuff.index(c.id) for c in categories.categories])
        self.register_buffer("train_id_to_label", to_label.long(), persistent=False)
        # semantic-branch label -> category id; "things" -> void (the detector decides)
        self.register_buffer("label_to_category", torch.tensor([*stuff, VOID_LABEL]).long(), persistent=False)
        # dataset instance label (1..K, as PanopticDataset writes them) -> detector label -> category id
        self.register_buffer("instance_to_detector_label", to_detector, persistent=False)
        self.register_buffer("detector_label_to_category", to_category, persistent=False)  # 0: no category

    @property
    def semantic_category_ids(self) -> list[int]:
        """The categories the semantic map can name (stuff; "things" pixels are void there)."""
        return list(self.categories.stuff_ids)

    def semantic_labels(self, train_ids: torch.Tensor) -> torch.Tensor:
        """The semantic branch's targets: int64 [B, H, W] train ids -> stuff index / "things" / void."""
        return map_train_ids(train_ids, self.train_id_to_label, self.config.ignore_index)

    def forward(self, images, targets: dict | None = None):
        """See the module docstring."""
        image_list = as_image_list(images)
        if self.training:
            if not isinstance(targets, dict):
                raise ValueError("training Panoptic FPN needs the collated target dict with 'semantic' and "
                                 "'instances' (PanopticDataset(..., targets=('semantic', 'instances')))")
            semantic = self.semantic_labels(semantic_targets(targets, images))
            instances = relabelled_instances(targets, len(image_list), self.instance_to_detector_label)
            batch = self.transform.batch(image_list, instances, semantic)
        else:
            batch = self.transform.batch(image_list)
        features = self.backbone(batch.images.tensors)
        detections, losses = detect(self.rpn, self.roi_heads, batch.images, features,
                                    batch.instances if self.training else None)
        logits = F.interpolate(self.semantic_head(features), size=batch.images.tensors.shape[-2:], mode="bilinear",
                               align_corners=False)
        if self.training:
            loss = F.cross_entropy(logits, batch.semantic, ignore_index=self.config.ignore_index)
            return {**losses, "loss_semantic": self.config.semantic_loss_weight * loss}
        detections = self.transform.postprocess(detections, batch.images.image_sizes, batch.original_sizes)
        for index, d in enumerate(detections):
            category_ids = self.detector_label_to_category[d["labels"]]
            known = category_ids > 0  # drop labels of no category (torchvision's unused COCO ids)
            detections[index] = {**{key: value[known] for key, value in d.items()}, "category_ids": category_ids[known]}
        logits = self.transform.to_input_size(logits, batch)
        semantic = [self.label_to_category[x.argmax(dim=0)] for x in logits]
        return {"logits": stack_if_one_size(logits), "semantic": stack_if_one_size(semantic), "detections": detections}

    def postprocess(self, outputs: dict) -> list[PanopticPrediction]:
        """The eval-mode outputs merged by the heuristic, image by image (no network runs here)."""
        predictions = []
        for logits, semantic, detections in zip(outputs["logits"], outputs["semantic"], outputs["detections"]):
            semantic, detections = semantic.cpu().numpy(), detections_to_numpy(detections)
            merged = ablation_merge("baseline", semantic, detections, self.categories, self.merge_config)
            predictions.append(PanopticPrediction(merged.panoptic, semantic=semantic, detections=detections,
                                                  merge=merged, outputs={"semantic_logits": logits.cpu()}))
        return predictions


def for_categories(categories: CategorySet, size: str = "tiny", thing_labels: Sequence[int] | None = None,
                   dataset: str | None = None, **overrides) -> PanopticFPN:
    """A ``tiny`` or ``full`` Panoptic FPN for ``categories`` (``thing_labels``: see :class:`PanopticFPN`);
    ``dataset`` selects the full model's published configuration (default COCO's)."""
    config = config_for_size(size, PanopticFPNConfig.tiny, PanopticFPNConfig.full,
                             detector_classes(categories, thing_labels), len(categories.stuff_ids), dataset=dataset,
                             **overrides)
    return PanopticFPN(config, categories, merge=MergeConfig.for_size(size), thing_labels=thing_labels)


def semantic_class_names(categories: CategorySet) -> list[str]:
    """Names of the semantic branch's outputs: the stuff classes, then "things"."""
    return [categories[c].name for c in categories.stuff_ids] + ["things"]
