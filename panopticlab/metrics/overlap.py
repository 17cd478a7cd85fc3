"""How much every ground-truth segment overlaps every predicted segment of one image.

Everything Panoptic Quality needs from the pixels is one joint histogram: the number
of pixels that carry ground-truth segment ``i`` and predicted segment ``j``. The
official panopticapi builds it as ``np.unique(gt_id * 256**3 + pred_id)``, which sorts
all H x W pixels. Here both id maps are first turned into small dense indices
(0 = void, 1..n = the listed segments, n + 1 = an id no segment lists) with a lookup
table, and the histogram is one ``np.bincount(gt_index * (n_pred + 2) + pred_index)``:
linear time, no sort. That dense histogram has (n_gt + 2) x (n_pred + 2) cells, so past
:data:`DENSE_LIMIT` cells (an image of thousands of segments) the pairs are counted
sparsely instead, with ``np.unique`` on the same keys: memory and time then grow with the
number of pixels and of overlapping pairs, not with the square of the segment count.
Either way the result is kept as the list of overlapping pairs.

The same pass checks the contract between an id map and its segment list: an id in
the map without a segment, and a listed segment without a pixel, are errors.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..data.errors import PanopticFormatError
from ..data.panoptic import PanopticSegmentation, Segment, segment_fields

VOID = 0
# Ids below this bound are indexed through a reusable lookup table (2**24 ids: every id
# an RGB PNG can hold; 32 MiB of uint16 at most). Larger ids fall back to a binary search.
LOOKUP_LIMIT = 256**3
_UNLISTED = np.iinfo(np.uint16).max  # lookup value of an id no segment lists


@dataclass(frozen=True)
class SegmentTable:
    """The segments of one side (ground truth or prediction) of one image, as parallel arrays.

    Attributes:
        ids: (n,) int64 positive segment ids, in listing order.
        category_ids: (n,) int64 dataset category ids.
        iscrowd: (n,) bool crowd flags (true where the record's ``iscrowd`` equals 1).
    """

    ids: np.ndarray
    category_ids: np.ndarray
    iscrowd: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_arrays(cls, ids: Sequence[int], category_ids: Sequence[int],
                    iscrowd: Sequence[int] | None = None) -> "SegmentTable":
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        category_ids = np.asarray(category_ids, dtype=np.int64).reshape(-1)
        # only flags equal to 1 are crowd, as in panopticapi (crowd_flag): iscrowd 2 is not
        crowd = np.zeros(len(ids), bool) if iscrowd is None else (np.asarray(iscrowd) == 1).reshape(-1)
        if not len(ids) == len(category_ids) == len(crowd):
            raise ValueError(f"segment table needs arrays of one length, got {len(ids)} ids, "
                             f"{len(category_ids)} categories and {len(crowd)} crowd flags")
        return cls(ids, category_ids, crowd)

    @classmethod
    def from_segments(cls, segments: Iterable[Segment]) -> "SegmentTable":
        segments = list(segments)
        return cls.from_arrays([s.id for s in segments], [s.category_id for s in segments],
                               [s.iscrowd for s in segments])

    @classmethod
    def from_records(cls, records: Sequence[Mapping], source: str) -> "SegmentTable":
        """From COCO ``segments_info`` records; ``source`` names the file and image in errors.

        Records of plain ints, the usual case, are converted in bulk, about five times faster
        than a :func:`~panopticlab.data.panoptic.segment_fields` call per record; the others
        go record by record, with the same result.

        Raises:
            PanopticFormatError: ``"{source}: segments_info[k]: ..."`` for a malformed record,
                or an id or category id that is not an integer
                (:func:`~panopticlab.data.panoptic.segment_fields`).
        """
        try:
            ids = [r["id"] for r in records]
            category_ids = [r["category_id"] for r in records]
            iscrowd = [r.get("iscrowd", 0) for r in records]
            if all(type(v) is int for v in itertools.chain(ids, category_ids, iscrowd)):  # bools are not
                return cls.from_arrays(ids, category_ids, iscrowd)
        except (KeyError, TypeError, AttributeError, OverflowError):  # OverflowError: an id beyond 64 bits
            pass
        # record by record, to read integral floats and to name what is wrong
        fields = [segment_fields(r, f"{source}: segments_info[{k}]") for k, r in enumerate(records)]
        ids, category_ids, iscrowd = zip(*fields) if fields else ((), (), ())
        return cls.from_arrays(ids, category_ids, iscrowd)

    def check(self, source: str) -> None:
        """Raise :class:`PanopticFormatError` for non-positive or duplicate segment ids."""
        ids = self.ids.tolist()  # an image lists tens of segments: Python sets beat numpy calls here
        if ids and min(ids) <= 0:
            raise PanopticFormatError(f"{source}: segment id {min(ids)} is not positive (0 is void)")
        seen = set()
        for segment_id in ids:
            if segment_id in seen:
                raise PanopticFormatError(f"{source}: segment id {segment_id} is listed more than once")
            seen.add(segment_id)


@dataclass(frozen=True)
class OverlapTable:
    """The joint histogram of one image's ground truth and prediction, and the areas it implies.

    The histogram is kept sparse, as the ``k`` (ground truth, prediction) pairs that share
    at least one pixel: row ``i`` is ground-truth segment ``gt.ids[i]``, column ``j``
    predicted segment ``pred.ids[j]``.

    Attributes:
        gt, pred: the two segment tables (n_gt and n_pred segments).
        pair_gt, pair_pred: (k,) int64 row and column of each overlapping pair, sorted by
            row, then column.
        pair_pixels: (k,) int64 pixels each pair shares (all positive).
        gt_area: (n_gt,) int64 pixels of each ground-truth segment.
        pred_area: (n_pred,) int64 pixels of each predicted segment.
        pred_on_void: (n_pred,) int64 pixels of each predicted segment where the ground truth is void.
        gt_on_void: (n_gt,) int64 pixels of each ground-truth segment the prediction leaves void.
        image_shape: (H, W).
        source: how errors name this image.
    """

    gt: SegmentTable
    pred: SegmentTable
    pair_gt: np.ndarray
    pair_pred: np.ndarray
    pair_pixels: np.ndarray
    gt_area: np.ndarray
    pred_area: np.ndarray
    pred_on_void: np.ndarray
    gt_on_void: np.ndarray
    image_shape: tuple[int, int]
    source: str = "image"

    @property
    def intersection(self) -> np.ndarray:
        """(n_gt, n_pred) int64 pixels shared by each pair, dense (0 where disjoint).

        For drawing and inspecting small images: it holds n_gt x n_pred numbers, where the
        evaluation itself only ever reads the overlapping pairs.
        """
        dense = np.zeros((len(self.gt), len(self.pred)), np.int64)
        dense[self.pair_gt, self.pair_pred] = self.pair_pixels
        return dense

    def union(self) -> np.ndarray:
        """(n_gt, n_pred) int64 union of each pair, not counting ground-truth void pixels (dense).

        Excluding void is COCO's rule: pixels nobody annotated cannot make a prediction wrong.
        """
        return (self.gt_area[:, None] + self.pred_area[None, :] - self.intersection
                - self.pred_on_void[None, :])

    def iou(self) -> np.ndarray:
        """(n_gt, n_pred) float64 IoU of every pair, whatever the categories (0 where disjoint; dense)."""
        union = self.union()
        return np.divide(self.intersection, union, out=np.zeros(union.shape), where=union > 0)


class _LookupTable(threading.local):
    """A per-thread id -> dense index table, kept between images so it is filled only once."""

    def __init__(self):
        self.table = np.zeros(0, dtype=np.uint16)

    def get(self, size: int) -> np.ndarray:
        if len(self.table) < size:
            capacity = min(LOOKUP_LIMIT, 1 << max(int(size - 1).bit_length(), 10))
            self.table = np.full(capacity, _UNLISTED, dtype=np.uint16)
            self.table[VOID] = 0
        return self.table


_lookup = _LookupTable()


def dense_index(id_map: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
    """Replace every id by its position in ``segment_ids``, counting from 1.

    Args:
        id_map: (H, W) non-negative integer ids.
        segment_ids: (n,) distinct positive ids.

    Returns:
        (H, W) integer array: 0 where ``id_map`` is void, ``k + 1`` where it holds
        ``segment_ids[k]``, and ``n + 1`` where it holds an id that is not listed.
    """
    n = len(segment_ids)
    max_id = int(id_map.max()) if id_map.size else 0
    if max_id < LOOKUP_LIMIT and n < _UNLISTED - 1:
        table = _lookup.get(max_id + 1)
        fits = segment_ids < len(table)  # an id beyond the table cannot occur in this map anyway
        listed = segment_ids[fits]
        table[listed] = np.flatnonzero(fits) + 1
        try:
            index = np.take(table, id_map)  # faster than table[id_map] for large maps
        finally:
            table[listed] = _UNLISTED  # leave the shared table clean for the next image
        np.minimum(index, n + 1, out=index)
        return index
    # large ids (in-memory maps only): binary search in the sorted ids
    if n == 0:
        return (id_map != VOID).astype(np.int64)
    order = np.argsort(segment_ids)
    sorted_ids = segment_ids[order]
    position = np.minimum(np.searchsorted(sorted_ids, id_map), n - 1)
    index = np.where(sorted_ids[position] == id_map, order[position] + 1, n + 1)
    index[id_map == VOID] = 0
    return index


def pixel_pair_keys(gt_index: np.ndarray, pred_index: np.ndarray, cols: int, size: int) -> np.ndarray:
    """(H * W,) keys ``gt_index * cols + pred_index`` of every pixel, for histograms of ``size`` cells.

    Built in 16 bits when ``size`` allows: half the memory traffic of the wider types, and
    this pass is much of an image's time.
    """
    key_dtype = np.uint16 if size <= 2**16 else np.intp
    key = gt_index.astype(key_dtype)
    key *= key_dtype(cols)
    key += pred_index.astype(key_dtype, copy=False)
    return key.reshape(-1)


def joint_histogram(gt_index: np.ndarray, pred_index: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) int64 counts of the pixel pairs (gt_index, pred_index), both (H, W) in range.

    Dense: for small ``rows * cols`` (``compute_overlaps`` counts larger ones sparsely).
    (``np.bincount`` rather than ``torch.bincount``: torch's OpenMP threads would make
    forked worker processes hang.)
    """
    size = rows * cols
    return np.bincount(pixel_pair_keys(gt_index, pred_index, cols, size), minlength=size).reshape(rows, cols)


# Largest dense histogram, in cells (8 MiB of counts): about 1000 x 1000 segments. Beyond
# it a sort of the keys is cheaper than a histogram that is nearly all zeros.
DENSE_LIMIT = 1 << 20


def count_pairs(key: np.ndarray, weights: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``key`` in [0, size) and their total weights (counts without weights).

    Returns:
        keys: (k,) int64 sorted distinct keys of positive weight.
        totals: (k,) int64 their summed weights.
    """
    if size <= DENSE_LIMIT:  # the usual case: one linear pass, no sort
        histogram = np.bincount(key, weights=weights, minlength=size)
        keys = np.flatnonzero(histogram)
        return keys, histogram[keys].astype(np.int64)
    keys, inverse = np.unique(key, return_inverse=True)  # every key occurs, with a positive weight
    return keys.astype(np.int64), np.bincount(inverse.reshape(-1), weights=weights).astype(np.int64)


RUNS_LIMIT = 0.25  # use runs while there are at most this many per pixel


def pixel_runs(gt_map: np.ndarray, pred_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of pixels, in raster order, over which neither map changes its id.

    Returns:
        starts: (R,) int64 flat index of each run's first pixel; lengths: (R,) int64.
        Every pixel lies in exactly one run, so weighting each run's (gt, pred) pair by
        its length gives the same joint histogram as counting pixel by pixel.
    """
    gt_flat, pred_flat = gt_map.reshape(-1), pred_map.reshape(-1)
    size = gt_flat.size
    change = np.empty(size, dtype=bool)
    if size:
        change[0] = True
        np.not_equal(gt_flat[1:], gt_flat[:-1], out=change[1:])
        change[1:] |= pred_flat[1:] != pred_flat[:-1]
    starts = np.flatnonzero(change)
    return starts, np.diff(np.append(starts, size))


def compute_overlaps(gt_map: np.ndarray, gt: SegmentTable, pred_map: np.ndarray, pred: SegmentTable,
                     source: str = "image") -> OverlapTable:
    """The joint histogram of two id maps and the segment areas, with the format checks.

    Time and memory grow with the number of pixels (or of runs of equal pairs, on
    region-like maps) and of overlapping pairs: dense counting while the histogram has
    at most :data:`DENSE_LIMIT` cells, sparse counting beyond.

    Args:
        gt_map, pred_map: (H, W) non-negative integer id maps (0 = void), any integer dtype.
        gt, pred: their segment tables.
        source: names the image in error messages (e.g. ``"image 42 (000042.png)"``).

    Raises:
        PanopticFormatError: different shapes; a non-positive or duplicate segment id; an id
            in a map that its table does not list; a listed segment with no pixel.
    """
    gt_map, pred_map = np.asarray(gt_map), np.asarray(pred_map)
    for name, id_map in (("ground truth", gt_map), ("prediction", pred_map)):
        if id_map.ndim != 2:
            raise PanopticFormatError(f"{source}: the {name} id map must be 2-D (H, W), got shape {id_map.shape}")
    if gt_map.shape != pred_map.shape:
        raise PanopticFormatError(f"{source}: ground truth is {gt_map.shape[::-1]} (W, H) pixels "
                                  f"but the prediction is {pred_map.shape[::-1]}")
    for name, id_map, table in (("ground truth", gt_map, gt), ("prediction", pred_map, pred)):
        if not np.issubdtype(id_map.dtype, np.integer):
            raise PanopticFormatError(f"{source}: {name} id map must hold integers, got {id_map.dtype}")
        if np.issubdtype(id_map.dtype, np.signedinteger) and id_map.size and id_map.min() < 0:
            raise PanopticFormatError(f"{source}: {name} id map holds negative ids")
        table.check(f"{source}, {name}")

    n_gt, n_pred = len(gt), len(pred)
    rows, cols = n_gt + 2, n_pred + 2  # void, the segments, unlisted ids
    starts, lengths = pixel_runs(gt_map, pred_map)
    if len(starts) <= RUNS_LIMIT * gt_map.size:
        # segments are regions: count each run of equal (gt, pred) pairs once, by its length
        gt_flat, pred_flat = gt_map.reshape(-1), pred_map.reshape(-1)
        # dense_index gives uint16 when the ids allow it: widen before multiplying, or keys past
        # 2**16 (more than 255 segments on a side) wrap around onto other pairs
        key = dense_index(gt_flat[starts], gt.ids).astype(np.intp) * cols + dense_index(pred_flat[starts], pred.ids)
        keys, pixels = count_pairs(key, lengths, rows * cols)
    else:  # noise-like maps: one pass over the pixels is cheaper
        key = pixel_pair_keys(dense_index(gt_map, gt.ids), dense_index(pred_map, pred.ids), cols, rows * cols)
        keys, pixels = count_pairs(key, None, rows * cols)
    row, col = np.divmod(keys, cols)

    # row sums and column sums of the histogram, void and unlisted included
    per_row = np.bincount(row, weights=pixels, minlength=rows).astype(np.int64)
    per_col = np.bincount(col, weights=pixels, minlength=cols).astype(np.int64)
    for name, id_map, table, unlisted in (("ground truth", gt_map, gt, per_row[-1]),
                                          ("prediction", pred_map, pred, per_col[-1])):
        if unlisted:
            ids = np.setdiff1d(np.unique(id_map), np.append(table.ids, VOID))
            raise PanopticFormatError(f"{source}: {name} ids {ids[:10].tolist()} occur in the id map "
                                      f"but no segment lists them ({int(unlisted)} pixels)")
    gt_area, pred_area = per_row[1:-1], per_col[1:-1]
    for name, table, area in (("ground truth", gt, gt_area), ("prediction", pred, pred_area)):
        if (area == 0).any():
            absent = table.ids[area == 0]
            raise PanopticFormatError(f"{source}: {name} segments {absent[:10].tolist()} are listed "
                                      f"but have no pixel in the id map")
    # no unlisted ids from here on: rows 1..n_gt and columns 1..n_pred are the segments
    on_void_row, on_void_col = row == VOID, col == VOID
    pred_on_void = np.bincount(col[on_void_row], weights=pixels[on_void_row], minlength=cols)[1:-1]
    gt_on_void = np.bincount(row[on_void_col], weights=pixels[on_void_col], minlength=rows)[1:-1]
    pair = ~(on_void_row | on_void_col)
    return OverlapTable(gt=gt, pred=pred, pair_gt=row[pair] - 1, pair_pred=col[pair] - 1, pair_pixels=pixels[pair],
                        gt_area=gt_area, pred_area=pred_area, pred_on_void=pred_on_void.astype(np.int64),
                        gt_on_void=gt_on_void.astype(np.int64), image_shape=tuple(gt_map.shape), source=source)


def overlaps_of(gt: PanopticSegmentation, pred: PanopticSegmentation, source: str = "image") -> OverlapTable:
    """:func:`compute_overlaps` of two :class:`PanopticSegmentation` objects."""
    return compute_overlaps(gt.id_map, SegmentTable.from_segments(gt.segments),
                            pred.id_map, SegmentTable.from_segments(pred.segments), source)
