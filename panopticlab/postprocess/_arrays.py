"""The one conversion at the boundary of Panoptic-DeepLab's post-processing: it runs on numpy.

The post-processing is a few dozen light passes over the image (lookups, counts,
comparisons, a scatter). Numpy does each pass on one core, whereas torch on the CPU hands
every pass over more than 32768 elements to its intra-op thread pool, whose hand-over can
cost more than the pass itself when the other cores are busy. Measured on a loaded 2-core
machine (``benchmarks/deeplab_grouping.py``'s inputs), the whole post-processing written
once more with torch operations on CPU tensors, against numpy: 241 ms against 11-15 ms at
480 x 640 with 20 centres, 155 ms against 20-36 ms at 512 x 1024 with 60 centres, 832 ms
against 60-101 ms at 1024 x 2048 with 60 centres.

So the public functions take tensors or arrays, read them as numpy arrays here (a CUDA
tensor is copied to the host: the results are host arrays anyway), and give tensors back
on the input's device where their contract says so.
"""
from __future__ import annotations

import numpy as np
import torch


def as_numpy(array: torch.Tensor | np.ndarray) -> np.ndarray:
    """A numpy array of a tensor on any device (a view of CPU memory, a host copy of CUDA
    memory) or of an array; bfloat16, which numpy lacks, widens to float32 (exactly)."""
    if isinstance(array, np.ndarray):
        return array
    tensor = torch.as_tensor(array).detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float32)
    return tensor.cpu().numpy()


def as_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor of a numpy result on ``device`` (shared memory on the CPU)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device)
