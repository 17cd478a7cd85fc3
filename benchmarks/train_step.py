"""Training steps per second of each tiny model: the settings of the book against the earlier ones.

    python benchmarks/train_step.py [--steps 10] [--threads 2]

For each tiny network of the model table, on the same batches of its ``laptop`` recipe
(8 images of 128 px), one run times

* ``before``: the earlier tiny settings: a randomly initialised body trained whole
  (PSPNet on widths 16-128), 64 sampled RoIs per image, 2 x 2 samples per RoIAlign bin
  and 14 x 14 mask RoIs, 600 proposals per level before the RPN's NMS, torchvision's
  RoIAlign kernel, torch's default per-tensor optimiser loop, scenes drawn anew for every
  batch;
* ``after``: the table's settings: the shipped pretrained body with its stem and first
  stage frozen, 32 RoIs, one sample per bin and 7 x 7 mask RoIs, 250 proposals per level,
  RoIAlign through ``grid_sample``, the fused optimiser kernel, scenes drawn once and
  cached.

``--split`` adds a row per detector setting changed alone, so each one's share shows.

A step is data (building the batch) plus forward, backward and the optimiser update;
the two are printed apart, and the ratio of the totals. The tiny settings' effect on
what the models learn is measured by ``scripts/train_checkpoints.py`` and chapter 3.
"""
from __future__ import annotations

import argparse
import time

import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATEGORIES
from panopticlab.data.dataset import PanopticDataset
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.engine import recipes
from panopticlab.engine.optim import build_optimizer
from panopticlab.engine.sampling import make_train_loader
from panopticlab.models import BackboneConfig, mask_rcnn, pspnet, tiny_backbone, zoo

EARLIER_DETECTOR = dict(box_batch_size_per_image=64, roi_sampling_ratio=2, mask_roi_size=14,
                        rpn_pre_nms_top_n_train=600, grid_roi_align=False)
EARLIER_BODY = {"pspnet-tiny": BackboneConfig("tiny", widths=(16, 32, 64, 128)),
                "maskrcnn-tiny": BackboneConfig("tiny", widths=(32, 64, 128, 256))}


def build(name: str, earlier: bool, detector_overrides: dict | None = None) -> torch.nn.Module:
    if name == "pspnet-tiny":
        config = pspnet.PSPNetConfig.tiny(len(CATEGORIES))
        if earlier:
            config.backbone = EARLIER_BODY[name]
        return pspnet.PSPNet(config, CATEGORIES)
    overrides = EARLIER_DETECTOR if earlier else (detector_overrides or {})
    config = mask_rcnn.MaskRCNNConfig.tiny(len(CATEGORIES.thing_ids) + 1, **overrides)
    config.backbone = EARLIER_BODY[name] if earlier else tiny_backbone()
    return mask_rcnn.MaskRCNN(config, CATEGORIES)


def loader(recipe, cached: bool):
    source = SyntheticPanoptic(recipe.num_train, size=recipe.image_size, seed=0, split="train", cache=cached)
    if cached:  # a run visits every scene many times: count them as drawn already
        for index in range(len(source)):
            source[index]
    data = PanopticDataset(source, CATEGORIES, recipes.train_transforms(recipe), targets=zoo.spec(recipe.model).targets)
    return make_train_loader(data, recipe.batch_size)


def time_steps(name: str, earlier: bool, steps: int, detector_overrides: dict | None = None,
               warmup: int = 20) -> tuple[float, float]:
    """Seconds per step: (building the batch, forward + backward + update), after ``warmup`` steps.

    The warm-up matters for the detector: its first steps, before the RPN proposes boxes
    on the objects, have few positive RoIs and cost less than the steps of a real run.
    """
    recipe = recipes.recipe(name, "laptop")
    torch.manual_seed(0)
    model = build(name, earlier, detector_overrides).train()
    if earlier:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.optim.lr,
                                      foreach=False)
    else:
        optimizer = build_optimizer(model, recipe.optim)
    batches = iter(loader(recipe, cached=not earlier))
    data_seconds = model_seconds = 0.0
    for step in range(warmup + steps):
        start = time.perf_counter()
        images, targets = next(batches)
        middle = time.perf_counter()
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= warmup:
            data_seconds += middle - start
            model_seconds += time.perf_counter() - middle
    return data_seconds / steps, model_seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model and setting (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (default 20)")
    parser.add_argument("--split", action="store_true", help="also time the detector with one earlier setting each")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps each "
          f"after {args.warmup} untimed ones")
    print(f"{'model':<14} {'setting':<7} {'data ms':>8} {'model ms':>9} {'steps/s':>8}")
    for name in ("pspnet-tiny", "maskrcnn-tiny"):
        rates = {}
        for setting in ("before", "after"):
            data, model = time_steps(name, setting == "before", args.steps, warmup=args.warmup)
            rates[setting] = 1 / (data + model)
            print(f"{name:<14} {setting:<7} {1000 * data:8.0f} {1000 * model:9.0f} {rates[setting]:8.2f}")
        print(f"{name:<14} after / before: {rates['after'] / rates['before']:.2f}x steps per second")
    if args.split:
        for key, value in EARLIER_DETECTOR.items():
            data, model = time_steps("maskrcnn-tiny", False, args.steps, {key: value}, warmup=args.warmup)
            print(f"maskrcnn-tiny  after, but {key}={value}: {1 / (data + model):.2f} steps/s")


if __name__ == "__main__":
    main()
