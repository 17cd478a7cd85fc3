"""Augmentations applied consistently to an image and its panoptic annotation.

Each transform maps a :class:`~panopticlab.data.sample.Sample` to a new one and never
modifies its input. The image is resampled bilinearly and the id map by nearest
neighbour, both with half-pixel centres (torch's ``bilinear`` with
``align_corners=False`` and ``nearest-exact``), so that they stay aligned. After every
geometric change the segments' ``area`` and ``bbox`` are recounted from the id map and
segments left without pixels are dropped, so the result passes
:meth:`~panopticlab.data.panoptic.PanopticSegmentation.validate`.

Randomness comes only from the generator passed in the call, a
``numpy.random.Generator`` or a ``torch.Generator``: the same generator state gives the
same result. The deterministic operations under the random ones are public too
(:func:`resize_sample`, :func:`crop_sample`, :func:`hflip_sample`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence, Union

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from .errors import PanopticFormatError
from .panoptic import VOID, PanopticSegmentation, segment_statistics
from .sample import Sample

__all__ = [
    "Generator",
    "IMAGENET_MEAN_UINT8",
    "check_sample",
    "resize_sample",
    "crop_sample",
    "hflip_sample",
    "RandomScale",
    "RandomShortestEdge",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Compose",
]

Generator = Union[np.random.Generator, torch.Generator]

# Padding an image with its dataset mean makes the padded pixels 0 after normalisation.
IMAGENET_MEAN_UINT8 = (124, 116, 104)


# ---------------------------------------------------------------------------------------
# random numbers from either kind of generator
# ---------------------------------------------------------------------------------------
def _uniform(rng: Generator, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(rng, torch.Generator):
        return low + (high - low) * float(torch.rand((), generator=rng, dtype=torch.float64))
    if isinstance(rng, np.random.Generator):
        return float(rng.uniform(low, high))
    raise TypeError(f"expected a numpy.random.Generator or a torch.Generator, got {type(rng).__name__}")


def _integer(rng: Generator, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` (both ends included)."""
    if isinstance(rng, torch.Generator):
        return int(torch.randint(low, high + 1, (), generator=rng))
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(low, high, endpoint=True))
    raise TypeError(f"expected a numpy.random.Generator or a torch.Generator, got {type(rng).__name__}")


# ---------------------------------------------------------------------------------------
# deterministic operations
# ---------------------------------------------------------------------------------------
def check_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """The sample's image (H, W, 3) uint8 and id map (H, W), after checking they match.

    Raises:
        PanopticFormatError: naming the image, for a wrong image shape or dtype or an id
            map of another size.
    """
    image, id_map = np.asarray(sample.image), np.asarray(sample.panoptic.id_map)
    where = f"image {sample.image_id!r} ({sample.file_name})"
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PanopticFormatError(f"{where}: image must be (H, W, 3) uint8, got shape {image.shape} "
                                  f"and dtype {image.dtype}")
    if id_map.shape != image.shape[:2]:
        raise PanopticFormatError(f"{where}: id map of shape {id_map.shape} does not match image "
                                  f"of shape {image.shape[:2]}")
    return image, id_map


def _rebuild(sample: Sample, image: np.ndarray, id_map: np.ndarray) -> Sample:
    """A sample with new pixels; segments recounted, those without pixels dropped."""
    stats = segment_statistics(id_map)
    segments = [replace(s, area=stats[s.id][0], bbox=stats[s.id][1])
                for s in sample.panoptic.segments if s.id in stats]
    return replace(sample, image=np.ascontiguousarray(image),
                   panoptic=PanopticSegmentation(np.ascontiguousarray(id_map), segments))


def resize_sample(sample: Sample, size: tuple[int, int]) -> Sample:
    """Resize to ``size = (height, width)``: image bilinear (antialiased when shrinking),
    id map nearest-exact."""
    image, id_map = check_sample(sample)
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize image {sample.image_id!r} to {height}x{width}")
    if (height, width) == id_map.shape:
        return _rebuild(sample, image.copy(), id_map.copy())
    # torch cannot wrap a read-only array (PIL-decoded images are); copy those only
    image = image if image.flags.writeable else image.copy()
    image_t = TF.resize(torch.from_numpy(image).permute(2, 0, 1), [height, width],
                        interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    # torch resizes integer tensors exactly, so ids up to 2^24 - 1 survive
    id_t = TF.resize(torch.from_numpy(id_map.astype(np.int64))[None], [height, width],
                     interpolation=TF.InterpolationMode.NEAREST_EXACT)
    return _rebuild(sample, image_t.permute(1, 2, 0).numpy(), id_t[0].numpy().astype(id_map.dtype))


def crop_sample(sample: Sample, top: int, left: int, height: int, width: int,
                pad_value_image: Sequence[int] = IMAGENET_MEAN_UINT8) -> Sample:
    """The window ``rows top..top+height-1``, ``columns left..left+width-1``.

    The window may reach outside the image (``top`` or ``left`` negative, or beyond
    the far edge): outside pixels are padded with ``pad_value_image`` in the image
    and with void (id 0) in the panoptic map.
    """
    image, id_map = check_sample(sample)
    if height < 1 or width < 1:
        raise ValueError(f"crop size must be positive, got {height}x{width}")
    out_image = np.empty((height, width, 3), dtype=np.uint8)
    out_image[:] = np.asarray(pad_value_image, dtype=np.uint8)
    out_ids = np.full((height, width), VOID, dtype=id_map.dtype)
    # overlap of the window with the image, in image and in window coordinates
    y0, y1 = max(top, 0), min(top + height, id_map.shape[0])
    x0, x1 = max(left, 0), min(left + width, id_map.shape[1])
    if y0 < y1 and x0 < x1:
        out_image[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
        out_ids[y0 - top:y1 - top, x0 - left:x1 - left] = id_map[y0:y1, x0:x1]
    return _rebuild(sample, out_image, out_ids)


def hflip_sample(sample: Sample) -> Sample:
    """Mirror left-right."""
    image, id_map = check_sample(sample)
    width = id_map.shape[1]
    # areas stay, boxes mirror: no need to recount the pixels
    segments = [replace(s, bbox=(width - s.bbox[0] - s.bbox[2], *s.bbox[1:])) for s in sample.panoptic.segments]
    return replace(sample, image=np.ascontiguousarray(image[:, ::-1]),
                   panoptic=PanopticSegmentation(np.ascontiguousarray(id_map[:, ::-1]), segments))


# ---------------------------------------------------------------------------------------
# random transforms
# ---------------------------------------------------------------------------------------
class RandomScale:
    """Rescale by a factor drawn uniformly from ``[min_scale, max_scale]``.

    With ``step`` the factor is drawn from ``min_scale, min_scale + step, ..., max_scale``
    instead (Panoptic-DeepLab's "0.5 to 2.0, step 0.1"). The new size is
    ``round(H * s) x round(W * s)``, at least 1 x 1.
    """

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0, step: float | None = None):
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        if step is not None and step <= 0:
            raise ValueError(f"step must be positive, got {step}")
        self.min_scale, self.max_scale, self.step = float(min_scale), float(max_scale), step

    def sample_scale(self, rng: Generator) -> float:
        if self.step is None:
            return _uniform(rng, self.min_scale, self.max_scale)
        num_steps = int(np.floor((self.max_scale - self.min_scale) / self.step + 1e-9))
        return self.min_scale + self.step * _integer(rng, 0, num_steps)

    def __call__(self, sample: Sample, rng: Generator) -> Sample:
        scale = self.sample_scale(rng)
        height, width = np.asarray(sample.panoptic.id_map).shape
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        if size == (height, width):
            return sample  # e.g. RandomScale(1, 1): nothing to do, and samples are never modified in place
        return resize_sample(sample, size)

    def __repr__(self) -> str:
        return f"RandomScale(min_scale={self.min_scale}, max_scale={self.max_scale}, step={self.step})"


class RandomShortestEdge:
    """Resize to a short side drawn from ``short_sides``, the long side at most ``max_size``.

    detectron2's ``ResizeShortestEdge`` with "choice" sampling, which the published
    detectors train with: the scale is ``short / min(H, W)``, lowered to ``max_size /
    max(H, W)`` where the long side would exceed ``max_size``; the new size is
    ``int(H * scale + 0.5) x int(W * scale + 0.5)``, as there.
    """

    def __init__(self, short_sides: Sequence[int], max_size: int | None = None):
        short_sides = tuple(int(side) for side in short_sides)
        if not short_sides or min(short_sides) < 1:
            raise ValueError(f"short_sides must be one or more positive sizes, got {short_sides}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be positive or None, got {max_size}")
        self.short_sides, self.max_size = short_sides, max_size

    def size_for(self, height: int, width: int, short: int) -> tuple[int, int]:
        scale = short / min(height, width)
        if self.max_size is not None and max(height, width) * scale > self.max_size:
            scale = self.max_size / max(height, width)
        return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))

    def __call__(self, sample: Sample, rng: Generator) -> Sample:
        short = self.short_sides[_integer(rng, 0, len(self.short_sides) - 1)]
        height, width = np.asarray(sample.panoptic.id_map).shape
        size = self.size_for(height, width, short)
        return sample if size == (height, width) else resize_sample(sample, size)

    def __repr__(self) -> str:
        return f"RandomShortestEdge(short_sides={self.short_sides}, max_size={self.max_size})"


class RandomCrop:
    """Cut a random ``size = (height, width)`` window (an int means square).

    Along an axis where the image is larger than the window, the window's start is
    uniform over the positions inside the image. Where the image is smaller, it is
    padded to the window size and its position inside the window is uniform too, not
    always top-left: Panoptic-DeepLab's report finds random padding helps the instance
    branch. Padding is ``pad_value_image`` in the image and void in the panoptic map.
    """

    def __init__(self, size: int | tuple[int, int], pad_value_image: Sequence[int] = IMAGENET_MEAN_UINT8):
        height, width = (size, size) if isinstance(size, int) else size
        if height < 1 or width < 1:
            raise ValueError(f"crop size must be positive, got {size}")
        self.size = (int(height), int(width))
        self.pad_value_image = tuple(int(v) for v in pad_value_image)

    def __call__(self, sample: Sample, rng: Generator) -> Sample:
        image_h, image_w = np.asarray(sample.panoptic.id_map).shape
        crop_h, crop_w = self.size
        # a negative start means padding before the image
        top = _integer(rng, min(0, image_h - crop_h), max(0, image_h - crop_h))
        left = _integer(rng, min(0, image_w - crop_w), max(0, image_w - crop_w))
        if (top, left, crop_h, crop_w) == (0, 0, image_h, image_w):
            return sample  # the window is the image
        return crop_sample(sample, top, left, crop_h, crop_w, self.pad_value_image)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, pad_value_image={self.pad_value_image})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, sample: Sample, rng: Generator) -> Sample:
        # always draw, so that later transforms see the same stream whatever p is
        flip = _uniform(rng) < self.p
        return hflip_sample(sample) if flip else sample

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply transforms in order, all drawing from the one generator."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(t) for t in self.transforms)
        return f"Compose([\n    {inner}\n])"
