"""Training the models of the table: their recipes, their training data, one call to train.

:func:`recipe` gives the book's :class:`~panopticlab.recipe.TrainRecipe` of a model for a run
profile, as the model table (:mod:`panopticlab.models.zoo`) states it:

* ``ci``: a handful of steps on 64 px images (seconds): checks that everything runs;
* ``laptop``: a few minutes per network on 2 CPU cores, 128 px images: results worth
  looking at;
* ``gpu``: longer schedules on 256 px images.

The baseline (``baseline-*``) is two networks trained separately with their own
recipes, as in the paper: ``recipe("pspnet-tiny")`` and ``recipe("maskrcnn-tiny")``
(its row's ``components``); a :class:`~panopticlab.models.HeuristicBaseline` then
combines them.

:func:`train_data` builds the augmented synthetic training set with the targets the
model trains on, and :func:`fit` runs the engine's :class:`~.trainer.Trainer` with the
recipe. Measuring a trained model is :func:`panopticlab.engine.evaluator.evaluate`.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
from torch import nn

from ..data.categories import CategorySet
from ..data.dataset import PanopticDataset, collate_mixed_sizes
from ..data.sample import Sample
from ..data.synthetic import SYNTHETIC_CATEGORIES, SyntheticPanoptic
from ..data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomScale, RandomShortestEdge
from ..models import zoo
from ..profiles import Profile
from ..recipe import TrainRecipe
from .history import History
from .sampling import make_train_loader
from .trainer import Trainer

__all__ = ["TrainRecipe", "recipe", "train_transforms", "train_data", "val_data", "fit"]


def recipe(model_name: str, profile: Profile | str | None = None, steps: int | None = None) -> TrainRecipe:
    """The book's training recipe for one model of the table (:meth:`~panopticlab.models.zoo.ModelSpec.recipe`).

    Args:
        model_name: e.g. ``pspnet-tiny``, ``maskrcnn-tiny``, ``pspnet-full``, ``maskrcnn-full``.
        profile: a :class:`~panopticlab.profiles.Profile`, its name, or ``None`` for
            :func:`~panopticlab.profiles.get_profile` (``$PANOPTICLAB_PROFILE``).
        steps: train this many steps instead of the profile's number; the warmup and
            the decay of the schedule are laid out over them.

    Raises:
        ValueError: an unknown name (the message lists the known ones), or a model
            trained as separate networks (the message names their recipes).
    """
    return zoo.spec(model_name).recipe(profile, steps)


def train_transforms(recipe: TrainRecipe) -> Compose:
    """A resize to one of the recipe's ``short_sides`` (if it has any), random rescaling by
    ``augment_scale``, a random crop of ``crop_size`` (default: ``image_size`` square; padded
    with void where the rescaled image is smaller; none with ``whole_images``) and a horizontal
    flip with probability 0.5."""
    low, high = recipe.augment_scale
    steps = [RandomShortestEdge(recipe.short_sides, recipe.max_size)] if recipe.short_sides else []
    steps.append(RandomScale(low, high))
    if not recipe.whole_images:
        steps.append(RandomCrop(recipe.crop_size or recipe.image_size))
    return Compose([*steps, RandomHorizontalFlip(0.5)])


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
        image_size`` and the targets of the model's row (``semantic`` for PSPNet, ``instances``
        for Mask R-CNN, both for Panoptic FPN, ``deeplab`` for Panoptic-DeepLab), built with
        the row's ``target_options``.
    """
    if source is None:
        # cached: every scene is visited many times, and drawing one costs more than augmenting it
        source = SyntheticPanoptic(recipe.num_train, size=recipe.image_size, seed=seed, split="train", cache=True)
    row = zoo.spec(recipe.model)
    return PanopticDataset(source, categories, train_transforms(recipe), targets=row.targets, seed=seed,
                           **row.target_options)


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
        model: the model the recipe is for (``zoo.build_model(recipe.model, categories)``).
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
    row = zoo.spec(recipe.model)
    if row.recipe_factory is None:
        raise ValueError(f"{recipe.model} is {len(row.components)} networks trained separately: fit each with its "
                         f"own recipe ({' and '.join(row.components)})")
    if not isinstance(model, row.module):
        raise ValueError(f"the {recipe.model} recipe trains a {row.module.__name__}, got a {type(model).__name__}")
    # whole images differ in size: a batch of them goes to the network as a list
    collate = collate_mixed_sizes if recipe.whole_images else None
    loader = make_train_loader(train_data(recipe, categories, seed, source), recipe.batch_size, seed=seed,
                               collate_fn=collate)
    every = checkpoint_every or max(1, min(100, recipe.steps // 10))
    trainer = Trainer(model, loader, recipe.optim, recipe.steps, device, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=every, grad_clip=recipe.grad_clip, callback=callback, seed=seed,
                      progress=progress)
    return trainer.fit(resume=True)
