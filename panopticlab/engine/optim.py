"""Optimisers and learning-rate schedules built from an :class:`~panopticlab.recipe.OptimConfig`.

Everything is stock ``torch.optim``: the warmup is ``LinearLR``, the decay
``PolynomialLR`` / ``MultiStepLR`` / ``ConstantLR``, chained by ``SequentialLR`` at the
end of the warmup. The scheduler is stepped once per training step (not per epoch), so
the learning rate used at step ``s`` (counting from 0) is, with warmup ``W``, total
``T``, warmup factor ``f`` and base rate ``lr``:

* ``s < W``: ``lr * (f + (1 - f) * s / W)``;
* poly: ``lr * (1 - (s - W) / (T - W)) ** power``;
* step: ``lr * gamma ** (number of milestones <= s)``.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.optim import lr_scheduler

from ..recipe import OptimConfig

__all__ = ["build_optimizer", "build_scheduler", "lr_curve"]


def build_optimizer(parameters: nn.Module | Iterable, config: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser of ``config`` over a model's trainable parameters (or given parameters / groups).

    Parameters with ``requires_grad=False`` (frozen layers) are left out.
    """
    if isinstance(parameters, nn.Module):
        parameters = [p for p in parameters.parameters() if p.requires_grad]
    parameters = list(parameters)
    if not parameters:
        raise ValueError("the optimiser got no trainable parameters (are all of them frozen?)")
    if config.optimizer == "sgd":
        return _with_fast_kernels(torch.optim.SGD, parameters, lr=config.lr, momentum=config.momentum,
                                  nesterov=config.nesterov, weight_decay=config.weight_decay)
    optimizer_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return _with_fast_kernels(optimizer_class, parameters, lr=config.lr, betas=config.betas, eps=config.eps,
                              weight_decay=config.weight_decay)


def _with_fast_kernels(optimizer_class, parameters: list, **options) -> torch.optim.Optimizer:
    """The optimiser with its fused kernel where torch has one for these parameters, else its foreach one.

    On a CPU torch's default is one small loop per parameter tensor: for the tiny models
    an AdamW step took longer than their forward and backward passes together; the fused
    kernel (the same update, one pass over all tensors) takes about 1 % of that.
    """
    try:
        return optimizer_class(parameters, fused=True, **options)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the kernel
        return optimizer_class(parameters, foreach=True, **options)


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig,
                    total_steps: int) -> lr_scheduler.LRScheduler:
    """Warmup then decay, to be stepped once after every optimiser step.

    Args:
        optimizer: built with :func:`build_optimizer`; its ``lr`` is the base rate.
        config: the schedule.
        total_steps: length of the run; the poly decay reaches 0 there.

    Raises:
        ValueError: the warmup does not end before ``total_steps``.
    """
    total_steps = int(total_steps)
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    warmup = config.warmup_steps
    if warmup >= total_steps:
        raise ValueError(f"the warmup ({warmup} steps) must end before the run does ({total_steps} steps)")

    # The decay scheduler counts from 0 at the end of the warmup (SequentialLR restarts it there).
    if config.schedule == "poly":
        decay = lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps - warmup, power=config.poly_power)
    elif config.schedule == "step":
        decay = lr_scheduler.MultiStepLR(optimizer, milestones=[m - warmup for m in config.milestones],
                                         gamma=config.gamma)
    else:
        decay = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return decay
    warmup_scheduler = lr_scheduler.LinearLR(optimizer, start_factor=config.warmup_factor, end_factor=1.0,
                                             total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [warmup_scheduler, decay], milestones=[warmup])


def lr_curve(config: OptimConfig, total_steps: int) -> np.ndarray:
    """The learning rate of each step ``0 .. total_steps - 1``, read off the real scheduler.

    Returns:
        (total_steps,) float64 array; for plotting a schedule before training with it.
    """
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([parameter], config)
    scheduler = build_scheduler(optimizer, config, total_steps)
    rates = np.empty(total_steps, dtype=np.float64)
    for step in range(total_steps):
        rates[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()  # keeps torch from warning that the scheduler stepped first
        scheduler.step()
    return rates
