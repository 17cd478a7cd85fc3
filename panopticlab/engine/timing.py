"""What a model costs in time: seconds per training step and per image at inference
(the whole ``inference``, or its network and its post-processing apart).

The chapters compare models by these numbers (chapter 4: the baseline's two networks
against Panoptic FPN's one). Both are wall-clock means on the current device after a
warm-up, so they depend on the machine and its load: compare numbers measured in one
run, never with a number measured elsewhere.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..data.categories import CategorySet
from ..data.synthetic import SYNTHETIC_CATEGORIES
from ..models.common import eval_mode
from ..recipe import TrainRecipe
from .trainer import resolve_device

__all__ = ["inference_seconds", "seconds_per_image", "seconds_per_step", "steps_for_budget"]


def seconds_per_step(model: nn.Module, recipe: TrainRecipe, categories: CategorySet = SYNTHETIC_CATEGORIES,
                     steps: int = 6, device: str | torch.device | None = None) -> float:
    """Mean wall time of one training step of ``recipe`` (data, forward, backward, update).

    Trains ``model`` for ``steps`` steps (it changes: pass a fresh copy) and averages all
    but the first two (warm-up).

    Raises:
        ValueError: fewer than 3 steps.
    """
    from .recipes import fit  # recipes imports the model table, which imports the engine's config

    if steps < 3:
        raise ValueError(f"steps must be at least 3 (two warm-up steps are not counted), got {steps}")
    stamps: list[float] = []
    short = recipe.replace(steps=steps, optim=recipe.optim.replace(warmup_steps=0))  # the time of a step is the same
    fit(model, short, categories, progress=False, device=device,
        callback=lambda trainer: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[1]) / (len(stamps) - 2)


def steps_for_budget(recipes: dict[str, TrainRecipe], seconds: float, categories: CategorySet = SYNTHETIC_CATEGORIES,
                     device: str | torch.device | None = None, timed_steps: int = 8,
                     step_seconds: dict[str, float] | None = None) -> dict[str, tuple[int, float]]:
    """How many steps each network of a model trains for so that the whole takes about ``seconds``.

    Each network's step is timed on this machine (:func:`seconds_per_step`, ``timed_steps``
    steps of a fresh network built as its recipe trains it, on the built-in data at the
    recipe's size), unless ``step_seconds`` gives its time per step (say, as a whole earlier
    run realised it: a few timed steps predict a run only to 10-30 % on a shared machine).
    A model of several networks (the baseline) shares the budget between them as their
    recipes share their steps' time, so each keeps its share of the model's training.
    Comparing methods at one budget this way compares what each reaches in the same time
    on the same machine; the timing steps are not counted in the budget.

    Returns:
        ``{name: (steps, seconds per step)}``, at least one step each.
    """
    from .runs import build_network

    if not seconds > 0:
        raise ValueError(f"the budget must be a positive number of seconds, got {seconds}")
    timed = dict(step_seconds) if step_seconds is not None else {
        name: seconds_per_step(build_network(name, categories, recipe), recipe, categories, timed_steps, device)
        for name, recipe in recipes.items()}
    # the recipes' own split of the model's time between its networks, scaled to the budget
    planned = sum(recipe.steps * timed[name] for name, recipe in recipes.items())
    return {name: (max(1, int(seconds * recipe.steps / planned)), timed[name]) for name, recipe in recipes.items()}


@torch.no_grad()
def seconds_per_image(model: nn.Module, images: torch.Tensor, batch_size: int = 1, warmup: int = 1,
                      device: str | torch.device | None = None) -> float:
    """Mean wall time of ``model.inference`` per image: the network and its post-processing.

    Args:
        images: float [N, 3, H, W] in [0, 1]; run in batches of ``batch_size``.
        warmup: batches run first and not counted.
    """
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty [N, 3, H, W] tensor, got {tuple(images.shape)}")
    device = resolve_device(device)
    model = model.to(device)
    batches = [images[i:i + batch_size].to(device) for i in range(0, len(images), batch_size)]
    with eval_mode(model):
        for batch in batches[:warmup]:
            model.inference(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for batch in batches:
            model.inference(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / len(images)


@torch.no_grad()
def inference_seconds(model: nn.Module, images: torch.Tensor, batch_size: int = 1, warmup: int = 1,
                      device: str | torch.device | None = None) -> dict[str, float]:
    """Mean wall time per image of the network and of the post-processing, apart.

    The network is ``model(batch)`` in eval mode (every model of the table returns its raw
    outputs there), the post-processing ``model.postprocess(outputs)`` on those outputs:
    the two steps of ``model.inference``, timed one after the other on the same batches.

    Args:
        images: float [N, 3, H, W] in [0, 1]; run in batches of ``batch_size``.
        warmup: batches run first and not counted.

    Returns:
        ``{"network": s, "postprocess": s, "total": s}`` seconds per image.
    """
    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty [N, 3, H, W] tensor, got {tuple(images.shape)}")
    if not callable(getattr(model, "postprocess", None)):
        raise TypeError(f"{type(model).__name__} has no postprocess(outputs): its network and post-processing "
                        f"cannot be timed apart (time model.inference with seconds_per_image)")
    device = resolve_device(device)
    model = model.to(device)
    batches = [images[i:i + batch_size].to(device) for i in range(0, len(images), batch_size)]
    network = postprocess = 0.0
    with eval_mode(model):
        for batch in batches[:warmup]:
            model.postprocess(model(batch))
        for batch in batches:
            start = time.perf_counter()
            outputs = model(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            middle = time.perf_counter()
            model.postprocess(outputs)
            network += middle - start
            postprocess += time.perf_counter() - middle
    count = len(images)
    return {"network": network / count, "postprocess": postprocess / count, "total": (network + postprocess) / count}
