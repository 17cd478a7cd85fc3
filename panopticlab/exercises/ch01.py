"""Checkers for chapter 1: the task, the panoptic format, things vs stuff."""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..data import SYNTHETIC_CATEGORIES, PanopticSegmentation, id_to_rgb, rgb_to_id
from ..data.categories import VOID_LABEL
from ..data.synthetic import render_scene
from .checking import ExerciseError, call, checker, passed
from .forbidden import forbidden

DISC, BOX, SKY = 1, 2, 11


def _scenes(num: int = 6, size: int = 64):
    return [render_scene(index, size=size, seed=101, split="val") for index in range(num)]


# --- 1.1 -------------------------------------------------------------------------------
@checker
def check_rgb_to_id(fn) -> bool:
    """Exercise 1.1: ``fn(rgb)`` decodes a COCO panoptic PNG, (H, W, 3) uint8 -> (H, W) ids.

    The answer runs with ``data.rgb_to_id`` made unavailable: the exercise is to write it.
    """
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 256**3, size=(5, 7))
    rgb = id_to_rgb(ids)
    reversed_ids = rgb_to_id(rgb[..., ::-1])
    try:
        with forbidden("1.1", functions={"data.rgb_to_id": rgb_to_id}):
            got = np.asarray(call("1.1", fn, rgb.copy()))
    except OverflowError as err:  # NumPy 2 refuses uint8 * 256 outright
        raise ExerciseError(f"Exercise 1.1: {err}. Cast the image to a wider integer type (e.g. int64) "
                            f"before multiplying.") from None
    if got.shape != ids.shape:
        raise ExerciseError(f"Exercise 1.1: expected an (H, W) = {ids.shape} array, got shape {got.shape}.")
    got = got.astype(np.int64)
    if np.array_equal(got, ids):
        return passed("1.1", "id = R + 256 G + 256^2 B.")
    if any(np.array_equal(got, ids % wrap) for wrap in (256, 65536)):
        raise ExerciseError("Exercise 1.1: the arithmetic overflowed - uint8 values wrap at 256. "
                            "Cast the image to a wider integer type (e.g. int32) before multiplying.")
    if np.array_equal(got, reversed_ids):
        raise ExerciseError("Exercise 1.1: the channels are reversed: R is the least significant byte, B the most.")
    wide = rgb.astype(np.int64)
    if np.array_equal(got, wide[..., 0] + 256 * wide[..., 1] + 256 * wide[..., 2]):
        raise ExerciseError("Exercise 1.1: B is multiplied by 256, not by 256^2 = 65536.")
    if np.array_equal(got, wide.sum(axis=-1)):
        raise ExerciseError("Exercise 1.1: the channels are added without their weights: id = R + 256 G + 65536 B.")
    raise ExerciseError(f"Exercise 1.1: wrong ids; for the pixel {rgb[0, 0].tolist()} expected {ids[0, 0]}, "
                        f"got {got[0, 0]}.")


# --- 1.2 -------------------------------------------------------------------------------
@checker
def check_semantic_from_panoptic(fn) -> bool:
    """Exercise 1.2: ``fn(pan, categories)`` -> (H, W) category id per pixel, 255 on void.

    The answer runs with ``PanopticSegmentation.category_map`` made unavailable.
    """
    for sample in _scenes():
        pan = sample.panoptic
        expected = pan.category_map(void=VOID_LABEL)
        with forbidden("1.2", methods={"pan.category_map": (PanopticSegmentation, "category_map")}):
            got = np.asarray(call("1.2", fn, pan, SYNTHETIC_CATEGORIES))
        if got.shape != expected.shape:
            raise ExerciseError(f"Exercise 1.2: expected shape {expected.shape}, got {got.shape}.")
        if not np.array_equal(got, expected):
            y, x = np.argwhere(got != expected)[0].tolist()
            segment_id = int(pan.id_map[y, x])
            want, have = int(expected[y, x]), int(got[y, x])
            if want == VOID_LABEL:
                hint = " Void pixels (id 0) have no segment: give them 255."
            elif pan.segment(segment_id).iscrowd:
                hint = " That pixel is in a crowd segment: a crowd still has a category, and so do its pixels."
            elif have == SYNTHETIC_CATEGORIES.train_id(want):
                hint = " That is the category's train id; the map holds category ids (segment.category_id)."
            elif have == segment_id:
                hint = " That is the segment id; the map holds its segment's category id."
            else:
                hint = ""
            raise ExerciseError(f"Exercise 1.2: image {sample.image_id}, pixel (y={y}, x={x}) has segment id "
                                f"{segment_id}: expected category {want}, got {have}.{hint}")
    return passed("1.2", "A panoptic segmentation contains its semantic segmentation.")


# --- 1.3 -------------------------------------------------------------------------------
def count_instances(pan: PanopticSegmentation, categories=SYNTHETIC_CATEGORIES) -> dict[str, int]:
    """Reference count of non-crowd instances per thing category name."""
    counts = {categories.name(i): 0 for i in categories.thing_ids}
    for s in pan.segments:
        if categories.isthing(s.category_id) and not s.iscrowd:
            counts[categories.name(s.category_id)] += 1
    return counts


@checker
def check_count_instances(fn) -> bool:
    """Exercise 1.3: ``fn(pan, categories)`` -> {thing name: number of non-crowd instances}."""
    for sample in _scenes():
        pan = sample.panoptic
        expected = {k: v for k, v in count_instances(pan).items() if v}
        got = dict(call("1.3", fn, pan, SYNTHETIC_CATEGORIES))
        got_nonzero = {k: v for k, v in got.items() if v}
        if got_nonzero == expected:
            continue
        stuff_names = {c.name for c in SYNTHETIC_CATEGORIES if not c.isthing}
        with_crowd = count_instances(pan)
        for s in pan.segments:
            if s.iscrowd:
                with_crowd[SYNTHETIC_CATEGORIES.name(s.category_id)] += 1
        if any(not isinstance(k, str) for k in got_nonzero):
            hint = " The keys are category names (categories.name(id)), not ids."
        elif set(got_nonzero) & stuff_names:
            hint = " Stuff is not countable: count only thing categories (categories.isthing)."
        elif got_nonzero == {k: v for k, v in with_crowd.items() if v}:
            hint = " A crowd segment (iscrowd=1) is a group of things, not one instance: leave it out."
        else:
            hint = ""
        raise ExerciseError(f"Exercise 1.3: image {sample.image_id}: expected {expected}, got {got}.{hint}")
    return passed("1.3")


# --- 1.4 -------------------------------------------------------------------------------
def region_members(pan: PanopticSegmentation, category_id: int) -> list[set[int]]:
    """Per 4-connected region of the category's semantic mask, the non-crowd instance ids in it.

    The reference takes a different road than ``ndimage.label``: connected components of
    the graph whose nodes are the category's pixels and whose edges join 4-neighbours.
    Regions holding no instance (a crowd alone) are left out. An instance cut in pieces by
    an occluder can lie in two regions, and is listed in both.
    """
    semantic = pan.category_map(void=VOID_LABEL)
    inside = semantic == category_id
    n = int(inside.sum())
    index = -np.ones(inside.shape, np.int64)
    index[inside] = np.arange(n)
    rows, cols = [], []
    for a, b in ((index[:, :-1], index[:, 1:]), (index[:-1, :], index[1:, :])):
        both = (a >= 0) & (b >= 0)
        rows.append(a[both])
        cols.append(b[both])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    _, component = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)),
                                        directed=False)
    crowd = {s.id for s in pan.segments if s.iscrowd}
    members: dict[int, set[int]] = {}
    for c, segment_id in zip(component.tolist(), pan.id_map[inside].tolist()):
        if segment_id not in crowd:
            members.setdefault(c, set()).add(segment_id)
    return list(members.values())


def fused_groups(pan: PanopticSegmentation, categories=SYNTHETIC_CATEGORIES) -> dict[int, set[frozenset[int]]]:
    """Reference answer of 1.4: per thing category, the instance-id sets of the regions that
    hold two or more non-crowd instances (crowd pixels are part of the mask)."""
    return {c: {frozenset(m) for m in region_members(pan, c) if len(m) >= 2} for c in categories.thing_ids}


def fusion_case() -> PanopticSegmentation:
    """A drawn 12 x 24 scene for 1.4 in which each misreading finds a wrong group.

    * discs 1 and 2 touch side by side: one group;
    * discs 3 and 4 touch only at a corner: two regions under 4-connectivity;
    * boxes 5 and 6 are bridged by a box crowd 7: one group of 5 and 6 (crowd pixels are
      box pixels of the semantic map, but the crowd is no instance);
    * disc 8 touches box 9: different categories never fuse.
    """
    id_map = np.full((12, 24), 10, np.int32)   # sky
    id_map[1:4, 1:4], id_map[1:4, 4:7] = 1, 2
    id_map[6:8, 1:3], id_map[8:10, 3:5] = 3, 4
    id_map[1:4, 9:12], id_map[1:4, 12:14], id_map[1:4, 14:17] = 5, 7, 6
    id_map[6:9, 9:12], id_map[6:9, 12:15] = 8, 9
    categories_of = {1: DISC, 2: DISC, 3: DISC, 4: DISC, 5: BOX, 6: BOX, 7: BOX, 8: DISC, 9: BOX, 10: SKY}
    return PanopticSegmentation.from_id_map(id_map, categories_of, iscrowd={7: 1})


def _as_groups(got, exercise: str = "1.4") -> set[frozenset[int]]:
    try:
        return {frozenset(int(i) for i in group) for group in got}
    except TypeError:
        raise ExerciseError(f"Exercise {exercise}: return a list of groups, each a set of segment ids, "
                            f"got {type(got).__name__}.") from None


def _fusion_hint(pan: PanopticSegmentation, category_id: int, want: set, have: set) -> str:
    crowd = {s.id for s in pan.segments if s.iscrowd}
    category_of = {s.id: s.category_id for s in pan.segments}
    in_have = set().union(*have) if have else set()
    if in_have & crowd:
        return " A crowd segment is not an instance (exercise 1.3): leave its id out of the groups."
    if any(len(g) < 2 for g in have):
        return " A region holding a single instance loses nothing: list only groups of two or more."
    if any(category_of.get(i) != category_id for i in in_have):
        return " Only instances of the asked category fuse; the mask is `semantic == category_id`."
    if len(have) > len(want) or sum(map(len, have)) > sum(map(len, want)):
        return (" Two instances that touch only at a corner are two regions: use 4-connectivity "
                "(ndimage.label's default structure).")
    if len(have) < len(want) or sum(map(len, have)) < sum(map(len, want)):
        return (" Crowd pixels belong to the category's semantic mask: a crowd between two instances "
                "joins them into one region. Find regions on the semantic map, then read the instance ids "
                "under each region from pan.id_map.")
    return ""


@checker
def check_fused_instances(fn) -> float:
    """Exercise 1.4: ``fn(pan, category_id)`` -> groups of instance ids that one region fuses.

    A perfect semantic map split into 4-connected regions of one thing category gives one
    "instance" per region; instances that share a region are fused. The answer lists, for
    the category, the set of non-crowd instance ids of every region that holds two or more
    (crowd pixels are part of the category's mask, but a crowd is no instance).

    Returns the fraction of the instances of exercise 1.3 (non-crowd) that the regions
    lose: per category, instances minus the regions that hold one (the count
    ``data.analysis.semantic_region_counts`` reports as ``lost``).
    (Like every checker, in a notebook kernel it returns False for an answer that fails.)
    """
    case = fusion_case()
    expected_case = fused_groups(case)
    for category_id in (DISC, BOX):
        got = _as_groups(call("1.4", fn, case, category_id))
        want = expected_case[category_id]
        if got != want:
            raise ExerciseError(f"Exercise 1.4: on the drawn fusion case (ch01.fusion_case()), category "
                                f"{category_id}: expected groups {sorted(map(sorted, want))}, got "
                                f"{sorted(map(sorted, got))}.{_fusion_hint(case, category_id, want, got)}")
    lost, total = 0, 0
    for sample in _scenes(num=12):
        pan = sample.panoptic
        expected = fused_groups(pan)
        for category_id in SYNTHETIC_CATEGORIES.thing_ids:
            got = _as_groups(call("1.4", fn, pan, category_id))
            if got != expected[category_id]:
                want = expected[category_id]
                raise ExerciseError(f"Exercise 1.4: image {sample.image_id}, category {category_id}: expected "
                                    f"groups {sorted(map(sorted, want))}, got {sorted(map(sorted, got))}."
                                    f"{_fusion_hint(pan, category_id, want, got)}")
        instances = count_instances(pan)
        for category_id in SYNTHETIC_CATEGORIES.thing_ids:
            # each region holding an instance gives one; the rest of the instances are lost
            regions = len(region_members(pan, category_id))
            lost += max(instances[SYNTHETIC_CATEGORIES.name(category_id)] - regions, 0)
        total += sum(instances.values())
    fraction = lost / max(total, 1)
    passed("1.4", f"A perfect semantic map + connected components loses {lost} of the {total} instances "
                  f"of exercise 1.3 ({100 * fraction:.0f}%): touching objects of one class fuse.")
    return fraction
