"""Checkers for chapter 6: Panoptic-DeepLab's post-processing, one step at a time.

Each checker runs the student's function on small drawn inputs, compares it with the
package's post-processing and, when it differs, names the typical mistake that gives the
same wrong answer (``>`` vs ``>=`` at the threshold, a kernel read as a radius, a plateau
kept as one centre, offsets added with the wrong sign or with ``(dy, dx)`` swapped, a tie
sent to the wrong centre or category, a square window measured as a disc, ...). Every answer
runs with the package functions that would give it away made unavailable
(:mod:`panopticlab.exercises.forbidden`).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from ..data.categories import VOID_LABEL, Category, CategorySet
from ..data.synthetic import SYNTHETIC_CATEGORIES
from ..postprocess.centers import NMS_KERNEL, THRESHOLD, find_instance_centers, square_max_pool
from ..postprocess.deeplab import merge_semantic_and_instances, panoptic_deeplab_postprocess
from ..postprocess.grouping import group_pixels, nearest_center
from .checking import ExerciseError, answered, call, checker, either, passed, prediction_report
from .forbidden import forbidden

__all__ = ["center_case", "check_assign_pixels", "check_find_centers", "check_majority_vote", "check_merging_kernel",
           "grouping_case", "package_merging_kernel", "package_votes", "plateau_case", "tie_case", "two_peaks",
           "vote_case", "vote_case_sparse"]


# ---------------------------------------------------------------------------------------
# 6.1 centres: threshold, max-pool NMS
# ---------------------------------------------------------------------------------------
def _bumps(shape: tuple[int, int], peaks: dict) -> np.ndarray:
    """float32 heatmap: the maximum of Gaussian bumps (sigma 1.2) of the given peak values."""
    ys, xs = np.mgrid[:shape[0], :shape[1]]
    heatmap = np.zeros(shape, np.float32)
    for (y, x), peak in peaks.items():
        bump = peak * np.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * 1.2**2))
        heatmap = np.maximum(heatmap, bump.astype(np.float32))
    return heatmap


def center_case() -> tuple[np.ndarray, float, int]:
    """A (20, 24) float32 heatmap with four peaks, its threshold (0.25) and kernel (7).

    Peaks (values exact in float32): 0.75 at (5, 5); 0.5 at (5, 11), 6 px away, so a 7 x 7
    window keeps it and a 15 x 15 one does not; 0.25 at (15, 18), exactly the threshold; and
    0.625 at (14, 4).
    """
    return _bumps((20, 24), {(5, 5): 0.75, (5, 11): 0.5, (15, 18): 0.25, (14, 4): 0.625}), 0.25, 7


def plateau_case() -> tuple[np.ndarray, float, int]:
    """A (16, 24) float32 heatmap drawn against the other misreadings, threshold 0.3, kernel 5.

    * a flat top: (3, 6) and (3, 7) both hold 0.75, the maximum of their windows: two centres;
    * 0.5 at (12, 1) and 0.875 at (12, 23): 2 px apart only if the window wraps around the
      border (np.roll), so both are centres;
    * 0.625 at (8, 13), 3 px from 0.6875 at (8, 16): outside a 5 x 5 window, inside a
      7 x 7 one (a kernel fixed at the package's 7 drops it);
    * 0.1875 at (13, 8): below this threshold, above the package's default 0.1.
    """
    heatmap = _bumps((16, 24), {(12, 1): 0.5, (12, 23): 0.875, (8, 13): 0.625, (8, 16): 0.6875,
                                (13, 8): 0.1875})
    heatmap[2:5, 5:9] = np.maximum(heatmap[2:5, 5:9], np.float32(0.5))
    heatmap[3, 6:8] = np.float32(0.75)
    return heatmap, 0.3, 5


def _centers_variant(heatmap, threshold, size, above=True, plateau=True, wrap=False):
    """The centres, or those of a typical misreading of the rule (the checker names the one that matches)."""
    if wrap:
        pooled = ndimage.maximum_filter(heatmap, size=size, mode="wrap")
    else:
        pooled = ndimage.maximum_filter(heatmap, size=size, mode="constant", cval=-np.inf)
    passes = heatmap > threshold if above else heatmap >= threshold
    peaks = passes & (heatmap == pooled)
    if not plateau:  # a strict local maximum: no other pixel of the window as high
        footprint = np.ones((size, size), bool)
        footprint[size // 2, size // 2] = False
        others = ndimage.maximum_filter(heatmap, footprint=footprint, mode="constant", cval=-np.inf)
        peaks &= heatmap > others
    return np.argwhere(peaks)


def _center_mistakes(heatmap, threshold, kernel) -> dict[str, np.ndarray]:
    expected = _centers_variant(heatmap, threshold, kernel)
    mistakes = {
        "the threshold is strict: a pixel equal to it is no centre (use >, not >=)":
            _centers_variant(heatmap, threshold, kernel, above=False),
        f"`kernel` is the side of the window (a {kernel} x {kernel} window reaches {kernel // 2} px to each "
        f"side), not its radius": _centers_variant(heatmap, threshold, 2 * kernel + 1),
        "the points are (y, x) = (row, column), not (x, y)": expected[:, ::-1],
        "a centre must also equal the max-pooled heatmap (the NMS step), not only pass the threshold":
            np.argwhere(heatmap > threshold),
        "every pixel of a flat top equals its window's maximum, so a plateau gives several centres "
        "(`heatmap == pooled`, not a strict local maximum)":
            _centers_variant(heatmap, threshold, kernel, plateau=False),
        "the window is cut at the border (pad with -inf, as max_pool2d does); it does not wrap around to the "
        "other side (np.roll does)": _centers_variant(heatmap, threshold, kernel, wrap=True),
        f"use the `kernel` argument ({kernel} here), not the package's default {NMS_KERNEL}":
            _centers_variant(heatmap, threshold, NMS_KERNEL),
        f"use the `threshold` argument ({threshold} here), not the package's default {THRESHOLD}":
            _centers_variant(heatmap, THRESHOLD, kernel),
    }
    return {m: wrong for m, wrong in mistakes.items() if not np.array_equal(wrong, expected)}


def _as_points(got, exercise: str, what: str) -> np.ndarray:
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    try:
        points = np.asarray(got, dtype=np.int64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise ExerciseError(f"Exercise {exercise}: return {what} as a (K, 2) array of (y, x), "
                            f"got {type(got).__name__}") from None
    return points


#: 6.1 asks for the package's centre finding: its answers run without these.
FORBIDDEN_CENTERS = {
    "postprocess.find_instance_centers": find_instance_centers,
    "postprocess.panoptic_deeplab_postprocess": panoptic_deeplab_postprocess,
    "ch06._centers_variant": _centers_variant,
}
# what torch and numpy say when a pooled map of another size meets the heatmap
_SIZE_MISMATCH = ("must match the size", "could not be broadcast", "shapes mismatch")


def _run_find_centers(fn, heatmap, threshold, kernel):
    try:
        with forbidden("6.1", functions=FORBIDDEN_CENTERS):
            return call("6.1", fn, heatmap.copy(), threshold, kernel)
    except (RuntimeError, ValueError) as error:
        if any(text in str(error) for text in _SIZE_MISMATCH):
            raise ExerciseError(f"Exercise 6.1: your function fails comparing the heatmap with its pooled map "
                                f"({error}). The pooled map must keep the heatmap's size: max_pool2d's stride "
                                f"defaults to the kernel size, so pass stride=1 and padding=kernel // 2.") from None
        raise


@checker
def check_find_centers(fn: Callable) -> bool:
    """Exercise 6.1: ``fn(heatmap, threshold, kernel)`` -> (K, 2) ``(y, x)`` of the centres, raster order.

    A centre is a pixel whose value is strictly above ``threshold`` and equal to the maximum
    of the ``kernel`` x ``kernel`` window centred on it (the window cut at the border).
    Checked on :func:`center_case` and :func:`plateau_case` against
    :func:`~panopticlab.postprocess.centers.find_instance_centers`; the answer runs with
    :data:`FORBIDDEN_CENTERS` made unavailable.

    Rejects:
        - a threshold read as ``>=``: a peak equal to the threshold becomes a centre
        - ``kernel`` read as the window's radius instead of its side
        - points as ``(x, y)`` instead of ``(y, x)``
        - the threshold alone, without the max-pool (NMS) step
        - centres not in raster order
        - a plateau of equal values kept as one centre (a strict local maximum)
        - a window that wraps around the border (np.roll) instead of being cut there
        - a kernel or threshold fixed at the package's defaults (7, 0.1) instead of the arguments
        - max_pool2d with its default stride (the kernel size): a pooled map of another size
        - anything but a (K, 2) array of points
        - an answer that calls ``find_instance_centers`` (or ``panoptic_deeplab_postprocess``)
    """
    for name, (heatmap, threshold, kernel) in (("the centre case", center_case()),
                                               ("the plateau case", plateau_case())):
        expected = find_instance_centers(heatmap, threshold, kernel, top_k=None)[0].numpy()
        got = _as_points(_run_find_centers(fn, heatmap, threshold, kernel), "6.1", "the centres")
        if np.array_equal(got, expected):
            continue
        where = f"Exercise 6.1: on {name} (threshold {threshold}, kernel {kernel})"
        if len(got) == len(expected) and {tuple(p) for p in got.tolist()} == {tuple(p) for p in expected.tolist()}:
            raise ExerciseError(f"{where}: the right centres in the wrong order: return them in raster order "
                                f"(by row, then column), as np.argwhere gives them.")
        named = [m for m, wrong in _center_mistakes(heatmap, threshold, kernel).items() if np.array_equal(got, wrong)]
        if named:
            raise ExerciseError(f"{where}: expected {len(expected)} centres, got {len(got)}: {either(named)}.")
        raise ExerciseError(f"{where}: expected the centres {expected.tolist()}, got {got.tolist()[:10]}.")
    return passed("6.1", "Above the threshold and equal to the window's maximum, plateaus included.")


# ---------------------------------------------------------------------------------------
# 6.2 grouping: each pixel joins the centre nearest to its vote
# ---------------------------------------------------------------------------------------
def grouping_case(seed: int = 606) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres (4, 2), offsets float32 (2, 16, 20) ``(dy, dx)`` and a (16, 20) bool thing mask.

    Every thing pixel's offset points at one of the centres plus up to 3 px of noise, so
    the votes scatter around the centres and the distance used matters.
    """
    rng = np.random.default_rng(seed)
    centers = np.array([[4, 4], [4, 15], [11, 6], [12, 14]], np.int64)
    height, width = 16, 20
    ys, xs = np.mgrid[:height, :width]
    owner = np.argmin((ys[..., None] - centers[:, 0]) ** 2 + (xs[..., None] - centers[:, 1]) ** 2, axis=-1)
    noise = rng.uniform(-3, 3, size=(2, height, width))
    offsets = np.stack([centers[owner, 0] - ys, centers[owner, 1] - xs]) + noise
    thing_mask = rng.random((height, width)) < 0.8
    return centers, offsets.astype(np.float32), thing_mask


def tie_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres (3, 2), offsets float32 (2, 6, 8) and a (6, 8) thing mask, for ties and rounding.

    Centres (2, 0), (2, 2) and (5, 6). The pixels of row 0 vote for (2, 1), exactly
    between the first two centres: the tie goes to centre 0. The pixels of row 1 vote for
    (2, 1.25), nearer centre 1, though rounding the vote to a pixel makes it a tie (and
    gives centre 0). The other thing pixels vote for (5, 5.75). Offsets are multiples of
    1/4, exact in float32, so every distance is exact.
    """
    centers = np.array([[2, 0], [2, 2], [5, 6]], np.int64)
    ys, xs = np.mgrid[:6, :8].astype(np.float64)
    vote_y = np.where(ys <= 1, 2.0, 5.0)
    vote_x = np.select([ys == 0, ys == 1], [1.0, 1.25], 5.75)
    thing_mask = np.ones((6, 8), bool)
    thing_mask[4:, :2] = False
    return centers, np.stack([vote_y - ys, vote_x - xs]).astype(np.float32), thing_mask


def _assign_variant(centers, offsets, mask, sign=1.0, swap=False, l1=False, use_offsets=True, ties_high=False,
                    rounded=False, centers_xy=False):
    """The instance map, or that of a typical misreading of the rule."""
    height, width = mask.shape
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    dy, dx = (offsets[1], offsets[0]) if swap else (offsets[0], offsets[1])
    vy, vx = (ys + sign * dy, xs + sign * dx) if use_offsets else (ys, xs)
    if rounded:
        vy, vx = np.round(vy), np.round(vx)
    centers = np.asarray(centers, np.float64)[:, ::-1] if centers_xy else np.asarray(centers, np.float64)
    diff_y = vy[..., None] - centers[:, 0]
    diff_x = vx[..., None] - centers[:, 1]
    distance = np.abs(diff_y) + np.abs(diff_x) if l1 else diff_y**2 + diff_x**2
    if ties_high:
        nearest = len(centers) - 1 - np.argmin(distance[..., ::-1], axis=-1)
    else:
        nearest = np.argmin(distance, axis=-1)
    return np.where(mask, nearest + 1, 0)


ASSIGN_MISTAKES = {
    "the vote is the pixel plus its offset, (y + dy, x + dx): the offsets point to the centre "
    "(you subtracted them)": dict(sign=-1.0),
    "channel 0 of the offsets is dy (rows) and channel 1 is dx (columns); you swapped them": dict(swap=True),
    "the centres are (y, x) = (row, column); you read them as (x, y)": dict(centers_xy=True),
    "nearest means the Euclidean (L2) distance, not the L1 (|dy| + |dx|) distance": dict(l1=True),
    "each pixel is compared through its vote (y + dy, x + dx), not through its own position":
        dict(use_offsets=False),
    "a vote exactly as near to two centres joins the first (the lower k, as argmin gives); a running "
    "minimum updated on `<=` gives it to the later one": dict(ties_high=True),
    "a vote is a point with real coordinates: do not round it to a pixel before measuring the distances":
        dict(rounded=True),
}

#: 6.2 asks for the package's grouping: its answers run without these.
FORBIDDEN_GROUPING = {
    "postprocess.group_pixels": group_pixels,
    "postprocess.nearest_center": nearest_center,
    "postprocess.panoptic_deeplab_postprocess": panoptic_deeplab_postprocess,
    "ch06._assign_variant": _assign_variant,
}


def _instance_map(fn, centers, offsets, mask) -> np.ndarray:
    with forbidden("6.2", functions=FORBIDDEN_GROUPING):
        got = call("6.2", fn, centers.copy(), offsets.copy(), mask.copy())
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    return np.asarray(got)


@checker
def check_assign_pixels(fn: Callable) -> bool:
    """Exercise 6.2: ``fn(centers, offsets, thing_mask)`` -> (H, W) int instance map.

    ``centers`` (K, 2) ``(y, x)``; ``offsets`` (2, H, W) ``(dy, dx)`` pointing from each pixel
    to its centre; ``thing_mask`` (H, W) bool. A thing pixel ``(y, x)`` votes for
    ``(y + dy, x + dx)`` and gets ``k + 1`` for the centre ``k`` nearest to its vote in
    Euclidean distance (ties to the lower ``k``); other pixels get 0. Checked on
    :func:`grouping_case` and :func:`tie_case` against
    :func:`~panopticlab.postprocess.grouping.group_pixels`; the answer runs with
    :data:`FORBIDDEN_GROUPING` made unavailable.

    Rejects:
        - pixels outside the thing mask given an instance
        - ids from 0 (the nearest centre ``k`` gives ``k + 1``; 0 is "no instance")
        - the offsets subtracted instead of added
        - ``(dy, dx)`` swapped, or the centres read as ``(x, y)``
        - the L1 distance instead of the Euclidean one
        - pixels compared by their own position instead of their vote
        - a tie sent to the later centre (a running minimum updated on ``<=``)
        - votes rounded to whole pixels before measuring
        - a map of another shape than the thing mask
        - an answer that calls ``group_pixels`` or ``nearest_center``
    """
    cases = (("the scattered votes (ch06.grouping_case())", grouping_case()),
             ("the tie case (ch06.tie_case())", tie_case()))
    for name, (centers, offsets, mask) in cases:
        expected = group_pixels(torch.from_numpy(centers), torch.from_numpy(offsets), torch.from_numpy(mask)).numpy()
        got = _instance_map(fn, centers, offsets, mask)
        if got.shape != expected.shape:
            raise ExerciseError(f"Exercise 6.2: return an (H, W) = {expected.shape} instance map, got shape "
                                f"{got.shape}.")
        if not np.array_equal(got, expected):
            raise ExerciseError(_assign_message(name, got, expected, centers, offsets, mask))
    return passed("6.2", "Each thing pixel joins the centre nearest to its vote, ties to the first.")


def _assign_message(name, got, expected, centers, offsets, mask) -> str:
    wrong = int((got != expected).sum())
    where = f"Exercise 6.2: on {name}, {wrong} of {got.size} pixels differ from the package's grouping"
    if np.any(got[~mask] != 0):
        return f"{where}: pixels outside the thing mask must stay 0: only thing pixels are grouped."
    if np.array_equal(got[mask] + 1, expected[mask]):
        return f"{where}: off by one: the nearest centre k gives the pixel id k + 1 (0 means 'no instance')."
    named = [m for m, variant in ASSIGN_MISTAKES.items()
             if np.array_equal(got, _assign_variant(centers, offsets, mask, **variant))]
    return f"{where}: {either(named)}." if named else f"{where}."


# ---------------------------------------------------------------------------------------
# 6.3 the majority vote
# ---------------------------------------------------------------------------------------
def vote_case() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A (6, 8) semantic map of category ids, an instance map (0 = none) and the thing ids.

    Instance 1 is mostly category 2 with a few 1s; instance 2 holds as many 3s as 4s (a tie);
    instance 3 has more stuff (11) pixels than thing pixels, but only thing pixels vote, and
    its first pixel in raster order is a 1 while most of its thing pixels are 4.
    """
    semantic = np.array([
        [2, 2, 2, 1, 3, 3, 4, 4],
        [2, 2, 1, 2, 4, 4, 3, 3],
        [11, 11, 11, 11, 11, 11, 11, 11],
        [1, 4, 4, 11, 11, 11, 11, 11],
        [4, 4, 11, 11, 11, 11, 11, 11],
        [11, 11, 11, 11, 11, 11, 12, 12],
    ], np.int64)
    instances = np.zeros_like(semantic)
    instances[0:2, 0:4] = 1
    instances[0:2, 4:8] = 2
    instances[3:5, 0:8] = 3
    return semantic, instances, [1, 2, 3, 4]


def vote_case_sparse() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A (4, 10) case with thing ids [2, 3, 7, 9] (1 and 4 are stuff here), void and sparse instance ids.

    Instance 1 holds three 4s, two 3s and one 2: 3 wins (4 is no thing here). Instance 2
    reads 9, 3, 7, 2, 7, 3, 2 among its thing pixels: a three-way tie of 3 (met first), 7
    (the largest) and 2 (the smallest, which wins), after a 9 that opens the row; its
    void (255) pixels outnumber each of them. Instance 5 (there is no 3 or 4) holds two 7s,
    a 4 (stuff here) and stuff 11: 7.
    """
    semantic = np.array([
        [4, 4, 4, 3, 3, 2, 11, 11, 11, 11],
        [9, 3, 7, 2, 7, 3, 2, 255, 255, 255],
        [7, 7, 4, 11, 11, 1, 1, 11, 11, 11],
        [11, 11, 11, 11, 11, 11, 11, 11, 11, 11],
    ], np.int64)
    instances = np.zeros_like(semantic)
    instances[0, 0:6] = 1
    instances[1, :] = 2
    instances[2, 0:5] = 5
    return semantic, instances, [2, 3, 7, 9]


def _categories(semantic: np.ndarray, thing_ids) -> CategorySet:
    """Metadata for a drawn case: ``thing_ids`` are things, every other id of the map stuff."""
    ids = sorted(set(np.unique(semantic).tolist()) - {VOID_LABEL} | set(thing_ids))
    return CategorySet([Category(i, f"category {i}", i in set(thing_ids)) for i in ids])


def package_votes(semantic: np.ndarray, instances: np.ndarray, thing_ids=None) -> dict[int, int]:
    """The package's majority vote (:func:`~panopticlab.postprocess.deeplab.merge_semantic_and_instances`)
    of each instance, over its thing pixels (the package groups only those).

    ``thing_ids`` default to the synthetic dataset's; 255 in ``semantic`` is void.
    """
    categories = SYNTHETIC_CATEGORIES if thing_ids is None else _categories(semantic, thing_ids)
    thing = np.isin(semantic, categories.thing_ids)
    panoptic, segment_of = merge_semantic_and_instances(semantic, np.where(thing, instances, 0), categories,
                                                        stuff_area=0, void_label=VOID_LABEL)
    category = {segment.id: segment.category_id for segment in panoptic.segments}
    return {k + 1: category[int(s)] for k, s in enumerate(segment_of) if s > 0}


def _vote_variant(semantic, instances, thing_ids, stuff_votes=False, ties_high=False, first_pixel=False,
                  first_seen=False, fixed_things=None, contiguous=False):
    """The votes, or those of a typical misreading of the rule."""
    thing_ids = list(fixed_things) if fixed_things is not None else list(thing_ids)
    ids = range(1, len(np.unique(instances[instances > 0])) + 1) if contiguous else np.unique(instances[instances > 0])
    votes = {}
    for k in ids:
        labels = semantic[instances == k]
        if not stuff_votes:
            labels = labels[np.isin(labels, thing_ids)]
        if not len(labels):
            continue
        if first_pixel:
            votes[int(k)] = int(labels[0])
        elif first_seen:
            votes[int(k)] = int(Counter(labels.tolist()).most_common(1)[0][0])
        else:
            values, counts = np.unique(labels, return_counts=True)  # values ascending
            best = np.flatnonzero(counts == counts.max())
            votes[int(k)] = int(values[best[-1] if ties_high else best[0]])
    return votes


VOTE_MISTAKES = {
    "a tie goes to the smallest category id": dict(ties_high=True),
    "a tie goes to the smallest category id, not to the one met first (Counter.most_common keeps the order "
    "of first appearance)": dict(first_seen=True),
    "only thing pixels vote: leave the stuff and void (255) pixels of an instance out": dict(stuff_votes=True),
    "every pixel of the instance votes, not only its first one": dict(first_pixel=True),
    "the thing categories are the `thing_ids` argument, not the synthetic dataset's [1, 2, 3, 4]":
        dict(fixed_things=SYNTHETIC_CATEGORIES.thing_ids),
    "instance ids need not run 1, 2, ..., K: vote for the ids the map holds (np.unique)": dict(contiguous=True),
}

#: 6.3 asks for the package's majority vote: its answers run without these.
FORBIDDEN_VOTE = {
    "postprocess.merge_semantic_and_instances": merge_semantic_and_instances,
    "postprocess.panoptic_deeplab_postprocess": panoptic_deeplab_postprocess,
    "ch06.package_votes": package_votes,
    "ch06._vote_variant": _vote_variant,
}


def _votes(fn, semantic, instances, thing_ids, name: str):
    try:
        with forbidden("6.3", functions=FORBIDDEN_VOTE):
            return call("6.3", fn, semantic.copy(), instances.copy(), list(thing_ids))
    except ValueError as error:
        if "empty" not in str(error):
            raise
        raise ExerciseError(f"Exercise 6.3: on {name}, your function fails on an instance with nothing to vote "
                            f"({error}). Vote only for the instance ids the map holds (np.unique, not 1..K), "
                            f"with the categories of the `thing_ids` argument (here {list(thing_ids)}).") from None


@checker
def check_majority_vote(fn: Callable) -> bool:
    """Exercise 6.3: ``fn(semantic, instances, thing_ids)`` -> ``{instance id: category id}``.

    Each instance ``k > 0`` of ``instances`` takes the most frequent *thing* category among its
    pixels (stuff and void pixels do not vote); a tie goes to the smallest category id.
    Checked on :func:`vote_case` and :func:`vote_case_sparse` against :func:`package_votes`;
    the answer runs with :data:`FORBIDDEN_VOTE` made unavailable.

    Rejects:
        - 0 ("no instance") listed as an instance
        - a tie sent to the larger category id, or to the category met first (Counter.most_common)
        - stuff or void pixels voting
        - the first pixel's category instead of the majority
        - the synthetic dataset's thing ids instead of the ``thing_ids`` argument
        - instance ids assumed to run 1..K (or a crash on an instance with nothing to vote)
        - anything but a dict
        - an answer that calls ``merge_semantic_and_instances`` (or ``ch06.package_votes``)
    """
    for name, (semantic, instances, thing_ids) in (("the vote case", vote_case()),
                                                   ("the sparse case", vote_case_sparse())):
        expected = package_votes(semantic, instances, thing_ids)
        got = _votes(fn, semantic, instances, thing_ids, name)
        if not isinstance(got, dict):
            raise ExerciseError(f"Exercise 6.3: return a dict {{instance id: category id}}, got {type(got).__name__}.")
        got = {int(k): int(v) for k, v in got.items()}
        if got == expected:
            continue
        where = f"Exercise 6.3: on {name} (thing ids {thing_ids}): expected {expected}, got {got}"
        if 0 in got:
            raise ExerciseError(f"{where}: 0 is 'no instance', not an instance: leave it out.")
        named = [m for m, variant in VOTE_MISTAKES.items()
                 if got == _vote_variant(semantic, instances, thing_ids, **variant)]
        raise ExerciseError(f"{where}: {either(named)}." if named else f"{where}.")
    return passed("6.3", "The most frequent thing category of each instance, ties to the smallest id.")


# ---------------------------------------------------------------------------------------
# 6.4 predict, then measure: the smallest kernel that merges two peaks
# ---------------------------------------------------------------------------------------
#: ``(h1, h2, dy, dx, threshold)``: the stronger peak ``h1``, the weaker ``h2`` at ``(dy, dx)``
#: from it, on an otherwise zero heatmap. Values exact in float32. In order: a 3-4-5
#: triangle (the Chebyshev 4 and the Euclidean 5 disagree), negative offsets, a tie, a
#: weaker peak below the threshold, one equal to it, neighbours, a diagonal.
KERNEL_CASES = (
    (0.875, 0.625, 3, 4, 0.1),
    (0.75, 0.5, -6, 2, 0.1),
    (0.625, 0.625, 2, -3, 0.1),
    (0.875, 0.0625, 4, 1, 0.1),
    (0.75, 0.25, -2, -5, 0.25),
    (0.5, 0.375, 1, 0, 0.1),
    (0.875, 0.5, -5, 5, 0.1),
)
#: The case the prediction of 6.4 is about: two peaks 5 px apart, 3 px down and 4 px right.
PREDICTION_CASE = KERNEL_CASES[0]
_KERNEL_MAP = 41  # the heatmap's side: the stronger peak in the middle, room for every window tried


def two_peaks(h1: float, h2: float, dy: int, dx: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A (41, 41) float32 heatmap, zero but for ``h1`` at its centre (20, 20) and ``h2`` at
    ``(20 + dy, 20 + dx)``, and the weaker peak's position."""
    heatmap = np.zeros((_KERNEL_MAP, _KERNEL_MAP), np.float32)
    middle = _KERNEL_MAP // 2
    heatmap[middle, middle] = h1
    heatmap[middle + dy, middle + dx] = h2
    return heatmap, (middle + dy, middle + dx)


def package_merging_kernel(h1: float, h2: float, dy: int, dx: int, threshold: float) -> int | None:
    """The smallest odd kernel with which the package's centre finding
    (:func:`~panopticlab.postprocess.centers.find_instance_centers`) no longer finds the weaker
    peak of :func:`two_peaks`; None when no kernel up to the heatmap's side does."""
    heatmap, weaker = two_peaks(h1, h2, dy, dx)
    for kernel in range(1, 2 * _KERNEL_MAP, 2):
        centers = find_instance_centers(heatmap, threshold, kernel, top_k=None)[0].tolist()
        if list(weaker) not in centers:
            return kernel
    return None


def _kernel_variant(h1, h2, dy, dx, threshold, *, distance="chebyshev", side=lambda d: 2 * d + 1, ties=True,
                    strict=True, use_threshold=True):
    """The answer of a typical misreading of the rule."""
    below = h2 <= threshold if strict else h2 < threshold
    if use_threshold and below:
        return 1
    if ties and h1 == h2:
        return None
    d = {"chebyshev": max(abs(dy), abs(dx)), "signed": max(dy, dx), "l1": abs(dy) + abs(dx),
         "l2_ceil": math.ceil(math.hypot(dy, dx)), "l2_round": round(math.hypot(dy, dx)),
         "l2_floor": math.floor(math.hypot(dy, dx))}[distance]
    return side(d)


KERNEL_MISTAKES = {  # each mistake with the readings that make it (the distance rounded up, to nearest or down)
    "the window is a square: the weaker peak is inside the k x k window around the stronger when max(|dy|, |dx|) "
    "<= k // 2 (the Chebyshev distance), not when the Euclidean distance sqrt(dy² + dx²) is":
        (dict(distance="l2_ceil"), dict(distance="l2_round"), dict(distance="l2_floor")),
    "the window is a square: the distance that counts is max(|dy|, |dx|), not |dy| + |dx| (L1)":
        (dict(distance="l1"),),
    "a k x k window reaches k // 2 px to each side: a peak d px away needs k // 2 >= d, so k = 2d + 1, not 2d - 1":
        (dict(side=lambda d: 2 * d - 1),),
    "the kernel is odd (a window centred on its pixel): k = 2d + 1, not 2d": (dict(side=lambda d: 2 * d),),
    "k is the window's side, not its radius: a peak d px away needs k = 2d + 1, not d": (dict(side=lambda d: d),),
    "an offset may be negative: the distance uses |dy| and |dx|": (dict(distance="signed"),),
    "two equal peaks both equal the maximum of every window (a tie): no kernel suppresses either, so return None":
        (dict(ties=False),),
    "a peak not above the threshold is no centre, whatever the kernel: the smallest kernel is then 1 "
    "(the threshold was forgotten)": (dict(use_threshold=False),),
    "the threshold is strict: a peak equal to it is no centre (>, not >=), so the smallest kernel is 1":
        (dict(strict=False),),
}

#: 6.4 asks for what the package's centre finding does: its answers run without these.
FORBIDDEN_KERNEL = {
    "postprocess.find_instance_centers": find_instance_centers,
    "postprocess.centers.square_max_pool": square_max_pool,
    "postprocess.panoptic_deeplab_postprocess": panoptic_deeplab_postprocess,
    "ch06.package_merging_kernel": package_merging_kernel,
    "ch06._kernel_variant": _kernel_variant,
}


def _as_kernel(got, exercise: str):
    if got is None:
        return None
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, (bool, np.bool_)) or not isinstance(got, (int, np.integer)):
        raise ExerciseError(f"Exercise {exercise}: return the kernel as an int (or None when no kernel merges the "
                            f"peaks), got {got!r}.")
    return int(got)


@checker
def check_merging_kernel(fn: Callable, prediction) -> bool:
    """Exercise 6.4: ``fn(h1, h2, dy, dx, threshold)`` -> the smallest odd kernel that suppresses the weaker peak.

    Two peaks, ``h1 >= h2``, lie on an otherwise zero heatmap, the weaker ``(dy, dx)`` from the
    stronger. A centre is a pixel strictly above ``threshold`` equal to the maximum of the
    ``k x k`` window centred on it (exercise 6.1). Return the smallest odd ``k`` with which
    the weaker peak is no centre (1 when it is none even without pooling), or None when no
    kernel suppresses it (a tie). Checked on :data:`KERNEL_CASES` against
    :func:`package_merging_kernel`; the answer runs with :data:`FORBIDDEN_KERNEL` made
    unavailable. ``prediction`` is the kernel predicted for :data:`PREDICTION_CASE` (peaks
    0.875 and 0.625, the weaker 3 px down and 4 px right); a wrong prediction is reported,
    not failed.

    Rejects:
        - a prediction that is not an int (or None)
        - the Euclidean (or L1) distance instead of max(|dy|, |dx|) (the window is a square)
        - k = 2d - 1 or an even k = 2d, or the radius d, instead of the side 2d + 1
        - negative offsets taken with their sign
        - a tie (equal peaks) given a kernel instead of None
        - the threshold forgotten, or read as ``>=``: a weaker peak not above it needs no pooling (1)
        - anything but an int or None
        - an answer that calls ``find_instance_centers`` or ``square_max_pool`` (or ``ch06.package_merging_kernel``)
    """
    answered("6.4", prediction)
    if prediction is not None and (isinstance(prediction, (bool, np.bool_))
                                   or not isinstance(prediction, (int, np.integer))):
        raise ExerciseError(f"Exercise 6.4: write your prediction as a kernel size (an int), or None if you think "
                            f"no kernel merges the peaks; got {prediction!r}.")
    for h1, h2, dy, dx, threshold in KERNEL_CASES:
        expected = package_merging_kernel(h1, h2, dy, dx, threshold)
        with forbidden("6.4", functions=FORBIDDEN_KERNEL):
            got = _as_kernel(call("6.4", fn, h1, h2, dy, dx, threshold), "6.4")
        if got == expected:
            continue
        named = [m for m, readings in KERNEL_MISTAKES.items()
                 if any(_kernel_variant(h1, h2, dy, dx, threshold, **reading) == got for reading in readings)]
        where = (f"Exercise 6.4: peaks {h1} and {h2}, the weaker at (dy, dx) = ({dy}, {dx}), threshold {threshold}: "
                 f"expected {expected}, got {got}")
        raise ExerciseError(f"{where}: {either(named)}." if named else f"{where}.")
    h1, h2, dy, dx, threshold = PREDICTION_CASE
    with forbidden("6.4", functions=FORBIDDEN_KERNEL):
        measured = _as_kernel(call("6.4", fn, h1, h2, dy, dx, threshold), "6.4")
    report = prediction_report(None if prediction is None else int(prediction), measured)
    return passed("6.4", f"k = 2 max(|dy|, |dx|) + 1, 1 below the threshold, None for a tie. For peaks 3 px down "
                         f"and 4 px right (5 px apart): {measured}. {report}")
