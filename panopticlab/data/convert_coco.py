"""COCO instance annotations (polygons or RLE) plus an optional stuff map (COCO-Stuff style)
into one panoptic segmentation per image.

The instances are the things: each annotation becomes one segment, crowd annotations of
one class become one crowd region (COCO panoptic keeps one per class and image), and
where masks overlap ``ConvertRules.overlap`` decides. The stuff map gives the stuff
segments; its pixels of thing classes (COCO-Stuff's thing placeholders) are not
compared with the instances, and those no instance covers follow ``ConvertRules.unassigned``
(default: void). Masks are decoded with pycocotools, as COCO's own tools decode them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .categories import CategorySet
from .convert_rules import VOID_CLASS, ClassTable, Conflict, ConvertRules, SegmentTable, pair_boxes, void_values
from .errors import PanopticFormatError
from .fields import coco_file_name, coco_image_id, coco_integer
from .panoptic import PanopticSegmentation, crowd_flag

__all__ = ["CocoInstances", "read_coco_instances", "instance_mask", "panoptic_from_coco_instances"]


@dataclass
class CocoInstances:
    """A COCO instances JSON, checked.

    Attributes:
        path: the file.
        images: its image records (``id``, ``file_name``, ``height``, ``width`` checked), in file order.
        annotations: image id -> ``[(name, record), ...]`` in file order; ``name`` says
            which annotation it is in messages (``"annotation 17"``, or ``"annotations[3]"``
            when it has no ``id``).
        categories: the file's ``categories`` records, or ``None``.
    """

    path: Path
    images: list[dict]
    annotations: dict[int | str, list[tuple[str, dict]]]
    categories: list[dict] | None


def read_coco_instances(path: str | os.PathLike) -> CocoInstances:
    """Read a COCO instances JSON (``images``, ``annotations``, optionally ``categories``).

    Raises:
        PanopticFormatError: naming the file and the record: unreadable JSON, an image
            record without a proper ``id``, ``file_name``, ``height`` or ``width``, a
            duplicate image id, or an annotation without ``image_id``, ``category_id`` or
            ``segmentation``, or of an image the file does not list.
    """
    from .coco import read_json

    path = Path(path)
    data = read_json(path, ("images", "annotations"), "COCO instances file")
    images, seen = [], set()
    for position, record in enumerate(data["images"]):
        where = f"{path}: images[{position}]"
        if not isinstance(record, dict) or not {"id", "file_name", "height", "width"} <= set(record):
            raise PanopticFormatError(f"{where} lacks one of 'id', 'file_name', 'height', 'width'")
        image_id = coco_image_id(record["id"], f"{where}: id")
        if image_id in seen:
            raise PanopticFormatError(f"{where}: image id {image_id!r} appears twice")
        seen.add(image_id)
        images.append({"id": image_id, "file_name": coco_file_name(record["file_name"], f"{where}: file_name"),
                       "height": coco_integer(record["height"], f"{where}: height", 1),
                       "width": coco_integer(record["width"], f"{where}: width", 1)})
    annotations: dict = {image["id"]: [] for image in images}
    for position, record in enumerate(data["annotations"]):
        name = f"annotation {record['id']}" if isinstance(record, dict) and "id" in record else \
            f"annotations[{position}]"
        if not isinstance(record, dict) or not {"image_id", "category_id", "segmentation"} <= set(record):
            raise PanopticFormatError(f"{path}: {name} lacks one of 'image_id', 'category_id', 'segmentation'")
        image_id = coco_image_id(record["image_id"], f"{path}: {name}: image_id")
        if image_id not in annotations:
            raise PanopticFormatError(f"{path}: {name} is of image id {image_id!r}, which 'images' does not list")
        annotations[image_id].append((name, record))
    categories = data.get("categories")
    return CocoInstances(path, images, annotations, categories if isinstance(categories, list) else None)


def instance_mask(segmentation, height: int, width: int, where: str) -> np.ndarray:
    """Decode one COCO ``segmentation``: polygons, an uncompressed RLE or a compressed RLE.

    Args:
        segmentation: ``[[x1, y1, x2, y2, ...], ...]`` or ``{"size": [h, w], "counts": ...}``.
        height, width: the image's size.
        where: names the annotation in errors.

    Returns:
        (H, W) bool mask.

    Raises:
        PanopticFormatError: naming ``where``: a polygon of fewer than 3 points, an RLE of
            another size than the image, a malformed record, or pycocotools missing.
    """
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise PanopticFormatError(f"{where}: decoding COCO polygons and RLE needs pycocotools "
                                  f"(pip install pycocotools)") from None
    if isinstance(segmentation, list):
        for polygon in segmentation:
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2 or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon):
                raise PanopticFormatError(f"{where}: a polygon must be a list of at least 3 points "
                                          f"[x1, y1, x2, y2, x3, y3, ...], got {str(polygon)[:60]}")
        if not segmentation:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size = segmentation["size"]
        if not isinstance(size, list) or [coco_integer(v, f"{where}: RLE size", 1) for v in size] != [height, width]:
            raise PanopticFormatError(f"{where}: its RLE is {size} (height, width) but the image is "
                                      f"[{height}, {width}]")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            if sum(counts) != height * width or any(not isinstance(c, int) or c < 0 for c in counts):
                raise PanopticFormatError(f"{where}: its uncompressed RLE counts must be non-negative integers "
                                          f"summing to {height} x {width} = {height * width}")
            rle = mask_utils.frPyObjects(segmentation, height, width)
        elif isinstance(counts, (str, bytes)):
            rle = segmentation
        else:
            raise PanopticFormatError(f"{where}: RLE counts must be a list or a string, got {type(counts).__name__}")
    else:
        raise PanopticFormatError(f"{where}: segmentation must be a list of polygons or an RLE "
                                  f"{{'size', 'counts'}}, got {str(segmentation)[:60]}")
    try:
        return mask_utils.decode(rle).astype(bool)
    except (ValueError, TypeError, RuntimeError) as err:
        raise PanopticFormatError(f"{where}: cannot decode its RLE ({err})") from None


@dataclass
class _Thing:
    """One thing segment before painting: an annotation, or the crowd annotations of one class merged."""

    names: list[str]
    category: int
    crowd: int
    mask: np.ndarray
    position: int  # in the file: the first/last overlap rules compare it

    @property
    def window(self) -> tuple[slice, slice]:
        """The rows and columns of the mask's box: painting within it is much faster than over the image."""
        x, y, w, h = _box(self.mask)
        return slice(y, y + h), slice(x, x + w)

    @property
    def label(self) -> str:
        return f"{' + '.join(self.names)}{' (crowd)' if self.crowd else ''}"


def panoptic_from_coco_instances(annotations: list[tuple[str, dict]], height: int, width: int,
                                 categories: CategorySet, rules: ConvertRules = ConvertRules(),
                                 stuff: np.ndarray | None = None, *, source: str = "COCO annotations",
                                 stuff_source: str = "stuff map") -> tuple[PanopticSegmentation, list[Conflict]]:
    """One image's COCO instance annotations, plus its stuff map, as a panoptic segmentation.

    Args:
        annotations: ``[(name, record), ...]`` (:attr:`CocoInstances.annotations` of the image).
        height, width: the image's size.
        categories: every annotation's category must be a thing (or unknown, under
            ``rules.unknown == "void"``); the stuff map's values are category ids or void.
        rules: ``overlap``, ``prefer``, ``unassigned`` (default void), ``unknown``, ``void``,
            ``strict`` apply.
        stuff: (H, W) non-negative integer stuff map, or ``None`` (things only).
        source, stuff_source: name the annotations file and the stuff map in messages.

    Returns:
        the segmentation (ids 1..n, area and bbox not yet measured) and the conflicts.

    Raises:
        PanopticFormatError: naming the file and the annotation, for what
            :func:`instance_mask` refuses, an annotation of a stuff or unknown category,
            a stuff map of another size, or any conflict under ``rules.strict``.
    """
    shape = (height, width)
    things, conflicts = _things(annotations, shape, categories, rules, source)
    owner, overlaps = _paint(things, shape, rules, source)
    conflicts += overlaps
    if stuff is not None and np.shape(stuff) != shape:
        raise PanopticFormatError(f"{stuff_source}: the stuff map is {np.shape(stuff)[0]}x{np.shape(stuff)[1]} but "
                                  f"the image is {height}x{width} (height x width)")
    labels = np.zeros(shape, np.uint8) if stuff is None else np.asarray(stuff)
    table = ClassTable(labels, categories, rules, void_values(rules, categories), stuff_source, "stuff map")
    conflicts += table.unknown
    span = len(things) + 1  # owner values 0..N: 0 is "no instance"
    keys = table.class_map * span + owner
    counts = np.bincount(keys.ravel(), minlength=len(table) * span)
    segments, lut, pending = SegmentTable(), np.zeros(len(counts), np.int64), []
    unassigned = rules.unassigned_or("void")
    for key in np.flatnonzero(counts).tolist():
        c, a = divmod(key, span)
        category = int(table.classes[c])
        label = repr(categories.name(category)) if c != VOID_CLASS else "void"
        is_stuff = c != VOID_CLASS and not table.isthing[c]
        if a:
            thing = things[a - 1]
            keep_stuff = is_stuff and rules.prefer == "semantic"
            lut[key] = segments.id(("stuff", category), category) if keep_stuff else \
                segments.id(_thing_key(thing, a), thing.category, thing.crowd)
            if is_stuff:
                pending.append((key, "instance on stuff", f"{thing.label} ({categories.name(thing.category)!r}) lies "
                                f"on {label} of the stuff map", f"they stay {label} (--prefer semantic)" if keep_stuff
                                else f"they go to {thing.label} (--prefer instances)"))
        elif table.isthing[c]:
            lut[key] = segments.id(("crowd", category), category, 1) if unassigned == "crowd" else 0
            pending.append((key, "thing without instance", f"{label} in the stuff map is covered by no instance",
                            f"they become {'a crowd region of ' + label if unassigned == 'crowd' else 'void'} "
                            f"(--unassigned {unassigned})"))
        elif is_stuff:
            lut[key] = segments.id(("stuff", category), category)
    where = source if stuff is None else f"{source} + {stuff_source}"
    boxes = pair_boxes(keys, [key for key, *_ in pending])
    conflicts += [Conflict(where, kind, int(counts[key]), boxes[key], what, resolution)
                  for key, kind, what, resolution in pending]
    if rules.strict and conflicts:
        raise PanopticFormatError(f"{conflicts[0]} (--strict refuses every conflict)")
    return segments.panoptic(lut, keys), conflicts


def _thing_key(thing: _Thing, index: int) -> tuple:
    return ("crowd", thing.category) if thing.crowd else ("thing", index)


def _things(annotations, shape, categories, rules, source) -> tuple[list[_Thing], list[Conflict]]:
    """The thing segments of the annotations (crowds of one class merged), and what was dropped or merged."""
    things, crowd_of, conflicts = [], {}, []
    for position, (name, record) in enumerate(annotations):
        where = f"{source}: {name}"
        category = coco_integer(record["category_id"], f"{where}: category_id")
        mask = instance_mask(record["segmentation"], *shape, where)
        if category not in categories or not categories.isthing(category):
            if category in categories:
                raise PanopticFormatError(f"{where} has the category {category} ({categories.name(category)!r}), "
                                          f"a stuff class; instance annotations must be things (stuff comes from "
                                          f"the stuff maps)")
            if rules.unknown == "error":
                raise PanopticFormatError(f"{where} has the unknown category id {category}; the categories have ids "
                                          f"{categories.ids[:20]}; pass --unknown void to leave such annotations out")
            conflicts.append(Conflict(source, "unknown class", int(mask.sum()), _box(mask),
                                      f"{name} has the category id {category}, which is no category",
                                      "it is left out (--unknown void)"))
            continue
        if not mask.any():
            conflicts.append(Conflict(source, "empty instance", 0, (0, 0, 0, 0), f"{name} has no pixel",
                                      "it is left out"))
            continue
        crowd = crowd_flag(record.get("iscrowd", 0))
        if crowd and category in crowd_of:
            merged = crowd_of[category]
            merged.names.append(name)
            merged.mask = merged.mask | mask
            continue
        thing = _Thing([name], category, crowd, mask, position)
        things.append(thing)
        if crowd:
            crowd_of[category] = thing
    for thing in crowd_of.values():
        if len(thing.names) > 1:
            conflicts.append(Conflict(source, "crowd merged", int(thing.mask.sum()), _box(thing.mask),
                                      f"{', '.join(thing.names)} are all crowd regions of "
                                      f"{categories.name(thing.category)!r}",
                                      "they become one crowd segment (COCO panoptic keeps one crowd region per "
                                      "class and image)"))
    return things, conflicts


def _paint(things: list[_Thing], shape, rules: ConvertRules, source: str) -> tuple[np.ndarray, list[Conflict]]:
    """(H, W) int32 map of the thing (1-based index) owning each pixel, by ``rules.overlap``; and the overlaps."""
    owner = np.zeros(shape, np.int32)
    if not things:
        return owner, []
    areas = [int(t.mask.sum()) for t in things]
    if rules.overlap == "smaller":  # larger first, so that smaller ones paint over them; ties: later wins
        order = sorted(range(len(things)), key=lambda i: (-areas[i], things[i].position))
    elif rules.overlap == "first":
        order = sorted(range(len(things)), key=lambda i: -things[i].position)
    else:
        order = sorted(range(len(things)), key=lambda i: things[i].position)
    coverage = np.zeros(shape, np.int32)
    for i in order:
        window = things[i].window
        mask = things[i].mask[window]
        owner[window][mask] = i + 1
        coverage[window] += mask
    shared = np.flatnonzero(coverage.ravel() > 1)
    if not len(shared):
        return owner, []
    if rules.overlap == "void":
        owner.ravel()[shared] = 0
    stack = np.stack([t.mask.ravel()[shared] for t in things])  # (N, S) bool
    together = stack.astype(np.int32) @ stack.T.astype(np.int32)
    conflicts = []
    for a, b in zip(*np.nonzero(np.triu(together, 1))):
        both = np.flatnonzero(stack[a] & stack[b])
        ys, xs = np.divmod(shared[both], shape[1])
        box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        first, second = things[a], things[b]
        if first.position > second.position:
            first, second = second, first
        conflicts.append(Conflict(source, "overlap", int(len(both)), box, f"{first.label} and {second.label} overlap",
                                  _overlap_resolution(first, second, areas[things.index(first)],
                                                      areas[things.index(second)], rules.overlap)))
    return owner, conflicts


def _overlap_resolution(first: _Thing, second: _Thing, first_area: int, second_area: int, rule: str) -> str:
    if rule == "void":
        return "they become void (--overlap void)"
    if rule == "smaller":
        winner = first if first_area < second_area else second
        return f"{winner.label}, the smaller, keeps them (--overlap smaller)"
    return f"{(first if rule == 'first' else second).label} keeps them (--overlap {rule})"


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    if not mask.any():
        return (0, 0, 0, 0)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
