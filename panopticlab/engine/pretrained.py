"""Trained weights shipped with the package: the files, and how to load them.

``scripts/train_checkpoints.py`` trains the tiny networks of the model table that name
a shipped file (:attr:`~panopticlab.models.zoo.ModelSpec.shipped`) for their
:attr:`~panopticlab.models.zoo.ModelSpec.shipped_steps`, measures them and
writes ``panopticlab/checkpoints/<name>.pt``. The chapters load them where the ``ci``
profile trains too briefly to show anything:

    model, info = load_pretrained("maskrcnn-tiny")
    baseline, info = load_pretrained("baseline-tiny")   # assembled from its shipped components

Each file is a checkpoint of :mod:`panopticlab.engine.checkpoint` (it also loads with
:func:`~panopticlab.engine.checkpoint.load_model_weights`) with two entries:

* ``model``: the state dict, floating-point tensors stored as float16 to keep the file
  small (a few MB); they are cast back to float32 when loaded;
* ``metadata``: how the network was trained (the recipe, steps, seed, torch version,
  training time) and what it reaches on the fixed evaluation set :data:`EVAL_SET`
  with the merge settings :data:`EVAL_MERGE`, in per cent, measured on the float16
  weights as shipped. The tests check that the shipped files still reach them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..data.categories import CategorySet
from ..data.synthetic import SYNTHETIC_CATEGORIES, SyntheticPanoptic
from ..models import zoo
from ..postprocess.heuristic import MergeConfig
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["FOLDER", "EVAL_SET", "EVAL_MERGE", "ShippedCheckpoint", "SHIPPED", "half_state_dict", "save_pretrained",
           "read_pretrained", "load_pretrained", "eval_samples"]

FOLDER = Path(__file__).resolve().parent.parent / "checkpoints"
KIND = "pretrained"  # marks a shipped file among the engine's checkpoints

# The fixed evaluation set of the stated numbers: SyntheticPanoptic(50, size=128, seed=0, split="val").
EVAL_SET: dict[str, Any] = {"num_images": 50, "size": 128, "seed": 0, "split": "val"}
# The tiny models' merge settings, the stuff limit resolved in pixels of the evaluation images.
_TINY_MERGE = MergeConfig.tiny()
EVAL_MERGE: dict[str, float] = {"score_threshold": _TINY_MERGE.score_threshold,
                                "overlap_threshold": _TINY_MERGE.overlap_threshold,
                                "stuff_area_limit": _TINY_MERGE.stuff_limit(EVAL_SET["size"] ** 2),
                                "mask_threshold": _TINY_MERGE.mask_threshold}


@dataclass(frozen=True)
class ShippedCheckpoint:
    """One shipped file: ``name`` (a model name) and ``file``; ``metadata`` is read on first use."""

    name: str
    file: Path

    @property
    def exists(self) -> bool:
        return self.file.is_file()

    @cached_property
    def metadata(self) -> dict[str, Any]:
        return read_pretrained(self.file)["metadata"]


SHIPPED: dict[str, ShippedCheckpoint] = {
    row.name: ShippedCheckpoint(row.name, FOLDER / row.shipped) for row in zoo.MODELS.values() if row.shipped
}


def eval_samples() -> SyntheticPanoptic:
    """The fixed evaluation set of the stated numbers (:data:`EVAL_SET`)."""
    return SyntheticPanoptic(EVAL_SET["num_images"], size=EVAL_SET["size"], seed=EVAL_SET["seed"],
                             split=EVAL_SET["split"])


def half_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with floating-point tensors as float16 (others, e.g. BatchNorm's
    ``num_batches_tracked``, unchanged), detached and on the CPU."""
    return {key: (value.detach().to("cpu", torch.float16) if value.is_floating_point() else value.detach().cpu())
            for key, value in model.state_dict().items()}


def save_pretrained(path: str | os.PathLike, model: nn.Module, metadata: Mapping[str, Any]) -> Path:
    """Write ``model`` (as float16) and its ``metadata`` to ``path`` atomically.

    ``metadata`` holds JSON values (stored as their JSON round trip: tuples become lists);
    ``metadata["name"]`` must be the model's name in the model table.

    Raises:
        ValueError: an unknown name, or metadata that is not plain JSON (nothing is written).
    """
    zoo.check_name(metadata.get("name", ""))
    try:
        # Plain JSON values only (``torch.__version__`` is a str subclass, tuples become
        # lists): anything else would stop the file from loading with weights_only=True.
        plain = json.loads(json.dumps(dict(metadata), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: the metadata must be plain JSON values: {error}") from error
    return save_checkpoint(path, {"kind": KIND, "model": half_state_dict(model), "metadata": plain})


def read_pretrained(path: str | os.PathLike) -> dict[str, Any]:
    """The content of a file written by :func:`save_pretrained` (``model``, ``metadata``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a file of trained weights with metadata (names the file).
    """
    payload = load_checkpoint(path)
    if payload.get("kind") != KIND:
        raise ValueError(f"{path}: a training checkpoint, not trained weights with metadata "
                         f"(load it with panopticlab.engine.load_model_weights)")
    missing = [key for key in ("model", "metadata") if key not in payload]
    if missing:
        raise ValueError(f"{path}: the file lacks {missing}")
    return payload


def _check_categories(path: Path, metadata: Mapping[str, Any], categories: CategorySet) -> None:
    trained = metadata.get("categories")
    if trained is not None and trained != categories.to_coco():
        raise ValueError(f"{path}: the weights were trained for the categories {[c['name'] for c in trained]}, "
                         f"not {[c.name for c in categories]}")


def _shipped_names() -> str:
    assembled = [row.name for row in zoo.MODELS.values()
                 if row.components and all(c in SHIPPED for c in row.components)]
    return ", ".join([*SHIPPED, *assembled])


def load_pretrained(name: str, categories: CategorySet = SYNTHETIC_CATEGORIES,
                    path: str | os.PathLike | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A shipped trained model in eval mode, with its metadata.

    A model made of separately trained components (the baseline) is assembled from
    their shipped weights; its metadata states the numbers its components' files state
    for it, and ``components`` holds each file's metadata.

    Args:
        name: a model of the table with shipped weights, or made of such components.
        categories: the categories it was trained for (the built-in dataset's).
        path: read this file instead of the shipped one (a single network only).

    Returns:
        ``(model, metadata)``: the model has float32 weights (cast from the stored float16).

    Raises:
        ValueError: no shipped weights of that name (the message lists those there are),
            categories other than the trained ones, or a file that does not fit the model.
        FileNotFoundError: the file is missing (run ``scripts/train_checkpoints.py``).
    """
    row = zoo.spec(name)
    if path is None and name not in SHIPPED:
        if row.components and all(c in SHIPPED for c in row.components):
            return _load_assembled(row, categories)
        raise ValueError(f"no shipped weights for {name!r}; shipped: {_shipped_names()}")
    if path is None:
        path = SHIPPED[name].file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the shipped weights of {name} are missing; "
                                    f"write them with scripts/train_checkpoints.py")
    path = Path(path)
    payload = read_pretrained(path)
    metadata = payload["metadata"]
    if metadata.get("name") != name:
        raise ValueError(f"{path}: holds weights of {metadata.get('name')!r}, not {name!r}")
    _check_categories(path, metadata, categories)
    model = row.build(categories)
    try:
        model.load_state_dict(payload["model"])  # copies cast float16 to the parameters' float32
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit {name}: {error}") from error
    return model.eval(), metadata


def _load_assembled(row: zoo.ModelSpec, categories: CategorySet) -> tuple[nn.Module, dict[str, Any]]:
    loaded = [load_pretrained(component, categories) for component in row.components]
    model = row.assemble(*(network for network, _ in loaded), categories).eval()
    first = loaded[0][1]
    metadata = {"name": row.name, **{key: first[key] for key in ("pq", "sq", "rq", "pq_th", "pq_st")},
                "evaluation": first["evaluation"],
                "components": {info["name"]: info for _, info in loaded}}
    return model, metadata
