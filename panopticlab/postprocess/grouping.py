"""Grouping: every thing pixel joins the centre nearest to the point its offset votes for.

This is step 2 of Panoptic-DeepLab's post-processing. The published code builds a
K x (H*W) distance matrix over all pixels (about 900 MB and 15 s at 512 x 1024 with
150 centres on two CPU cores); here only thing pixels are grouped, in O(pixels) memory.

The rule, so that ties and near-ties resolve the same way whatever decides them:

* the vote of pixel ``(y, x)`` is ``v = (y + dy, x + dx)``, computed in float64 from the
  offsets cast to float64 (:func:`vote_map`, :func:`pixel_votes`);
* its squared distance to centre ``c`` is ``(c_y - v_y)**2 + (c_x - v_x)**2`` in float64,
  every operation rounded once (no fused multiply-add);
* it joins the centre of smallest squared distance; ties go to the centre that comes first
  in raster order (the lower index of ``centers``).

One exact method implements it (:func:`nearest_center`): the plane is cut into square
cells; a cell that holds votes and lies, with a margin, inside one centre's Voronoi region
gives that centre to all its votes at once; the votes of the other cells take the scan, a
loop over the K centres that keeps a running minimum per vote (O(M K)). A network's thing
votes crowd around the centres, far from the Voronoi boundaries, so almost every vote is
decided by one table lookup. ``benchmarks/deeplab_grouping.py --nearest`` times it on the
votes of that script's inputs (half the pixels things, 1-2 px of noise; a loaded 2-core
machine) against the scan alone and scipy's KD-tree (nearest centre only, ties not
resolved: a lower bound on an exact KD-tree method):

* 1024 x 2048, 30 / 60 / 100 centres: 13.4 / 12.6 / 13.5 ms, against 163 / 322 / 533 ms
  (scan, 12x / 26x / 40x) and 194 / 203 / 196 ms (KD-tree, 14x / 16x / 15x);
* 480 x 640, 10 / 20 / 40 centres: 1.1 / 1.2 / 1.1 ms, against 3.0 / 9.6 / 19.6 ms (scan,
  2.7x / 7.9x / 17x) and 23 / 26 / 29 ms (KD-tree, 21x / 21x / 25x).

Only votes spread evenly over (or far beyond) the image, as an untrained network gives,
leave most cells undecided; then the scan decides them, up to 3x slower than an exact
KD-tree did (1024 x 2048, 200 centres, votes uniform over three times the image: 2.1 s
against 0.7 s). The work runs on numpy (see ``_arrays``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._arrays import as_numpy, as_tensor

# A pure cell's votes all join its centre only when the squared distances to the nearest
# and the second-nearest centre differ, everywhere in the cell, by more than this fraction
# of the squared coordinate magnitude (|vote| + |centre|). float64 rounding of the
# canonical formula is below 1e-13 of that magnitude, so no rounding can reverse a gap
# that large; the votes of a cell without such a margin take the scan.
TIE_BAND = 1e-8

# The cells are a power of two, about 1/8 of the mean spacing of the centres, and at least
# 2 pixels: small enough that the cells around a centre are inside its Voronoi region,
# large enough that the table stays small. (A power of two makes ``v / cell`` exact, so a
# vote's cell is exactly the one that contains it.)
GRID_SPACING_FRACTION = 1 / 8
GRID_MIN_CELL = 2
# cell-centre x centre distances computed per chunk (float64): bounds the grid's memory
GRID_CHUNK = 1 << 18


def vote_map(offsets: torch.Tensor) -> torch.Tensor:
    """(2, H, W) offsets ``(dy, dx)`` -> (2, H, W) float64 votes ``(y + dy, x + dx)``, on the offsets' device."""
    return as_tensor(_vote_map(as_numpy(offsets)), offsets.device)


def pixel_votes(offsets: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """Votes of selected pixels, bit-identical to :func:`vote_map` at those pixels.

    Args:
        offsets: (2, H, W) floating ``(dy, dx)``.
        flat_index: (M,) int64 raster indices ``y * W + x`` of the pixels.

    Returns:
        (M, 2) float64 ``(y + dy, x + dx)``, on the offsets' device.
    """
    return as_tensor(_pixel_votes(as_numpy(offsets), as_numpy(flat_index)), offsets.device)


def nearest_center(votes: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre of every vote (rule and method in the module docstring).

    Args:
        votes: (M, 2) float64 vote points ``(y, x)``.
        centers: (K, 2) centre coordinates ``(y, x)``, K >= 1.

    Returns:
        (M,) int64 index into ``centers`` on the votes' device; ties go to the lower index.
    """
    return as_tensor(_nearest(as_numpy(votes), _center_array(centers)), votes.device)


def group_pixels(centers: torch.Tensor, offsets: torch.Tensor, thing_mask: torch.Tensor) -> torch.Tensor:
    """Give each thing pixel the id of its nearest centre.

    Args:
        centers: (K, 2) centre coordinates ``(y, x)`` in raster order.
        offsets: (2, H, W) floating ``(dy, dx)``, pointing from each pixel to its centre.
        thing_mask: (H, W) bool, the pixels to group.

    Returns:
        (H, W) int64 instance map on the offsets' device: 0 outside ``thing_mask`` or when
        K = 0, ``k + 1`` where the pixel joins ``centers[k]``.
    """
    instance_map = np.zeros(tuple(thing_mask.shape), np.int64)
    if len(centers):
        flat_index = np.flatnonzero(as_numpy(thing_mask))
        instance_map.reshape(-1)[flat_index] = _group(centers, as_numpy(offsets), flat_index) + 1
    return as_tensor(instance_map, offsets.device)


# ---------------------------------------------------------------------------------------
# the implementation, on numpy arrays
# ---------------------------------------------------------------------------------------
def _center_array(centers) -> np.ndarray:
    """(K, 2) centres (tensor, array or list) -> (K, 2) float64 array."""
    if isinstance(centers, torch.Tensor):
        centers = as_numpy(centers)
    return np.asarray(centers, dtype=np.float64).reshape(-1, 2)


def _group(centers, offsets: np.ndarray, flat_index: np.ndarray) -> np.ndarray:
    """(M,) int64 nearest-centre index of the pixels ``flat_index`` (K >= 1)."""
    return _nearest(_pixel_votes(offsets, flat_index), _center_array(centers))


def _vote_map(offsets: np.ndarray) -> np.ndarray:
    height, width = offsets.shape[1:]
    offsets = offsets.astype(np.float64, copy=False)
    return np.stack([np.arange(height, dtype=np.float64)[:, None] + offsets[0],
                     np.arange(width, dtype=np.float64)[None, :] + offsets[1]])


def _pixel_votes(offsets: np.ndarray, flat_index: np.ndarray) -> np.ndarray:
    width = offsets.shape[2]
    ys = flat_index // width
    xs = flat_index - ys * width
    votes = np.stack([ys.astype(np.float64), xs.astype(np.float64)], axis=1)
    # float64 + (float offset widened to float64): the sum vote_map rounds, at these pixels
    votes[:, 0] += offsets[0].reshape(-1)[flat_index].astype(np.float64)
    votes[:, 1] += offsets[1].reshape(-1)[flat_index].astype(np.float64)
    return votes


def _nearest(votes: np.ndarray, centers: np.ndarray) -> np.ndarray:
    if len(centers) == 0:
        raise ValueError("nearest_center needs at least one centre")
    if len(centers) == 1 or len(votes) == 0:
        return np.zeros(len(votes), np.int64)
    return _grid(votes, centers)


def _scan(votes: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """The rule itself: a running minimum over the centres, O(M K)."""
    vote_y, vote_x = votes[:, 0], votes[:, 1]
    best = np.full(len(votes), math.inf)
    nearest = np.zeros(len(votes), np.int64)
    for k, (center_y, center_x) in enumerate(centers.tolist()):
        distance = vote_y - center_y
        distance = distance * distance
        across = vote_x - center_x
        distance += across * across
        # strict '<': an equally near later centre never takes a vote from an earlier one
        closer = distance < best
        best = np.minimum(best, distance)
        nearest[closer] = k
    return nearest


def _grid(votes: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Pure cells decide their votes at once; :func:`_scan` decides the others.

    The cells are squares of side ``s`` (a power of two) on the lattice ``s * Z^2``, over
    the centres' bounding box and a margin. A cell holding at least one vote is *pure* when
    every point of it, border included, is nearer to one centre ``c`` than to any other,
    with the margin of :data:`TIE_BAND`: from the squared distances ``d1 <= d2`` of the
    cell's middle ``q`` to its nearest and second-nearest centre and the cell's
    half-diagonal ``r``, every point ``p`` of the cell has ``|p - c'|^2 - |p - c|^2 >=
    (sqrt(d2) - r)^2 - (sqrt(d1) + r)^2`` for every other centre ``c'``. Every vote of a pure
    cell joins ``c``. The votes of the other cells, and those outside the table, are scanned.
    """
    num_votes, num_centers = len(votes), len(centers)
    low, high = centers.min(axis=0), centers.max(axis=0)
    extent = high - low + 1
    spacing = math.sqrt(extent[0] * extent[1] / num_centers)
    cell = max(GRID_MIN_CELL, 2 ** math.floor(math.log2(max(spacing * GRID_SPACING_FRACTION, 1))))
    # the table: cells [first, first + count) of each axis, around the centres' bounding box
    first = np.floor(low / cell).astype(np.int64) - 2
    count = np.floor(high / cell).astype(np.int64) + 3 - first
    table_size = int(count[0] + 2) * int(count[1] + 2)  # plus a border of "outside" cells
    if table_size > 4 * num_votes + (1 << 16):
        return _scan(votes, centers)  # centres spread far in one direction: no table pays

    # each vote's cell, (row + 1) * (cols + 2) + (col + 1); votes outside land on the border
    # (cell = 2^n, so votes / cell and the floor are exact: the cell contains the vote; the
    # rest is small integers, exact in float64 too)
    row_length = int(count[1] + 2)
    row, col = (np.clip(np.floor(votes[:, axis] * (1.0 / cell)) - float(first[axis] - 1), 0, int(count[axis] + 1))
                for axis in (0, 1))
    cell_of_vote = (row * row_length + col).astype(np.int64)

    votes_per_cell = np.bincount(cell_of_vote, minlength=table_size).reshape(int(count[0] + 2), row_length)
    votes_per_cell[[0, -1], :] = 0
    votes_per_cell[:, [0, -1]] = 0
    occupied = np.flatnonzero(votes_per_cell > 0)
    owner = np.full(table_size, -1, np.int64)
    if len(occupied):
        owner[occupied] = _pure_cell_owners(occupied, row_length, first, cell, centers)

    nearest = owner[cell_of_vote]
    undecided = np.flatnonzero(nearest < 0)
    if len(undecided):
        nearest[undecided] = _scan(votes[undecided], centers)
    return nearest


def _pure_cell_owners(cells: np.ndarray, row_length: int, first: np.ndarray, cell: int,
                      centers: np.ndarray) -> np.ndarray:
    """(N,) int64: the centre that owns all of each table cell, -1 where none does."""
    half_diagonal = cell * 0.7072  # > sqrt(2) / 2, rounded up
    middle_y = (cells // row_length - 1 + int(first[0]) + 0.5) * cell
    middle_x = (cells % row_length - 1 + int(first[1]) + 0.5) * cell
    center_y, center_x = centers[:, 0], centers[:, 1]
    # |vote| + |centre| for any vote of these cells and any centre
    magnitude = float(np.maximum(abs(middle_y), abs(middle_x)).max()) + cell + float(np.abs(centers).max()) + 1.0
    band = TIE_BAND * magnitude**2

    owners = []
    chunk = max(1, GRID_CHUNK // len(centers))
    for start in range(0, len(cells), chunk):
        my, mx = middle_y[start:start + chunk, None], middle_x[start:start + chunk, None]
        distance = (my - center_y[None]) ** 2 + (mx - center_x[None]) ** 2  # (n, K)
        nearest = distance.argmin(axis=1)
        rows = np.arange(len(nearest))
        best = distance[rows, nearest]
        distance[rows, nearest] = math.inf
        second = distance.min(axis=1)
        # every point p of the cell: |p - other|^2 - |p - nearest|^2 >= gap (see _grid)
        gap = (np.sqrt(second) - half_diagonal) ** 2 - (np.sqrt(best) + half_diagonal) ** 2
        owners.append(np.where(gap > band, nearest, -1))
    return np.concatenate(owners)
