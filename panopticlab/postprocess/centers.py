"""Instance centres from a centre heatmap: threshold, max-pool NMS, top-k.

This is step 1 of Panoptic-DeepLab's post-processing (Cheng et al., 2020; detectron2's
``find_instance_center``). A pixel is a centre when

1. its heatmap value is *above* ``threshold`` (values equal to it are dropped),
2. it equals the maximum of the heatmap over the ``nms_kernel`` x ``nms_kernel`` window
   around it (stride 1, same padding; the window is cut at the image border), and
3. it is among the ``top_k`` highest of the pixels that pass 1 and 2.

Every pixel of a plateau of equal values passes 2, so a flat peak yields several
adjacent centres, exactly as in the published code; grouping then sends each pixel to
the first of them in raster order when they are equally near.
"""
from __future__ import annotations

import numpy as np
import torch

from ._arrays import as_numpy, as_tensor

THRESHOLD = 0.1
NMS_KERNEL = 7   # Cityscapes; COCO uses 41
TOP_K = 200


def check_nms_kernel(nms_kernel: int) -> int:
    """Return ``nms_kernel`` as an int; raise ValueError unless it is a positive odd integer."""
    if isinstance(nms_kernel, bool) or not isinstance(nms_kernel, (int, np.integer)):
        raise ValueError(f"nms_kernel must be an integer, got {nms_kernel!r}")
    if nms_kernel <= 0 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be a positive odd integer (a centred window), got {nms_kernel}")
    return int(nms_kernel)


def square_max_pool(image: torch.Tensor, kernel: int) -> torch.Tensor:
    """Maximum over the ``kernel`` x ``kernel`` window around each pixel (stride 1, same size).

    Equal to ``F.max_pool2d(image, kernel, 1, kernel // 2)``: max_pool2d pads with -inf, so
    a window hanging over the border sees only real pixels. The maximum is separable, so it
    runs as a row pass then a column pass, each taking running maxima of doubling width
    (1, 2, 4, ...: ``log2(kernel) + 1`` elementwise maxima) on numpy (see ``_arrays``), much
    faster than max_pool2d on the CPU for Cityscapes' 7 and COCO's 41.

    Args:
        image: (H, W) floating, finite. kernel: positive odd integer.

    Returns:
        (H, W), same dtype and device.
    """
    kernel = check_nms_kernel(kernel)
    return as_tensor(_square_max_pool(as_numpy(image), kernel), image.device).to(image.dtype)


def find_instance_centers(heatmap: torch.Tensor | np.ndarray, threshold: float = THRESHOLD,
                          nms_kernel: int = NMS_KERNEL, top_k: int | None = TOP_K
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Find instance centres in a centre heatmap.

    Args:
        heatmap: (H, W) or (1, H, W) floating centre heatmap, finite values (a torch
            tensor on any device, or a numpy array).
        threshold: values not above it are never centres (compared in the heatmap's dtype,
            as in the published code).
        nms_kernel: side of the max-pool window; a positive odd integer.
        top_k: keep at most this many centres, the highest first; ``None`` keeps all.
            Ties at the k-th score go to the pixels first in raster order, so exactly
            ``min(top_k, candidates)`` centres come back. (detectron2 keeps the pixels
            strictly above the k-th score, which returns fewer than ``top_k`` when there
            are more candidates: at most ``top_k - 1``.)

    Returns:
        centers: (K, 2) int64 ``(y, x)`` in raster order, on the heatmap's device.
        scores: (K,) heatmap values at the centres, in the heatmap's dtype.
    """
    nms_kernel = check_nms_kernel(nms_kernel)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    heatmap = torch.as_tensor(np.ascontiguousarray(heatmap) if isinstance(heatmap, np.ndarray) else heatmap)
    if heatmap.ndim == 3 and heatmap.shape[0] == 1:
        heatmap = heatmap[0]
    if heatmap.ndim != 2:
        raise ValueError(f"center heatmap must be (H, W) or (1, H, W), got shape {tuple(heatmap.shape)}")
    if not heatmap.is_floating_point():
        raise ValueError(f"center heatmap must be floating point, got dtype {heatmap.dtype}")
    flat, scores = _find_centers(as_numpy(heatmap), _in_dtype(threshold, heatmap.dtype), nms_kernel, top_k)
    width = heatmap.shape[1]
    centers = as_tensor(np.stack([flat // width, flat % width], axis=1), heatmap.device)
    return centers, as_tensor(scores, heatmap.device).to(heatmap.dtype)


# ---------------------------------------------------------------------------------------
# the implementation, on numpy arrays
# ---------------------------------------------------------------------------------------
def _in_dtype(threshold: float, dtype: torch.dtype) -> float:
    """``threshold`` rounded to ``dtype``, as torch rounds a Python scalar it compares with
    a tensor of that dtype; exact in any wider floating type."""
    return torch.tensor(float(threshold), dtype=dtype).item()


def _find_centers(heatmap: np.ndarray, threshold: float, nms_kernel: int, top_k: int | None):
    """(K,) int64 raster indices of the centres (ascending) and (K,) their heatmap values.

    ``threshold`` must be exactly representable in the heatmap's dtype (:func:`_in_dtype`).
    """
    flat_heatmap = heatmap.reshape(-1)
    if heatmap.max() <= threshold:
        # nothing above the threshold: no pooling needed (the usual case on a frame without things)
        flat = np.zeros(0, np.int64)
        return flat, flat_heatmap[flat]
    pooled = _square_max_pool(heatmap, nms_kernel)
    # pooling the raw map equals pooling the thresholded one at every pixel above threshold
    flat = np.flatnonzero((heatmap > threshold) & (heatmap == pooled))  # raster order
    scores = flat_heatmap[flat]
    if top_k is not None and len(flat) > top_k:
        # stable sort: equal scores keep raster order, so ties at the k-th go to the first pixels
        flat = np.sort(flat[np.argsort(-scores, kind="stable")[:top_k]])
        scores = flat_heatmap[flat]
    return flat, scores


def _square_max_pool(image: np.ndarray, kernel: int) -> np.ndarray:
    return _running_max(_running_max(image, kernel, axis=1), kernel, axis=0)


def _running_max(image: np.ndarray, kernel: int, axis: int) -> np.ndarray:
    """Centred window maximum along one axis of a 2-D array, -inf beyond the border."""
    half = kernel // 2
    if half == 0:
        return image
    length = image.shape[axis]

    def part(array, start, stop):
        return array[start:stop] if axis == 0 else array[:, start:stop]

    pad = np.full((half, image.shape[1]) if axis == 0 else (image.shape[0], half), -np.inf, image.dtype)
    running = np.concatenate([pad, image, pad], axis=axis)
    width = 1
    while 2 * width <= kernel:
        # running[i] = max(padded[i : i + 2 width])
        running = np.maximum(part(running, 0, running.shape[axis] - width), part(running, width, None))
        width *= 2
    # the window [i, i + kernel) is covered by [i, i + width) and [i + kernel - width, i + kernel)
    return np.maximum(part(running, 0, length), part(running, kernel - width, kernel - width + length))
