"""Random COCO panoptic result sets with many segments, and panopticapi's scores of them.

Shared by ``test_pq_many_segments.py`` and ``test_pq_fuzz.py``. Images are partitions into
rectangles (cut positions drawn at random); a prediction is a partition with jittered
cuts, optionally split finer, so that some of its segments match (IoU > 0.5) and others
do not. Ids are random in [1, 256^3 - 1], as COCO's colour-derived ids are.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation, id_to_rgb
from panopticlab.data.panoptic import MAX_SEGMENT_ID

GROUPS = ("All", "Things", "Stuff")


def random_cuts(rng: np.random.Generator, length: int, pieces: int) -> np.ndarray:
    """``pieces - 1`` distinct sorted cut positions in [1, length - 1]."""
    return np.sort(rng.choice(np.arange(1, length), size=pieces - 1, replace=False))


def jittered(rng: np.random.Generator, cuts: np.ndarray, length: int, jitter: int) -> np.ndarray:
    """The cuts moved by up to ``jitter`` pixels each (cuts that collide merge)."""
    moved = cuts + rng.integers(-jitter, jitter + 1, size=len(cuts))
    return np.unique(np.clip(moved, 1, length - 1))


def grid(shape: tuple[int, int], row_cuts: np.ndarray, col_cuts: np.ndarray) -> np.ndarray:
    """(H, W) int64 labels 0..(len(row_cuts) + 1) * (len(col_cuts) + 1) - 1 of the rectangles."""
    rows = np.searchsorted(row_cuts, np.arange(shape[0]), side="right")
    cols = np.searchsorted(col_cuts, np.arange(shape[1]), side="right")
    return rows[:, None] * (len(col_cuts) + 1) + cols[None, :]


def unique_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` distinct random ids in [1, 256^3 - 1]."""
    ids = np.unique(rng.integers(1, MAX_SEGMENT_ID + 1, size=2 * count + 16))
    return rng.permutation(ids)[:count]


def segmentation(rng: np.random.Generator, labels: np.ndarray, category_of_label: np.ndarray,
                 crowd_fraction: float = 0.0, void_labels: float = 0.0, void_pixels: float = 0.0,
                 categories=CATS) -> PanopticSegmentation:
    """Labels 0..L-1 (any layout) -> a segmentation with random ids; some labels or pixels void.

    ``category_of_label``: (L,) dataset category of each label. A thing label becomes a
    crowd segment with probability ``crowd_fraction``.
    """
    count = len(category_of_label)
    lut = unique_ids(rng, count).astype(np.int64)
    lut[rng.random(count) < void_labels] = 0
    id_map = lut[labels]
    if void_pixels:
        id_map[rng.random(labels.shape) < void_pixels] = 0
    thing = np.isin(category_of_label, categories.thing_ids)
    crowd = thing & (rng.random(count) < crowd_fraction)
    present = set(np.unique(id_map).tolist()) - {0}
    category_of = {int(i): int(c) for i, c in zip(lut.tolist(), category_of_label.tolist()) if i in present}
    iscrowd = {int(i): 1 for i in lut[crowd].tolist() if i in present}
    return PanopticSegmentation.from_id_map(id_map, category_of, iscrowd)


def category_at_centres(labels: np.ndarray, category_map: np.ndarray, count: int) -> np.ndarray:
    """(count,) the category under the centroid of each label (rectangles contain their centroid)."""
    yy, xx = np.indices(labels.shape)
    area = np.maximum(np.bincount(labels.ravel(), minlength=count), 1)
    cy = (np.bincount(labels.ravel(), weights=yy.ravel(), minlength=count) / area).astype(int)
    cx = (np.bincount(labels.ravel(), weights=xx.ravel(), minlength=count) / area).astype(int)
    return category_map[cy, cx]


def many_segment_pair(rng: np.random.Generator, shape: tuple[int, int], gt_grid: tuple[int, int],
                      split: tuple[int, int] = (1, 1), jitter: int = 1, swap: float = 0.1,
                      crowd_fraction: float = 0.05, void_labels: float = 0.03, void_pixels: float = 0.01,
                      pred_void_labels: float = 0.03, categories=CATS
                      ) -> tuple[PanopticSegmentation, PanopticSegmentation]:
    """A ground truth of ``gt_grid`` (rows, cols) rectangles and a prediction of it.

    The prediction's cuts are the ground truth's moved by up to ``jitter`` pixels, then every
    rectangle is split into ``split`` (rows, cols) pieces: ``(1, 1)`` gives about as many
    predicted segments as ground-truth ones, ``(3, 4)`` twelve times as many. A fraction
    ``swap`` of predicted segments gets a random category.
    """
    height, width = shape
    row_cuts, col_cuts = random_cuts(rng, height, gt_grid[0]), random_cuts(rng, width, gt_grid[1])
    gt_labels = grid(shape, row_cuts, col_cuts)
    gt_count = gt_grid[0] * gt_grid[1]
    gt_category = rng.choice(categories.ids, size=gt_count)
    gt = segmentation(rng, gt_labels, gt_category, crowd_fraction, void_labels, void_pixels, categories)

    def finer(cuts, length, pieces):
        edges = np.concatenate([[0], cuts, [length]])
        inner = [np.linspace(a, b, pieces + 1)[1:-1].astype(int) for a, b in zip(edges[:-1], edges[1:])]
        return np.unique(np.concatenate([cuts, *inner]))

    pred_rows = finer(jittered(rng, row_cuts, height, jitter), height, split[0])
    pred_cols = finer(jittered(rng, col_cuts, width, jitter), width, split[1])
    # the pieces of a narrow first rectangle can round down to a cut at 0: keep cuts inside
    pred_rows = pred_rows[(pred_rows > 0) & (pred_rows < height)]
    pred_cols = pred_cols[(pred_cols > 0) & (pred_cols < width)]
    pred_labels = grid(shape, pred_rows, pred_cols)
    pred_count = (len(pred_rows) + 1) * (len(pred_cols) + 1)
    pred_category = category_at_centres(pred_labels, gt_category[gt_labels], pred_count)
    swapped = rng.random(pred_count) < swap
    pred_category[swapped] = rng.choice(categories.ids, size=int(swapped.sum()))
    pred = segmentation(rng, pred_labels, pred_category, 0.0, pred_void_labels, 0.0, categories)
    return gt, pred


# --- files ----------------------------------------------------------------------------------
def rgb_png(id_map: np.ndarray, **options) -> bytes:
    """The ids as an 8-bit RGB PNG written by Pillow (``options``: Pillow's PNG options)."""
    buffer = io.BytesIO()
    Image.fromarray(id_to_rgb(id_map)).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def write_set(folder: Path, pairs, encode: Callable[[np.ndarray], bytes] = rgb_png,
              categories=CATS) -> dict[str, Path]:
    """Write (ground truth, prediction) pairs as ``pq_compute`` reads them, each PNG made by ``encode``.

    Ground-truth records carry their true ``area``: panopticapi takes a ground-truth
    segment's area from the JSON (a prediction's it measures).

    Returns:
        ``{"gt_json", "pred_json", "gt_folder", "pred_folder"}``.
    """
    folder = Path(folder)
    paths = {"gt_json": folder / "gt.json", "pred_json": folder / "pred.json",
             "gt_folder": folder / "gt", "pred_folder": folder / "pred"}
    annotations = {"gt": [], "pred": []}
    for image_id, pair in enumerate(pairs):
        for side, segmentation_ in zip(("gt", "pred"), pair):
            paths[f"{side}_folder"].mkdir(parents=True, exist_ok=True)
            name = f"{image_id:06d}.png"
            (paths[f"{side}_folder"] / name).write_bytes(encode(segmentation_.id_map))
            annotations[side].append({"image_id": image_id, "file_name": name,
                                      "segments_info": [s.to_coco() for s in segmentation_.segments]})
    for side in ("gt", "pred"):
        paths[f"{side}_json"].write_text(json.dumps({"annotations": annotations[side],
                                                     "categories": categories.to_coco()}))
    return paths


def panopticapi_results(paths: dict) -> dict:
    """panopticapi's ``pq_compute`` on the files (its progress printing silenced)."""
    from panopticapi.evaluation import pq_compute

    with contextlib.redirect_stdout(io.StringIO()):
        return pq_compute(str(paths["gt_json"]), str(paths["pred_json"]),
                          str(paths["gt_folder"]), str(paths["pred_folder"]))


def assert_same_as_panopticapi(ours: dict, theirs: dict, tolerance: float = 1e-9) -> None:
    """Every number panopticapi reports: pq, sq, rq and n of each group, pq, sq, rq of each class."""
    for group in GROUPS:
        for key in ("pq", "sq", "rq", "n"):
            assert math.isclose(ours[group][key], theirs[group][key], rel_tol=0, abs_tol=tolerance), \
                (group, key, ours[group][key], theirs[group][key])
    assert set(ours["per_class"]) == set(theirs["per_class"])
    for category_id, scores in theirs["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert math.isclose(ours["per_class"][category_id][key], scores[key], rel_tol=0, abs_tol=tolerance), \
                (category_id, key, ours["per_class"][category_id][key], scores[key])
