"""The detection branch: an RPN and RoI heads from torchvision's parts, on any feature pyramid.

Mask R-CNN's two stages, assembled from torchvision (``RegionProposalNetwork``,
``RoIHeads`` with ``MultiScaleRoIAlign``, ``TwoMLPHead``, ``FastRCNNPredictor``,
``MaskRCNNHeads``, ``MaskRCNNPredictor``) by :func:`build_rpn` and
:func:`build_roi_heads` from one :class:`DetectionConfig`, which holds the published
anchor, sampling, box and mask settings once. Any model with a feature pyramid
(``{"p2": [B, C, H/4, W/4], ..., "p6": ...}``) runs the branch with :func:`detect`:
the baseline's Mask R-CNN, Panoptic FPN and UPSNet share it, never a copy of it.
:func:`mask_logits` gives the per-class mask logits (28 x 28 as published) of any boxes (the
detections, or ground-truth boxes), which UPSNet's panoptic head needs;
:func:`box_candidates` gives the box head's class probabilities and per-class boxes of
every proposal before any filtering, for a model that selects its detections its own way
(UPSNet: class-agnostic NMS).

Published defaults (torchvision's ``maskrcnn_resnet50_fpn``, detectron2's
``mask_rcnn_R_50_FPN_1x``): anchors 32..512 (one size per level P2-P6), ratios 0.5, 1,
2; RPN: IoU 0.7 / 0.3, 256 anchors per image, half positive, NMS 0.7, 2000/1000
proposals per image in training/testing (detectron2: 1000 per image in testing);
RoI heads: 512 RoIs per image, a quarter positive, IoU 0.5, 7 x 7 RoIAlign and two
1024-d FC layers for boxes, 14 x 14 RoIAlign, four 3 x 3 convs of 256 and a deconv to
28 x 28 per-class logits for masks; test-time score 0.05, NMS 0.5, 100 detections.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign, clip_boxes_to_image

from .roi_align import GridRoIAlign, HalfPixelRoIAlign

__all__ = ["DetectionConfig", "build_rpn", "build_roi_heads", "detect", "mask_logits", "box_candidates",
           "check_detection_targets"]


@dataclass
class DetectionConfig:
    """Every setting of the detection branch; defaults are the published ones.

    Attributes:
        num_classes: thing categories + 1 (label 0 is background).
        anchor_sizes: one anchor size (pixels) per pyramid level, finest first.
        aspect_ratios: anchor height / width ratios, the same on every level.
        rpn_pre_nms_top_n_train/test, rpn_post_nms_top_n_train/test: proposals per image
            (before NMS: per level) in training and testing.
        rpn_batch_size_per_image: anchors sampled per image for the RPN loss.
        rpn_nms_thresh: NMS IoU among proposals.
        box_batch_size_per_image: RoIs sampled per image for the box and mask losses.
        box_positive_fraction: share of positive RoIs in that sample.
        box_roi_size, mask_roi_size: RoIAlign output sizes (7 and 14 in the paper).
        roi_sampling_ratio: bilinear samples per RoIAlign bin along each axis (2; 0: as many
            as the bin covers, detectron2's ``POOLER_SAMPLING_RATIO: 0``).
        grid_roi_align: pool with :class:`~.roi_align.GridRoIAlign` (torchvision's numbers,
            a faster backward pass on a CPU) instead of torchvision's kernel.
        roi_aligned: pool with half-pixel aligned boxes (:class:`~.roi_align.HalfPixelRoIAlign`,
            detectron2's ``ROIAlignV2``); ``False``: torchvision's RoIAlign, which its COCO
            weights were trained with (the full configs keep it; :meth:`detectron2` switches).
        box_representation_size: width of the two-layer box MLP.
        mask_head_channels: channels of each 3x3 conv of the mask head.
        mask_predictor_channels: channels of the mask deconvolution.
        box_score_thresh, box_nms_thresh, box_detections_per_img: test-time filtering.
    """

    num_classes: int = 91
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_batch_size_per_image: int = 256
    rpn_nms_thresh: float = 0.7
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    box_roi_size: int = 7
    mask_roi_size: int = 14
    roi_sampling_ratio: int = 2
    grid_roi_align: bool = False
    roi_aligned: bool = False
    box_representation_size: int = 1024
    mask_head_channels: tuple[int, ...] = (256, 256, 256, 256)
    mask_predictor_channels: int = 256
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 100

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes counts background plus at least one thing class, got {self.num_classes}")
        if not self.mask_head_channels:
            raise ValueError("the mask head needs at least one conv (mask_head_channels is empty)")

    @classmethod
    def detectron2(cls, num_classes: int = 91, **overrides) -> "DetectionConfig":
        """detectron2's settings where they differ from torchvision's (``configs/Base-RCNN-FPN.yaml``
        and ``config/defaults.py``): 1000 proposals per image after the RPN's NMS in training
        (torchvision 2000), RoIAlign with half-pixel aligned boxes (``ROIAlignV2``) and an
        adaptive number of samples per bin (``POOLER_SAMPLING_RATIO: 0``; torchvision 2).
        Take it to train as detectron2 does; torchvision's COCO weights expect the default."""
        settings = dict(rpn_post_nms_top_n_train=1000, roi_aligned=True, roi_sampling_ratio=0)
        return replace(cls(num_classes=num_classes), **{**settings, **overrides})

    @classmethod
    def tiny(cls, num_classes: int, **overrides) -> "DetectionConfig":
        """The branch slimmed for ~128 px images on a CPU.

        Anchors 8..128: the objects of the built-in dataset at 128 px are 4 to 60 px
        across. Fewer proposals and sampled RoIs: a 128 px scene holds at most a dozen
        objects, and the RoI heads dominate the cost of a tiny detector's step. Measured
        after 1000 steps from the pretrained backbone (PQ_th of the baseline with the
        shipped PSPNet, 50 validation images; runs of one setting differ by about 1.5):

        * half of the 32 sampled RoIs positive instead of a quarter: PQ_th 35.1 instead
          of 30.9 (a 128 px scene offers few positives, and the classifier, which tells
          the shapes apart, learns from them); after 800 steps 31.1;
        * 250 proposals per level before the RPN's NMS in training instead of 600: one
          NMS call over all levels instead of one per level (torchvision switches at
          1000 boxes), 10 % of a step;
        * RoIAlign through ``grid_sample`` (:class:`~.roi_align.GridRoIAlign`, the same
          numbers): its CPU backward pass was about twice as fast at the data's size; with
          the images enlarged twice (``MaskRCNNConfig.tiny``), a whole step with
          torchvision's kernel measured the same (``benchmarks/train_step.py --split``);
        * one sample per RoIAlign bin: the boxes pool from P2, where a 16 px object spans
          4 feature pixels and a 7 x 7 grid of bins already samples it more finely than
          the features vary;
        * masks from 7 x 7 RoIs (14 x 14 logits): the objects are at most 60 px across;
          against 14 x 14 RoIs this cut a step by 30 % at an unchanged PQ_th;
        * a 256-d box MLP and two 64-channel mask convs: the narrow FPN below them has 64
          channels.
        """
        config = cls(num_classes=num_classes, anchor_sizes=(8, 16, 32, 64, 128),
                     rpn_pre_nms_top_n_train=250, rpn_pre_nms_top_n_test=300,
                     rpn_post_nms_top_n_train=100, rpn_post_nms_top_n_test=100,
                     rpn_batch_size_per_image=128, box_batch_size_per_image=32, box_positive_fraction=0.5,
                     roi_sampling_ratio=1, grid_roi_align=True, mask_roi_size=7,
                     box_representation_size=256, mask_head_channels=(64, 64), mask_predictor_channels=64,
                     box_detections_per_img=50)
        return replace(config, **overrides)


def build_rpn(config: DetectionConfig, channels: int, num_levels: int) -> RegionProposalNetwork:
    """torchvision's RPN for a pyramid of ``num_levels`` levels of ``channels`` channels each."""
    if len(config.anchor_sizes) != num_levels:
        raise ValueError(f"{len(config.anchor_sizes)} anchor sizes for {num_levels} pyramid levels")
    anchors = AnchorGenerator(tuple((size,) for size in config.anchor_sizes),
                              (tuple(config.aspect_ratios),) * num_levels)
    return RegionProposalNetwork(
        anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7, bg_iou_thresh=0.3,
        batch_size_per_image=config.rpn_batch_size_per_image, positive_fraction=0.5,
        pre_nms_top_n=dict(training=config.rpn_pre_nms_top_n_train, testing=config.rpn_pre_nms_top_n_test),
        post_nms_top_n=dict(training=config.rpn_post_nms_top_n_train, testing=config.rpn_post_nms_top_n_test),
        nms_thresh=config.rpn_nms_thresh)


def build_roi_heads(config: DetectionConfig, channels: int, level_names: Sequence[str]) -> RoIHeads:
    """torchvision's box and mask heads, pooling RoIs from the pyramid levels ``level_names`` (P2-P5)."""
    if config.grid_roi_align and config.roi_aligned:
        raise ValueError("grid_roi_align computes torchvision's RoIAlign (aligned=False); it cannot be roi_aligned")
    pooler = GridRoIAlign if config.grid_roi_align else HalfPixelRoIAlign if config.roi_aligned else MultiScaleRoIAlign
    box_roi_pool = pooler(list(level_names), config.box_roi_size, config.roi_sampling_ratio)
    mask_roi_pool = pooler(list(level_names), config.mask_roi_size, config.roi_sampling_ratio)
    return RoIHeads(
        box_roi_pool,
        TwoMLPHead(channels * config.box_roi_size**2, config.box_representation_size),
        FastRCNNPredictor(config.box_representation_size, config.num_classes),
        fg_iou_thresh=0.5, bg_iou_thresh=0.5,
        batch_size_per_image=config.box_batch_size_per_image, positive_fraction=config.box_positive_fraction,
        bbox_reg_weights=None,
        score_thresh=config.box_score_thresh, nms_thresh=config.box_nms_thresh,
        detections_per_img=config.box_detections_per_img,
        mask_roi_pool=mask_roi_pool,
        mask_head=MaskRCNNHeads(channels, list(config.mask_head_channels), dilation=1),
        mask_predictor=MaskRCNNPredictor(config.mask_head_channels[-1], config.mask_predictor_channels,
                                         config.num_classes),
    )


def check_detection_targets(targets: Sequence[dict] | None, num_images: int, num_classes: int | None = None) -> None:
    """A clear error for missing or mis-shaped detection targets (before torchvision's asserts).

    With ``num_classes``, every label must lie in 1..num_classes - 1 (0 is background).
    """
    if targets is None:
        raise ValueError("training needs targets (boxes, labels, masks per image)")
    if len(targets) != num_images:
        raise ValueError(f"{num_images} images but {len(targets)} targets")
    for index, target in enumerate(targets):
        missing = [key for key in ("boxes", "labels", "masks") if key not in target]
        if missing:
            raise ValueError(f"the target of image {index} lacks {missing} (keys: {sorted(target)})")
        boxes, labels, masks = target["boxes"], target["labels"], target["masks"]
        if boxes.dim() != 2 or boxes.shape[1] != 4 or labels.shape != (len(boxes),) or len(masks) != len(boxes):
            raise ValueError(f"the target of image {index} has boxes {tuple(boxes.shape)}, labels "
                             f"{tuple(labels.shape)} and masks {tuple(masks.shape)}; expected [N, 4], [N], [N, H, W]")
        if num_classes is not None and len(labels) and not bool(((labels >= 1) & (labels < num_classes)).all()):
            bad = sorted(set(labels[(labels < 1) | (labels >= num_classes)].tolist()))
            raise ValueError(f"the target of image {index} has labels {bad}, outside the thing labels "
                             f"1..{num_classes - 1} (is a category unknown to the model?)")


def detect(rpn: RegionProposalNetwork, roi_heads: RoIHeads, images: ImageList,
           features: "OrderedDict[str, torch.Tensor]", targets: list[dict] | None = None
           ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Both stages on one batch: proposals, then boxes, classes and masks.

    Args:
        images: the padded batch (its ``image_sizes`` bound the boxes).
        features: the pyramid, finest level first (the RPN runs on every level; the RoI
            heads pool from the levels they were built with).
        targets: detection targets in batch coordinates (training), else ``None``.

    Returns:
        ``(detections, losses)``: in training no detections and the five losses
        ``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg``,
        ``loss_mask``; in eval mode B dicts (``boxes`` in batch coordinates, ``labels``,
        ``scores``, ``masks`` [N, 1, 28, 28] probabilities of the predicted class) and no losses.
    """
    proposals, proposal_losses = rpn(images, features, targets)
    detections, detector_losses = roi_heads(features, proposals, images.image_sizes, targets)
    return detections, {**proposal_losses, **detector_losses}


def mask_logits(roi_heads: RoIHeads, features: "OrderedDict[str, torch.Tensor]", boxes: Sequence[torch.Tensor],
                image_sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Per-class mask logits of given boxes.

    Args:
        features: the pyramid the RoI heads pool from.
        boxes: per image float [N_i, 4] (x1, y1, x2, y2) in batch coordinates: the
            detections, or ground-truth boxes in training.
        image_sizes: (h, w) of each image inside the padded batch.

    Returns:
        per image float [N_i, num_classes, M, M] logits (M = 2 x ``mask_roi_size``: 28 as published).
    """
    boxes = [b.to(next(iter(features.values())).dtype) for b in boxes]
    pooled = roi_heads.mask_roi_pool(features, boxes, list(image_sizes))
    logits = roi_heads.mask_predictor(roi_heads.mask_head(pooled))
    return list(logits.split([len(b) for b in boxes]))


def box_candidates(roi_heads: RoIHeads, features: "OrderedDict[str, torch.Tensor]", proposals: Sequence[torch.Tensor],
                   image_sizes: Sequence[tuple[int, int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The box head on proposals, before any score threshold or NMS.

    The first half of torchvision's ``RoIHeads.postprocess_detections``: class
    probabilities (softmax) and the proposal's box decoded for every class, clipped to
    the image.

    Args:
        features: the pyramid the RoI heads pool from.
        proposals: per image float [P_i, 4] (the RPN's output) in batch coordinates.
        image_sizes: (h, w) of each image inside the padded batch.

    Returns:
        per image ``(boxes, scores)``: float [P_i, num_classes, 4] and [P_i, num_classes]
        (class 0 is background).
    """
    proposals = [p.to(next(iter(features.values())).dtype) for p in proposals]
    pooled = roi_heads.box_roi_pool(features, proposals, list(image_sizes))
    class_logits, box_regression = roi_heads.box_predictor(roi_heads.box_head(pooled))
    boxes = roi_heads.box_coder.decode(box_regression, proposals)
    scores = F.softmax(class_logits, -1)
    counts = [len(p) for p in proposals]
    return [(clip_boxes_to_image(b, size), s)
            for b, s, size in zip(boxes.split(counts), scores.split(counts), image_sizes)]
