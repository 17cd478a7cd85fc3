"""The training loop every panoptic model of the package plugs into.

A model is an ``nn.Module`` whose training-mode ``model(images, targets)`` returns a
dict of named scalar losses. One step is: forward under autocast (CUDA), weighted sum
of the losses, backward through a gradient scaler, optional gradient clipping,
optimiser and scheduler step, and a line in the :class:`~.history.History`.

Runs are resumable exactly. The data order of an epoch is a function of
``(seed, epoch)`` (:class:`~.sampling.ResumableSampler`) and the trainer records the
epoch and the samples consumed in it; a checkpoint stores those together with every
state and random generator (:mod:`.checkpoint`). ``fit`` looks for the checkpoint of
its folder and continues from it, so a run killed at any point and started again with
the same arguments ends with the same weights and history, bit for bit, as one that
was never interrupted.

Under ``torchrun`` the model is wrapped in ``DistributedDataParallel``: each process
takes ``batch_size`` images of its own shard (the global batch is ``batch_size x
world_size``), the gradients are averaged, the logged losses are averaged over the
processes, and only rank 0 shows progress and writes checkpoints. On GPUs the
BatchNorms become ``SyncBatchNorm`` (statistics over the global batch, as Panoptic-DeepLab
is published); on the CPU, where torch has no synchronised BatchNorm, each process
normalises with its own shard's statistics. After the last step every process holds
rank 0's running statistics, the checkpoint's.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.atomic import check_writable
from ..profiles import seed_everything
from .checkpoint import (
    CHECKPOINT_NAME,
    capture_rng_state,
    find_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from ..recipe import OptimConfig
from .distributed import (
    all_gather_objects,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    check_on_main_process,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
    wrap_model,
)
from .history import History
from .optim import build_optimizer, build_scheduler
from .sampling import ResumableSampler

__all__ = ["Trainer", "train", "move_to_device", "resolve_device"]

RESERVED_NAMES = ("loss", "lr", "grad_norm")  # series the trainer itself logs


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; by default CUDA when present, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as error:  # torch's message lists the known device types
        raise ValueError(f"unknown device {device!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} was asked for, but torch sees no CUDA device on this machine")
    return device


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors inside nested dicts / lists / tuples moved to ``device``; anything else kept as is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


def _find_resumable_sampler(loader: Iterable) -> ResumableSampler | None:
    for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if isinstance(sampler, ResumableSampler):
            return sampler
    return None


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Trainer:
    """Trains ``model`` for ``steps`` optimiser steps on batches ``(images, targets)`` from ``loader``.

    Args:
        model: ``model(images, targets)`` in train mode returns ``{name: scalar loss tensor}``.
        loader: yields ``(images FloatTensor[B, 3, H, W] in [0, 1], targets)``; build it
            with :func:`~.sampling.make_train_loader` for a resumable data order (required
            with ``checkpoint_dir``). Iterated again for each epoch.
        config: optimiser and schedule.
        steps: optimiser steps of the whole run (the schedule's length).
        device: default CUDA when present, else the CPU.
        checkpoint_dir: folder of the run's checkpoint (``last.pt``); ``None``: no checkpoints.
            Checked at once (:func:`~panopticlab.data.atomic.check_writable`): a read-only
            folder, a file in its place or a folder named ``last.pt`` is an ``OSError`` here,
            not after the first ``checkpoint_every`` steps.
        checkpoint_every: save every this many steps; the last step is always saved.
        grad_clip: clip the global gradient norm to this value (and log it as ``grad_norm``).
        amp: mixed precision (float16 autocast + gradient scaling); default on CUDA only.
        loss_weights: ``{loss name: weight}``; unnamed losses weigh 1.
        callback: ``callback(trainer)`` after every step, e.g. a periodic evaluation
            (:class:`~.evaluator.PeriodicEvaluation`) that logs metrics into ``trainer.history``.
        seed: seeds Python, NumPy and torch at the start of a fresh run (rank ``r`` uses
            ``seed + r``) and the data order of every epoch.
        progress: show a tqdm bar with the running losses (rank 0 only).
        find_unused_parameters: passed to ``DistributedDataParallel``.
        sync_batchnorm: under ``torchrun``, turn the model's BatchNorms into
            ``SyncBatchNorm`` (in place); default on CUDA, where torch supports it.
    """

    def __init__(self, model: nn.Module, loader: Iterable, config: OptimConfig, steps: int,
                 device: str | torch.device | None = None, *, checkpoint_dir: str | os.PathLike | None = None,
                 checkpoint_every: int = 100, grad_clip: float | None = None, amp: bool | None = None,
                 loss_weights: Mapping[str, float] | None = None, callback: Callable[["Trainer"], None] | None = None,
                 seed: int = 0, progress: bool = True, find_unused_parameters: bool = False,
                 sync_batchnorm: bool | None = None):
        self.steps = int(steps)
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        if int(checkpoint_every) < 1:
            raise ValueError(f"checkpoint_every must be positive, got {checkpoint_every}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
        self.device = resolve_device(device)
        self.amp = self.device.type == "cuda" if amp is None else bool(amp)
        if self.amp and self.device.type != "cuda":
            raise ValueError(f"mixed precision (amp=True) needs a CUDA device; the device is {self.device}")

        if sync_batchnorm is None:
            sync_batchnorm = self.device.type == "cuda"
        if sync_batchnorm and is_distributed():
            if self.device.type != "cuda":
                raise ValueError(f"SyncBatchNorm needs CUDA devices; the device is {self.device}")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same state_dict keys as BatchNorm
        self.module = model.to(self.device)
        self.model = wrap_model(self.module, self.device, find_unused_parameters)
        self.loader = loader
        self.sampler = _find_resumable_sampler(loader)
        self.config = config
        self.optimizer = build_optimizer(self.module, config)
        self.scheduler = build_scheduler(self.optimizer, config, self.steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if self.checkpoint_dir is not None and self.sampler is None:
            raise ValueError("checkpoints need a resumable data order: build the loader with "
                             "panopticlab.engine.make_train_loader (its sampler is a ResumableSampler)")
        if self.checkpoint_dir is not None:  # now, not at the first save after some training
            check_on_main_process(lambda: check_writable(self.checkpoint_dir / CHECKPOINT_NAME, "checkpoint"))
        self.checkpoint_every = int(checkpoint_every)
        self.grad_clip = grad_clip
        self.loss_weights = dict(loss_weights or {})
        self.callback = callback
        self.seed = int(seed)
        self.progress = progress

        self.history = History()
        self.step = 0  # optimiser steps done
        self.epoch = 0
        self.samples_in_epoch = 0  # samples of the current epoch this process has consumed

    # --- the loop ----------------------------------------------------------------------
    def fit(self, resume: bool = True) -> History:
        """Train until ``steps``; continue from the folder's checkpoint when ``resume`` and one exists.

        Returns:
            the history of the whole run (including the steps before a resume).
        """
        checkpoint = find_checkpoint(self.checkpoint_dir) if resume and self.checkpoint_dir is not None else None
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        elif self.step == 0:
            seed_everything(self.seed + get_rank())

        bar = tqdm(total=self.steps, initial=self.step, desc="train", unit="step",
                   disable=not (self.progress and is_main_process()), dynamic_ncols=True)
        try:
            while self.step < self.steps:
                saw_batch = False
                for images, targets in self._epoch_batches():
                    saw_batch = True
                    self.history.log(self.step + 1, self.train_step(images, targets))
                    self.step += 1
                    self.samples_in_epoch += len(images)
                    if self.callback is not None:
                        self.callback(self)
                    if self.checkpoint_dir is not None and (self.step % self.checkpoint_every == 0
                                                            or self.step == self.steps):
                        self.save_checkpoint()
                    bar.update(1)
                    bar.set_postfix_str(self._progress_text(), refresh=False)
                    if self.step >= self.steps:
                        break
                else:
                    if not saw_batch and self.samples_in_epoch == 0:
                        raise ValueError("the loader produced no batch in a whole epoch; is the dataset empty, "
                                         "or smaller than one batch with drop_last=True?")
                    self.epoch += 1
                    self.samples_in_epoch = 0
        finally:
            bar.close()
        broadcast_buffers(self.module)
        return self.history

    def _epoch_batches(self) -> Iterator:
        """An iterator over the rest of the current epoch."""
        if self.sampler is not None:
            self.sampler.set_position(self.epoch, self.samples_in_epoch)
        dataset = getattr(self.loader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.epoch)
        # Creating a DataLoader iterator draws a worker seed from torch's global generator;
        # drawing it from a fork seeded by (seed, epoch) keeps the global stream (dropout,
        # the model's own sampling) the same whether or not the run was resumed mid-epoch.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_epoch_seed(self.seed, self.epoch))
            return iter(self.loader)

    def train_step(self, images: torch.Tensor, targets: Any) -> dict[str, float]:
        """One optimiser step on one batch.

        Returns:
            the values to log: ``loss`` (weighted total), each named loss, ``lr`` (the
            rate used by this step) and ``grad_norm`` (with ``grad_clip``); losses are
            averaged over the processes.
        """
        self.model.train()
        images = move_to_device(images, self.device)
        targets = move_to_device(targets, self.device)
        with torch.autocast(self.device.type, enabled=self.amp):
            losses = self.model(images, targets)
        losses = self._checked_losses(losses)
        total = sum(self.loss_weights.get(name, 1.0) * loss.float() for name, loss in losses.items())

        # One reduction for all logged values; NaN on any process stops every process here.
        logged = all_reduce_mean(torch.stack([total.detach(), *(loss.detach().float() for loss in losses.values())]))
        logged = logged.cpu().tolist()
        if not all(math.isfinite(value) for value in logged):
            bad = [name for name, value in zip(["loss", *losses], logged) if not math.isfinite(value)]
            raise FloatingPointError(f"step {self.step + 1}: loss {', '.join(bad)} is not finite "
                                     f"({dict(zip(['loss', *losses], logged))}); lower the learning rate "
                                     f"or clip the gradients (grad_clip)")
        values = {"loss": logged[0], **dict(zip(losses, logged[1:])), "lr": self.optimizer.param_groups[0]["lr"]}

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            values["grad_norm"] = float(nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return values

    def _checked_losses(self, losses: Any) -> dict[str, torch.Tensor]:
        where = f"step {self.step + 1}: {type(self.module).__name__}(images, targets)"
        if not isinstance(losses, Mapping) or not losses:
            raise TypeError(f"{where} must return a non-empty dict of named scalar losses in train mode, "
                            f"got {type(losses).__name__}")
        for name, loss in losses.items():
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise TypeError(f"{where}: loss {name!r} must be a scalar tensor, got {shape}")
            if name in RESERVED_NAMES:
                raise ValueError(f"{where}: loss name {name!r} clashes with a series the trainer logs "
                                 f"({', '.join(RESERVED_NAMES)}); rename it")
        unknown = sorted(set(self.loss_weights) - set(losses))
        if unknown:
            raise ValueError(f"loss_weights name {unknown}, which the model does not return; "
                             f"its losses are {sorted(losses)}")
        return {name: loss.reshape(()) for name, loss in losses.items()}

    def _progress_text(self) -> str:
        names = [name for name in self.history.names if name.startswith("loss")]
        parts = [f"{name}={self.history.running_mean(name):.3f}" for name in names]
        return " ".join(parts + [f"lr={self.history.last('lr'):.2e}"])

    # --- checkpoints -------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir is not None else None

    def state_dict(self) -> dict[str, Any]:
        """Everything but the random generators (which :meth:`save_checkpoint` gathers from all processes)."""
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "history": self.history.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "samples_in_epoch": self.samples_in_epoch,
            "run": self._run_signature(),
        }

    def _run_signature(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        return {"steps": self.steps, "seed": self.seed, "world_size": get_world_size(),
                "batch_size": getattr(self.loader, "batch_size", None), "config": self.config.to_dict()}

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the checkpoint (rank 0; every process must call this, as it gathers their generators)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("no checkpoint path: give one, or a checkpoint_dir to the Trainer")
        rng_states = all_gather_objects(capture_rng_state())
        if is_main_process():
            save_checkpoint(path, {**self.state_dict(), "rng": rng_states})
        barrier()
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint` of an identical run.

        Raises:
            ValueError: the checkpoint belongs to a run with other settings (steps,
                seed, number of processes, batch size, optimiser), which would not
                continue the same way; the message lists the differences.
        """
        state = load_checkpoint(path, required=("model", "optimizer", "scheduler", "scaler", "history", "step",
                                                "epoch", "samples_in_epoch", "run", "rng"))
        theirs, ours = state["run"], self._run_signature()
        differences = [f"{key}: checkpoint {theirs.get(key)!r}, this run {ours[key]!r}"
                       for key in ours if theirs.get(key) != ours[key]]
        if differences:
            raise ValueError(f"{path}: the checkpoint belongs to a different run; resume with the same settings "
                             f"or use another checkpoint_dir. Differences: " + "; ".join(differences))
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.amp:
            self.scaler.load_state_dict(state["scaler"])
        self.history.load_state_dict(state["history"])
        self.step, self.epoch, self.samples_in_epoch = state["step"], state["epoch"], state["samples_in_epoch"]
        restore_rng_state(state["rng"][get_rank()])


def train(model: nn.Module, loader: Iterable, config: OptimConfig, steps: int,
          device: str | torch.device | None = None, *, checkpoint_dir: str | os.PathLike | None = None,
          checkpoint_every: int = 100, resume: bool = True, progress: bool = True, grad_clip: float | None = None,
          amp: bool | None = None, loss_weights: Mapping[str, float] | None = None,
          callback: Callable[[Trainer], None] | None = None, seed: int = 0) -> History:
    """Train ``model`` for ``steps`` steps and return its :class:`~.history.History`.

    A shortcut for ``Trainer(...).fit(resume)``; see :class:`Trainer` for the arguments.
    With ``checkpoint_dir`` and ``resume=True``, calling it again after an interruption
    continues where the last checkpoint left off.
    """
    trainer = Trainer(model, loader, config, steps, device, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=checkpoint_every, grad_clip=grad_clip, amp=amp, loss_weights=loss_weights,
                      callback=callback, seed=seed, progress=progress)
    return trainer.fit(resume=resume)
