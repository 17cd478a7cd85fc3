"""The built-in dataset: procedural scenes of stuff and things, deterministic from (seed, split, index).

No chapter needs a download: every image of the book can come from :func:`render_scene`.
A scene is a landscape of five stuff classes (sky on top, walls standing on the
horizon, road, grass and water below it) over which the four thing classes (disc, box,
triangle, ring) are drawn at many sizes, in groups of touching and overlapping
same-class instances, plus crowds of tiny objects and unlabelled clutter. It is built
to exercise what makes panoptic segmentation hard:

* colour alone does not tell the stuff classes apart: sky and water share one palette
  and differ in texture (gradient vs ripples) and position; road and wall share another
  (speckle vs bricks, below vs above the horizon);
* thing colours are drawn from one distribution for all classes, so the shape decides
  the class; members of a group share a colour, so separating them is the instance
  problem that semantic segmentation alone cannot solve;
* a ring has a hole that shows what is behind it;
* occlusion: an object drawn later wins its pixels, so the annotation never overlaps;
* crowds (``iscrowd=1``), void bands along some object boundaries, void clutter.

Annotation rules: every non-crowd thing instance is one segment, every stuff class
present is one segment, a crowd is one segment, clutter is void (id 0), and an instance
with fewer than :data:`MIN_VISIBLE_AREA` visible pixels is removed (its pixels become
void). :func:`second_annotation` draws the same scene as a second, independent human
annotator would (:class:`AnnotatorNoise`), for the human-consistency study of chapter 2.

Reproducibility: all randomness comes from ``np.random.default_rng`` seeded with the
tuple ``(seed, split, index, stream)``, never from global state. Separate streams for
the layout, the textures and each annotator keep them independent; in particular the
layout is drawn in relative coordinates before the image size is used, so one index
gives the same arrangement at every size. Everything computed from the random numbers
uses only operations that IEEE 754 rounds exactly (+, -, *, /, sqrt, comparisons,
floor, rint), one numpy operation at a time: numpy's vectorised sin and exp, and
compiled code that fuses a multiply with an add, differ in the last bit between CPUs,
and one flipped boundary pixel would make two machines' datasets differ. The bytes
therefore depend only on NumPy's random streams, which NumPy keeps stable for a given
version (it formally guarantees them for one build on one machine).
"""
from __future__ import annotations

import colorsys
import math
import operator
from dataclasses import dataclass, fields
from typing import Iterator, Sequence

import numpy as np
from scipy import ndimage

from .categories import Category, CategorySet
from .panoptic import VOID, PanopticSegmentation, Segment
from .sample import Sample

# Things have ids 1..4 and stuff 11..15: sparse ids, like COCO's, so that nothing can
# silently confuse a category id with a contiguous train id.
SYNTHETIC_CATEGORIES = CategorySet([
    Category(1, "disc", True, (220, 20, 60)),
    Category(2, "box", True, (0, 0, 142)),
    Category(3, "triangle", True, (250, 170, 30)),
    Category(4, "ring", True, (119, 11, 32)),
    Category(11, "sky", False, (70, 130, 180)),
    Category(12, "road", False, (128, 64, 128)),
    Category(13, "grass", False, (107, 142, 35)),
    Category(14, "wall", False, (102, 102, 156)),
    Category(15, "water", False, (0, 80, 100)),
])

DISC, BOX, TRIANGLE, RING = 1, 2, 3, 4
SKY, ROAD, GRASS, WALL, WATER = 11, 12, 13, 14, 15
CLUTTER = 0  # category of drawn objects that no annotator labels: they become void

SPLITS = ("train", "val", "test")
MIN_SIZE = 16  # smallest image side: below it the smallest things no longer fit
# largest image side: a 4096 x 4096 scene takes about 1 GB while it is drawn; a larger one
# is a typing mistake more often than a wish, and would fill the memory before failing
MAX_SIZE = 4096
MIN_VISIBLE_AREA = 4  # pixels: thing segments with less visible area become void
SMALLEST_THING = 6.0  # pixels: extent of the smallest thing instance

# Independent random streams of one scene.
_LAYOUT, _TEXTURE, _FIRST_ANNOTATOR, _SECOND_ANNOTATOR = range(4)

# Segment ids: stuff category c -> _STUFF_SEGMENT_ID[c] (1..5); things from _FIRST_THING_ID on.
_STUFF_SEGMENT_ID = np.zeros(max(SYNTHETIC_CATEGORIES.ids) + 1, dtype=np.int32)
_STUFF_SEGMENT_ID[SYNTHETIC_CATEGORIES.stuff_ids] = np.arange(1, len(SYNTHETIC_CATEGORIES.stuff_ids) + 1)
_FIRST_THING_ID = len(SYNTHETIC_CATEGORIES.stuff_ids) + 1


# =======================================================================================
# arguments and seeding
# =======================================================================================
def image_shape(size: int | Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` of an image size given as one side or as ``(H, W)``; ValueError if a side is
    below :data:`MIN_SIZE` or above :data:`MAX_SIZE`."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        shape = (int(size), int(size))
    else:
        try:
            height, width = (operator.index(side) for side in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be an int or a pair (H, W) of ints, got {size!r}") from None
        shape = (height, width)
    if min(shape) < MIN_SIZE:
        raise ValueError(f"image size {shape[0]}x{shape[1]} is too small: both sides must be at least {MIN_SIZE}")
    if max(shape) > MAX_SIZE:
        raise ValueError(f"image size {shape[0]}x{shape[1]} is too large: both sides must be at most {MAX_SIZE}")
    return shape


def _check_scene_args(index, seed, split) -> tuple[int, int]:
    try:
        index, seed = operator.index(index), operator.index(seed)
    except TypeError:
        raise ValueError(f"index and seed must be ints, got index={index!r}, seed={seed!r}") from None
    if index < 0:
        raise ValueError(f"scene index must be non-negative, got {index}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; the synthetic dataset has the splits {', '.join(SPLITS)}")
    return index, seed


def _rng(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """The generator of one random stream of one scene; splits differ by their position in SPLITS."""
    return np.random.default_rng((seed, SPLITS.index(split), index, stream))


def _unit_vector(rng: np.random.Generator) -> tuple[float, float]:
    """A uniformly random direction ``(cos, sin)`` without evaluating trigonometric functions."""
    while True:
        a, b = rng.standard_normal(2).tolist()
        norm = math.sqrt(a * a + b * b)
        if norm > 1e-6:
            return a / norm, b / norm


def _hsv(rng: np.random.Generator, hue, saturation, value) -> np.ndarray:
    """A colour drawn uniformly from HSV ranges ``(low, high)``, as float32 RGB in [0, 255]."""
    h, s, v = (rng.uniform(*r) for r in (hue, saturation, value))
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * np.float32(255)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """(H, W) float32 noise: standard normal values on a grid of spacing ``cell`` pixels, bilinearly interpolated."""
    height, width = shape
    knots = rng.standard_normal((int(height / cell) + 2, int(width / cell) + 2), dtype=np.float32)
    fy = np.arange(height, dtype=np.float32) / np.float32(cell)
    iy, ty = fy.astype(np.intp), (fy - np.floor(fy))[:, None]
    rows = knots[iy] * (1 - ty) + knots[iy + 1] * ty  # (H, grid width)
    fx = np.arange(width, dtype=np.float32) / np.float32(cell)
    ix, tx = fx.astype(np.intp), fx - np.floor(fx)
    return rows[:, ix] * (1 - tx) + rows[:, ix + 1] * tx


# =======================================================================================
# the stuff layout
# =======================================================================================
@dataclass(frozen=True)
class _StuffLayout:
    """Where the stuff classes lie, in relative coordinates (y down, x across, both 0..1).

    Attributes:
        horizon: (K,) heights of the horizon at K equally spaced points from the left
            edge to the right edge, joined by straight lines.
        indoor: a wall fills everything above the horizon instead of sky.
        walls: ``(left, right, top)`` of buildings standing on the horizon.
        ground: stuff category below the horizon, unless a patch or the road covers it.
        patches: ``(category, cy, cx, ry, rx)`` ellipses on the ground (a lake, a meadow).
        road: ``(x at the horizon, x at the bottom, half width at the bottom)``, or None.
    """

    horizon: np.ndarray
    indoor: bool
    walls: tuple[tuple[float, float, float], ...]
    ground: int
    patches: tuple[tuple[int, float, float, float, float], ...]
    road: tuple[float, float, float] | None

    @property
    def horizon_low(self) -> float:
        """The lowest point of the horizon (relative y)."""
        return float(self.horizon.max())


def _draw_stuff_layout(rng: np.random.Generator) -> _StuffLayout:
    horizon = rng.uniform(0.3, 0.55)
    heights = horizon + rng.uniform(-0.04, 0.04, size=5)
    indoor = bool(rng.random() < 0.15)
    walls = []
    for _ in range(0 if indoor else int(rng.choice(4, p=[0.35, 0.3, 0.2, 0.15]))):
        left = rng.uniform(-0.1, 0.85)
        walls.append((left, left + rng.uniform(0.12, 0.45), horizon * rng.uniform(0.05, 0.8)))
    ground = int(rng.choice([GRASS, ROAD, WATER], p=[0.5, 0.25, 0.25]))
    patches = []
    for category, probability in ((WATER, 0.45), (GRASS, 0.35)):
        if ground != category and rng.random() < probability:
            patches.append((category, rng.uniform(horizon + 0.12, 0.95), rng.uniform(0.1, 0.9),
                            rng.uniform(0.06, 0.18), rng.uniform(0.15, 0.4)))
    road = None
    if ground != ROAD and rng.random() < 0.6:
        road = (rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.9), rng.uniform(0.12, 0.3))
    return _StuffLayout(heights, indoor, tuple(walls), ground, tuple(patches), road)


def _piecewise_linear(values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The polyline through ``values`` at K equally spaced points of [0, 1], evaluated at ``t`` in [0, 1].

    Written out with numpy operations rather than ``np.interp`` so that no compiled
    code may fuse a multiply and an add, which some CPUs round differently.
    """
    position = np.clip(t, 0.0, 1.0) * (len(values) - 1)
    left = np.minimum(np.floor(position).astype(np.intp), len(values) - 2)
    fraction = position - left
    return values[left] * (1 - fraction) + values[left + 1] * fraction


def _rasterize_stuff(layout: _StuffLayout, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 stuff category of every pixel (the background behind any object)."""
    height, width = shape
    y = ((np.arange(height) + 0.5) / height)[:, None]
    x = ((np.arange(width) + 0.5) / width)[None, :]
    above = y < _piecewise_linear(layout.horizon, x)
    stuff = np.full(shape, layout.ground, dtype=np.uint8)
    for category, cy, cx, ry, rx in layout.patches:
        stuff[((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1] = category
    if layout.road is not None:
        top_x, bottom_x, half_width = layout.road
        top = float(_piecewise_linear(layout.horizon, np.array([top_x]))[0])
        depth = np.clip((y - top) / (1 - top), 0, 1)  # 0 at the horizon, 1 at the bottom: perspective
        centre = top_x + depth * (bottom_x - top_x)
        stuff[np.abs(x - centre) <= 0.01 + depth * half_width] = ROAD
    stuff[above] = WALL if layout.indoor else SKY
    for left, right, top in layout.walls:
        stuff[above & (x >= left) & (x < right) & (y >= top)] = WALL
    return stuff


# =======================================================================================
# stuff textures
# =======================================================================================
def _triangle_wave(t: np.ndarray) -> np.ndarray:
    """Period-1 wave in [-1, 1]: a stripe pattern built from floor alone."""
    return 4 * np.abs(t - np.floor(t + 0.5)) - 1


def _paint_stuff(stuff: np.ndarray, layout: _StuffLayout, rng: np.random.Generator,
                 grain: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 image of the stuff textures.

    Args:
        stuff: (H, W) uint8 stuff category per pixel.
        grain: (H, W) float32 standard normal per-pixel noise.
    """
    height, width = stuff.shape
    scale = min(height, width) / 128  # texture periods grow with the image: alike at every size
    cloud = _smooth_noise(rng, stuff.shape, cell=max(4.0, 16 * scale))
    blue = dict(hue=(0.54, 0.61), saturation=(0.3, 0.6), value=(0.65, 0.92))
    grey = dict(hue=(0.0, 1.0), saturation=(0.0, 0.12), value=(0.35, 0.65))
    # sky and water share a palette, and so do road and wall: a colour lookup cannot separate them
    base = {SKY: _hsv(rng, **blue), WATER: _hsv(rng, **blue), ROAD: _hsv(rng, **grey), WALL: _hsv(rng, **grey),
            GRASS: _hsv(rng, hue=(0.2, 0.32), saturation=(0.45, 0.75), value=(0.35, 0.6))}
    ripple_period = float(rng.uniform(3.0, 6.0)) * max(scale, 0.75)
    brick_height = max(3, round(float(rng.uniform(4.0, 7.0)) * scale))
    brick_width = 2 * brick_height + int(rng.integers(0, brick_height + 1))
    horizon = np.float32(sum(layout.horizon.tolist()) / len(layout.horizon))

    shade = np.empty(stuff.shape, dtype=np.float32)
    present = np.flatnonzero(np.bincount(stuff.ravel(), minlength=len(_STUFF_SEGMENT_ID)))
    for category in present.tolist():
        where = stuff == category
        # only the rows the class occupies: sky and ground each fill part of the image
        occupied = np.flatnonzero(where.any(axis=1))
        rows = slice(occupied[0], occupied[-1] + 1)
        row = np.arange(rows.start, rows.stop)[:, None]  # (h, 1)
        y = (row.astype(np.float32) + np.float32(0.5)) / np.float32(height)
        if category == SKY:  # paler towards the horizon, faint clouds
            texture = 60 * (y - horizon) + 6 * cloud[rows]
        elif category == WATER:  # horizontal ripples that wobble, darker further down
            ripple = _triangle_wave(row.astype(np.float32) / np.float32(ripple_period) + 0.7 * cloud[rows])
            texture = 20 * ripple + 4 * grain[rows] - 30 * (y - horizon)
        elif category == ROAD:  # asphalt speckle
            texture = 11 * grain[rows] + 4 * cloud[rows]
        elif category == WALL:  # bricks in staggered rows, dark mortar between them
            col = np.arange(width)
            joints = np.stack([col % brick_width == 0, (col + brick_width // 2) % brick_width == 0])  # (2, W)
            mortar = (row % brick_height == 0) | joints[row[:, 0] // brick_height % 2]
            texture = np.where(mortar, np.float32(-45), np.float32(0)) + 3 * grain[rows] + 5 * cloud[rows]
        else:  # grass: coarse grain and patchy shading
            texture = 16 * grain[rows] + 10 * cloud[rows]
        np.copyto(shade[rows], texture, where=where[rows])
    palette = np.zeros((len(_STUFF_SEGMENT_ID), 3), dtype=np.float32)
    for category, colour in base.items():
        palette[category] = colour
    return palette[stuff] + shade[..., None]


# =======================================================================================
# things
# =======================================================================================
@dataclass(frozen=True)
class _Shape:
    """One drawn object, in pixel units.

    Attributes:
        category_id: thing category, or CLUTTER for objects no annotator labels.
        cy, cx: centre (row, column).
        radius: half the extent along the major axis.
        aspect: minor / major axis, in (0, 1].
        axis: ``(cos, sin)`` of the major axis.
        colour: RGB in [0, 255]; for clutter the first of its two checker colours.
        hole: inner / outer radius of a ring (0 for the other shapes).
        crowd: index of the crowd the object belongs to, -1 if it is an instance of its own.
        colour2: second checker colour of clutter.
    """

    category_id: int
    cy: float
    cx: float
    radius: float
    aspect: float
    axis: tuple[float, float]
    colour: tuple[float, float, float]
    hole: float = 0.0
    crowd: int = -1
    colour2: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def bounding_radius(self) -> float:
        if self.category_id == BOX:
            return self.radius * math.sqrt(1 + self.aspect * self.aspect)
        return self.radius

    def footprint(self, shape: tuple[int, int]):
        """Pixels covered, clipped to the image.

        Returns:
            ``(rows, cols, mask)``: the slices of the bounding window and its (h, w) bool
            mask, or None when the object lies outside the image.
        """
        reach = self.bounding_radius
        y0, y1 = max(0, math.floor(self.cy - reach)), min(shape[0], math.floor(self.cy + reach) + 1)
        x0, x1 = max(0, math.floor(self.cx - reach)), min(shape[1], math.floor(self.cx + reach) + 1)
        if y0 >= y1 or x0 >= x1:
            return None
        dy = (np.arange(y0, y1) - self.cy)[:, None]
        dx = (np.arange(x0, x1) - self.cx)[None, :]
        cos, sin = self.axis
        u = dx * cos + dy * sin  # along the major axis
        v = dy * cos - dx * sin  # along the minor axis
        a, b = self.radius, self.radius * self.aspect
        if self.category_id == BOX:
            mask = (np.abs(u) <= a) & (np.abs(v) <= b)
        elif self.category_id == TRIANGLE:
            # vertices (a, 0) and (-a/2, +-b sqrt(3)/2): equilateral when a == b
            mask = (u >= -a / 2) & (np.abs(v) * math.sqrt(3) * a <= b * (a - u))
        else:  # disc, ring and clutter are ellipses; a ring lacks its inner part
            q = (u / a) ** 2 + (v / b) ** 2
            mask = q <= 1
            if self.category_id == RING:
                mask &= q >= self.hole * self.hole
        return slice(y0, y1), slice(x0, x1), mask


def _thing_colour(rng: np.random.Generator) -> np.ndarray:
    # one distribution for every class: the shape, not the colour, tells the class
    return _hsv(rng, hue=(0.0, 1.0), saturation=(0.35, 1.0), value=(0.3, 1.0))


def _jittered(colour: np.ndarray, rng: np.random.Generator, amount: float) -> tuple[float, float, float]:
    return tuple(np.clip(colour + rng.uniform(-amount, amount, size=3), 0, 255).tolist())


def _new_shape(rng: np.random.Generator, category_id: int, cy: float, cx: float, extent: float,
               colour: tuple[float, float, float], crowd: int = -1) -> _Shape:
    """A shape of the category with random proportions and orientation; ``extent`` in pixels."""
    if category_id == BOX:
        aspect = rng.uniform(0.5, 1.0)
    elif category_id == TRIANGLE:
        aspect = rng.uniform(0.75, 1.0)
    else:
        aspect = rng.uniform(0.8, 1.0)
    hole = rng.uniform(0.45, 0.65) if category_id == RING else 0.0
    return _Shape(category_id, cy, cx, extent / 2, aspect, _unit_vector(rng), colour, hole, crowd)


def _draw_objects(rng: np.random.Generator, shape: tuple[int, int], layout: _StuffLayout) -> list[_Shape]:
    """Every object of a scene in drawing order (a later object covers an earlier one).

    The random draws do not depend on ``shape``, only their conversion to pixels: the
    same index gives the same arrangement at every size.
    """
    height, width = shape
    side = min(height, width)
    largest = side / 2  # a box this wide covers a quarter of a square image
    things = SYNTHETIC_CATEGORIES.thing_ids

    def position(on_ground: float = 0.7) -> tuple[float, float]:
        top = layout.horizon_low if rng.random() < on_ground else 0.05
        return rng.uniform(top, 1.0) * height, rng.uniform(0.0, 1.0) * width

    def extent() -> float:
        # cubing a uniform number favours small objects; max(...) keeps the range valid on tiny images
        u = rng.random()
        return SMALLEST_THING + max(largest - SMALLEST_THING, 0.0) * (u * u * u)

    objects: list[_Shape] = []
    if rng.random() < 0.3:  # clutter: a blob of overlapping ellipses, left unlabelled
        cy, cx = position(on_ground=0.5)
        colours = [tuple(_thing_colour(rng).tolist()) for _ in range(2)]
        for _ in range(int(rng.integers(2, 5))):
            dy, dx = rng.uniform(-0.05, 0.05, size=2) * side
            objects.append(_Shape(CLUTTER, cy + dy, cx + dx, rng.uniform(0.04, 0.09) * side, rng.uniform(0.5, 1.0),
                                  _unit_vector(rng), colours[0], colour2=colours[1]))
    if rng.random() < 0.4:  # a crowd: many tiny same-class objects annotated as one segment
        category = int(rng.choice(things))
        cy, cx = position()
        spread = rng.uniform(0.05, 0.1) * side
        colour = _thing_colour(rng)
        for _ in range(int(rng.integers(8, 17))):
            dy, dx = rng.uniform(-1.0, 1.0, size=2) * spread
            objects.append(_new_shape(rng, category, cy + dy, cx + dx, rng.uniform(5.0, 9.0),
                                      _jittered(colour, rng, 40), crowd=0))

    instances = []
    for _ in range(int(rng.integers(1, 4))):  # groups of touching / overlapping same-class instances
        category = int(rng.choice(things))
        cy, cx = position()
        size = extent()
        colour = _thing_colour(rng)  # one colour for the group: only the shape outlines separate them
        previous = None
        for _ in range(int(rng.integers(2, 4))):
            member_extent = min(max(size * rng.uniform(0.7, 1.3), SMALLEST_THING), max(largest, SMALLEST_THING))
            if previous is not None:
                ux, uy = _unit_vector(rng)
                gap = (previous.radius + member_extent / 2) * rng.uniform(0.5, 0.95)
                cy, cx = previous.cy + gap * uy, previous.cx + gap * ux
            previous = _new_shape(rng, category, cy, cx, member_extent, _jittered(colour, rng, 12))
            instances.append(previous)
    for _ in range(int(rng.integers(2, 8))):  # single instances
        category = int(rng.choice(things))
        cy, cx = position()
        instances.append(_new_shape(rng, category, cy, cx, extent(), tuple(_thing_colour(rng).tolist())))
    # painter's order: objects lower in the image are nearer and drawn later
    instances.sort(key=lambda s: s.cy + s.radius)
    return objects + instances


def _paint_object(image: np.ndarray, obj: _Shape, rows: slice, cols: slice, mask: np.ndarray,
                  light: tuple[float, float]) -> None:
    """Paint one object's visible pixels into the (H, W, 3) float32 image, in place."""
    ys, xs = np.nonzero(mask)
    if obj.category_id == CLUTTER:  # a checker pattern, unlike anything annotated
        cell = max(2, round(obj.radius / 3))
        odd = ((ys + rows.start) // cell + (xs + cols.start) // cell) % 2 == 1
        colours = np.where(odd[:, None], np.float32(obj.colour2), np.float32(obj.colour))
    else:  # flat colour lit from one side of the scene
        ly, lx = light
        lit = ((ys + rows.start - obj.cy) * ly + (xs + cols.start - obj.cx) * lx) / obj.bounding_radius
        colours = np.asarray(obj.colour, dtype=np.float32) * (1 + np.float32(0.25) * lit.astype(np.float32))[:, None]
    image[rows, cols][ys, xs] = colours


# =======================================================================================
# the scene
# =======================================================================================
@dataclass
class _Scene:
    """Everything drawn for one scene, before any annotator looks at it.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        stuff: (H, W) uint8 stuff category of the background at every pixel.
        owner: (H, W) int32 index of the topmost object at each pixel, -1 where the
            background shows.
        categories: (N,) int64 category of each object (CLUTTER for unlabelled ones).
        crowd: (N,) int64 crowd index of each object, -1 for instances of their own.
    """

    image: np.ndarray
    stuff: np.ndarray
    owner: np.ndarray
    categories: np.ndarray
    crowd: np.ndarray


def _build_scene(index: int, size, seed: int, split: str) -> _Scene:
    """Draw scene ``index``: layout and objects from one stream, textures and noise from another."""
    shape = image_shape(size)
    index, seed = _check_scene_args(index, seed, split)
    layout_rng, texture_rng = _rng(seed, split, index, _LAYOUT), _rng(seed, split, index, _TEXTURE)
    layout = _draw_stuff_layout(layout_rng)
    objects = _draw_objects(layout_rng, shape, layout)
    light = _unit_vector(layout_rng)

    stuff = _rasterize_stuff(layout, shape)
    grain = texture_rng.standard_normal(shape, dtype=np.float32)
    image = _paint_stuff(stuff, layout, texture_rng, grain)
    owner = np.full(shape, -1, dtype=np.int32)
    for k, obj in enumerate(objects):
        footprint = obj.footprint(shape)
        if footprint is None:
            continue
        rows, cols, mask = footprint
        owner[rows, cols][mask] = k
        _paint_object(image, obj, rows, cols, mask, light)
    # a faint sensor noise over everything and a global exposure
    image += np.float32(2.5) * grain[..., None]
    image *= np.float32(texture_rng.uniform(0.85, 1.1))
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    categories = np.array([obj.category_id for obj in objects], dtype=np.int64)
    crowd = np.array([obj.crowd for obj in objects], dtype=np.int64)
    return _Scene(image, stuff, owner, categories, crowd)


# =======================================================================================
# annotators
# =======================================================================================
@dataclass(frozen=True)
class AnnotatorNoise:
    """How a human annotator departs from the exact scene; defaults are the second annotator's.

    Attributes:
        jitter: size in pixels of a smooth random displacement of every boundary
            (standard deviation at the grid knots; 0 traces boundaries exactly).
        jitter_scale: spacing in pixels of that displacement's grid: how far apart
            boundary wobbles are.
        p_miss: probability that an instance smaller than ``miss_area`` is missed; a
            missed object becomes void or the stuff behind it, half and half.
        miss_area: area in pixels below which an instance counts as tiny.
        p_merge: probability that two touching same-class instances, both smaller than
            ``merge_area``, are annotated as one.
        merge_area: area in pixels below which touching instances may be merged.
        p_split: probability that an instance whose visible part falls into pieces (an
            occluder cuts through it) is annotated as one segment per piece.
        p_crowd_split: probability that a crowd is annotated instance by instance.
        p_void_band: probability that an instance gets a void band around it.
        void_band: width in pixels of that band, drawn on the stuff around the instance.
    """

    jitter: float = 1.0
    jitter_scale: float = 12.0
    p_miss: float = 0.5
    miss_area: int = 40
    p_merge: float = 0.5
    merge_area: int = 32 * 32
    p_split: float = 0.5
    p_crowd_split: float = 0.3
    p_void_band: float = 0.5
    void_band: int = 2

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if (not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool)
                    or not math.isfinite(value)):
                raise ValueError(f"annotator noise {f.name} must be a finite number, got {value!r}")
            if f.name.startswith("p_") and not 0 <= value <= 1:
                raise ValueError(f"annotator noise {f.name} is a probability and must lie in [0, 1], got {value}")
            if value < 0:
                raise ValueError(f"annotator noise {f.name} must be non-negative, got {value}")
        if self.jitter_scale < 1:
            raise ValueError(f"annotator noise jitter_scale must be at least 1 pixel, got {self.jitter_scale}")

    @classmethod
    def from_options(cls, **options) -> "AnnotatorNoise":
        """Build from keyword options, with a ValueError naming any unknown option."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown annotator noise options {unknown}; valid: {sorted(known)}")
        return cls(**options)


FIRST_ANNOTATOR = AnnotatorNoise(jitter=0.0, p_miss=0.0, p_merge=0.0, p_split=0.0, p_crowd_split=0.0,
                                 p_void_band=0.5, void_band=1)
"""The reference annotation of :func:`render_scene`: exact boundaries, thin void bands."""


def _displace(layers: Sequence[np.ndarray], rng: np.random.Generator, amount: float, scale: float):
    """The (H, W) layers resampled at positions moved by one smooth random displacement field."""
    height, width = layers[0].shape
    dy = _smooth_noise(rng, (height, width), scale) * np.float32(amount)
    dx = _smooth_noise(rng, (height, width), scale) * np.float32(amount)
    ys = np.clip(np.rint(np.arange(height, dtype=np.float32)[:, None] + dy), 0, height - 1).astype(np.intp)
    xs = np.clip(np.rint(np.arange(width, dtype=np.float32)[None, :] + dx), 0, width - 1).astype(np.intp)
    return [layer[ys, xs] for layer in layers]


def _touching_pairs(id_map: np.ndarray, is_thing: np.ndarray) -> np.ndarray:
    """(P, 2) sorted unique pairs ``(a < b)`` of thing ids that are 4-neighbours somewhere."""
    a = np.concatenate([id_map[:, :-1].ravel(), id_map[:-1, :].ravel()])
    b = np.concatenate([id_map[:, 1:].ravel(), id_map[1:, :].ravel()])
    keep = (a != b) & is_thing[a] & is_thing[b]
    low, high = np.minimum(a[keep], b[keep]).astype(np.int64), np.maximum(a[keep], b[keep]).astype(np.int64)
    codes = np.unique(low * len(is_thing) + high)
    return np.stack([codes // len(is_thing), codes % len(is_thing)], axis=1)


@dataclass
class _Draft:
    """An annotation in progress: an (H, W) int32 id map and what its ids mean.

    Ids ``1.._FIRST_THING_ID-1`` are the stuff segments, larger ids thing segments, 0 void.

    Attributes:
        id_map: (H, W) int32 segment ids.
        stuff: (H, W) uint8 stuff category behind every pixel, as this annotator sees it.
        category_of: segment id -> category id.
        crowd_ids: ids of crowd segments.
        next_id: the id the next new segment gets (every id in use is smaller).
    """

    id_map: np.ndarray
    stuff: np.ndarray
    category_of: dict[int, int]
    crowd_ids: set[int]
    next_id: int

    def areas(self) -> np.ndarray:
        """(next_id,) pixel count of every id."""
        return np.bincount(self.id_map.ravel(), minlength=self.next_id)

    def thing_ids(self) -> list[int]:
        """Thing segments present, in increasing id order (the order random draws follow)."""
        return [i for i in np.flatnonzero(self.areas()).tolist() if i >= _FIRST_THING_ID]

    def to_panoptic(self) -> PanopticSegmentation:
        """The finished segmentation (same result as :meth:`PanopticSegmentation.from_id_map`).

        With small ids, ``bincount`` and ``find_objects`` measure every segment in linear
        time; the sort behind ``np.unique`` would be the slowest step of drawing a scene.
        """
        areas = self.areas()
        boxes = ndimage.find_objects(self.id_map)
        segments = []
        for segment_id in np.flatnonzero(areas).tolist():
            if segment_id == VOID:
                continue
            rows, cols = boxes[segment_id - 1]
            segments.append(Segment(id=segment_id, category_id=self.category_of[segment_id],
                                    iscrowd=int(segment_id in self.crowd_ids), area=int(areas[segment_id]),
                                    bbox=(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)))
        return PanopticSegmentation(self.id_map, segments)


def _trace(scene: _Scene, owner: np.ndarray, stuff: np.ndarray, rng: np.random.Generator,
           p_crowd_split: float) -> _Draft:
    """Label every object as its own segment (crowd members as their crowd's), clutter as void."""
    num_objects = len(scene.categories)
    segment_of = np.arange(_FIRST_THING_ID, _FIRST_THING_ID + num_objects, dtype=np.int32)
    crowd_ids = set()
    for crowd in np.unique(scene.crowd[scene.crowd >= 0]).tolist():
        members = np.flatnonzero(scene.crowd == crowd)
        if not rng.random() < p_crowd_split:
            segment_of[members] = segment_of[members[0]]
            crowd_ids.add(int(segment_of[members[0]]))
    segment_of[scene.categories == CLUTTER] = VOID
    category_of = {int(s): int(c) for s, c in zip(segment_of, scene.categories) if s != VOID}
    category_of.update({int(_STUFF_SEGMENT_ID[c]): c for c in SYNTHETIC_CATEGORIES.stuff_ids})
    # owner -1 (background) takes the stuff segment: the lookup table is shifted by one for it
    id_map = np.concatenate([np.int32([-1]), segment_of])[owner + 1]
    background = id_map < 0
    id_map[background] = _STUFF_SEGMENT_ID[stuff[background]]
    return _Draft(id_map, stuff, category_of, crowd_ids, _FIRST_THING_ID + num_objects)


def _miss_tiny(draft: _Draft, rng: np.random.Generator, p_miss: float, miss_area: float) -> None:
    """Overlook tiny instances: each becomes void or the stuff behind it, half and half."""
    area = draft.areas()
    for i in draft.thing_ids():
        if i not in draft.crowd_ids and area[i] < miss_area and rng.random() < p_miss:
            missed = draft.id_map == i
            draft.id_map[missed] = VOID if rng.random() < 0.5 else _STUFF_SEGMENT_ID[draft.stuff[missed]]


def _split_cut(draft: _Draft, rng: np.random.Generator, p_split: float) -> None:
    """Annotate the pieces of an instance that an occluder cuts apart as separate objects."""
    boxes = ndimage.find_objects(draft.id_map)
    for i in draft.thing_ids():
        if i in draft.crowd_ids or not rng.random() < p_split:
            continue
        window = draft.id_map[boxes[i - 1]]  # a view: writing to it relabels the id map
        pieces, count = ndimage.label(window == i)
        for piece in range(2, count + 1):
            window[pieces == piece] = draft.next_id
            draft.category_of[draft.next_id] = draft.category_of[i]
            draft.next_id += 1


def _merge_touching(draft: _Draft, rng: np.random.Generator, p_merge: float, merge_area: float) -> None:
    """Annotate touching small same-class instances as one (chains of merges join transitively)."""
    area = draft.areas()
    is_thing = np.zeros(draft.next_id, dtype=bool)
    is_thing[_FIRST_THING_ID:] = True
    merged = [(a, b) for a, b in _touching_pairs(draft.id_map, is_thing).tolist()
              if draft.category_of[a] == draft.category_of[b] and not {a, b} & draft.crowd_ids
              and max(area[a], area[b]) < merge_area and rng.random() < p_merge]
    if not merged:
        return
    a, b = np.array(merged).T
    from scipy.sparse import coo_matrix  # only the second annotator merges: import when used
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(draft.next_id, draft.next_id))
    _, component = connected_components(graph, directed=False)
    # every id maps to the smallest id of its connected component
    smallest = np.full(component.max() + 1, draft.next_id)
    np.minimum.at(smallest, component, np.arange(draft.next_id))
    draft.id_map = smallest[component][draft.id_map].astype(np.int32)


def _remove_specks(draft: _Draft) -> None:
    """Thing segments with fewer than MIN_VISIBLE_AREA pixels become void: nobody annotates those."""
    too_small = draft.areas() < MIN_VISIBLE_AREA
    too_small[:_FIRST_THING_ID] = False
    draft.id_map[too_small[draft.id_map]] = VOID


def _void_bands(draft: _Draft, rng: np.random.Generator, p_band: float, width: int) -> None:
    """Leave a void margin ``width`` pixels wide on the stuff around some instances."""
    banded = np.zeros(draft.next_id, dtype=bool)
    for i in draft.thing_ids():
        banded[i] = rng.random() < p_band
    if banded.any():
        band = ndimage.binary_dilation(banded[draft.id_map], iterations=width)
        draft.id_map[band & (draft.id_map > VOID) & (draft.id_map < _FIRST_THING_ID)] = VOID


def _annotate(scene: _Scene, noise: AnnotatorNoise, rng: np.random.Generator) -> PanopticSegmentation:
    """One annotator's panoptic segmentation of the scene; every random draw comes from ``rng``."""
    owner, stuff = scene.owner, scene.stuff
    if noise.jitter > 0:
        owner, stuff = _displace((owner, stuff), rng, noise.jitter, noise.jitter_scale)
    draft = _trace(scene, owner, stuff, rng, noise.p_crowd_split)
    if noise.p_miss > 0:
        _miss_tiny(draft, rng, noise.p_miss, noise.miss_area)
    if noise.p_split > 0:
        _split_cut(draft, rng, noise.p_split)
    if noise.p_merge > 0:
        _merge_touching(draft, rng, noise.p_merge, noise.merge_area)
    _remove_specks(draft)
    if noise.p_void_band > 0 and noise.void_band > 0:
        _void_bands(draft, rng, noise.p_void_band, int(noise.void_band))
    return draft.to_panoptic()


# =======================================================================================
# public API
# =======================================================================================
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
    scene = _build_scene(index, size, seed, split)
    panoptic = _annotate(scene, FIRST_ANNOTATOR, _rng(seed, split, index, _FIRST_ANNOTATOR))
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
    scene = _build_scene(index, size, seed, split)
    return _annotate(scene, options, _rng(seed, split, index, _SECOND_ANNOTATOR))


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
        _check_scene_args(0, seed, split)
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
