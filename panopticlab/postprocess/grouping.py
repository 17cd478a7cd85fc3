"""Grouping: every thing pixel joins the centre nearest to the point its offset votes for.

This is step 2 of Panoptic-DeepLab's post-processing. The published code builds a
K x (H*W) distance matrix over all pixels (about 900 MB and 15 s at 512 x 1024 with
150 centres on two CPU cores); here only thing pixels are grouped, in O(pixels) memory.

The rule, identical on every path, so that ties and near-ties resolve the same way:

* the vote of pixel ``(y, x)`` is ``v = (y + dy, x + dx)``, computed in float64 from the
  offsets cast to float64 (:func:`vote_map`, :func:`pixel_votes`);
* its squared distance to centre ``c`` is ``(c_y - v_y)**2 + (c_x - v_x)**2`` in float64,
  every operation rounded once (no fused multiply-add);
* it joins the centre of smallest squared distance; ties go to the centre that comes first
  in raster order (the lower index of ``centers``).

Three exact methods implement it:

* ``"scan"`` (:func:`nearest_center_scan`): a loop over the K centres that keeps a
  running minimum per vote; any device; O(M) memory, O(M K) time.
* ``"kdtree"`` (:func:`nearest_center_kdtree`): scipy's KD-tree finds the nearest and the
  second nearest centre of every vote, O(M log K); a vote whose two distances are not
  clearly apart (:data:`KDTREE_TIE_BAND`) is re-decided by the scan. CPU only.
* ``"grid"`` (:func:`nearest_center_grid`): the plane is cut into square cells; a cell that
  holds votes and lies, with a margin, inside one centre's Voronoi region gives that centre
  to all its votes at once; the votes of the other cells take the scan (or, with
  ``"auto"`` on the CPU, the KD-tree). A network's thing votes crowd around the centres,
  far from the Voronoi boundaries, so almost every vote is decided by one table lookup.

``"auto"`` is the grid, its remaining votes decided by the KD-tree on the CPU and by the
scan elsewhere. On the CPU the work runs on numpy views of the tensors (see ``_arrays``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ._arrays import NUMPY, ops_for

# A KD-tree answer is trusted when the squared distances of the nearest and the second
# nearest centre differ by more than this fraction of the squared coordinate magnitude of
# the query (|vote| + |centre|, per pixel). float64 rounding, in the canonical formula and in
# the tree's incrementally updated node bounds alike, is below 1e-13 of that magnitude, so
# a centre whose canonical squared distance ties or beats the tree's nearest cannot hide
# outside this band: the tree prunes a node only when its bound exceeds the current second
# best, so such a centre would have pulled the reported second distance into the band.
# The grid's cells use the same band.
KDTREE_TIE_BAND = 1e-8

METHODS = ("auto", "grid", "kdtree", "scan")

# The grid's cells are a power of two, about 1/8 of the mean spacing of the centres, and
# at least 2 pixels: small enough that the cells around a centre are inside its Voronoi
# region, large enough that the table stays small. (A power of two makes ``v / cell``
# exact, so a vote's cell is exactly the one that contains it.)
GRID_SPACING_FRACTION = 1 / 8
GRID_MIN_CELL = 2
# cell-centre x centre distances computed per chunk (float64): bounds the grid's memory
GRID_CHUNK = 1 << 18


def vote_map(offsets: torch.Tensor) -> torch.Tensor:
    """(2, H, W) offsets ``(dy, dx)`` -> (2, H, W) float64 votes ``(y + dy, x + dx)``."""
    height, width = offsets.shape[1:]
    ys = torch.arange(height, dtype=torch.float64, device=offsets.device)[:, None]
    xs = torch.arange(width, dtype=torch.float64, device=offsets.device)[None, :]
    offsets = offsets.to(torch.float64)
    return torch.stack([ys + offsets[0], xs + offsets[1]])


def pixel_votes(offsets: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """Votes of selected pixels, bit-identical to :func:`vote_map` at those pixels.

    Args:
        offsets: (2, H, W) floating ``(dy, dx)``.
        flat_index: (M,) int64 raster indices ``y * W + x`` of the pixels.

    Returns:
        (M, 2) float64 ``(y + dy, x + dx)``, on the offsets' device.
    """
    ops = ops_for(offsets.device)
    return ops.to_tensor(_pixel_votes(ops, ops.from_tensor(offsets), ops.from_tensor(flat_index)))


def nearest_center_scan(votes: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Exact nearest centre by a running minimum over the centres.

    Args:
        votes: (M, 2) float64 vote points ``(y, x)``.
        centers: (K, 2) centre coordinates ``(y, x)``, K >= 1, on the same device.

    Returns:
        (M,) int64 index into ``centers``; ties go to the lower index.
    """
    ops = ops_for(votes.device)
    return ops.to_tensor(_scan(ops, ops.from_tensor(votes), _center_list(centers)))


def nearest_center_kdtree(votes: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Exact nearest centre with a KD-tree, near-ties re-decided by :func:`nearest_center_scan`.

    A KD-tree breaks ties by its own traversal order, not by index, and rounds distances in
    its own way; both are taken out of the answer by re-deciding every vote whose nearest
    and second-nearest squared distances lie within :data:`KDTREE_TIE_BAND` of each other
    (relative to the squared coordinate magnitude). Away from the Voronoi boundaries of the
    centres that is a vanishing fraction of the votes; votes on a coarse grid (integer
    offsets) tie exactly more often, and those all take the exact path.

    Args:
        votes: (M, 2) float64 CPU tensor of vote points ``(y, x)``.
        centers: (K, 2) CPU tensor of centre coordinates, K >= 2.

    Returns:
        (M,) int64 CPU tensor, index into ``centers``; ties go to the lower index.
    """
    if votes.device.type != "cpu":
        raise ValueError(f"the KD-tree method runs on the CPU; votes are on {votes.device}")
    return torch.from_numpy(_kdtree(NUMPY.from_tensor(votes), _center_list(centers)))


def nearest_center_grid(votes: torch.Tensor, centers: torch.Tensor, rest: str = "auto") -> torch.Tensor:
    """Exact nearest centre through a table of cells that lie inside one Voronoi region.

    The cells are squares of side ``s`` (a power of two) on the lattice ``s * Z^2``, over
    the centres' bounding box and a margin. A cell holding at least one vote is *pure* when
    every point of it, border included, is nearer to one centre ``c`` than to any other,
    with the margin of :data:`KDTREE_TIE_BAND`: from the squared distances ``d1 <= d2`` of
    the cell's middle ``q`` to its nearest and second-nearest centre and the cell's
    half-diagonal ``r``, every point ``p`` of the cell has ``|p - c'|^2 - |p - c|^2 >=
    (sqrt(d2) - r)^2 - (sqrt(d1) + r)^2`` for every other centre ``c'``. Every vote of a pure
    cell joins ``c``: no rounding of the canonical formula can reverse a gap that large. The
    votes of the other cells, and those outside the table, are decided by ``rest``.

    Args:
        votes: (M, 2) float64 vote points ``(y, x)``.
        centers: (K, 2) centre coordinates, K >= 1, on the same device.
        rest: the method for the undecided votes: ``"kdtree"`` (CPU), ``"scan"``, or
            ``"auto"`` (the KD-tree on the CPU, the scan elsewhere).

    Returns:
        (M,) int64 index into ``centers``; ties go to the lower index.
    """
    if rest not in ("auto", "kdtree", "scan"):
        raise ValueError(f"rest must be 'auto', 'kdtree' or 'scan', got {rest!r}")
    ops = ops_for(votes.device)
    if rest == "kdtree" and ops is not NUMPY:
        raise ValueError(f"the KD-tree method runs on the CPU; votes are on {votes.device}")
    return ops.to_tensor(_grid(ops, ops.from_tensor(votes), _center_list(centers), _rest(ops, rest)))


def nearest_center(votes: torch.Tensor, centers: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Index of the nearest centre of every vote (rule in the module docstring).

    Args:
        votes: (M, 2) float64 vote points.
        centers: (K, 2) centres, K >= 1.
        method: ``"grid"``, ``"kdtree"`` (CPU), ``"scan"`` or ``"auto"`` (module docstring).
            All give the same answer.

    Returns:
        (M,) int64 on the votes' device.
    """
    ops = ops_for(votes.device)
    return ops.to_tensor(_nearest(ops, ops.from_tensor(votes), centers, method))


def group_pixels(centers: torch.Tensor, offsets: torch.Tensor, thing_mask: torch.Tensor,
                 method: str = "auto") -> torch.Tensor:
    """Give each thing pixel the id of its nearest centre.

    Args:
        centers: (K, 2) centre coordinates ``(y, x)`` in raster order.
        offsets: (2, H, W) floating ``(dy, dx)``, pointing from each pixel to its centre.
        thing_mask: (H, W) bool, the pixels to group.
        method: see :func:`nearest_center`.

    Returns:
        (H, W) int64 instance map on the offsets' device: 0 outside ``thing_mask`` or when
        K = 0, ``k + 1`` where the pixel joins ``centers[k]``.
    """
    ops = ops_for(offsets.device)
    instance_map = ops.zeros(tuple(thing_mask.shape), ops.int64)
    if len(centers):
        flat_index = ops.flatnonzero(ops.from_tensor(thing_mask))
        nearest = _group(ops, centers, ops.from_tensor(offsets), flat_index, method)
        instance_map.reshape(-1)[flat_index] = nearest + 1
    return ops.to_tensor(instance_map)


# ---------------------------------------------------------------------------------------
# the implementations, on numpy (CPU) or torch arrays: ``ops`` from _arrays.ops_for
# ---------------------------------------------------------------------------------------
def _center_list(centers) -> list[tuple[float, float]]:
    """(K, 2) centres (tensor, array or list) -> K ``(y, x)`` Python floats (float64 values)."""
    if isinstance(centers, torch.Tensor):
        centers = centers.detach().to(torch.float64).cpu().numpy()
    return [tuple(c) for c in np.asarray(centers, dtype=np.float64).reshape(-1, 2).tolist()]


def _group(ops, centers, offsets, flat_index, method: str = "auto"):
    """(M,) int64 nearest-centre index of the pixels ``flat_index`` (K >= 1)."""
    return _nearest(ops, _pixel_votes(ops, offsets, flat_index), centers, method)


def _pixel_votes(ops, offsets, flat_index):
    width = offsets.shape[2]
    ys = flat_index // width
    xs = flat_index - ys * width
    votes = ops.stack_columns([ops.astype(ys, ops.float64), ops.astype(xs, ops.float64)])
    # float64 + (float offset widened to float64): the sum vote_map rounds, at these pixels
    votes[:, 0] += ops.astype(offsets[0].reshape(-1)[flat_index], ops.float64)
    votes[:, 1] += ops.astype(offsets[1].reshape(-1)[flat_index], ops.float64)
    return votes


def _nearest(ops, votes, centers, method: str):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    centers = _center_list(centers)
    if len(centers) == 0:
        raise ValueError("nearest_center needs at least one centre")
    if len(centers) == 1 or len(votes) == 0:
        return ops.zeros(len(votes), ops.int64)
    if method == "kdtree":
        if ops is not NUMPY:
            raise ValueError("the KD-tree method runs on the CPU")
        return _kdtree(votes, centers)
    if method == "scan":
        return _scan(ops, votes, centers)
    return _grid(ops, votes, centers, _rest(ops, "auto" if method == "auto" else "scan"))


def _rest(ops, method: str):
    """The method that decides the votes a grid leaves: a function (votes, centres) -> index."""
    if method == "kdtree" or (method == "auto" and ops is NUMPY):
        return _kdtree
    return lambda votes, centers: _scan(ops, votes, centers)


def _scan(ops, votes, centers: list):
    vote_y, vote_x = votes[:, 0], votes[:, 1]
    best = ops.full(len(votes), math.inf, ops.float64)
    nearest = ops.zeros(len(votes), ops.int64)
    for k, (center_y, center_x) in enumerate(centers):
        distance = vote_y - center_y
        distance = distance * distance
        across = vote_x - center_x
        distance += across * across
        # strict '<': an equally near later centre never takes a vote from an earlier one
        closer = distance < best
        best = ops.minimum(best, distance)
        nearest[closer] = k
    return nearest


def _kdtree(votes: np.ndarray, centers: list) -> np.ndarray:
    from scipy.spatial import cKDTree  # here: scipy.spatial is slow to import, and only this method needs it

    centers64 = np.asarray(centers, dtype=np.float64)
    if len(votes) == 0:
        return np.zeros(0, np.int64)
    distance, index = cKDTree(centers64).query(votes, k=2, workers=torch.get_num_threads())
    magnitude = np.abs(votes).max(axis=1) + np.abs(centers64).max() + 1.0
    near_tie = distance[:, 1] ** 2 - distance[:, 0] ** 2 <= KDTREE_TIE_BAND * magnitude**2
    nearest = index[:, 0].astype(np.int64)
    if near_tie.any():
        nearest[near_tie] = _scan(NUMPY, votes[near_tie], centers)
    return nearest


def _grid(ops, votes, centers: list, rest):
    """Pure cells decide their votes at once; ``rest(votes, centers)`` decides the others."""
    num_votes, num_centers = len(votes), len(centers)
    center_array = np.asarray(centers, dtype=np.float64)
    low, high = center_array.min(axis=0), center_array.max(axis=0)
    extent = high - low + 1
    spacing = math.sqrt(extent[0] * extent[1] / num_centers)
    cell = max(GRID_MIN_CELL, 2 ** math.floor(math.log2(max(spacing * GRID_SPACING_FRACTION, 1))))
    # the table: cells [first, first + count) of each axis, around the centres' bounding box
    first = np.floor(low / cell).astype(np.int64) - 2
    count = np.floor(high / cell).astype(np.int64) + 3 - first
    table_size = int(count[0] + 2) * int(count[1] + 2)  # plus a border of "outside" cells
    if table_size > 4 * num_votes + (1 << 16):
        return rest(votes, centers)  # centres spread far in one direction: no table pays

    # each vote's cell, (row + 1) * (cols + 2) + (col + 1); votes outside land on the border
    # (cell = 2^n, so votes / cell and the floor are exact: the cell contains the vote; the
    # rest is small integers, exact in float64 too)
    row_length = int(count[1] + 2)
    row, col = (ops.clip(ops.floor(votes[:, axis] * (1.0 / cell)) - float(first[axis] - 1), 0, int(count[axis] + 1))
                for axis in (0, 1))
    cell_of_vote = ops.astype(row * row_length + col, ops.int64)

    votes_per_cell = ops.bincount(cell_of_vote, table_size).reshape(int(count[0] + 2), row_length)
    votes_per_cell[[0, -1], :] = 0
    votes_per_cell[:, [0, -1]] = 0
    occupied = ops.flatnonzero(votes_per_cell > 0)
    if rest is _kdtree and len(occupied) * num_centers > 16 * num_votes * math.log2(num_centers + 1):
        return _kdtree(votes, centers)  # many centres, votes spread thin: the cells cost more than the tree
    owner = ops.full(table_size, -1, ops.int64)
    if len(occupied):
        owner[occupied] = _pure_cell_owners(ops, occupied, row_length, first, cell, center_array)

    nearest = ops.take(owner, cell_of_vote)
    undecided = ops.flatnonzero(nearest < 0)
    if len(undecided):
        nearest[undecided] = rest(votes[undecided], centers)
    return nearest


def _pure_cell_owners(ops, cells, row_length: int, first: np.ndarray, cell: int, center_array: np.ndarray):
    """(N,) int64: the centre that owns all of each table cell, -1 where none does."""
    half_diagonal = cell * 0.7072  # > sqrt(2) / 2, rounded up
    row = cells // row_length - 1 + int(first[0])
    col = cells % row_length - 1 + int(first[1])
    middle_y = (ops.astype(row, ops.float64) + 0.5) * cell
    middle_x = (ops.astype(col, ops.float64) + 0.5) * cell
    center_y = ops.asarray(center_array[:, 0].tolist(), ops.float64)
    center_x = ops.asarray(center_array[:, 1].tolist(), ops.float64)
    # |vote| + |centre| for any vote of these cells and any centre, as in the KD-tree's band
    magnitude = (ops.min_max(ops.maximum(abs(middle_y), abs(middle_x)))[1] + cell
                 + float(np.abs(center_array).max()) + 1.0)
    band = KDTREE_TIE_BAND * magnitude**2

    owners = []
    chunk = max(1, GRID_CHUNK // len(center_array))
    for start in range(0, len(cells), chunk):
        my, mx = middle_y[start:start + chunk, None], middle_x[start:start + chunk, None]
        distance = (my - center_y[None]) ** 2 + (mx - center_x[None]) ** 2  # (n, K)
        nearest = ops.argmin_rows(distance)
        rows = ops.arange(len(nearest))
        best = distance[rows, nearest]
        distance[rows, nearest] = math.inf
        second = ops.min_rows(distance)
        # every point p of the cell: |p - other|^2 - |p - nearest|^2 >= gap (see nearest_center_grid)
        gap = (ops.sqrt(second) - half_diagonal) ** 2 - (ops.sqrt(best) + half_diagonal) ** 2
        owners.append(ops.where(gap > band, nearest, -1))
    return ops.concatenate(owners, axis=0)
