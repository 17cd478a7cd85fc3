"""Checkers for chapter 6: Panoptic-DeepLab's post-processing, one step at a time.

Each checker runs the student's function on small hand-built inputs, compares it with the
package's post-processing and, when it differs, names the typical mistake that gives the
same wrong answer (``>`` vs ``>=`` at the threshold, a kernel read as a radius, offsets
added with the wrong sign or with ``(dy, dx)`` swapped, the L1 distance, ...).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from ..data.synthetic import SYNTHETIC_CATEGORIES
from ..postprocess.centers import find_instance_centers
from ..postprocess.deeplab import merge_semantic_and_instances
from ..postprocess.grouping import group_pixels
from .checking import ExerciseError, call, passed

__all__ = ["center_case", "check_assign_pixels", "check_find_centers", "check_majority_vote", "grouping_case",
           "package_votes", "vote_case"]


# ---------------------------------------------------------------------------------------
# 6.1 centres: threshold, max-pool NMS
# ---------------------------------------------------------------------------------------
def center_case() -> tuple[np.ndarray, float, int]:
    """A (20, 24) float32 heatmap with four peaks, its threshold (0.25) and kernel (7).

    Peaks (values exact in float32): 0.75 at (5, 5); 0.5 at (5, 11), 6 px away, so a 7 x 7
    window keeps it and a 15 x 15 one does not; 0.25 at (15, 18), exactly the threshold; and
    0.625 at (14, 4).
    """
    ys, xs = np.mgrid[:20, :24]
    heatmap = np.zeros((20, 24), np.float32)
    for (y, x), peak in {(5, 5): 0.75, (5, 11): 0.5, (15, 18): 0.25, (14, 4): 0.625}.items():
        bump = peak * np.exp(-((ys - y) ** 2 + (xs - x) ** 2) / (2 * 1.2**2))
        heatmap = np.maximum(heatmap, bump.astype(np.float32))
    return heatmap, 0.25, 7


def _centers_variant(heatmap, threshold, size, above=True):
    pooled = ndimage.maximum_filter(heatmap, size=size, mode="constant", cval=-np.inf)
    passes = heatmap > threshold if above else heatmap >= threshold
    return np.argwhere(passes & (heatmap == pooled))


def _as_points(got, exercise: str, what: str) -> np.ndarray:
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    try:
        points = np.asarray(got, dtype=np.int64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise ExerciseError(f"Exercise {exercise}: return {what} as a (K, 2) array of (y, x), "
                            f"got {type(got).__name__}") from None
    return points


def check_find_centers(fn: Callable) -> bool:
    """Exercise 6.1: ``fn(heatmap, threshold, kernel)`` -> (K, 2) ``(y, x)`` of the centres, raster order.

    A centre is a pixel whose value is strictly above ``threshold`` and equal to the maximum
    of the ``kernel`` x ``kernel`` window centred on it (the window cut at the border).
    """
    heatmap, threshold, kernel = center_case()
    expected = find_instance_centers(heatmap, threshold, kernel, top_k=None)[0].numpy()
    got = _as_points(call("6.1", fn, heatmap.copy(), threshold, kernel), "6.1", "the centres")
    if np.array_equal(got, expected):
        return passed("6.1", f"{len(expected)} centres, at {[tuple(p) for p in expected.tolist()]}.")
    if len(got) == len(expected) and {tuple(p) for p in got.tolist()} == {tuple(p) for p in expected.tolist()}:
        raise ExerciseError("Exercise 6.1: the right centres in the wrong order: return them in raster order "
                            "(by row, then column), as np.argwhere gives them.")
    mistakes = {
        "the threshold is strict: a pixel equal to it is no centre (use >, not >=)":
            _centers_variant(heatmap, threshold, kernel, above=False),
        f"`kernel` is the side of the window (a {kernel} x {kernel} window reaches {kernel // 2} px to each "
        f"side), not its radius": _centers_variant(heatmap, threshold, 2 * kernel + 1),
        "the points are (y, x) = (row, column), not (x, y)": expected[:, ::-1],
        "a centre must also equal the max-pooled heatmap (the NMS step), not only pass the threshold":
            np.argwhere(heatmap > threshold),
    }
    for mistake, wrong in mistakes.items():
        if np.array_equal(got, wrong):
            raise ExerciseError(f"Exercise 6.1: expected {len(expected)} centres, got {len(got)}: {mistake}.")
    raise ExerciseError(f"Exercise 6.1: expected the centres {expected.tolist()}, got {got.tolist()[:10]}.")


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


def _assign_variant(centers, offsets, mask, sign=1.0, swap=False, l1=False, use_offsets=True):
    height, width = mask.shape
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    dy, dx = (offsets[1], offsets[0]) if swap else (offsets[0], offsets[1])
    vy, vx = (ys + sign * dy, xs + sign * dx) if use_offsets else (ys, xs)
    diff_y = vy[..., None] - centers[:, 0]
    diff_x = vx[..., None] - centers[:, 1]
    distance = np.abs(diff_y) + np.abs(diff_x) if l1 else diff_y**2 + diff_x**2
    return np.where(mask, np.argmin(distance, axis=-1) + 1, 0)


def check_assign_pixels(fn: Callable) -> bool:
    """Exercise 6.2: ``fn(centers, offsets, thing_mask)`` -> (H, W) int instance map.

    ``centers`` (K, 2) ``(y, x)``; ``offsets`` (2, H, W) ``(dy, dx)`` pointing from each pixel
    to its centre; ``thing_mask`` (H, W) bool. A thing pixel ``(y, x)`` votes for
    ``(y + dy, x + dx)`` and gets ``k + 1`` for the centre ``k`` nearest to its vote in
    Euclidean distance (ties to the lower ``k``); other pixels get 0.
    """
    centers, offsets, mask = grouping_case()
    expected = group_pixels(torch.from_numpy(centers), torch.from_numpy(offsets), torch.from_numpy(mask)).numpy()
    got = call("6.2", fn, centers.copy(), offsets.copy(), mask.copy())
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    got = np.asarray(got)
    if got.shape != expected.shape:
        raise ExerciseError(f"Exercise 6.2: return an (H, W) = {expected.shape} instance map, got shape {got.shape}.")
    if np.array_equal(got, expected):
        return passed("6.2", f"{len(centers)} instances; {int(mask.sum())} thing pixels grouped.")
    if np.any(got[~mask] != 0):
        raise ExerciseError("Exercise 6.2: pixels outside the thing mask must stay 0: only thing pixels are grouped.")
    if np.array_equal(got[mask] + 1, expected[mask]):
        raise ExerciseError("Exercise 6.2: off by one: the nearest centre k gives the pixel id k + 1 (0 means "
                            "'no instance').")
    mistakes = {
        "the vote is the pixel plus its offset, (y + dy, x + dx): the offsets point to the centre "
        "(you subtracted them)": dict(sign=-1.0),
        "channel 0 of the offsets is dy (rows) and channel 1 is dx (columns); you swapped them": dict(swap=True),
        "nearest means the Euclidean (L2) distance, not the L1 (|dy| + |dx|) distance": dict(l1=True),
        "each pixel is compared through its vote (y + dy, x + dx), not through its own position":
            dict(use_offsets=False),
    }
    for mistake, variant in mistakes.items():
        if np.array_equal(got, _assign_variant(centers, offsets, mask, **variant)):
            raise ExerciseError(f"Exercise 6.2: {int((got != expected).sum())} pixels join the wrong centre: "
                                f"{mistake}.")
    raise ExerciseError(f"Exercise 6.2: {int((got != expected).sum())} of {got.size} pixels differ from the "
                        f"package's grouping.")


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


def _vote_variant(semantic, instances, thing_ids, stuff_votes=False, ties_high=False, first_pixel=False):
    votes = {}
    for k in np.unique(instances):
        if k == 0:
            continue
        labels = semantic[instances == k]
        if not stuff_votes:
            labels = labels[np.isin(labels, thing_ids)]
        if first_pixel:
            votes[int(k)] = int(labels[0])
            continue
        values, counts = np.unique(labels, return_counts=True)  # values ascending
        best = np.flatnonzero(counts == counts.max())
        votes[int(k)] = int(values[best[-1] if ties_high else best[0]])
    return votes


def package_votes(semantic: np.ndarray, instances: np.ndarray) -> dict[int, int]:
    """The package's majority vote (:func:`~panopticlab.postprocess.deeplab.merge_semantic_and_instances`)
    of each instance, over its thing pixels (the package groups only those)."""
    thing = np.isin(semantic, SYNTHETIC_CATEGORIES.thing_ids)
    panoptic, segment_of = merge_semantic_and_instances(semantic, np.where(thing, instances, 0),
                                                        SYNTHETIC_CATEGORIES, stuff_area=0)
    category = {segment.id: segment.category_id for segment in panoptic.segments}
    return {k + 1: category[int(s)] for k, s in enumerate(segment_of) if s > 0}


def check_majority_vote(fn: Callable) -> bool:
    """Exercise 6.3: ``fn(semantic, instances, thing_ids)`` -> ``{instance id: category id}``.

    Each instance ``k > 0`` of ``instances`` takes the most frequent *thing* category among its
    pixels (stuff pixels do not vote); a tie goes to the smallest category id.
    """
    semantic, instances, thing_ids = vote_case()
    expected = package_votes(semantic, instances)
    got = call("6.3", fn, semantic.copy(), instances.copy(), list(thing_ids))
    if not isinstance(got, dict):
        raise ExerciseError(f"Exercise 6.3: return a dict {{instance id: category id}}, got {type(got).__name__}.")
    got = {int(k): int(v) for k, v in got.items()}
    if got == expected:
        return passed("6.3", f"{expected}.")
    if 0 in got:
        raise ExerciseError("Exercise 6.3: 0 is 'no instance', not an instance: leave it out.")
    mistakes = {
        "a tie goes to the smallest category id (instance 2 has as many 3s as 4s)": dict(ties_high=True),
        "only thing pixels vote: leave the stuff pixels of an instance out (instance 3)": dict(stuff_votes=True),
        "every pixel of the instance votes, not only its first one": dict(first_pixel=True),
    }
    for mistake, variant in mistakes.items():
        if got == _vote_variant(semantic, instances, thing_ids, **variant):
            raise ExerciseError(f"Exercise 6.3: expected {expected}, got {got}: {mistake}.")
    raise ExerciseError(f"Exercise 6.3: expected {expected}, got {got}.")
