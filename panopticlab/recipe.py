"""A training run as plain dataclasses: the optimiser and schedule, and the whole recipe.

:class:`OptimConfig` is the optimiser and learning-rate schedule; :class:`TrainRecipe`
is everything a run needs besides the model (steps, batch, image size, data, optimiser,
clipping, augmentation). Both are plain values: the model table
(:mod:`panopticlab.models.zoo`) states each model's recipes with them, the engine trains
by them, and checkpoints store them as JSON. They import nothing of the package, so
they sit below both ``models`` and ``engine``.

The defaults are Panoptic FPN's solver in detectron2 (SGD, momentum 0.9, weight decay
1e-4, linear warmup from 0.001x) with the poly decay of PSPNet and Panoptic-DeepLab.
Every published recipe the book uses is a few keyword arguments away:

    OptimConfig(lr=0.02, schedule="step", milestones=(60_000, 80_000), warmup_steps=1000)  # Panoptic FPN 1x
    OptimConfig(optimizer="adam", lr=1e-3, weight_decay=0.0, warmup_steps=0)              # Panoptic-DeepLab
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("poly", "step", "constant")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, warmup and decay.

    Attributes:
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: base learning rate, reached at the end of the warmup.
        momentum, nesterov: SGD only.
        betas, eps: Adam / AdamW only.
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW).
        warmup_steps: steps of linear warmup from ``warmup_factor * lr`` up to ``lr``.
        warmup_factor: learning-rate multiplier at step 0 of the warmup, in (0, 1].
        schedule: decay after the warmup: ``"poly"`` (``lr * (1 - t / T) ** poly_power``
            over the ``T`` post-warmup steps), ``"step"`` (times ``gamma`` at each of
            ``milestones``) or ``"constant"``.
        poly_power: exponent of the poly decay (0.9 in PSPNet and Panoptic-DeepLab).
        milestones: absolute step numbers at which the step schedule multiplies the
            learning rate by ``gamma``; each must come after the warmup.
        gamma: step-schedule factor.
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    warmup_factor: float = 0.001
    schedule: str = "poly"
    poly_power: float = 0.9
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self):
        # Frozen dataclass: normalise the sequences through object.__setattr__.
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} is not one of {SCHEDULES}")
        if not self.lr > 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be non-negative, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            problems.append("nesterov needs the sgd optimizer with a non-zero momentum")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must be non-negative, got {self.warmup_steps}")
        if not 0 < self.warmup_factor <= 1:
            problems.append(f"warmup_factor must be in (0, 1], got {self.warmup_factor}")
        if self.poly_power < 0:
            problems.append(f"poly_power must be non-negative, got {self.poly_power}")
        if self.schedule == "step":
            if not self.milestones:
                problems.append("the step schedule needs milestones (absolute step numbers)")
            if list(self.milestones) != sorted(set(self.milestones)):
                problems.append(f"milestones must be strictly increasing, got {self.milestones}")
            if self.milestones and self.milestones[0] <= self.warmup_steps:
                problems.append(f"the first milestone ({self.milestones[0]}) must come after the "
                                f"warmup ({self.warmup_steps} steps)")
            if not 0 < self.gamma <= 1:
                problems.append(f"gamma must be in (0, 1], got {self.gamma}")
        if problems:
            raise ValueError("invalid OptimConfig: " + "; ".join(problems))

    def replace(self, **changes) -> "OptimConfig":
        """A copy with some settings changed (checked again): ``optim.replace(lr=5e-4)``."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists for the tuples): fit for JSON and for checkpoints."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "OptimConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error that lists them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown OptimConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class TrainRecipe:
    """How one network is trained.

    Attributes:
        model: the name of the model in the model table (:data:`~panopticlab.models.zoo.MODELS`).
        steps: optimiser steps.
        batch_size: images per step (per process).
        image_size: side of the square training crops (and of the synthetic images).
        num_train: synthetic training images (indices ``0..num_train-1`` of the train split).
        optim: optimiser and learning-rate schedule.
        grad_clip: clip the global gradient norm to this value; ``None``: no clipping.
        augment_scale: ``(min, max)`` of the random rescaling before the crop;
            ``(1, 1)`` turns scale augmentation off (horizontal flips stay).
        input_size: the short side, in pixels, that a network which resizes its images
            inside (Mask R-CNN, Panoptic FPN, UPSNet: 800 on COCO) resizes them to instead
            (:func:`~panopticlab.models.common.set_input_size`); ``None`` keeps the model's
            own. Networks that take images at the data's size ignore it.
        dataset: ``"coco"`` or ``"cityscapes"``: the network is built in that data set's
            published configuration (``zoo.build_model(..., dataset=)``); ``None``: the
            model's default (the built-in data).
        start: the weights training starts from, loaded into every ResNet body before the
            first step (:func:`~panopticlab.models.starts.load_start`): ``"imagenet"``
            (torchvision's ImageNet ResNet-50, as the published runs), a state-dict file, or
            ``None`` (random, or what the model's config loads, as the tiny models' shipped body).
        freeze_norms, freeze_at: with a ``start``, every ResNet body's BatchNorms become
            frozen (their ImageNet statistics kept) and its first ``freeze_at`` modules (stem,
            ``layer1``, ...) stay fixed, as the published detectors fine-tune
            (:func:`~panopticlab.models.starts.freeze_bodies`); a random start freezes nothing.
    """

    model: str
    steps: int
    batch_size: int
    image_size: int
    num_train: int
    optim: OptimConfig = field(default_factory=OptimConfig)
    grad_clip: float | None = None
    augment_scale: tuple[float, float] = (1.0, 1.0)
    input_size: int | None = None
    dataset: str | None = None
    start: str | None = None
    freeze_norms: bool = False
    freeze_at: int = 0

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"TrainRecipe.model must be a model name, got {self.model!r}")
        object.__setattr__(self, "augment_scale", tuple(float(s) for s in self.augment_scale))
        problems = [f"{name} must be a positive integer, got {getattr(self, name)!r}"
                    for name in ("steps", "batch_size", "image_size", "num_train")
                    if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0)]
        if self.num_train < self.batch_size:
            problems.append(f"num_train ({self.num_train}) is smaller than one batch ({self.batch_size})")
        if self.dataset is not None and not isinstance(self.dataset, str):
            problems.append(f"dataset must be a data set's name or None, got {self.dataset!r}")
        if self.input_size is not None and not (isinstance(self.input_size, int) and self.input_size > 0):
            problems.append(f"input_size must be a positive integer or None, got {self.input_size!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be positive or None, got {self.grad_clip}")
        if len(self.augment_scale) != 2 or not 0 < self.augment_scale[0] <= self.augment_scale[1]:
            problems.append(f"augment_scale must be (min, max) with 0 < min <= max, got {self.augment_scale}")
        if problems:
            raise ValueError(f"invalid TrainRecipe for {self.model}: " + "; ".join(problems))

    def replace(self, **changes) -> "TrainRecipe":
        """A copy with some fields changed, e.g. ``recipe.replace(steps=2000)``."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists for tuples): fit for JSON and checkpoint metadata."""
        values = asdict(self)
        values["optim"] = self.optim.to_dict()
        values["augment_scale"] = list(self.augment_scale)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainRecipe":
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["optim"] = OptimConfig.from_dict(values["optim"])
        return cls(**values)
