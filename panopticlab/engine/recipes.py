"""Training recipes of the named models, and how to train and measure them.

A :class:`TrainRecipe` is everything a training run of a named model
(:mod:`panopticlab.models.zoo`) needs besides the model itself: steps, batch, image
size, training images, optimiser and schedule, gradient clipping and the scale
augmentation. :func:`recipe` gives the book's recipe for a model and a run profile:

* ``ci``: a handful of steps on 64 px images (seconds): checks that everything runs;
* ``laptop``: a few minutes per network on 2 CPU cores, 128 px images: results worth
  looking at;
* ``gpu``: longer schedules on 256 px images.

The baseline (``baseline-*``) is two networks trained separately with their own
recipes, as in the paper: ``recipe("pspnet-tiny")`` and ``recipe("maskrcnn-tiny")``
(:data:`~panopticlab.models.zoo.COMPONENTS`); a
:class:`~panopticlab.models.baseline.HeuristicBaseline` then combines them.

:func:`train_data` builds the augmented synthetic training set with the targets the
model trains on, :func:`fit` runs the engine's :func:`~.trainer.train` with the recipe,
and :func:`evaluate_networks` measures trained networks on a validation set: PQ of the
baseline and of each network alone, and the semantic network's mIoU.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.categories import CategorySet
from ..data.dataset import PanopticDataset
from ..data.sample import Sample
from ..data.synthetic import SYNTHETIC_CATEGORIES, SyntheticPanoptic
from ..data.targets import semantic_target
from ..data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomScale
from ..metrics.pq import PQAccumulator
from ..models import zoo
from ..models.baseline import HeuristicBaseline
from ..models.instance import MaskRCNN
from ..models.semantic import PSPNet
from ..profiles import Profile, get_profile
from .config import OptimConfig
from .history import History
from .sampling import make_train_loader
from .trainer import Trainer

__all__ = ["TrainRecipe", "recipe", "train_transforms", "train_data", "val_data", "fit", "TARGETS",
           "confusion_matrix", "mean_iou", "evaluate_networks", "headline"]

VOID_LABEL = 255  # of semantic maps and semantic targets

# The targets each family trains on (PanopticDataset target names).
TARGETS: dict[str, tuple[str, ...]] = {
    "pspnet": ("semantic",),
    "maskrcnn": ("instances",),
    "baseline": ("semantic", "instances"),
}


@dataclass(frozen=True)
class TrainRecipe:
    """How one network is trained.

    Attributes:
        model: a name of :data:`~panopticlab.models.zoo.MODEL_NAMES`.
        steps: optimiser steps.
        batch_size: images per step (per process).
        image_size: side of the square training crops (and of the synthetic images).
        num_train: synthetic training images (indices ``0..num_train-1`` of the train split).
        optim: optimiser and learning-rate schedule.
        grad_clip: clip the global gradient norm to this value; ``None``: no clipping.
        augment_scale: ``(min, max)`` of the random rescaling before the crop;
            ``(1, 1)`` turns scale augmentation off (horizontal flips stay).
    """

    model: str
    steps: int
    batch_size: int
    image_size: int
    num_train: int
    optim: OptimConfig = field(default_factory=OptimConfig)
    grad_clip: float | None = None
    augment_scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self):
        zoo.check_name(self.model)
        object.__setattr__(self, "augment_scale", tuple(float(s) for s in self.augment_scale))
        problems = [f"{name} must be a positive integer, got {getattr(self, name)!r}"
                    for name in ("steps", "batch_size", "image_size", "num_train")
                    if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0)]
        if self.num_train < self.batch_size:
            problems.append(f"num_train ({self.num_train}) is smaller than one batch ({self.batch_size})")
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


def _adamw(lr: float, steps: int) -> OptimConfig:
    # AdamW with a short linear warmup and a linear decay to zero: from scratch, this
    # trained both tiny networks faster than SGD with the poly schedule.
    return OptimConfig(optimizer="adamw", lr=lr, weight_decay=1e-4, warmup_steps=steps // 20,
                       warmup_factor=0.01, schedule="poly", poly_power=1.0)


def _tiny_recipe(name: str, profile: Profile, steps: int | None) -> TrainRecipe:
    if name == "pspnet-tiny":
        steps = steps or profile.pick(ci=4, laptop=1000, gpu=6000)
        grad_clip = None
    else:
        steps = steps or profile.pick(ci=4, laptop=1200, gpu=8000)
        grad_clip = 10.0  # the detector's losses spike early in training from scratch
    # Flips only: the validation images have the training images' scale, and on the
    # synthetic data random rescaling (0.75-1.5) slowed the detector down (PQ_th 7.9
    # instead of 10.3 after 600 steps); a learning rate of 1e-3 or 4e-3 was worse than 2e-3.
    return TrainRecipe(model=name, steps=steps, batch_size=profile.batch_size, image_size=profile.image_size,
                       num_train=profile.num_train, optim=_adamw(2e-3, steps), grad_clip=grad_clip,
                       augment_scale=(1.0, 1.0))


def _full_recipe(name: str, profile: Profile, steps: int | None) -> TrainRecipe:
    # The published solvers, shortened: PSPNet's SGD 0.01 with poly decay (mmsegmentation),
    # Mask R-CNN's SGD 0.02 with a warmup and two steps (detectron2's 1x). Batch 2 per
    # process fits ResNet-50 at these sizes on one GPU.
    steps = steps or profile.pick(ci=2, laptop=200, gpu=20_000)
    size = profile.pick(ci=64, laptop=256, gpu=512)
    if name == "pspnet-full":
        optim = OptimConfig(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="poly",
                            poly_power=0.9)
    else:
        warmup = min(1000, steps // 10)
        milestones = (max(warmup + 1, round(steps * 2 / 3)), max(warmup + 2, round(steps * 8 / 9)))
        optim = OptimConfig(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4, warmup_steps=warmup,
                            schedule="step", milestones=milestones)
    batch = profile.pick(ci=2, laptop=2, gpu=8)
    return TrainRecipe(model=name, steps=steps, batch_size=batch, image_size=size,
                       num_train=max(batch, profile.num_train), optim=optim, grad_clip=None,
                       augment_scale=profile.pick(ci=(1.0, 1.0), laptop=(0.5, 2.0)))


def recipe(model_name: str, profile: Profile | str | None = None, steps: int | None = None) -> TrainRecipe:
    """The book's training recipe for one network.

    Args:
        model_name: ``pspnet-tiny``, ``maskrcnn-tiny``, ``pspnet-full`` or ``maskrcnn-full``.
        profile: a :class:`~panopticlab.profiles.Profile`, its name, or ``None`` for
            :func:`~panopticlab.profiles.get_profile` (``$PANOPTICLAB_PROFILE``).
        steps: train this many steps instead of the profile's number; the warmup and
            the decay of the schedule are laid out over them.

    Raises:
        ValueError: an unknown name, or a baseline name: its two networks have recipes
            of their own (the message names them).
    """
    zoo.check_name(model_name)
    if steps is not None and not (isinstance(steps, int) and steps > 0):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if model_name in zoo.COMPONENTS:
        semantic_name, instance_name = zoo.COMPONENTS[model_name]
        raise ValueError(f"{model_name} is two networks trained separately, as in the paper: use "
                         f"recipe({semantic_name!r}) and recipe({instance_name!r}), then combine them with "
                         f"HeuristicBaseline(semantic_model, instance_model, categories)")
    if not isinstance(profile, Profile):
        profile = get_profile(profile)
    if model_name.endswith("-tiny"):
        return _tiny_recipe(model_name, profile, steps)
    return _full_recipe(model_name, profile, steps)


def train_transforms(recipe: TrainRecipe) -> Compose:
    """Random rescaling by ``augment_scale``, a random ``image_size`` square crop (padded with
    void where the rescaled image is smaller) and a horizontal flip with probability 0.5."""
    low, high = recipe.augment_scale
    return Compose([RandomScale(low, high), RandomCrop(recipe.image_size), RandomHorizontalFlip(0.5)])


def train_data(recipe: TrainRecipe, categories: CategorySet = SYNTHETIC_CATEGORIES, seed: int = 0,
               source: Sequence[Sample] | None = None) -> PanopticDataset:
    """The training set of ``recipe``: augmented images with the targets its model trains on.

    Args:
        recipe: the run.
        categories: the dataset's categories (class order of the targets).
        seed: seed of the synthetic scenes and of the augmentations.
        source: images to train on instead of the synthetic train split
            (``SyntheticPanoptic(num_train, image_size, seed, "train")``).

    Returns:
        a :class:`PanopticDataset`: items ``(float32 [3, S, S], targets)`` with ``S =
        image_size`` and targets ``semantic`` (PSPNet), ``instances`` (Mask R-CNN) or both.
    """
    if source is None:
        source = SyntheticPanoptic(recipe.num_train, size=recipe.image_size, seed=seed, split="train")
    return PanopticDataset(source, categories, train_transforms(recipe), targets=TARGETS[zoo.family(recipe.model)],
                           seed=seed)


def val_data(size: int = 128, num: int = 50, seed: int = 0) -> SyntheticPanoptic:
    """The synthetic validation split: ``num`` scenes of ``size x size`` pixels (unaugmented :class:`Sample` s)."""
    return SyntheticPanoptic(num, size=size, seed=seed, split="val")


def fit(model: nn.Module, recipe: TrainRecipe, categories: CategorySet = SYNTHETIC_CATEGORIES, *, seed: int = 0,
        checkpoint_dir: str | os.PathLike | None = None, progress: bool = True,
        device: str | torch.device | None = None, checkpoint_every: int | None = None, callback: Callable[[Trainer], None] | None = None,
        source: Sequence[Sample] | None = None) -> History:
    """Train ``model`` with ``recipe`` and return the run's :class:`~.history.History`.

    Builds :func:`train_data` and a resumable loader (:func:`~.sampling.make_train_loader`)
    and calls the engine's trainer. With ``checkpoint_dir``, the run saves ``last.pt``
    there and, called again with the same arguments, continues from it: an interrupted
    run ends exactly where an uninterrupted one would.

    Args:
        model: the network the recipe is for (``zoo.build_model(recipe.model, categories)``).
        recipe: steps, data and optimiser.
        categories: the dataset's categories.
        seed: seeds the data, the augmentations, the data order and the initial random state.
        checkpoint_dir: folder of the run's checkpoint; ``None``: no checkpoints.
        progress: show a progress bar with the running losses.
        device: default CUDA when present, else the CPU.
        checkpoint_every: steps between checkpoints (default: a tenth of the run, at most 100).
        callback: ``callback(trainer)`` after every step (e.g. a periodic evaluation).
        source: images to train on instead of the synthetic train split.

    Raises:
        ValueError: the model is not the recipe's kind of network (a baseline, or a
            PSPNet given a Mask R-CNN recipe, ...).
    """
    expected = {"pspnet": PSPNet, "maskrcnn": MaskRCNN}.get(zoo.family(recipe.model))
    if expected is None:
        raise ValueError(f"{recipe.model} is two networks trained separately: fit each with its own recipe "
                         f"({' and '.join(zoo.COMPONENTS[recipe.model])})")
    if not isinstance(model, expected):
        raise ValueError(f"the {recipe.model} recipe trains a {expected.__name__}, got a {type(model).__name__}")
    loader = make_train_loader(train_data(recipe, categories, seed, source), recipe.batch_size, seed=seed)
    every = checkpoint_every or max(1, min(100, recipe.steps // 10))
    trainer = Trainer(model, loader, recipe.optim, recipe.steps, device, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=every, grad_clip=recipe.grad_clip, callback=callback, seed=seed,
                      progress=progress)
    return trainer.fit(resume=True)


# --- measuring trained networks --------------------------------------------------------
def confusion_matrix(predicted: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255,
                     void_prediction: int | None = None) -> np.ndarray:
    """Pixel counts of (target class, predicted class).

    Args:
        predicted, target: integer class indices ``0..K-1`` of the same shape; target
            pixels equal to ``ignore_index`` are not counted.
        num_classes: K.
        void_prediction: a predicted value meaning "no class" (a semantic map that
            abstains); such pixels are counted in an extra last column: misses of their
            target class, false positives of none.

    Returns:
        (K, K) int64, or (K, K + 1) with ``void_prediction``: row = target, column = prediction.

    Raises:
        ValueError: the shapes differ, or a counted pixel is outside ``0..K-1``.
    """
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape:
        raise ValueError(f"prediction of shape {predicted.shape} for a target of shape {target.shape}")
    counted = target != ignore_index
    predicted, target = predicted[counted].astype(np.int64), target[counted].astype(np.int64)
    columns = num_classes
    if void_prediction is not None:
        predicted = np.where(predicted == void_prediction, num_classes, predicted)
        columns += 1
    outside = (predicted < 0) | (predicted >= columns) | (target < 0) | (target >= num_classes)
    if outside.any():
        raise ValueError(f"class indices must lie in 0..{num_classes - 1} (or be {ignore_index} in the target)")
    return np.bincount(target * columns + predicted, minlength=num_classes * columns).reshape(num_classes, columns)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean over classes of ``TP / (TP + FP + FN)`` from a :func:`confusion_matrix`.

    Classes absent from both target and prediction are left out (torchmetrics' and
    mmsegmentation's convention); an extra column of abstentions counts as misses only.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    classes = confusion[:, :confusion.shape[0]]
    true_positive = np.diag(classes)
    union = confusion.sum(1) + classes.sum(0) - true_positive
    present = union > 0
    return float(np.mean(true_positive[present] / union[present])) if present.any() else float("nan")


def headline(results: Mapping) -> dict[str, float]:
    """``pq, sq, rq, pq_th, pq_st`` of :meth:`PQAccumulator.results`, in per cent."""
    return {"pq": 100 * results["All"]["pq"], "sq": 100 * results["All"]["sq"], "rq": 100 * results["All"]["rq"],
            "pq_th": 100 * results["Things"]["pq"], "pq_st": 100 * results["Stuff"]["pq"]}


def _batches(samples: Sequence[Sample], batch_size: int):
    for start in range(0, len(samples), batch_size):
        batch = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
        images = torch.stack([torch.from_numpy(np.ascontiguousarray(s.image)).permute(2, 0, 1) for s in batch])
        yield batch, images.float() / 255


@torch.inference_mode()
def evaluate_networks(samples: Sequence[Sample], categories: CategorySet = SYNTHETIC_CATEGORIES, *,
                      semantic_model: PSPNet | None = None, instance_model: MaskRCNN | None = None,
                      merge_options: Mapping[str, float] | None = None, batch_size: int = 8,
                      device: str | torch.device = "cpu", predictions_json: str | os.PathLike | None = None,
                      progress: bool = False) -> dict[str, Any]:
    """Measure a semantic network, an instance network or both on ``samples``.

    Each network runs once per image; its outputs are merged three ways with the
    heuristic (:class:`~panopticlab.models.baseline.HeuristicBaseline`, and the ablations
    :class:`~panopticlab.models.zoo.SemanticOnly` and
    :class:`~panopticlab.models.zoo.InstanceOnly`) and each result is scored with
    :class:`~panopticlab.metrics.pq.PQAccumulator`.

    Args:
        samples: the evaluation images with their ground truth (e.g. :func:`val_data`).
        categories: the dataset's categories.
        semantic_model, instance_model: the trained networks; at least one.
        merge_options: ``score_threshold``, ``overlap_threshold``, ``stuff_area_limit``
            (``None``: 4096 px scaled to the image area), ``mask_threshold``.
        batch_size: images per forward pass.
        device: where the networks run (they are moved there; their train/eval mode is
            restored afterwards).
        predictions_json: write the main panoptic result (the baseline when both
            networks are given) in COCO panoptic format there, PNGs next to it.
        progress: show a progress bar.

    Returns:
        ``{"baseline" | "semantic_only" | "instance_only": PQAccumulator results}`` for
        the variants the given networks allow, ``"main"``: the name of the main variant,
        and ``"miou"`` (fraction) with a semantic network.
    """
    if semantic_model is None and instance_model is None:
        raise ValueError("evaluate_networks needs a semantic model, an instance model or both")
    options = dict(merge_options or {})
    # variant name -> merge(semantic map or None, detections or None) -> PanopticSegmentation
    variants: dict[str, Callable[[np.ndarray | None, dict | None], Any]] = {}
    if semantic_model is not None and instance_model is not None:
        baseline = HeuristicBaseline(semantic_model, instance_model, categories, **options)
        variants["baseline"] = lambda semantic, detections: baseline.merge(semantic, detections).panoptic
    if semantic_model is not None:
        semantic_only = zoo.SemanticOnly(semantic_model, categories, **options)
        variants["semantic_only"] = lambda semantic, _: semantic_only.merge(semantic)
    if instance_model is not None:
        instance_only = zoo.InstanceOnly(instance_model, categories, **options)
        variants["instance_only"] = lambda _, detections: instance_only.merge(detections)
    main = next(iter(variants))
    accumulators = {name: PQAccumulator(categories) for name in variants}
    confusion = np.zeros((len(categories), len(categories) + 1), np.int64)
    # category id -> train id; the merge's void label (an abstaining semantic map) stays void
    to_train_id = np.full(max(*categories.ids, VOID_LABEL) + 1, VOID_LABEL, np.int64)
    to_train_id[categories.ids] = np.arange(len(categories))
    kept = []
    networks = [m for m in (semantic_model, instance_model) if m is not None]
    modes = [m.training for m in networks]
    for network in networks:
        network.to(device).eval()
    try:
        for batch, images in tqdm(_batches(samples, batch_size), total=-(-len(samples) // batch_size),
                                  desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True):
            images = images.to(device)
            semantic = [None] * len(batch)
            detections = [None] * len(batch)
            if semantic_model is not None:
                semantic = semantic_model(images)["semantic"].cpu().numpy()
            if instance_model is not None:
                detections = [{k: v.cpu() for k, v in d.items()} for d in instance_model(images)]
            for sample, sem, det in zip(batch, semantic, detections):
                for name, merge in variants.items():
                    prediction = merge(sem, det)
                    accumulators[name].update(sample.panoptic, prediction, image_id=sample.image_id)
                    if name == main and predictions_json is not None:
                        kept.append((sample.image_id, sample.file_name, prediction))
                if sem is not None:
                    target = semantic_target(sample.panoptic, categories).numpy()
                    confusion += confusion_matrix(to_train_id[sem], target, len(categories),
                                                  void_prediction=VOID_LABEL)
    finally:
        for network, mode in zip(networks, modes):
            network.train(mode)
    results: dict[str, Any] = {name: accumulator.results() for name, accumulator in accumulators.items()}
    results["main"] = main
    if semantic_model is not None:
        results["miou"] = mean_iou(confusion)
    if predictions_json is not None:
        from ..data.coco import write_predictions  # file I/O only when asked for

        write_predictions(predictions_json, None, kept, categories)
    return results
