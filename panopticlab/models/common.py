"""What every model shares before its first layer and after its last: batching and predictions.

:class:`ImageBatcher` is the one input step of every model of the book: images float
[B, 3, H, W] in [0, 1] (or a list of [3, H, W] of different sizes) are normalised with
ImageNet's mean and std, optionally resized (short side ``min_size``, long side at most
``max_size``, as Mask R-CNN's published setting), and zero-padded into one tensor whose
sides are multiples of ``size_divisible``. It is torchvision's
``GeneralizedRCNNTransform`` (the step torchvision's detectors run, so a full Mask R-CNN
sees exactly what torchvision's weights were trained on), with the resize made optional
and semantic targets resized and padded alongside the detection targets, so a semantic
branch and a detection branch can share one backbone pass over one batch.

:class:`PanopticPrediction` is what every model's ``inference`` returns per image: the
panoptic result plus the raw outputs it was made from, so a chapter can show each step.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from ..data.categories import VOID_LABEL
from ..data.panoptic import PanopticSegmentation

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "SIZES", "Batch", "ImageBatcher", "PanopticModel", "PanopticPrediction",
           "as_image_list",
           "config_for_size", "set_input_size", "stack_if_one_size",
           "detections_to_numpy", "eval_mode", "semantic_targets", "map_train_ids"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The two configurations of every model: ``tiny`` (CPU, minutes, the built-in data) and ``full`` (published).
SIZES = ("tiny", "full")
Config = TypeVar("Config")


def config_for_size(size: str, tiny: Callable[..., Config], full: Callable[..., Config], *args: Any,
                    dataset: str | None = None, **overrides: Any) -> Config:
    """What each model's ``for_categories`` builds for ``size``: ``tiny(*args, **overrides)`` (one
    configuration for every data set) or ``full(*args, dataset=dataset, **overrides)``, the published
    one for ``dataset`` (``None``: ``full``'s own default).

    Raises:
        ValueError: a size other than those of :data:`SIZES`.
    """
    if size == "tiny":
        return tiny(*args, **overrides)
    if size == "full":
        return full(*args, **overrides) if dataset is None else full(*args, dataset=dataset, **overrides)
    raise ValueError(f"unknown size {size!r}; choose 'tiny' or 'full'")


def as_image_list(images: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``images`` as a list of [3, H, W] tensors; a clear error for anything else."""
    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        _check_float(images, "images")
        return list(images.unbind(0))
    images = list(images)
    for index, image in enumerate(images):
        if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image {index} must be a [3, H, W] tensor, got {shape}")
        _check_float(image, f"image {index}")
    return images


def _check_float(images: torch.Tensor, what: str) -> None:
    if not images.is_floating_point():
        raise ValueError(f"{what} must be floating point in [0, 1], got {images.dtype} "
                         f"(uint8 pixels: divide by 255)")


def semantic_targets(targets: torch.Tensor | list | dict | None,
                     images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """The int64 semantic targets (train ids, void 255) for ``images``, given directly or in a
    collated batch dict under ``"semantic"``; a clear error otherwise.

    ``images`` [B, 3, H, W] takes targets [B, H, W]; a list of B images of mixed sizes
    [3, H_i, W_i] (whole images, :func:`~panopticlab.data.dataset.collate_mixed_sizes`) takes a
    list of B targets [H_i, W_i], and gets the list back."""
    if isinstance(targets, dict):
        if "semantic" not in targets:
            raise ValueError(f"the target dict has no 'semantic' entry (keys: {sorted(targets)})")
        targets = targets["semantic"]
    if targets is None:
        raise ValueError("training needs targets: int64 [B, H, W] train ids")
    if not isinstance(images, torch.Tensor):
        images = list(images)
        if not isinstance(targets, (list, tuple)) or len(targets) != len(images):
            raise ValueError(f"{len(images)} images of mixed sizes need a list of {len(images)} semantic targets, "
                             f"got {type(targets).__name__}")
        return [_checked_semantic(target[None], image[None], index)[0]
                for index, (target, image) in enumerate(zip(targets, images))]
    return _checked_semantic(targets, images)


def _checked_semantic(targets: torch.Tensor, images: torch.Tensor, index: int | None = None) -> torch.Tensor:
    where = "" if index is None else f" of image {index}"
    expected = (images.shape[0], *images.shape[-2:])
    if not isinstance(targets, torch.Tensor) or tuple(targets.shape) != expected:
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"semantic targets{where} of shape {shape} for images {tuple(images.shape)}; "
                         f"expected {expected}")
    if targets.is_floating_point():
        raise ValueError(f"semantic targets{where} must be integer train ids, got {targets.dtype}")
    return targets.to(device=images.device, dtype=torch.long)


@dataclass
class Batch:
    """One batch as a model's layers see it.

    Attributes:
        images: torchvision's ``ImageList``: ``tensors`` float [B, 3, H', W'] (normalised,
            resized, zero-padded to multiples of ``size_divisible``) and ``image_sizes``,
            the (h, w) of each image inside the padding.
        original_sizes: (H, W) of each input image, before the resize.
        instances: the detection targets (``boxes`` resized with the image, ``labels``,
            ``masks``), or ``None``.
        semantic: int64 [B, H', W'] semantic targets resized (nearest) and padded with
            the void label, or ``None``.
    """

    images: ImageList
    original_sizes: list[tuple[int, int]]
    instances: list[dict[str, torch.Tensor]] | None = None
    semantic: torch.Tensor | None = None


class ImageBatcher(GeneralizedRCNNTransform):
    """Normalise, resize (optional) and pad a batch; undo it on the outputs. See the module docstring.

    Args:
        min_size: short side after resizing; ``None`` keeps every image's size (the tiny
            models: the data pipeline decides the size).
        max_size: long side at most this (with ``min_size``).
        size_divisible: pad height and width to multiples of this (32: the coarsest
            stride of a ResNet-FPN, so every level aligns).
        scale: with ``min_size=None``, resize every image by this factor instead (the tiny
            detectors: 2, so that the built-in data's smallest objects span a few pixels of
            the stride-4 level); the outputs come back at the input's size.
    """

    def __init__(self, min_size: int | None = None, max_size: int = 1333, size_divisible: int = 32,
                 scale: float | None = None):
        super().__init__(min_size or 800, max_size, list(IMAGENET_MEAN), list(IMAGENET_STD),
                         size_divisible=size_divisible)
        if scale is not None and (min_size is not None or not scale > 0):
            raise ValueError(f"scale must be positive and given without min_size, got scale={scale}, "
                             f"min_size={min_size}")
        self.keep_size = min_size is None
        self.scale = scale
        # False: in training the data pipeline has resized the images already (a recipe's
        # short_sides, as detectron2's data mapper); evaluation still resizes to min_size
        self.resize_in_training = True

    def set_input_size(self, short_side: int) -> None:
        """Resize every image to a short side of ``short_side`` px, the long side capped at the
        published ratio (``max_size / min_size``, 1333 / 800 for COCO) times it; for tiny inputs
        (a test's 64 px images) or a smaller GPU. The weights do not depend on it."""
        if not (isinstance(short_side, int) and short_side > 0):
            raise ValueError(f"the input size must be a positive number of pixels, got {short_side!r}")
        ratio = self.max_size / self.min_size[-1]
        self.min_size, self.max_size, self.keep_size = (short_side,), round(short_side * ratio), False

    def resize(self, image, target=None):
        if self.training and not self.resize_in_training:
            return image, target
        if self.scale is not None and self.scale != 1:
            height, width = image.shape[-2:]
            # torchvision's resize reads the target size from these: this image's, times the scale,
            # for this call only (the batcher's own settings are put back)
            own = self.min_size, self.max_size
            self.min_size = (round(min(height, width) * self.scale),)
            self.max_size = round(max(height, width) * self.scale)
            try:
                return super().resize(image, target)
            finally:
                self.min_size, self.max_size = own
        if self.keep_size:
            return image, target
        return super().resize(image, target)

    def batch(self, images: torch.Tensor | Sequence[torch.Tensor], instances: list[dict] | None = None,
              semantic: torch.Tensor | None = None) -> Batch:
        """Normalise, resize and pad ``images`` with their targets.

        Args:
            images: float [B, 3, H, W] in [0, 1], or a list of [3, H_i, W_i].
            instances: B detection targets (torchvision's format) or ``None``.
            semantic: int64 semantic targets (void: 255), [B, H, W] or a list of B [H_i, W_i]
                (one per image, at its size), or ``None``.
        """
        images = as_image_list(images)
        original_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        if instances is not None and len(instances) != len(images):
            raise ValueError(f"{len(images)} images but {len(instances)} instance targets")
        if semantic is not None:
            sizes = [tuple(target.shape) for target in semantic]
            if len(sizes) != len(images) or sizes != original_sizes:
                raise ValueError(f"semantic targets of sizes {sizes} for images of sizes {original_sizes}")
        image_list, instances = super().forward(images, None if instances is None else [dict(t) for t in instances])
        if semantic is not None:
            semantic = self._resize_and_pad_semantic([t.to(image_list.tensors.device) for t in semantic], image_list)
        return Batch(image_list, original_sizes, instances, semantic)

    @staticmethod
    def _resize_and_pad_semantic(semantic: Sequence[torch.Tensor], images: ImageList) -> torch.Tensor:
        out = torch.full((len(semantic), *images.tensors.shape[-2:]), VOID_LABEL, dtype=torch.long,
                         device=images.tensors.device)
        for index, (h, w) in enumerate(images.image_sizes):
            target = semantic[index]
            if tuple(target.shape) != (h, w):
                target = F.interpolate(target[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
            out[index, :h, :w] = target
        return out

    @staticmethod
    def to_input_size(logits: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
        """Per-pixel logits of the padded batch back at each input image's size.

        Args:
            logits: float [B, C, h, w], at any stride of the padded batch.
            batch: the :class:`Batch` they were computed from.

        Returns:
            B float [C, H_i, W_i], one per input image (:func:`stack_if_one_size` makes them one
            tensor when they have one size): upsampled bilinearly to the padded size, the
            padding cropped, and resized to the original size.
        """
        padded = batch.images.tensors.shape[-2:]
        if tuple(logits.shape[-2:]) != tuple(padded):
            logits = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False)
        outputs = []
        for index, ((h, w), original) in enumerate(zip(batch.images.image_sizes, batch.original_sizes)):
            crop = logits[index:index + 1, :, :h, :w]
            if (h, w) != original:
                crop = F.interpolate(crop, size=original, mode="bilinear", align_corners=False)
            outputs.append(crop[0])
        return outputs


def stack_if_one_size(maps: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """Per-image maps as a model's eval output gives them: one [B, ...] tensor when they have one
    shape (inputs of one size), else the list (whole images of mixed sizes)."""
    if len({tuple(m.shape) for m in maps}) == 1:
        return torch.stack(list(maps))
    return list(maps)


def set_input_size(model: nn.Module, short_side: int) -> int:
    """Make every :class:`ImageBatcher` of ``model`` that resizes its images (the full Mask R-CNN
    family) resize them to a short side of ``short_side`` px instead (:meth:`ImageBatcher.set_input_size`).
    Returns how many it changed: 0 for a model that takes its images at the data's size (PSPNet,
    Panoptic-DeepLab, the tiny models), which is left as it is."""
    batchers = _resizing_batchers(model)
    for batcher in batchers:
        batcher.set_input_size(short_side)
    return len(batchers)


def keep_data_size_in_training(model: nn.Module) -> int:
    """Make every :class:`ImageBatcher` of ``model`` that resizes its images leave them at the
    data's size in training, for a data pipeline that resizes them itself (a recipe's
    ``short_sides``); in evaluation they resize as before. Returns how many it changed."""
    batchers = _resizing_batchers(model)
    for batcher in batchers:
        batcher.resize_in_training = False
    return len(batchers)


def _resizing_batchers(model: nn.Module) -> list[ImageBatcher]:
    """The :class:`ImageBatcher` s of ``model`` that resize their images to a size of their own."""
    return [m for m in model.modules() if isinstance(m, ImageBatcher) and not m.keep_size]


def detections_to_numpy(detections: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """One image's detections as numpy arrays (float32 masks [N, H, W], without the channel axis)."""
    out = {key: value.detach().float().cpu().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
           for key, value in detections.items()}
    if "masks" in out and out["masks"].ndim == 4:
        out["masks"] = out["masks"][:, 0]
    return out


@dataclass
class PanopticPrediction:
    """One image's panoptic result with the raw outputs it was made from.

    Attributes:
        panoptic: the result, in the one representation of the package.
        semantic: (H, W) int64 dataset category ids of the semantic arg-max (void 255
            where a model abstains), or ``None`` for a model without semantic output.
        detections: the detector's output for this image as numpy arrays (``boxes``
            [N, 4] x1 y1 x2 y2, ``scores`` [N], ``labels`` [N], ``category_ids`` [N],
            ``masks`` float [N, H, W] probabilities), or ``None``.
        merge: how the result was fused (e.g. the heuristic merge's steps), or ``None``.
        outputs: further model-specific outputs (logits, heat maps, offsets, ...).
    """

    panoptic: PanopticSegmentation
    semantic: np.ndarray | None = None
    detections: dict[str, np.ndarray] | None = None
    merge: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)


class PanopticModel(nn.Module):
    """What every model of the table offers (torchvision's detection models' contract, extended).

    * ``model(images, targets)`` in training: the named losses;
    * ``model(images)`` in eval mode: the network's raw outputs (maps, detections, logits);
    * :meth:`postprocess`: those outputs to one :class:`PanopticPrediction` per image, no
      network run (so a chapter can post-process kept outputs again);
    * :meth:`inference`: both, in eval mode, without gradients.
    """

    def postprocess(self, outputs: Any) -> list[PanopticPrediction]:
        raise NotImplementedError(f"{type(self).__name__} must define postprocess(outputs)")

    @torch.no_grad()
    def inference(self, images: torch.Tensor | Sequence[torch.Tensor]) -> list[PanopticPrediction]:
        """One :class:`PanopticPrediction` per image: the eval-mode outputs post-processed; the
        model's train/eval mode is restored afterwards."""
        with eval_mode(self):
            outputs = self(images)
        return self.postprocess(outputs)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` in eval mode inside the block; its train/eval mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def map_train_ids(train_ids: torch.Tensor, table: torch.Tensor, ignore_index: int = VOID_LABEL) -> torch.Tensor:
    """``table[train_ids]`` with ``ignore_index`` kept: a model's own labels for the dataset's train ids.

    Args:
        train_ids: int64 [B, H, W] train ids of the dataset's categories, ``ignore_index`` for
            void; or a list of such maps (images of mixed sizes), mapped one by one.
        table: int64 [K]: the model's label of each train id (e.g. a stuff channel, or one
            merged "things" class).

    Raises:
        ValueError: a value that is neither a train id of the table nor void (a category
            the model was not built for).
    """
    if isinstance(train_ids, (list, tuple)):
        return [map_train_ids(ids, table, ignore_index) for ids in train_ids]
    void = train_ids == ignore_index
    known = (train_ids >= 0) & (train_ids < len(table))
    if not bool((known | void).all()):
        bad = sorted(set(train_ids[~(known | void)].unique().tolist()))[:10]
        raise ValueError(f"semantic targets hold train ids {bad}, outside 0..{len(table) - 1} and void "
                         f"{ignore_index} (categories unknown to the model)")
    return torch.where(void, train_ids, table[train_ids.clamp(0, len(table) - 1)])
