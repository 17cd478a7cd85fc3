"""A tiny panoptic model and data set shared by the engine tests (no tests here)."""
from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import from_semantic_and_instances
from panopticlab.data.dataset import PanopticDataset
from panopticlab.data.synthetic import render_scene
from panopticlab.data.transforms import Compose, RandomHorizontalFlip

IMAGE_SIZE = 32


class TinyPanopticNet(nn.Module):
    """Two convolutions predicting a semantic map; things are split by connected components.

    Training returns two losses (cross-entropy and a small logit penalty) so that loss
    weighting is visible; evaluation returns one panoptic result per image, either a
    PanopticSegmentation or an object carrying it as ``.panoptic``.
    """

    def __init__(self, categories=CATS, width=8, dropout=0.0, wrap_outputs=False):
        super().__init__()
        self.categories = categories
        self.wrap_outputs = wrap_outputs
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
                                 nn.Conv2d(width, len(categories), 3, padding=1))
        self.register_buffer("category_ids", torch.tensor(categories.ids))

    def forward(self, images, targets=None):
        logits = self.net(images)
        if self.training:
            # Sum over labelled pixels divided by *all* pixels: the mean of equal shards' losses is
            # then the loss of the whole batch, which is what data-parallel training averages.
            semantic = targets["semantic"]
            cross_entropy = F.cross_entropy(logits, semantic, ignore_index=255, reduction="sum") / semantic.numel()
            return {"loss_sem": cross_entropy,
                    "loss_logits": 1e-3 * logits.pow(2).mean()}
        semantic = self.category_ids[logits.argmax(1)].cpu().numpy()
        results = [self._panoptic(s) for s in semantic]
        return [SimpleNamespace(panoptic=p, semantic=s) for p, s in zip(results, semantic)] \
            if self.wrap_outputs else results

    def _panoptic(self, semantic):
        masks, labels = [], []
        for thing in self.categories.thing_ids:
            components, count = ndimage.label(semantic == thing)
            masks.extend(components == k for k in range(1, count + 1))
            labels.extend([thing] * count)
        masks = np.stack(masks) if masks else np.zeros((0, *semantic.shape), bool)
        return from_semantic_and_instances(semantic, masks, labels, self.categories)


@functools.lru_cache(maxsize=None)
def samples(num_images, split="train", size=IMAGE_SIZE):
    """Synthetic scenes, drawn once per test session (a list is a valid dataset source)."""
    return tuple(render_scene(i, size, seed=0, split=split) for i in range(num_images))


def dataset(num_images=10, split="train", augment=True):
    """A PanopticDataset over synthetic scenes; random flips make the augmentation epoch-dependent."""
    transforms = Compose([RandomHorizontalFlip()]) if augment else None
    return PanopticDataset(list(samples(num_images, split)), CATS, transforms=transforms, targets=("semantic",))


def tiny_model(seed=0, **options):
    torch.manual_seed(seed)
    return TinyPanopticNet(**options)


def parameters_of(model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}
