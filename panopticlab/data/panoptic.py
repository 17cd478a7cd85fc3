"""The one representation of a panoptic segmentation, and conversions to the others.

A panoptic segmentation is exactly the COCO panoptic model: an integer id map
(H x W, id 0 = void / unlabeled) plus one :class:`Segment` record per non-zero id
(id, category_id, iscrowd, area, bbox). Everything that crosses a module boundary
as "a panoptic result" is a :class:`PanopticSegmentation`.

Other encodings users meet, each with a function pair here:

* COCO's RGB PNG: ``id = R + 256 G + 256^2 B`` (:func:`rgb_to_id`, :func:`id_to_rgb`);
* the label-divisor encoding of Cityscapes and Panoptic-DeepLab,
  ``category * divisor + k`` (:func:`to_label_divisor`, :func:`from_label_divisor`);
* a semantic map plus a stack of instance masks
  (:func:`to_semantic_and_instances`, :func:`from_semantic_and_instances`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from .categories import VOID_LABEL, CategorySet
from .errors import PanopticFormatError
from .fields import coco_integer

VOID = 0
MAX_SEGMENT_ID = 256**3 - 1  # the largest id an RGB PNG can hold


def crowd_flag(value) -> int:
    """COCO's ``iscrowd`` as 0 or 1, by panopticapi's rule: crowd exactly when ``iscrowd == 1``.

    So 1, 1.0 and ``true`` are crowd, and every other value (0, 2, -1, ``"1"``, ``null``) is
    not: panopticapi compares ``iscrowd == 1`` and treats the rest as ordinary segments,
    and scores must not depend on which of the two evaluated a file.
    """
    return int(isinstance(value, (int, float, np.integer, np.floating)) and value == 1)


def segment_fields(record: Mapping, where: str) -> tuple[int, int, int]:
    """``id``, ``category_id`` and crowd flag of one COCO ``segments_info`` record, checked.

    Args:
        record: the JSON object.
        where: names the record in errors (file, image and position in ``segments_info``).

    Returns:
        ``(id, category_id, iscrowd)``: two ints (:func:`coco_integer`) and 0 or 1
        (:func:`crowd_flag`; a missing ``iscrowd`` is 0).

    Raises:
        PanopticFormatError: ``"{where}: ..."``, for a record that is not an object or lacks
            ``id`` or ``category_id``, and for a value :func:`coco_integer` refuses.
    """
    if not isinstance(record, Mapping) or "id" not in record or "category_id" not in record:
        lacks = "is not a JSON object" if not isinstance(record, Mapping) else (
            f"lacks {'id' if 'id' not in record else 'category_id'!r}")
        raise PanopticFormatError(f"{where}: malformed segment record {record!r} ({lacks})")
    try:
        segment_id = coco_integer(record["id"], "segment id")
        category_id = coco_integer(record["category_id"], f"segment {segment_id}: category_id")
    except PanopticFormatError as err:
        raise PanopticFormatError(f"{where}: {err}") from None
    return segment_id, category_id, crowd_flag(record.get("iscrowd", 0))


@dataclass(frozen=True)
class Segment:
    """One segment of a panoptic segmentation (a COCO ``segments_info`` record).

    Attributes:
        id: positive segment id, the value of its pixels in the id map.
        category_id: dataset category id.
        iscrowd: 1 for a crowd region (a group of things not split into instances), else 0.
            Any value given is stored as :func:`crowd_flag` of it: only a value equal to 1
            is crowd, as in panopticapi, so summing the flags counts crowd segments.
        area: number of pixels.
        bbox: ``(x, y, width, height)`` of the tightest box around its pixels, COCO style.
        score: confidence of a predicted segment; ``None`` for ground truth.
    """

    id: int
    category_id: int
    iscrowd: int = 0
    area: int = 0
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    score: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "iscrowd", crowd_flag(self.iscrowd))

    def to_coco(self) -> dict:
        record = {"id": int(self.id), "category_id": int(self.category_id), "iscrowd": int(self.iscrowd),
                  "area": int(self.area), "bbox": [int(v) for v in self.bbox]}
        if self.score is not None:
            record["score"] = float(self.score)
        return record

    @classmethod
    def from_coco(cls, record: Mapping, where: str = "segment record") -> "Segment":
        """From a COCO ``segments_info`` record; ``where`` names it in errors (file, image, position).

        ``id``, ``category_id`` and ``iscrowd`` are read by :func:`segment_fields`.
        """
        segment_id, category_id, iscrowd = segment_fields(record, where)
        try:
            return cls(id=segment_id, category_id=category_id, iscrowd=iscrowd, area=int(record.get("area", 0)),
                       bbox=tuple(int(v) for v in record.get("bbox", (0, 0, 0, 0))),
                       score=float(record["score"]) if record.get("score") is not None else None)
        except (TypeError, ValueError) as err:
            raise PanopticFormatError(f"{where}: malformed segment record {dict(record)!r} ({err})") from None


def segment_statistics(id_map: np.ndarray) -> dict[int, tuple[int, tuple[int, int, int, int]]]:
    """Area and COCO bbox ``(x, y, w, h)`` of every non-zero id of an (H, W) id map."""
    id_map = np.asarray(id_map)
    max_id = int(id_map.max()) if id_map.size else 0
    if id_map.size and id_map.min() >= 0 and max_id <= max(1 << 16, 4 * id_map.size):
        # small ids (the usual case): count and box them directly, no sort needed
        areas = np.bincount(id_map.ravel(), minlength=max_id + 1)
        labels, ids = id_map, np.flatnonzero(areas)
        area_of = areas[ids]
    else:
        # large ids such as COCO's colour-derived ones: renumber to 1..n first
        ids, inverse = np.unique(id_map, return_inverse=True)
        labels = inverse.reshape(id_map.shape) + 1
        area_of = np.bincount(inverse.ravel(), minlength=len(ids))
    from scipy import ndimage  # here: importing scipy.ndimage costs every command's start

    # find_objects(labels)[k - 1] is the bounding slice of label k
    slices = ndimage.find_objects(labels.astype(np.int64, copy=False))
    label_of = ids if labels is id_map else np.arange(1, len(ids) + 1)
    stats = {}
    for seg_id, label, area in zip(ids.tolist(), label_of.tolist(), area_of.tolist()):
        if seg_id == VOID:
            continue
        rows, cols = slices[label - 1]
        stats[seg_id] = (int(area), (cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start))
    return stats


@dataclass
class PanopticSegmentation:
    """An (H, W) integer id map plus the list of its segments.

    Contract (checked by :meth:`validate`): every non-zero id of ``id_map`` has exactly
    one segment and every segment occurs in ``id_map``; id 0 is void and is never a
    segment; with ``check_statistics=True`` also: ``area`` and ``bbox`` agree with the map
    (:meth:`with_statistics` recomputes them).
    """

    id_map: np.ndarray
    segments: list[Segment] = field(default_factory=list)

    # --- construction ------------------------------------------------------------------
    @classmethod
    def from_id_map(cls, id_map: np.ndarray, category_of: Mapping[int, int],
                    iscrowd: Mapping[int, int] | None = None,
                    scores: Mapping[int, float] | None = None,
                    source: str = "id map") -> "PanopticSegmentation":
        """Build segments (areas, boxes) from an id map and each id's category.

        Args:
            id_map: (H, W) integer array, 0 = void.
            category_of: segment id -> category id, for every non-zero id of the map.
            iscrowd: segment id -> 0/1 (default 0; only values equal to 1 are crowd, see :class:`Segment`).
            scores: segment id -> confidence, for predictions.
        """
        id_map = _as_id_map(id_map, source)
        stats = segment_statistics(id_map)
        missing = sorted(set(stats) - set(int(k) for k in category_of))
        if missing:
            raise PanopticFormatError(f"{source}: ids {missing[:10]} have no category")
        iscrowd = iscrowd or {}
        scores = scores or {}
        segments = [Segment(id=seg_id, category_id=int(category_of[seg_id]), iscrowd=iscrowd.get(seg_id, 0),
                            area=area, bbox=bbox, score=scores.get(seg_id))
                    for seg_id, (area, bbox) in stats.items()]
        return cls(id_map, segments)

    # --- views -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.id_map.shape)

    def segment(self, segment_id: int) -> Segment:
        for s in self.segments:
            if s.id == segment_id:
                return s
        raise KeyError(f"no segment with id {segment_id}")

    def mask(self, segment_id: int) -> np.ndarray:
        """(H, W) bool mask of one segment."""
        return self.id_map == segment_id

    def category_map(self, void: int = VOID_LABEL) -> np.ndarray:
        """(H, W) int64 map of dataset category ids, ``void`` where the id map is 0."""
        lut = {s.id: s.category_id for s in self.segments}
        ids, inverse = np.unique(self.id_map, return_inverse=True)
        values = np.array([lut.get(int(i), void) for i in ids], dtype=np.int64)
        return values[inverse].reshape(self.id_map.shape)

    # --- checks ------------------------------------------------------------------------
    def validate(self, categories: CategorySet | None = None, source: str = "panoptic segmentation",
                 check_statistics: bool = False) -> dict:
        """Raise :class:`PanopticFormatError` naming ``source`` and the offending segment.

        Returns:
            the :func:`segment_statistics` it measured, for :meth:`with_statistics`.
        """
        _as_id_map(self.id_map, source)
        seen = set()
        for s in self.segments:
            if s.id in seen:
                raise PanopticFormatError(f"{source}: segment id {s.id} appears twice")
            if s.id <= 0:
                raise PanopticFormatError(f"{source}: segment id {s.id} is not positive (0 is void)")
            seen.add(s.id)
            if categories is not None and s.category_id not in categories:
                raise PanopticFormatError(f"{source}: segment {s.id} has unknown category id {s.category_id}")
        stats = segment_statistics(self.id_map)
        unlisted = sorted(set(stats) - seen)
        if unlisted:
            raise PanopticFormatError(f"{source}: ids {unlisted[:10]} occur in the id map but have no segment")
        absent = sorted(seen - set(stats))
        if absent:
            raise PanopticFormatError(f"{source}: segments {absent[:10]} are listed but have no pixel")
        if check_statistics:
            for s in self.segments:
                area, bbox = stats[s.id]
                if (s.area, tuple(s.bbox)) != (area, bbox):
                    raise PanopticFormatError(f"{source}: segment {s.id} says area {s.area}, bbox {list(s.bbox)} "
                                              f"but its pixels give area {area}, bbox {list(bbox)}")
        return stats

    def with_statistics(self, stats: dict | None = None) -> "PanopticSegmentation":
        """A copy whose segments' ``area`` and ``bbox`` are recomputed from the id map.

        ``stats``: :func:`segment_statistics` of this id map when already measured
        (:meth:`validate` returns them), so the pixels are not read twice.
        """
        stats = segment_statistics(self.id_map) if stats is None else stats
        segments = [replace(s, area=stats[s.id][0], bbox=stats[s.id][1]) if s.id in stats else s
                    for s in self.segments]
        return PanopticSegmentation(self.id_map, segments)

    # --- comparison --------------------------------------------------------------------
    def relabeled(self) -> "PanopticSegmentation":
        """Ids renumbered 1..n in raster order of each segment's first pixel.

        Two segmentations that differ only in their choice of ids become identical.
        """
        flat = self.id_map.ravel()
        ids, first = np.unique(flat, return_index=True)
        order = [int(i) for i in ids[np.argsort(first)] if i != VOID]
        new_of = {old: new for new, old in enumerate(order, start=1)}
        lut_keys = np.array(list(new_of) or [0])
        lut_vals = np.array(list(new_of.values()) or [0])
        id_map = np.zeros_like(self.id_map)
        sorter = np.argsort(lut_keys)
        nonvoid = self.id_map != VOID
        id_map[nonvoid] = lut_vals[sorter][np.searchsorted(lut_keys, self.id_map[nonvoid], sorter=sorter)]
        segments = sorted((replace(s, id=new_of[s.id]) for s in self.segments if s.id in new_of), key=lambda s: s.id)
        return PanopticSegmentation(id_map, segments)

    def equals(self, other: "PanopticSegmentation", ignore_ids: bool = False) -> bool:
        """Same pixels, same segment records (after :meth:`relabeled` if ``ignore_ids``)."""
        a, b = (self.relabeled(), other.relabeled()) if ignore_ids else (self, other)
        if a.id_map.shape != b.id_map.shape or not np.array_equal(a.id_map, b.id_map):
            return False
        return sorted(a.segments, key=lambda s: s.id) == sorted(b.segments, key=lambda s: s.id)


def _as_id_map(id_map: np.ndarray, source: str) -> np.ndarray:
    id_map = np.asarray(id_map)
    if id_map.ndim != 2:
        raise PanopticFormatError(f"{source}: id map must be 2-D (H, W), got shape {id_map.shape}")
    if not np.issubdtype(id_map.dtype, np.integer):
        raise PanopticFormatError(f"{source}: id map must hold integers, got dtype {id_map.dtype}")
    if id_map.size and id_map.min() < 0:
        raise PanopticFormatError(f"{source}: id map holds negative ids ({int(id_map.min())})")
    return id_map


# ---------------------------------------------------------------------------------------
# COCO RGB encoding
# ---------------------------------------------------------------------------------------
def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 COCO panoptic PNG -> (H, W) int32 ids, ``R + 256 G + 256^2 B``."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise PanopticFormatError(f"an RGB panoptic image must be (H, W, 3), got shape {rgb.shape}")
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(id_map: np.ndarray) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8, the inverse of :func:`rgb_to_id`."""
    id_map = np.asarray(id_map)
    if id_map.size and (id_map.min() < 0 or id_map.max() > MAX_SEGMENT_ID):
        raise PanopticFormatError(f"ids must lie in [0, {MAX_SEGMENT_ID}] to fit an RGB PNG, "
                                  f"got [{int(id_map.min())}, {int(id_map.max())}]")
    id_map = id_map.astype(np.int64)
    return np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# label-divisor encoding: category * divisor + k
# ---------------------------------------------------------------------------------------
#: Cityscapes' ``*_instanceIds.png`` (``label_id * 1000 + k``) and Panoptic-DeepLab's
#: ``label_divisor`` (detectron2's configs): 1000.
LABEL_DIVISOR = 1000


def to_label_divisor(pan: PanopticSegmentation, categories: CategorySet, label_divisor: int = LABEL_DIVISOR,
                     void: int = -1) -> np.ndarray:
    """Encode as ``category * label_divisor + k`` (Cityscapes, Panoptic-DeepLab).

    Non-crowd thing segments get ``k = 1, 2, ...`` per category, in raster order of their
    first pixel; stuff and crowd segments get ``k = 0`` (so two stuff or crowd segments of
    one category merge: this encoding cannot tell them apart). Void pixels get ``void``.

    Returns:
        (H, W) int64 label map.
    """
    pan = pan.relabeled()  # raster order of first pixels
    next_k: dict[int, int] = {}
    value_of = {}
    for s in pan.segments:
        k = 0
        if categories.isthing(s.category_id) and not s.iscrowd:
            k = next_k.get(s.category_id, 0) + 1
            next_k[s.category_id] = k
            if k >= label_divisor:
                raise PanopticFormatError(f"category {s.category_id} has {k} instances, more than "
                                          f"label_divisor={label_divisor} - 1 can encode")
        value_of[s.id] = s.category_id * label_divisor + k
    lut = np.full(len(pan.segments) + 1, void, dtype=np.int64)
    for seg_id, value in value_of.items():
        lut[seg_id] = value
    return lut[pan.id_map]


def from_label_divisor(labels: np.ndarray, categories: CategorySet, label_divisor: int = LABEL_DIVISOR,
                       void: int = -1, source: str = "label map") -> PanopticSegmentation:
    """Decode ``category * label_divisor + k`` into a :class:`PanopticSegmentation`.

    A thing category with ``k = 0`` is a crowd region (Cityscapes' convention). Segment ids
    are 1..n in raster order of each segment's first pixel.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise PanopticFormatError(f"{source}: label map must be 2-D, got shape {labels.shape}")
    values, first, inverse = np.unique(labels.ravel(), return_index=True, return_inverse=True)
    keep = values != void
    order = np.argsort(first[keep])
    kept_values = values[keep][order]
    new_id = np.zeros(len(values), dtype=np.int32)
    new_id[np.flatnonzero(keep)[order]] = np.arange(1, len(kept_values) + 1)
    id_map = new_id[inverse].reshape(labels.shape)
    category_of, iscrowd = {}, {}
    for seg_id, value in enumerate(kept_values.tolist(), start=1):
        category_id, k = divmod(int(value), label_divisor)
        if category_id not in categories:
            raise PanopticFormatError(f"{source}: value {value} decodes to unknown category {category_id}")
        category_of[seg_id] = category_id
        iscrowd[seg_id] = int(categories.isthing(category_id) and k == 0)
    return PanopticSegmentation.from_id_map(id_map, category_of, iscrowd, source=source)


# ---------------------------------------------------------------------------------------
# semantic map + instance masks
# ---------------------------------------------------------------------------------------
def to_semantic_and_instances(pan: PanopticSegmentation, categories: CategorySet, void_label: int = VOID_LABEL):
    """Split into a semantic map and the thing instances.

    Returns:
        semantic: (H, W) int64 category id per pixel, ``void_label`` on void.
        masks: (N, H, W) bool, one per thing segment (crowd included), in segment order.
        labels: (N,) int64 category ids of the masks.
        iscrowd: (N,) int64 crowd flags of the masks.
    """
    if void_label in categories:
        raise PanopticFormatError(f"void_label {void_label} is also a category id; pick another")
    semantic = pan.category_map(void=void_label)
    things = [s for s in pan.segments if categories.isthing(s.category_id)]
    masks = np.stack([pan.id_map == s.id for s in things]) if things else np.zeros((0, *pan.shape), bool)
    labels = np.array([s.category_id for s in things], dtype=np.int64)
    iscrowd = np.array([s.iscrowd for s in things], dtype=np.int64)
    return semantic, masks, labels, iscrowd


def from_semantic_and_instances(semantic: np.ndarray, masks: np.ndarray, labels: Sequence[int],
                                categories: CategorySet, iscrowd: Sequence[int] | None = None,
                                void_label: int = VOID_LABEL, source: str = "semantic + instances") -> PanopticSegmentation:
    """Combine a semantic map and non-overlapping instance masks into one panoptic segmentation.

    Stuff segments come from the semantic map (one per stuff category present). Each
    instance mask becomes one thing segment and wins over stuff. Pixels whose semantic
    label is a thing category but that no mask covers become void. Overlapping masks
    are an error here: resolving them is what a merge heuristic does
    (:mod:`panopticlab.postprocess`).

    Args:
        semantic: (H, W) integer category ids, ``void_label`` on void.
        masks: (N, H, W) bool instance masks.
        labels: (N,) category ids of the masks; each must be a thing category.
        iscrowd: (N,) crowd flags (default all 0).
    """
    semantic = np.asarray(semantic)
    masks = np.asarray(masks, dtype=bool)
    if masks.size == 0:
        masks = masks.reshape(0, *semantic.shape)
    if masks.ndim != 3 or masks.shape[1:] != semantic.shape:
        raise PanopticFormatError(f"{source}: masks of shape {masks.shape[1:]} do not match semantic map {semantic.shape}")
    if len(labels) != len(masks):
        raise PanopticFormatError(f"{source}: {len(masks)} masks but {len(labels)} labels")
    iscrowd = [0] * len(masks) if iscrowd is None else list(iscrowd)
    for index, label in enumerate(labels):
        if not categories.isthing(int(label)):
            raise PanopticFormatError(f"{source}: instance {index} has category {label}, which is not a thing")
    coverage = masks.sum(axis=0) if len(masks) else np.zeros(semantic.shape, int)
    if (coverage > 1).any():
        y, x = np.argwhere(coverage > 1)[0]
        owners = np.flatnonzero(masks[:, y, x]).tolist()
        raise PanopticFormatError(f"{source}: instances {owners} overlap at pixel (y={y}, x={x})")

    id_map = np.zeros(semantic.shape, dtype=np.int32)
    category_of, crowd_of = {}, {}
    next_id = 1
    present = set(np.unique(semantic).tolist()) - {void_label}
    unknown = sorted(c for c in present if c not in categories)
    if unknown:
        raise PanopticFormatError(f"{source}: semantic map holds unknown category ids {unknown}")
    for category_id in sorted(present):
        if categories.isthing(category_id):
            continue
        id_map[semantic == category_id] = next_id
        category_of[next_id] = category_id
        next_id += 1
    # thing pixels not claimed by an instance are void
    thing_pixels = np.isin(semantic, categories.thing_ids)
    id_map[thing_pixels] = VOID
    for mask, label, crowd in zip(masks, labels, iscrowd):
        if not mask.any():
            continue
        id_map[mask] = next_id
        category_of[next_id] = int(label)
        crowd_of[next_id] = int(crowd)
        next_id += 1
    # stuff segments entirely covered by instances disappear
    return PanopticSegmentation.from_id_map(id_map, category_of, crowd_of, source=source)
