"""UPSNet's inference steps: pure functions from the panoptic head's outputs to a panoptic segmentation.

UPSNet's panoptic head (:mod:`panopticlab.models.upsnet_head`) builds, without any weight,
one logit map per stuff class, one per instance and an *unknown* one from what the
semantic head (``X``, one channel per category, the stuff classes first:
:func:`semantic_layout`) and the mask head predict. Inference, one function per step
(:func:`~panopticlab.models.upsnet_head.unified_panoptic` runs 2-7, :func:`panoptic_from_logits`
4-7 on the head's logits; the model runs 1 itself, so that the mask head only sees the
selected boxes):

1. :func:`select_detections`: of all (proposal, class) pairs, those scoring more than
   0.6, class-agnostic NMS at IoU 0.5, at most 100, most confident first;
2. :func:`~panopticlab.models.upsnet_head.paste_mask_logits`: ``Y_mask`` at the output resolution;
3. :func:`remove_duplicate_masks`: in score order, an instance is dropped when its mask
   (pasted logits > 0) is empty or more than 30 % of it lies on the masks of earlier
   kept instances of the *same* class;
4. :func:`panoptic_argmax` of the panoptic logits (ties to the lower channel);
5. argmax *unknown* -> void (255): UPSNet abstains there, and PQ ignores void;
6. :func:`majority_relabel`: an instance region whose majority semantic label is not its
   class becomes that stuff class when at least half of it is one stuff class, and is
   kept otherwise;
7. :func:`remove_small_stuff`: each stuff label with fewer than ``stuff_area_limit``
   pixels becomes void (published 4096 on COCO, 2048 on Cityscapes).

Published defaults (uber-research/UPSNet: ``resnet_upsnet.py``, ``mask_removal.py``,
``base_dataset.get_unified_pan_result``, the experiment YAMLs) live in
:class:`UPSNetHeadConfig`. Where this module differs from that code, on purpose: ties of
scores keep their input order (a stable sort).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import nms

from ..data import CategorySet, PanopticSegmentation
from ..data.categories import VOID_LABEL
from .heuristic import (
    CITYSCAPES_STUFF_AREA,
    COCO_REFERENCE_AREA,
    COCO_STUFF_AREA,
    EMPTY,
    KEPT,
    OVERLAP,
    TOO_SMALL,
    InstanceStep,
    check_stuff_area,
    resolve_stuff_limit,
)

__all__ = [
    "DETECTION_SCORE_THRESHOLD", "NMS_THRESHOLD", "MAX_DETECTIONS", "SAME_CLASS_OVERLAP_LIMIT",
    "MASK_LOGIT_THRESHOLD", "MAJORITY_FRACTION", "AGREES", "TO_STUFF", "DISAGREES",
    "UPSNetHeadConfig", "DetectionSelection", "MaskRemoval", "MajorityStep", "StuffArea",
    "UPSNetPanoptic", "semantic_layout", "select_detections", "remove_duplicate_masks", "panoptic_argmax",
    "majority_relabel", "remove_small_stuff", "panoptic_from_logits",
]

DETECTION_SCORE_THRESHOLD = 0.6  # config.test.panoptic_score_thresh (strictly greater is kept)
NMS_THRESHOLD = 0.5              # class-agnostic NMS of the panoptic head's detections
MAX_DETECTIONS = 100             # config.test.max_det
SAME_CLASS_OVERLAP_LIMIT = 0.3   # MaskRemoval(fraction_threshold=0.3): a mask more than this fraction on
                                 # earlier kept masks of its class is dropped
MASK_LOGIT_THRESHOLD = 0.0       # a pasted mask logit above this is the instance's mask
MAJORITY_FRACTION = 0.5          # get_unified_pan_result: a region at least this much one stuff class becomes it
# stuff area limits: heuristic.COCO_STUFF_AREA (4096), heuristic.CITYSCAPES_STUFF_AREA (2048, the Cityscapes YAML)

# what the majority relabelling did to an instance region
AGREES = "agrees"        # its majority semantic label is its class: kept
TO_STUFF = "to_stuff"    # at least majority_fraction of it is one stuff class: becomes that stuff
DISAGREES = "disagrees"  # another majority that is not a stuff class reaching the fraction: kept


@dataclass(frozen=True)
class UPSNetHeadConfig:
    """The panoptic head's inference settings, written once; defaults are the published ones.

    Attributes:
        score_threshold: detections scoring at most this are dropped (0.6).
        nms_threshold: class-agnostic NMS IoU (0.5).
        max_detections: at most this many detections, the most confident (100).
        overlap_threshold: an instance more than this fraction of whose mask lies on
            earlier kept masks of its class is dropped (0.3).
        mask_logit_threshold: pasted mask logits above this are the instance's mask (0).
        majority_fraction: share of one stuff class that turns a disagreeing instance
            region into that stuff (0.5).
        stuff_area_limit: stuff labels with fewer pixels become void (COCO's 4096, in pixels
            of the image as evaluated; Cityscapes: :data:`~.heuristic.CITYSCAPES_STUFF_AREA`,
            :meth:`cityscapes`).
        stuff_area_reference: ``None`` (published); an area in pixels: the limit is scaled
            by ``image area / stuff_area_reference`` (:meth:`tiny`).
    """

    score_threshold: float = DETECTION_SCORE_THRESHOLD
    nms_threshold: float = NMS_THRESHOLD
    max_detections: int = MAX_DETECTIONS
    overlap_threshold: float = SAME_CLASS_OVERLAP_LIMIT
    mask_logit_threshold: float = MASK_LOGIT_THRESHOLD
    majority_fraction: float = MAJORITY_FRACTION
    stuff_area_limit: float = COCO_STUFF_AREA
    stuff_area_reference: float | None = None

    def __post_init__(self):
        for name in ("nms_threshold", "overlap_threshold", "majority_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not (isinstance(self.max_detections, int) and self.max_detections >= 0):
            raise ValueError(f"max_detections must be a non-negative integer, got {self.max_detections!r}")
        check_stuff_area(self.stuff_area_limit, self.stuff_area_reference)

    @classmethod
    def cityscapes(cls, **overrides) -> "UPSNetHeadConfig":
        """The Cityscapes settings: stuff below 2048 px of the 1024 x 2048 image becomes void."""
        return cls(**{"stuff_area_limit": CITYSCAPES_STUFF_AREA, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> "UPSNetHeadConfig":
        """The tiny model's head: the COCO settings with the 4096 px stuff limit scaled from a
        640 x 480 image to each image, as the tiny models' merge does
        (:meth:`~panopticlab.postprocess.heuristic.MergeConfig.tiny`)."""
        return cls(**{"stuff_area_reference": COCO_REFERENCE_AREA, **overrides})

    def stuff_limit(self, image_area: float) -> float:
        """The stuff area limit in pixels for an image of ``image_area`` pixels."""
        return resolve_stuff_limit(self.stuff_area_limit, image_area, self.stuff_area_reference)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def semantic_layout(categories: CategorySet) -> tuple[int, ...]:
    """The category id of each channel of UPSNet's semantic head: the stuff categories
    (``categories.stuff_ids`` order), then the thing categories (``categories.thing_ids``)."""
    return (*categories.stuff_ids, *categories.thing_ids)


# --- inference steps --------------------------------------------------------------------------
@dataclass
class DetectionSelection:
    """Step 1: which candidates became the head's detections.

    Attributes:
        keep: (K,) int64 input indices kept, most confident first.
        below_score: input indices scoring at most the threshold.
        suppressed: input indices removed by class-agnostic NMS.
        over_limit: input indices that survived NMS beyond ``max_detections``.
    """

    keep: np.ndarray
    below_score: np.ndarray
    suppressed: np.ndarray
    over_limit: np.ndarray


def select_detections(boxes: Tensor, scores: Tensor, *, score_threshold: float = DETECTION_SCORE_THRESHOLD,
                      nms_threshold: float = NMS_THRESHOLD, max_detections: int = MAX_DETECTIONS
                      ) -> DetectionSelection:
    """The panoptic head's detections among candidates: ``score > score_threshold``, then
    class-agnostic NMS at ``nms_threshold``, then the ``max_detections`` most confident.

    Args:
        boxes: float [P, 4] candidate boxes, e.g. every (proposal, thing class) pair.
        scores: float [P] their class probabilities.
    """
    if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != (len(boxes),):
        raise ValueError(f"boxes {tuple(boxes.shape)} and scores {tuple(scores.shape)}; expected [P, 4] and [P]")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("detection scores must be finite")
    passed = torch.nonzero(scores > score_threshold).flatten()
    survivors = passed[nms(boxes[passed].float(), scores[passed].float(), nms_threshold)]
    indices = torch.arange(len(boxes), device=boxes.device)

    def complement(kept):
        mask = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
        mask[kept] = True
        return mask

    above = complement(passed)
    survived = complement(survivors)
    return DetectionSelection(keep=_int64(survivors[:max_detections]), below_score=_int64(indices[~above]),
                              suppressed=_int64(indices[above & ~survived]),
                              over_limit=_int64(survivors[max_detections:]))


def _int64(indices: Tensor) -> np.ndarray:
    return indices.cpu().numpy().astype(np.int64)


@dataclass
class MaskRemoval:
    """Step 3's result: ``kept`` (input indices, most confident first) and one
    :class:`~.heuristic.InstanceStep` per input, in visiting order (``area``: pixels of its
    mask, pasted logits above the threshold; ``overlap``: of these, pixels on the masks of
    earlier kept instances of its class; ``outcome``: :data:`~.heuristic.KEPT`,
    :data:`~.heuristic.OVERLAP` or :data:`~.heuristic.EMPTY`)."""

    kept: np.ndarray
    steps: list[InstanceStep]


def remove_duplicate_masks(y_mask: Tensor, category_ids: Sequence[int], scores: Sequence[float], *,
                           overlap_threshold: float = SAME_CLASS_OVERLAP_LIMIT,
                           mask_logit_threshold: float = MASK_LOGIT_THRESHOLD) -> MaskRemoval:
    """UPSNet's ``MaskRemoval``: drop instances that mostly repeat a more confident one of their class.

    Instances are visited by decreasing score (ties in input order). Each one's mask is
    ``y_mask > mask_logit_threshold``; it is dropped when empty, or when more than
    ``overlap_threshold`` of it lies on the union of the masks already kept *for its
    category* (instances of other classes never remove each other here: the softmax
    decides between them). Kept masks join their category's union.

    Args:
        y_mask: float [N, H, W] pasted mask logits (:func:`~panopticlab.models.upsnet_head.paste_mask_logits`).
        category_ids: (N,) each instance's category.
        scores: (N,) confidences.
    """
    scores = np.asarray(torch.as_tensor(scores).detach().cpu(), dtype=np.float64).reshape(-1)
    category_ids = np.asarray(torch.as_tensor(category_ids).cpu()).reshape(-1)
    if not len(y_mask) == len(scores) == len(category_ids):
        raise ValueError(f"{len(y_mask)} masks, {len(scores)} scores and {len(category_ids)} category ids")
    order = np.argsort(-scores, kind="stable")
    masks = y_mask.detach() > mask_logit_threshold
    union: dict[int, Tensor] = {}
    kept, steps = [], []
    for index in order.tolist():
        category_id, mask = int(category_ids[index]), masks[index]
        area = int(mask.sum())
        taken = union.get(category_id)
        overlap = int((mask & taken).sum()) if taken is not None and area else 0
        if area == 0:
            outcome = EMPTY
        elif overlap / area > overlap_threshold:
            outcome = OVERLAP
        else:
            outcome = KEPT
            union[category_id] = mask if taken is None else taken | mask
            kept.append(index)
        steps.append(InstanceStep(index, category_id, float(scores[index]), area, overlap, outcome))
    return MaskRemoval(np.array(kept, dtype=np.int64), steps)


def panoptic_argmax(stuff_logits: Tensor, instance_logits: Tensor, unknown: Tensor | None = None) -> Tensor:
    """The argmax of the head's logits (:func:`~panopticlab.models.upsnet_head.panoptic_logits`)
    without stacking them (ties to the lower channel).

    Args:
        stuff_logits: float [S, H, W]; instance_logits: float [N, H, W]; unknown: float [H, W] or ``None``.

    Returns:
        int64 [H, W]: ``0..S-1`` stuff, ``S..S+N-1`` instance, ``S+N`` unknown.
    """
    if len(stuff_logits):
        best, labels = stuff_logits.max(dim=0)
    else:  # no stuff class: every pixel goes to an instance or to unknown
        best = stuff_logits.new_full(stuff_logits.shape[-2:], float("-inf"))
        labels = torch.zeros(stuff_logits.shape[-2:], dtype=torch.long, device=stuff_logits.device)
    groups = [(instance_logits, stuff_logits.shape[0])]
    if unknown is not None:
        groups.append((unknown[None], stuff_logits.shape[0] + instance_logits.shape[0]))
    for logits, first in groups:
        if len(logits) == 0:
            continue
        value, index = logits.max(dim=0)
        wins = value > best  # strictly: on ties the earlier channel stays, as a stacked argmax
        best = torch.where(wins, value, best)
        labels = torch.where(wins, index + first, labels)
    return labels


@dataclass(frozen=True)
class MajorityStep:
    """What :func:`majority_relabel` did to one instance's region.

    Attributes:
        instance: its instance channel (0-based, after the stuff channels).
        channel: its class's semantic channel.
        area: pixels of its region.
        majority_channel: the most frequent semantic label of the region (ties to the lower).
        majority_share: that label's share of the region.
        outcome: :data:`AGREES`, :data:`TO_STUFF` or :data:`DISAGREES`.
    """

    instance: int
    channel: int
    area: int
    majority_channel: int
    majority_share: float
    outcome: str


def majority_relabel(labels: Tensor, semantic_labels: Tensor, instance_channels: Sequence[int], num_stuff: int, *,
                     majority_fraction: float = MAJORITY_FRACTION) -> tuple[Tensor, list[MajorityStep]]:
    """Step 6: instance regions the semantic head calls stuff become that stuff.

    For each instance region (pixels labelled ``num_stuff + i``) the most frequent
    semantic label is taken; if it is the instance's class the instance stays; else,
    if it is a stuff class covering at least ``majority_fraction`` of the region, the
    region becomes that stuff class; otherwise the instance stays.

    Args:
        labels: int64 [H, W] panoptic labels (``0..S-1`` stuff, ``S + i`` instance ``i``,
            anything else, e.g. void, untouched).
        semantic_labels: int64 [H, W] the semantic head's argmax (channels of :func:`semantic_layout`).
        instance_channels: (N,) each instance's class channel.

    Returns:
        The relabelled map and one :class:`MajorityStep` per instance with pixels, in instance order.
    """
    channels = torch.as_tensor(instance_channels, dtype=torch.long).reshape(-1)
    count = len(channels)
    if labels.shape != semantic_labels.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and semantic labels {tuple(semantic_labels.shape)} differ")
    instance = labels - num_stuff
    inside = (instance >= 0) & (instance < count)
    if count == 0 or not bool(inside.any()):
        return labels.clone(), []
    num_classes = int(max(int(semantic_labels.max()), int(channels.max()))) + 1
    codes = instance[inside] * num_classes + semantic_labels[inside]
    counts = torch.bincount(codes, minlength=count * num_classes).reshape(count, num_classes).cpu()
    to_stuff = torch.full((count,), -1, dtype=torch.long)
    steps = []
    for i in range(count):
        area = int(counts[i].sum())
        if area == 0:
            continue
        majority = int(counts[i].argmax())  # ties: the lower label, as np.unique + argmax
        share = float(counts[i, majority]) / area
        if majority == int(channels[i]):
            outcome = AGREES
        elif majority < num_stuff and share >= majority_fraction:
            outcome = TO_STUFF
            to_stuff[i] = majority
        else:
            outcome = DISAGREES
        steps.append(MajorityStep(i, int(channels[i]), area, majority, share, outcome))
    relabelled = labels.clone()
    target = to_stuff.to(labels.device)[instance.clamp(0, count - 1)]
    change = inside & (target >= 0)
    relabelled[change] = target[change]
    return relabelled, steps


@dataclass(frozen=True)
class StuffArea:
    """One stuff label in :func:`remove_small_stuff`: its channel, category, pixels and
    outcome (:data:`~.heuristic.KEPT` or :data:`~.heuristic.TOO_SMALL`)."""

    channel: int
    category_id: int
    area: int
    outcome: str


def remove_small_stuff(labels: Tensor, num_stuff: int, stuff_area_limit: float, *,
                       stuff_category_ids: Sequence[int] | None = None, void_label: int = VOID_LABEL
                       ) -> tuple[Tensor, list[StuffArea]]:
    """Step 7: each stuff label (``0..num_stuff-1``) with fewer than ``stuff_area_limit`` pixels becomes void.

    Returns:
        The map and one :class:`StuffArea` per stuff label present, in channel order
        (``category_id`` from ``stuff_category_ids``, else the channel).
    """
    if stuff_area_limit < 0:
        raise ValueError(f"stuff_area_limit must be non-negative, got {stuff_area_limit}")
    is_stuff = (labels >= 0) & (labels < num_stuff)
    areas = torch.bincount(labels[is_stuff], minlength=num_stuff).cpu().tolist()
    out = labels.clone()
    steps = []
    for channel, area in enumerate(areas):
        if area == 0:
            continue
        small = area < stuff_area_limit
        if small:
            out[labels == channel] = void_label
        category_id = stuff_category_ids[channel] if stuff_category_ids is not None else channel
        steps.append(StuffArea(channel, int(category_id), int(area), TOO_SMALL if small else KEPT))
    return out, steps


# --- the result -----------------------------------------------------------------------------------
@dataclass
class UPSNetPanoptic:
    """The result of :func:`panoptic_from_logits` (and of
    :func:`~panopticlab.models.upsnet_head.unified_panoptic`): the segmentation and every intermediate map.

    Attributes:
        panoptic: instance segments (with their ``score``) in channel order, ids ``1..``,
            then stuff segments in ``categories.stuff_ids`` order.
        num_stuff: ``N_st``.
        layout: category id of each semantic channel (:func:`semantic_layout`).
        kept: (N,) input indices of the instance channels, most confident first.
        removal: step 3 (:class:`MaskRemoval`) over all inputs.
        x_mask, y_mask: (N, H, W) float32 ``X_mask`` and ``Y_mask`` of the kept instances.
        unknown_logits: (H, W) float32 unknown channel, or ``None`` without one.
        argmax: (H, W) int64 step 4: ``0..S-1`` stuff, ``S + i`` instance channel ``i``, ``S + N`` unknown.
        majority: step 6, one :class:`MajorityStep` per instance region.
        stuff: step 7, one :class:`StuffArea` per stuff label.
        labels: (H, W) int64 after steps 5-7 (void :data:`VOID_LABEL`).
        selection: step 1, when the caller ran it (:func:`select_detections`).
    """

    panoptic: PanopticSegmentation
    num_stuff: int
    layout: tuple[int, ...]
    kept: np.ndarray
    removal: MaskRemoval
    x_mask: np.ndarray
    y_mask: np.ndarray
    unknown_logits: np.ndarray | None
    argmax: np.ndarray
    majority: list[MajorityStep]
    stuff: list[StuffArea]
    labels: np.ndarray
    selection: DetectionSelection | None = None
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def num_instances(self) -> int:
        return len(self.kept)

    @property
    def instance_logits(self) -> np.ndarray:
        """(N, H, W) ``X_mask + Y_mask``, the instance channels."""
        return self.x_mask + self.y_mask

    @property
    def unknown_pixels(self) -> np.ndarray:
        """(H, W) bool: pixels whose argmax was the unknown channel (void in the result)."""
        return self.argmax == self.num_stuff + self.num_instances if self.unknown_logits is not None \
            else np.zeros(self.argmax.shape, bool)

    def report(self, categories: CategorySet) -> str:
        """The steps as a table: the removal in visiting order, the relabelling, the stuff areas."""
        lines = [f"{'input':>5} {'class':<9} {'score':>5} {'area':>6} {'same-class overlap':>18}  removal"]
        for step in self.removal.steps:
            lines.append(f"{step.index:>5} {categories.name(step.category_id):<9} {step.score:5.2f} {step.area:>6} "
                         f"{step.overlap_fraction:18.0%}  {step.outcome}")
        for step in self.majority:
            lines.append(f"instance {step.instance} ({categories.name(self.layout[step.channel])}): {step.area} px, "
                         f"majority {categories.name(self.layout[step.majority_channel])} "
                         f"{step.majority_share:.0%}: {step.outcome}")
        for step in self.stuff:
            lines.append(f"stuff {categories.name(step.category_id):<9} {step.area:>6} px: {step.outcome}")
        lines.append(f"{int(self.unknown_pixels.sum())} pixels unknown (void)")
        return "\n".join(lines)


def panoptic_from_logits(semantic_logits: Tensor, x_mask: Tensor, y_mask: Tensor, unknown: Tensor | None,
                         removal: MaskRemoval, channels: Sequence[int], scores: Tensor, categories: CategorySet,
                         config: UPSNetHeadConfig = UPSNetHeadConfig(), *, selection: DetectionSelection | None = None,
                         void_label: int = VOID_LABEL) -> UPSNetPanoptic:
    """Steps 4-7 of the head's inference, from its logits to the panoptic segmentation of one image.

    Args:
        semantic_logits: float [C, H, W], one channel per category in :func:`semantic_layout` order.
        x_mask, y_mask: float [N, H, W] ``X_mask`` and ``Y_mask`` of the instances step 3 kept
            (``removal.kept`` order; :mod:`panopticlab.models.upsnet_head`).
        unknown: float [H, W] the unknown channel, or ``None`` without one.
        removal: step 3's record (:func:`remove_duplicate_masks`).
        channels: (N,) each kept instance's class channel; scores: float [N] their scores.
        categories: the dataset's categories.
        config: the thresholds (the majority fraction, the stuff area limit).
        selection: step 1's record, kept in the result.
    """
    layout, num_stuff = semantic_layout(categories), len(categories.stuff_ids)
    height, width = semantic_logits.shape[-2:]
    count = len(channels)
    argmax = panoptic_argmax(semantic_logits[:num_stuff], x_mask + y_mask, unknown)                  # step 4
    labels = torch.where(argmax == num_stuff + count, torch.full_like(argmax, void_label), argmax) \
        if unknown is not None else argmax                                                          # step 5
    labels, majority = majority_relabel(labels, semantic_logits.argmax(dim=0), channels, num_stuff,
                                        majority_fraction=config.majority_fraction)                # step 6
    labels, stuff = remove_small_stuff(labels, num_stuff, config.stuff_limit(height * width),
                                       stuff_category_ids=categories.stuff_ids, void_label=void_label)  # step 7

    kept_scores = scores.detach().cpu().numpy().astype(np.float64)
    panoptic = _to_panoptic(labels.cpu().numpy(), num_stuff, [layout[c] for c in channels], kept_scores,
                            categories.stuff_ids)
    return UPSNetPanoptic(panoptic=panoptic, num_stuff=num_stuff, layout=layout, kept=removal.kept, removal=removal,
                          x_mask=_float32(x_mask), y_mask=_float32(y_mask),
                          unknown_logits=None if unknown is None else _float32(unknown),
                          argmax=argmax.cpu().numpy(), majority=majority, stuff=stuff, labels=labels.cpu().numpy(),
                          selection=selection, scores=kept_scores)


def _float32(values: Tensor) -> np.ndarray:
    return values.detach().cpu().numpy().astype(np.float32)


def _to_panoptic(labels: np.ndarray, num_stuff: int, instance_categories: Sequence[int], instance_scores: np.ndarray,
                 stuff_ids: Sequence[int]) -> PanopticSegmentation:
    """Segments from the final labels: instances with pixels get ids ``1..`` in channel order, then stuff."""
    count = len(instance_categories)
    present = np.bincount(labels[(labels >= 0) & (labels < num_stuff + count)].ravel(),
                          minlength=num_stuff + count) > 0
    lut = np.zeros(max(int(labels.max()) + 1 if labels.size else 1, num_stuff + count), dtype=np.int32)
    category_of, score_of = {}, {}
    next_id = 1
    for i in range(count):
        if present[num_stuff + i]:
            lut[num_stuff + i] = next_id
            category_of[next_id], score_of[next_id] = int(instance_categories[i]), float(instance_scores[i])
            next_id += 1
    for k in range(num_stuff):
        if present[k]:
            lut[k] = next_id
            category_of[next_id] = int(stuff_ids[k])
            next_id += 1
    return PanopticSegmentation.from_id_map(lut[labels], category_of, scores=score_of)
