"""Command-line training and evaluation of the named models.

    panopticlab train --model NAME [--profile P] [--steps N] [--output DIR] [--resume]
    panopticlab evaluate --model NAME (--checkpoint PATH | --pretrained) [--predictions JSON]

``train`` follows the book's recipe (:func:`~.recipes.recipe`) for the profile and
writes into ``DIR`` the run's checkpoint (``last.pt``), its history
(``history.json``), the recipe (``recipe.json``) and the validation results
(``results.json``). A baseline (``baseline-*``) is its two networks trained one after
the other, each in ``DIR/<network>/``, then merged and scored. With ``--resume`` an
interrupted run continues from its checkpoint and ends as an uninterrupted one would.

``evaluate`` scores a trained model on the synthetic validation split: the PQ table,
the mIoU of a semantic network, and the ablations each network allows. A semantic or
instance network alone is scored through its ablation (things from connected regions;
instances without stuff). ``--predictions`` also writes the panoptic predictions in
COCO panoptic format, for ``pq_compute`` or ``panopticlab evaluate --gt-json ...``.

Both functions return the exit status: 0 on success, 1 for bad input or a missing
file (the error is printed on stderr).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from ..data.atomic import write_json
from ..data.errors import PanopticFormatError
from ..data.synthetic import SYNTHETIC_CATEGORIES
from ..metrics.report import format_per_class, format_table, to_json_compatible
from ..models import zoo
from ..profiles import ProfileError, get_profile, seed_everything
from . import recipes
from .checkpoint import CHECKPOINT_NAME, find_checkpoint, load_model_weights

__all__ = ["add_train_arguments", "run_train", "add_model_evaluation_arguments", "run_model_evaluation",
           "print_results"]

VARIANT_TITLES = {"baseline": "baseline (semantic + instance, heuristic merge)",
                  "semantic_only": "semantic network only (things from connected regions)",
                  "instance_only": "instance network only (no stuff)"}


def _add_once(parser: argparse.ArgumentParser, flag: str, **options) -> None:
    """Add ``flag`` unless the parser already has it (the evaluator's options may share a parser)."""
    if flag not in parser._option_string_actions:
        parser.add_argument(flag, **options)


# --- panopticlab train ------------------------------------------------------------------
def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``panopticlab train`` to ``parser``."""
    parser.add_argument("--model", required=True, choices=zoo.MODEL_NAMES, help="the model to train")
    parser.add_argument("--profile", default=None,
                        help="ci, laptop or gpu: the recipe's sizes (default: $PANOPTICLAB_PROFILE or laptop)")
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead of the recipe's")
    parser.add_argument("--output", default=None, help="run folder (default: runs/MODEL)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run whose checkpoint is in the output folder")
    parser.add_argument("--seed", type=int, default=None, help="seed of data, augmentation and weights "
                                                               "(default: the profile's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when present)")
    parser.add_argument("--num-val", type=int, default=None,
                        help="validation images scored after training (default: the profile's)")
    _add_once(parser, "--no-progress", action="store_true", help="no progress bar")
    return parser


def _train_network(name: str, args: argparse.Namespace, profile, folder: Path, seed: int) -> nn.Module:
    train_recipe = recipes.recipe(name, profile, steps=args.steps)
    seed_everything(seed)  # the initial weights
    model = zoo.build_model(name, SYNTHETIC_CATEGORIES)
    print(f"{name}: {train_recipe.steps} steps, batch {train_recipe.batch_size}, {train_recipe.image_size} px, "
          f"{train_recipe.num_train} images -> {folder}")
    history = recipes.fit(model, train_recipe, SYNTHETIC_CATEGORIES, seed=seed, checkpoint_dir=folder,
                          device=args.device, progress=not args.no_progress)
    write_json(folder / "recipe.json", train_recipe.to_dict(), indent=1)
    write_json(folder / "history.json", to_json_compatible(history.state_dict()), indent=1)
    return model


def run_train(args: argparse.Namespace) -> int:
    """Train ``args.model`` with its recipe, save checkpoints and history, print its validation scores."""
    try:
        profile = get_profile(args.profile)
        if args.steps is not None and args.steps < 1:
            raise ValueError(f"--steps must be positive, got {args.steps}")
        output = Path(args.output) if args.output else Path("runs") / args.model
        names = zoo.COMPONENTS.get(args.model, (args.model,))
        folders = {name: output / name if len(names) > 1 else output for name in names}
        if not args.resume:
            existing = [str(find_checkpoint(f)) for f in folders.values() if find_checkpoint(f) is not None]
            if existing:
                raise ValueError(f"{', '.join(existing)} already exists: pass --resume to continue that run, "
                                 f"or choose another --output")
        seed = profile.seed if args.seed is None else args.seed
        models = {name: _train_network(name, args, profile, folders[name], seed) for name in names}
        samples = recipes.val_data(size=profile.image_size, num=args.num_val or profile.num_val, seed=0)
        results = _evaluate(models, samples, args.device, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, PanopticFormatError, ProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_json(output / "results.json", to_json_compatible(results), indent=1)
    print_results(results)
    print(f"run written to {output}")
    return 0


def _evaluate(models: dict[str, nn.Module], samples, device, progress: bool, predictions_json=None) -> dict:
    by_family = {zoo.family(name): model for name, model in models.items()}
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return recipes.evaluate_networks(samples, SYNTHETIC_CATEGORIES, semantic_model=by_family.get("pspnet"),
                                     instance_model=by_family.get("maskrcnn"), device=device,
                                     predictions_json=predictions_json, progress=progress)


def print_results(results: dict, per_class: bool = False) -> None:
    """Print :func:`~.recipes.evaluate_networks`' results: the main PQ table, mIoU, the ablations."""
    main = results["main"]
    print(VARIANT_TITLES[main])
    print(format_table(results[main]))
    if per_class:
        print()
        print(format_per_class(results[main]))
    if "miou" in results:
        print(f"\nmIoU of the semantic network: {100 * results['miou']:.1f}")
    others = [name for name in VARIANT_TITLES if name in results and name != main]
    for name in others:
        row = recipes.headline(results[name])
        print(f"{VARIANT_TITLES[name]}: PQ {row['pq']:.1f}, PQ_th {row['pq_th']:.1f}, PQ_st {row['pq_st']:.1f}")


# --- panopticlab evaluate --model ---------------------------------------------------------
def add_model_evaluation_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``panopticlab evaluate --model NAME ...`` to ``parser``."""
    parser.add_argument("--model", choices=zoo.MODEL_NAMES, help="the model to evaluate")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", default=None,
                         help="a checkpoint file (last.pt or shipped weights), or the run folder of "
                              "`panopticlab train` (for a baseline: the folder holding its two networks)")
    weights.add_argument("--pretrained", action="store_true", help="the weights shipped with the package")
    parser.add_argument("--num-images", type=int, default=50, help="validation images (default 50)")
    parser.add_argument("--image-size", type=int, default=128, help="their side in pixels (default 128)")
    parser.add_argument("--val-seed", type=int, default=0, help="seed of the validation split (default 0)")
    parser.add_argument("--predictions", default=None, metavar="JSON",
                        help="also write the predictions in COCO panoptic format (PNGs next to JSON)")
    parser.add_argument("--results-json", default=None, help="write the full results to this JSON file")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    _add_once(parser, "--per-class", action="store_true", help="also print the per-class table")
    _add_once(parser, "--no-progress", action="store_true", help="no progress bar")
    return parser


def _checkpoint_file(path: Path) -> Path:
    """A checkpoint file itself, or the ``last.pt`` of a run folder."""
    if path.is_dir():
        found = find_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no {CHECKPOINT_NAME} in this run folder")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file or run folder")
    return path


def _load_trained(name: str, checkpoint: Path) -> nn.Module:
    model = zoo.build_model(name, SYNTHETIC_CATEGORIES)
    load_model_weights(_checkpoint_file(checkpoint), model)
    return model.eval()


def _trained_networks(args: argparse.Namespace) -> dict[str, nn.Module]:
    """The networks of ``args.model`` with the weights that ``--checkpoint`` or ``--pretrained`` names."""
    from .. import checkpoints  # the shipped weights, loaded only when asked for

    names = zoo.COMPONENTS.get(args.model, (args.model,))
    if args.pretrained:
        missing = [name for name in names if name not in checkpoints.SHIPPED]
        if missing:
            raise ValueError(f"no shipped weights for {args.model}; shipped: {', '.join(checkpoints.SHIPPED)} "
                             f"and their baseline, baseline-tiny")
        return {name: checkpoints.load_pretrained(name)[0] for name in names}
    if args.checkpoint is None:
        raise ValueError("give the weights: --checkpoint PATH or --pretrained")
    path = Path(args.checkpoint)
    if len(names) == 1:
        return {names[0]: _load_trained(names[0], path)}
    if not path.is_dir():
        raise ValueError(f"{path}: a baseline's --checkpoint is the run folder of `panopticlab train --model "
                         f"{args.model}`, holding {' and '.join(f'{n}/' for n in names)}")
    return {name: _load_trained(name, path / name) for name in names}


def run_model_evaluation(args: argparse.Namespace) -> int:
    """Score ``args.model`` with trained weights on the synthetic validation split; print the results."""
    try:
        if args.model is None:
            raise ValueError("name the model to evaluate: --model NAME")
        if args.num_images < 1 or args.image_size < 16:
            raise ValueError(f"need at least one validation image of at least 16 px, got --num-images "
                             f"{args.num_images} --image-size {args.image_size}")
        models = _trained_networks(args)
        samples = recipes.val_data(size=args.image_size, num=args.num_images, seed=args.val_seed)
        results = _evaluate(models, samples, args.device, progress=not args.no_progress,
                            predictions_json=args.predictions)
    except (ValueError, FileNotFoundError, PanopticFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print_results(results, per_class=args.per_class)
    if args.predictions:
        print(f"predictions written to {args.predictions}")
    if args.results_json:
        write_json(args.results_json, to_json_compatible(results), indent=1)
        print(f"results written to {args.results_json}")
    return 0
