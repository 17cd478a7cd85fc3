"""Training steps of each tiny model: FLOPs, time per step and the share of the machine's fp32 rate.

    python benchmarks/train_step.py [--steps 10] [--warmup 20] [--threads 2]
    python benchmarks/train_step.py --earlier [--split]

Every tiny network of the model table that trains (``zoo.MODELS`` rows of size ``tiny``
with a recipe of their own) runs its ``laptop`` recipe (8 images of 128 px, the scenes
drawn once and cached), built as training builds it (``runs.build_network``: the shipped
pretrained tiny body, its stem and first stage frozen) and stepped by the engine's
``Trainer.train_step`` (the recipe's optimiser, schedule and gradient clipping), at

* ``before``: the images at the data's size (every ``input_scale`` of the model's config,
  a nested detector config's included, set to ``None``);
* ``after``: the table's tiny settings as shipped (the images enlarged twice inside).

A network without an input scale (PSPNet) has one row, ``after``. The columns:

* ``GFLOP/step``: forward + backward of one untimed step after the warm-up, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions, 2 FLOPs per
  multiply-add; operations it has no formula for, such as ``grid_sample``, RoIAlign and
  the element-wise rest, count nothing);
* ``data ms``, ``model ms``: building the batch, and forward + backward + update, means
  over the timed steps; ``steps/s``: one over their sum;
* ``% fp32``: GFLOP per step x steps per second, over the machine's fp32 rate: 2 x 1024^3
  FLOPs over the best of 20 timed 1024 x 1024 x 1024 ``torch.mm`` (after 3 untimed), on
  the same threads at the start of the run (printed at the top). It can pass 100: the
  convolutions (oneDNN) may run closer to the CPU's peak than the BLAS's matmul does.

Per network, the after / before ratio of steps per second follows its rows.

``--earlier`` times instead the settings of the book against the earlier tiny ones, for
PSPNet and Mask R-CNN on the same batches (the detector's images enlarged twice on both
sides):

* ``before``: a randomly initialised body trained whole (PSPNet on widths 16-128), 64
  sampled RoIs per image, 2 x 2 samples per RoIAlign bin and 14 x 14 mask RoIs, 600
  proposals per level before the RPN's NMS, torchvision's RoIAlign kernel, torch's default
  per-tensor optimiser loop, scenes drawn anew for every batch;
* ``after``: the table's settings: the shipped pretrained body with its stem and first
  stage frozen, 32 RoIs, one sample per bin and 7 x 7 mask RoIs, 250 proposals per level,
  RoIAlign through ``grid_sample``, the fused optimiser kernel, scenes drawn once and
  cached.

``--split`` (with ``--earlier``) adds a row per detector setting changed alone, so each
one's share shows. The tiny settings' effect on what the models learn is measured by
``scripts/train_checkpoints.py`` and chapter 3.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from panopticlab.data import SYNTHETIC_CATEGORIES as CATEGORIES
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.engine import recipes, runs
from panopticlab.engine.optim import build_optimizer
from panopticlab.engine.sampling import make_train_loader
from panopticlab.engine.trainer import Trainer
from panopticlab.models import BackboneConfig, mask_rcnn, pspnet, tiny_backbone, zoo
from panopticlab.profiles import seed_everything

EARLIER_DETECTOR = dict(box_batch_size_per_image=64, roi_sampling_ratio=2, mask_roi_size=14,
                        rpn_pre_nms_top_n_train=600, grid_roi_align=False)
EARLIER_BODY = {"pspnet-tiny": BackboneConfig("tiny", widths=(16, 32, 64, 128)),
                "maskrcnn-tiny": BackboneConfig("tiny", widths=(32, 64, 128, 256))}
MATMUL_SIZE, MATMUL_REPEATS, MATMUL_WARMUP = 1024, 20, 3
NAME = 22  # width of the network column

Step = Callable[[Any, Any], Any]  # (images, targets) -> anything: one training step


# --- the networks -------------------------------------------------------------------------
def tiny_networks() -> list[str]:
    """The table's tiny networks that train with a recipe of their own (not the baseline,
    which is trained as its two networks)."""
    return [name for name, row in zoo.MODELS.items() if row.size == "tiny" and row.recipe_factory is not None]


def at_data_size(config: Any) -> Any | None:
    """``config`` with every ``input_scale`` in it that enlarges the images, nested configs'
    included, set to ``None``; ``None`` when it has none."""
    changes = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name == "input_scale" and value not in (None, 1.0):
            changes[item.name] = None
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            nested = at_data_size(value)
            if nested is not None:
                changes[item.name] = nested
    return dataclasses.replace(config, **changes) if changes else None


def rebuild(model: torch.nn.Module, config: Any) -> torch.nn.Module:
    """A model of ``model``'s class built from ``config``, with ``model``'s other settings
    (its merge and, for UPSNet, its panoptic head)."""
    settings = {"merge": model.merge_config}
    if hasattr(model, "head_config"):
        settings["head"] = model.head_config
    return type(model)(config, CATEGORIES, **settings)


def settings(recipe) -> dict[str, torch.nn.Module]:
    """The network of ``recipe`` by setting, each seeded alike: ``after`` as training builds it
    and, if its config enlarges the images, ``before``: the same at the data's size.

    The tiny recipes have no ``start``: the pretrained body is the config's
    (``BackboneConfig.weights``), loaded when the network is built, so the rebuilt one has it too.
    """
    seed_everything(0)
    after = runs.build_network(recipe.model, CATEGORIES, recipe)
    config = at_data_size(after.config)
    if config is None:
        return {"after": after}
    seed_everything(0)
    return {"before": rebuild(after, config), "after": after}


def build_earlier(name: str, earlier: bool, detector_overrides: dict | None = None) -> torch.nn.Module:
    """PSPNet or Mask R-CNN with the earlier tiny settings, or the table's with ``detector_overrides``."""
    if name == "pspnet-tiny":
        config = pspnet.PSPNetConfig.tiny(len(CATEGORIES))
        if earlier:
            config.backbone = EARLIER_BODY[name]
        return pspnet.PSPNet(config, CATEGORIES)
    overrides = EARLIER_DETECTOR if earlier else (detector_overrides or {})
    config = mask_rcnn.MaskRCNNConfig.tiny(len(CATEGORIES.thing_ids) + 1, **overrides)
    config.backbone = EARLIER_BODY[name] if earlier else tiny_backbone()
    return mask_rcnn.MaskRCNN(config, CATEGORIES)


# --- the steps ----------------------------------------------------------------------------
def train_loader(recipe, cached: bool = True) -> DataLoader:
    """The recipe's training loader (:func:`~panopticlab.engine.recipes.train_data`); ``cached``:
    every scene drawn before the first batch, as a run visits each many times."""
    source = SyntheticPanoptic(recipe.num_train, size=recipe.image_size, seed=0, split="train", cache=cached)
    if cached:
        for index in range(len(source)):
            source[index]
    return make_train_loader(recipes.train_data(recipe, source=source), recipe.batch_size)


def trainer_step(model: torch.nn.Module, recipe, loader: DataLoader, steps: int) -> Step:
    """The engine's training step of ``model`` on the CPU, with the recipe's optimiser,
    schedule (laid over at least ``steps``) and gradient clipping."""
    trainer = Trainer(model, loader, recipe.optim, max(recipe.steps, steps), "cpu", grad_clip=recipe.grad_clip,
                      progress=False)
    return trainer.train_step


def plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Step:
    """Forward, the sum of the losses, backward and ``optimizer``'s update."""
    def step(images, targets) -> None:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def warm_up(step: Step, data: Iterator, steps: int) -> None:
    """``steps`` untimed steps. They matter for the detectors: their first steps, before the
    RPN proposes boxes on the objects, have few positive RoIs and cost less than a real run's."""
    for _ in range(steps):
        step(*next(data))


def step_flops(step: Step, data: Iterator) -> float:
    """FLOPs of one step (forward + backward) as ``FlopCounterMode`` counts them."""
    images, targets = next(data)
    with FlopCounterMode(display=False) as counter:
        step(images, targets)
    return float(counter.get_total_flops())


def time_steps(step: Step, data: Iterator, steps: int) -> tuple[float, float]:
    """Seconds per step, means over ``steps``: (building the batch, forward + backward + update)."""
    data_seconds = model_seconds = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        images, targets = next(data)
        middle = time.perf_counter()
        step(images, targets)
        data_seconds += middle - start
        model_seconds += time.perf_counter() - middle
    return data_seconds / steps, model_seconds / steps


def matmul_gflops() -> float:
    """The fp32 rate of this machine on torch's threads, in GFLOP/s: 2 n^3 FLOPs of an
    n x n x n ``torch.mm`` over the best of its timed repeats, after untimed ones."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    seconds = []
    for repeat in range(MATMUL_WARMUP + MATMUL_REPEATS):
        start = time.perf_counter()
        torch.mm(a, b)
        if repeat >= MATMUL_WARMUP:
            seconds.append(time.perf_counter() - start)
    return 2 * MATMUL_SIZE ** 3 / min(seconds) / 1e9


# --- the tables ---------------------------------------------------------------------------
def print_ratio(name: str, rates: dict[str, float]) -> None:
    """The after / before ratio of steps per second of one network, if it has both."""
    if {"before", "after"} <= rates.keys():
        print(f"{name:<{NAME}} after / before: {rates['after'] / rates['before']:.2f}x steps per second")


def flops_table(args: argparse.Namespace) -> None:
    """Every trainable tiny network at its data's size and as shipped: FLOPs, times, share of the fp32 rate."""
    rate = matmul_gflops()
    print(f"fp32 rate: {rate:.1f} GFLOP/s ({MATMUL_SIZE}^3 torch.mm, best of {MATMUL_REPEATS} after "
          f"{MATMUL_WARMUP} untimed)")
    print(f"{'network':<{NAME}} {'setting':<7} {'GFLOP/step':>10} {'data ms':>8} {'model ms':>9} {'steps/s':>8} "
          f"{'% fp32':>7}")
    for name in tiny_networks():
        recipe = recipes.recipe(name, "laptop")
        loader, rates = train_loader(recipe), {}
        for setting, model in settings(recipe).items():  # both on the same batches
            step, data = trainer_step(model, recipe, loader, args.warmup + args.steps + 1), iter(loader)
            warm_up(step, data, args.warmup)
            gflop = step_flops(step, data) / 1e9
            data_s, model_s = time_steps(step, data, args.steps)
            rates[setting] = 1 / (data_s + model_s)
            print(f"{name:<{NAME}} {setting:<7} {gflop:10.2f} {1000 * data_s:8.0f} {1000 * model_s:9.0f} "
                  f"{rates[setting]:8.2f} {100 * gflop * rates[setting] / rate:7.1f}")
        print_ratio(name, rates)


def time_earlier(name: str, earlier: bool, args: argparse.Namespace,
                 detector_overrides: dict | None = None) -> tuple[float, float]:
    """Seconds per step (data, model) of :func:`build_earlier`'s network on its laptop recipe."""
    recipe = recipes.recipe(name, "laptop")
    torch.manual_seed(0)
    model = build_earlier(name, earlier, detector_overrides).train()
    if earlier:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.optim.lr,
                                      foreach=False)
    else:
        optimizer = build_optimizer(model, recipe.optim)
    step, data = plain_step(model, optimizer), iter(train_loader(recipe, cached=not earlier))
    warm_up(step, data, args.warmup)
    return time_steps(step, data, args.steps)


def earlier_table(args: argparse.Namespace) -> None:
    """PSPNet and Mask R-CNN with the earlier tiny settings against the table's (``--earlier``)."""
    print(f"{'network':<{NAME}} {'setting':<7} {'data ms':>8} {'model ms':>9} {'steps/s':>8}")
    for name in ("pspnet-tiny", "maskrcnn-tiny"):
        rates = {}
        for setting in ("before", "after"):
            data, model = time_earlier(name, setting == "before", args)
            rates[setting] = 1 / (data + model)
            print(f"{name:<{NAME}} {setting:<7} {1000 * data:8.0f} {1000 * model:9.0f} {rates[setting]:8.2f}")
        print_ratio(name, rates)
    if args.split:
        for key, value in EARLIER_DETECTOR.items():
            data, model = time_earlier("maskrcnn-tiny", False, args, {key: value})
            print(f"{'maskrcnn-tiny':<{NAME}} after, but {key}={value}: {1 / (data + model):.2f} steps/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model and setting (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    parser.add_argument("--earlier", action="store_true",
                        help="time PSPNet and Mask R-CNN with the earlier tiny settings against the table's")
    parser.add_argument("--split", action="store_true",
                        help="with --earlier: also time the detector with one earlier setting each")
    args = parser.parse_args()
    if args.split and not args.earlier:
        parser.error("--split goes with --earlier")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps each "
          f"after {args.warmup} untimed ones")
    if args.earlier:
        earlier_table(args)
    else:
        flops_table(args)


if __name__ == "__main__":
    main()
