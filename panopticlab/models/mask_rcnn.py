"""Mask R-CNN, the baseline's instance network, composed of the shared parts.

    images -> ImageBatcher -> ResNet-FPN (P2-P6) -> RPN -> RoI heads (boxes, classes, masks)

Four attributes, named as torchvision's ``MaskRCNN`` names them, so a ``full`` model
loads the state dict of ``torchvision.models.detection.maskrcnn_resnet50_fpn`` exactly:
``transform`` (:class:`~.common.ImageBatcher`, no parameters), ``backbone``
(:func:`~.backbones.resnet_fpn`), ``rpn`` and ``roi_heads`` (:mod:`.detection`). Panoptic
FPN and UPSNet are built of the same parts.

* ``full``: the published architecture, identical to torchvision's
  ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)``: ResNet-50-FPN
  (256 channels, P2-P6), the detection branch of :class:`~.detection.DetectionConfig`,
  images resized to a short side of 800 (long side at most 1333). No weights are ever
  downloaded. (Fine-tuning from torchvision's COCO weights wants
  ``BackboneConfig("resnet50", norm="frozen_batch")``, as torchvision builds it.)
* ``tiny``: the same pipeline slimmed for a CPU: a
  :class:`~panopticlab.models.backbones.TinyResNet` (widths 32-256) with trainable
  normalisation, a 64-channel FPN, :meth:`DetectionConfig.tiny`, and images that keep
  their size. torchvision's level rule (a 224 px box pools from P4) puts nearly every
  RoI of such small images on P2, the finest level, which is what small objects need.

Interface, for images float [B, 3, H, W] in [0, 1] (normalised inside):

* train mode: ``model(images, targets)`` -> dict of scalar losses ``loss_classifier``,
  ``loss_box_reg``, ``loss_mask``, ``loss_objectness``, ``loss_rpn_box_reg``; their sum is
  the objective. ``targets`` is a list of B dicts in torchvision's detection format
  (:func:`panopticlab.data.targets.instance_target`: ``boxes`` [N, 4], ``labels`` [N]
  in 1..K, ``masks`` [N, H, W]) or the collated batch dict holding that list under
  ``"instances"`` (:func:`panopticlab.data.dataset.collate_panoptic`).
* eval mode: ``model(images)`` -> list of B dicts, torchvision's detections: ``boxes``
  float [N, 4] (x1, y1, x2, y2), ``labels`` int64 [N] (1..K), ``scores`` float [N],
  ``masks`` float [N, 1, H, W] (probabilities pasted into the image), plus
  ``category_ids`` int64 [N], the dataset category id of each label.
* ``model.inference(images)`` -> B
  :class:`~.common.PanopticPrediction`: the detections as a panoptic result without
  stuff (the "instance only" ablation of chapter 3), detections kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Sequence

import torch
from torch import nn

from ..data.categories import CategorySet
from ..postprocess.ablations import ablation_merge
from ..postprocess.heuristic import MergeConfig
from ..recipe import OptimConfig, PublishedSchedule
from .backbones import BackboneConfig, level_names, resnet_fpn, tiny_backbone
from .common import ImageBatcher, PanopticModel, PanopticPrediction, as_image_list, config_for_size, detections_to_numpy
from .detection import DetectionConfig, build_roi_heads, build_rpn, check_detection_targets, detect

__all__ = ["COCO_1X", "PUBLISHED_SCHEDULES", "PUBLISHED_INPUT_SIZES", "published_input_size", "MaskRCNNConfig",
           "MaskRCNN", "detector_classes", "detector_parts", "for_categories", "instance_targets",
           "relabelled_instances", "thing_label_tables"]


#: The test-time resize of the published detectors per dataset: (short side, longest long side).
PUBLISHED_INPUT_SIZES = MappingProxyType({"coco": (800, 1333), "cityscapes": (1024, 2048)})


def published_input_size(dataset: str) -> dict[str, int]:
    """``min_size`` and ``max_size`` of the detectors' published configuration for ``dataset``."""
    if dataset not in PUBLISHED_INPUT_SIZES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(PUBLISHED_INPUT_SIZES)}")
    short, long = PUBLISHED_INPUT_SIZES[dataset]
    return {"min_size": short, "max_size": long}


#: detectron2's 1x schedule on COCO, which its Mask R-CNN and Panoptic FPN share: SGD 0.02 at
#: 16 images, momentum 0.9, weight decay 1e-4, a linear warmup of 1000 iterations from 0.001 x lr
#: (detectron2's defaults), steps x 0.1; whole images at a short side drawn from 640-800.
COCO_1X = PublishedSchedule(
    "coco", 16, 90_000, OptimConfig(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4, warmup_steps=1000,
                                    warmup_factor=0.001, schedule="step", milestones=(60_000, 80_000)),
    crop_size=None, test_size=800, short_sides=(640, 672, 704, 736, 768, 800), max_size=1333,
    inputs="short side drawn from 640-800 (step 32), long side <= 1333, flip; tested at short side 800",
    source="detectron2 configs/Base-RCNN-FPN.yaml + COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    differences="starts from torchvision's ImageNet ResNet-50, where detectron2 starts from MSRA's Caffe one")
PUBLISHED_SCHEDULES = {
    "coco": COCO_1X,
    "cityscapes": PublishedSchedule(
        "cityscapes", 8, 24_000, COCO_1X.optim.replace(lr=0.01, milestones=(18_000,)), crop_size=None,
        test_size=1024, short_sides=tuple(range(800, 1025, 32)), max_size=2048,
        inputs="short side drawn from 800-1024 (step 32), long side <= 2048, flip; tested at short side 1024",
        source="detectron2 configs/Cityscapes/mask_rcnn_R_50_FPN.yaml (\"the setting used in Mask R-CNN paper, "
               "Appendix A\")",
        differences="starts from ImageNet weights, where detectron2 starts from its COCO Mask R-CNN "
                    "(\"for better, more stable performance\"); --weights takes a ResNet-50 body only"),
}


@dataclass
class MaskRCNNConfig:
    """Every choice of the instance network; defaults are the published (``full``) ones.

    Attributes:
        backbone: the body under the FPN.
        fpn_channels: channels of every pyramid level.
        returned_layers: ResNet stages feeding the FPN (1 = stride 4 .. 4 = stride 32);
            a max-pooled P6 is added on top.
        detection: the RPN and RoI heads (:class:`~.detection.DetectionConfig`).
        min_size, max_size: resize images to a short side of ``min_size`` and a long side
            of at most ``max_size``; ``min_size=None`` keeps the input size (resize in the
            data pipeline instead).
        input_scale: with ``min_size=None``, resize every image by this factor inside (the
            outputs come back at the input's size); ``None``: no resizing.
    """

    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig("resnet50", norm="batch"))
    fpn_channels: int = 256
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    min_size: int | None = 800
    max_size: int = 1333
    input_scale: float | None = None

    @property
    def num_classes(self) -> int:
        """Thing categories + 1 (background)."""
        return self.detection.num_classes

    @classmethod
    def full(cls, num_classes: int = 91, dataset: str = "coco", **detection_overrides) -> "MaskRCNNConfig":
        """The published Mask R-CNN R50-FPN (torchvision's ``maskrcnn_resnet50_fpn``) for ``dataset``:
        ``"coco"`` (images at short side 800, long side at most 1333) or ``"cityscapes"``
        (short side 1024, long side at most 2048: the full 1024 x 2048 image, as detectron2's
        ``configs/Cityscapes/mask_rcnn_R_50_FPN.yaml``, "the setting used in Mask R-CNN paper,
        Appendix A")."""
        sizes = published_input_size(dataset)
        return cls(detection=DetectionConfig(num_classes=num_classes, **detection_overrides), **sizes)

    @classmethod
    def tiny(cls, num_classes: int, **detection_overrides) -> "MaskRCNNConfig":
        """A slim Mask R-CNN for ~128 px images that trains on a CPU in minutes.

        ``input_scale=2``: the images are enlarged twice inside. Half the things of the
        built-in data cover fewer than 64 px (at 128 x 128, about COCO's "small"), 2 x 2
        cells of the stride-4 level, where neither a box nor a 14 x 14 mask can be placed
        to an IoU above 0.5. Measured on Panoptic FPN after 750 steps (40 unseen validation
        scenes): PQ_th 30.1 at the data's size, 51.7 enlarged twice (PQ 63.8 -> 76.0),
        for 1.7 times the time per step.
        """
        return cls(
            # the shared tiny body and its FPN, pretrained (tiny_backbone(pretrained=False)
            # trains from scratch); the detector's cost is in its heads, not in the body
            backbone=tiny_backbone(),
            fpn_channels=64,
            detection=DetectionConfig.tiny(num_classes, **detection_overrides),
            min_size=None,  # the data pipeline crops 128 px images; enlarged inside:
            input_scale=2.0,
        )


def detector_parts(config: MaskRCNNConfig) -> tuple[ImageBatcher, nn.Module, nn.Module, nn.Module]:
    """``(transform, backbone, rpn, roi_heads)`` of ``config``: Mask R-CNN's four parts,
    which every model with a detection branch (Panoptic FPN, UPSNet) builds with this."""
    transform = ImageBatcher(config.min_size, config.max_size, scale=config.input_scale)
    backbone = resnet_fpn(config.backbone, config.fpn_channels, config.returned_layers)
    rpn = build_rpn(config.detection, backbone.out_channels, len(config.returned_layers) + 1)  # + P6
    roi_heads = build_roi_heads(config.detection, backbone.out_channels, level_names(config.returned_layers))
    return transform, backbone, rpn, roi_heads


def detector_classes(categories: CategorySet, thing_labels: Sequence[int] | None = None) -> int:
    """The detector's labels, background included, for the things of ``categories`` (labels 1..K)
    or for the detector labels ``thing_labels`` (1..max)."""
    return (max(thing_labels) if thing_labels else len(categories.thing_ids)) + 1


def thing_label_tables(thing_ids: Sequence[int], num_classes: int, thing_labels: Sequence[int] | None = None
                       ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The detector label of each thing category, and the two tables between them.

    Args:
        thing_ids: the dataset's thing category ids (``categories.thing_ids``).
        num_classes: the detector's labels, background included.
        thing_labels: the detector label of each thing (default 1..K; torchvision's COCO
            detector numbers them by COCO category id).

    Returns:
        ``(thing_labels, dataset_to_detector_label, detector_label_to_category)``: int64
        [K + 1] (dataset label 1..K -> detector label, 0 -> 0) and int64 [num_classes]
        (detector label -> category id, 0 for a label without a category).

    Raises:
        ValueError: the labels are not as many as the things, not distinct, or outside 1..num_classes - 1.
    """
    labels = list(range(1, len(thing_ids) + 1) if thing_labels is None else thing_labels)
    if len(labels) != len(thing_ids) or len(set(labels)) != len(thing_ids) or \
            not all(1 <= label < num_classes for label in labels):
        raise ValueError(f"{len(thing_ids)} thing categories need as many distinct detector labels in "
                         f"1..{num_classes - 1}; got {labels}")
    to_category = torch.zeros(num_classes, dtype=torch.long)
    to_category[labels] = torch.tensor(list(thing_ids), dtype=torch.long)
    return labels, torch.tensor([0, *labels], dtype=torch.long), to_category


def relabelled_instances(targets, num_images: int, dataset_to_detector_label: torch.Tensor) -> list[dict]:
    """The checked detection targets of a batch, their dataset labels 1..K turned into the
    detector's labels (``dataset_to_detector_label[label]``; [K + 1], 0 -> 0)."""
    instances = instance_targets(targets)
    check_detection_targets(instances, num_images, len(dataset_to_detector_label))
    return [{**t, "labels": dataset_to_detector_label[t["labels"]]} for t in instances]


def instance_targets(targets) -> list[dict] | None:
    """The per-image detection targets of a collated batch dict (``"instances"``) or of a list."""
    if isinstance(targets, dict):
        if "instances" not in targets:
            raise ValueError(f"the target dict has no 'instances' entry (keys: {sorted(targets)})")
        return targets["instances"]
    return targets


class MaskRCNN(PanopticModel):
    """Mask R-CNN from a :class:`MaskRCNNConfig`; see the module docstring.

    Args:
        config: the architecture.
        categories: the dataset's categories: its things (``categories.thing_ids``) are the
            detector's labels 1..K, unless ``thing_labels``; their ids are the detections'
            ``category_ids``.
        merge: the merge settings of :meth:`inference`.
        thing_labels: the detector label of each thing (default 1..K). torchvision's COCO
            detector numbers its 91 labels by COCO category id:
            ``thing_labels=categories.thing_ids`` with 91 classes loads its weights as they are.
    """

    def __init__(self, config: MaskRCNNConfig, categories: CategorySet, merge: MergeConfig = MergeConfig(),
                 thing_labels: Sequence[int] | None = None):
        super().__init__()
        things = categories.thing_ids
        if thing_labels is None and len(things) != config.num_classes - 1:
            raise ValueError(f"{len(things)} thing ids for num_classes={config.num_classes} "
                             f"(labels 1..{config.num_classes - 1})")
        self.config = config
        self.categories = categories
        self.merge_config = merge
        self.transform, self.backbone, self.rpn, self.roi_heads = detector_parts(config)
        _, to_detector, to_category = thing_label_tables(things, config.num_classes, thing_labels)
        # not persistent: the state dict stays torchvision's
        self.register_buffer("label_to_category", to_category.long(), persistent=False)
        self.register_buffer("instance_to_detector_label", to_detector.long(), persistent=False)

    def forward(self, images, targets=None):
        """See the module docstring. ``images``: float [B, 3, H, W] or a list of [3, H, W]."""
        images = as_image_list(images)
        if self.training:
            # the data's labels 1..K, as the detector numbers them
            targets = relabelled_instances(targets, len(images), self.instance_to_detector_label)
            batch = self.transform.batch(images, targets)
            _, losses = detect(self.rpn, self.roi_heads, batch.images, self.backbone(batch.images.tensors),
                               batch.instances)
            return losses
        batch = self.transform.batch(images)
        detections, _ = detect(self.rpn, self.roi_heads, batch.images, self.backbone(batch.images.tensors))
        detections = self.transform.postprocess(detections, batch.images.image_sizes, batch.original_sizes)
        for d in detections:
            d["category_ids"] = self.label_to_category[d["labels"]]
        return detections

    def postprocess(self, outputs: list[dict]) -> list[PanopticPrediction]:
        """The eval-mode detections as panoptic results (no network runs here)."""
        predictions = []
        for d in map(detections_to_numpy, outputs):
            merged = ablation_merge("instance_only", None, d, self.categories, self.merge_config)
            predictions.append(PanopticPrediction(merged.panoptic, detections=d, merge=merged))
        return predictions


def for_categories(categories: CategorySet, size: str = "tiny", dataset: str | None = None,
                   thing_labels: Sequence[int] | None = None, **detection_overrides) -> MaskRCNN:
    """A ``tiny`` or ``full`` Mask R-CNN for the thing categories of ``categories``
    (labels 1..K in ``categories.thing_ids`` order, as :func:`~panopticlab.data.targets.instance_target`,
    or the detector labels ``thing_labels``: see :class:`MaskRCNN`); ``dataset`` selects the
    full model's published configuration (default COCO's; the tiny model has one)."""
    config = config_for_size(size, MaskRCNNConfig.tiny, MaskRCNNConfig.full, detector_classes(categories, thing_labels),
                             dataset=dataset, **detection_overrides)
    return MaskRCNN(config, categories, merge=MergeConfig.for_size(size), thing_labels=thing_labels)
