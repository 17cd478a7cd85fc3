"""What the converters share: the rules that resolve conflicts, the conflicts they name, and
the tables that turn label values into segments.

Every converter of :mod:`panopticlab.data.convert` works the same way on one image: it
finds the distinct values (or pairs of values) present in the label maps, decides what
each one becomes (a stuff segment, one thing instance, a crowd region or void) in Python
over that short list, and then maps every pixel at once through a lookup table. Where
two labels disagree the decision follows a :class:`ConvertRules` field and is recorded
as a :class:`Conflict`, so nothing is resolved silently.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .categories import CategorySet
from .errors import PanopticFormatError
from .panoptic import PanopticSegmentation, Segment

__all__ = ["ConvertRules", "Conflict", "ClassTable", "SegmentTable", "present_values", "pair_boxes", "void_values"]

_CHOICES = {"unknown": ("error", "void"), "prefer": ("instances", "semantic"),
            "unassigned": ("crowd", "void", None), "instance_ids": ("image", "class"),
            "overlap": ("smaller", "first", "last", "void"), "empty": ("error", "skip", "keep")}
VOID_CLASS = 0  # compact class index of void pixels in a ClassTable


@dataclass(frozen=True)
class ConvertRules:
    """How a conversion resolves what the labels leave open. Each field is the command's option
    of the same name (``--instance-ids`` for ``instance_ids``).

    Attributes:
        void: label values that mean "unlabeled" in semantic, stuff and label-divisor maps;
            ``None``: 0 and 255, each unless it is a category id.
        unknown: a value that is neither a category id nor void: ``"error"`` (the default)
            or ``"void"`` (its pixels become void, and each such value is named).
        prefer: who decides a pixel where an instance lies on a pixel that the semantic map
            gives a stuff class or void (a stuff map: a stuff class; its void is no conflict):
            ``"instances"`` (the instance takes it) or ``"semantic"`` (the map keeps it; the
            instance loses it).
        unassigned: pixels of a thing class that no instance covers: ``"crowd"`` (one crowd
            region per class and image, as Cityscapes marks groups) or ``"void"``; ``None``:
            crowd for semantic and label-divisor maps, void for COCO instances (whose
            instances are the things).
        instance_ids: in an instance map, ``"image"``: an id names one object of the image,
            so it must not cover two thing classes; ``"class"``: ids are numbered per class,
            a (class, id) pair names an object, and the semantic map decides every pixel's class.
        overlap: two COCO instance masks that share pixels: ``"smaller"`` (the smaller mask
            keeps them: it is usually the object in front), ``"first"`` / ``"last"`` (the one
            earlier / later in the file), or ``"void"`` (neither).
        empty: an image with no labels, or whose labels are all void: ``"error"``,
            ``"skip"`` (left out of the output) or ``"keep"`` (written with no segment).
        strict: refuse every conflict as an error instead of resolving it.
    """

    void: tuple[int, ...] | None = None
    unknown: str = "error"
    prefer: str = "instances"
    unassigned: str | None = None
    instance_ids: str = "image"
    overlap: str = "smaller"
    empty: str = "error"
    strict: bool = False

    def __post_init__(self):
        for field in fields(self):
            allowed = _CHOICES.get(field.name)
            if allowed is not None and getattr(self, field.name) not in allowed:
                raise ValueError(f"ConvertRules.{field.name} must be one of {[c for c in allowed if c]}, "
                                 f"got {getattr(self, field.name)!r}")
        if self.void is not None:
            object.__setattr__(self, "void", tuple(int(v) for v in self.void))

    def unassigned_or(self, default: str) -> str:
        return self.unassigned or default


@dataclass(frozen=True)
class Conflict:
    """Two labels that disagree on some pixels, and how the disagreement was resolved.

    Attributes:
        source: the image's label file(s).
        kind: a short name for the kind, e.g. ``"instance on stuff"``, ``"overlap"``.
        pixels: how many pixels.
        bbox: ``(x, y, width, height)`` of those pixels.
        what: which two segments or labels, e.g. ``"instance 5 (car) lies on 'road' of the semantic map"``.
        resolution: what became of the pixels and by which rule.
    """

    source: str
    kind: str
    pixels: int
    bbox: tuple[int, int, int, int]
    what: str
    resolution: str

    def __str__(self) -> str:
        x, y, w, h = self.bbox
        return f"{self.source}: {self.pixels} pixels (box x={x}, y={y}, w={w}, h={h}): {self.what}; {self.resolution}"

    def to_json(self) -> dict:
        return {"source": self.source, "kind": self.kind, "pixels": self.pixels, "bbox": list(self.bbox),
                "what": self.what, "resolution": self.resolution}


def void_values(rules: ConvertRules, categories: CategorySet) -> frozenset[int]:
    """The label values that are void under ``rules``.

    Raises:
        ValueError: a value given in ``rules.void`` is also a category id.
    """
    if rules.void is None:
        return frozenset(v for v in (0, 255) if v not in categories)
    for value in rules.void:
        if value in categories:
            raise ValueError(f"--void {value}: {value} is also the id of the category {categories.name(value)!r}; "
                             f"a label value cannot be both")
    return frozenset(rules.void)


def present_values(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct values of a label map, their pixel counts, and the map in their indices.

    Args:
        labels: (H, W) non-negative integers.

    Returns:
        values: (V,) int64 sorted distinct values; counts: (V,) int64; index: (H, W) int32,
        ``values[index] == labels``.
    """
    flat = labels.ravel()
    high = int(flat.max()) if flat.size else 0
    if flat.size and flat.min() >= 0 and high <= max(1 << 16, 4 * flat.size):
        # small values (8- and 16-bit PNGs): count them directly, no sort
        counts = np.bincount(flat, minlength=high + 1)
        values = np.flatnonzero(counts)
        lut = np.zeros(high + 1, np.int32)
        lut[values] = np.arange(len(values), dtype=np.int32)
        return values.astype(np.int64), counts[values], lut[labels]
    values, index, counts = np.unique(flat, return_inverse=True, return_counts=True)
    return values.astype(np.int64), counts, index.reshape(labels.shape).astype(np.int32)


def pair_boxes(keys: np.ndarray, wanted) -> dict[int, tuple[int, int, int, int]]:
    """``(x, y, w, h)`` of the pixels of each wanted value of a small non-negative integer map."""
    wanted = list(wanted)
    if not wanted:
        return {}
    from scipy import ndimage  # here: importing scipy.ndimage costs every command's start

    slices = ndimage.find_objects(keys + 1, max_label=max(wanted) + 1)
    boxes = {}
    for key in wanted:
        rows, cols = slices[key]
        boxes[key] = (cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
    return boxes


class ClassTable:
    """The classes present in a semantic (or stuff) map: void, or a known category.

    Built from the distinct values of the map. A value that is neither void nor a category
    is refused (``rules.unknown == "error"``) or made void and recorded as a conflict.

    Attributes:
        classes: (C + 1,) int64 category ids of the compact classes 1..C (index 0 is void).
        isthing: (C + 1,) bool.
        class_map: (H, W) int32 compact class of every pixel (0: void).
        unknown: conflicts recorded for unknown values made void.
    """

    def __init__(self, labels: np.ndarray, categories: CategorySet, rules: ConvertRules, void: frozenset[int],
                 source: str, what: str = "semantic map"):
        values, counts, index = present_values(np.asarray(labels))
        self.unknown: list[Conflict] = []
        known = [int(v) for v in values if int(v) in categories]
        bad = [k for k, v in enumerate(values.tolist()) if v not in categories and v not in void]
        if bad:
            unknown_values = values[bad]
            if rules.unknown == "error":
                first = int(np.argmax(np.isin(index, bad)))
                y, x = divmod(first, index.shape[1])
                raise PanopticFormatError(
                    f"{source}: unknown class id{'s' if len(bad) > 1 else ''} {unknown_values[:10].tolist()} in the "
                    f"{what} ({int(counts[bad].sum())} pixels, the first at x={x}, y={y}); the categories have ids "
                    f"{categories.ids[:20]}{' ...' if len(categories) > 20 else ''} and void is {sorted(void)}; "
                    f"pass --unknown void to make such pixels void, or --void to name more void values")
            boxes = pair_boxes(index, bad)
            self.unknown = [Conflict(source, "unknown class", int(counts[k]), boxes[k],
                                     f"class id {int(values[k])} of the {what} is no category",
                                     "they become void (--unknown void)") for k in bad]
        self.classes = np.array([-1] + known, np.int64)
        self.isthing = np.array([False] + [categories.isthing(c) for c in known])
        compact = np.zeros(len(values), np.int32)
        compact[[k for k, v in enumerate(values.tolist()) if v in categories]] = np.arange(1, len(known) + 1)
        self.class_map = compact[index]

    def __len__(self) -> int:
        return len(self.classes)


class SegmentTable:
    """Segment ids handed out by key, 1, 2, ... in the order keys are first asked for.

    A key names a segment: ``("stuff", category)``, ``("thing", category, instance)``,
    ``("crowd", category)``; asking for the same key again gives the same id (that is how
    pixels of two labels end up in one segment).
    """

    def __init__(self):
        self._ids: dict[tuple, int] = {}
        self.segments: list[Segment] = []

    def id(self, key: tuple, category_id: int, iscrowd: int = 0) -> int:
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1
            self.segments.append(Segment(id=self._ids[key], category_id=int(category_id), iscrowd=iscrowd))
        return self._ids[key]

    def panoptic(self, lut: np.ndarray, keys: np.ndarray) -> PanopticSegmentation:
        """The segmentation whose pixel ``p`` has id ``lut[keys[p]]`` (area and bbox left at 0)."""
        return PanopticSegmentation(lut.astype(np.int32, copy=False)[keys], list(self.segments))
