"""Checkers for chapter 3: the heuristic merge, one step at a time."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data import SYNTHETIC_CATEGORIES
from ..data.categories import VOID_LABEL
from ..data.synthetic import render_scene
from ..postprocess.heuristic import heuristic_merge
from .checking import ExerciseError, call, passed


def merge_cases(num: int = 5, size: int = 64):
    """Inputs like a real baseline's: grown (overlapping) true masks with random scores, true semantics."""
    rng = np.random.default_rng(303)
    for index in range(num):
        pan = render_scene(index, size=size, seed=303, split="val").panoptic
        things = [s for s in pan.segments if SYNTHETIC_CATEGORIES.isthing(s.category_id) and not s.iscrowd]
        masks = np.stack([ndimage.binary_dilation(pan.id_map == s.id, iterations=int(rng.integers(0, 4)))
                          for s in things]) if things else np.zeros((0, size, size), bool)
        scores = rng.uniform(0.05, 1.0, len(things))
        category_ids = np.array([s.category_id for s in things], dtype=np.int64)
        yield index, pan.category_map(void=VOID_LABEL), masks, scores, category_ids


def tie_case(size: int = 16):
    """Two overlapping boxes with equal scores: the one listed first must claim first."""
    masks = np.zeros((2, size, size), bool)
    masks[0, 2:10, 2:10] = True
    masks[1, 5:13, 5:13] = True
    category_map = np.full((size, size), 11)
    return "with tied scores", category_map, masks, np.array([0.8, 0.8]), np.array([2, 2])


def check_claim_pixels(fn) -> bool:
    """Exercise 3.1: ``fn(masks, scores, score_threshold, overlap_threshold)`` -> (H, W) owner map.

    The owner map holds, for each pixel, the input index of the instance that keeps it,
    and -1 where no instance does.
    """
    cases = [(f"scene {index}", *rest) for index, *rest in merge_cases()] + [tie_case()]
    for score_threshold, overlap_threshold in ((0.5, 0.5), (0.5, 0.2), (0.3, 0.5)):
        for name, semantic, masks, scores, category_ids in cases:
            expected = heuristic_merge(None, masks, scores, category_ids, SYNTHETIC_CATEGORIES,
                                       score_threshold=score_threshold, overlap_threshold=overlap_threshold).steps.owner
            got = np.asarray(call("3.1", fn, masks.copy(), scores.copy(), score_threshold, overlap_threshold))
            if got.shape != expected.shape:
                raise ExerciseError(f"Exercise 3.1: expected an (H, W) = {expected.shape} owner map, got {got.shape}.")
            if not np.array_equal(got, expected):
                y, x = np.argwhere(got != expected)[0]
                want, have = int(expected[y, x]), int(got[y, x])
                hint = ""
                if want >= 0 and have >= 0 and scores[want] == scores[have]:
                    hint = (f" Instances {want} and {have} have the same score: the one listed first claims first "
                            f"(a stable sort keeps input order).")
                elif want >= 0 and have >= 0:
                    hint = (f" Instance {want} has score {scores[want]:.2f}, instance {have} {scores[have]:.2f}: "
                            f"the more confident one claims first.")
                elif have >= 0 and scores[have] < score_threshold:
                    hint = f" Instance {have} has score {scores[have]:.2f}, below the score threshold {score_threshold}."
                elif have >= 0:
                    hint = (f" Instance {have} should have been dropped: more than {overlap_threshold} of its "
                            f"pixels were already taken.")
                else:
                    hint = (f" Instance {want} keeps its free pixels: its score {scores[want]:.2f} passes the "
                            f"threshold {score_threshold}, and only *more* than {overlap_threshold} of it taken "
                            f"drops it.")
                raise ExerciseError(f"Exercise 3.1: {name}, score threshold {score_threshold}, overlap threshold "
                                    f"{overlap_threshold}, pixel (y={y}, x={x}): expected owner {want}, got {have}."
                                    f"{hint}")
    return passed("3.1", "Most confident first; overlaps go to the earlier instance; heavily covered ones drop.")


def check_fill_stuff(fn) -> bool:
    """Exercise 3.2: ``fn(owner, semantic, categories, stuff_area_limit)`` -> (H, W) stuff map.

    The stuff map holds the stuff category of every pixel that stuff keeps, and 255
    everywhere else (instance pixels, thing-labelled pixels, stuff regions too small).
    """
    for limit in (0, 150):
        for index, semantic, masks, scores, category_ids in merge_cases():
            merge = heuristic_merge(semantic, masks, scores, category_ids, SYNTHETIC_CATEGORIES,
                                    stuff_area_limit=limit)
            owner = merge.steps.owner
            expected = np.where(owner >= 0, VOID_LABEL, merge.panoptic.category_map(void=VOID_LABEL))
            got = np.asarray(call("3.2", fn, owner.copy(), semantic.copy(), SYNTHETIC_CATEGORIES, limit))
            if not np.array_equal(got, expected):
                y, x = np.argwhere(got != expected)[0]
                want, have = int(expected[y, x]), int(got[y, x])
                if owner[y, x] >= 0:
                    hint = " That pixel belongs to an instance: things win over stuff."
                elif have != VOID_LABEL and SYNTHETIC_CATEGORIES.isthing(have):
                    hint = " Only stuff categories are taken from the semantic map; thing pixels without an instance are void."
                elif want == VOID_LABEL:
                    hint = (f" Category {have} has fewer than {limit} free pixels here: small stuff regions "
                            f"become void. Count only the pixels no instance took.")
                else:
                    hint = " Count each stuff category's free pixels over the whole image."
                raise ExerciseError(f"Exercise 3.2: scene {index}, limit {limit}, pixel (y={y}, x={x}): expected "
                                    f"{want}, got {have}.{hint}")
    return passed("3.2", "Stuff fills what the instances left, if enough of it remains.")


SCORE_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))


def check_best_threshold(threshold: float, score) -> bool:
    """Exercise 3.3: ``threshold`` maximises ``score(score_threshold=t)["All"]["pq"]`` over 0.1, 0.2, ..., 0.9.

    ``score`` is the chapter's function (merge options in, evaluation results out); every
    candidate is scored again here, so the check holds in any profile.
    """
    pq = {t: score(score_threshold=t)["All"]["pq"] for t in SCORE_THRESHOLDS}
    chosen = round(float(threshold), 1)
    if chosen not in pq or abs(chosen - float(threshold)) > 1e-9:
        raise ExerciseError(f"Exercise 3.3: {threshold} is not one of the candidates {list(SCORE_THRESHOLDS)}.")
    best = max(pq.values())
    if pq[chosen] < best - 1e-12:
        winner = next(t for t in SCORE_THRESHOLDS if pq[t] >= best - 1e-12)
        raise ExerciseError(f"Exercise 3.3: score threshold {chosen} gives PQ {100 * pq[chosen]:.2f}, but {winner} "
                            f"gives {100 * best:.2f}. Score every candidate and keep the best.")
    return passed("3.3", f"{chosen} gives the highest PQ, {100 * best:.2f}"
                         + (" - the published default." if chosen == 0.5 else ", not the published 0.5."))
