"""``panopticlab train``: train a model of the table with its recipe for the run profile.

    panopticlab train --model NAME [--profile P] [--steps N] [--output DIR] [--resume]

The run follows the model's recipe (:func:`panopticlab.engine.recipes.recipe`) and
writes into ``DIR`` its checkpoint (``last.pt``), history (``history.json``), recipe
(``recipe.json``), validation results (``results.json``) and the run record
(``run.json``, :mod:`panopticlab.engine.runs`: what chapter 7's comparison reads). A model made of separately
trained networks (the baseline) trains them one after the other, each in
``DIR/<network>/``, then assembles and scores the whole. With ``--resume`` an
interrupted run continues from its checkpoint and ends as an uninterrupted one would.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import CommandError, positive_int

__all__ = ["add_parser"]


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train a model of the table with its recipe for the run profile")
    parser.add_argument("--model", required=True, help="the model to train (see `panopticlab models`)")
    parser.add_argument("--profile", default=None,
                        help="ci, laptop or gpu: the recipe's sizes (default: $PANOPTICLAB_PROFILE or laptop)")
    parser.add_argument("--steps", type=positive_int, default=None, help="train this many steps instead of the recipe's")
    parser.add_argument("--output", default=None, help="run folder (default: runs/MODEL)")
    parser.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in the output folder")
    parser.add_argument("--seed", type=int, default=None, help="seed of data, augmentation and weights "
                                                               "(default: the profile's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when present)")
    parser.add_argument("--num-val", type=positive_int, default=None,
                        help="validation images scored after training (default: the profile's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_train)


def _train_network(name: str, args: argparse.Namespace, profile, folder: Path, seed: int, device: str):
    from ..data.atomic import write_json
    from ..data.synthetic import SYNTHETIC_CATEGORIES
    from ..engine import recipes
    from ..engine.runs import TrainedNetwork
    from ..metrics.report import to_json_compatible
    from ..models import zoo
    from ..profiles import seed_everything

    train_recipe = recipes.recipe(name, profile, steps=args.steps)
    seed_everything(seed)  # the initial weights
    model = zoo.build_model(name, SYNTHETIC_CATEGORIES)
    print(f"{name}: {train_recipe.steps} steps, batch {train_recipe.batch_size}, {train_recipe.image_size} px, "
          f"{train_recipe.num_train} images -> {folder}")
    start = time.perf_counter()
    history = recipes.fit(model, train_recipe, SYNTHETIC_CATEGORIES, seed=seed, checkpoint_dir=folder,
                          device=device, progress=not args.no_progress)
    seconds = time.perf_counter() - start  # a resumed run counts only the steps it ran now
    write_json(folder / "recipe.json", train_recipe.to_dict(), indent=1)
    write_json(folder / "history.json", to_json_compatible(history.state_dict()), indent=1)
    return model, TrainedNetwork(name, train_recipe, history, seconds)


def _check_run_folder(output: Path, folders) -> None:
    """Refuse, before any training, a run folder whose files could not be written after it."""
    from ..data.atomic import check_writable
    from ..engine.checkpoint import CHECKPOINT_NAME
    from ..engine.runs import RUN_FILE

    check_writable(output, "--output", folder=True)
    for folder in folders:
        check_writable(folder, "--output", folder=True)
        for name in (CHECKPOINT_NAME, "recipe.json", "history.json"):
            check_writable(folder / name, "--output")
    check_writable(output / "results.json", "--output")
    check_writable(output / RUN_FILE, "--output")


def run_train(args: argparse.Namespace) -> int:
    """Train ``args.model`` with its recipe, save checkpoints and history, print its validation scores."""
    from ..data.atomic import write_json
    from ..data.synthetic import SYNTHETIC_CATEGORIES
    from ..engine.checkpoint import find_checkpoint
    from ..engine.evaluator import evaluate
    from ..engine.recipes import val_data
    from ..engine.runs import record_run, write_run
    from ..models import zoo
    from ..profiles import get_profile
    from .evaluate import evaluation_record, print_evaluation, resolve_device

    row = zoo.spec(args.model)
    profile = get_profile(args.profile)
    device = resolve_device(args.device)
    output = Path(args.output) if args.output else Path("runs") / args.model
    names = row.components or (row.name,)
    for name in names:
        zoo.spec(name).recipe(profile, args.steps)  # a model without a recipe fails here, before any training
    folders = {name: output / name if row.components else output for name in names}
    _check_run_folder(output, folders.values())
    if not args.resume:
        existing = [str(find_checkpoint(f)) for f in folders.values() if find_checkpoint(f) is not None]
        if existing:
            raise CommandError(f"{', '.join(existing)} already exists: pass --resume to continue that run, "
                               f"or choose another --output")
    seed = profile.seed if args.seed is None else args.seed
    networks, trained = zip(*(_train_network(name, args, profile, folders[name], seed, device) for name in names))
    model = row.assemble(*networks, SYNTHETIC_CATEGORIES) if row.components else networks[0]
    samples = val_data(size=profile.image_size, num=args.num_val or profile.num_val, seed=0)
    evaluation = evaluate(model, samples, SYNTHETIC_CATEGORIES, device, ablations=row.ablations,
                          progress=not args.no_progress)
    write_json(output / "results.json", evaluation_record(args.model, evaluation), indent=1)
    write_run(output, record_run(args.model, model, trained, evaluation, samples, profile=profile.name, seed=seed,
                                 device=device))
    print_evaluation(args.model, evaluation)
    print(f"run written to {output}")
    return 0

