"""UPSNet (Xiong et al., CVPR 2019): one network, a deformable semantic head and a parameter-free panoptic head.

    images -> ImageBatcher -> ResNet-FPN (P2-P6) -+-> RPN -> RoI heads   (boxes, classes, 28 x 28 mask logits)
                                                  +-> DeformableSemanticHead (P2-P5) -> X (every class, stride 4)
    X, mask logits -> the panoptic head: softmax over [stuff | one channel per instance | unknown]

Mask R-CNN's four parts (:func:`~.mask_rcnn.detector_parts`: ``transform``, ``backbone``,
``rpn``, ``roi_heads``, under torchvision's names) plus ``semantic_head``
(:class:`~.deformable.DeformableSemanticHead`: one shared stack of deformable 3 x 3 convs
on each of P2-P5, upsampled to stride 4, concatenated, a 1 x 1 conv). The semantic head
predicts **every** category, the ``N_st`` stuff classes first and then the things
(:func:`~panopticlab.postprocess.upsnet.semantic_layout`): the panoptic head reads the
logit of each instance's class. The panoptic head has no weights; its logits are
:mod:`.upsnet_head`, its inference steps :mod:`panopticlab.postprocess.upsnet`.

Training (one backbone pass; the eight losses, weighted, their sum the objective):

* the five Mask R-CNN losses (weight 1): ``loss_objectness``, ``loss_rpn_box_reg``,
  ``loss_classifier``, ``loss_box_reg``, ``loss_mask``;
* ``loss_semantic``: pixel cross-entropy of the semantic logits, upsampled 4x (void ignored);
* ``loss_semantic_roi`` (option, on for COCO): the semantic classifier on a 28 x 28
  RoIAlign of the concatenated feature inside each ground-truth box, against the
  semantic targets cropped to the box and resized (nearest);
* ``loss_panoptic``: the panoptic head at stride 4 on **ground-truth** boxes (not
  detections), of which a random 70 % (``box_keep_fraction``; at least one) are kept:
  their pixels are the targets of their channels, the pixels of the dropped ones (and
  any other thing pixel without an instance, e.g. crowd) the target of the unknown
  channel, ``max(X_thing) - max(X_mask)`` (:func:`keep_instances`, :func:`panoptic_targets`).
  Mask logits come from the mask head on the kept boxes (:func:`~.detection.mask_logits`).

The RoI and panoptic cross-entropies are averaged over all pixels with void counting zero,
as the published code does (``reduce=False`` then ``mean``); the panoptic one per image,
then over the batch (the published batch is one image per GPU).

Published loss weights (:data:`LOSS_WEIGHTS`): COCO 0.2 (semantic), 0.04 (semantic RoI,
0.2 x 0.2), 0.1 (panoptic); Cityscapes 1.0, off, 0.5.

Inference: the RPN's proposals through the box head (:func:`~.detection.box_candidates`);
the head's detections among all (proposal, class) pairs: score > 0.6, class-agnostic NMS
0.5, at most 100 (:func:`~panopticlab.postprocess.upsnet.select_detections`); their mask
logits; then :func:`~.upsnet_head.unified_panoptic` at the input image's resolution
(same-class overlap removal at 30 %, argmax, unknown -> void, the majority relabelling,
the stuff area limit; :class:`~panopticlab.postprocess.upsnet.UPSNetHeadConfig`).
The published code builds the head's logits at the resized network input and resizes the
resulting labels to the image (nearest); here the logits are resized (bilinear) and the
boxes rescaled first, so every step, the stuff area limit included, counts the image's
pixels. The tiny models do not resize, so the two agree there.

* ``full``: ResNet-50-FPN (256 channels), the published detection branch, a 3-layer
  deformable head of 128 channels, the semantic RoI loss, images at short side 800 (long
  side at most 1333). For COCO (torchvision's 91 detector labels, 80 things, 53 stuff:
  133 semantic classes) 45,659,180 parameters: torchvision's Mask R-CNN (44,454,513) plus
  a semantic head of 1,204,667 (three deformable layers with their offset convs, 1,136,438;
  the 512 -> 133 classifier, 68,229). Its ``transform``, ``backbone``, ``rpn`` and
  ``roi_heads`` take torchvision's ``maskrcnn_resnet50_fpn`` state dict as they are
  (``thing_labels=categories.thing_ids``): only ``semantic_head.*`` stays new.
  :meth:`UPSNetConfig.cityscapes` is the Cityscapes variant.
* ``tiny``: the tiny Mask R-CNN of chapter 3 (the shipped pretrained tiny ResNet-FPN,
  :meth:`~.detection.DetectionConfig.tiny`) and a 2-layer, 32-channel deformable head
  (:meth:`UPSNetConfig.tiny` says why).

Interface, for images float [B, 3, H, W] in [0, 1]:

* train mode: ``model(images, targets)`` with the collated batch dict (``semantic``: int64
  [B, H, W] train ids of all categories, void 255; ``instances``: B detection targets) ->
  the losses above (weighted);
* eval mode: ``model(images)`` -> ``{"logits": float [B, C, H, W] semantic logits at the
  input size, "semantic": int64 [B, H, W] their argmax as category ids, "detections": B
  dicts (``boxes`` [N, 4] in input pixels, ``labels``, ``scores``, ``category_ids``,
  ``masks`` float [N, 1, H, W] probabilities pasted, ``mask_logits`` [N, M, M] of each
  class), "selections": B :class:`~panopticlab.postprocess.upsnet.DetectionSelection`}``;
* ``model.inference(images)`` -> B :class:`~.common.PanopticPrediction` (the head's
  result, the semantic map, the detections, ``merge``: the
  :class:`~panopticlab.postprocess.upsnet.UPSNetPanoptic` with every step;
  ``outputs["semantic_logits"]`` float [C, H, W], ``outputs["mask_logits"]``).

Published training settings: :data:`PUBLISHED_SCHEDULES`. Left out of the published
model: the COCO configs' ``fpn_with_gap`` (global-average-pooled res5 added to the P5
lateral; torchvision's FPN, whose weights the full model loads, has none) and its frozen
BatchNorm with frozen stem and res2 (as for Panoptic FPN: pass
``BackboneConfig("resnet50", norm="frozen_batch", frozen_stages=2)`` to fine-tune).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.categories import VOID_LABEL, CategorySet
from ..postprocess.heuristic import MergeConfig
from ..recipe import OptimConfig, PublishedSchedule
from ..postprocess.upsnet import UPSNetHeadConfig, select_detections, semantic_layout
from .backbones import level_names
from .common import PanopticModel, PanopticPrediction, as_image_list, config_for_size, detections_to_numpy, \
    map_train_ids, semantic_targets, stack_if_one_size
from .deformable import DeformableSemanticHead
from .detection import box_candidates, detect, mask_logits
from .mask_rcnn import MaskRCNNConfig, detector_classes, detector_parts, relabelled_instances, thing_label_tables
from .semantic_fpn import COMMON_STRIDE, SemanticFPNHead
from .upsnet_head import crop_to_boxes, panoptic_logits, paste_mask_logits, unified_panoptic

__all__ = ["UPSNetConfig", "UPSNet", "PUBLISHED_SCHEDULES", "LOSS_WEIGHTS", "LossTerm", "LOSSES",
           "for_categories",
           "keep_instances", "panoptic_targets", "semantic_roi_targets", "semantic_class_names"]

#: The published loss weights per dataset (uber-research/UPSNet experiment YAMLs); the five
#: Mask R-CNN losses have weight 1. ``semantic_roi``: ``None`` where the loss is off.
LOSS_WEIGHTS = MappingProxyType({
    "coco": MappingProxyType({"semantic": 0.2, "semantic_roi": 0.2 * 0.2, "panoptic": 0.1}),
    "cityscapes": MappingProxyType({"semantic": 1.0, "semantic_roi": None, "panoptic": 0.5}),
})


@dataclass(frozen=True)
class LossTerm:
    """One of UPSNet's losses, for the table of chapter 5.

    Attributes:
        name: the key of the loss dict that ``model(images, targets)`` returns.
        head: the part it trains: ``RPN``, ``instance``, ``semantic`` or ``panoptic``.
        kind: the loss function, and on what.
        weights: the published weight per dataset (:data:`LOSS_WEIGHTS`; the Mask R-CNN
            losses 1, as the published training script adds them); ``None`` where it is off.
    """

    name: str
    head: str
    kind: str
    weights: MappingProxyType


def _published(key: str | None) -> MappingProxyType:
    return MappingProxyType({dataset: 1.0 if key is None else weights[key] for dataset, weights in LOSS_WEIGHTS.items()})


#: The eight losses, head by head (their order in the loss dict).
LOSSES = (
    LossTerm("loss_objectness", "RPN", "binary cross-entropy: is the anchor an object", _published(None)),
    LossTerm("loss_rpn_box_reg", "RPN", "smooth L1: the anchor's offsets to its box", _published(None)),
    LossTerm("loss_classifier", "instance", "cross-entropy over the thing classes and background", _published(None)),
    LossTerm("loss_box_reg", "instance", "smooth L1: the proposal's offsets to its box", _published(None)),
    LossTerm("loss_mask", "instance", "per-pixel binary cross-entropy of the mask of the box's class",
             _published(None)),
    LossTerm("loss_semantic", "semantic", "per-pixel cross-entropy over every category", _published("semantic")),
    LossTerm("loss_semantic_roi", "semantic", "the same cross-entropy on a 28 x 28 RoIAlign of each ground-truth "
                                              "box", _published("semantic_roi")),
    LossTerm("loss_panoptic", "panoptic", "per-pixel cross-entropy over the stuff, instance and unknown channels",
             _published("panoptic")),
)


@dataclass
class UPSNetConfig:
    """Every choice of UPSNet; defaults are the published (``full``, COCO) ones.

    Attributes:
        num_stuff: stuff classes, the first semantic channels.
        num_things: thing categories, the semantic channels after them.
        detector: the Mask R-CNN branch and the shared backbone (:class:`~.mask_rcnn.MaskRCNNConfig`).
        semantic_channels: width of each level's output in the semantic head (128).
        semantic_layers: deformable layers of its shared sub-network (COCO 3, Cityscapes 2).
        grid_sampling: compute the semantic head's deformable convs and RoI pooling by
            bilinear sampling (:func:`~.deformable.grid_deform_conv2d`,
            :func:`~.roi_align.grid_roi_align`: torchvision's numbers, a faster CPU backward).
        semantic_loss_weight: weight of the semantic cross-entropy (COCO 0.2).
        semantic_roi_loss: add the semantic RoI loss (COCO yes).
        semantic_roi_loss_weight: its weight (COCO 0.04).
        semantic_roi_size: side of its RoIs (28, the mask logits' size).
        panoptic_loss_weight: weight of the panoptic cross-entropy (COCO 0.1).
        box_keep_fraction: share of ground-truth boxes the panoptic head keeps in
            training (0.7); below 1 the dropped ones train the unknown channel, at 1
            there is no unknown channel.
        ignore_index: semantic target label without loss (void).
    """

    num_stuff: int = 53
    num_things: int = 80
    detector: MaskRCNNConfig = field(default_factory=MaskRCNNConfig)
    semantic_channels: int = 128
    semantic_layers: int = 3
    grid_sampling: bool = False
    semantic_loss_weight: float = LOSS_WEIGHTS["coco"]["semantic"]
    semantic_roi_loss: bool = True
    semantic_roi_loss_weight: float = LOSS_WEIGHTS["coco"]["semantic_roi"]
    semantic_roi_size: int = 28
    panoptic_loss_weight: float = LOSS_WEIGHTS["coco"]["panoptic"]
    box_keep_fraction: float = 0.7
    ignore_index: int = VOID_LABEL

    def __post_init__(self):
        if not 0.0 < self.box_keep_fraction <= 1.0:
            raise ValueError(f"box_keep_fraction must lie in (0, 1], got {self.box_keep_fraction}")
        if self.num_things < 1:
            raise ValueError(f"UPSNet needs at least one thing class, got num_things={self.num_things}")

    @property
    def num_classes(self) -> int:
        """Semantic classes: stuff + things."""
        return self.num_stuff + self.num_things

    @property
    def unknown(self) -> bool:
        """Whether the panoptic head has the unknown channel (a box keep fraction below 1)."""
        return self.box_keep_fraction < 1.0

    @classmethod
    def full(cls, num_classes: int = 81, num_stuff: int = 53, num_things: int | None = None,
             **overrides) -> "UPSNetConfig":
        """The published UPSNet R50 on COCO (``upsnet_resnet50_coco_16gpu.yaml``); ``num_classes``
        counts the detector's labels plus background (COCO: 81; torchvision's numbering: 91),
        ``num_things`` the thing categories (default ``num_classes - 1``)."""
        things = num_classes - 1 if num_things is None else num_things
        return replace(cls(num_stuff=num_stuff, num_things=things, detector=MaskRCNNConfig.full(num_classes)),
                       **overrides)

    @classmethod
    def cityscapes(cls, num_classes: int = 9, num_stuff: int = 11, num_things: int | None = None,
                   **overrides) -> "UPSNetConfig":
        """The published UPSNet R50 on Cityscapes (``upsnet_resnet50_cityscapes.yaml``): two
        deformable layers, loss weights 1.0 and 0.5, no semantic RoI loss, test images at
        short side 1024 (long side at most 2048)."""
        weights = LOSS_WEIGHTS["cityscapes"]
        config = cls.full(num_classes, num_stuff, num_things, semantic_layers=2,
                          semantic_loss_weight=weights["semantic"], semantic_roi_loss=False,
                          panoptic_loss_weight=weights["panoptic"])
        config.detector = replace(config.detector, min_size=1024, max_size=2048)
        return replace(config, **overrides)

    @classmethod
    def tiny(cls, num_classes: int, num_stuff: int, num_things: int | None = None, **overrides) -> "UPSNetConfig":
        """Chapter 3's tiny Mask R-CNN plus a slim deformable head, for ~128 px images on a CPU.

        Two deformable layers (the Cityscapes depth) of 32 channels, half the 64-channel
        FPN as the published 128 are half of 256: the head's deformable convs at stride 4
        are its cost. They sample with :func:`~.deformable.grid_deform_conv2d`, about ten
        times faster forward and backward than torchvision's CPU kernel at these sizes, and
        the semantic RoIs pool with :func:`~.roi_align.grid_roi_align` (the same numbers
        both). A training step of 8 images of 128 px then took 0.9 s on two CPU threads
        (1.1 s of CPU time on one thread, Panoptic FPN's tiny 0.6 s). 14 x 14 semantic RoIs: the size of the tiny
        mask logits (:meth:`~.detection.DetectionConfig.tiny`), as the published 28 is the
        published mask size. The loss weights and the box keep fraction stay the published COCO
        ones (not tuned on the built-in data).
        """
        things = num_classes - 1 if num_things is None else num_things
        return replace(cls(num_stuff=num_stuff, num_things=things, detector=MaskRCNNConfig.tiny(num_classes),
                           semantic_channels=32, semantic_layers=2, grid_sampling=True, semantic_roi_size=14),
                       **overrides)


# SGD, momentum 0.9, step decay x 0.1, linear warmup from 0.1 x lr; 16 GPUs x 1 image
_UPSNET_SOLVER = OptimConfig(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4, warmup_steps=1500,
                             warmup_factor=0.1, schedule="step", milestones=(60_000, 80_000))
# UPSNet's solver gives biases twice the learning rate and no weight decay: one group here
_UPSNET_DIFFERENCES = ("starts from torchvision's ImageNet ResNet-50 (UPSNet: a Caffe ResNet-50); biases train at "
                       "the base learning rate with weight decay (UPSNet: 2x, none)")
PUBLISHED_SCHEDULES = {
    "coco": PublishedSchedule(
        "coco", 16, 90_000, _UPSNET_SOLVER, crop_size=None, test_size=800, short_sides=(800,), max_size=1333,
        inputs="short side 800, long side <= 1333, flip; tested at short side 800",
        source="uber-research/UPSNet upsnet/experiments/upsnet_resnet50_coco_16gpu.yaml (16 GPUs x 1 image)",
        differences=_UPSNET_DIFFERENCES),
    "cityscapes": PublishedSchedule(
        "cityscapes", 16, 12_000, _UPSNET_SOLVER.replace(milestones=(9_000,)), crop_size=None, test_size=1024,
        short_sides=tuple(range(800, 1025, 32)), max_size=2048,
        inputs="short side 800-1024 (step 32), long side <= 2048, flip; tested at short side 1024",
        source="uber-research/UPSNet upsnet/experiments/upsnet_resnet50_cityscapes.yaml (16 GPUs x 1 image)",
        differences=_UPSNET_DIFFERENCES),
}


# --- the panoptic head's training targets ---------------------------------------------------------
def keep_instances(count: int, fraction: float = 0.7, generator: torch.Generator | None = None) -> Tensor:
    """Which ground-truth instances the panoptic head keeps in a training step.

    A random ``max(int(count * fraction), 1)`` of them, in random order (the order of their
    channels), drawn without replacement from ``generator`` (default torch's global one);
    all in input order when ``fraction`` is 1; none of none.

    Returns:
        int64 [K] indices.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the keep fraction must lie in (0, 1], got {fraction}")
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    if fraction >= 1.0:
        return torch.arange(count)
    return torch.randperm(count, generator=generator)[:max(int(count * fraction), 1)]


def panoptic_targets(semantic: Tensor, masks: Tensor, num_stuff: int, unknown: bool = True,
                     void_label: int = VOID_LABEL) -> Tensor:
    """The panoptic head's per-pixel targets (UPSNet's ``MaskMatching``).

    Args:
        semantic: int64 [h, w] semantic labels (stuff ``0..N_st-1``, things after, void).
        masks: bool [N, h, w] the kept instances, in the order of their channels.
        num_stuff: ``N_st``.
        unknown: the head has an unknown channel.

    Returns:
        int64 [h, w]: a stuff pixel its stuff label; a pixel of kept instance ``i`` (a later
        one where they overlap) ``N_st + i``; every other thing pixel (dropped instances,
        crowd regions) ``N_st + N``, the unknown channel, or void without one; void stays void.
    """
    if masks.dim() != 3 or tuple(masks.shape[1:]) != tuple(semantic.shape):
        raise ValueError(f"masks {tuple(masks.shape)} for semantic labels {tuple(semantic.shape)}")
    count = len(masks)
    other = num_stuff + count if unknown else void_label
    target = torch.where(semantic < num_stuff, semantic, torch.full_like(semantic, other))
    target = torch.where(semantic == void_label, semantic, target)
    if count:
        order = torch.arange(1, count + 1, device=masks.device).view(-1, 1, 1)
        last = (masks.bool().long() * order).max(dim=0).values  # the last instance covering each pixel, 0: none
        target = torch.where(last > 0, num_stuff + last - 1, target)
    return target


def semantic_roi_targets(semantic: Tensor, boxes: Tensor, size: int) -> Tensor:
    """The semantic RoI loss's targets: int64 [K, size, size], each box's crop of ``semantic``
    (int64 [H, W]; the box rounded to pixels, at least one) resized to ``size`` (nearest)."""
    height, width = semantic.shape
    crops = []
    for x1, y1, x2, y2 in boxes.detach().round().long().tolist():
        x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        x2, y2 = max(min(x2, width), x1 + 1), max(min(y2, height), y1 + 1)
        crop = semantic[y1:y2, x1:x2][None, None].float()
        crops.append(F.interpolate(crop, size=(size, size), mode="nearest")[0, 0].long())
    return torch.stack(crops) if crops else semantic.new_zeros(0, size, size)


class UPSNet(PanopticModel):
    """UPSNet from an :class:`UPSNetConfig`; see the module docstring.

    Args:
        config: the architecture and its losses.
        categories: the dataset's categories; the semantic channels are
            ``categories.stuff_ids`` then ``categories.thing_ids``.
        head: the panoptic head's inference settings.
        merge: the heuristic merge the evaluator's ablations apply to this model's
            semantic map and detections (the learned head against the rule, same weights).
        thing_labels: the detector label of each thing category (``categories.thing_ids``
            order); default 1..K. torchvision's COCO detector numbers its 91 labels by COCO
            category id: ``thing_labels=categories.thing_ids`` with 91 classes loads it.
    """

    def __init__(self, config: UPSNetConfig, categories: CategorySet, head: UPSNetHeadConfig = UPSNetHeadConfig(),
                 merge: MergeConfig = MergeConfig(), thing_labels: Sequence[int] | None = None):
        super().__init__()
        things, stuff = categories.thing_ids, categories.stuff_ids
        num_classes = config.detector.num_classes
        thing_labels, to_detector, to_category = thing_label_tables(things, num_classes, thing_labels)
        if len(stuff) != config.num_stuff or len(things) != config.num_things:
            raise ValueError(f"the categories have {len(stuff)} stuff and {len(things)} thing classes, the config "
                             f"{config.num_stuff} and {config.num_things}")
        self.config = config
        self.categories = categories
        self.head_config = head
        self.merge_config = merge
        self.transform, self.backbone, self.rpn, self.roi_heads = detector_parts(config.detector)
        names = level_names(config.detector.returned_layers)
        self.semantic_head = DeformableSemanticHead(self.backbone.out_channels, config.num_classes,
                                                    SemanticFPNHead.strides_of(names), config.semantic_channels,
                                                    config.semantic_layers, config.grid_sampling)
        layout = semantic_layout(categories)
        channel_of = {c: k for k, c in enumerate(layout)}
        # train id (all categories, the dataset's targets) -> semantic channel (stuff first)
        self.register_buffer("train_id_to_label", torch.tensor([channel_of[c.id] for c in categories.categories]),
                             persistent=False)
        # semantic channel -> category id
        self.register_buffer("label_to_category", torch.tensor(layout).long(), persistent=False)
        # dataset instance label (1..K, as PanopticDataset writes them) -> detector label -> category / channel
        self.register_buffer("instance_to_detector_label", to_detector, persistent=False)
        self.register_buffer("detector_label_to_category", to_category, persistent=False)  # 0: no category
        label_to_channel = torch.full((num_classes,), -1, dtype=torch.long)  # -1: no category
        label_to_channel[thing_labels] = torch.tensor([channel_of[c] for c in things])
        self.register_buffer("detector_label_to_channel", label_to_channel, persistent=False)

    def semantic_labels(self, train_ids: Tensor) -> Tensor:
        """The semantic head's targets: int64 [B, H, W] train ids -> semantic channels / void."""
        return map_train_ids(train_ids, self.train_id_to_label, self.config.ignore_index)

    def forward(self, images, targets: dict | None = None):
        """See the module docstring."""
        image_list = as_image_list(images)
        if self.training:
            if not isinstance(targets, dict):
                raise ValueError("training UPSNet needs the collated target dict with 'semantic' and 'instances' "
                                 "(PanopticDataset(..., targets=('semantic', 'instances')))")
            semantic = self.semantic_labels(semantic_targets(targets, images))
            instances = relabelled_instances(targets, len(image_list), self.instance_to_detector_label)
            batch = self.transform.batch(image_list, instances, semantic)
            features = self.backbone(batch.images.tensors)
            _, losses = detect(self.rpn, self.roi_heads, batch.images, features, batch.instances)
            return {**losses, **self._head_losses(batch, features)}
        batch = self.transform.batch(image_list)
        features = self.backbone(batch.images.tensors)
        logits = self.transform.to_input_size(self.semantic_head(features), batch)
        detections, selections = self._detections(batch, features)
        semantic = [self.label_to_category[x.argmax(dim=0)] for x in logits]
        return {"logits": stack_if_one_size(logits), "semantic": stack_if_one_size(semantic), "detections": detections,
                "selections": selections}

    def _head_losses(self, batch, features) -> dict[str, Tensor]:
        """``loss_semantic``, ``loss_semantic_roi`` (if on) and ``loss_panoptic``, weighted."""
        config = self.config
        feature = self.semantic_head.features(features)      # [B, 4 x channels, H/4, W/4]
        score = self.semantic_head.predictor(feature)        # X at stride 4
        logits = F.interpolate(score, size=batch.images.tensors.shape[-2:], mode="bilinear", align_corners=False)
        losses = {"loss_semantic": config.semantic_loss_weight
                  * F.cross_entropy(logits, batch.semantic, ignore_index=config.ignore_index)}
        if config.semantic_roi_loss:
            losses["loss_semantic_roi"] = config.semantic_roi_loss_weight * self._semantic_roi_loss(feature, batch)
        losses["loss_panoptic"] = config.panoptic_loss_weight * self._panoptic_loss(score, features, batch)
        return losses

    def _semantic_roi_loss(self, feature: Tensor, batch) -> Tensor:
        boxes = [t["boxes"] for t in batch.instances]
        size = self.config.semantic_roi_size
        logits = self.semantic_head.roi_logits(feature, boxes, size, self.config.detector.detection.roi_sampling_ratio)
        if len(logits) == 0:  # no thing in the batch
            return feature.sum() * 0.0
        targets = torch.cat([semantic_roi_targets(s, b, size) for s, b in zip(batch.semantic, boxes)])
        return F.cross_entropy(logits, targets, ignore_index=self.config.ignore_index, reduction="none").mean()

    def _panoptic_loss(self, score: Tensor, features, batch) -> Tensor:
        """The panoptic head at stride 4 on the kept ground-truth boxes; mean over images."""
        num_stuff, unknown, void = self.config.num_stuff, self.config.unknown, self.config.ignore_index
        keeps = [keep_instances(len(t["boxes"]), self.config.box_keep_fraction).to(score.device)
                 for t in batch.instances]
        boxes = [t["boxes"][k] for t, k in zip(batch.instances, keeps)]
        labels = [t["labels"][k] for t, k in zip(batch.instances, keeps)]
        if sum(len(b) for b in boxes):
            logits = mask_logits(self.roi_heads, features, boxes, batch.images.image_sizes)
        else:  # no thing in the batch: the head is stuff and unknown only
            side = 2 * self.config.detector.detection.mask_roi_size
            logits = [score.new_zeros(0, self.config.detector.num_classes, side, side) for _ in boxes]
        size, stride = tuple(score.shape[-2:]), COMMON_STRIDE
        losses = []
        for index, (target, keep) in enumerate(zip(batch.instances, keeps)):
            y = logits[index][torch.arange(len(keep), device=score.device), labels[index]]
            channels = self.detector_label_to_channel[labels[index]]
            x_mask = crop_to_boxes(score[index], channels, boxes[index], 1.0 / stride)
            y_mask = paste_mask_logits(y, boxes[index], size, 1.0 / stride)
            head = panoptic_logits(score[index], num_stuff, x_mask, y_mask, unknown)
            masks = target["masks"][keep][:, ::stride, ::stride].bool()
            masks = F.pad(masks, (0, size[1] - masks.shape[-1], 0, size[0] - masks.shape[-2]))
            truth = panoptic_targets(batch.semantic[index, ::stride, ::stride], masks, num_stuff, unknown, void)
            losses.append(F.cross_entropy(head[None], truth[None], ignore_index=void, reduction="none").mean())
        return torch.stack(losses).mean()

    def _detections(self, batch, features):
        """The head's detections (step 1 of its inference), their mask logits, in input pixels."""
        head = self.head_config
        proposals, _ = self.rpn(batch.images, features)
        candidates = box_candidates(self.roi_heads, features, proposals, batch.images.image_sizes)
        detections, selections = [], []
        valid = torch.nonzero(self.detector_label_to_channel >= 0).flatten()  # thing labels with a category
        for boxes, scores in candidates:  # every (proposal, thing class) pair, proposal-major
            labels = valid.repeat(len(boxes))
            boxes, scores = boxes[:, valid].reshape(-1, 4), scores[:, valid].reshape(-1)
            selection = select_detections(boxes, scores, score_threshold=head.score_threshold,
                                          nms_threshold=head.nms_threshold, max_detections=head.max_detections)
            keep = torch.as_tensor(selection.keep, device=boxes.device)
            detections.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
            selections.append(selection)
        if sum(len(d["boxes"]) for d in detections):
            logits = mask_logits(self.roi_heads, features, [d["boxes"] for d in detections], batch.images.image_sizes)
        else:
            size = 2 * self.config.detector.detection.mask_roi_size
            logits = [batch.images.tensors.new_zeros(0, self.config.detector.num_classes, size, size)
                      for _ in detections]
        for d, m in zip(detections, logits):
            d["mask_logits"] = m[torch.arange(len(m), device=m.device), d["labels"]]
            d["masks"] = d["mask_logits"].sigmoid()[:, None]
        detections = self.transform.postprocess(detections, batch.images.image_sizes, batch.original_sizes)
        for d in detections:
            d["category_ids"] = self.detector_label_to_category[d["labels"]]
        return detections, selections

    def postprocess(self, outputs: dict) -> list[PanopticPrediction]:
        """The parameter-free panoptic head on the eval-mode outputs, image by image (no learned layer runs)."""
        predictions = []
        for logits, semantic, d, selection in zip(outputs["logits"], outputs["semantic"], outputs["detections"],
                                                  outputs["selections"]):
            result = unified_panoptic(logits, d["boxes"], d["scores"], d["category_ids"], d["mask_logits"],
                                      self.categories, self.head_config, unknown=self.config.unknown,
                                      selection=selection)
            detections = detections_to_numpy({k: v for k, v in d.items() if k != "mask_logits"})
            predictions.append(PanopticPrediction(result.panoptic, semantic=semantic.cpu().numpy(),
                                                  detections=detections, merge=result,
                                                  outputs={"semantic_logits": logits.cpu(),
                                                           "mask_logits": d["mask_logits"].cpu()}))
        return predictions


#: The full model's published configuration per dataset: (network, panoptic head).
PUBLISHED = MappingProxyType({"coco": (UPSNetConfig.full, UPSNetHeadConfig),
                              "cityscapes": (UPSNetConfig.cityscapes, UPSNetHeadConfig.cityscapes)})


def _published(num_classes: int, num_stuff: int, num_things: int, dataset: str = "coco",
               **overrides) -> tuple[UPSNetConfig, UPSNetHeadConfig]:
    if dataset not in PUBLISHED:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(PUBLISHED)}")
    network, head = PUBLISHED[dataset]
    return network(num_classes, num_stuff, num_things, **overrides), head()


def _tiny(num_classes: int, num_stuff: int, num_things: int, **overrides) -> tuple[UPSNetConfig, UPSNetHeadConfig]:
    return UPSNetConfig.tiny(num_classes, num_stuff, num_things, **overrides), UPSNetHeadConfig.tiny()


def for_categories(categories: CategorySet, size: str = "tiny", thing_labels: Sequence[int] | None = None,
                   dataset: str | None = None, **overrides) -> UPSNet:
    """A ``tiny`` or ``full`` UPSNet for ``categories`` (``thing_labels``: see :class:`UPSNet`);
    ``dataset`` selects the full model's published configuration (:data:`PUBLISHED`, default COCO's)."""
    config, head = config_for_size(size, _tiny, _published, detector_classes(categories, thing_labels),
                                   len(categories.stuff_ids), len(categories.thing_ids), dataset=dataset, **overrides)
    return UPSNet(config, categories, head=head, merge=MergeConfig.for_size(size), thing_labels=thing_labels)


def semantic_class_names(categories: CategorySet) -> list[str]:
    """Names of the semantic head's outputs: the stuff classes, then the things."""
    return [categories[c].name for c in semantic_layout(categories)]
