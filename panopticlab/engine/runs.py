"""The record of a training run, read back to compare models without retraining them.

``panopticlab train`` writes ``DIR/run.json`` beside the checkpoint; chapter 7 and
``scripts/compare_models.py`` read such records and put the models side by side. A record
holds what a comparison needs and nothing that needs the weights:

* ``model``, ``profile``, ``seed``, ``recipes`` (one per trained network: the baseline
  has two), ``training_seconds`` (per network), ``budget_seconds`` (the wall-clock budget
  the steps were fitted to, ``train --budget``; ``None`` for a recipe's own steps) and
  ``parameters``;
* ``results``: :meth:`~panopticlab.metrics.pq.PQAccumulator.results` of the validation
  split (All / Things / Stuff, per class, ``by_size``, ``pq_dagger``), ``ablations``
  and the semantic ``miou``;
* ``inference``: seconds per image of the network and of the post-processing
  (:func:`~.timing.inference_seconds`) and ``image_size``, ``device``, ``threads``;
* ``losses``: each named loss's (step, value) series, thinned to at most 200 points;
* ``versions``: torch and torchvision.

Times are wall-clock on the machine that trained: compare records made on one machine.
The package ships the records of ``scripts/compare_models.py --train`` (one per model and
seed, ``checkpoints/runs/<model>-seed<S>.json``), which chapter 7 reads.

The chapters train through :func:`train_network` (what ``panopticlab train`` runs for each
network) and keep their records in the work folder (:func:`save_book_run`), so that
chapter 7 can put the reader's own runs side by side (:func:`book_runs`).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILE", "SHIPPED_RUNS", "BOOK_RUNS", "TrainedNetwork", "TrainingRun", "book_runs", "read_run",
           "record_run", "save_book_run", "shipped_run", "shipped_run_path", "shipped_runs", "thin_series",
           "train_network", "write_run"]

RUN_FILE = "run.json"
FORMAT_VERSION = 1
# records of the methods' laptop runs (one per model and seed), made by scripts/compare_models.py --train
SHIPPED_RUNS = Path(__file__).resolve().parent.parent / "checkpoints" / "runs"
BOOK_RUNS = "runs"  # the chapters' records: panopticlab.work_dir(BOOK_RUNS) / <model> / run.json


@dataclass
class TrainingRun:
    """One trained model's record (see the module docstring for each field)."""

    model: str
    profile: str
    seed: int
    recipes: dict[str, dict]
    training_seconds: dict[str, float]
    parameters: int
    results: dict[str, Any]
    budget_seconds: float | None = None
    ablations: dict[str, Any] = field(default_factory=dict)
    miou: float | None = None
    inference: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, list[list[float]]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def steps(self) -> int:
        """Training steps, summed over the trained networks."""
        return sum(int(recipe["steps"]) for recipe in self.recipes.values())

    @property
    def total_training_seconds(self) -> float:
        return float(sum(self.training_seconds.values()))

    def loss_history(self):
        """The recorded loss curves (at most 200 points each) as a :class:`~.history.History`,
        for :func:`panopticlab.viz.plot_history`."""
        from .history import History

        return History.from_state_dict({name: {"steps": [int(step) for step, _ in points],
                                               "values": [value for _, value in points]}
                                        for name, points in self.losses.items()})

    def to_dict(self) -> dict[str, Any]:
        from ..metrics.report import to_json_compatible

        return to_json_compatible(asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "run record") -> TrainingRun:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a required field is missing, an unknown field is present, or the
                format is newer than this package reads (the message names ``source``).
        """
        if not isinstance(values, dict):
            raise TypeError(f"{source}: expected a JSON object, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(values))
        unknown = sorted(set(values) - known)
        if missing or unknown:
            raise ValueError(f"{source}: " + "; ".join(
                part for part in (f"missing field(s) {missing}" if missing else "",
                                  f"unknown field(s) {unknown}" if unknown else "") if part))
        if int(values.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
            raise ValueError(f"{source}: format version {values['format_version']} is newer than this "
                             f"panopticlab reads ({FORMAT_VERSION}); update panopticlab")
        if "All" not in values["results"]:
            raise ValueError(f"{source}: results has no 'All' group; is it PQAccumulator.results()?")
        return cls(**values)


@dataclass
class TrainedNetwork:
    """One trained network of a run: its name, recipe, history and training wall time."""

    name: str
    recipe: Any  # TrainRecipe
    history: Any  # History
    seconds: float


def build_network(name: str, categories, recipe=None):
    """Network ``name`` for ``categories``, randomly initialised, built as ``recipe`` trains it:
    in the published configuration of its data set, and, when it starts from weights, its
    ResNet bodies frozen as the recipe says (:func:`~panopticlab.models.starts.freeze_bodies`).
    Training builds its network with this, and evaluation rebuilds a run's from the recipe it
    recorded, so the two are one structure. ``recipe=None``: the model's defaults."""
    from ..models import zoo
    from ..models.starts import freeze_bodies

    model = zoo.build_model(name, categories, recipe.dataset if recipe is not None else None)
    if recipe is not None and recipe.start is not None:
        freeze_bodies(model, recipe.freeze_norms, recipe.freeze_at)
    return model


def train_network(recipe, categories=None, *, seed: int, **fit_options):
    """``(model, TrainedNetwork)``: the network of ``recipe`` built after seeding with ``seed``
    (so every run of a recipe starts from the same weights), resizing its images to the
    recipe's ``input_size`` if it has one (the recipe returned says ``None`` for a network
    that does not resize) and, in training, leaving them at the data's size where the recipe
    resizes them (``short_sides``), trained by
    :func:`~.recipes.fit` (``fit_options`` passed on) and timed.

    A resumed run's time counts only the steps it ran now.
    """
    from ..data.synthetic import SYNTHETIC_CATEGORIES
    from ..models.common import keep_data_size_in_training, set_input_size
    from ..models.starts import load_start
    from ..profiles import seed_everything
    from . import recipes
    from .checkpoint import find_checkpoint

    categories = SYNTHETIC_CATEGORIES if categories is None else categories
    seed_everything(seed)
    model = build_network(recipe.model, categories, recipe)
    if recipe.input_size is not None and not set_input_size(model, recipe.input_size):
        recipe = recipe.replace(input_size=None)  # the network takes its images at the data's size
    if recipe.short_sides:  # the data pipeline draws the training sizes (detectron2's mapper)
        keep_data_size_in_training(model)
    checkpoint_dir = fit_options.get("checkpoint_dir")
    if recipe.start is not None and (checkpoint_dir is None or find_checkpoint(checkpoint_dir) is None):
        # into the frozen bodies as well: a frozen norm has a norm's tensors; a resumed run has its weights
        load_start(model, recipe.start, progress=fit_options.get("progress", True))
    start = time.perf_counter()
    history = recipes.fit(model, recipe, categories, seed=seed, **fit_options)
    return model, TrainedNetwork(recipe.model, recipe, history, time.perf_counter() - start)


def record_run(name: str, model, trained: Sequence[TrainedNetwork], evaluation, samples, *, profile: str, seed: int,
               device=None, timing_images: int = 8, budget_seconds: float | None = None) -> TrainingRun:
    """The record of a finished run: ``model`` (the assembled panoptic model), the networks
    it was trained as, and its ``evaluation`` (:func:`~.evaluator.evaluate`) on ``samples``,
    the first ``timing_images`` of which (of the first image's size) time the network and
    the post-processing; ``budget_seconds``: the budget its steps were fitted to, if any."""
    import torch
    import torchvision

    from ..data.dataset import image_batch
    from .timing import inference_seconds

    # timed as one batch: the first images of the first image's size (a real split mixes sizes);
    # each sample is read once, and no further than needed
    timed = []
    for index in range(len(samples)):
        sample = samples[index]
        if not timed or sample.image.shape == timed[0].image.shape:
            timed.append(sample)
        if len(timed) == timing_images:
            break
    images = image_batch(timed)
    device = device or next(model.parameters()).device
    times = inference_seconds(model, images, device=device)
    losses = {(f"{t.name}/{series}" if len(trained) > 1 else series): thin_series(t.history.steps(series),
                                                                                   t.history.values(series))
              for t in trained for series in t.history.names if series.startswith("loss")}
    return TrainingRun(
        model=name, profile=profile, seed=seed, recipes={t.name: t.recipe.to_dict() for t in trained},
        training_seconds={t.name: float(t.seconds) for t in trained},
        parameters=sum(p.numel() for p in model.parameters()), results=evaluation.results,
        budget_seconds=budget_seconds, ablations=evaluation.ablations, miou=evaluation.miou,
        inference={**times, "images": len(images), "image_size": int(images.shape[-1]), "device": str(device),
                   "threads": torch.get_num_threads()},
        losses=losses, versions={"torch": torch.__version__, "torchvision": torchvision.__version__})


def thin_series(steps: Iterable[int], values: Iterable[float], limit: int = 200) -> list[list[float]]:
    """``[[step, value], ...]`` keeping at most ``limit`` evenly spaced points, the last included."""
    pairs = [[int(s), float(v)] for s, v in zip(steps, values)]
    if len(pairs) <= limit:
        return pairs
    stride = len(pairs) / limit
    kept = [pairs[int(i * stride)] for i in range(limit - 1)]
    return kept + [pairs[-1]]


def write_run(folder: str | os.PathLike, run: TrainingRun) -> Path:
    """Write ``folder/run.json`` atomically; returns its path."""
    from ..data.atomic import write_json

    return write_json(Path(folder) / RUN_FILE, run.to_dict(), indent=1)


def read_run(path: str | os.PathLike) -> TrainingRun:
    """The record in ``path`` (a ``run.json`` or a folder holding one).

    Raises:
        FileNotFoundError: no record there (the message says what writes one).
        ValueError: the file is not a run record (the message names the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no run record; `panopticlab train --model NAME --output DIR` writes "
                                f"DIR/{RUN_FILE}")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    return TrainingRun.from_dict(values, source=str(path))


def save_book_run(run: TrainingRun) -> Path:
    """Keep a chapter's record in the work folder (``work_dir("runs") / <model> / run.json``)."""
    from ..profiles import work_dir

    return write_run(work_dir(BOOK_RUNS) / run.model, run)


def book_runs(profile: str) -> dict[str, TrainingRun]:
    """The records the chapters kept for run profile ``profile`` in this work folder, by model name."""
    from ..profiles import work_dir

    folder = work_dir(BOOK_RUNS)
    found = (read_run(path.parent) for path in sorted(folder.glob(f"*/{RUN_FILE}"))) if folder.is_dir() else ()
    return {run.model: run for run in found if run.profile == profile}


def shipped_runs() -> dict[str, list[TrainingRun]]:
    """The records shipped with the package (``panopticlab/checkpoints/runs/<model>-seed<S>.json``):
    by model name, each model's runs in the order of their seeds."""
    found: dict[str, list[TrainingRun]] = {}
    for run in sorted(map(read_run, SHIPPED_RUNS.glob("*.json")), key=lambda run: (run.model, run.seed)):
        found.setdefault(run.model, []).append(run)
    return found


def shipped_run(model: str) -> TrainingRun:
    """The shipped record of ``model`` of the lowest seed.

    Raises:
        KeyError: none is shipped for it (the message lists those that are).
    """
    found = shipped_runs()
    if model not in found:
        raise KeyError(f"no shipped run record for {model!r}; shipped: {sorted(found)}")
    return found[model][0]


def shipped_run_path(run: TrainingRun) -> Path:
    """Where the package ships ``run``'s record."""
    return SHIPPED_RUNS / f"{run.model}-seed{run.seed}.json"
