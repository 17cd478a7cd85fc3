"""One image's labels into a panoptic segmentation: a semantic map plus an instance map, or a
label-divisor map (Cityscapes' ``*_instanceIds.png``). Arrays in, segmentation and conflicts out.
"""
from __future__ import annotations

import numpy as np

from .categories import CategorySet
from .convert_rules import VOID_CLASS, ClassTable, Conflict, ConvertRules, SegmentTable, pair_boxes, present_values, \
    void_values
from .errors import PanopticFormatError
from .panoptic import LABEL_DIVISOR, PanopticSegmentation

__all__ = ["panoptic_from_semantic_and_instance_maps", "panoptic_from_divisor_map"]


def panoptic_from_semantic_and_instance_maps(
        semantic: np.ndarray, instances: np.ndarray | None, categories: CategorySet,
        rules: ConvertRules = ConvertRules(), *, semantic_source: str = "semantic map",
        instance_source: str = "instance map") -> tuple[PanopticSegmentation, list[Conflict]]:
    """Merge a semantic map and an instance map labelled separately into one panoptic segmentation.

    Every stuff class present becomes one segment. Thing pixels are split by their instance
    id: with ``rules.instance_ids == "image"`` an id is one object (all its thing pixels
    must be of one class, else the id is reused across classes: an error); with
    ``"class"`` each (class, id) pair is one. Where the two maps disagree, the rules decide
    and each disagreement is returned as a :class:`Conflict`:

    * an instance on a pixel of a stuff class or void: ``rules.prefer`` (with ``"class"``
      ids, or an instance with no thing pixel at all, the semantic map keeps it);
    * a thing pixel with instance id 0: ``rules.unassigned`` (default: crowd).

    Args:
        semantic: (H, W) non-negative integer class ids: category ids or void values.
        instances: (H, W) non-negative integer instance ids, 0 = no instance; ``None``
            when the image has no instance map (allowed only if no thing class is present).
        categories: the categories; ``isthing`` says which classes the instances split.
        rules: how to resolve what the maps leave open.
        semantic_source, instance_source: name the files in errors and conflicts.

    Returns:
        the segmentation (ids 1..n, area and bbox not yet measured) and the conflicts.

    Raises:
        PanopticFormatError: naming the file: maps of different sizes, an unknown class
            (``rules.unknown == "error"``), thing pixels without an instance map, an instance
            id reused across thing classes, or any conflict under ``rules.strict``.
    """
    semantic = np.asarray(semantic)
    source = semantic_source if instances is None else f"{semantic_source} + {instance_source}"
    if instances is not None and np.shape(instances) != semantic.shape:
        raise PanopticFormatError(f"{instance_source}: the instance map is {_size(np.shape(instances))} but the "
                                  f"semantic map {semantic_source} is {_size(semantic.shape)} (height x width)")
    table = ClassTable(semantic, categories, rules, void_values(rules, categories), semantic_source)
    thing_classes = np.flatnonzero(table.isthing)
    if instances is None:
        if len(thing_classes):
            names = [categories.name(c) for c in table.classes[thing_classes]]
            pixels = int(np.isin(table.class_map, thing_classes).sum())
            raise PanopticFormatError(f"{semantic_source}: {pixels} pixels of the thing classes {names} but no "
                                      f"instance map for this image")
        instances = np.zeros(semantic.shape, np.uint8)
    inst_values, _, inst_index = present_values(np.asarray(instances))
    if inst_values[0] != 0:  # keep index 0 for "no instance"
        inst_values, inst_index = np.concatenate([[0], inst_values]), inst_index + 1
    width = len(inst_values)
    keys = table.class_map * width + inst_index
    counts = np.bincount(keys.ravel(), minlength=len(table) * width)
    present = np.flatnonzero(counts)
    by_class = _instance_classes(present, width, table, inst_values, categories, instance_source, counts, rules)

    segments, lut, conflicts = SegmentTable(), np.zeros(len(counts), np.int64), list(table.unknown)
    pending = []  # (key, kind, what, resolution) of conflicts, boxed together below
    unassigned = rules.unassigned_or("crowd")
    for key in present.tolist():
        c, j = divmod(key, width)
        category = int(table.classes[c])
        label = "void" if c == VOID_CLASS else repr(categories.name(category))
        if table.isthing[c] and j:
            lut[key] = segments.id(("thing", c, j), category)  # in "image" mode c is by_class[j]
        elif table.isthing[c]:
            lut[key] = segments.id(("crowd", category), category, 1) if unassigned == "crowd" else 0
            pending.append((key, "thing without instance", f"{label} in the semantic map has no instance id",
                            f"they become {'a crowd region of ' + label if unassigned == 'crowd' else 'void'} "
                            f"(--unassigned {unassigned})"))
        else:  # stuff or void in the semantic map
            owner = by_class.get(j) if j else None  # by_class is empty for "class" ids
            if owner is not None and rules.prefer == "instances":
                lut[key] = segments.id(("thing", owner, j), int(table.classes[owner]))
            elif c != VOID_CLASS:
                lut[key] = segments.id(("stuff", category), category)
            if j:
                inst = f"instance {int(inst_values[j])}"
                if owner is not None and rules.prefer == "instances":
                    resolution = f"they go to {inst} (--prefer instances)"
                else:
                    why = ("--prefer semantic" if rules.prefer == "semantic" else "--instance-ids class"
                           if rules.instance_ids == "class" else f"{inst} has no pixel of a thing class")
                    resolution = f"they stay {label} ({why})"
                owner_name = f" ({categories.name(int(table.classes[owner]))!r})" if owner is not None else ""
                pending.append((key, f"instance on {'void' if c == VOID_CLASS else 'stuff'}",
                                f"{inst}{owner_name} lies on {label} of the semantic map", resolution))
    conflicts += _boxed(pending, keys, counts, source)
    _refuse_if_strict(conflicts, rules)
    return segments.panoptic(lut, keys), conflicts


def _instance_classes(present, width, table, inst_values, categories, instance_source, counts,
                      rules) -> dict[int, int]:
    """Compact instance index -> its thing class (compact), for ``"image"`` instance ids.

    Raises:
        PanopticFormatError: an instance id covers pixels of two or more thing classes.
    """
    if rules.instance_ids == "class":
        return {}
    classes_of: dict[int, list[int]] = {}
    for key in present.tolist():
        c, j = divmod(key, width)
        if j and table.isthing[c]:
            classes_of.setdefault(j, []).append(c)
    for j, classes in classes_of.items():
        if len(classes) > 1:
            shares = ", ".join(f"{categories.name(int(table.classes[c]))!r} ({int(counts[c * width + j])} pixels)"
                               for c in classes)
            raise PanopticFormatError(f"{instance_source}: instance id {int(inst_values[j])} is reused across "
                                      f"classes: it covers {shares}; an instance id must name one object of the "
                                      f"image (pass --instance-ids class if ids are numbered per class)")
    return {j: classes[0] for j, classes in classes_of.items()}


def panoptic_from_divisor_map(labels: np.ndarray, categories: CategorySet, rules: ConvertRules = ConvertRules(), *,
                              divisor: int = LABEL_DIVISOR, source: str = "label map") -> tuple[PanopticSegmentation,
                                                                                       list[Conflict]]:
    """Decode a label-divisor map, as Cityscapes' ``*_instanceIds.png``, into a panoptic segmentation.

    A value ``v >= divisor`` is instance ``v % divisor`` of category ``v // divisor``; a value
    ``v < divisor`` is the bare category ``v``: a stuff segment, or for a thing class a
    crowd region (Cityscapes' groups; ``rules.unassigned == "void"`` makes it void, named).
    So a category with instances needs an id of at least 1. A category in ``void_values``
    is void with all its instances. A stuff category with an instance number is merged
    into its one stuff segment and named as a conflict.

    Args:
        labels: (H, W) non-negative integers.
        categories: the categories.
        rules: ``void``, ``unknown``, ``unassigned``, ``empty``, ``strict`` apply.
        divisor: the label divisor (Cityscapes: 1000).
        source: names the file in errors and conflicts.

    Returns:
        the segmentation (ids 1..n, area and bbox not yet measured) and the conflicts.

    Raises:
        PanopticFormatError: naming ``source``: an unknown category (``rules.unknown ==
            "error"``) or, under ``rules.strict``, any conflict.
    """
    if divisor < 1:
        raise ValueError(f"the label divisor must be at least 1, got {divisor}")
    void = void_values(rules, categories)
    values, counts, index = present_values(np.asarray(labels))
    segments, lut, conflicts, pending = SegmentTable(), np.zeros(len(values), np.int64), [], []
    unknown = []
    unassigned = rules.unassigned_or("crowd")
    for k, value in enumerate(values.tolist()):
        category, instance = divmod(value, divisor) if value >= divisor else (value, None)
        if category in void:
            continue
        if category not in categories:
            unknown.append(k)
            continue
        name = repr(categories.name(category))
        if not categories.isthing(category):
            lut[k] = segments.id(("stuff", category), category)
            if instance is not None:
                pending.append((k, "stuff with instance id", f"value {value} gives the stuff class {name} "
                                f"instance {instance}", f"they join the one segment of {name} (stuff has no "
                                f"instances)"))
        elif instance is not None:
            lut[k] = segments.id(("thing", category, instance), category)
        elif unassigned == "crowd":
            lut[k] = segments.id(("crowd", category), category, 1)
        else:
            pending.append((k, "thing without instance", f"value {value} is the thing class {name} without an "
                            f"instance number", "they become void (--unassigned void)"))
    if unknown:
        if rules.unknown == "error":
            first = int(np.argmax(np.isin(index, unknown)))
            y, x = divmod(first, index.shape[1])
            raise PanopticFormatError(
                f"{source}: values {values[unknown][:10].tolist()} decode (category = value // {divisor} from "
                f"{divisor} on) to unknown class ids {sorted({_category(v, divisor) for v in values[unknown]})[:10]} "
                f"({int(counts[unknown].sum())} pixels, the first at x={x}, y={y}); the categories have ids "
                f"{categories.ids[:20]}; pass --unknown void to make such pixels void, or --void to name void classes")
        pending += [(k, "unknown class", f"value {int(values[k])} decodes to class id "
                     f"{_category(int(values[k]), divisor)}, which is no category", "they become void (--unknown void)")
                    for k in unknown]
    conflicts += _boxed(pending, index, counts, source)
    _refuse_if_strict(conflicts, rules)
    return segments.panoptic(lut, index), conflicts


def _category(value: int, divisor: int) -> int:
    return value // divisor if value >= divisor else value


def _boxed(pending, keys: np.ndarray, counts: np.ndarray, source: str) -> list[Conflict]:
    """Conflicts from ``(key, kind, what, resolution)``, with the pixel count and box of each key."""
    boxes = pair_boxes(keys, [key for key, *_ in pending])
    return [Conflict(source, kind, int(counts[key]), boxes[key], what, resolution)
            for key, kind, what, resolution in pending]


def _refuse_if_strict(conflicts: list[Conflict], rules: ConvertRules) -> None:
    if rules.strict and conflicts:
        raise PanopticFormatError(f"{conflicts[0]} (--strict refuses every conflict"
                                  f"{f'; {len(conflicts) - 1} more in this image' if len(conflicts) > 1 else ''})")


def _size(shape) -> str:
    return f"{shape[0]}x{shape[1]}"
