"""The full-size models on a GPU: a training step at the published image size, and inference.

    python benchmarks/full_models_gpu.py [--models NAME ...] [--steps 5] [--batch 2] [--scale 1.0]

For each full network of the model table, built and trained as its published run
(``--schedule published``: the data set's configuration, the detectors' frozen BatchNorms and
first stages, the published solver at this batch by the linear scaling rule; random weights,
since speed and memory do not depend on them), on synthetic scenes of the size it is
published at:

* **train**: the trainer's step (:meth:`~panopticlab.engine.Trainer.train_step`: forward,
  backward, optimiser update) on a batch of ``--batch`` images, with mixed precision on
  CUDA (float16 autocast and gradient scaling); seconds per iteration after two warm-up
  steps, and the peak GPU memory;
* **inference**: one image at a time, the network and the post-processing apart
  (:func:`~panopticlab.engine.inference_seconds`), and the peak memory.

They are printed beside the published figures (../shared/reference/models.md). Those
were taken on V100s with batch 2 per GPU over 8 GPUs (detectron2's Panoptic FPN) or on
one GPU at batch 1 (inference); the built-in data has 9 categories where COCO has 133
and Cityscapes 19, which only narrows the heads' last layers.

``--device cpu --scale 0.1 --steps 3`` runs the same code on a CPU in seconds (the tests
do, so the script is ready when a GPU is at hand).
"""
from __future__ import annotations

import argparse
import time

import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATEGORIES
from panopticlab.data.dataset import PanopticDataset, image_batch
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.engine import Trainer, inference_seconds
from panopticlab.engine.runs import build_network
from panopticlab.engine.sampling import make_train_loader
from panopticlab.models import zoo

# (training image size, inference image size, published figures): COCO images resized to a
# short side of 800 (about 800 x 1066 at COCO's 4:3), Cityscapes at its full 1024 x 2048
# for inference and detectron2's 512 x 1024 training crops
COCO = (800, 1066)
# (data set of the published run, training image size, inference image size, published figures)
SETUPS = {
    "pspnet-full": ("coco", (512, 512), COCO, "no COCO figure published (the baseline's semantic network)"),
    "maskrcnn-full": ("coco", COCO, COCO,
                      "detectron2 R50-FPN 1x: 0.261 s/iter on 8 V100s (batch 2 each), 0.043 s/img, 3.4 GB"),
    "panoptic-fpn-full": ("coco", COCO, COCO, ("detectron2 R50-FPN 1x: 0.304 s/iter on 8 V100s (batch 2 each), "
                                               "0.053 s/img, 4.8 GB")),
    "upsnet-full": ("coco", COCO, COCO,
                    "uber-research/UPSNet README: no time or memory published (16 GPUs, 1 image each)"),
    "panoptic-deeplab-full": ("cityscapes", (512, 1024), (1024, 2048),
                              ("detectron2 projects/Panoptic-DeepLab README: R52-DC5 on Cityscapes, 512 x 1024 "
                               "crops, batch 32: 9682 MB training memory")),
    "maskformer-full": ("coco", COCO, COCO, "facebookresearch/MaskFormer: R50 on COCO panoptic, 64 images a batch; "
                                            "no time or memory quoted here"),
}


def scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return tuple(max(64, round(side * scale / 32) * 32) for side in size)


def peak_gigabytes(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def measure(name: str, device: torch.device, steps: int, batch: int, scale: float) -> dict:
    """Seconds per training iteration and per inferred image of one full network, and peak memory."""
    data_set, train_size, test_size, _ = SETUPS[name]
    train_size, test_size = scaled(train_size, scale), scaled(test_size, scale)
    row = zoo.spec(name)
    scenes = SyntheticPanoptic(batch * (steps + 2), size=train_size, seed=0, split="train")
    dataset = PanopticDataset(scenes, CATEGORIES, targets=row.targets, **row.target_options)
    recipe, changes = row.published_recipe(data_set, batch_size=batch, steps=steps + 2)
    model = build_network(name, CATEGORIES, recipe)  # the published structure, frozen parts included
    trainer = Trainer(model, make_train_loader(dataset, batch, shuffle=False), recipe.optim, steps + 2, device,
                      grad_clip=recipe.grad_clip, progress=False)
    batches = iter(trainer.loader)
    for _ in range(2):  # warm-up: cuDNN autotuning, the allocator's first blocks
        trainer.train_step(*next(batches))
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(*next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train = {"s_per_iter": (time.perf_counter() - start) / steps, "peak_gb": peak_gigabytes(device),
             "size": train_size, "recipe": recipe, "changes": changes}
    del trainer
    images = image_batch(list(SyntheticPanoptic(3, size=test_size, seed=0, split="val")))
    reset_peak(device)
    times = inference_seconds(model, images, device=device)
    return {"train": train, "inference": {**times, "peak_gb": peak_gigabytes(device), "size": test_size}}


def gigabytes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} GB"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS), metavar="NAME",
                        help=f"full networks of the table (default: all: {', '.join(SETUPS)})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed training iterations (after 2 warm-up ones)")
    parser.add_argument("--batch", type=int, default=2, help="images per training iteration (published: 2 per GPU)")
    parser.add_argument("--scale", type=float, default=1.0, help="image sides times this (0.1: a CPU smoke run)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{name}; AMP {'on' if device.type == 'cuda' else 'off (CPU)'}; batch {args.batch}; torch {torch.__version__}")
    rows = []
    for model_name in args.models:
        result = measure(model_name, device, args.steps, args.batch, args.scale)
        train, infer = result["train"], result["inference"]
        print(f"{model_name:22s} train {train['size'][0]}x{train['size'][1]}: {train['s_per_iter']:.3f} s/iter, "
              f"{gigabytes(train['peak_gb'])} | inference {infer['size'][0]}x{infer['size'][1]}: "
              f"{infer['network']:.3f} s network + {infer['postprocess']:.3f} s post-processing per image, "
              f"{gigabytes(infer['peak_gb'])}")
        recipe, schedule = train["recipe"], zoo.spec(model_name).published[SETUPS[model_name][0]]
        frozen = f"frozen BatchNorm, first {recipe.freeze_at} stages fixed" if recipe.freeze_norms else "trained BatchNorm"
        print(f"{'':22s} ran: the {schedule.dataset} configuration, {recipe.optim.optimizer} lr {recipe.optim.lr:g} at "
              f"batch {recipe.batch_size}, {frozen}; published run: {schedule.batch_size} images, lr "
              f"{schedule.optim.lr:g} ({schedule.source})")
        print(f"{'':22s} published: {SETUPS[model_name][3]}")
        rows.append({"model": model_name, **result})
    return rows


if __name__ == "__main__":
    main()
