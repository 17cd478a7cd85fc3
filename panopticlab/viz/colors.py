"""Colours for categories, segments and instances, and the images painted with them.

The conventions follow COCO's panoptic colouring: a stuff segment is painted in its
category's colour; a thing instance is painted in a *shade* of its category's colour,
so that one glance tells both the class (the hue) and the instance (the shade). The
first instance of a category keeps the category colour itself, and no shade comes
close to another category's colour.

Shades are deterministic: the k-th instance of a category (instances ordered by
segment id) gets the same colour on every call, in every process. Within one image all
segment colours are distinct and differ from black, so a colourised panoptic image can
be read back into its segments.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from ..data.categories import CategorySet
from ..data.errors import PanopticFormatError
from ..data.panoptic import VOID, PanopticSegmentation

RGB = tuple[int, int, int]

BLACK: RGB = (0, 0, 0)
STUFF_GREY: RGB = (90, 90, 90)
#: Distinct colours for instances told apart by index rather than by category (tab20
#: without greys), repeated beyond 14: Panoptic-DeepLab's grouping, UPSNet's instance channels.
INSTANCE_PALETTE: tuple[RGB, ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194),
    (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150),
    (197, 176, 213))

# Shades step through the golden-ratio sequence, which spreads any number of
# instances evenly over the lightness range instead of clustering them.
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_MAX_LIGHTNESS_SHIFT = 0.6  # 0 = category colour, 1 = white / black
_LIGHTNESS_CANDIDATES = 256  # after this many collisions, fall back to small colour jitter
MIN_CATEGORY_DISTANCE = 12  # an instance shade keeps this far (max over R, G, B) from other categories' colours


def as_rgb(color: Sequence[int], what: str = "colour") -> RGB:
    """Check and normalise a colour to a tuple of three ints in ``[0, 255]``."""
    values = tuple(int(round(float(c))) for c in color)
    if len(values) != 3 or not all(0 <= c <= 255 for c in values):
        raise ValueError(f"{what} must be three values in [0, 255], got {tuple(color)!r}")
    return values


def category_color(categories: CategorySet, category_id: int) -> RGB:
    """The RGB colour of a category; :class:`PanopticFormatError` for an unknown id."""
    return as_rgb(categories[category_id].color, f"colour of category {category_id}")


def shade(color: Sequence[int], amount: float) -> RGB:
    """Lighten (``amount > 0``) or darken (``amount < 0``) a colour, keeping its hue.

    ``amount`` in ``[-1, 1]`` is the fraction of the way to white (or black).
    Mixing with white or black is an affine map applied equally to R, G and B, so the
    hue is unchanged up to rounding.
    """
    rgb = np.asarray(color, dtype=np.float64)
    mixed = rgb + amount * (255.0 - rgb) if amount >= 0 else rgb * (1.0 + amount)
    return tuple(int(v) for v in np.clip(np.rint(mixed), 0, 255))


def _shade_candidate(base: RGB, step: int, seed: int, category_id: int) -> RGB:
    """The ``step``-th candidate shade of ``base``; step 0 with seed 0 is ``base`` itself."""
    if step < _LIGHTNESS_CANDIDATES:
        u = (step * _GOLDEN + seed * np.sqrt(2.0)) % 1.0
        return shade(base, _MAX_LIGHTNESS_SHIFT * (2.0 * ((u + 0.5) % 1.0) - 1.0))
    # Only a category with hundreds of instances in one image gets here.
    rng = np.random.default_rng([seed, category_id, step])
    reach = 16 + (step - _LIGHTNESS_CANDIDATES) // 64
    return tuple(int(v) for v in np.clip(np.asarray(base) + rng.integers(-reach, reach + 1, 3), 0, 255))


def instance_colors(category_ids: Iterable[int], categories: CategorySet, seed: int = 0,
                    taken: Iterable[Sequence[int]] = (BLACK,)) -> list[RGB]:
    """Distinct shades for a sequence of thing instances, in order.

    The k-th occurrence of a category in ``category_ids`` gets the k-th free shade of
    that category's colour, so the same sequence always gets the same colours. A shade
    is free when no earlier instance has it, it is not in ``taken``, and it stays at
    least :data:`MIN_CATEGORY_DISTANCE` (per channel) away from every other category's
    colour, so that an instance never looks like another class.

    Args:
        category_ids: (N,) category id of each instance.
        categories: the category set the ids belong to.
        seed: another seed gives another, equally stable, set of shades.
        taken: colours no instance may get (black, the stuff colours of the image, ...).

    Returns:
        N distinct ``(r, g, b)`` tuples, none of them in ``taken``.
    """
    used = {as_rgb(c, "taken colour") for c in taken}
    palette = np.array([category_color(categories, c.id) for c in categories], dtype=np.int64).reshape(-1, 3)
    next_step: dict[int, int] = {}
    colors = []
    for category_id in category_ids:
        category_id = int(category_id)
        base = category_color(categories, category_id)
        others = palette[(palette != base).any(axis=1)]
        step = next_step.get(category_id, 0)
        while True:
            color = _shade_candidate(base, step, seed, category_id)
            step += 1
            near_other = others.size and np.abs(others - color).max(axis=1).min() < MIN_CATEGORY_DISTANCE
            if color not in used and not near_other:
                break
        next_step[category_id] = step
        used.add(color)
        colors.append(color)
    return colors


def _check_categories(pan: PanopticSegmentation, categories: CategorySet) -> None:
    for s in pan.segments:
        if s.category_id not in categories:
            raise PanopticFormatError(f"segment {s.id} has unknown category id {s.category_id}; "
                                      f"known ids: {categories.ids}")


def segment_colors(pan: PanopticSegmentation, categories: CategorySet, seed: int = 0) -> dict[int, RGB]:
    """The colour of every segment of a panoptic segmentation.

    Stuff segments get their category's colour. Thing segments (crowd regions included)
    get shades of their category's colour from :func:`instance_colors`, assigned in
    order of segment id within each category: the same ids give the same colours on
    every call, whatever the order of ``pan.segments``. All thing colours differ from
    each other, from every stuff colour in the image and from black.

    Returns:
        ``{segment_id: (r, g, b)}`` for every segment.
    """
    _check_categories(pan, categories)
    colors = {s.id: category_color(categories, s.category_id)
              for s in pan.segments if not categories.isthing(s.category_id)}
    things = sorted((s for s in pan.segments if categories.isthing(s.category_id)), key=lambda s: s.id)
    shades = instance_colors([s.category_id for s in things], categories, seed,
                             taken=[BLACK, *colors.values()])
    colors.update({s.id: c for s, c in zip(things, shades)})
    return colors


def paint(id_map: np.ndarray, colors: Mapping[int, Sequence[int]], default: Sequence[int] = BLACK,
          what: str = "id map") -> np.ndarray:
    """Paint an integer map with a colour per value.

    Args:
        id_map: (H, W) integer array.
        colors: value -> ``(r, g, b)``; values not in it get ``default``.
        what: names the map in error messages.

    Returns:
        (H, W, 3) uint8 image.
    """
    id_map = np.asarray(id_map)
    if id_map.ndim != 2 or not np.issubdtype(id_map.dtype, np.integer):
        raise PanopticFormatError(f"{what} must be a 2-D integer array, got shape {id_map.shape} "
                                  f"and dtype {id_map.dtype}")
    values, inverse = np.unique(id_map, return_inverse=True)
    default = as_rgb(default, "default colour")
    palette = np.array([colors.get(int(v), default) for v in values], dtype=np.uint8).reshape(-1, 3)
    return palette[inverse.reshape(id_map.shape)]


def colorize(pan: PanopticSegmentation, categories: CategorySet, void_color: Sequence[int] = BLACK,
             seed: int = 0) -> np.ndarray:
    """Paint a panoptic segmentation with :func:`segment_colors`.

    Returns:
        (H, W, 3) uint8 image; void pixels (id 0) are ``void_color``.

    Raises:
        PanopticFormatError: an id of the map has no segment, or a segment's category is unknown.
    """
    colors = segment_colors(pan, categories, seed)
    unlisted = sorted(set(np.unique(pan.id_map).tolist()) - set(colors) - {VOID})
    if unlisted:
        raise PanopticFormatError(f"segment ids {unlisted[:10]} occur in the id map but have no segment record")
    return paint(pan.id_map, colors, as_rgb(void_color, "void_color"), "panoptic id map")


def colorize_semantic(category_map: np.ndarray, categories: CategorySet, void_color: Sequence[int] = BLACK,
                      void_label: int = 255) -> np.ndarray:
    """Paint a semantic map: every pixel in its category's colour.

    Things of one class share one colour here, so touching instances merge: the
    picture shows what semantic segmentation alone cannot say.

    Args:
        category_map: (H, W) integer category ids, ``void_label`` on void
            (what :meth:`PanopticSegmentation.category_map` returns).

    Returns:
        (H, W, 3) uint8 image.

    Raises:
        PanopticFormatError: a value is neither a category id nor ``void_label``.
    """
    category_map = np.asarray(category_map)
    present = set(np.unique(category_map).tolist()) if category_map.size else set()
    unknown = sorted(v for v in present if v not in categories and v != void_label)
    if unknown:
        raise PanopticFormatError(f"semantic map holds unknown category ids {unknown[:10]} "
                                  f"(void_label is {void_label}); known ids: {categories.ids}")
    colors = {c: category_color(categories, c) for c in present if c in categories}
    return paint(category_map, colors, as_rgb(void_color, "void_color"), "semantic map")


def colorize_instances(pan: PanopticSegmentation, categories: CategorySet, stuff_color: Sequence[int] = STUFF_GREY,
                       void_color: Sequence[int] = BLACK, seed: int = 0) -> np.ndarray:
    """Paint the thing instances only, in the same shades as :func:`colorize`.

    Stuff pixels are ``stuff_color`` (grey) and void pixels ``void_color`` (black):
    instance segmentation has nothing to say about them.

    Returns:
        (H, W, 3) uint8 image.
    """
    colors = segment_colors(pan, categories, seed)
    stuff_color = as_rgb(stuff_color, "stuff_color")
    for s in pan.segments:
        if not categories.isthing(s.category_id):
            colors[s.id] = stuff_color
    return paint(pan.id_map, colors, as_rgb(void_color, "void_color"), "panoptic id map")


def legend_handles(categories: CategorySet, category_ids: Iterable[int] | None = None,
                   kind: bool = True) -> list:
    """Legend entries (matplotlib patches) for categories, things first.

    Args:
        categories: the category set.
        category_ids: only these categories (e.g. those present in an image); default all.
        kind: append "(thing)" / "(stuff)" to each name.

    Use as ``ax.legend(handles=legend_handles(cats))`` or ``fig.legend(handles=...)``.
    """
    from matplotlib.patches import Patch

    wanted = None if category_ids is None else {int(c) for c in category_ids}
    if wanted is not None:
        for c in sorted(wanted):
            categories[c]  # a clear error for an unknown id
    chosen = [c for c in categories if wanted is None or c.id in wanted]
    chosen.sort(key=lambda c: not c.isthing)  # stable: things first, dataset order kept
    return [Patch(facecolor=np.asarray(category_color(categories, c.id)) / 255.0, edgecolor="black", linewidth=0.5,
                  label=f"{c.name} ({'thing' if c.isthing else 'stuff'})" if kind else c.name)
            for c in chosen]
