"""The built-in dataset's scenes: procedural images of stuff and things, deterministic from (seed, split, index).

:func:`build_scene` draws what a camera would see; no annotator has looked at it yet
(:mod:`panopticlab.data.annotator` does that, :mod:`panopticlab.data.synthetic` puts the
two together as a dataset). A scene is a landscape of five stuff classes (sky on top,
walls standing on the horizon, road, grass and water below it) over which the four
thing classes (disc, box, triangle, ring, drawn by :mod:`panopticlab.data.shapes`) are
drawn at many sizes, in groups of touching and overlapping same-class instances, plus
crowds of tiny objects and unlabelled clutter. It is built to exercise what makes
panoptic segmentation hard:

* colour alone does not tell the stuff classes apart: sky and water share one palette
  and differ in texture (gradient vs ripples) and position; road and wall share another
  (speckle vs bricks, below vs above the horizon);
* thing colours are drawn from one distribution for all classes, so the shape decides
  the class; members of a group share a colour, so separating them is the instance
  problem that semantic segmentation alone cannot solve;
* a ring has a hole that shows what is behind it;
* occlusion: an object drawn later wins its pixels, so the annotation never overlaps;
* crowds (``iscrowd=1``), void bands along some object boundaries, void clutter.

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
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .categories import Category, CategorySet
from .shapes import inside

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
SMALLEST_THING = 6.0  # pixels: extent of the smallest thing instance

# Independent random streams of one scene, by name: the layout and the objects, the
# textures and the sensor noise, and each annotator's choices.
STREAMS = ("layout", "texture", "first annotator", "second annotator")
_NUM_IDS = max(SYNTHETIC_CATEGORIES.ids) + 1  # category ids are below it: tables indexed by id have this length


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


def check_scene_args(index, seed, split) -> tuple[int, int]:
    """``(index, seed)`` as ints; ValueError unless both are non-negative ints and ``split`` is one of :data:`SPLITS`."""
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


def scene_rng(seed: int, split: str, index: int, stream: str) -> np.random.Generator:
    """The generator of one of the :data:`STREAMS` of one scene; splits and streams differ by their positions."""
    return np.random.default_rng((seed, SPLITS.index(split), index, STREAMS.index(stream)))


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


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
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
    cloud = smooth_noise(rng, stuff.shape, cell=max(4.0, 16 * scale))
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
    present = np.flatnonzero(np.bincount(stuff.ravel(), minlength=_NUM_IDS))
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
    palette = np.zeros((_NUM_IDS, 3), dtype=np.float32)
    for category, colour in base.items():
        palette[category] = colour
    return palette[stuff] + shade[..., None]


# =======================================================================================
# things
# =======================================================================================
# the shape each category is drawn as (clutter: ellipses, as discs are)
_SHAPE_OF = {DISC: "disc", BOX: "box", TRIANGLE: "triangle", RING: "ring", CLUTTER: "disc"}


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
        mask = inside(_SHAPE_OF[self.category_id], u, v, self.radius, self.radius * self.aspect, self.hole)
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
class DrawnScene:
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


def build_scene(index: int, size, seed: int, split: str) -> DrawnScene:
    """Draw scene ``index`` of a split (arguments as in :func:`~panopticlab.data.synthetic.render_scene`):
    layout and objects from one stream, textures and noise from another."""
    shape = image_shape(size)
    index, seed = check_scene_args(index, seed, split)
    layout_rng, texture_rng = scene_rng(seed, split, index, "layout"), scene_rng(seed, split, index, "texture")
    layout = _draw_stuff_layout(layout_rng)
    objects = _draw_objects(layout_rng, shape, layout)
    light = _unit_vector(layout_rng)

    stuff = _rasterize_stuff(layout, shape)
    grain = texture_rng.standard_normal(shape, dtype=np.float32)
    image = _paint_stuff(stuff, layout, texture_rng, grain)
    owner = np.full(shape, -1, dtype=np.int32)
    for k, obj in enumerate(objects):
        drawn = obj.footprint(shape)
        if drawn is None:
            continue
        rows, cols, mask = drawn
        owner[rows, cols][mask] = k
        _paint_object(image, obj, rows, cols, mask, light)
    # a faint sensor noise over everything and a global exposure
    image += np.float32(2.5) * grain[..., None]
    image *= np.float32(texture_rng.uniform(0.85, 1.1))
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    categories = np.array([obj.category_id for obj in objects], dtype=np.int64)
    crowd = np.array([obj.crowd for obj in objects], dtype=np.int64)
    return DrawnScene(image, stuff, owner, categories, crowd)
