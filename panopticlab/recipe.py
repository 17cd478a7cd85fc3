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
        crop_size: ``(height, width)`` of the random training crops; ``None``: square
            ``image_size`` crops.
        whole_images: no crop: every image is trained on whole, a batch of mixed sizes
            going to the network as a list (the published detectors, which pad a batch).
        short_sides, max_size: before the rescaling and the crop, each image is resized to a
            short side drawn from ``short_sides``, its long side at most ``max_size``
            (detectron2's ``ResizeShortestEdge``); a network that resizes its images inside
            then keeps the data's size in training. ``()``: no such resize.
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
    crop_size: tuple[int, int] | None = None
    whole_images: bool = False
    short_sides: tuple[int, ...] = ()
    max_size: int | None = None

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"TrainRecipe.model must be a model name, got {self.model!r}")
        object.__setattr__(self, "augment_scale", tuple(float(s) for s in self.augment_scale))
        object.__setattr__(self, "short_sides", tuple(self.short_sides))
        if self.crop_size is not None:
            object.__setattr__(self, "crop_size", tuple(self.crop_size))
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
        if self.crop_size is not None and not (len(self.crop_size) == 2 and all(
                isinstance(side, int) and side > 0 for side in self.crop_size)):
            problems.append(f"crop_size must be (height, width) in pixels or None, got {self.crop_size!r}")
        if self.crop_size is not None and self.whole_images:
            problems.append("whole_images trains on uncropped images: it takes no crop_size")
        if not all(isinstance(side, int) and side > 0 for side in self.short_sides):
            problems.append(f"short_sides must be positive integers, got {self.short_sides!r}")
        if self.max_size is not None and not (isinstance(self.max_size, int) and self.max_size > 0):
            problems.append(f"max_size must be a positive integer or None, got {self.max_size!r}")
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
        values["short_sides"] = list(self.short_sides)
        if self.crop_size is not None:
            values["crop_size"] = list(self.crop_size)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainRecipe":
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["optim"] = OptimConfig.from_dict(values["optim"])
        return cls(**values)


@dataclass(frozen=True)
class PublishedSchedule:
    """A published training run of one method on one data set, as its configuration file states it.

    One type for every method: the model files state their runs with it
    (``PUBLISHED_SCHEDULES`` of each), the model table offers them
    (:meth:`~panopticlab.models.zoo.ModelSpec.published_recipe`) and ``panopticlab train
    --schedule published`` runs them.

    Attributes:
        dataset: ``"coco"`` or ``"cityscapes"``.
        batch_size: images per iteration, all GPUs together.
        iterations: optimiser steps.
        optim: the solver at ``batch_size``: learning rate, warmup and milestones in
            iterations of this run.
        crop_size: ``(height, width)`` of the random training crops; ``None``: whole images
            (the detectors), batched at their own sizes.
        augment_scale: ``(min, max)`` random rescaling of an image before the crop.
        short_sides, max_size: each training image is resized to a short side drawn from
            ``short_sides`` with its long side at most ``max_size`` (detectron2's
            ``ResizeShortestEdge``, "choice" sampling); ``()``: no such resize.
        test_size: the short side the published run evaluates at; a run at another input
            size scales every pixel size of the schedule by the same factor.
        inputs: the published input pipeline in words.
        source: the configuration file(s) it is read from.
        differences: what this package's run does differently, and why; empty when nothing.
    """

    dataset: str
    batch_size: int
    iterations: int
    optim: OptimConfig
    crop_size: tuple[int, int] | None
    test_size: int
    inputs: str
    source: str
    augment_scale: tuple[float, float] = (1.0, 1.0)
    short_sides: tuple[int, ...] = ()
    max_size: int | None = None
    differences: str = ""

    def __post_init__(self):
        object.__setattr__(self, "short_sides", tuple(int(s) for s in self.short_sides))
        object.__setattr__(self, "augment_scale", tuple(float(s) for s in self.augment_scale))
        if self.crop_size is not None:
            object.__setattr__(self, "crop_size", tuple(int(s) for s in self.crop_size))
        if self.optim.milestones and self.optim.milestones[-1] >= self.iterations:
            raise ValueError(f"{self.source}: milestone {self.optim.milestones[-1]} is not inside the run's "
                             f"{self.iterations} iterations")

    def scaled(self, batch_size: int | None = None, iterations: int | None = None,
               test_size: int | None = None) -> tuple["PublishedSchedule", list[str]]:
        """This run at another total batch, length or input size, and what changed, in words.

        * ``batch_size``: the linear scaling rule (Goyal et al., 2017, "Accurate, Large
          Minibatch SGD", section 2.1): the learning rate times ``batch_size / B``, the
          iterations, warmup and milestones times ``B / batch_size``, so the run sees the
          same number of images with the same learning rate per image.
        * ``iterations``: the warmup and the milestones keep their places in the run.
        * ``test_size``: every pixel size (crops, short sides, long side) times
          ``test_size / self.test_size``.
        """
        schedule, notes = self, []
        if batch_size is not None and batch_size != self.batch_size:
            factor = batch_size / self.batch_size
            schedule = replace(schedule._stretched(max(1, round(self.iterations / factor)), lr=self.optim.lr * factor),
                               batch_size=batch_size)
            notes.append(f"batch {batch_size} instead of the published {self.batch_size}: by the linear scaling rule "
                         f"the learning rate becomes {self.optim.lr:g} x {batch_size}/{self.batch_size} = "
                         f"{schedule.optim.lr:g} and the run {schedule.iterations} iterations instead of "
                         f"{self.iterations} (the same images seen)")
        if iterations is not None and iterations != schedule.iterations:
            notes.append(f"{iterations} iterations instead of {schedule.iterations}: warmup and milestones "
                         f"keep their places in the run")
            schedule = schedule._stretched(iterations, lr=schedule.optim.lr)
        if test_size is not None and test_size != self.test_size:
            factor = test_size / self.test_size
            pixels = lambda size: max(1, round(size * factor))  # noqa: E731
            schedule = replace(schedule, test_size=test_size,
                               crop_size=None if schedule.crop_size is None else tuple(map(pixels, schedule.crop_size)),
                               short_sides=tuple(sorted({pixels(s) for s in schedule.short_sides})),
                               max_size=None if schedule.max_size is None else pixels(schedule.max_size))
            notes.append(f"images at a short side of {test_size} px instead of {self.test_size}: crops and resizes "
                         f"scaled by {factor:.3g}")
        return schedule, notes

    def _stretched(self, iterations: int, lr: float) -> "PublishedSchedule":
        factor = iterations / self.iterations
        warmup = min(round(self.optim.warmup_steps * factor), max(0, iterations // 10)) if self.optim.warmup_steps else 0
        milestones = []
        for milestone in self.optim.milestones:  # strictly increasing, after the warmup, inside the run
            milestones.append(max(round(milestone * factor), warmup + 1, milestones[-1] + 1 if milestones else 0))
        if milestones and milestones[-1] >= iterations:
            milestones = [m for m in milestones if m < iterations]
        optim = self.optim.replace(lr=lr, warmup_steps=warmup, milestones=tuple(milestones),
                                   schedule="constant" if self.optim.schedule == "step" and not milestones
                                   else self.optim.schedule)
        return replace(self, iterations=iterations, optim=optim)

    def train_recipe(self, base: TrainRecipe, world_size: int = 1) -> TrainRecipe:
        """``base`` (a model's recipe: its name, start and frozen parts) run by this schedule on
        ``world_size`` processes: the batch shared out among them, the schedule's steps,
        solver, crops and resizes, and its data set's published model configuration.

        Raises:
            ValueError: the batch does not share out evenly (``scaled(batch_size=...)`` first).
        """
        if self.batch_size % world_size:
            raise ValueError(f"a batch of {self.batch_size} does not share out over {world_size} processes: "
                             f"choose a total batch that is a multiple of {world_size}")
        return base.replace(steps=self.iterations, batch_size=self.batch_size // world_size, optim=self.optim,
                            dataset=self.dataset, crop_size=self.crop_size, whole_images=self.crop_size is None,
                            augment_scale=self.augment_scale, short_sides=self.short_sides, max_size=self.max_size,
                            num_train=max(base.num_train, self.batch_size // world_size))
