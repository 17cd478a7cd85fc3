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

Two exact methods implement it:

* ``"scan"`` (:func:`nearest_center_scan`): a loop over the K centres that keeps a
  running minimum per pixel; torch, any device; O(M) memory, O(M K) time.
* ``"kdtree"`` (:func:`nearest_center_kdtree`): scipy's KD-tree finds the nearest and the
  second nearest centre of every vote, O(M log K); a pixel whose two distances are not
  clearly apart (:data:`KDTREE_TIE_BAND`) is re-decided by the scan. CPU only; the faster
  one there.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

# A KD-tree answer is trusted when the squared distances of the nearest and the second
# nearest centre differ by more than this fraction of the squared coordinate magnitude of
# the query (|vote| + |centre|, per pixel). float64 rounding, in the canonical formula and in
# the tree's incrementally updated node bounds alike, is below 1e-13 of that magnitude, so
# a centre whose canonical squared distance ties or beats the tree's nearest cannot hide
# outside this band: the tree prunes a node only when its bound exceeds the current second
# best, so such a centre would have pulled the reported second distance into the band.
KDTREE_TIE_BAND = 1e-8

METHODS = ("auto", "kdtree", "scan")


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
        (M, 2) float64 ``(y + dy, x + dx)``.
    """
    width = offsets.shape[2]
    flat_offsets = offsets.flatten(1)[:, flat_index].to(torch.float64)
    ys = (flat_index // width).to(torch.float64)
    xs = (flat_index % width).to(torch.float64)
    return torch.stack([ys + flat_offsets[0], xs + flat_offsets[1]], dim=1)


def nearest_center_scan(votes: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Exact nearest centre by a running minimum over the centres.

    Args:
        votes: (M, 2) float64 vote points ``(y, x)``.
        centers: (K, 2) centre coordinates ``(y, x)``, K >= 1, on the same device.

    Returns:
        (M,) int64 index into ``centers``; ties go to the lower index.
    """
    centers = centers.to(device=votes.device, dtype=torch.float64)
    vote_y, vote_x = votes[:, 0].contiguous(), votes[:, 1].contiguous()
    best = torch.full_like(vote_y, float("inf"))
    nearest = torch.zeros(vote_y.shape, dtype=torch.int64, device=votes.device)
    distance = torch.empty_like(vote_y)
    across = torch.empty_like(vote_y)
    closer = torch.empty(vote_y.shape, dtype=torch.bool, device=votes.device)
    for k, (center_y, center_x) in enumerate(centers.tolist()):
        torch.sub(vote_y, center_y, out=distance).square_()
        torch.sub(vote_x, center_x, out=across).square_()
        distance.add_(across)
        # strict '<': an equally near later centre never takes a pixel from an earlier one
        torch.lt(distance, best, out=closer)
        torch.minimum(best, distance, out=best)
        nearest.masked_fill_(closer, k)
    return nearest


def nearest_center_kdtree(votes: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Exact nearest centre with a KD-tree, near-ties re-decided by :func:`nearest_center_scan`.

    A KD-tree breaks ties by its own traversal order, not by index, and rounds distances in
    its own way; both are taken out of the answer by re-deciding every pixel whose nearest
    and second-nearest squared distances lie within :data:`KDTREE_TIE_BAND` of each other
    (relative to the squared coordinate magnitude). Away from the Voronoi boundaries of the
    centres that is a vanishing fraction of the pixels; votes on a coarse grid (integer
    offsets) tie exactly more often, and those pixels all take the exact path.

    Args:
        votes: (M, 2) float64 CPU tensor of vote points ``(y, x)``.
        centers: (K, 2) CPU tensor of centre coordinates, K >= 2.

    Returns:
        (M,) int64 CPU tensor, index into ``centers``; ties go to the lower index.
    """
    if votes.device.type != "cpu":
        raise ValueError(f"the KD-tree method runs on the CPU; votes are on {votes.device}")
    centers64 = centers.to(torch.float64).numpy()
    points = votes.numpy()
    distance, index = cKDTree(centers64).query(points, k=2, workers=torch.get_num_threads())
    magnitude = np.abs(points).max(axis=1) + np.abs(centers64).max() + 1.0
    near_tie = distance[:, 1] ** 2 - distance[:, 0] ** 2 <= KDTREE_TIE_BAND * magnitude**2
    nearest = torch.from_numpy(index[:, 0].astype(np.int64))
    if near_tie.any():
        near_tie = torch.from_numpy(near_tie)
        nearest[near_tie] = nearest_center_scan(votes[near_tie], centers)
    return nearest


def nearest_center(votes: torch.Tensor, centers: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Index of the nearest centre of every vote (rule in the module docstring).

    Args:
        votes: (M, 2) float64 vote points.
        centers: (K, 2) centres, K >= 1.
        method: ``"kdtree"`` (CPU), ``"scan"`` (any device) or ``"auto"``: the KD-tree on
            the CPU, the scan elsewhere. All give the same answer.

    Returns:
        (M,) int64 on the votes' device.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if len(centers) == 0:
        raise ValueError("nearest_center needs at least one centre")
    if method == "auto":
        method = "kdtree" if votes.device.type == "cpu" else "scan"
    if len(centers) == 1 or len(votes) == 0:
        return torch.zeros(len(votes), dtype=torch.int64, device=votes.device)
    if method == "kdtree":
        return nearest_center_kdtree(votes, centers)
    return nearest_center_scan(votes, centers)


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
    instance_map = torch.zeros(thing_mask.shape, dtype=torch.int64, device=offsets.device)
    if len(centers) == 0:
        return instance_map
    flat_index = thing_mask.flatten().nonzero()[:, 0]
    nearest = nearest_center(pixel_votes(offsets, flat_index), centers, method)
    instance_map.view(-1)[flat_index] = nearest + 1
    return instance_map
