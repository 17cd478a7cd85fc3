"""The array operations of Panoptic-DeepLab's post-processing, on numpy or on torch.

The post-processing is a few dozen light passes over the image (lookups, counts,
comparisons, a scatter). On the CPU they run on numpy views of the tensors' memory:
numpy does each pass on one core, whereas torch hands every pass over more than 32768
elements to its intra-op thread pool, whose hand-over can cost more than the pass itself
when the other cores are busy (measured: about 8 ms a pass at 512 x 1024 on a loaded
2-core machine, 10 to 50 times numpy's time). On any other device (CUDA) the same code
runs on the tensors themselves.

:func:`ops_for` picks the implementation; both offer the same small vocabulary, and
everything else the callers write (arithmetic, comparisons, ``&``, slicing, integer and
boolean indexing, ``reshape``, ``sum``, ``tolist``) means the same in numpy and torch.
"""
from __future__ import annotations

import numpy as np
import torch


class NumpyOps:
    """CPU: numpy arrays (views of the tensors' memory where possible)."""

    name = "numpy"
    int32, int64, float64, bool_ = np.int32, np.int64, np.float64, np.bool_

    @staticmethod
    def from_tensor(tensor: torch.Tensor | np.ndarray) -> np.ndarray:
        """A numpy view of a CPU tensor; dtypes numpy lacks (bfloat16) widen to float32 (exactly)."""
        if isinstance(tensor, np.ndarray):
            return tensor
        tensor = tensor.detach()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.to(torch.float32)
        return tensor.numpy()

    @staticmethod
    def to_tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array))

    @staticmethod
    def to_host(array: np.ndarray) -> np.ndarray:
        return array

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype)

    @staticmethod
    def full(shape, value, dtype):
        return np.full(shape, value, dtype)

    @staticmethod
    def arange(n: int):
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def asarray(values, dtype):
        return np.asarray(values, dtype)

    @staticmethod
    def astype(array, dtype):
        return array.astype(dtype, copy=False)

    @staticmethod
    def flatnonzero(mask):
        """(N,) int64 raster indices of the true entries of ``mask``, any shape."""
        return np.flatnonzero(mask).astype(np.int64, copy=False)

    @staticmethod
    def bincount(values, minlength: int):
        """Counts of the non-negative integers ``values`` (any shape), int64."""
        return np.bincount(values.reshape(-1), minlength=minlength).astype(np.int64, copy=False)

    @staticmethod
    def take(lut, index):
        """``lut[index]`` for a 1-D ``lut`` and an integer ``index`` of any shape and dtype."""
        return np.take(lut, index)

    @staticmethod
    def min_max(array) -> tuple:
        """Python scalars; NaN when the array holds one."""
        return array.min().item(), array.max().item()

    minimum, maximum, floor, sqrt, where = (staticmethod(np.minimum), staticmethod(np.maximum),
                                            staticmethod(np.floor), staticmethod(np.sqrt), staticmethod(np.where))

    @staticmethod
    def clip(array, low, high):
        """Bounds: numbers, or arrays broadcast against ``array``."""
        return np.clip(array, low, high)

    @staticmethod
    def argmin_rows(array):
        """(N, K) -> (N,) int64 index of the first minimum of every row."""
        return array.argmin(axis=1)

    @staticmethod
    def argmax_rows(array):
        """(N, K) -> (N,) int64 index of the first maximum of every row."""
        return array.argmax(axis=1)

    @staticmethod
    def min_rows(array):
        return array.min(axis=1)

    @staticmethod
    def sort(array):
        return np.sort(array)

    @staticmethod
    def argsort_descending(array):
        """Indices that sort a 1-D array from the highest value, equal values in their order."""
        return np.argsort(-array, kind="stable")

    @staticmethod
    def concatenate(arrays, axis: int):
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def stack_columns(columns):
        return np.stack(columns, axis=1)


class TorchOps:
    """Any device other than the CPU: torch tensors where they are."""

    name = "torch"
    int32, int64, float64, bool_ = torch.int32, torch.int64, torch.float64, torch.bool

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def from_tensor(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach()

    @staticmethod
    def to_tensor(array: torch.Tensor) -> torch.Tensor:
        return array

    @staticmethod
    def to_host(array: torch.Tensor) -> np.ndarray:
        return array.cpu().numpy()

    def zeros(self, shape, dtype):
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def full(self, shape, value, dtype):
        return torch.full(shape if isinstance(shape, tuple) else (shape,), value, dtype=dtype, device=self.device)

    def arange(self, n: int):
        return torch.arange(n, dtype=torch.int64, device=self.device)

    def asarray(self, values, dtype):
        return torch.as_tensor(values, dtype=dtype, device=self.device)

    @staticmethod
    def astype(array, dtype):
        return array.to(dtype)

    @staticmethod
    def flatnonzero(mask):
        return mask.reshape(-1).nonzero()[:, 0]

    @staticmethod
    def bincount(values, minlength: int):
        return torch.bincount(values.reshape(-1), minlength=minlength)

    @staticmethod
    def take(lut, index):
        if index.dtype not in (torch.int32, torch.int64):
            index = index.to(torch.int64)
        return lut.index_select(0, index.reshape(-1)).reshape(index.shape)

    @staticmethod
    def min_max(array) -> tuple:
        low, high = torch.aminmax(array)
        return low.item(), high.item()

    minimum, maximum, floor, sqrt, where = (staticmethod(torch.minimum), staticmethod(torch.maximum),
                                            staticmethod(torch.floor), staticmethod(torch.sqrt),
                                            staticmethod(torch.where))

    @staticmethod
    def clip(array, low, high):
        """Bounds: numbers, or arrays broadcast against ``array``."""
        if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor):
            low, high = (torch.as_tensor(b, dtype=array.dtype, device=array.device) for b in (low, high))
        return torch.clamp(array, low, high)

    @staticmethod
    def argmin_rows(array):
        return array.argmin(dim=1)

    @staticmethod
    def argmax_rows(array):
        return array.argmax(dim=1)

    @staticmethod
    def min_rows(array):
        return array.min(dim=1).values

    @staticmethod
    def sort(array):
        return torch.sort(array).values

    @staticmethod
    def argsort_descending(array):
        return torch.sort(array, descending=True, stable=True).indices

    @staticmethod
    def concatenate(arrays, axis: int):
        return torch.cat(list(arrays), dim=axis)

    @staticmethod
    def stack_columns(columns):
        return torch.stack(list(columns), dim=1)


NUMPY = NumpyOps()


def ops_for(device: torch.device | str) -> NumpyOps | TorchOps:
    """numpy for the CPU, torch for every other device."""
    device = torch.device(device)
    return NUMPY if device.type == "cpu" else TorchOps(device)
