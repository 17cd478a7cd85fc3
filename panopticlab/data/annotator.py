"""The built-in dataset's annotators: a scene of :mod:`panopticlab.data.scenes` turned into its panoptic annotation.

Annotation rules: every non-crowd thing instance is one segment, every stuff class
present is one segment, a crowd is one segment, clutter is void (id 0), and an instance
with fewer than :data:`MIN_VISIBLE_AREA` visible pixels is removed (its pixels become
void). :func:`annotate` follows them as an annotator described by an
:class:`AnnotatorNoise` would: :data:`FIRST_ANNOTATOR` draws the reference annotation,
the default noise a second, independent human annotator, for the human-consistency study
of chapter 2. Every random choice comes from the generator passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
from scipy import ndimage

from .panoptic import VOID, PanopticSegmentation, Segment
from .scenes import CLUTTER, SYNTHETIC_CATEGORIES, DrawnScene, smooth_noise

MIN_VISIBLE_AREA = 4  # pixels: thing segments with less visible area become void

# Segment ids: stuff category c -> _STUFF_SEGMENT_ID[c] (1..5); things from _FIRST_THING_ID on.
_STUFF_SEGMENT_ID = np.zeros(max(SYNTHETIC_CATEGORIES.ids) + 1, dtype=np.int32)
_STUFF_SEGMENT_ID[SYNTHETIC_CATEGORIES.stuff_ids] = np.arange(1, len(SYNTHETIC_CATEGORIES.stuff_ids) + 1)
_FIRST_THING_ID = len(SYNTHETIC_CATEGORIES.stuff_ids) + 1


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
"""The reference annotation of :func:`~panopticlab.data.synthetic.render_scene`: exact boundaries, thin void bands."""


def _displace(layers: Sequence[np.ndarray], rng: np.random.Generator, amount: float, scale: float):
    """The (H, W) layers resampled at positions moved by one smooth random displacement field."""
    height, width = layers[0].shape
    dy = smooth_noise(rng, (height, width), scale) * np.float32(amount)
    dx = smooth_noise(rng, (height, width), scale) * np.float32(amount)
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


def _trace(scene: DrawnScene, owner: np.ndarray, stuff: np.ndarray, rng: np.random.Generator,
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


def annotate(scene: DrawnScene, noise: AnnotatorNoise, rng: np.random.Generator) -> PanopticSegmentation:
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
