"""Checkers for chapter 8: mask classification (MaskFormer, Mask2Former), one step at a time.

Each checker runs the student's numpy function on small hand-made inputs, compares it with
the package (:mod:`panopticlab.models.set_matching`, :mod:`panopticlab.postprocess.mask_former`)
and names the typical mistake that gives the same wrong answer. The package takes logits, the
student probabilities: each case keeps its logits and hands out their softmax / sigmoid as the
package computes them (float32), so a value equal to a threshold is equal on both sides.
Every answer runs with the package functions that would give it away made unavailable.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

from ..data.categories import Category, CategorySet
from ..models.set_matching import (SetLossConfig, dice_cost, hungarian_matching, matching_cost, sigmoid_ce_cost,
                                   sigmoid_focal_cost)
from ..postprocess.mask_former import MASK_THRESHOLD, MaskInferenceConfig, mask_former_panoptic
from .checking import ExerciseError, call, checker, either, passed
from .forbidden import forbidden

__all__ = ["COST_WEIGHTS", "assignment_case", "check_assignment", "check_matching_cost", "check_panoptic_inference",
           "inference_case", "inference_case_low", "matching_case", "package_cost", "package_inference"]


def _probabilities(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """What the package computes from the logits (float32), as float64 numpy: the student's inputs."""
    return class_logits.float().softmax(-1).double().numpy(), mask_logits.float().sigmoid().double().numpy()


# ---------------------------------------------------------------------------------------
# 8.1 the matching cost
# ---------------------------------------------------------------------------------------
_M2F = SetLossConfig.mask2former()
#: The (w_class, w_mask, w_dice) the checker tries: Mask2Former's published 2, 5, 5, then three
#: different weights, so that a swap shows.
COST_WEIGHTS = ((_M2F.class_weight, _M2F.mask_weight, _M2F.dice_weight), (1.0, 3.0, 2.0))


def _matching_logits() -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    """Class logits (5, 4), mask logits (5, 16) within +-4, labels (3,), masks (3, 16). Queries 1, 3
    and 4 resemble segments 0, 2 and 1 (their class, most of their mask); 0 and 2 are noise."""
    rng = np.random.default_rng(808)
    labels = np.array([2, 0, 1])
    masks = (rng.random((3, 16)) < 0.45).astype(np.float64)
    masks[:, 0] = 1.0  # no empty segment
    class_logits, mask_logits = rng.normal(0.0, 1.0, (5, 4)), rng.normal(0.0, 2.0, (5, 16))
    for query, segment in ((1, 0), (3, 2), (4, 1)):
        class_logits[query, labels[segment]] += 2.5
        mask_logits[query] += np.where(masks[segment] > 0, 2.0, -2.0)
    return (torch.tensor(class_logits, dtype=torch.float32),
            torch.tensor(np.clip(mask_logits, -4, 4), dtype=torch.float32), labels, masks)


def matching_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``class_probs`` (5, 4), ``mask_probs`` (5, 16), ``gt_labels`` (3,) int, ``gt_masks`` (3, 16) in {0, 1}:
    Q = 5 queries, K = 3 categories (column 3 "no object"), G = 3 segments (classes 2, 0, 1) of a
    4 x 4 image flattened to P = 16 pixels."""
    class_logits, mask_logits, labels, masks = _matching_logits()
    return (*_probabilities(class_logits, mask_logits), labels, masks)


def package_cost(weights) -> np.ndarray:
    """The package's (Q, G) cost of :func:`matching_case` with ``weights`` = (w_class, w_mask, w_dice):
    :func:`~panopticlab.models.set_matching.matching_cost` with Mask2Former's binary cross-entropy."""
    class_logits, mask_logits, labels, masks = _matching_logits()
    config = SetLossConfig(class_weight=weights[0], mask_weight=weights[1], dice_weight=weights[2], mask_loss="bce")
    return matching_cost(class_logits, mask_logits, torch.tensor(labels), torch.tensor(masks), config).double().numpy()


def _cost_variant(class_probs, mask_probs, labels, masks, *weights, sign=-1.0, log=False, one_minus=True, smooth=1.0,
                  two=2.0, bce="mean", order=(0, 1, 2)):
    """The (Q, G) cost, or that of a typical misreading of the formula (``order`` permutes the weights)."""
    w_class, w_mask, w_dice = (weights[i] for i in order)
    p, t = mask_probs, masks
    class_term = np.log(class_probs[:, labels]) if log else class_probs[:, labels]
    positive, negative = -np.log(p) @ t.T, -np.log(1 - p) @ (1 - t).T  # (Q, G) sums over the P pixels
    ce = {"mean": (positive + negative) / p.shape[1], "sum": positive + negative, "positive": positive / p.shape[1]}
    overlap = (two * (p @ t.T) + smooth) / (p.sum(1)[:, None] + t.sum(1)[None, :] + smooth)
    return sign * w_class * class_term + w_mask * ce[bce] + w_dice * (1 - overlap if one_minus else overlap)


COST_MISTAKES = {
    "the class term is subtracted (- w_class * p): a likely class must make the cost lower, not higher":
        dict(sign=1.0),
    "the class term is the probability p[label] itself, not its log (as the published matchers take it)":
        dict(log=True),
    "the Dice term is a cost, 1 - Dice: the Dice coefficient itself grows with the overlap": dict(one_minus=False),
    "the Dice coefficient is smoothed: (2 sum(p t) + 1) / (sum p + sum t + 1)": dict(smooth=0.0),
    "the Dice numerator is 2 sum(p t), twice the overlap": dict(two=1.0),
    "the cross-entropy is the mean over the P pixels, not their sum": dict(bce="sum"),
    "the binary cross-entropy has two terms, -(t log p + (1 - t) log(1 - p)): the pixels outside the "
    "segment count too": dict(bce="positive"),
    "w_mask weighs the cross-entropy and w_dice the Dice term: you swapped them": dict(order=(0, 2, 1)),
    "w_class weighs the class term and w_mask the cross-entropy: you swapped them": dict(order=(1, 0, 2)),
}

#: 8.1 asks for the package's matching cost: its answers run without these.
FORBIDDEN_COST = {
    "models.set_matching.matching_cost": matching_cost,
    "models.set_matching.dice_cost": dice_cost,
    "models.set_matching.sigmoid_ce_cost": sigmoid_ce_cost,
    "models.set_matching.sigmoid_focal_cost": sigmoid_focal_cost,
    "ch08.package_cost": package_cost,
    "ch08._cost_variant": _cost_variant,
}


@checker
def check_matching_cost(fn: Callable) -> bool:
    """Exercise 8.1: ``fn(class_probs, mask_probs, gt_labels, gt_masks, w_class, w_mask, w_dice)`` -> (Q, G) cost.

    numpy in and out: ``class_probs`` (Q, K + 1) softmax probabilities (column K "no object"),
    ``mask_probs`` (Q, P) sigmoid probabilities at P pixels, ``gt_labels`` (G,) in 0..K-1,
    ``gt_masks`` (G, P) in {0, 1}. ``cost[q, g] = -w_class * class_probs[q, gt_labels[g]] +
    w_mask * BCE + w_dice * (1 - Dice)``: BCE of ``mask_probs[q]`` against ``gt_masks[g]``
    averaged over the P pixels, Dice ``(2 sum(p t) + 1) / (sum p + sum t + 1)`` (Mask2Former's
    cost). Checked on :func:`matching_case` with each of :data:`COST_WEIGHTS` against
    :func:`package_cost`, to 1e-4; the answer runs with :data:`FORBIDDEN_COST` made unavailable.

    Rejects:
        - a (G, Q) cost (rows are the queries), or another shape; anything but an array of floats
        - the class term added, or its log taken
        - the Dice coefficient instead of 1 - Dice, without the +1 smoothing, or without the 2
        - the cross-entropy summed over the pixels, or without its (1 - t) log(1 - p) term
        - the weights swapped (mask and Dice, class and mask)
        - an answer that calls ``matching_cost``, ``dice_cost`` or ``sigmoid_ce_cost``
    """
    class_probs, mask_probs, labels, masks = matching_case()
    for weights in COST_WEIGHTS:
        expected = package_cost(weights)
        with forbidden("8.1", functions=FORBIDDEN_COST):
            got = call("8.1", fn, class_probs.copy(), mask_probs.copy(), labels.copy(), masks.copy(), *weights)
        try:
            got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
        except (TypeError, ValueError):
            raise ExerciseError(f"Exercise 8.1: return the cost as a (Q, G) array of floats, got "
                                f"{type(got).__name__}.") from None
        where = f"Exercise 8.1: on ch08.matching_case() with (w_class, w_mask, w_dice) = {weights}"
        close = lambda a, b: np.allclose(a, b, rtol=1e-4, atol=1e-4)  # noqa: E731 - float32 reference
        if got.shape == expected.T.shape != expected.shape:
            hint = " with rows and columns swapped" if close(got.T, expected) else ""
            raise ExerciseError(f"{where}: your cost is (G, Q) = {got.shape}{hint}; rows are the queries and "
                                f"columns the segments: (Q, G) = {expected.shape}.")
        if got.shape != expected.shape:
            raise ExerciseError(f"{where}: return the (Q, G) = {expected.shape} cost, got shape {got.shape}.")
        if close(got, expected):
            continue
        named = [m for m, variant in COST_MISTAKES.items()
                 if close(got, _cost_variant(class_probs, mask_probs, labels, masks, *weights, **variant))]
        worst = np.unravel_index(np.argmax(np.abs(got - expected)), got.shape)
        where += f": cost[{worst[0]}, {worst[1]}] is {got[worst]:.4f}, expected {expected[worst]:.4f}"
        raise ExerciseError(f"{where}: {either(named)}." if named else f"{where}.")
    return passed("8.1", "-w_class p[label] + w_mask mean BCE + w_dice (1 - Dice), one row per query.")


# ---------------------------------------------------------------------------------------
# 8.2 the inference rule: queries to a panoptic segmentation
# ---------------------------------------------------------------------------------------
#: The mask probability each character of a drawing stands for ("o" is exactly the mask threshold).
_LEGEND = {".": 0.05, "-": 0.2, "~": 0.4, "o": MASK_THRESHOLD, "x": 0.9, "X": 0.97}
_IS_THING = (True, True, False)  # K = 3: classes 0 and 1 things, 2 stuff; class 3 is "no object"

#: ``(class probabilities of each query, their masks side by side)``: query 0 stuff, the left (its
#: "x" under query 1's "o"); 1 a thing of class 0 that loses its two "o" to query 0 and wins the
#: gap of row 0, outside its mask; 2 stuff, the right, merged with 0; 3 a sure "no object" over
#: 2's top half; 4 a thing of class 1; 5 a thing of class 0 that wins 4 of its 5 pixels (0.8), one
#: of them "o"; 6 a duplicate of 4, a surer mask, a lower score: it wins 2 of its 6 pixels.
_CASE = (((0.02, 0.02, 0.92, 0.04), (0.96, 0.01, 0.01, 0.02), (0.03, 0.03, 0.88, 0.06), (0.05, 0.05, 0.04, 0.86),
          (0.02, 0.94, 0.02, 0.02), (0.90, 0.04, 0.03, 0.03), (0.05, 0.85, 0.05, 0.05)), """
    xxxxx..... .......... .......xxx .......XXX .......... .......... ..........
    x--xx..... .xxo...... .......xxx .......XXX .......... .....xo... ..........
    x---x..... .xxx...... .......xxx .......XXX .......... .....xx... ..........
    x--xx..... .xxo...... .......xxx .......... .....xx... .....x.... .....XX...
    xxxxx..... .......... .......xxx .......... .....xx... .......... .....XX...
    xxxxx..... .......... .......xxx .......... .....~~... .......... .....XX...
""")
#: Thresholds 0.5 and 0.5: query 0 stuff; 1 a thing whose score is exactly the threshold.
_CASE_LOW = (((0.125, 0.125, 0.625, 0.125), (0.5, 0.25, 0.125, 0.125)), """
    xxxxxx ......
    x--xxx .XX...
    x--xxx .XX...
    xxxxxx ......
""")
CASE_THRESHOLDS = (0.8, 0.8)  # Mask2Former's published score and overlap thresholds
CASE_LOW_THRESHOLDS = (0.5, 0.5)


def _inference_logits(case) -> tuple[torch.Tensor, torch.Tensor]:
    class_probs, drawing = np.array(case[0]), [row.split() for row in case[1].strip().splitlines()]
    mask_probs = np.array([[[_LEGEND[c] for c in row[q]] for row in drawing] for q in range(len(class_probs))])
    return (torch.tensor(np.log(class_probs), dtype=torch.float32),
            torch.tensor(np.log(mask_probs / (1 - mask_probs)), dtype=torch.float32))


def inference_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``class_probs`` (7, 4), ``mask_probs`` (7, 6, 10), ``is_thing`` (3,) bool, ``score_threshold`` 0.8,
    ``overlap_threshold`` 0.8 (Mask2Former's): seven queries, K = 3 categories (0 and 1 things,
    2 stuff), drawn in ``_CASE`` against the misreadings."""
    class_logits, mask_logits = _inference_logits(_CASE)
    return (*_probabilities(class_logits, mask_logits), np.array(_IS_THING), *CASE_THRESHOLDS)


def inference_case_low() -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``class_probs`` (2, 4), ``mask_probs`` (2, 4, 6), ``is_thing``, thresholds 0.5 and 0.5: a stuff
    query and a thing whose score is exactly the score threshold (not above it: dropped)."""
    class_logits, mask_logits = _inference_logits(_CASE_LOW)
    return (*_probabilities(class_logits, mask_logits), np.array(_IS_THING), *CASE_LOW_THRESHOLDS)


def package_inference(case, thresholds) -> list[tuple[int, tuple[int, ...]]]:
    """The package's segments (:func:`~panopticlab.postprocess.mask_former.mask_former_panoptic`,
    Mask2Former's rule) of ``_CASE`` or ``_CASE_LOW``, as sorted ``(class, flat pixel indices)``."""
    class_logits, mask_logits = _inference_logits(case)
    categories = CategorySet([Category(k + 1, f"class {k}", thing) for k, thing in enumerate(_IS_THING)])
    config = MaskInferenceConfig(score_threshold=thresholds[0], overlap_threshold=thresholds[1])
    panoptic = mask_former_panoptic(class_logits, mask_logits, categories, config).panoptic
    return _segments(panoptic.id_map, {s.id: s.category_id - 1 for s in panoptic.segments})


def _segments(id_map: np.ndarray, classes: dict) -> list[tuple[int, tuple[int, ...]]]:
    """A segmentation up to the ids: sorted ``(class, flat pixel indices)`` of every id on the map."""
    return sorted((int(classes[i]), tuple(np.flatnonzero(id_map == i).tolist())) for i in np.unique(id_map) if i)


def _inference_variant(class_probs, mask_probs, is_thing, score_threshold, overlap_threshold, *, no_object=False,
                       at_threshold=False, mask_only=False, all_queries=False, overlap=True, overlap_equal=False,
                       overlap_within=False, every_won=False, merge_stuff=True, merge_things=False,
                       mask_above=False):
    """The segments (as :func:`_segments`), or those of a typical misreading of the rule."""
    num_classes = class_probs.shape[1] - 1
    scores, classes = class_probs.max(1), class_probs.argmax(1)
    passes = scores >= score_threshold if at_threshold else scores > score_threshold
    kept = np.flatnonzero(passes & ((classes != num_classes) | no_object))
    thing = np.append(np.asarray(is_thing, bool), True)  # a "no object" kept by mistake: a segment of its own
    candidates = np.arange(len(scores)) if all_queries else kept
    weighted = mask_probs[candidates] if mask_only else scores[candidates, None, None] * mask_probs[candidates]
    owner = candidates[weighted.argmax(0)] if len(candidates) else np.full(mask_probs.shape[1:], -1)
    id_map, segment_classes, by_class = np.zeros(mask_probs.shape[1:], np.int64), {}, {}
    for query in kept:
        won = owner == query
        mask = mask_probs[query] > MASK_THRESHOLD if mask_above else mask_probs[query] >= MASK_THRESHOLD
        pixels = won if every_won else won & mask
        if not mask.any() or not pixels.any():
            continue
        ratio = (won & mask).sum() / mask.sum() if overlap_within else won.sum() / mask.sum()
        if overlap and (ratio <= overlap_threshold if overlap_equal else ratio < overlap_threshold):
            continue
        category = int(classes[query])
        merged = merge_things if thing[category] else merge_stuff
        if not (merged and category in by_class):
            by_class[category] = segment = len(segment_classes) + 1
            segment_classes[segment] = category
        id_map[pixels] = by_class[category]
    return _segments(id_map, segment_classes)


INFERENCE_MISTAKES = {
    "a query whose most probable class is 'no object' (the last column) is dropped, whatever its score":
        dict(no_object=True),
    "the score threshold is strict: a query whose score equals it is dropped (use >, not >=)": dict(at_threshold=True),
    "a pixel goes to the kept query of highest score x mask probability, not of highest mask probability":
        dict(mask_only=True),
    "only the kept queries compete for the pixels: drop the others before the arg-max, not after":
        dict(all_queries=True),
    "a segment that won less than overlap_threshold of its mask (its area at >= 0.5) is dropped": dict(overlap=False),
    "a segment is dropped when its won area is *less* than overlap_threshold of its mask: exactly the "
    "threshold is kept (use <, not <=)": dict(overlap_equal=True),
    "the overlap is every pixel the query won divided by its mask's area, not only the won pixels inside "
    "its mask": dict(overlap_within=True),
    "a segment keeps only the won pixels inside its own mask (probability >= 0.5); the others are void":
        dict(every_won=True),
    "stuff queries of one class make one segment: merge them": dict(merge_stuff=False),
    "only stuff merges by class: each thing query is a segment of its own": dict(merge_things=True),
    "a query's mask is its pixels of probability >= 0.5, 0.5 included (use >=, not >)": dict(mask_above=True),
}

#: 8.2 asks for the package's inference rule: its answers run without these.
FORBIDDEN_INFERENCE = {
    "postprocess.mask_former_panoptic": mask_former_panoptic,
    "ch08.package_inference": package_inference,
    "ch08._inference_variant": _inference_variant,
}


def _run_inference(fn, case, name: str):
    class_probs, mask_probs, is_thing, score_threshold, overlap_threshold = case
    try:
        with forbidden("8.2", functions=FORBIDDEN_INFERENCE):
            got = call("8.2", fn, class_probs.copy(), mask_probs.copy(), is_thing.copy(), score_threshold,
                       overlap_threshold)
    except IndexError as error:  # is_thing[K]: a "no object" query kept
        raise ExerciseError(f"Exercise 8.2: on {name}, your function fails with IndexError ({error}). If it looks up "
                            f"is_thing (K = {len(is_thing)} entries) for a query whose most probable class is "
                            f"'no object' (index K): such a query is dropped in step 1.") from None
    try:
        id_map, classes = got
        id_map = np.asarray(id_map.detach().cpu() if isinstance(id_map, torch.Tensor) else id_map)
        classes = {int(k): int(v) for k, v in classes.items()}
        if id_map.shape != mask_probs.shape[1:] or id_map.dtype.kind not in "iu":
            raise ValueError
    except (AttributeError, TypeError, ValueError):
        raise ExerciseError(f"Exercise 8.2: return (id_map, segment_classes): an (H, W) = {mask_probs.shape[1:]} "
                            f"integer id map (0 void) and a dict {{segment id: class}}; got {got!r:.80}.") from None
    missing = sorted(set(np.unique(id_map).tolist()) - {0} - set(classes))
    if missing:
        raise ExerciseError(f"Exercise 8.2: on {name}, the ids {missing} are on the map but not in segment_classes: "
                            f"give every segment id (0 is void) its class.")
    return _segments(id_map, classes)


def _summary(segments) -> str:
    return "[" + ", ".join(f"(class {c}, {len(p)} px)" for c, p in segments) + "]"


@checker
def check_panoptic_inference(fn: Callable) -> bool:
    """Exercise 8.2: ``fn(class_probs, mask_probs, is_thing, score_threshold, overlap_threshold)``
    -> ``(id_map, segment_classes)``, Mask2Former's inference rule.

    numpy in: ``class_probs`` (Q, K + 1) (column K "no object"), ``mask_probs`` (Q, H, W),
    ``is_thing`` (K,) bool. Out: an (H, W) integer id map (0 void) and ``{segment id: class}``.
    (1) Keep the queries whose most probable class is not "no object" and whose probability
    (score) is above ``score_threshold``; (2) each pixel goes to the kept query of highest
    ``score x mask probability``; (3) in query order, a query's mask is its pixels >= 0.5, its
    segment the pixels it won inside its mask; drop it when that is empty or when it won (in
    all) fewer than ``overlap_threshold`` x its mask's area; (4) a stuff query whose class has a
    segment already adds its pixels to it. Compared, up to the ids, with
    :func:`~panopticlab.postprocess.mask_former.mask_former_panoptic` on :func:`inference_case`
    and :func:`inference_case_low`; the answer runs with :data:`FORBIDDEN_INFERENCE` made unavailable.

    Rejects:
        - "no object" queries kept (or an IndexError looking up their class)
        - the score threshold read as ``>=``; the mask threshold read as ``>``
        - pixels given by mask probability alone, or contested by the dropped queries too
        - no overlap filter, the overlap threshold read as ``<=``, or the won pixels counted only inside the mask
        - won pixels outside the query's mask kept (MaskFormer's rule, not Mask2Former's)
        - stuff of one class not merged, or things merged by class
        - anything but an (H, W) integer map and a dict naming every id's class
        - an answer that calls ``mask_former_panoptic``
    """
    cases = (("ch08.inference_case()", inference_case(), _CASE, CASE_THRESHOLDS),
             ("ch08.inference_case_low()", inference_case_low(), _CASE_LOW, CASE_LOW_THRESHOLDS))
    for name, case, queries, thresholds in cases:
        expected = package_inference(queries, thresholds)
        got = _run_inference(fn, case, name)
        if got == expected:
            continue
        where = (f"Exercise 8.2: on {name} (thresholds {thresholds[0]}, {thresholds[1]}): expected the segments "
                 f"{_summary(expected)}, got {_summary(got)}")
        named = [m for m, variant in INFERENCE_MISTAKES.items() if got == _inference_variant(*case, **variant)]
        raise ExerciseError(f"{where}: {either(named)}." if named else f"{where}.")
    return passed("8.2", "Keep the sure queries, give each pixel to the best score x mask, drop the covered, "
                         "merge stuff.")


# ---------------------------------------------------------------------------------------
# 8.3 the assignment: the one-to-one pairing of least total cost
# ---------------------------------------------------------------------------------------
def assignment_case() -> np.ndarray:
    """A hand-made (4, 3) cost, Q = 4 queries by G = 3 segments, all entries different. The least
    total, 2 + 5 + 4 = 11, pairs queries 1, 2, 3 (past the first G) with segments 1, 0, 2; query by
    query, each its cheapest free segment, gives 20; the smallest entry first 16."""
    return np.array([[7.0, 9.0, 10.0], [6.0, 2.0, 12.0], [5.0, 3.0, 11.0], [8.0, 1.0, 4.0]])


def _assignment_variant(cost, how: str = "least") -> set[tuple[int, int]]:
    """The (query, segment) pairs, or those of a typical misreading of the rule."""
    num_queries, num_segments = cost.shape
    if how in ("least", "most", "first"):
        choices = itertools.permutations(range(num_segments if how == "first" else num_queries), num_segments)
        best = (max if how == "most" else min)(choices, key=lambda p: cost[list(p), range(num_segments)].sum())
        return {(q, g) for g, q in enumerate(best)}
    if how in ("row_argmin", "column_argmin"):
        return ({(q, int(np.argmin(cost[q]))) for q in range(num_queries)} if how == "row_argmin" else
                {(int(np.argmin(cost[:, g])), g) for g in range(num_segments)})
    if how == "greedy_rows":  # query by query, each its cheapest segment still free
        order = [(q, g) for q in range(num_queries) for g in np.argsort(cost[q], kind="stable")]
    else:  # "greedy_smallest": the smallest entry left first
        order = [np.unravel_index(i, cost.shape) for i in np.argsort(cost, axis=None, kind="stable")]
    pairs = set()
    for q, g in order:
        if all(q != taken_q and g != taken_g for taken_q, taken_g in pairs):
            pairs.add((int(q), int(g)))
    return pairs


ASSIGNMENT_MISTAKES = {
    "each query taking its cheapest segment gives a segment to several queries: the matching is one-to-one":
        "row_argmin",
    "each segment taking its cheapest query can give a query two segments: the matching is one-to-one":
        "column_argmin",
    "greedy, query by query (each its cheapest free segment), is not the least total: try every assignment":
        "greedy_rows",
    "greedy, the smallest entry first, is not the least total: try every assignment": "greedy_smallest",
    "the matching minimises the total cost; you maximised it": "most",
    "every query may be matched, not only the first G: choose G of the Q queries "
    "(itertools.permutations(range(Q), G))": "first",
}


def forbidden_assignment() -> dict:
    """What 8.3's answers run without: it asks for what ``scipy.optimize.linear_sum_assignment`` does
    (imported here, as the package does: scipy.optimize is slow to import)."""
    from scipy.optimize import linear_sum_assignment

    return {"scipy.optimize.linear_sum_assignment": linear_sum_assignment,
            "models.set_matching.hungarian_matching": hungarian_matching,
            "ch08._assignment_variant": _assignment_variant}


def _as_pairs(got, exercise: str) -> list[tuple[int, int]]:
    try:
        rows, cols = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v) for v in got)
        if rows.ndim != 1 or rows.shape != cols.shape or rows.dtype.kind not in "iu" or cols.dtype.kind not in "iu":
            raise ValueError
    except (TypeError, ValueError):
        raise ExerciseError(f"Exercise {exercise}: return (rows, cols), two 1-D integer arrays of the same length: "
                            f"query rows[i] is matched to segment cols[i]; got {got!r:.120}.") from None
    return [(int(q), int(g)) for q, g in zip(rows, cols)]


@checker
def check_assignment(fn: Callable) -> bool:
    """Exercise 8.3: ``fn(cost)`` -> ``(rows, cols)``, the one-to-one assignment of least total cost.

    ``cost`` (Q, G) numpy, Q >= G. Query ``rows[i]`` is matched to segment ``cols[i]``, G pairs,
    each query and segment once, ``cost[rows, cols].sum()`` the least possible; pairs in any
    order. Meant by brute force over ``itertools.permutations(range(Q), G)`` (the package calls
    ``scipy.optimize.linear_sum_assignment``). Checked on :func:`assignment_case` and the cost
    of :func:`matching_case` (weights 2, 5, 5) against
    :func:`~panopticlab.models.set_matching.hungarian_matching`; the answer runs with
    :func:`forbidden_assignment` made unavailable.

    Rejects:
        - a query or segment matched twice (each query's cheapest segment, each segment's cheapest query)
        - a greedy assignment (query by query, or the smallest entry first); the largest total
        - only the first G queries tried; (segment, query) pairs; fewer than G pairs
        - anything but two equally long integer arrays
        - an answer that calls ``linear_sum_assignment`` or ``hungarian_matching``
    """
    cases = (("ch08.assignment_case()", assignment_case()),
             ("the cost of ch08.matching_case() (weights 2, 5, 5)", package_cost(COST_WEIGHTS[0])))
    for name, cost in cases:
        rows, cols = hungarian_matching(torch.tensor(cost))
        expected = set(zip(rows.tolist(), cols.tolist()))
        with forbidden("8.3", functions=forbidden_assignment()):
            got = _as_pairs(call("8.3", fn, cost.copy()), "8.3")
        if set(got) == expected and len(got) == len(expected):
            continue
        where = f"Exercise 8.3: on {name}: expected the pairs {sorted(expected)}, got {sorted(got)}"
        named = [m for m, how in ASSIGNMENT_MISTAKES.items() if set(got) == _assignment_variant(cost, how)]
        if named:
            raise ExerciseError(f"{where}: {either(named)}.")
        if {(g, q) for q, g in got} == expected:
            raise ExerciseError(f"{where}: return (rows, cols) = (queries, segments), not (segments, queries).")
        if len({q for q, _ in got}) < len(got) or len({g for _, g in got}) < len(got):
            raise ExerciseError(f"{where}: a query or a segment appears twice: the matching is one-to-one.")
        if len(got) != cost.shape[1]:
            raise ExerciseError(f"{where}: every one of the G = {cost.shape[1]} segments gets a query.")
        total = sum(cost[q, g] for q, g in got)
        raise ExerciseError(f"{where}: total cost {total:.4g}, the least is {cost[rows, cols].sum():.4g}.")
    return passed("8.3", "The least total cost over every one-to-one assignment.")
