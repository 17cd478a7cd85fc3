"""Random scenes and simulated predictions, to exercise and explain the metric.

A :class:`Scene` is a small description of an image: stuff regions (a Voronoi diagram
of a few seed points with wavy borders) and a list of thing :class:`Shape` objects
painted in order, the later over the earlier, so same-class instances touch and
occlude; the shapes are drawn by the built-in dataset's :mod:`panopticlab.data.shapes`,
upright. :func:`render` turns it into a :class:`PanopticSegmentation` with void pixels
on some borders.

:func:`perturb_scene` plays a model: it shifts and rescales masks, merges neighbouring
instances of a class, splits instances, drops some, swaps categories, adds false
positives and moves stuff borders. Every error PQ knows how to count appears with
known causes, which is what the tests, the speed benchmark and chapter 2 need.
Everything is deterministic given the ``numpy.random.Generator``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..data.atomic import write_json, write_png
from ..data.categories import CategorySet
from ..data.panoptic import MAX_SEGMENT_ID, VOID, PanopticSegmentation, Segment, id_to_rgb
from ..data.scenes import SYNTHETIC_CATEGORIES
from ..data.shapes import THING_SHAPES, inside

SHAPE_KINDS = THING_SHAPES
_RING_HOLE = math.sqrt(0.4)  # a ring's inner / outer radius: its hole is 40% of its ellipse


@dataclass(frozen=True)
class Shape:
    """One thing instance to paint.

    Attributes:
        kind: ``disc``, ``box``, ``triangle`` or ``ring``.
        category_id: its thing category.
        center: (y, x) in pixels.
        radius: half its height in pixels.
        aspect: width / height.
        iscrowd: part of a crowd region.
        group: shapes with the same group become one segment (a merge, or one crowd region).
        split_angle: if set, the shape is cut in two segments along a line at this angle (radians).
    """

    kind: str
    category_id: int
    center: tuple[float, float]
    radius: float
    aspect: float = 1.0
    iscrowd: bool = False
    group: int | None = None
    split_angle: float | None = None


@dataclass(frozen=True)
class Scene:
    """A description of one panoptic image; :func:`render` draws it.

    Attributes:
        size: (H, W).
        stuff_seeds: (k, 2) float (y, x) seed points of the stuff regions.
        stuff_categories: (k,) their stuff category ids (repeats make several segments of one class).
        things: the shapes, painted in order.
        stuff_waves: (2,) phases of the waviness of the stuff borders.
        void_fraction: fraction of segment border pixels set to void.
        seed: seeds the void pixels and the segment ids.
    """

    size: tuple[int, int]
    stuff_seeds: np.ndarray
    stuff_categories: tuple[int, ...]
    things: tuple[Shape, ...] = field(default_factory=tuple)
    stuff_waves: tuple[float, float] = (0.0, 0.0)
    void_fraction: float = 0.0
    seed: int = 0


def _kind_of(categories: CategorySet, category_id: int) -> str:
    name = categories.name(category_id)
    return name if name in SHAPE_KINDS else SHAPE_KINDS[categories.thing_ids.index(category_id) % len(SHAPE_KINDS)]


def random_shape(rng: np.random.Generator, size: tuple[int, int], categories: CategorySet,
                 radius_range: tuple[float, float] | None = None) -> Shape:
    """A thing of a random category, position and (log-uniform) size."""
    h, w = size
    low, high = radius_range or (2.0, max(3.0, min(h, w) / 4))
    category_id = int(rng.choice(categories.thing_ids))
    return Shape(kind=_kind_of(categories, category_id), category_id=category_id,
                 center=(float(rng.uniform(0, h)), float(rng.uniform(0, w))),
                 radius=float(np.exp(rng.uniform(np.log(low), np.log(high)))),
                 aspect=float(np.exp(rng.uniform(-0.5, 0.5))))


def random_scene(rng: np.random.Generator, size: tuple[int, int] = (480, 640),
                 categories: CategorySet = SYNTHETIC_CATEGORIES, num_things: tuple[int, int] = (4, 24),
                 num_stuff: tuple[int, int] = (1, 4), crowd_probability: float = 0.1,
                 void_fraction: float = 0.3, one_crowd_region_per_category: bool = True,
                 unique_stuff: bool = True) -> Scene:
    """A random scene.

    Args:
        size: (H, W) in pixels.
        num_things, num_stuff: inclusive ranges of the numbers of shapes and stuff regions.
        crowd_probability: chance that a shape is (part of) a crowd region.
        void_fraction: fraction of segment border pixels that become void.
        one_crowd_region_per_category: crowd shapes of one category form a single segment, as in
            COCO; if False each is its own crowd segment.
        unique_stuff: at most one stuff region per category (COCO's ground truth); if False a
            category may own several regions, hence several segments.
    """
    h, w = size
    stuff_ids = categories.stuff_ids
    things = []
    if stuff_ids:
        k = int(rng.integers(num_stuff[0], num_stuff[1] + 1))
        stuff = rng.choice(stuff_ids, size=min(k, len(stuff_ids)) if unique_stuff else k, replace=not unique_stuff)
    else:
        stuff = np.zeros(0, int)
    seeds = rng.uniform((0, 0), (h, w), size=(len(stuff), 2))
    if categories.thing_ids:
        crowd_group = {}
        for index in range(int(rng.integers(num_things[0], num_things[1] + 1))):
            shape = random_shape(rng, size, categories)
            if rng.random() < crowd_probability:
                group = crowd_group.setdefault(shape.category_id, -1 - index) if one_crowd_region_per_category \
                    else -1 - index
                shape = replace(shape, iscrowd=True, group=group)
            things.append(shape)
    return Scene(size=(h, w), stuff_seeds=seeds, stuff_categories=tuple(int(c) for c in stuff),
                 things=tuple(things), stuff_waves=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, size=2)),
                 void_fraction=void_fraction, seed=int(rng.integers(2**31)))


def _shape_mask(shape: Shape, size: tuple[int, int]) -> tuple[slice, slice, np.ndarray] | None:
    """The shape's pixels in its box widened to whole pixels, clipped to the image:
    ``(rows, cols, mask)``, or None when that box misses the image.

    Upright: semi-axes ``radius`` down and ``radius * aspect`` across (at least half a
    pixel each), a triangle inscribed in that box with its apex up, a ring's hole
    :data:`_RING_HOLE` of it.
    """
    h, w = size
    (cy, cx), ry = shape.center, max(shape.radius, 0.5)
    rx = max(ry * shape.aspect, 0.5)
    y0, y1 = max(int(np.floor(cy - ry)), 0), min(int(np.ceil(cy + ry)) + 1, h)
    x0, x1 = max(int(np.floor(cx - rx)), 0), min(int(np.ceil(cx + rx)) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return None
    up = -(np.arange(y0, y1)[:, None] - cy)  # the shape's axis points up
    across = np.arange(x0, x1)[None, :] - cx
    return slice(y0, y1), slice(x0, x1), inside(shape.kind, up, across, ry, rx, _RING_HOLE, inscribed="box")


def _stuff_labels(scene: Scene) -> np.ndarray:
    """(H, W) int32 index of the stuff region of every pixel: nearest seed, with wavy borders."""
    h, w = scene.size
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    phase = scene.stuff_waves
    wobble = 6 * np.sin(ys / 23 + phase[0]) + 6 * np.sin(xs / 31 + phase[1])
    distance = np.stack([np.sqrt((ys - sy) ** 2 + (xs - sx) ** 2) for sy, sx in scene.stuff_seeds]) + wobble
    return np.argmin(distance, axis=0).astype(np.int32)


def render(scene: Scene) -> PanopticSegmentation:
    """Draw a scene: stuff regions, then the things in order, then void on some borders.

    Segment ids are random in [1, 256**3 - 1] like COCO's colour-derived ids; a shape that
    is entirely hidden, or a region entirely void, gets no segment.
    """
    rng = np.random.default_rng(scene.seed)
    h, w = scene.size
    labels = np.zeros((h, w), np.int32)  # dense labels 1..count while drawing
    category_of, iscrowd = [0], [0]  # by label

    def new_label(category_id: int, crowd: bool) -> int:
        category_of.append(int(category_id))
        iscrowd.append(int(crowd))
        return len(category_of) - 1

    if len(scene.stuff_categories):
        labels = _stuff_labels(scene) + 1
        for category_id in scene.stuff_categories:
            new_label(category_id, False)
    label_of_group = {}
    for shape in scene.things:
        drawn = _shape_mask(shape, scene.size)
        if drawn is None:
            continue
        rows, cols, mask = drawn
        if shape.group is not None and shape.group in label_of_group:
            label = label_of_group[shape.group]
        else:
            label = new_label(shape.category_id, shape.iscrowd)
            if shape.group is not None:
                label_of_group[shape.group] = label
        values = np.full(mask.shape, label, np.int32)
        if shape.split_angle is not None:
            ys = np.arange(rows.start, rows.stop)[:, None] - shape.center[0]
            xs = np.arange(cols.start, cols.stop)[None, :] - shape.center[1]
            half = (np.cos(shape.split_angle) * xs + np.sin(shape.split_angle) * ys) > 0
            values[half] = new_label(shape.category_id, shape.iscrowd)
        labels[rows, cols][mask] = values[mask]
    if scene.void_fraction > 0:
        border = ndimage.maximum_filter(labels, size=3) != ndimage.minimum_filter(labels, size=3)
        labels[border & (rng.random((h, w)) < scene.void_fraction)] = VOID
    return _from_dense_labels(labels, np.array(category_of), np.array(iscrowd), rng)


def _from_dense_labels(labels: np.ndarray, category_of: np.ndarray, iscrowd: np.ndarray,
                       rng: np.random.Generator) -> PanopticSegmentation:
    """Give the drawn labels random COCO-like ids and build the segment records."""
    area = np.bincount(labels.ravel(), minlength=len(category_of))
    boxes = ndimage.find_objects(labels, max_label=len(category_of) - 1)
    present = np.flatnonzero(area[1:]) + 1
    lut = np.zeros(len(category_of), np.int32)
    lut[present] = _random_ids(rng, len(present))
    segments = []
    for label in present.tolist():
        rows, cols = boxes[label - 1]
        segments.append(Segment(id=int(lut[label]), category_id=int(category_of[label]),
                                iscrowd=int(iscrowd[label]), area=int(area[label]),
                                bbox=(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)))
    return PanopticSegmentation(lut[labels], segments)


def _random_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    ids = np.unique(rng.integers(1, MAX_SEGMENT_ID + 1, size=count * 2 + 8))
    return rng.permutation(ids)[:count]


def perturb_scene(scene: Scene, rng: np.random.Generator, categories: CategorySet = SYNTHETIC_CATEGORIES,
                  shift: float = 0.1, scale: float = 0.1, drop: float = 0.1, swap: float = 0.05,
                  merge: float = 0.1, split: float = 0.1, false_positives: float = 2.0,
                  stuff_jitter: float = 10.0, stuff_swap: float = 0.1, void_fraction: float | None = None) -> Scene:
    """A simulated prediction of a scene.

    Args:
        shift: standard deviation of each shape's displacement, in units of its radius.
        scale: standard deviation of the log of its size change.
        drop: probability that a shape is missed.
        swap: probability that a shape gets another thing category.
        merge: probability that a shape is merged with the nearest earlier shape of its category.
        split: probability that a shape is split in two segments.
        false_positives: mean number of invented shapes.
        stuff_jitter: standard deviation of the stuff seed displacement, in pixels.
        stuff_swap: probability that a stuff region gets another stuff category.
        void_fraction: fraction of border pixels the prediction leaves void (default: the scene's).

    Predictions have no crowd regions, like a model's output.
    """
    things = []
    thing_ids = categories.thing_ids
    for index, shape in enumerate(scene.things):
        if rng.random() < drop:
            continue
        cy, cx = shape.center
        dy, dx = rng.normal(0, shift * shape.radius, size=2)
        moved = replace(shape, center=(cy + dy, cx + dx), radius=shape.radius * float(np.exp(rng.normal(0, scale))),
                        iscrowd=False, group=None)
        if rng.random() < swap and len(thing_ids) > 1:
            moved = replace(moved, category_id=int(rng.choice([c for c in thing_ids if c != shape.category_id])))
        if rng.random() < split:
            moved = replace(moved, split_angle=float(rng.uniform(0, np.pi)))
        elif rng.random() < merge:
            same = [k for k, other in enumerate(things) if other.category_id == moved.category_id]
            if same:
                nearest = min(same, key=lambda k: np.hypot(things[k].center[0] - cy, things[k].center[1] - cx))
                group = things[nearest].group if things[nearest].group is not None else index
                things[nearest] = replace(things[nearest], group=group, split_angle=None)
                moved = replace(moved, group=group, split_angle=None)
        things.append(moved)
    for _ in range(int(rng.poisson(false_positives))):
        things.append(random_shape(rng, scene.size, categories))
    stuff = list(scene.stuff_categories)
    for k in range(len(stuff)):
        if rng.random() < stuff_swap and len(categories.stuff_ids) > 1:
            stuff[k] = int(rng.choice([c for c in categories.stuff_ids if c != stuff[k]]))
    seeds = scene.stuff_seeds + rng.normal(0, stuff_jitter, size=scene.stuff_seeds.shape)
    return Scene(size=scene.size, stuff_seeds=seeds, stuff_categories=tuple(stuff), things=tuple(things),
                 stuff_waves=scene.stuff_waves,
                 void_fraction=scene.void_fraction if void_fraction is None else void_fraction,
                 seed=int(rng.integers(2**31)))


def random_pair(rng: np.random.Generator, size: tuple[int, int] = (480, 640),
                categories: CategorySet = SYNTHETIC_CATEGORIES, scene_options: dict | None = None,
                prediction_options: dict | None = None) -> tuple[PanopticSegmentation, PanopticSegmentation]:
    """A random ground truth and a simulated prediction of it."""
    scene = random_scene(rng, size, categories, **(scene_options or {}))
    prediction = perturb_scene(scene, rng, categories, **(prediction_options or {}))
    return render(scene), render(prediction)


def write_result_set(folder, pairs, categories: CategorySet = SYNTHETIC_CATEGORIES) -> dict[str, Path]:
    """Write (ground truth, prediction) pairs in COCO panoptic format, as ``pq_compute`` reads them.

    Layout: ``folder/gt.json`` + ``folder/gt/<n>.png`` and ``folder/pred.json`` +
    ``folder/pred/<n>.png``, image ids ``0, 1, ...``. Segment records are written as
    they are, so the segments must carry their areas and boxes (:func:`render` sets them).

    Returns:
        ``{"gt_json", "gt_folder", "pred_json", "pred_folder"}``.
    """
    folder = Path(folder)
    paths = {"gt_json": folder / "gt.json", "gt_folder": folder / "gt",
             "pred_json": folder / "pred.json", "pred_folder": folder / "pred"}
    images, gt_annotations, pred_annotations = [], [], []
    for image_id, (gt, pred) in enumerate(pairs):
        png_name = f"{image_id:06d}.png"
        write_png(paths["gt_folder"] / png_name, id_to_rgb(gt.id_map))
        write_png(paths["pred_folder"] / png_name, id_to_rgb(pred.id_map))
        height, width = gt.shape
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "height": height, "width": width})
        gt_annotations.append({"image_id": image_id, "file_name": png_name,
                               "segments_info": [s.to_coco() for s in gt.segments]})
        pred_annotations.append({"image_id": image_id, "file_name": png_name,
                                 "segments_info": [s.to_coco() for s in pred.segments]})
    write_json(paths["gt_json"], {"images": images, "annotations": gt_annotations,
                                  "categories": categories.to_coco()})
    write_json(paths["pred_json"], {"images": images, "annotations": pred_annotations,
                                    "categories": categories.to_coco()})
    return paths
