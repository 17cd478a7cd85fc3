"""Checkers for chapter 5: UPSNet's unknown channel, the pasting of a mask into its box, and what the box
keep fraction does to the panoptic head's targets."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data.categories import VOID_LABEL
from ..data.synthetic import SYNTHETIC_CATEGORIES, SyntheticPanoptic
from ..models.upsnet import keep_instances, panoptic_targets
from ..models.upsnet_head import box_cells, crop_to_boxes, panoptic_logits, paste_mask_logits, unknown_logits
from ..postprocess.upsnet import semantic_layout
from .checking import ExerciseError, call, checker, either, passed, prediction_choice, prediction_report
from .forbidden import forbidden


# --- Exercise 5.1: the unknown channel ------------------------------------------------------------
def unknown_case(num_instances: int, seed: int = 505):
    """Semantic logits (3 stuff + 4 thing channels, 24 x 20) and X_mask of ``num_instances`` boxes."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(7, 24, 20, generator=generator)
    boxes = torch.tensor([[1.0, 2.0, 11.0, 14.0], [6.5, 8.0, 19.0, 23.0], [0.0, 15.0, 8.0, 24.0]])[:num_instances]
    channels = torch.tensor([3, 5, 3])[:num_instances]
    return logits, 3, crop_to_boxes(logits, channels, boxes)


def _empty_max(x: torch.Tensor, like: torch.Tensor, op) -> torch.Tensor:
    return op(x, dim=0).values if len(x) else torch.zeros_like(like)


UNKNOWN_MISTAKES = {
    "the first term is the maximum over the *thing* channels of X, not over all channels (stuff included)":
        lambda x, s, m: x.max(dim=0).values - _empty_max(m, x[0], torch.max),
    "the second term is the maximum over the instances' X_mask, not the minimum":
        lambda x, s, m: x[s:].max(dim=0).values - _empty_max(m, x[0], torch.min),
    "the unknown logit is max X_thing - max X_mask, not the other way round":
        lambda x, s, m: _empty_max(m, x[0], torch.max) - x[s:].max(dim=0).values,
    "the second term is a maximum over the instances, not a sum":
        lambda x, s, m: x[s:].max(dim=0).values - (m.sum(dim=0) if len(m) else 0),
    "the first term is a maximum over the thing channels, not their sum":
        lambda x, s, m: x[s:].sum(dim=0) - _empty_max(m, x[0], torch.max),
}


#: 5.1 asks for the channel the package computes: its answers run without these.
FORBIDDEN_UNKNOWN = {
    "models.upsnet_head.unknown_logits": unknown_logits,
    "models.upsnet_head.panoptic_logits": panoptic_logits,
}


@checker
def check_unknown_channel(fn) -> bool:
    """Exercise 5.1: ``fn(semantic_logits, num_stuff, x_mask)`` -> the unknown channel [H, W].

    ``semantic_logits`` float [C, H, W] (stuff first), ``x_mask`` float [N, H, W] (each
    instance's class channel inside its box, 0 outside). Checked with 3, 1 and 0 instances
    against :func:`~panopticlab.models.upsnet_head.unknown_logits`; the answer runs with
    :data:`FORBIDDEN_UNKNOWN` made unavailable.
    """
    for count in (3, 1, 0):
        logits, num_stuff, x_mask = unknown_case(count)
        expected = unknown_logits(logits[num_stuff:], x_mask)
        try:
            with forbidden("5.1", functions=FORBIDDEN_UNKNOWN):
                got = call("5.1", fn, logits.clone(), num_stuff, x_mask.clone())
        except (RuntimeError, IndexError) as error:
            if count == 0:
                raise ExerciseError(f"Exercise 5.1: with no instance your function fails ({error}). Without "
                                    f"instances no box covers any pixel, so max_i X_mask_i is 0 everywhere (the "
                                    f"value outside every box) and the channel is max X_thing.") from None
            raise
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ExerciseError(f"Exercise 5.1: return a tensor of shape {tuple(expected.shape)} (one logit per "
                                f"pixel), got {shape}.")
        if torch.allclose(got, expected, atol=1e-5):
            continue
        hint = ""
        for mistake, variant in UNKNOWN_MISTAKES.items():
            wrong = variant(logits, num_stuff, x_mask)
            if torch.is_tensor(wrong) and torch.allclose(got, wrong.expand_as(got), atol=1e-5):
                hint = f" Your channel matches one where {mistake}."
                break
        raise ExerciseError(f"Exercise 5.1: with {count} instance(s) the channel differs from the package's by up "
                            f"to {float((got - expected).abs().max()):.3g}.{hint}")
    return passed("5.1", "max over thing channels minus max over X_mask, and max X_thing without instances.")


# --- Exercise 5.2: pasting a mask into its box -------------------------------------------------------
PASTE_BOXES = ((3.4, 5.6, 17.2, 20.5), (-3.2, 20.0, 10.7, 36.3), (8.0, 0.0, 30.0, 9.0))
PASTE_SIZE = (32, 30)


def paste_case(seed: int = 528) -> torch.Tensor:
    """float [3, 28, 28] mask logits, one per box of :data:`PASTE_BOXES`."""
    return 4 * torch.randn(len(PASTE_BOXES), 28, 28, generator=torch.Generator().manual_seed(seed))


def _paste_variant(logits, box, size, *, edges="floor_ceil", mode="bilinear", align_corners=False,
                   outside=0.0, sigmoid=False):
    """One pasting, or a typical mistake in it."""
    x1, y1, x2, y2 = box
    if edges == "round":
        c0, r0, c1, r1 = round(x1), round(y1), round(x2), round(y2)
    elif edges == "int":
        c0, r0, c1, r1 = int(x1), int(y1), int(x2), int(y2)
    else:
        c0, r0, c1, r1 = math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    options = {"align_corners": align_corners} if mode == "bilinear" else {}
    resized = F.interpolate(logits[None, None], size=(r1 - r0, c1 - c0), mode=mode, **options)[0, 0]
    if sigmoid:
        resized = resized.sigmoid()
    out = torch.full(size, outside)
    y0, x0 = max(r0, 0), max(c0, 0)
    y1c, x1c = min(r1, size[0]), min(c1, size[1])
    if y0 < y1c and x0 < x1c:
        out[y0:y1c, x0:x1c] = resized[y0 - r0:y1c - r0, x0 - c0:x1c - c0]
    return out


PASTE_MISTAKES = {
    "the box's cells run from floor(x1) to ceil(x2) - 1; rounding both edges to the nearest pixel drops or adds "
    "a column": {"edges": "round"},
    "the box's cells run from floor(x1) to ceil(x2) - 1; int() truncates x2 and loses the last partial column":
        {"edges": "int"},
    "the mask is resized with bilinear interpolation, not nearest": {"mode": "nearest"},
    "bilinear resizing with align_corners=False": {"align_corners": True},
    "Y_mask holds logits: no sigmoid": {"sigmoid": True},
    "outside its box Y_mask is 0": {"outside": -10.0},
}


#: 5.2 asks for the pasting the package does: its answers run without these.
FORBIDDEN_PASTE = {
    "models.upsnet_head.paste_mask_logits": paste_mask_logits,
    "models.upsnet_head.box_cells": box_cells,
    "ch05._paste_variant": _paste_variant,
}


@checker
def check_paste_mask(fn) -> bool:
    """Exercise 5.2: ``fn(mask_logits, box, size)`` -> ``Y_mask`` float [H, W].

    ``mask_logits`` float [28, 28]; ``box`` ``(x1, y1, x2, y2)`` floats in pixel-edge
    coordinates; ``size`` ``(H, W)``. The box covers columns ``floor(x1) .. ceil(x2) - 1``
    (rows likewise); the logits are resized bilinearly (``align_corners=False``) to those
    cells and pasted, 0 elsewhere; parts outside the map are cut off. Compared with
    :func:`~panopticlab.models.upsnet_head.paste_mask_logits`; the answer runs with
    :data:`FORBIDDEN_PASTE` made unavailable.
    """
    logits = paste_case()
    for k, box in enumerate(PASTE_BOXES):
        expected = paste_mask_logits(logits[k:k + 1], torch.tensor([box]), PASTE_SIZE)[0]
        with forbidden("5.2", functions=FORBIDDEN_PASTE):
            got = call("5.2", fn, logits[k].clone(), box, PASTE_SIZE)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != PASTE_SIZE:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ExerciseError(f"Exercise 5.2: return a tensor of shape {PASTE_SIZE}, the whole map, got {shape}.")
        if torch.allclose(got.float(), expected, atol=1e-4):
            continue
        hint = ""
        for mistake, variant in PASTE_MISTAKES.items():
            wrong = _paste_variant(logits[k], box, PASTE_SIZE, **variant)
            if torch.allclose(got.float(), wrong, atol=1e-4):
                hint = f" Your map matches one where this is missed: {mistake}."
                break
        where = " (it reaches past the map's edge: cut it off)" if box[0] < 0 or box[3] > PASTE_SIZE[0] else ""
        raise ExerciseError(f"Exercise 5.2: box {box}{where}: your map differs from the package's by up to "
                            f"{float((got.float() - expected).abs().max()):.3g}.{hint}")
    return passed("5.2", "floor/ceil cells, bilinear resizing, 0 outside, cut at the map's edge.")


# --- Exercise 5.4: predict, then measure what a keep fraction of 1 does to the targets -------------
#: The predictions 5.4 accepts.
UNKNOWN_DIRECTIONS = ("rises", "falls", "stays", "drops to zero")
#: Training images of the built-in data (64 px) the cases are drawn from: 33 has five
#: instances and a crowd, 35 two instances and a crowd, 4 six instances and no crowd.
UNKNOWN_IMAGES = (33, 35, 4)


def target_case(index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Training image ``index`` of the built-in data (64 px) as the panoptic head sees its targets.

    Returns:
        semantic: int64 [H, W] labels in UPSNet's layout (stuff ``0..N_st-1``, then things;
            crowd pixels keep their thing label; void 255).
        instances: bool [N, H, W] the non-crowd thing segments.
        num_stuff: ``N_st``.
    """
    panoptic = SyntheticPanoptic(max(UNKNOWN_IMAGES) + 1, 64, split="train")[index].panoptic
    layout = semantic_layout(SYNTHETIC_CATEGORIES)
    semantic = np.full(panoptic.id_map.shape, VOID_LABEL, np.int64)
    masks = []
    for segment in panoptic.segments:
        pixels = panoptic.id_map == segment.id
        semantic[pixels] = layout.index(segment.category_id)
        if SYNTHETIC_CATEGORIES.isthing(segment.category_id) and not segment.iscrowd:
            masks.append(pixels)
    instances = np.stack(masks) if masks else np.zeros((0, *semantic.shape), bool)
    return torch.from_numpy(semantic), torch.from_numpy(instances), len(SYNTHETIC_CATEGORIES.stuff_ids)


def unknown_share(semantic, instances, num_stuff, fraction, generator) -> float:
    """The package's answer to 5.4: the share of thing pixels whose target
    (:func:`~panopticlab.models.upsnet.panoptic_targets`, with the unknown channel) is the
    unknown channel, the kept instances drawn by :func:`~panopticlab.models.upsnet.keep_instances`."""
    kept = keep_instances(len(instances), fraction, generator)
    target = panoptic_targets(semantic, instances[kept], num_stuff, unknown=True, void_label=VOID_LABEL)
    thing = (semantic >= num_stuff) & (semantic != VOID_LABEL)
    return float((target[thing] == num_stuff + len(kept)).double().mean())


def _unknown_share_variant(semantic, instances, num_stuff, fraction, generator, *, void=False,
                           void_denominator=False, stuff_denominator=False, dropped_own=False, no_minimum=False,
                           crowd=False, crowd_excluded=False, fraction_dropped=False) -> float:
    """The share, or that of a typical misreading of the targets."""
    count = len(instances)
    if fraction_dropped and fraction < 1:
        kept = keep_instances(count, 1 - fraction, generator)
    elif no_minimum and fraction < 1:
        kept = torch.randperm(count, generator=generator)[:int(count * fraction)]
    else:
        kept = keep_instances(count, fraction, generator)
    thing = semantic >= num_stuff
    if not void:
        thing = thing & (semantic != VOID_LABEL)
    instance_pixels = instances.any(dim=0) if count else torch.zeros_like(thing)
    covered = instances[kept].any(dim=0) if len(kept) else torch.zeros_like(thing)
    unknown = thing & ~(instance_pixels if dropped_own else covered)
    if crowd or crowd_excluded:  # only the dropped instances' pixels: thing pixels without an instance left out
        unknown = unknown & instance_pixels
    counted = thing
    if void_denominator:
        counted = semantic >= num_stuff
    if stuff_denominator:
        counted = semantic != VOID_LABEL
    if crowd_excluded:
        counted = counted & instance_pixels
    return float(unknown.sum()) / float(counted.sum())


UNKNOWN_SHARE_MISTAKES = {
    "void pixels (255) are neither thing pixels nor unknown: a void label is >= num_stuff too, leave it out":
        dict(void=True),
    "the share is of the thing pixels: void pixels do not count in the denominator": dict(void_denominator=True),
    "the share is of the thing pixels: stuff pixels do not count in the denominator": dict(stuff_denominator=True),
    "a dropped instance has no channel: its pixels are targets of the unknown channel, not of a channel of their own":
        dict(dropped_own=True),
    "keep_instances keeps at least one instance (max(int(count * fraction), 1)); int(count * fraction) alone "
    "drops them all when count * fraction < 1": dict(no_minimum=True),
    "crowd regions (thing pixels without an instance mask) are unknown targets too, and count among the thing "
    "pixels": dict(crowd=True),
    "crowd regions count among the thing pixels, and their target is the unknown channel": dict(crowd_excluded=True),
    "`fraction` is the share of the instances kept, not dropped": dict(fraction_dropped=True),
}

#: 5.4 asks for the targets the package builds: its answers run without these (``keep_instances`` may be used).
FORBIDDEN_TARGETS = {
    "models.upsnet.panoptic_targets": panoptic_targets,
    "ch05.unknown_share": unknown_share,
    "ch05._unknown_share_variant": _unknown_share_variant,
}


def _run_unknown_share(fn, case, fraction, seed, rng_seed=0) -> float:
    semantic, instances, num_stuff = case
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng_seed)
        with forbidden("5.4", functions=FORBIDDEN_TARGETS):
            got = call("5.4", fn, semantic.clone(), instances.clone(), num_stuff, fraction, generator)
    try:
        return float(got.detach() if isinstance(got, torch.Tensor) else got)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseError(f"Exercise 5.4: return the share as one number, got {type(got).__name__}.") from None


def _measured_change(fn, cases) -> tuple[str, str]:
    """What the answer's share does from keep fraction 0.7 (the mean of four draws) to 1, and the numbers."""
    lines, changes = [], []
    for index, case in cases:
        semantic, instances, num_stuff = case
        thing = (semantic >= num_stuff) & (semantic != VOID_LABEL)
        unmatched = float((thing & ~instances.any(dim=0)).sum()) / float(thing.sum()) if len(instances) else 1.0
        before = float(np.mean([_run_unknown_share(fn, case, 0.7, seed) for seed in range(4)]))
        after = _run_unknown_share(fn, case, 1.0, 0)
        if after < before - 1e-6:
            changes.append("drops to zero" if abs(after - unmatched) <= 1e-6 else "falls")
        else:
            changes.append("rises" if after > before + 1e-6 else "stays")
        lines.append(f"image {index}: {before:.3f} -> {after:.3f}"
                     + (f" (its crowd: {unmatched:.3f})" if unmatched > 0 else ""))
    change = changes[0] if len(set(changes)) == 1 else "falls"
    return change, "; ".join(lines)


@checker
def check_unknown_share(fn, prediction) -> bool:
    """Exercise 5.4: ``fn(semantic, instances, num_stuff, fraction, generator)`` -> the unknown share of thing pixels.

    ``semantic`` int64 [H, W] in UPSNet's layout (stuff ``0..num_stuff-1``, things after, void
    255; crowd pixels keep their thing label); ``instances`` bool [N, H, W] the ground-truth
    instances (crowds have none). The kept instances are
    ``models.upsnet.keep_instances(N, fraction, generator)``; a thing pixel's target is the
    channel of the kept instance covering it, else the unknown channel (kept at every
    fraction here). The share counts thing pixels only (void and stuff left out). Compared
    with :func:`unknown_share` on :func:`target_case` of :data:`UNKNOWN_IMAGES` at keep
    fractions 0.7, 1 and 0.3, each draw from a seeded generator; the answer runs with
    :data:`FORBIDDEN_TARGETS` made unavailable. ``prediction`` (``"rises"``, ``"falls"``,
    ``"stays"`` or ``"drops to zero"``: nothing but crowd and other unmatched thing pixels
    stays unknown) says what the share does from 0.7 to 1; a wrong prediction is reported,
    not failed.

    Rejects:
        - a prediction that is not one of "rises", "falls", "stays", "drops to zero"
        - a draw that does not come from ``generator`` (two calls with equal generators differ)
        - void pixels counted as thing pixels (in the share or in its denominator)
        - stuff pixels in the denominator
        - the dropped instances' pixels kept as targets of their own channels
        - ``int(count * fraction)`` instances kept, without keep_instances' "at least one"
        - crowd pixels left out of the unknown targets, or out of the share altogether
        - ``fraction`` read as the share of instances dropped
        - anything but one number
        - an answer that calls ``models.upsnet.panoptic_targets`` (or ``ch05.unknown_share``)
    """
    text = prediction_choice("5.4", prediction, UNKNOWN_DIRECTIONS)
    cases = {index: target_case(index) for index in UNKNOWN_IMAGES}
    first, again = (_run_unknown_share(fn, cases[33], 0.7, 0, rng_seed) for rng_seed in (1, 2))
    if abs(first - again) > 1e-9:
        raise ExerciseError(f"Exercise 5.4: two calls with equal generators gave {first:.4f} and {again:.4f}: draw "
                            f"the kept instances with keep_instances(len(instances), fraction, generator), passing "
                            f"the `generator` argument.")
    for index, fraction, seed in ((33, 0.7, 0), (33, 1.0, 0), (35, 0.3, 1), (4, 0.7, 2), (4, 1.0, 0)):
        case = cases[index]
        expected = unknown_share(*case, fraction, torch.Generator().manual_seed(seed))
        got = _run_unknown_share(fn, case, fraction, seed)
        if abs(got - expected) <= 1e-6:
            continue
        named = [m for m, variant in UNKNOWN_SHARE_MISTAKES.items()
                 if abs(_unknown_share_variant(*case, fraction, torch.Generator().manual_seed(seed), **variant)
                        - got) <= 1e-6]
        where = (f"Exercise 5.4: on training image {index} ({len(case[1])} instances) at keep fraction {fraction}, "
                 f"the share should be {expected:.4f}, got {got:.4f}")
        raise ExerciseError(f"{where}: {either(named)}." if named else f"{where}.")
    measured, numbers = _measured_change(fn, [(index, cases[index]) for index in (33, 4)])
    all_the_way = (text, measured) == ("falls", "drops to zero")
    report = prediction_report(text, measured, "it falls all the way, to the crowd pixels that no keep fraction "
                                                "gives a channel" if all_the_way else "")
    return passed("5.4", f"Unknown share of the thing pixels, keep fraction 0.7 (mean of four draws) -> 1: "
                         f"{numbers}. {report}")
