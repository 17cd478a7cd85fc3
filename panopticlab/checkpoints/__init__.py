"""Trained weights of the tiny networks, shipped with the package.

``scripts/train_checkpoints.py`` trains ``pspnet-tiny`` and ``maskrcnn-tiny`` on the
built-in dataset, measures them and writes ``panopticlab/checkpoints/<name>.pt``. The
chapters load them where the ``ci`` profile trains too briefly to show anything:

    model, info = load_pretrained("maskrcnn-tiny")
    baseline, info = load_pretrained_baseline()

Each file is a checkpoint of :mod:`panopticlab.engine.checkpoint` (it also loads with
:func:`~panopticlab.engine.checkpoint.load_model_weights`) with two entries:

* ``model``: the state dict, floating-point tensors stored as float16 to keep the file
  small (a few MB); they are cast back to float32 when loaded;
* ``metadata``: how the network was trained (the recipe, steps, seed, torch version,
  training time) and what it reaches on the fixed evaluation set :data:`EVAL_SET`
  with the merge settings :data:`EVAL_MERGE`: ``pq``, ``sq``, ``rq``, ``pq_th``,
  ``pq_st`` of the baseline made of the two shipped networks, ``alone`` (the same for
  the network's own ablation: semantic only, or instance only) and, for the semantic
  network, ``miou``. All in per cent, measured on the float16 weights as shipped.

:func:`measure` recomputes those numbers; the tests check that the shipped files still
reach them.
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
from ..engine.checkpoint import load_checkpoint, save_checkpoint
from ..engine.recipes import evaluate_networks, headline
from ..models import zoo
from ..models.baseline import HeuristicBaseline
from ..postprocess.heuristic import OVERLAP_THRESHOLD, SCORE_THRESHOLD, STUFF_AREA_LIMIT, scaled_stuff_area

__all__ = ["FOLDER", "EVAL_SET", "EVAL_MERGE", "ShippedCheckpoint", "SHIPPED", "half_state_dict", "save_pretrained",
           "read_pretrained", "load_pretrained", "load_pretrained_baseline", "eval_samples", "measure"]

FOLDER = Path(__file__).resolve().parent
KIND = "pretrained"  # marks a shipped file among the engine's checkpoints

# The fixed evaluation set of the stated numbers: SyntheticPanoptic(50, size=128, seed=0, split="val").
EVAL_SET: dict[str, Any] = {"num_images": 50, "size": 128, "seed": 0, "split": "val"}
# The published merge thresholds; the stuff limit is 4096 px scaled to a 128 x 128 image.
EVAL_MERGE: dict[str, float] = {
    "score_threshold": SCORE_THRESHOLD,
    "overlap_threshold": OVERLAP_THRESHOLD,
    "stuff_area_limit": scaled_stuff_area(STUFF_AREA_LIMIT, EVAL_SET["size"] ** 2),
    "mask_threshold": 0.5,
}


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
    name: ShippedCheckpoint(name, FOLDER / f"{name}.pt") for name in ("pspnet-tiny", "maskrcnn-tiny")
}


def half_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with floating-point tensors as float16 (others, e.g. BatchNorm's
    ``num_batches_tracked``, unchanged), detached and on the CPU."""
    return {key: (value.detach().to("cpu", torch.float16) if value.is_floating_point() else value.detach().cpu())
            for key, value in model.state_dict().items()}


def save_pretrained(path: str | os.PathLike, model: nn.Module, metadata: Mapping[str, Any]) -> Path:
    """Write ``model`` (as float16) and its ``metadata`` to ``path`` atomically.

    ``metadata`` holds JSON values (stored as their JSON round trip: tuples become lists);
    ``metadata["name"]`` must be the model's name in :data:`~panopticlab.models.zoo.MODEL_NAMES`.

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


def load_pretrained(name: str, categories: CategorySet = SYNTHETIC_CATEGORIES,
                    path: str | os.PathLike | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A shipped trained network in eval mode, with its metadata.

    Args:
        name: ``"pspnet-tiny"`` or ``"maskrcnn-tiny"`` (the keys of :data:`SHIPPED`).
        categories: the categories it was trained for (the built-in dataset's).
        path: read this file instead of the shipped one.

    Returns:
        ``(model, metadata)``: the model has float32 weights (cast from the stored float16).

    Raises:
        ValueError: no shipped weights of that name, categories other than the trained
            ones, or a file that does not fit the model.
        FileNotFoundError: the file is missing (run ``scripts/train_checkpoints.py``).
    """
    if path is None:
        if name not in SHIPPED:
            hint = "; load_pretrained_baseline() gives their baseline" if name == "baseline-tiny" else ""
            raise ValueError(f"no shipped weights for {name!r}; shipped: {', '.join(SHIPPED)}{hint}")
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
    model = zoo.build_model(name, categories)
    try:
        model.load_state_dict(payload["model"])  # copies cast float16 to the parameters' float32
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit {name}: {error}") from error
    return model.eval(), metadata


def load_pretrained_baseline(categories: CategorySet = SYNTHETIC_CATEGORIES,
                             **merge_options) -> tuple[HeuristicBaseline, dict[str, Any]]:
    """The baseline made of the two shipped tiny networks, in eval mode.

    Args:
        categories: the built-in dataset's categories.
        **merge_options: thresholds of :class:`HeuristicBaseline` (default: the published ones).

    Returns:
        ``(baseline, metadata)``: ``metadata`` has ``name`` ``"baseline-tiny"``, the stated
        ``pq, sq, rq, pq_th, pq_st`` of the pair (per cent, measured with
        :data:`EVAL_MERGE` on :data:`EVAL_SET`), ``evaluation`` and ``components``: the
        metadata of each network.
    """
    semantic_name, instance_name = zoo.COMPONENTS["baseline-tiny"]
    semantic_model, semantic_info = load_pretrained(semantic_name, categories)
    instance_model, instance_info = load_pretrained(instance_name, categories)
    baseline = HeuristicBaseline(semantic_model, instance_model, categories, **merge_options).eval()
    metadata = {"name": "baseline-tiny", **{key: semantic_info[key] for key in ("pq", "sq", "rq", "pq_th", "pq_st")},
                "evaluation": semantic_info["evaluation"],
                "components": {semantic_name: semantic_info, instance_name: instance_info}}
    return baseline, metadata


def eval_samples() -> SyntheticPanoptic:
    """The fixed evaluation set of the stated numbers (:data:`EVAL_SET`)."""
    return SyntheticPanoptic(EVAL_SET["num_images"], size=EVAL_SET["size"], seed=EVAL_SET["seed"],
                             split=EVAL_SET["split"])


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {key: round(float(value), 4) for key, value in values.items()}


def measure(semantic_model: nn.Module, instance_model: nn.Module, categories: CategorySet = SYNTHETIC_CATEGORIES,
            progress: bool = False) -> dict[str, dict[str, Any]]:
    """The numbers stated in the metadata, for a pair of networks, on :data:`EVAL_SET` with :data:`EVAL_MERGE`.

    Returns:
        ``{semantic name: {...}, instance name: {...}}`` for the tiny pair: each holds the
        baseline's ``pq, sq, rq, pq_th, pq_st``, ``alone`` (the network's own ablation,
        with ``variant``) and ``evaluation``; the semantic entry also ``miou``. Per cent,
        rounded to 4 decimals.
    """
    results = evaluate_networks(eval_samples(), categories, semantic_model=semantic_model,
                                instance_model=instance_model, merge_options=EVAL_MERGE, progress=progress)
    semantic_name, instance_name = zoo.COMPONENTS["baseline-tiny"]
    dataset = "SyntheticPanoptic({num_images}, size={size}, seed={seed}, split={split!r})".format(**EVAL_SET)
    evaluation = {"dataset": dataset, **EVAL_SET, "merge": dict(EVAL_MERGE),
                  "baseline": f"HeuristicBaseline({semantic_name}, {instance_name})"}
    baseline = _rounded(headline(results["baseline"]))
    return {
        semantic_name: {**baseline, "miou": round(100 * results["miou"], 4),
                        "alone": {"variant": "semantic_only", **_rounded(headline(results["semantic_only"]))},
                        "evaluation": evaluation},
        instance_name: {**baseline,
                        "alone": {"variant": "instance_only", **_rounded(headline(results["instance_only"]))},
                        "evaluation": evaluation},
    }
