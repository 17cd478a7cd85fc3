"""Train the tiny networks whose weights are shipped and write their checkpoints.

    .venv/bin/python scripts/train_checkpoints.py [--steps-semantic N] [--steps-instance N]
    .venv/bin/python scripts/train_checkpoints.py --model panoptic-fpn-tiny [--steps N]

By default trains ``pspnet-tiny`` and ``maskrcnn-tiny`` separately with their
``laptop``-profile recipes (``panopticlab.engine.recipes.recipe``; the step counts can
be raised), casts their weights to float16, loads them back and measures the pair on the
fixed evaluation set (:func:`measure`). With ``--model``, one network that is a panoptic
model by itself is trained and measured alone (:func:`measure_alone`). Then it writes
``panopticlab/checkpoints/<name>.pt`` with the weights and the metadata: the recipe,
seed, versions, training time and the measured numbers. Nothing is written unless every
network trained and measured; each file is replaced atomically.

The runs keep their checkpoints in ``--work-dir``: a killed run started again with the
same arguments continues where it stopped.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

import panopticlab
from panopticlab.data.synthetic import SYNTHETIC_CATEGORIES
from panopticlab.engine import pretrained, recipes
from panopticlab.engine.checkpoint import find_checkpoint
from panopticlab.engine.evaluator import evaluate
from panopticlab.models import zoo
from panopticlab.postprocess.heuristic import MergeConfig
from panopticlab.profiles import get_profile, seed_everything

# The rows with shipped weights, trained for their shipped_steps (zoo.ModelSpec); the model
# assembled from two of them (the baseline) is trained as that pair, the others each alone.
DEFAULT_STEPS = {row.name: row.shipped_steps for row in zoo.MODELS.values() if row.shipped}
BASELINE = next(row for row in zoo.MODELS.values() if row.components and set(row.components) <= set(DEFAULT_STEPS))
SEMANTIC, INSTANCE = BASELINE.components
SINGLE = tuple(name for name in DEFAULT_STEPS if name not in BASELINE.components)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps-semantic", type=int, default=DEFAULT_STEPS[SEMANTIC],
                        help=f"steps of {SEMANTIC} (default {DEFAULT_STEPS[SEMANTIC]})")
    parser.add_argument("--steps-instance", type=int, default=DEFAULT_STEPS[INSTANCE],
                        help=f"steps of {INSTANCE} (default {DEFAULT_STEPS[INSTANCE]})")
    parser.add_argument("--model", default=BASELINE.name, choices=(BASELINE.name, *SINGLE),
                        help=f"what to train: the baseline's two networks (default) or one of {', '.join(SINGLE)}")
    parser.add_argument("--steps", type=int, help="steps of a --model trained alone (default: "
                        + ", ".join(f"{name} {DEFAULT_STEPS[name]}" for name in SINGLE) + ")")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--output-dir", default=str(pretrained.FOLDER), help="where the .pt files go")
    parser.add_argument("--work-dir", default="runs/train_checkpoints", help="training checkpoints (resumable)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def train_one(name: str, steps: int, args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """Train one network with the laptop recipe (``steps`` long); returns it and its training record."""
    laptop = recipes.recipe(name, get_profile("laptop"))
    if steps < laptop.steps:
        print(f"note: {name} trains {steps} steps, fewer than the laptop recipe's {laptop.steps}", file=sys.stderr)
    train_recipe = recipes.recipe(name, get_profile("laptop"), steps=steps)
    folder = Path(args.work_dir) / name
    resumed = find_checkpoint(folder) is not None
    seed_everything(args.seed)  # the initial weights
    model = zoo.build_model(name, SYNTHETIC_CATEGORIES)
    print(f"{name}: {train_recipe}")
    start = time.perf_counter()
    history = recipes.fit(model, train_recipe, SYNTHETIC_CATEGORIES, seed=args.seed, checkpoint_dir=folder,
                          device="cpu", progress=not args.no_progress)
    seconds = time.perf_counter() - start
    record = {
        "name": name,
        "recipe": train_recipe.to_dict(),
        "steps": train_recipe.steps,
        "seed": args.seed,
        "image_size": train_recipe.image_size,
        "training_seconds": round(seconds, 1),
        "training_resumed": resumed,  # then training_seconds covers the last part only
        "final_loss": round(float(np.mean(history.values("loss")[-50:])), 4),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return model, record


def _rounded(values: dict) -> dict:
    return {key: round(100 * float(value), 4) for key, value in values.items()}


def measure(semantic_model: torch.nn.Module, instance_model: torch.nn.Module, progress: bool = False) -> dict:
    """The numbers each file states: the baseline of the pair, the network's own ablation, the mIoU.

    Measured on :data:`~panopticlab.engine.pretrained.EVAL_SET` with
    :data:`~panopticlab.engine.pretrained.EVAL_MERGE`, in per cent, rounded to 4 decimals.
    """
    merge = MergeConfig(**pretrained.EVAL_MERGE)
    baseline = BASELINE.assemble(semantic_model, instance_model, SYNTHETIC_CATEGORIES, merge=merge)
    evaluation = evaluate(baseline, pretrained.eval_samples(), SYNTHETIC_CATEGORIES, "cpu",
                          ablations=BASELINE.ablations, progress=progress)
    dataset = "SyntheticPanoptic({num_images}, size={size}, seed={seed}, split={split!r})".format(
        **pretrained.EVAL_SET)
    record = {**_rounded(evaluation.headline()),
              "evaluation": {"dataset": dataset, **pretrained.EVAL_SET, "merge": dict(pretrained.EVAL_MERGE),
                             "baseline": f"HeuristicBaseline({SEMANTIC}, {INSTANCE})"}}
    return {
        SEMANTIC: {**record, "miou": round(100 * evaluation.miou, 4),
                   "alone": {"variant": "semantic_only", **_rounded(evaluation.headline("semantic_only"))}},
        INSTANCE: {**record, "alone": {"variant": "instance_only", **_rounded(evaluation.headline("instance_only"))}},
    }


def measure_alone(model: torch.nn.Module, name: str, progress: bool = False) -> dict:
    """The numbers a model shipped alone states: its PQ, mIoU and ablations on
    :data:`~panopticlab.engine.pretrained.EVAL_SET` with its merge set to
    :data:`~panopticlab.engine.pretrained.EVAL_MERGE`, in per cent."""
    model.merge_config = MergeConfig(**pretrained.EVAL_MERGE)
    row = zoo.spec(name)
    evaluation = evaluate(model, pretrained.eval_samples(), SYNTHETIC_CATEGORIES, "cpu", ablations=row.ablations,
                          progress=progress)
    dataset = "SyntheticPanoptic({num_images}, size={size}, seed={seed}, split={split!r})".format(
        **pretrained.EVAL_SET)
    record = {**_rounded(evaluation.headline()),
              "evaluation": {"dataset": dataset, **pretrained.EVAL_SET, "merge": dict(pretrained.EVAL_MERGE)},
              "ablations": {variant: _rounded(evaluation.headline(variant)) for variant in row.ablations}}
    if evaluation.miou is not None:
        record["miou"] = round(100 * evaluation.miou, 4)
    return record


def half_precision_copy(name: str, model: torch.nn.Module) -> torch.nn.Module:
    """What is shipped: the float16 weights loaded back into a float32 network, in eval mode."""
    copy = zoo.build_model(name, SYNTHETIC_CATEGORIES)
    copy.load_state_dict(pretrained.half_state_dict(model))
    return copy.eval()


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    environment = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch_version": str(torch.__version__),  # a str subclass that weights_only loading refuses
        "torchvision_version": str(torchvision.__version__),
        "numpy_version": np.__version__,
        "panopticlab_version": panopticlab.__version__,
        "python_version": platform.python_version(),
        "machine": platform.machine(),
        "dtype": "float16",
        "categories": SYNTHETIC_CATEGORIES.to_coco(),
    }
    output = Path(args.output_dir)
    if args.model != BASELINE.name:
        model, record = train_one(args.model, args.steps or DEFAULT_STEPS[args.model], args)
        shipped_model = half_precision_copy(args.model, model)
        print(f"measuring on {pretrained.EVAL_SET} ...")
        numbers = measure_alone(shipped_model, args.model, progress=not args.no_progress)
        path = pretrained.save_pretrained(output / f"{args.model}.pt", shipped_model,
                                           {**record, **environment, **numbers})
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, trained {record['training_seconds']:.0f} s)")
        print(f"{args.model}: PQ {numbers['pq']:.1f}  SQ {numbers['sq']:.1f}  RQ {numbers['rq']:.1f}  "
              f"PQ_th {numbers['pq_th']:.1f}  PQ_st {numbers['pq_st']:.1f}")
        return 0

    trained = {name: train_one(name, steps, args)
               for name, steps in ((SEMANTIC, args.steps_semantic), (INSTANCE, args.steps_instance))}
    shipped = {name: half_precision_copy(name, model) for name, (model, _) in trained.items()}
    print(f"measuring on {pretrained.EVAL_SET} ...")
    measured = measure(shipped[SEMANTIC], shipped[INSTANCE], progress=not args.no_progress)

    for name, (_, record) in trained.items():
        path = pretrained.save_pretrained(output / f"{name}.pt", shipped[name],
                                           {**record, **environment, **measured[name]})
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, trained {record['training_seconds']:.0f} s)")
    numbers = measured[SEMANTIC]
    print(f"baseline-tiny: PQ {numbers['pq']:.1f}  SQ {numbers['sq']:.1f}  RQ {numbers['rq']:.1f}  "
          f"PQ_th {numbers['pq_th']:.1f}  PQ_st {numbers['pq_st']:.1f}")
    print(f"{SEMANTIC}: mIoU {numbers['miou']:.1f}; semantic only PQ {numbers['alone']['pq']:.1f} "
          f"(PQ_th {numbers['alone']['pq_th']:.1f})")
    alone = measured[INSTANCE]["alone"]
    print(f"{INSTANCE}: instance only PQ {alone['pq']:.1f} (PQ_th {alone['pq_th']:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
