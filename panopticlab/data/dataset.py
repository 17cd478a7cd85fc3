"""A torch ``Dataset`` of images and training targets over any panoptic image source.

A *source* is any map-style collection (``len`` and ``source[i]``) whose items are
:class:`~panopticlab.data.sample.Sample` s: the built-in synthetic dataset, the COCO
panoptic reader, or a list. :class:`PanopticDataset` augments each sample and builds
the targets the models ask for; :func:`collate_panoptic` batches them for a
``DataLoader``.

Augmentation randomness is a pure function of ``(seed, epoch, index)``: every item
gets its own ``numpy.random.Generator`` seeded from those three numbers, so a batch is
the same whichever worker process builds it and however many workers there are.
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .categories import CategorySet
from .sample import Sample
from .targets import deeplab_targets, instance_target, semantic_target
from .transforms import check_sample

__all__ = ["TARGET_BUILDERS", "PanopticDataset", "collate_panoptic", "collate_mixed_sizes", "image_tensor",
           "image_batch"]

# name in the target dict -> function (pan, categories, **options) building it
TARGET_BUILDERS: dict[str, Callable] = {
    "semantic": semantic_target,
    "instances": instance_target,
    "deeplab": deeplab_targets,
}


def _options_of(builder: Callable) -> set[str]:
    """Keyword options a target builder accepts besides the annotation itself."""
    return set(inspect.signature(builder).parameters) - {"pan", "categories", "source"}


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) uint8 image as the models take it: float [3, H, W] in [0, 1]."""
    return torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1).contiguous()


def image_batch(samples: Sequence[Sample]) -> torch.Tensor:
    """The images of ``samples`` (all of one size) as float [N, 3, H, W] in [0, 1]."""
    sizes = {sample.image.shape for sample in samples}
    if len(sizes) != 1:
        raise ValueError(f"one batch needs images of one size, got {sorted(sizes)}")
    return torch.stack([image_tensor(sample.image) for sample in samples])


class PanopticDataset(Dataset):
    """Images as float tensors plus the requested training targets.

    ``dataset[i]`` returns ``(image, target)``:

    * ``image``: float32 [3, H, W] RGB in [0, 1]; normalisation belongs to the models.
    * ``target``: dict with ``panoptic`` (the
      :class:`~panopticlab.data.panoptic.PanopticSegmentation` after augmentation),
      ``image_id``, and one entry per requested target: ``semantic``
      (:func:`~panopticlab.data.targets.semantic_target`), ``instances``
      (:func:`~panopticlab.data.targets.instance_target`), ``deeplab``
      (:func:`~panopticlab.data.targets.deeplab_targets`).

    Args:
        source: map-style collection of :class:`Sample`.
        categories: the dataset's categories (class order of the targets).
        transforms: callable ``(sample, rng) -> sample``, e.g. a
            :class:`~panopticlab.data.transforms.Compose`; ``None`` for no augmentation.
        targets: names of the targets to build, a subset of :data:`TARGET_BUILDERS`.
        seed: non-negative base seed of the augmentation randomness.
        **target_options: keyword options of the target functions (``sigma``,
            ``things_as_one``, ``include_crowd``, ``ignore_index``, ...); each goes to
            every requested target function that accepts it.

    Call :meth:`set_epoch` at the start of each epoch to draw new augmentations. A
    ``DataLoader`` with ``persistent_workers=True`` keeps copies of the dataset in its
    workers, which do not see a later ``set_epoch``; leave it ``False`` (the default)
    when augmenting.
    """

    def __init__(self, source: Sequence[Sample], categories: CategorySet, transforms: Callable | None = None,
                 targets: Sequence[str] = ("semantic", "instances", "deeplab"), seed: int = 0,
                 **target_options):
        unknown = [name for name in targets if name not in TARGET_BUILDERS]
        if unknown:
            raise ValueError(f"unknown targets {unknown}; choose from {sorted(TARGET_BUILDERS)}")
        if int(seed) < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        accepted = {name: _options_of(TARGET_BUILDERS[name]) for name in targets}
        unused = sorted(set(target_options) - set().union(*accepted.values()))
        if unused:
            valid = sorted(set().union(*accepted.values()))
            raise ValueError(f"options {unused} are accepted by none of the targets {list(targets)}; "
                             f"valid options: {valid}")
        self.source = source
        self.categories = categories
        self.transforms = transforms
        self.targets = tuple(targets)
        self.seed = int(seed)
        self.epoch = 0
        self.target_options = {name: {k: v for k, v in target_options.items() if k in accepted[name]}
                               for name in self.targets}

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentations of ``epoch`` (a non-negative int)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def generator(self, index: int) -> np.random.Generator:
        """The augmentation generator of item ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        sample = self.source[index]
        if not isinstance(sample, Sample):
            raise TypeError(f"source item {index} is a {type(sample).__name__}, expected a Sample")
        if self.transforms is not None:
            sample = self.transforms(sample, self.generator(index))

        image, _ = check_sample(sample)
        image = image_tensor(image)
        target = {"panoptic": sample.panoptic, "image_id": sample.image_id, "file_name": sample.file_name}
        where = f"image {sample.image_id!r} ({sample.file_name})"
        for name in self.targets:
            target[name] = TARGET_BUILDERS[name](sample.panoptic, self.categories, source=where,
                                                 **self.target_options[name])
        return image, target

    def __repr__(self) -> str:
        return (f"PanopticDataset({len(self)} images, targets={list(self.targets)}, seed={self.seed}, "
                f"epoch={self.epoch}, transforms={self.transforms!r})")


def _collate_values(values: list):
    """Stack tensors, collate dicts key by key, keep anything else as a list."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, dict):
        return {key: _collate_values([v[key] for v in values]) for key in first}
    return list(values)


def collate_panoptic(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, dict]:
    """Batch :class:`PanopticDataset` items for a ``DataLoader`` (``collate_fn``).

    Returns:
        images: float32 [B, 3, H, W].
        targets: dict with the items' keys. Dense tensors are stacked along a new first
            axis (``semantic`` [B, H, W]; in ``deeplab``: ``center`` [B, 1, H, W],
            ``offset`` [B, 2, H, W], the weights [B, H, W]). ``instances`` stays a list
            of B per-image dicts (torchvision's detection format: N varies per image),
            and so do ``panoptic``, ``image_id`` and ``deeplab["center_points"]``.

    Raises:
        ValueError: the batch is empty, or its images differ in size (crop or resize
            them to one size in the transforms).
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    sizes = [tuple(image.shape) for image in images]
    if len(set(sizes)) > 1:
        listed = ", ".join(f"{t.get('image_id')!r}: {s[1]}x{s[2]}" for t, s in zip(targets, sizes))
        raise ValueError(f"images of one batch must have one size (add a RandomCrop or a resize to "
                         f"the transforms); got {listed}")
    collated = {}
    for key in targets[0]:
        values = [t[key] for t in targets]
        collated[key] = values if key == "instances" else _collate_values(values)
    return torch.stack(images), collated


def collate_mixed_sizes(batch: Sequence[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor | list, dict]:
    """:func:`collate_panoptic` when the images share one size; otherwise the images as a list
    of float32 [3, H_i, W_i] and every target key as a list of the B items.

    A real validation split mixes image sizes (COCO's val: a short side of 480 to 640 px, either
    orientation), and so does training on whole images (``TrainRecipe.whole_images``, the
    published detectors); an evaluation must score it whatever the sizes, image by image if need be
    (:func:`panopticlab.engine.evaluator.iter_predictions` does).
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    if len({tuple(image.shape) for image, _ in batch}) == 1:
        return collate_panoptic(batch)
    targets = [target for _, target in batch]
    return [image for image, _ in batch], {key: [t[key] for t in targets] for key in targets[0]}
