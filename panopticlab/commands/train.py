"""``panopticlab train``: train a model of the table with its recipe for the run profile.

    panopticlab train --model NAME [--profile P] [--steps N] [--output DIR] [--resume]
    panopticlab train --model FAMILY --config tiny|full [--data coco|cityscapes ROOT] [--input-size PX] ...
    panopticlab train --model FAMILY --config full --schedule published --data coco|cityscapes ROOT [--batch-size N]

The run follows the model's recipe (:func:`panopticlab.engine.recipes.recipe`) and
writes into ``DIR`` its checkpoint (``last.pt``), history (``history.json``), recipe
(``recipe.json``), validation results (``results.json``) and the run record
(``run.json``, :mod:`panopticlab.engine.runs`: what chapter 7's comparison reads). A model made of separately
trained networks (the baseline) trains them one after the other, each in
``DIR/<network>/``, then assembles and scores the whole. With ``--resume`` an
interrupted run continues from its checkpoint and ends as an uninterrupted one would.
``--input-size PX`` makes a network that resizes its images inside (800 px on COCO) resize
them to PX instead (recorded in ``recipe.json``, which ``panopticlab evaluate`` reads back).
``--schedule published`` runs the network's published training run on the ``--data`` set
instead of the profile's recipe (:meth:`panopticlab.models.zoo.ModelSpec.published_recipe`):
its iterations, total batch, solver, crops and resizes; with another ``--batch-size`` the
learning rate and the iterations follow the linear scaling rule, and the command says so.
With ``--data KIND ROOT`` it trains on that dataset's train split
(:func:`panopticlab.data.datasets.open_split`), scores its val split and records the
categories in ``DIR/categories.json`` for ``panopticlab evaluate``. ``DIR/data.json`` records the
data a run trains on: ``--resume`` refuses other data (or other categories) than the run's.

Under ``torchrun --nproc_per_node N -m panopticlab train ...`` the N processes train one
model data-parallel (:mod:`panopticlab.engine.distributed`): the recipe's batch is per
process, so the global batch is N times it; the validation images are shared out;
rank 0 alone prints and writes the run folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .common import CommandError, exclusive_use, positive_float, positive_int
from .trained import CATEGORIES_FILE, open_data, resolve_device, run_categories

__all__ = ["add_parser"]


def add_parser(commands) -> None:
    parser = commands.add_parser("train", help="train a model of the table with its recipe for the run profile")
    parser.add_argument("--model", required=True, help="the model to train (see `panopticlab models`): a full "
                                                       "name, or a family with --config")
    parser.add_argument("--config", choices=("tiny", "full"), default=None,
                        help="with a family name (baseline, panoptic-fpn, upsnet, panoptic-deeplab): its size")
    parser.add_argument("--data", nargs=2, metavar=("KIND", "PATH"), default=None,
                        help="train on a dataset on disk instead of the built-in data: coco ROOT or "
                             "cityscapes ROOT (its train split; scored on its val split)")
    parser.add_argument("--profile", default=None,
                        help="ci, laptop or gpu: the recipe's sizes (default: $PANOPTICLAB_PROFILE or laptop)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="profile",
                        help="profile: the run profile's recipe (default); published: the network's published "
                             "training run on the --data set (iterations, batch, learning rate, crops, resizes)")
    parser.add_argument("--steps", type=positive_int, default=None, help="train this many steps instead of the recipe's")
    parser.add_argument("--budget", type=positive_float, default=None, metavar="SECONDS",
                        help="train for about this many seconds on this machine instead of the recipe's steps: each "
                             "network's step is timed first and its steps set to fit (a model of several networks "
                             "shares the budget as its recipes do); the run records the time it took")
    parser.add_argument("--step-times-from", default=None, metavar="RUN",
                        help="with --budget: each network's time per step as an earlier run of the model on this "
                             "machine realised it (its run folder or run.json), instead of timing a few steps now")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                        help="images per step and process instead of the recipe's; with --schedule published the "
                             "learning rate and the iterations follow the linear scaling rule")
    parser.add_argument("--output", default=None, help="run folder (default: runs/MODEL)")
    parser.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in the output folder")
    parser.add_argument("--seed", type=int, default=None, help="seed of data, augmentation and weights "
                                                               "(default: the profile's)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when present)")
    parser.add_argument("--input-size", type=positive_int, default=None, metavar="PX",
                        help="the short side a network that resizes its images (Mask R-CNN, Panoptic FPN, UPSNet: "
                             "800 px, the published size) resizes them to instead, e.g. for small images or a "
                             "small GPU; recorded in the run, which evaluate then reads (default: the model's)")
    parser.add_argument("--weights", default=None, metavar="imagenet|random|FILE",
                        help="where training starts: imagenet (torchvision's ImageNet ResNet-50, downloaded into "
                             "torch's cache once; the default of the full detectors and PSPNet, as published), "
                             "random, or FILE (a ResNet-50 state dict as torchvision saves it, e.g. an offline copy "
                             "of the ImageNet file); default: the model's recipe")
    parser.add_argument("--num-val", type=positive_int, default=None,
                        help="validation images scored after training (default: the profile's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_train)


def model_name(model: str, config: str | None) -> str:
    """``--model`` and ``--config`` as one name of the table (``panoptic-fpn`` + ``full`` -> ``panoptic-fpn-full``)."""
    if config is None:
        return model
    if model.endswith(("-tiny", "-full")):
        raise CommandError(f"--model {model} already names its size; drop --config {config} or give the family "
                           f"({model.rsplit('-', 1)[0]})")
    return f"{model}-{config}"


SCHEDULES = ("profile", "published")


def network_recipe(name: str, args: argparse.Namespace, profile):
    """``(recipe, changes)``: the recipe network ``name`` trains with under ``args``, and, for a
    published schedule, how it departs from the publication (in words)."""
    from ..engine import recipes
    from ..engine.distributed import get_world_size
    from ..models import zoo

    if args.schedule == "published":
        try:
            return zoo.spec(name).published_recipe(args.data[0], world_size=get_world_size(),
                                                   batch_size=args.batch_size, steps=args.steps,
                                                   input_size=args.input_size)
        except ValueError as error:
            raise CommandError(f"--schedule published: {error}") from None
    train_recipe = recipes.recipe(name, profile, steps=getattr(args, "budget_steps", {}).get(name, args.steps))
    if args.batch_size is not None:
        train_recipe = dataclasses.replace(train_recipe, batch_size=args.batch_size)
    return train_recipe, []


def _train_network(name: str, args: argparse.Namespace, profile, folder: Path, seed: int, device: str,
                   categories, source):
    from ..data.atomic import write_json
    from ..engine.distributed import is_main_process
    from ..engine.runs import train_network
    from ..metrics.report import to_json_compatible
    from ..models import zoo

    train_recipe, changes = network_recipe(name, args, profile)
    if source is not None:  # the dataset's images, not the profile's number of synthetic ones
        train_recipe = dataclasses.replace(train_recipe, num_train=len(source))
    if args.input_size is not None:
        train_recipe = dataclasses.replace(train_recipe, input_size=args.input_size)
    if args.weights is not None:
        train_recipe = dataclasses.replace(train_recipe, start=None if args.weights == RANDOM_START else args.weights)
    if args.data:  # a full network in the data set's published configuration (a tiny one has one)
        train_recipe = dataclasses.replace(train_recipe, dataset=args.data[0])
    if is_main_process():
        if args.schedule == "published":
            published = zoo.spec(name).published[args.data[0]]
            print(f"{name}: the published run on {args.data[0]} ({published.source})")
            for change in changes or ["as published"]:
                print(f"  {change}")
            if published.differences:
                print(f"  differs from it: {published.differences}")
        size = "whole images" if train_recipe.whole_images else \
            "x".join(map(str, train_recipe.crop_size or (train_recipe.image_size,) * 2)) + " px crops"
        print(f"{name}: {train_recipe.steps} steps, batch {train_recipe.batch_size}{_per_process()}, "
              f"{size}, {train_recipe.num_train} images -> {folder}")
    model, trained = train_network(train_recipe, categories, seed=seed, checkpoint_dir=folder, device=device,
                                   progress=not args.no_progress, source=source)
    if is_main_process():
        write_json(folder / "recipe.json", trained.recipe.to_dict(), indent=1)
        write_json(folder / "history.json", to_json_compatible(trained.history.state_dict()), indent=1)
    return model, trained


RANDOM_START = "random"


def start_weights(option: str) -> str:
    """``--weights``, checked: ``"imagenet"``, ``"random"``, or an existing file's full path."""
    from ..models.starts import IMAGENET

    if option in (IMAGENET, RANDOM_START):
        return option
    if not Path(option).is_file():
        raise CommandError(f"--weights {option}: no such file (give imagenet, random or a state-dict file)")
    return str(Path(option).resolve())


def _fit_budget(args: argparse.Namespace, names, profile, categories, device: str) -> None:
    """Set ``args.budget_steps`` so that the networks train for about ``args.budget`` seconds."""
    from ..engine.distributed import is_main_process
    from ..engine.timing import steps_for_budget

    recipes = {name: network_recipe(name, args, profile)[0] for name in names}
    realised = None if args.step_times_from is None else _realised_step_times(args, recipes)
    planned = steps_for_budget(recipes, args.budget, categories, device, step_seconds=realised)
    args.budget_steps = {name: steps for name, (steps, _) in planned.items()}
    source = "here" if realised is None else f"in {args.step_times_from}"
    if is_main_process():
        for name, (steps, step_seconds) in planned.items():
            print(f"{name}: a step takes {step_seconds:.3f} s {source}: {steps} steps for the {args.budget:g} s budget")


def _realised_step_times(args: argparse.Namespace, recipes) -> dict[str, float]:
    """Each network's training time over its steps in the run ``--step-times-from`` names."""
    from ..engine.runs import read_run

    named = f"--step-times-from {args.step_times_from}"
    try:
        earlier = read_run(args.step_times_from)
    except (FileNotFoundError, ValueError) as error:
        raise CommandError(f"--step-times-from {error}") from None  # the error names the file
    if earlier.model != args.model:
        raise CommandError(f"{named}: a run of {earlier.model}, not of {args.model}")
    sizes = ("batch_size", "image_size", "input_size")  # what a step's time depends on besides the machine
    times = {}
    for name, recipe in recipes.items():
        ran = earlier.recipes.get(name, {})
        if any(ran.get(key) != getattr(recipe, key) for key in sizes):
            raise CommandError(f"{named}: its {name} trained " + ", ".join(f"{key} {ran.get(key)}" for key in sizes)
                               + ", this run " + ", ".join(f"{key} {getattr(recipe, key)}" for key in sizes)
                               + ": a step of the one does not time the other")
        times[name] = earlier.training_seconds[name] / ran["steps"]
    return times


def _per_process() -> str:
    from ..engine.distributed import get_world_size

    world_size = get_world_size()
    return f" per process x {world_size} processes" if world_size > 1 else ""


def _check_splits(root, source, samples, num_val: int | None, progress: bool) -> None:
    """Before the first step: neither split is empty, and every validation image the run will
    score reads (image, PNG, categories), so a broken file fails now and not after training."""
    from tqdm import tqdm

    for name, split in (("train", source), ("val", samples)):
        if len(split) == 0:
            raise CommandError(f"{root}: the {name} split holds no image")
    scored = range(min(num_val, len(samples)) if num_val else len(samples))
    for index in tqdm(scored, desc="checking val", unit="image", disable=not progress, leave=False):
        samples[index]  # raises, naming the file, on a missing or broken image or PNG or an unknown category


DATA_FILE = "data.json"  # in a run folder: the data it trains on, which a --resume must name again


def _data_record(data, source) -> dict:
    """What a run trains on: the built-in data, or ``--data KIND ROOT`` (resolved) and its size."""
    if not data:
        return {"data": "built-in"}
    kind, root = data
    return {"data": kind, "root": str(Path(root).resolve()), "train_images": len(source)}


def _check_same_data(output: Path, trained_on: dict, categories) -> None:
    """Refuse, before any training, a ``--resume`` on other data than the run's (its ``data.json``
    and ``categories.json``): its checkpoint would go on with other images, or not fit at all."""
    import json

    recorded = output / DATA_FILE
    if recorded.is_file():
        before = json.loads(recorded.read_text(encoding="utf-8"))
        if before != trained_on:
            raise CommandError(f"--resume: {output} was trained on {_describe(before)}, not on "
                               f"{_describe(trained_on)}; resume with the same --data")
    if (output / CATEGORIES_FILE).is_file() and run_categories(str(output)).to_coco() != categories.to_coco():
        raise CommandError(f"--resume: {output / CATEGORIES_FILE} lists other categories than this run's data; "
                           f"resume with the --data it was trained on")


def _describe(record: dict) -> str:
    if record.get("data") == "built-in":
        return "the built-in data"
    return f"--data {record.get('data')} {record.get('root')} ({record.get('train_images')} training images)"


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
    check_writable(output / CATEGORIES_FILE, "--output")
    check_writable(output / DATA_FILE, "--output")


def run_train(args: argparse.Namespace) -> int:
    """Train ``args.model`` with its recipe, save checkpoints and history, print its validation scores.

    Under ``torchrun`` every process runs this; they train and evaluate together.
    """
    from ..engine.distributed import (
        destroy_distributed,
        init_distributed,
        is_distributed,
    )
    joined_before = is_distributed()  # a caller's process group is the caller's to leave
    context = init_distributed(device=resolve_device(args.device))
    try:
        return _train_and_score(args, context)
    except KeyboardInterrupt:
        output = args.output or f"runs/{args.model}"
        print(f"interrupted: the run folder {output} keeps its last checkpoint; continue with the same command "
              f"and --resume", file=sys.stderr)
        return 130  # the shell's code for Ctrl-C
    finally:
        if not joined_before:
            destroy_distributed()


def _train_and_score(args: argparse.Namespace, context) -> int:
    from contextlib import nullcontext

    from ..data.atomic import write_json
    from ..data.synthetic import SYNTHETIC_CATEGORIES
    from ..engine.checkpoint import find_checkpoint
    from ..engine.distributed import is_main_process
    from ..engine.evaluator import evaluate
    from ..engine.recipes import val_data
    from ..engine.runs import record_run, write_run
    from ..models import zoo
    from ..profiles import get_profile
    from .evaluate import evaluation_record, print_evaluation

    args.model = model_name(args.model, args.config)
    row = zoo.spec(args.model)
    profile = get_profile(args.profile)
    # under torchrun each process has its own GPU (cuda:LOCAL_RANK)
    device = str(context.device) if context.world_size > 1 else resolve_device(args.device)
    output = Path(args.output) if args.output else Path("runs") / args.model
    categories, source, samples = SYNTHETIC_CATEGORIES, None, None
    if args.data:  # read before any training: a wrong folder fails now
        kind, root = args.data
        source, categories = open_data(kind, root, "train")
        samples, val_categories = open_data(kind, root, "val")
        if val_categories.to_coco() != categories.to_coco():
            raise CommandError(f"{root}: the train and val splits list different categories")
        _check_splits(root, source, samples, args.num_val, progress=not args.no_progress)
    names = row.components or (row.name,)
    if args.schedule == "published" and not args.data:
        raise CommandError("--schedule published runs a network's published training on a data set: give "
                           "--data coco ROOT or --data cityscapes ROOT")
    if args.budget is not None and (args.steps is not None or args.schedule == "published"):
        raise CommandError("--budget sets the steps from a time: it takes neither --steps nor --schedule published")
    if args.step_times_from is not None and args.budget is None:
        raise CommandError("--step-times-from times the steps of a --budget: give --budget SECONDS too")
    for name in names:
        network_recipe(name, args, profile)  # a model without a recipe fails here, before any training
    if args.weights is not None:
        args.weights = start_weights(args.weights)  # checked now (a missing file too), used by each network
    folders = {name: output / name if row.components else output for name in names}
    _check_run_folder(output, folders.values())
    # one run at a time in a folder: a second train into it is refused before it reads or writes anything
    with exclusive_use(output, "--output") if is_main_process() else nullcontext():
        if not args.resume:
            existing = [str(find_checkpoint(f)) for f in folders.values() if find_checkpoint(f) is not None]
            if existing:
                raise CommandError(f"{', '.join(existing)} already exists: pass --resume to continue that run, "
                                   f"or choose another --output")
        seed = profile.seed if args.seed is None else args.seed
        if args.budget is not None:
            _fit_budget(args, names, profile, categories, device)
        trained_on = _data_record(args.data, source)
        if args.resume:
            _check_same_data(output, trained_on, categories)
        if is_main_process():
            write_json(output / CATEGORIES_FILE, categories.to_coco(), indent=1)  # what evaluate rebuilds the model with
            write_json(output / DATA_FILE, trained_on, indent=1)
        networks, trained = zip(*(_train_network(name, args, profile, folders[name], seed, device, categories, source)
                                  for name in names))
        model = row.assemble(*networks, categories) if row.components else networks[0]
        if samples is None:
            samples = val_data(size=profile.image_size, num=args.num_val or profile.num_val, seed=0)
        elif args.num_val:
            samples = [samples[i] for i in range(min(args.num_val, len(samples)))]
        evaluation = evaluate(model, samples, categories, device, ablations=row.ablations,
                              progress=not args.no_progress)
        if is_main_process():
            write_json(output / "results.json", evaluation_record(args.model, evaluation), indent=1)
            write_run(output, record_run(args.model, model, trained, evaluation, samples, profile=profile.name,
                                         seed=seed, device=device, budget_seconds=args.budget))
            print_evaluation(args.model, evaluation)
            print(f"run written to {output}")
        return 0

