"""The built-in dataset: procedural scenes of stuff and things, deterministic from (seed, split, index).

No chapter needs a download: every image of the book can come from :func:`render_scene`.
It puts together two parts, each in its own module:

* :mod:`panopticlab.data.scenes` draws a scene: a landscape of five stuff classes under
  the four thing classes (disc, box, triangle, ring, whose outlines
  :mod:`panopticlab.data.shapes` draws), in touching groups, crowds and clutter, built to
  exercise what makes panoptic segmentation hard. The same arguments give the same bytes
  on every machine.
* :mod:`panopticlab.data.annotator` annotates it: the reference annotation
  (:data:`FIRST_ANNOTATOR`) and a second, independent human annotator
  (:class:`AnnotatorNoise`), each from its own random stream of the scene.

Here are the dataset as a collection, :class:`SyntheticPanoptic`, and its writer in COCO
panoptic layout, :func:`write_synthetic_coco`. The public names of the two parts are
importable from here as well.
"""
from __future__ import annotations

import operator
from typing import Iterator

from .annotator import FIRST_ANNOTATOR, MIN_VISIBLE_AREA, AnnotatorNoise, annotate
from .panoptic import PanopticSegmentation
from .sample import Sample
from .scenes import (
    BOX,
    CLUTTER,
    DISC,
    GRASS,
    MAX_SIZE,
    MIN_SIZE,
    RING,
    ROAD,
    SKY,
    SMALLEST_THING,
    SPLITS,
    SYNTHETIC_CATEGORIES,
    TRIANGLE,
    WALL,
    WATER,
    build_scene,
    check_scene_args,
    image_shape,
    scene_rng,
)

__all__ = [
    "SYNTHETIC_CATEGORIES", "DISC", "BOX", "TRIANGLE", "RING", "SKY", "ROAD", "GRASS", "WALL", "WATER", "CLUTTER",
    "SPLITS", "MIN_SIZE", "MAX_SIZE", "MIN_VISIBLE_AREA", "SMALLEST_THING", "image_shape",
    "AnnotatorNoise", "FIRST_ANNOTATOR", "render_scene", "second_annotation", "SyntheticPanoptic",
    "write_synthetic_coco",
]


def render_scene(index: int, size: int | tuple[int, int] = 128, seed: int = 0, split: str = "train") -> Sample:
    """Draw scene ``index`` of a split, with its reference annotation.

    Args:
        index: non-negative scene number.
        size: image side, or ``(H, W)``; both at least :data:`MIN_SIZE`.
        seed: non-negative dataset seed.
        split: ``"train"``, ``"val"`` or ``"test"``; each draws different scenes.

    Returns:
        a :class:`Sample` with the (H, W, 3) uint8 image, a panoptic annotation that
        passes ``validate(SYNTHETIC_CATEGORIES)``, ``image_id = index`` and
        ``file_name = f"{index:012d}.png"``. The same arguments give the same bytes.
    """
    scene = build_scene(index, size, seed, split)
    panoptic = annotate(scene, FIRST_ANNOTATOR, scene_rng(seed, split, index, "first annotator"))
    return Sample(image=scene.image, panoptic=panoptic, image_id=int(index), file_name=f"{int(index):012d}.png")


def second_annotation(index: int, size: int | tuple[int, int] = 128, seed: int = 0, split: str = "train",
                      **noise) -> PanopticSegmentation:
    """The scene of :func:`render_scene` as a second, independent annotator draws it.

    Its boundaries wobble by about ``jitter`` pixels, some tiny instances are missed,
    some touching small same-class instances merged, some occluded instances split and
    some crowds annotated instance by instance, and its void bands are drawn afresh.
    Its randomness is independent of the first annotation's and still a function of
    ``(seed, split, index)``.

    Args:
        index, size, seed, split: as in :func:`render_scene`.
        **noise: fields of :class:`AnnotatorNoise` overriding its defaults, e.g.
            ``jitter=2.0`` or ``p_miss=0.0``.
    """
    options = AnnotatorNoise.from_options(**noise)
    scene = build_scene(index, size, seed, split)
    return annotate(scene, options, scene_rng(seed, split, index, "second annotator"))


class SyntheticPanoptic:
    """A synthetic split as a map-style collection of :class:`Sample` s.

    ``dataset[i]`` is ``render_scene(i, size, seed, split)``, drawn on demand, so any
    ``DataLoader`` worker can serve any index. It is a valid source for
    :class:`~panopticlab.data.dataset.PanopticDataset`. With ``cache`` each scene is kept
    once drawn (a training run visits every scene many times: 400 scenes of 128 px are
    about 26 MB); samples are never modified in place, so sharing them is safe.

    Args:
        num_images: number of scenes, indices ``0..num_images-1``.
        size: image side, or ``(H, W)``.
        seed: non-negative dataset seed.
        split: ``"train"``, ``"val"`` or ``"test"``.
        cache: keep each drawn scene in memory.
    """

    categories = SYNTHETIC_CATEGORIES

    def __init__(self, num_images: int, size: int | tuple[int, int] = 128, seed: int = 0, split: str = "train",
                 cache: bool = False):
        try:
            num_images = operator.index(num_images)
        except TypeError:
            raise ValueError(f"num_images must be an int, got {num_images!r}") from None
        if num_images < 0:
            raise ValueError(f"num_images must be non-negative, got {num_images}")
        self.shape = image_shape(size)
        check_scene_args(0, seed, split)
        self.num_images, self.size, self.seed, self.split = num_images, size, int(seed), split
        self._cache: dict[int, Sample] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_images

    def _checked(self, index) -> int:
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"dataset indices must be integers, got {type(index).__name__}") from None
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for the synthetic {self.split} split "
                             f"of {self.num_images} images")
        return index

    def __getitem__(self, index: int) -> Sample:
        index = self._checked(index)
        if self._cache is None:
            return render_scene(index, self.size, self.seed, self.split)
        if index not in self._cache:
            self._cache[index] = render_scene(index, self.size, self.seed, self.split)
        return self._cache[index]

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    def second_annotation(self, index: int, **noise) -> PanopticSegmentation:
        """The second annotator's version of ``self[index].panoptic`` (see :func:`second_annotation`)."""
        return second_annotation(self._checked(index), self.size, self.seed, self.split, **noise)

    def __repr__(self) -> str:
        return (f"SyntheticPanoptic({self.num_images} images of {self.shape[0]}x{self.shape[1]}, "
                f"seed={self.seed}, split={self.split!r})")


def write_synthetic_coco(root, split: str = "val", num: int = 100, size: int | tuple[int, int] = 256,
                         seed: int = 0, progress: bool = True) -> dict:
    """Write a synthetic split to disk in COCO panoptic layout.

    Produces ``ROOT/<split>/`` (PNG images), ``ROOT/annotations/panoptic_<split>.json``,
    ``ROOT/annotations/panoptic_<split>/`` (panoptic PNGs) through
    :func:`panopticlab.data.coco.write_coco_panoptic`, which leaves the split as it was if
    anything fails, and then ``ROOT/annotations/panoptic_categories.json``, the category
    list alone, as detectron2-style loaders expect it. Every file is written atomically.
    The arguments are checked before anything is written.

    Returns:
        the paths of the split (``json_path``, ``png_folder``, ``image_folder``):
        ``CocoPanoptic(**paths)`` reads it back.
    """
    from .atomic import write_json  # deferred: file I/O is not needed to draw scenes
    from .coco import write_coco_panoptic

    dataset = SyntheticPanoptic(num, size=size, seed=seed, split=split)
    paths = write_coco_panoptic(root, split, dataset, SYNTHETIC_CATEGORIES, progress=progress)
    write_json(paths["json_path"].parent / "panoptic_categories.json", SYNTHETIC_CATEGORIES.to_coco())
    return paths
