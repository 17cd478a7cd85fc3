"""Pretrain the tiny ResNet-FPN that every tiny model starts from, and ship it.

    .venv/bin/python scripts/pretrain_backbone.py [--steps 4000] [--num-train 2000]

Trains :class:`panopticlab.models.dense_pretraining.DensePretraining` (semantic
segmentation plus Panoptic-DeepLab's centre heatmap and offsets, on the pyramid of a
tiny ResNet-FPN) on the built-in dataset's train split, measures the semantic head's
mIoU on the validation split, and writes ``panopticlab/checkpoints/tiny-resnet-fpn.pt``:
the backbone's weights (``body.*``, ``fpn.*``) as float16 and how they were made. Only
the backbone ships; the heads are discarded, as ImageNet classifiers are.

The run keeps its checkpoint in ``--work-dir``: a killed run started again with the same
arguments continues where it stopped.
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
from panopticlab.data.categories import VOID_LABEL
from panopticlab.data.dataset import PanopticDataset
from panopticlab.data.synthetic import SYNTHETIC_CATEGORIES, SyntheticPanoptic
from panopticlab.data.targets import semantic_target
from panopticlab.data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomScale
from panopticlab.engine import OptimConfig, Trainer, make_train_loader, save_checkpoint
from panopticlab.metrics.semantic import confusion_matrix, mean_iou
from panopticlab.models.backbones import SHIPPED_WEIGHTS
from panopticlab.models.dense_pretraining import DensePretraining, DensePretrainingConfig
from panopticlab.profiles import seed_everything

NAME = "tiny-resnet-fpn"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-train", type=int, default=2000, help="training scenes of the train split")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-val", type=int, default=100, help="validation scenes for the stated mIoU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--output", default=str(SHIPPED_WEIGHTS / f"{NAME}.pt"))
    parser.add_argument("--work-dir", default=f"runs/{NAME}", help="training checkpoints (resumable)")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


@torch.inference_mode()
def semantic_miou(model: DensePretraining, num: int, size: int) -> float:
    """mIoU of the semantic head on the first ``num`` validation scenes."""
    model.eval()
    categories = SYNTHETIC_CATEGORIES
    confusion = np.zeros((len(categories), len(categories)), np.int64)
    samples = SyntheticPanoptic(num, size=size, seed=0, split="val")
    for start in range(0, num, 16):
        batch = [samples[i] for i in range(start, min(start + 16, num))]
        images = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1) for s in batch]).float() / 255
        predicted = model(images)["semantic"].argmax(1).numpy()
        for sample, prediction in zip(batch, predicted):
            target = semantic_target(sample.panoptic, categories).numpy()
            confusion += confusion_matrix(prediction, target, len(categories), ignore_index=VOID_LABEL)
    return mean_iou(confusion)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    config = DensePretrainingConfig(num_classes=len(SYNTHETIC_CATEGORIES))
    model = DensePretraining(config)
    source = SyntheticPanoptic(args.num_train, size=args.image_size, seed=args.seed, split="train", cache=True)
    # scale augmentation: the models that start from it see objects of every size
    transforms = Compose([RandomScale(0.75, 1.5), RandomCrop(args.image_size), RandomHorizontalFlip(0.5)])
    data = PanopticDataset(source, SYNTHETIC_CATEGORIES, transforms, targets=("deeplab",), seed=args.seed)
    optim = OptimConfig(optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_steps=args.steps // 20,
                        warmup_factor=0.01, schedule="poly", poly_power=1.0)
    trainer = Trainer(model, make_train_loader(data, args.batch_size, seed=args.seed), optim, args.steps, "cpu",
                      checkpoint_dir=args.work_dir, checkpoint_every=200, grad_clip=10.0, seed=args.seed,
                      progress=not args.no_progress)
    start = time.perf_counter()
    history = trainer.fit(resume=True)
    seconds = time.perf_counter() - start
    miou = semantic_miou(model, args.num_val, args.image_size)
    state = {key: value.to(torch.float16) if value.is_floating_point() else value
             for key, value in model.backbone_state_dict().items()}
    metadata = {
        "name": NAME, "steps": args.steps, "batch_size": args.batch_size, "num_train": args.num_train,
        "image_size": args.image_size, "seed": args.seed, "optim": optim.to_dict(),
        "backbone": {"widths": list(config.backbone.widths), "blocks": list(config.backbone.blocks),
                     "norm": config.backbone.norm, "fpn_channels": config.fpn_channels},
        "task": "semantic + centre heatmap + offsets (panopticlab.models.dense_pretraining)",
        "training_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
        "final_losses": {name: round(float(np.mean(history.values(name)[-100:])), 4)
                         for name in ("loss_semantic", "loss_center", "loss_offset")},
        "val_miou": round(100 * miou, 2), "val_images": args.num_val,
        "torch_version": str(torch.__version__), "torchvision_version": str(torchvision.__version__),
        "panopticlab_version": panopticlab.__version__, "python_version": platform.python_version(),
        "dtype": "float16", "categories": SYNTHETIC_CATEGORIES.to_coco(),
    }
    path = save_checkpoint(args.output, {"kind": "pretrained-backbone", "model": state, "metadata": metadata})
    print(f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB): mIoU {100 * miou:.1f} on {args.num_val} "
          f"validation images after {args.steps} steps ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
