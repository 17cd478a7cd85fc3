"""Checkers for chapter 1: the task, the panoptic format, things vs stuff."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data import SYNTHETIC_CATEGORIES, PanopticSegmentation, id_to_rgb, rgb_to_id
from ..data.categories import VOID_LABEL
from ..data.synthetic import render_scene
from .checking import ExerciseError, call, passed


def _scenes(num: int = 6, size: int = 64):
    return [render_scene(index, size=size, seed=101, split="val") for index in range(num)]


def check_rgb_to_id(fn) -> bool:
    """Exercise 1.1: ``fn(rgb)`` decodes a COCO panoptic PNG, (H, W, 3) uint8 -> (H, W) ids."""
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 256**3, size=(5, 7))
    rgb = id_to_rgb(ids)
    try:
        got = np.asarray(call("1.1", fn, rgb.copy()))
    except OverflowError as err:  # NumPy 2 refuses uint8 * 256 outright
        raise ExerciseError(f"Exercise 1.1: {err}. Cast the image to a wider integer type (e.g. int64) "
                            f"before multiplying.") from None
    if got.shape != ids.shape:
        raise ExerciseError(f"Exercise 1.1: expected an (H, W) = {ids.shape} array, got shape {got.shape}.")
    if np.array_equal(got.astype(np.int64), ids):
        return passed("1.1", "id = R + 256 G + 256^2 B.")
    if any(np.array_equal(got.astype(np.int64), ids % wrap) for wrap in (256, 65536)):
        raise ExerciseError("Exercise 1.1: the arithmetic overflowed - uint8 values wrap at 256. "
                            "Cast the image to a wider integer type (e.g. int32) before multiplying.")
    if np.array_equal(got.astype(np.int64), rgb_to_id(rgb[..., ::-1])):
        raise ExerciseError("Exercise 1.1: the channels are reversed: R is the least significant byte, B the most.")
    raise ExerciseError(f"Exercise 1.1: wrong ids; for the pixel {rgb[0, 0].tolist()} expected {ids[0, 0]}, "
                        f"got {got[0, 0]}.")


def check_semantic_from_panoptic(fn) -> bool:
    """Exercise 1.2: ``fn(pan, categories)`` -> (H, W) category id per pixel, 255 on void."""
    for sample in _scenes():
        expected = sample.panoptic.category_map(void=VOID_LABEL)
        got = np.asarray(call("1.2", fn, sample.panoptic, SYNTHETIC_CATEGORIES))
        if got.shape != expected.shape:
            raise ExerciseError(f"Exercise 1.2: expected shape {expected.shape}, got {got.shape}.")
        if not np.array_equal(got, expected):
            wrong = np.argwhere(got != expected)[0]
            y, x = wrong.tolist()
            hint = " Void pixels (id 0) have no segment: give them 255." if expected[y, x] == VOID_LABEL else ""
            raise ExerciseError(f"Exercise 1.2: image {sample.image_id}, pixel (y={y}, x={x}) has segment id "
                                f"{sample.panoptic.id_map[y, x]}: expected category {expected[y, x]}, got {got[y, x]}.{hint}")
    return passed("1.2", "A panoptic segmentation contains its semantic segmentation.")


def count_instances(pan: PanopticSegmentation, categories=SYNTHETIC_CATEGORIES) -> dict[str, int]:
    """Reference count of non-crowd instances per thing category name."""
    counts = {categories.name(i): 0 for i in categories.thing_ids}
    for s in pan.segments:
        if categories.isthing(s.category_id) and not s.iscrowd:
            counts[categories.name(s.category_id)] += 1
    return counts


def check_count_instances(fn) -> bool:
    """Exercise 1.3: ``fn(pan, categories)`` -> {thing name: number of non-crowd instances}."""
    for sample in _scenes():
        expected = count_instances(sample.panoptic)
        got = dict(call("1.3", fn, sample.panoptic, SYNTHETIC_CATEGORIES))
        got_nonzero = {k: v for k, v in got.items() if v}
        if got_nonzero != {k: v for k, v in expected.items() if v}:
            crowd = sum(s.iscrowd for s in sample.panoptic.segments)
            hint = (" A crowd segment (iscrowd=1) is a group of things, not one instance: leave it out."
                    if crowd else " Count only thing categories (categories.isthing).")
            raise ExerciseError(f"Exercise 1.3: image {sample.image_id}: expected {expected}, got {got}.{hint}")
    return passed("1.3")


def check_semantic_blobs(fn) -> float:
    """Exercise 1.4: ``fn(semantic, category_id)`` -> number of connected regions of that category.

    Returns the fraction of thing instances that connected components on a perfect
    semantic map would lose because they touch another instance of their class.
    """
    lost, total = 0, 0
    for sample in _scenes(num=12):
        semantic = sample.panoptic.category_map(void=VOID_LABEL)
        for category_id in SYNTHETIC_CATEGORIES.thing_ids:
            expected = ndimage.label(semantic == category_id)[1]
            got = call("1.4", fn, semantic.copy(), category_id)
            if int(got) != expected:
                raise ExerciseError(f"Exercise 1.4: image {sample.image_id}, category {category_id}: expected "
                                    f"{expected} connected regions (4-connectivity, scipy.ndimage.label), got {got}.")
            instances = sum(1 for s in sample.panoptic.segments if s.category_id == category_id)
            total += instances
            lost += max(instances - expected, 0)
    fraction = lost / max(total, 1)
    passed("1.4", f"A perfect semantic map + connected components loses {lost} of {total} "
                  f"instances ({100 * fraction:.0f}%): touching objects of one class merge.")
    return fraction
