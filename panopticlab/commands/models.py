"""``panopticlab models``: the model table, one line per model; with ``--data``, what a data
set's published configuration changes in each full model, and the published training run
that ``train --schedule published`` runs."""
from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def add_parser(commands) -> None:
    parser = commands.add_parser("models", help="list the models of the book (names for --model); with --data, "
                                                "the settings a data set's published configuration changes")
    parser.add_argument("--config", choices=("tiny", "full"), default=None, help="only the tiny or the full models")
    parser.add_argument("--data", choices=("coco", "cityscapes"), default=None,
                        help="show each model's settings that differ in this data set's published configuration "
                             "from the model's default (what train --data KIND builds)")
    parser.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from ..models import zoo

    rows = [row for row in zoo.MODELS.values() if args.config in (None, row.size)]
    width = max(len(row.name) for row in rows) + 1
    for row in rows:
        trained = f"trained as {' + '.join(row.components)}" if row.components else f"trains on {', '.join(row.targets)}"
        shipped = "; weights shipped" if row.shipped else ""
        print(f"{row.name:<{width}} {row.summary} ({trained}{shipped})")
        if args.data:
            for line in _dataset_changes(row.name, args.data) + _schedule_lines(row, args.data):
                print(f"{'':<{width}}   {line}")
    return 0


def _dataset_changes(name: str, dataset: str) -> list[str]:
    """The settings of ``name`` built for ``dataset`` that differ from its default build."""
    import torch

    from ..data.categories import CategorySet
    from ..data.cityscapes import CITYSCAPES_TRAIN_ID_CATEGORIES
    from ..data.synthetic import SYNTHETIC_CATEGORIES
    from ..models import zoo

    categories: CategorySet = CITYSCAPES_TRAIN_ID_CATEGORIES if dataset == "cityscapes" else SYNTHETIC_CATEGORIES
    with torch.device("meta"):  # settings only: no weights are allocated
        default = zoo.model_settings(zoo.build_model(name, categories))
        published = zoo.model_settings(zoo.build_model(name, categories, dataset))
    changes = [f"{key}: {default.get(key)!r} -> {value!r}" for key, value in published.items()
               if default.get(key) != value]
    return changes or [f"{dataset}: the same settings as the default"]


def _schedule_lines(row, dataset: str) -> list[str]:
    """The published training run of ``row`` on ``dataset`` (``train --schedule published``)."""
    if row.components:
        return []  # each network has its own line
    schedule = row.published.get(dataset)
    if schedule is None:
        return [f"--schedule published: no published run on {dataset}"] if row.size == "full" else []
    optim = schedule.optim
    decay = f"steps at {', '.join(map(str, optim.milestones))}" if optim.schedule == "step" else \
        f"{optim.schedule} {optim.poly_power:g}"
    lines = [f"--schedule published: {schedule.iterations} iterations of {schedule.batch_size} images, "
             f"{optim.optimizer} lr {optim.lr:g}, warmup {optim.warmup_steps}, {decay}",
             f"  inputs: {schedule.inputs}", f"  from: {schedule.source}"]
    if schedule.differences:
        lines.append(f"  differs: {schedule.differences}")
    return lines
