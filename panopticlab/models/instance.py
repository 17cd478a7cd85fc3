"""Mask R-CNN, the baseline's instance model, assembled from torchvision's parts.

torchvision already has every part (anchors, RPN, multi-scale RoIAlign, box and mask
heads, the losses and the post-processing); this module only chooses them:

* ``full``: the published architecture, identical to torchvision's
  ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)``: ResNet-50-FPN
  (256 channels, P2-P6), anchors 32..512 with ratios 0.5, 1, 2, RPN 2000/2000 train and
  1000/1000 test proposals, box head 7x7 RoIAlign + two 1024-d FC layers, mask head
  14x14 RoIAlign + 4 convs of 256 + deconv -> 28x28 per-class logits; images resized to a
  short side of 800 (long side at most 1333). No weights are ever downloaded.
* ``tiny``: the same pipeline slimmed for training from scratch on a CPU in minutes:
  a :class:`~panopticlab.models.backbones.TinyResNet` (widths 32-256) with trainable
  normalisation, a 64-channel FPN, anchors 8..128 for images of about 128 px, fewer
  proposals and RoIs, a 256-d box MLP and a two-conv mask head; images keep their size.
  torchvision's level rule (a 224 px box pools from P4) puts nearly every RoI of such
  small images on P2, the finest level, which is what small objects need.

Interface (what the training engine relies on), for images float [B, 3, H, W] in [0, 1]
(normalised inside, with torchvision's ImageNet mean and std):

* train mode: ``model(images, targets)`` -> dict of scalar losses ``loss_classifier``,
  ``loss_box_reg``, ``loss_mask``, ``loss_objectness``, ``loss_rpn_box_reg``; their sum is
  the objective. ``targets`` is a list of B dicts in torchvision's detection format
  (:func:`panopticlab.data.targets.instance_target`: ``boxes`` [N, 4], ``labels`` [N]
  in 1..K, ``masks`` [N, H, W]) or the collated batch dict holding that list under
  ``"instances"`` (:func:`panopticlab.data.dataset.collate_panoptic`).
* eval mode: ``model(images)`` -> list of B dicts, torchvision's detections: ``boxes``
  float [N, 4] (x1, y1, x2, y2), ``labels`` int64 [N] (1..K), ``scores`` float [N],
  ``masks`` float [N, 1, H, W] (probabilities pasted into the image), plus
  ``category_ids`` int64 [N], the dataset category id of each label when the model was
  built with ``thing_ids`` (else equal to ``labels``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
from torchvision.models import detection
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign

from ..data.categories import CategorySet
from .backbones import BackboneConfig, fpn_backbone

__all__ = ["MaskRCNNConfig", "MaskRCNN", "for_categories", "build_tiny", "build_full"]


@dataclass
class MaskRCNNConfig:
    """Every choice of the instance model; defaults are the published (``full``) ones.

    Attributes:
        num_classes: thing categories + 1 (label 0 is background).
        backbone: the body under the FPN.
        fpn_channels: channels of every pyramid level.
        returned_layers: ResNet stages feeding the FPN (1 = stride 4 .. 4 = stride 32);
            a max-pooled extra level is added on top.
        anchor_sizes: one anchor size (pixels) per pyramid level, finest first.
        aspect_ratios: anchor height / width ratios, the same on every level.
        min_size, max_size: resize images to a short side of ``min_size`` and a long side
            of at most ``max_size``; ``min_size=None`` keeps the input size (resize in the
            data pipeline instead).
        rpn_pre_nms_top_n_train/test, rpn_post_nms_top_n_train/test: proposals per image
            (before NMS: per level) in training and testing.
        rpn_batch_size_per_image: anchors sampled per image for the RPN loss.
        box_batch_size_per_image: RoIs sampled per image for the box and mask losses.
        box_roi_size, mask_roi_size: RoIAlign output sizes (7 and 14 in the paper).
        box_representation_size: width of the two-layer box MLP.
        mask_head_channels: channels of each conv of the mask head.
        mask_predictor_channels: channels of the mask deconvolution.
        box_score_thresh, box_nms_thresh, box_detections_per_img: test-time filtering.
    """

    num_classes: int = 91
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig("resnet50", norm="batch"))
    fpn_channels: int = 256
    returned_layers: tuple[int, ...] = (1, 2, 3, 4)
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    min_size: int | None = 800
    max_size: int = 1333
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    box_roi_size: int = 7
    mask_roi_size: int = 14
    box_representation_size: int = 1024
    mask_head_channels: tuple[int, ...] = (256, 256, 256, 256)
    mask_predictor_channels: int = 256
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 100

    @classmethod
    def full(cls, num_classes: int = 91, **overrides) -> "MaskRCNNConfig":
        """The published Mask R-CNN R50-FPN (torchvision's ``maskrcnn_resnet50_fpn``)."""
        return replace(cls(num_classes=num_classes), **overrides)

    @classmethod
    def tiny(cls, num_classes: int, **overrides) -> "MaskRCNNConfig":
        """A slim Mask R-CNN for ~128 px images that trains on a CPU in minutes."""
        config = cls(
            num_classes=num_classes,
            # twice the semantic model's widths: the detector's cost is in its heads, and the
            # wider body gained ~4 PQ on things for ~5% more time per step
            backbone=BackboneConfig("tiny", widths=(32, 64, 128, 256), blocks=(1, 1, 1, 1), norm="batch"),
            fpn_channels=64,
            anchor_sizes=(8, 16, 32, 64, 128),
            min_size=None,
            rpn_pre_nms_top_n_train=600,
            rpn_pre_nms_top_n_test=300,
            rpn_post_nms_top_n_train=100,
            rpn_post_nms_top_n_test=100,
            rpn_batch_size_per_image=128,
            box_batch_size_per_image=64,
            box_representation_size=256,
            mask_head_channels=(64, 64),
            mask_predictor_channels=64,
            box_detections_per_img=50,
        )
        return replace(config, **overrides)


class _KeepSizeTransform(GeneralizedRCNNTransform):
    """torchvision's batching and normalisation without the resize (``min_size=None``)."""

    def resize(self, image, target=None):
        return image, target


class MaskRCNN(detection.MaskRCNN):
    """torchvision's Mask R-CNN built from a :class:`MaskRCNNConfig`, taking batched tensors.

    Parameter names are torchvision's, so a ``full`` model loads the state dict of
    ``torchvision.models.detection.maskrcnn_resnet50_fpn`` as it is.

    Args:
        config: the architecture.
        thing_ids: dataset category id of labels 1..K (``categories.thing_ids``); adds
            ``category_ids`` to the detections.
    """

    def __init__(self, config: MaskRCNNConfig, thing_ids: Sequence[int] | None = None):
        if config.num_classes < 2:
            raise ValueError(f"num_classes counts background plus at least one thing class, got {config.num_classes}")
        if thing_ids is not None and len(thing_ids) != config.num_classes - 1:
            raise ValueError(f"{len(thing_ids)} thing ids for num_classes={config.num_classes} "
                             f"(labels 1..{config.num_classes - 1})")
        num_levels = len(config.returned_layers) + 1  # + the max-pooled level
        if len(config.anchor_sizes) != num_levels:
            raise ValueError(f"{len(config.anchor_sizes)} anchor sizes for {num_levels} pyramid levels")

        backbone = fpn_backbone(config.backbone.build(), config.fpn_channels, config.returned_layers)
        channels = backbone.out_channels
        anchors = AnchorGenerator(tuple((size,) for size in config.anchor_sizes),
                                  (tuple(config.aspect_ratios),) * num_levels)
        level_names = [str(i) for i in range(len(config.returned_layers))]
        box_roi_pool = MultiScaleRoIAlign(level_names, config.box_roi_size, sampling_ratio=2)
        mask_roi_pool = MultiScaleRoIAlign(level_names, config.mask_roi_size, sampling_ratio=2)
        super().__init__(
            backbone,
            num_classes=None,  # given by the predictors below
            min_size=config.min_size or 800,
            max_size=config.max_size,
            rpn_anchor_generator=anchors,
            rpn_head=RPNHead(channels, anchors.num_anchors_per_location()[0]),
            rpn_pre_nms_top_n_train=config.rpn_pre_nms_top_n_train,
            rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
            rpn_post_nms_top_n_test=config.rpn_post_nms_top_n_test,
            rpn_batch_size_per_image=config.rpn_batch_size_per_image,
            box_roi_pool=box_roi_pool,
            box_head=TwoMLPHead(channels * config.box_roi_size**2, config.box_representation_size),
            box_predictor=FastRCNNPredictor(config.box_representation_size, config.num_classes),
            box_batch_size_per_image=config.box_batch_size_per_image,
            box_score_thresh=config.box_score_thresh,
            box_nms_thresh=config.box_nms_thresh,
            box_detections_per_img=config.box_detections_per_img,
            mask_roi_pool=mask_roi_pool,
            mask_head=MaskRCNNHeads(channels, list(config.mask_head_channels), dilation=1),
            mask_predictor=MaskRCNNPredictor(config.mask_head_channels[-1], config.mask_predictor_channels,
                                             config.num_classes),
        )
        if config.min_size is None:
            t = self.transform
            self.transform = _KeepSizeTransform(t.min_size, t.max_size, t.image_mean, t.image_std)
        self.config = config
        labels_to_ids = torch.arange(config.num_classes) if thing_ids is None else torch.tensor([0, *thing_ids])
        # not persistent: the state dict stays torchvision's
        self.register_buffer("label_to_category", labels_to_ids.long(), persistent=False)

    def forward(self, images, targets=None):
        """See the module docstring. ``images``: float [B, 3, H, W] or a list of [3, H, W]."""
        if isinstance(images, torch.Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
            images = list(images.unbind(0))
        if isinstance(targets, dict):
            if "instances" not in targets:
                raise ValueError(f"the target dict has no 'instances' entry (keys: {sorted(targets)})")
            targets = targets["instances"]
        if self.training:
            if targets is None:
                raise ValueError("training needs targets (boxes, labels, masks per image)")
            if len(targets) != len(images):
                raise ValueError(f"{len(images)} images but {len(targets)} targets")
            for index, target in enumerate(targets):
                missing = [key for key in ("boxes", "labels", "masks") if key not in target]
                if missing:
                    raise ValueError(f"the target of image {index} lacks {missing} (keys: {sorted(target)})")
            return super().forward(images, targets)
        detections = super().forward(images)
        for d in detections:
            d["category_ids"] = self.label_to_category[d["labels"]]
        return detections


def for_categories(categories: CategorySet, size: str = "tiny", **overrides) -> MaskRCNN:
    """A ``tiny`` or ``full`` Mask R-CNN for the thing categories of ``categories``
    (labels 1..K in ``categories.thing_ids`` order, as :func:`~panopticlab.data.targets.instance_target`)."""
    configs = {"tiny": MaskRCNNConfig.tiny, "full": MaskRCNNConfig.full}
    if size not in configs:
        raise ValueError(f"unknown size {size!r}; choose 'tiny' or 'full'")
    return MaskRCNN(configs[size](len(categories.thing_ids) + 1, **overrides), categories.thing_ids)


def build_tiny(num_classes: int, thing_ids: Sequence[int] | None = None, **overrides) -> MaskRCNN:
    """The tiny instance model (:meth:`MaskRCNNConfig.tiny`); ``num_classes`` counts background."""
    return MaskRCNN(MaskRCNNConfig.tiny(num_classes, **overrides), thing_ids)


def build_full(num_classes: int = 91, thing_ids: Sequence[int] | None = None, **overrides) -> MaskRCNN:
    """The published Mask R-CNN R50-FPN (:meth:`MaskRCNNConfig.full`), randomly initialised."""
    return MaskRCNN(MaskRCNNConfig.full(num_classes, **overrides), thing_ids)
