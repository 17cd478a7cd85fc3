"""The heuristic merge of the panoptic segmentation paper's baseline.

Kirillov et al. ("Panoptic Segmentation", CVPR 2019, section 7) turn the outputs of two
separately trained networks, a semantic segmenter and an instance segmenter, into one
panoptic segmentation with a fixed rule. The reference code is panopticapi's
``combine_semantic_and_instance_predictions.py``; :func:`heuristic_merge` reproduces it
exactly (the tests compare the two on random inputs):

1. Instances whose score is below ``score_threshold`` are dropped (panopticapi:
   ``score < confidence_thr``, so a score equal to the threshold stays). The rest are
   sorted by score, most confident first; ties keep their input order (a stable sort,
   like Python's ``sorted``).
2. Each instance in turn:

   * an empty mask (no pixel) is skipped before anything else;
   * ``overlap`` = its pixels already taken by earlier kept instances; it is dropped if
     ``overlap / area > overlap_threshold`` (strictly greater: exactly half taken is
     kept at the default 0.5);
   * otherwise it keeps its pixels that are still free: instances never overlap and
     the more confident one wins every contested pixel.

3. Stuff comes from the semantic map: each stuff category present takes its pixels that
   no instance took, and becomes void when fewer than ``stuff_area_limit`` pixels
   remain (panopticapi: ``area < stuff_area_limit``; this filter is panopticapi's
   addition to the paper, against small false positives). Thing categories of the
   semantic map are ignored, so a pixel the semantic model calls a thing but no kept
   instance covers stays void: things win over stuff, and only instances make things.

Two cases where panopticapi writes a segment without pixels, which its own evaluator
then rejects ("presented in JSON and not presented in PNG"), produce no segment here:
an instance that passes the overlap test with nothing left (only possible with
``overlap_threshold = 1``) and, with ``stuff_area_limit = 0``, a stuff category whose
pixels were all taken by instances. Segment ids here are ``1..n`` in the order of
insertion (instances by score, then stuff in ``categories.stuff_ids`` order); panopticapi
draws random ids near the category colour and orders stuff as its semantic JSON lists
it. Neither choice changes a pixel.

Masks may be probabilities, as torchvision's Mask R-CNN pastes them; they are binarised
with ``mask >= mask_threshold`` (detectron2's and mmdetection's convention).

The published defaults (panopticapi's argparse, detectron2's ``PanopticFPN``):
``score_threshold = 0.5``, ``overlap_threshold = 0.5``, ``stuff_area_limit = 64 * 64``,
an area in pixels of the image as evaluated, whatever its size: :class:`MergeConfig`'s
default. The book's tiny models make one named exception, :meth:`MergeConfig.tiny`: the
same 4096 px scaled from a 640 x 480 image to the image's area
(:func:`scaled_stuff_area`), since 4096 px are a quarter of a 128 x 128 scene.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from ..data import CategorySet, PanopticSegmentation, Segment
from ..data.categories import VOID_LABEL

__all__ = [
    "INSTANCE_SCORE_THRESHOLD",
    "OVERLAP_FRACTION_LIMIT",
    "COCO_STUFF_AREA",
    "CITYSCAPES_STUFF_AREA",
    "MergeConfig",
    "MASK_THRESHOLD",
    "COCO_REFERENCE_AREA",
    "KEPT",
    "CUT",
    "OVERLAP",
    "EMPTY",
    "COVERED",
    "TOO_SMALL",
    "InstanceStep",
    "StuffStep",
    "MergeSteps",
    "HeuristicMerge",
    "heuristic_merge",
    "scaled_stuff_area",
]

INSTANCE_SCORE_THRESHOLD = 0.5  # an instance scoring lower is dropped (equal stays)
OVERLAP_FRACTION_LIMIT = 0.5    # an instance more than this fraction already taken is dropped
MASK_THRESHOLD = 0.5
#: Stuff area limits in pixels of the image as evaluated (stuff with fewer pixels becomes
#: void), as each dataset's published configs set them: COCO 4096 (panopticapi's
#: ``--stuff_area_limit``, detectron2's ``MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT``,
#: UPSNet's COCO YAMLs, Panoptic-DeepLab's detectron2 COCO config ``STUFF_AREA``);
#: Cityscapes 2048 (UPSNet's ``upsnet_resnet50_cityscapes.yaml`` ``panoptic_stuff_area_limit``,
#: Panoptic-DeepLab's detectron2 Cityscapes config ``STUFF_AREA``).
COCO_STUFF_AREA = 4096  # 64 x 64
CITYSCAPES_STUFF_AREA = 2048
#: Image area at which the 4096 px stuff limit is applied: COCO images are at most
#: 640 px on their long side and most are 640 x 480. The merge runs at that original
#: resolution in panopticapi and detectron2 (after resizing the outputs back).
COCO_REFERENCE_AREA = 640 * 480

# what happened to an instance
KEPT = "kept"        # kept with all its pixels
CUT = "cut"          # kept without the pixels more confident instances had taken
OVERLAP = "overlap"  # dropped: more than overlap_threshold of it was already taken
EMPTY = "empty"      # dropped: its mask has no pixel
COVERED = "covered"  # passed the overlap test but no pixel was left (overlap_threshold = 1)
# what happened to a stuff category (KEPT, COVERED or:)
TOO_SMALL = "too_small"  # fewer than stuff_area_limit free pixels: void


@dataclass(frozen=True)
class InstanceStep:
    """The fate of one instance visited in score order, placed or removed for its overlap:
    step 2 of :func:`heuristic_merge` and UPSNet's duplicate-mask removal
    (:func:`~panopticlab.postprocess.upsnet.remove_duplicate_masks`).

    Attributes:
        index: position of the instance in the input arrays.
        category_id: its category.
        score: its confidence.
        area: pixels of its binarised mask.
        overlap: of these, pixels already taken by more confident kept instances (UPSNet:
            of its own category only).
        outcome: :data:`KEPT`, :data:`CUT`, :data:`OVERLAP`, :data:`EMPTY` or :data:`COVERED`
            (UPSNet: :data:`KEPT`, :data:`OVERLAP` or :data:`EMPTY`).
        segment_id: its id in the merge's result, 0 when it has no segment (and always 0 in
            UPSNet's removal, whose segments come after the softmax).
    """

    index: int
    category_id: int
    score: float
    area: int
    overlap: int
    outcome: str
    segment_id: int = 0

    @property
    def overlap_fraction(self) -> float:
        """``overlap / area``, the number compared with the overlap limit (0 for empty masks)."""
        return self.overlap / self.area if self.area else 0.0

    @property
    def kept_area(self) -> int:
        """Pixels the instance has in the merge's result."""
        return self.area - self.overlap if self.outcome in (KEPT, CUT) else 0


@dataclass(frozen=True)
class StuffStep:
    """The fate of one stuff category of the semantic map.

    Attributes:
        category_id: the stuff category.
        area: its pixels in the semantic map.
        free_area: of these, pixels no kept instance took (what the area limit is applied to).
        outcome: :data:`KEPT`, :data:`TOO_SMALL` or :data:`COVERED` (no free pixel, limit 0).
        segment_id: its id in the result, 0 when it has no segment.
    """

    category_id: int
    area: int
    free_area: int
    outcome: str
    segment_id: int


@dataclass
class MergeSteps:
    """The intermediate steps of one merge, for drawing them.

    Attributes:
        order: (M,) int64 input indices of the instances with score >= threshold, most
            confident first: the order in which they claim pixels.
        below_score: (N - M,) int64 input indices of the instances dropped by score.
        instances: one :class:`InstanceStep` per entry of ``order``, same order.
        stuff: one :class:`StuffStep` per stuff category present in the semantic map,
            in ``categories.stuff_ids`` order.
        owner: (H, W) int64 input index of the instance owning each pixel, -1 elsewhere.
        things_over_stuff: (H, W) bool, pixels of kept instances that the semantic map
            calls stuff (where things beat stuff).
        unclaimed_things: (H, W) bool, pixels the semantic map calls a thing that no kept
            instance covers (void in the result).
        small_stuff: (H, W) bool, free pixels of stuff categories removed by the area limit.
    """

    order: np.ndarray
    below_score: np.ndarray
    instances: list[InstanceStep]
    stuff: list[StuffStep]
    owner: np.ndarray
    things_over_stuff: np.ndarray
    unclaimed_things: np.ndarray
    small_stuff: np.ndarray

    def report(self, categories: CategorySet) -> str:
        """The steps as a table: each instance in visiting order and what became of it, then each stuff category."""
        lines = [f"{len(self.below_score)} instances dropped below the score threshold",
                 f"{'order':>5} {'input':>5} {'class':<9} {'score':>5} {'area':>5} {'taken':>6}  outcome"]
        for rank, step in enumerate(self.instances):
            lines.append(f"{rank:>5} {step.index:>5} {categories.name(step.category_id):<9} {step.score:5.2f} "
                         f"{step.area:>5} {step.overlap_fraction:6.0%}  {step.outcome}")
        for step in self.stuff:
            lines.append(f"stuff {categories.name(step.category_id):<9} area {step.area:>5}, "
                         f"free {step.free_area:>5}: {step.outcome}")
        return "\n".join(lines)

    def outcomes(self) -> dict[str, list[int]]:
        """Input indices of the instances by outcome (``below_score`` included)."""
        grouped: dict[str, list[int]] = {"below_score": self.below_score.tolist()}
        for step in self.instances:
            grouped.setdefault(step.outcome, []).append(step.index)
        return grouped


@dataclass
class HeuristicMerge:
    """The result of :func:`heuristic_merge`: the segmentation and how it came about.

    Attributes:
        panoptic: thing segments (with their ``score``) in the order they were kept,
            ids ``1..``, then stuff segments.
        steps: the intermediate steps (:class:`MergeSteps`).
    """

    panoptic: PanopticSegmentation
    steps: MergeSteps


def resolve_stuff_limit(stuff_area_limit: float, image_area: float, reference_area: float | None = None) -> float:
    """A configured stuff area limit in pixels of an image of ``image_area`` pixels: the limit
    itself (``reference_area=None``: pixels of the image as evaluated, as published), or the
    limit scaled from an image of ``reference_area`` pixels (:func:`scaled_stuff_area`)."""
    if reference_area is None:
        return float(stuff_area_limit)
    return scaled_stuff_area(stuff_area_limit, image_area, reference_area)


def check_stuff_area(stuff_area_limit, reference_area) -> None:
    """Raise ValueError unless the limit is a non-negative number and the reference area,
    if any, a positive one (``None`` is no longer "scaled": say it with a reference area)."""
    if stuff_area_limit is None or not stuff_area_limit >= 0:
        raise ValueError(f"stuff_area_limit must be a non-negative number of pixels, got {stuff_area_limit!r} "
                         f"(to scale it with the image, set stuff_area_reference, as the tiny configs do)")
    if reference_area is not None and not reference_area > 0:
        raise ValueError(f"stuff_area_reference must be a positive area or None, got {reference_area!r}")


def scaled_stuff_area(limit: float = COCO_STUFF_AREA, image_area: float = COCO_REFERENCE_AREA,
                      reference_area: float = COCO_REFERENCE_AREA) -> float:
    """A stuff area limit for images of another size: ``limit * image_area / reference_area``.

    The published 4096 px were chosen for COCO images at their original size, about
    640 x 480 px (:data:`COCO_REFERENCE_AREA`); a region that covers the same fraction of a
    smaller image has proportionally fewer pixels. For 128 x 128 images the 4096 px limit
    becomes about 218 px. (Cityscapes configs use :data:`CITYSCAPES_STUFF_AREA` at 1024 x 2048;
    pass ``limit=CITYSCAPES_STUFF_AREA, reference_area=1024 * 2048`` for that convention.)

    Returns:
        The scaled limit in pixels (a float; the merge compares areas with ``<``).
    """
    if limit < 0:
        raise ValueError(f"the stuff area limit must be non-negative, got {limit}")
    if image_area <= 0 or reference_area <= 0:
        raise ValueError(f"areas must be positive, got image_area={image_area}, reference_area={reference_area}")
    return float(limit) * float(image_area) / float(reference_area)


@dataclass(frozen=True)
class MergeConfig:
    """The merge's settings, written once; defaults are the published ones.

    Every model that fuses with the heuristic (the baseline, Panoptic FPN, the ablations)
    holds one of these, and the evaluator and the shipped weights state theirs with it.

    Attributes:
        score_threshold: instances scoring lower are dropped (0.5).
        overlap_threshold: an instance more than this fraction taken is dropped (0.5).
        stuff_area_limit: stuff with fewer free pixels becomes void (4096, in pixels of
            the image as evaluated, as panopticapi and detectron2 apply it).
        stuff_area_reference: ``None`` (published); an area in pixels: the limit is
            scaled by ``image area / stuff_area_reference`` (:meth:`tiny`).
        mask_threshold: probabilities at least this are the mask (0.5).
    """

    score_threshold: float = INSTANCE_SCORE_THRESHOLD
    overlap_threshold: float = OVERLAP_FRACTION_LIMIT
    stuff_area_limit: float = COCO_STUFF_AREA
    stuff_area_reference: float | None = None
    mask_threshold: float = MASK_THRESHOLD

    def __post_init__(self):
        if not 0.0 <= self.overlap_threshold <= 1.0:
            raise ValueError(f"overlap_threshold must lie in [0, 1], got {self.overlap_threshold}")
        check_stuff_area(self.stuff_area_limit, self.stuff_area_reference)

    @classmethod
    def tiny(cls, **overrides) -> "MergeConfig":
        """The tiny models' merge: the published settings, with the 4096 px stuff limit
        scaled from a 640 x 480 COCO image (:data:`COCO_REFERENCE_AREA`) to each image
        (218.5 px at 128 x 128), so that a stuff region keeps the same share of the scene."""
        return cls(**{"stuff_area_reference": COCO_REFERENCE_AREA, **overrides})

    @classmethod
    def for_size(cls, size: str) -> "MergeConfig":
        """The merge of a ``tiny`` or ``full`` model."""
        builders = {"tiny": cls.tiny, "full": cls}
        if size not in builders:
            raise ValueError(f"unknown size {size!r}; choose 'tiny' or 'full'")
        return builders[size]()

    def stuff_limit(self, image_area: float) -> float:
        """The stuff area limit in pixels for an image of ``image_area`` pixels."""
        return resolve_stuff_limit(self.stuff_area_limit, image_area, self.stuff_area_reference)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def merge(self, semantic: np.ndarray | None, masks: np.ndarray, scores: Sequence[float],
              category_ids: Sequence[int], categories: CategorySet) -> "HeuristicMerge":
        """:func:`heuristic_merge` with these settings (the stuff limit resolved for the image's size)."""
        masks = np.asarray(masks)
        shape = np.shape(semantic) if semantic is not None else masks.shape[-2:]
        return heuristic_merge(semantic, masks, scores, category_ids, categories,
                               score_threshold=self.score_threshold, overlap_threshold=self.overlap_threshold,
                               stuff_area_limit=self.stuff_limit(shape[0] * shape[1]),
                               mask_threshold=self.mask_threshold)


def heuristic_merge(semantic: np.ndarray | None, masks: np.ndarray, scores: Sequence[float],
                    category_ids: Sequence[int], categories: CategorySet, *,
                    score_threshold: float = INSTANCE_SCORE_THRESHOLD,
                    overlap_threshold: float = OVERLAP_FRACTION_LIMIT, stuff_area_limit: float = COCO_STUFF_AREA,
                    mask_threshold: float = MASK_THRESHOLD, void_label: int = VOID_LABEL) -> HeuristicMerge:
    """Merge a semantic map and instance predictions into one panoptic segmentation.

    See the module docstring for the rule, its published defaults and how it matches
    panopticapi.

    Args:
        semantic: (H, W) integer dataset category ids, ``void_label`` where the semantic
            model abstains; ``None`` for instances only (everything else is void).
        masks: (N, H, W) instance masks, bool, or probabilities / scores binarised with
            ``>= mask_threshold``; torchvision's (N, 1, H, W) is accepted too.
        scores: (N,) confidences.
        category_ids: (N,) dataset category ids; each must be a thing category.
        categories: the dataset's categories.
        score_threshold: instances with a lower score are dropped.
        overlap_threshold: an instance is dropped when more than this fraction of its
            pixels is already taken; in [0, 1].
        stuff_area_limit: stuff with fewer free pixels becomes void.
        mask_threshold: binarisation threshold of non-bool masks.
        void_label: the value of abstaining pixels in ``semantic``.

    Returns:
        :class:`HeuristicMerge` with ``.panoptic`` and ``.steps``.

    Raises:
        ValueError: shapes disagree, a score is not finite, a threshold is out of range,
            an instance's category is unknown or not a thing, or the semantic map holds
            a value that is neither a category id nor ``void_label``.
    """
    masks, scores, category_ids = _check_instances(masks, scores, category_ids, categories)
    if not 0.0 <= overlap_threshold <= 1.0:
        raise ValueError(f"overlap_threshold must lie in [0, 1], got {overlap_threshold}")
    if stuff_area_limit < 0:
        raise ValueError(f"stuff_area_limit must be non-negative, got {stuff_area_limit}")
    shape = masks.shape[1:]
    stuff_index = None if semantic is None else _stuff_index_map(semantic, categories, void_label, shape)

    passed = scores >= score_threshold
    # stable, like panopticapi's sorted(key=-score): equal scores keep their input order
    order = np.flatnonzero(passed)[np.argsort(-scores[passed], kind="stable")]
    segments = _SegmentList()
    id_map, owner, taken, instance_steps = _claim_instances(masks, scores, category_ids, order, segments,
                                                            overlap_threshold, mask_threshold)
    steps = MergeSteps(order=order.astype(np.int64), below_score=np.flatnonzero(~passed).astype(np.int64),
                       instances=instance_steps, stuff=[], owner=owner,
                       things_over_stuff=np.zeros(shape, bool), unclaimed_things=np.zeros(shape, bool),
                       small_stuff=np.zeros(shape, bool))
    if stuff_index is not None:
        steps.stuff = _fill_stuff(id_map, taken, stuff_index, categories, segments, stuff_area_limit)
        is_stuff = stuff_index >= 0
        steps.things_over_stuff = taken & is_stuff
        steps.small_stuff = is_stuff & (id_map == 0)
        steps.unclaimed_things = (stuff_index == _THING) & ~taken
    return HeuristicMerge(segments.panoptic(id_map), steps)


class _SegmentList:
    """The segments of the result in order of insertion; segment ``k`` gets id ``k + 1``."""

    def __init__(self):
        self.category_ids: list[int] = []
        self.scores: list[float | None] = []
        self.areas: list[int] = []

    def add(self, category_id: int, score: float | None, area: int) -> int:
        self.category_ids.append(category_id)
        self.scores.append(score)
        self.areas.append(area)
        return len(self.category_ids)

    def panoptic(self, id_map: np.ndarray) -> PanopticSegmentation:
        """The segmentation, with boxes found in ``id_map`` (where every segment has pixels)."""
        slices = ndimage.find_objects(id_map, max_label=len(self.category_ids))  # ids 1..n: no sorting
        segments = [Segment(id=k + 1, category_id=self.category_ids[k], iscrowd=0, area=self.areas[k],
                            bbox=(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start),
                            score=self.scores[k])
                    for k, (rows, cols) in enumerate(slices)]
        return PanopticSegmentation(id_map, segments)


def _claim_instances(masks, scores, category_ids, order, segments: _SegmentList, overlap_threshold: float,
                     mask_threshold: float):
    """Steps 1-2 of the rule: instances claim their free pixels in ``order``.

    Returns (id_map (H, W) int32, owner (H, W) int64, taken (H, W) bool, the steps).
    """
    shape = masks.shape[1:]
    id_map = np.zeros(shape, dtype=np.int32)
    owner = np.full(shape, -1, dtype=np.int64)
    taken = np.zeros(shape, dtype=bool)
    steps = []
    for index in order.tolist():
        mask = masks[index] if masks.dtype == bool else masks[index] >= mask_threshold
        category_id, score = int(category_ids[index]), float(scores[index])
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            steps.append(InstanceStep(index, category_id, score, 0, 0, EMPTY, 0))
            continue
        # every later operation works inside the mask's bounding box
        band = slice(rows[0], rows[-1] + 1)
        cols = np.flatnonzero(mask[band].any(axis=0))
        box = (band, slice(cols[0], cols[-1] + 1))
        mask, taken_box = mask[box], taken[box]
        area = int(np.count_nonzero(mask))
        overlap = int(np.count_nonzero(mask & taken_box))
        if overlap / area > overlap_threshold:
            steps.append(InstanceStep(index, category_id, score, area, overlap, OVERLAP, 0))
            continue
        if overlap == area:
            steps.append(InstanceStep(index, category_id, score, area, overlap, COVERED, 0))
            continue
        free = mask & ~taken_box
        segment_id = segments.add(category_id, score, area - overlap)
        np.copyto(id_map[box], segment_id, where=free)
        np.copyto(owner[box], index, where=free)
        taken_box |= mask
        steps.append(InstanceStep(index, category_id, score, area, overlap, CUT if overlap else KEPT, segment_id))
    return id_map, owner, taken, steps


def _fill_stuff(id_map, taken, stuff_index, categories: CategorySet, segments: _SegmentList,
                stuff_area_limit: float) -> list[StuffStep]:
    """Step 3 of the rule: stuff categories fill the free pixels, in place in ``id_map``."""
    num_codes = len(categories.stuff_ids) - _LOWEST  # stuff_index runs from _LOWEST to S - 1
    # one bincount counts the free and the taken pixels of every category: code = 2 * index + taken
    codes = (stuff_index - _LOWEST) * 2 + taken
    counts = np.bincount(codes.ravel(), minlength=2 * num_codes).reshape(num_codes, 2)[-_LOWEST:]
    # the segment id of each code; 0 on taken pixels, so adding it leaves the instances alone
    segment_of_code = np.zeros((num_codes, 2), dtype=np.int32)
    steps = []
    for k, category_id in enumerate(categories.stuff_ids):
        free_area, total = int(counts[k, 0]), int(counts[k].sum())
        if total == 0:
            continue
        if free_area < stuff_area_limit:
            outcome, segment_id = TOO_SMALL, 0
        elif free_area == 0:
            outcome, segment_id = COVERED, 0
        else:
            outcome, segment_id = KEPT, segments.add(category_id, None, free_area)
        segment_of_code[k - _LOWEST, 0] = segment_id
        steps.append(StuffStep(category_id, total, free_area, outcome, segment_id))
    id_map += segment_of_code.ravel()[codes]
    return steps


# codes of _stuff_index_map besides the stuff positions 0..S-1
_VOID, _THING, _UNKNOWN = -1, -2, -3
_LOWEST = _UNKNOWN


def _stuff_index_map(semantic, categories: CategorySet, void_label: int, shape) -> np.ndarray:
    """(H, W) int16: position of the pixel's category in ``categories.stuff_ids``,
    ``_THING`` for thing categories, ``_VOID`` for ``void_label``."""
    semantic = np.asarray(semantic)
    if semantic.shape != tuple(shape):
        raise ValueError(f"semantic map of shape {semantic.shape} does not match the masks' {tuple(shape)}")
    if not np.issubdtype(semantic.dtype, np.integer):
        raise ValueError(f"the semantic map must hold integer category ids, got dtype {semantic.dtype}")
    if void_label in categories:
        raise ValueError(f"void_label={void_label} is also a category id ({categories.name(void_label)!r}); "
                         "pick another")
    if semantic.size == 0:
        return np.zeros(shape, dtype=np.int16)
    # one lookup table over the range of values present: every pixel is read once
    low = min(int(semantic.min()), 0)
    high = max(int(semantic.max()), max(categories.ids))
    lut = np.full(high - low + 1, _UNKNOWN, dtype=np.int16)
    lut[np.asarray(categories.thing_ids, dtype=np.int64) - low] = _THING
    lut[np.asarray(categories.stuff_ids, dtype=np.int64) - low] = np.arange(len(categories.stuff_ids))
    if low <= void_label <= high:
        lut[void_label - low] = _VOID
    index = lut[semantic - low if low else semantic]
    unknown = index == _UNKNOWN
    if unknown.any():
        values = np.unique(semantic[unknown])[:10].tolist()
        raise ValueError(f"the semantic map holds values {values} that are neither category ids "
                         f"{categories.ids} nor void_label={void_label}")
    return index


def _check_instances(masks, scores, category_ids, categories: CategorySet):
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]  # torchvision's (N, 1, H, W)
    if masks.ndim != 3:
        raise ValueError(f"instance masks must be (N, H, W), got shape {masks.shape}")
    if masks.dtype != bool and not (np.issubdtype(masks.dtype, np.number)):
        raise ValueError(f"instance masks must be bool or numeric, got dtype {masks.dtype}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    category_ids = np.asarray(category_ids).reshape(-1)
    if not len(scores) == len(category_ids) == len(masks):
        raise ValueError(f"{len(masks)} masks, {len(scores)} scores and {len(category_ids)} category ids "
                         f"must be as many")
    if not np.isfinite(scores).all():
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(f"instance {bad} has a non-finite score {scores[bad]}")
    for index, category_id in enumerate(category_ids.tolist()):
        if category_id not in categories:
            raise ValueError(f"instance {index} has unknown category id {category_id}; known ids: {categories.ids}")
        if not categories.isthing(category_id):
            raise ValueError(f"instance {index} has category {category_id} ({categories.name(category_id)!r}), "
                             f"which is stuff, not a thing")
    return masks, scores, category_ids
