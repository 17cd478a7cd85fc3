"""Checkers for chapter 3: the heuristic merge, one step at a time."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data import SYNTHETIC_CATEGORIES
from ..data.categories import VOID_LABEL
from ..data.synthetic import render_scene
from ..postprocess.heuristic import heuristic_merge
from .checking import ExerciseError, answered, call, checker, passed


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


def _boxes(size: int, *boxes) -> np.ndarray:
    masks = np.zeros((len(boxes), size, size), bool)
    for mask, (y0, y1, x0, x1) in zip(masks, boxes):
        mask[y0:y1, x0:x1] = True
    return masks


def claim_cases(size: int = 16):
    """Drawn cases for 3.1: (name, semantic, masks, scores, category_ids, hint); each hint names
    the misreading the case is built to catch (thresholds 0.5 and 0.5)."""
    sky = np.full((size, size), 11)
    yield ("with tied scores", sky, _boxes(size, (2, 10, 2, 10), (5, 13, 5, 13)), np.array([0.8, 0.8]),
           np.array([2, 2]), ("The two have the same score: the one listed first claims first (a stable sort "
                             "keeps input order)."))
    yield ("with a score equal to the threshold", sky, _boxes(size, (2, 6, 2, 6)), np.array([0.5]), np.array([2]),
           "A score equal to the threshold stays: only scores *below* it are dropped (score < threshold).")
    yield ("with exactly half of an instance taken", sky, _boxes(size, (0, 4, 0, 4), (0, 4, 2, 6)),
           np.array([0.9, 0.8]), np.array([2, 2]),
           ("Instance 1 lost exactly half of its pixels (8 of 16): only *more* than the overlap threshold "
           "drops it, so it keeps its 8 free pixels."))
    # 1 is dropped (12 of 16 taken by 0); 2 overlaps 0 by half and 1 by more: 1 took nothing
    yield ("after a dropped instance", sky, _boxes(size, (0, 4, 0, 4), (0, 4, 1, 5), (0, 4, 2, 6)),
           np.array([0.9, 0.8, 0.7]), np.array([2, 2, 2]),
           ("Instance 1 was dropped, so it took no pixels: 'already taken' means taken by instances that "
           "were kept. Instance 2 loses only the 8 pixels instance 0 holds, half of it, and stays."))
    yield ("with an empty mask", sky, _boxes(size, (0, 0, 0, 0), (2, 6, 2, 6)), np.array([0.95, 0.9]),
           np.array([2, 2]), "An empty mask claims nothing: skip it (and do not divide by its area of 0).")


@checker
def check_claim_pixels(fn) -> bool:
    """Exercise 3.1: ``fn(masks, scores, score_threshold, overlap_threshold)`` -> (H, W) owner map.

    The owner map holds, for each pixel, the input index of the instance that keeps it,
    and -1 where no instance does.
    """
    drawn = [(0.5, 0.5, *case) for case in claim_cases()]
    scenes = [(st, ot, f"scene {index}", *rest, None) for st, ot in ((0.5, 0.5), (0.5, 0.2), (0.3, 0.5))
              for index, *rest in merge_cases()]
    for score_threshold, overlap_threshold, name, semantic, masks, scores, category_ids, case_hint in drawn + scenes:
        expected = heuristic_merge(None, masks, scores, category_ids, SYNTHETIC_CATEGORIES,
                                   score_threshold=score_threshold, overlap_threshold=overlap_threshold).steps.owner
        try:
            got = np.asarray(call("3.1", fn, masks.copy(), scores.copy(), score_threshold, overlap_threshold))
        except ZeroDivisionError:
            raise ExerciseError(f"Exercise 3.1: {name}: division by zero. An empty mask claims nothing: "
                                f"skip it before dividing by its area.") from None
        if got.shape != expected.shape:
            raise ExerciseError(f"Exercise 3.1: expected an (H, W) = {expected.shape} owner map, got {got.shape}.")
        if not np.array_equal(got, expected):
            y, x = np.argwhere(got != expected)[0]
            want, have = int(expected[y, x]), int(got[y, x])
            kept = set(np.unique(expected[expected >= 0]).tolist())
            if np.array_equal(got, np.where(expected >= 0, expected + 1, 0)):
                hint = " The owner map holds input indices from 0, and -1 where no instance owns the pixel."
            elif have >= 0 and have not in kept and scores[have] < score_threshold:
                hint = f" Instance {have} has score {scores[have]:.2f}, below the score threshold {score_threshold}."
            elif have >= 0 and have not in kept:
                hint = (f" Instance {have} should have been dropped: more than {overlap_threshold} of its "
                        f"pixels were already taken.")
            elif want >= 0 and have >= 0 and scores[want] == scores[have]:
                hint = (f" Instances {want} and {have} have the same score: the one listed first claims first "
                        f"(a stable sort keeps input order).")
            elif want >= 0 and have >= 0:
                hint = (f" Instance {want} has score {scores[want]:.2f}, instance {have} {scores[have]:.2f}: "
                        f"the more confident one claims first.")
            elif case_hint:
                hint = " " + case_hint
            else:
                hint = (f" Instance {want} keeps its free pixels: its score {scores[want]:.2f} passes the "
                        f"threshold {score_threshold}, and only *more* than {overlap_threshold} of it taken "
                        f"drops it.")
            raise ExerciseError(f"Exercise 3.1: {name}, score threshold {score_threshold}, overlap threshold "
                                f"{overlap_threshold}, pixel (y={y}, x={x}): expected owner {want}, got {have}."
                                f"{hint}")
    return passed("3.1", "Most confident first; overlaps go to the earlier instance; heavily covered ones drop.")


def fill_cases(size: int = 12):
    """Drawn cases for 3.2: (name, owner, semantic, limit, hint), each catching one misreading."""
    none = np.full((size, size), -1)
    semantic = np.full((size, size), 12)          # grass
    semantic[:4, :4] = 11                         # 16 px of sky
    yield ("a stuff area equal to the limit", none, semantic, 16,
           ("Sky keeps exactly 16 free pixels, the limit: only categories with *fewer* than the limit "
           "become void (free >= limit stays)."))
    semantic = np.full((size, size), 12)
    semantic[:2, :5], semantic[-2:, -5:] = 11, 11  # two separate sky regions of 10 px each
    yield ("a stuff category in two regions", none, semantic, 16,
           ("The limit is per category over the whole image, not per connected region: the two sky "
           "regions hold 20 free pixels together, more than the limit of 16."))
    owner = none.copy()
    owner[:4, :2] = 0                              # an instance covering half of the sky
    semantic = np.full((size, size), 12)
    semantic[:4, :4] = 11
    yield ("a stuff category half covered by an instance", owner, semantic, 10,
           ("Count only the free pixels of the category (those no instance owns): the sky keeps 8, "
           "fewer than the limit of 10."))


@checker
def check_fill_stuff(fn) -> bool:
    """Exercise 3.2: ``fn(owner, semantic, categories, stuff_area_limit)`` -> (H, W) stuff map.

    The stuff map holds the stuff category of every pixel that stuff keeps, and 255
    everywhere else (instance pixels, thing-labelled pixels, stuff regions too small).
    """
    cases = list(fill_cases())
    for limit in (0, 150):
        for index, semantic, masks, scores, category_ids in merge_cases():
            owner = heuristic_merge(None, masks, scores, category_ids, SYNTHETIC_CATEGORIES).steps.owner
            cases.append((f"scene {index}", owner, semantic, limit, None))
    for name, owner, semantic, limit, case_hint in cases:
        masks = np.stack([owner == k for k in range(int(owner.max()) + 1)]) if owner.max() >= 0 else \
            np.zeros((0, *owner.shape), bool)
        merge = heuristic_merge(semantic, masks, np.ones(len(masks)), np.full(len(masks), DISC_ID),
                                SYNTHETIC_CATEGORIES, stuff_area_limit=limit)
        assert np.array_equal(merge.steps.owner, owner)  # the drawn owner maps are what a merge gives
        expected = np.where(owner >= 0, VOID_LABEL, merge.panoptic.category_map(void=VOID_LABEL))
        got = np.asarray(call("3.2", fn, owner.copy(), semantic.copy(), SYNTHETIC_CATEGORIES, limit))
        if got.shape != expected.shape:
            raise ExerciseError(f"Exercise 3.2: expected an (H, W) = {expected.shape} map, got {got.shape}.")
        if not np.array_equal(got, expected):
            y, x = np.argwhere(got != expected)[0]
            want, have = int(expected[y, x]), int(got[y, x])
            if owner[y, x] >= 0:
                hint = " That pixel belongs to an instance: things win over stuff."
            elif have != VOID_LABEL and SYNTHETIC_CATEGORIES.isthing(have):
                hint = " Only stuff categories are taken from the semantic map; thing pixels without an instance are void."
            elif case_hint:
                hint = " " + case_hint
            elif want == VOID_LABEL:
                hint = (f" Category {have} has fewer than {limit} free pixels here: small stuff regions "
                        f"become void. Count only the pixels no instance took.")
            else:
                hint = " Count each stuff category's free pixels over the whole image."
            raise ExerciseError(f"Exercise 3.2: {name}, limit {limit}, pixel (y={y}, x={x}): expected "
                                f"{want}, got {have}.{hint}")
    return passed("3.2", "Stuff fills what the instances left, if enough of it remains.")


SCORE_THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))
DISC_ID = 1  # any thing category: the drawn owner maps of 3.2 need one


@checker
def check_best_threshold(threshold: float, score) -> bool:
    """Exercise 3.3: ``threshold`` maximises ``score(score_threshold=t)["All"]["pq"]`` over 0.1, 0.2, ..., 0.9.

    ``score`` is the chapter's function (merge options in, evaluation results out); every
    candidate is scored again here, so the check holds in any profile.
    """
    answered("3.3", threshold)  # before scoring the nine candidates, which takes a while
    results = {t: score(score_threshold=t) for t in SCORE_THRESHOLDS}
    pq = {t: r["All"]["pq"] for t, r in results.items()}
    best = max(pq.values())
    chosen = round(float(threshold), 1)
    if chosen not in pq or abs(chosen - float(threshold)) > 1e-9:
        if any(abs(float(threshold) - v) < 1e-9 for v in pq.values()):
            hint = " That is a PQ; return the threshold that gives it."
        elif float(threshold).is_integer() and 0 <= threshold < len(SCORE_THRESHOLDS):
            hint = (f" That looks like a position in the list; return the threshold itself "
                    f"({SCORE_THRESHOLDS[int(threshold)]} at that position).")
        else:
            hint = ""
        raise ExerciseError(f"Exercise 3.3: {threshold} is not one of the candidates {list(SCORE_THRESHOLDS)}."
                            + hint)
    if pq[chosen] < best - 1e-12:
        winner = next(t for t in SCORE_THRESHOLDS if pq[t] >= best - 1e-12)
        hint = " Score every candidate and keep the best."
        for group in ("Things", "Stuff"):
            values = {t: r.get(group, {}).get("pq") for t, r in results.items()}
            if (None not in values.values() and values[chosen] >= max(values.values()) - 1e-12
                    and values[chosen] > values[winner] + 1e-12):
                hint = f" {chosen} maximises PQ of {group}; the exercise asks for PQ over All categories."
        if pq[chosen] <= min(pq.values()) + 1e-12:
            hint = " That is the lowest PQ: keep the largest, not the smallest."
        raise ExerciseError(f"Exercise 3.3: score threshold {chosen} gives PQ {100 * pq[chosen]:.2f}, but {winner} "
                            f"gives {100 * best:.2f}.{hint}")
    return passed("3.3", f"{chosen} gives the highest PQ, {100 * best:.2f}"
                         + (" - the published default." if chosen == 0.5 else ", not the published 0.5."))
