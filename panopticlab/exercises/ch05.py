"""Checkers for chapter 5: UPSNet's unknown channel and the pasting of a mask into its box."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..postprocess.upsnet import box_cells, crop_to_boxes, panoptic_logits, paste_mask_logits, unknown_logits
from .checking import ExerciseError, call, checker, passed
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
    "postprocess.upsnet.unknown_logits": unknown_logits,
    "postprocess.upsnet.panoptic_logits": panoptic_logits,
}


@checker
def check_unknown_channel(fn) -> bool:
    """Exercise 5.1: ``fn(semantic_logits, num_stuff, x_mask)`` -> the unknown channel [H, W].

    ``semantic_logits`` float [C, H, W] (stuff first), ``x_mask`` float [N, H, W] (each
    instance's class channel inside its box, 0 outside). Checked with 3, 1 and 0 instances
    against :func:`~panopticlab.postprocess.upsnet.unknown_logits`; the answer runs with
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
    "postprocess.upsnet.paste_mask_logits": paste_mask_logits,
    "postprocess.upsnet.box_cells": box_cells,
    "ch05._paste_variant": _paste_variant,
}


@checker
def check_paste_mask(fn) -> bool:
    """Exercise 5.2: ``fn(mask_logits, box, size)`` -> ``Y_mask`` float [H, W].

    ``mask_logits`` float [28, 28]; ``box`` ``(x1, y1, x2, y2)`` floats in pixel-edge
    coordinates; ``size`` ``(H, W)``. The box covers columns ``floor(x1) .. ceil(x2) - 1``
    (rows likewise); the logits are resized bilinearly (``align_corners=False``) to those
    cells and pasted, 0 elsewhere; parts outside the map are cut off. Compared with
    :func:`~panopticlab.postprocess.upsnet.paste_mask_logits`; the answer runs with
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
