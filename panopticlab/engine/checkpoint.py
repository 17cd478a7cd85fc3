"""Checkpoint files: everything a run needs to continue as if it had never stopped.

A training checkpoint holds the model, optimiser, scheduler and gradient-scaler
states, the position in the data (step, epoch, samples consumed in the epoch), the
history, the run's configuration, and the random-number-generator states of Python,
NumPy and torch (CPU and CUDA) of every process. Restoring all of it makes a resumed
run bitwise identical to an uninterrupted one on the same machine (CPU, deterministic
kernels).

Files are written atomically (:func:`panopticlab.data.atomic.atomic_write`): a crash
during a save leaves the previous checkpoint intact. They contain only tensors and
plain Python values, so they load with ``torch.load(weights_only=True)``, which
cannot run code hidden in a file.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from ..data.atomic import atomic_write
from .distributed import unwrap_model

__all__ = [
    "CHECKPOINT_NAME", "capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint",
    "find_checkpoint", "load_model_weights",
]

CHECKPOINT_NAME = "last.pt"  # the latest checkpoint of a run, replaced at every save
FORMAT = "panopticlab-checkpoint"
VERSION = 1
PathLike = str | os.PathLike


# --- random number generators ----------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's global generators (CUDA too, once initialised).

    NumPy's state is stored as plain lists so that the checkpoint loads with ``weights_only=True``.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- files -----------------------------------------------------------------------------
def save_checkpoint(path: PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (tensors and plain Python values) to ``path`` atomically.

    The file either keeps its previous content or holds the complete new checkpoint,
    whatever interrupts the write.
    """
    payload = {"format": FORMAT, "version": VERSION, **state}
    with atomic_write(path, "wb") as file:
        torch.save(payload, file)
    return Path(path)


def load_checkpoint(path: PathLike, map_location: str | torch.device = "cpu",
                    required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the file.
        map_location: where tensors are loaded (default: the CPU; ``load_state_dict``
            then copies them to the model's device).
        required: keys the caller needs.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a complete panopticlab checkpoint (truncated,
            another format, a newer version, or missing a required key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint file there")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a panopticlab checkpoint (no '{FORMAT}' marker)")
    if payload.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {payload['version']} is newer than this panopticlab "
                         f"understands ({VERSION}); upgrade panopticlab")
    missing = [key for key in required if key not in payload]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    return payload


def find_checkpoint(folder: PathLike) -> Path | None:
    """The latest checkpoint of a run folder, or None if there is none yet."""
    path = Path(folder) / CHECKPOINT_NAME
    return path if path.is_file() else None


def load_model_weights(path: PathLike, model: nn.Module, strict: bool = True) -> dict[str, Any]:
    """Load only the model weights of a training checkpoint (for inference or fine-tuning).

    Returns:
        the checkpoint, for its other entries (``step``, ``history``, ...).

    Raises:
        ValueError: the weights do not fit ``model`` (names the missing and unexpected keys).
    """
    payload = load_checkpoint(path, required=("model",))
    try:
        unwrap_model(model).load_state_dict(payload["model"], strict=strict)
    except (RuntimeError, AttributeError, TypeError) as error:
        raise ValueError(f"{path}: the weights do not fit {type(unwrap_model(model)).__name__}: "
                         f"{_mismatch_summary(payload, unwrap_model(model).state_dict())}") from error
    return payload


def _mismatch_summary(payload: Mapping[str, Any], expected: Mapping[str, torch.Tensor], shown: int = 3) -> str:
    """How a checkpoint's weights differ from a model's, in one line: counts and a few names."""
    given = payload["model"]
    if not isinstance(given, Mapping):
        return f"its 'model' entry is a {type(given).__name__}, not a state dict"
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    other = [f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
             if k in given and hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = [f"{len(items)} {what} (e.g. {', '.join(items[:shown])})" for items, what in
             ((missing, f"of its {len(expected)} tensors missing"), (unexpected, "unexpected"),
              (other, "of other shapes")) if items]
    name = payload.get("metadata", {}).get("name") if isinstance(payload.get("metadata"), Mapping) else None
    return "; ".join(parts) + (f"; the file holds {name}" if name else "")
