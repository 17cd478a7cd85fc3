"""A method chapter's own training run: train with the book's recipe, check it learned, go on.

Chapters 4, 5 and 6 each train their model the same way, and this module is that way once:

    run = train_in_chapter("panoptic-fpn-tiny", profile)      # trains, prints the recipe and the time
    check_losses_fell(run.history, {"loss_semantic", "loss_mask"})
    ...                                                        # figures of run.model on run.val_set()
    run.keep(evaluation, samples)                              # the record chapter 7 reads

In the ``ci`` profile a few steps teach a network nothing, so :attr:`ChapterRun.model` is
then the shipped one (trained for longer by ``scripts/train_checkpoints.py``) and the run
is not kept for chapter 7; in the other profiles it is the network the reader just trained.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from ..data.categories import CategorySet
from ..data.synthetic import SYNTHETIC_CATEGORIES
from ..profiles import Profile
from ..recipe import TrainRecipe
from .history import History
from .pretrained import load_pretrained
from .recipes import recipe as book_recipe, val_data
from .runs import TrainedNetwork, record_run, save_book_run, train_network

__all__ = ["ChapterRun", "train_in_chapter", "check_losses_fell"]


@dataclass
class ChapterRun:
    """A chapter's training run and what the rest of the chapter works with.

    Attributes:
        name: the model of the table.
        recipe: the profile's recipe it trained with.
        profile: the run profile.
        categories: the data's categories.
        trained: the network this run trained.
        training: its :class:`~.runs.TrainedNetwork` (history and seconds).
        shipped: the shipped network, in eval mode, and ``shipped_info`` its metadata.
        model: what the chapter goes on with: ``shipped`` in ``ci``, else ``trained``.
    """

    name: str
    recipe: TrainRecipe
    profile: Profile
    categories: CategorySet
    trained: nn.Module
    training: TrainedNetwork
    shipped: nn.Module
    shipped_info: dict[str, Any]

    @property
    def model(self) -> nn.Module:
        return self.shipped if self.profile.is_ci else self.trained

    @property
    def history(self) -> History:
        return self.training.history

    @property
    def image_size(self) -> int:
        """The size of the images :attr:`model` was trained on (the shipped weights' in ``ci``)."""
        return int(self.shipped_info["image_size"]) if self.profile.is_ci else self.recipe.image_size

    def val_set(self, num: int | None = None, seed: int = 0):
        """The synthetic validation split at :attr:`image_size`: ``num`` images (default the
        profile's: 16 in ``ci``, 50 in ``laptop``, 200 on a GPU)."""
        return val_data(size=self.image_size, num=num or self.profile.pick(ci=16, laptop=50, gpu=200), seed=seed)

    def keep(self, evaluation, samples) -> None:
        """Keep the run's record for chapter 7 (:func:`~.runs.save_book_run`): ``evaluation`` of
        :attr:`model` on ``samples``. Not in ``ci``, whose runs are too short to compare."""
        if not self.profile.is_ci:
            save_book_run(record_run(self.name, self.model, [self.training], evaluation, samples,
                                     profile=self.profile.name, seed=self.profile.seed))


def train_in_chapter(name: str, profile: Profile, categories: CategorySet = SYNTHETIC_CATEGORIES) -> ChapterRun:
    """Train ``name`` with the book's recipe for ``profile`` (progress bar, the profile's seed),
    print the recipe and the training time, and load the shipped weights beside it."""
    recipe = book_recipe(name, profile)
    print(recipe)
    trained, training = train_network(recipe, categories, seed=profile.seed)
    print(f"trained {recipe.steps} steps in {training.seconds:.0f} s")
    shipped, shipped_info = load_pretrained(name, categories)
    print("shipped:", {key: shipped_info[key] for key in ("steps", "pq", "pq_th", "pq_st") if key in shipped_info})
    return ChapterRun(name, recipe, profile, categories, trained, training, shipped, shipped_info)


def check_losses_fell(history: History, named: Iterable[str] = (), window: int = 5) -> None:
    """The checks a training cell ends with.

    Raises:
        AssertionError: a loss is not finite, a loss of ``named`` is not reported, or (over
            runs of at least 20 steps) the mean of the last ``window`` total losses is not
            below that of the first ``window``; each message says which.
    """
    losses = np.asarray(history.values("loss"), dtype=float)
    assert np.isfinite(losses).all(), "a loss diverged"
    missing = set(named) - set(history.names)
    assert not missing, f"losses not reported by name: {sorted(missing)}"
    if len(losses) >= 20:
        assert losses[-window:].mean() < losses[:window].mean(), "training must lower the loss"
