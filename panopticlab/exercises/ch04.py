"""Checkers for chapter 4: Panoptic FPN's semantic branch, level by level."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.semantic_fpn import SemanticFPNHead, upsampling_stages
from .checking import ExerciseError, call, checker, passed
from .forbidden import forbidden

STRIDES = (4, 8, 16, 32, 64)  # P2-P5, and a P6 the branch could also take

#: 4.1 asks for the layout the package computes: its answers run without these.
FORBIDDEN_LAYOUT = {
    "models.semantic_fpn.upsampling_stages": upsampling_stages,
    "models.semantic_fpn.SemanticFPNHead": SemanticFPNHead,
}


@checker
def check_branch_layout(fn) -> bool:
    """Exercise 4.1: ``fn(stride)`` -> ``(convs, upsamplings)`` of the level of that stride.

    Each stage of a level is a 3x3 conv (+ GroupNorm + ReLU) followed by a 2x upsampling,
    until the level reaches stride 4; the stride-4 level gets one conv and no upsampling.
    The answer runs with :data:`FORBIDDEN_LAYOUT` made unavailable.
    """
    for stride in STRIDES:
        expected = (max(1, upsampling_stages(stride)), upsampling_stages(stride))
        with forbidden("4.1", functions=FORBIDDEN_LAYOUT):
            got = call("4.1", fn, stride)
        try:
            convs, ups = (int(v) for v in got)
        except (TypeError, ValueError):
            raise ExerciseError(f"Exercise 4.1: return a pair (convs, upsamplings), got {got!r}.") from None
        if (convs, ups) == expected:
            continue
        ends_at = stride / 2 ** ups
        if ends_at != 4:
            hint = (f" After {ups} upsampling(s) by 2 this level would sit at stride {ends_at:g}, not at the "
                    f"common stride 4 where the four maps are summed.")
            if ups == int(math.log2(stride)):
                hint += " The branch stops at stride 4, not at stride 1: count log2(stride / 4)."
        elif stride == 4 and convs == 0:
            hint = " The stride-4 level is not upsampled, but it still gets one 3x3 conv (to 128 channels)."
        else:
            hint = " Every upsampling follows a conv: a level has as many convs as upsamplings (at least one conv)."
        raise ExerciseError(f"Exercise 4.1: the level of stride {stride}: expected {expected[0]} conv(s) and "
                            f"{expected[1]} upsampling(s), got {convs} and {ups}.{hint}")
    return passed("4.1", "P5: 3 stages, P4: 2, P3: 1, P2: one conv; every level ends at stride 4.")


def _level_variant(x, weights, num_groups, upsample, *, norm=True, relu=True, mode="bilinear",
                   align_corners=False, upsample_first=False):
    """One level of the branch, or a typical mistake in it (the checker names the one a wrong answer makes)."""
    for conv_weight, gn_weight, gn_bias in weights:
        if upsample and upsample_first:
            x = F.interpolate(x, scale_factor=2, mode=mode, align_corners=align_corners if mode != "nearest" else None)
        x = F.conv2d(x, conv_weight, padding=1)
        if norm:
            x = F.group_norm(x, num_groups, gn_weight, gn_bias)
        if relu:
            x = F.relu(x)
        if upsample and not upsample_first:
            x = F.interpolate(x, scale_factor=2, mode=mode, align_corners=align_corners if mode != "nearest" else None)
    return x


MISTAKES = {
    "the upsampling is bilinear (mode='bilinear'), not nearest": dict(mode="nearest"),
    "bilinear upsampling with align_corners=False (the branch's setting)": dict(align_corners=True),
    "each stage convolves first and upsamples after (the conv runs at the coarser, cheaper resolution)":
        dict(upsample_first=True),
    "every conv is followed by GroupNorm (F.group_norm with num_groups)": dict(norm=False),
    "GroupNorm is followed by a ReLU": dict(relu=False),
}


#: 4.2 asks for one level of the package's branch: its answers run without the branch
#: (and without this module's own re-implementation of it).
FORBIDDEN_LEVEL = {
    "models.semantic_fpn.SemanticFPNHead": SemanticFPNHead,
    "ch04._level_variant": _level_variant,
}


def level_case(seed: int = 404):
    """A small branch with random normalisation parameters, and features for its levels."""
    generator = torch.Generator().manual_seed(seed)
    head = SemanticFPNHead(8, 3, SemanticFPNHead.strides_of(["p2", "p3", "p4", "p5"]), channels=8, norm_groups=4)
    with torch.no_grad():
        for module in head.modules():
            if isinstance(module, nn.GroupNorm):
                module.weight.copy_(1 + 0.5 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.5 * torch.randn(module.bias.shape, generator=generator))
    features = {name: torch.randn(2, 8, 64 // stride, 48 // stride, generator=generator)
                for name, stride in head.level_strides.items()}
    return head.eval(), features


def stage_weights(sequence: nn.Sequential) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(conv weight, GroupNorm weight, GroupNorm bias)`` of each stage of one level."""
    convs = [m for m in sequence.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in sequence.modules() if isinstance(m, nn.GroupNorm)]
    return [(c.weight.detach(), n.weight.detach(), n.bias.detach()) for c, n in zip(convs, norms)]


@checker
def check_semantic_level(fn) -> bool:
    """Exercise 4.2: ``fn(x, weights, num_groups, upsample)`` -> one level of the branch.

    ``x`` float [B, C, h, w]; ``weights`` a list of ``(conv_weight, gn_weight, gn_bias)``,
    one per stage; each stage is a 3x3 conv (padding 1, no bias), GroupNorm, ReLU and, when
    ``upsample``, a 2x bilinear upsampling (``align_corners=False``). Compared with the
    package's :class:`~panopticlab.models.semantic_fpn.SemanticFPNHead` on every level; the
    answer runs with :data:`FORBIDDEN_LEVEL` made unavailable.
    """
    head, features = level_case()
    for name, sequence in head.scale_heads.items():
        upsample = upsampling_stages(head.level_strides[name]) > 0
        weights = stage_weights(sequence)
        with torch.no_grad():
            expected = sequence(features[name])
            with forbidden("4.2", functions=FORBIDDEN_LEVEL):
                got = call("4.2", fn, features[name].clone(), weights, 4, upsample)
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"Exercise 4.2: return a tensor, got {type(got).__name__}.")
        if tuple(got.shape) != tuple(expected.shape):
            raise ExerciseError(f"Exercise 4.2: level {name} (stride {head.level_strides[name]}): expected shape "
                                f"{tuple(expected.shape)} (stride 4), got {tuple(got.shape)}. Each stage upsamples 2x "
                                f"when `upsample` is true; the stride-4 level keeps its size.")
        if torch.allclose(got, expected, atol=1e-5):
            continue
        hint = ""
        for mistake, variant in MISTAKES.items():
            wrong = _level_variant(features[name], weights, 4, upsample, **variant)
            if wrong.shape == got.shape and torch.allclose(got, wrong, atol=1e-5):
                hint = f" Your result matches a branch where this is missed: {mistake}."
                break
        error = float((got - expected).abs().max())
        raise ExerciseError(f"Exercise 4.2: level {name} (stride {head.level_strides[name]}) differs from the "
                            f"package's by up to {error:.3g}.{hint}")
    return passed("4.2", "Your level equals the package's on P2-P5.")
