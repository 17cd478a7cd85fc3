"""Checkers for chapter 4: Panoptic FPN's semantic branch, level by level, and what λ_s does to the backbone."""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import PanopticDataset, collate_panoptic
from ..data.synthetic import SYNTHETIC_CATEGORIES, SyntheticPanoptic
from ..models import panoptic_fpn
from ..models.semantic_fpn import SemanticFPNHead, upsampling_stages
from .checking import ExerciseError, call, checker, either, passed, prediction_choice, prediction_report
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


# --- Exercise 4.3: predict, then measure what λ_s does to the shared backbone ---------------------
SHARE_WEIGHTS = (0.05, 0.5, 5.0)
#: The seed the checker passes to the answer (the RPN and RoI heads sample at random).
SHARE_SEED = 3
#: The predictions 4.3 accepts.
SHARE_DIRECTIONS = ("rises", "falls", "stays")


def share_case(seed: int = 403):
    """A tiny Panoptic FPN in train mode (random weights drawn from ``seed``; its own
    ``semantic_loss_weight`` the published 0.5) and a batch of two 64 px training images of
    the built-in data: ``(model, images, targets)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = panoptic_fpn.for_categories(SYNTHETIC_CATEGORIES, "tiny")
    dataset = PanopticDataset(SyntheticPanoptic(2, 64, split="train"), SYNTHETIC_CATEGORIES,
                              targets=("semantic", "instances"))
    images, targets = collate_panoptic([dataset[0], dataset[1]])
    return model.train(), images, targets


@dataclass(frozen=True)
class GradientNorms:
    """What every reading of 4.3 needs from one training step (λ_s = 1, one seed).

    ``semantic``/``detector``: global L2 norms of the gradients of L_s and of L_det (the sum
    of the detector's five losses) on ``model.backbone``'s parameters; ``dot`` their inner
    product; ``*_all`` on every parameter of the model; ``*_body`` on the ResNet body alone;
    ``*_per_tensor`` the sums of the per-tensor norms on the backbone.
    """

    semantic: float
    detector: float
    dot: float
    semantic_all: float
    detector_all: float
    semantic_body: float
    detector_body: float
    semantic_per_tensor: float
    detector_per_tensor: float


def _gradient_norms(model, images, targets, seed: int) -> GradientNorms:
    """One step of a copy of ``model`` at λ_s = 1, seeded with ``seed``: its :class:`GradientNorms`."""
    model = copy.deepcopy(model).train()
    model.config.semantic_loss_weight = 1.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        losses = model(images, targets)
    params = [p for p in model.parameters() if p.requires_grad]
    detector = sum(value for name, value in losses.items() if name != "loss_semantic")
    semantic = torch.autograd.grad(losses["loss_semantic"], params, retain_graph=True, allow_unused=True)
    det = torch.autograd.grad(detector, params, allow_unused=True)
    grads = {id(p): (torch.zeros_like(p) if s is None else s.double(), torch.zeros_like(p) if d is None else d.double())
             for p, s, d in zip(params, semantic, det)}

    def of(module):
        return [grads[id(p)] for p in module.parameters() if id(p) in grads]

    def norm(pairs, which):
        return math.sqrt(sum(float((pair[which] ** 2).sum()) for pair in pairs))

    backbone, body, every = of(model.backbone), of(model.backbone.body), list(grads.values())
    return GradientNorms(semantic=norm(backbone, 0), detector=norm(backbone, 1),
                         dot=sum(float((s * d).sum()) for s, d in backbone),
                         semantic_all=norm(every, 0), detector_all=norm(every, 1),
                         semantic_body=norm(body, 0), detector_body=norm(body, 1),
                         semantic_per_tensor=sum(float(s.norm()) for s, _ in backbone),
                         detector_per_tensor=sum(float(d.norm()) for _, d in backbone))


def _share(semantic: float, detector: float) -> float:
    return semantic / (semantic + detector)


def semantic_share(norms: GradientNorms, weight: float) -> float:
    """The semantic loss's share of the gradient on the backbone at λ_s = ``weight``:
    ||∇(λ_s L_s)|| / (||∇(λ_s L_s)|| + ||∇L_det||); the gradient of λ_s L_s is λ_s ∇L_s."""
    return _share(weight * norms.semantic, norms.detector)


SHARE_MISTAKES = {
    "the gradients are taken on the shared backbone's parameters (model.backbone), not on all the model's "
    "parameters (the heads' own gradients are not shared)":
        lambda n, w, own: _share(w * n.semantic_all, n.detector_all),
    "the backbone is model.backbone: the ResNet body and the FPN, not model.backbone.body alone":
        lambda n, w, own: _share(w * n.semantic_body, n.detector_body),
    "the share must use the `weight` argument: set model.config.semantic_loss_weight = weight before the forward "
    "pass (your share stays that of the model's own weight)":
        lambda n, w, own: _share(own * n.semantic, n.detector),
    "loss_semantic already carries the model's weight: set model.config.semantic_loss_weight = weight instead of "
    "multiplying it by `weight` once more":
        lambda n, w, own: _share(own * w * n.semantic, n.detector),
    "the detector's part is the gradient of the detector's five losses alone, not of the total loss (that counts "
    "the semantic term twice; or .grad was read after a second backward() without zeroing it)":
        lambda n, w, own: _share(w * n.semantic, math.sqrt(max(n.detector ** 2 + 2 * w * n.dot
                                                                + (w * n.semantic) ** 2, 0.0))),
    "each part is the global L2 norm of its gradient (the square root of the sum of squares over all the "
    "backbone's tensors), not the squared norm":
        lambda n, w, own: _share((w * n.semantic) ** 2, n.detector ** 2),
    "each part is the global L2 norm over all the backbone's tensors together, not the sum of the per-tensor norms":
        lambda n, w, own: _share(w * n.semantic_per_tensor, n.detector_per_tensor),
    "the share is the semantic part over the sum of both, not the detector's share":
        lambda n, w, own: _share(n.detector, w * n.semantic),
    "the share is ||semantic|| / (||semantic|| + ||detector||), not the ratio ||semantic|| / ||detector||":
        lambda n, w, own: w * n.semantic / n.detector,
}


def _as_float(got, exercise: str, what: str) -> float:
    try:
        value = float(got.detach() if isinstance(got, torch.Tensor) else got)
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseError(f"Exercise {exercise}: return {what} as one number, got {type(got).__name__}.") from None
    if not math.isfinite(value):
        raise ExerciseError(f"Exercise {exercise}: {what} must be a finite number, got {value}.")
    return value


def _direction(values, tolerance: float = 1e-6) -> str:
    """``"rises"``, ``"falls"`` or ``"stays"`` for values measured at increasing settings."""
    steps = [b - a for a, b in zip(values, values[1:])]
    if all(step > tolerance for step in steps):
        return "rises"
    if all(step < -tolerance for step in steps):
        return "falls"
    if all(abs(step) <= tolerance for step in steps):
        return "stays"
    return "rises, then falls" if steps[0] > 0 else "falls, then rises"


@contextmanager
def _one_thread():
    """Torch on one thread inside the block: at 64 px more threads buy nothing, and on busy
    shared cores torch's thread pool waits more than it works (a check measured 0.5 s on one
    thread, over 20 s on two busy ones)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: 4.3 asks for a measurement the checker also makes: its answers run without its reference.
FORBIDDEN_SHARE = {
    "ch04._gradient_norms": _gradient_norms,
    "ch04.semantic_share": semantic_share,
}


def _run_share(fn, model, images, targets, weight, seed, rng_seed):
    """The answer on a fresh copy of ``model`` (grads unset), with torch's global generator
    at ``rng_seed`` and restored afterwards."""
    candidate = copy.deepcopy(model).train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rng_seed)
        with forbidden("4.3", functions=FORBIDDEN_SHARE):
            got = call("4.3", fn, candidate, copy.deepcopy(images), copy.deepcopy(targets), weight, seed)
    return _as_float(got, "4.3", "the share")


@checker
def check_gradient_share(fn, prediction) -> bool:
    """Exercise 4.3: ``fn(model, images, targets, weight, seed)`` -> L_s's share of the backbone's gradient.

    The share is ||∇(λ_s L_s)|| / (||∇(λ_s L_s)|| + ||∇L_det||) at λ_s = ``weight``: L_det is
    the sum of the detector's five losses, the gradients are taken on the parameters of
    ``model.backbone`` (the ResNet body and the FPN) that require one, and each norm is the
    global L2 norm over all those tensors. ``fn`` seeds torch with ``seed``
    (``torch.manual_seed``) right before the forward pass, since the RPN and RoI heads sample
    at random. ``prediction`` (``"rises"``, ``"falls"`` or ``"stays"``) says what the share does
    as λ_s goes 0.05 -> 0.5 -> 5; a wrong prediction is reported, not failed. Checked on
    :func:`share_case` at the three weights; each call gets a fresh copy of the model. The
    answer runs with :data:`FORBIDDEN_SHARE` made unavailable.

    Rejects:
        - a prediction that is not one of "rises", "falls", "stays"
        - a share that changes from call to call (torch not seeded with ``seed`` before the forward pass)
        - the gradients on all the model's parameters instead of the backbone's
        - the ResNet body alone instead of ``model.backbone`` (body and FPN)
        - the weight not applied (the share of the model's own λ_s), or applied on top of it
        - the total loss's gradient as the detector's part (the semantic term counted twice)
        - squared norms, or per-tensor norms summed, instead of the global L2 norm
        - the detector's share instead of the semantic one, or the ratio instead of the share
        - anything but one number
        - an answer that calls ``ch04._gradient_norms`` or ``ch04.semantic_share``
    """
    predicted = prediction_choice("4.3", prediction, SHARE_DIRECTIONS)
    with _one_thread():
        return _check_gradient_share(fn, predicted)


def _check_gradient_share(fn, predicted: str) -> bool:
    model, images, targets = share_case()
    own = model.config.semantic_loss_weight
    norms = _gradient_norms(model, images, targets, SHARE_SEED)
    first, again = (_run_share(fn, model, images, targets, SHARE_WEIGHTS[0], SHARE_SEED, rng) for rng in (1, 2))
    if abs(first - again) > 1e-6 * max(1.0, abs(first)):
        raise ExerciseError(f"Exercise 4.3: two calls with the same arguments gave {first:.6f} and {again:.6f}. The "
                            f"RPN and RoI heads sample anchors and proposals at random: call "
                            f"torch.manual_seed(seed) right before the forward pass.")
    measured = []
    for weight in SHARE_WEIGHTS:
        got = first if weight == SHARE_WEIGHTS[0] else _run_share(fn, model, images, targets, weight, SHARE_SEED, 1)
        expected = semantic_share(norms, weight)
        if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
            measured.append(got)
            continue
        named = [m for m, variant in SHARE_MISTAKES.items()
                 if not math.isclose(variant(norms, weight, own), expected, rel_tol=1e-3)
                 and math.isclose(got, variant(norms, weight, own), rel_tol=1e-4, abs_tol=1e-6)]
        where = f"Exercise 4.3: at weight {weight} the share should be {expected:.4f}, got {got:.4f}"
        raise ExerciseError(f"{where}: {either(named)}." if named else
                            f"{where}. Seed with the `seed` argument right before the forward pass, and take "
                            f"||∇(weight L_s)|| / (||∇(weight L_s)|| + ||∇L_det||) on model.backbone's "
                            f"parameters.")
    direction = _direction(measured)
    shares = ", ".join(f"{w:g} -> {s:.3f}" for w, s in zip(SHARE_WEIGHTS, measured))
    return passed("4.3", f"The semantic share of the backbone's gradient: {shares}: it {direction}. "
                         + prediction_report(predicted, direction))
