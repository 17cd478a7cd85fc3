"""``panopticlab data``: write the built-in dataset, check a dataset on disk."""
from __future__ import annotations

import argparse

from .common import CommandError, positive_int

__all__ = ["add_parser"]


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the built-in synthetic dataset in COCO panoptic format")
    synth.add_argument("out", help="root folder; writes OUT/<split>/, OUT/annotations/panoptic_<split>.json and PNGs")
    synth.add_argument("--split", default="val", choices=["train", "val", "test"])
    synth.add_argument("--num", type=positive_int, default=100, help="number of images")
    synth.add_argument("--size", type=positive_int, nargs="+", default=[256], metavar="N",
                       help="image side, or height and width")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=run_synth)
    check = data.add_parser("check", help="read every image and annotation of a set and report the first problem")
    check.add_argument("json", nargs="?", help="COCO panoptic JSON (PNG and image folders follow COCO's layout)")
    check.add_argument("--png-folder", help="folder of the panoptic PNGs (default: the JSON's path without .json)")
    check.add_argument("--image-folder", help="folder of the images (default: COCO's layout)")
    check.add_argument("--cityscapes", metavar="ROOT", help="a Cityscapes root with the panoptic annotations")
    check.add_argument("--split", default="val", help="Cityscapes split")
    check.add_argument("--train-id", action="store_true", help="Cityscapes annotations in train ids")
    check.add_argument("--no-images", action="store_true", help="check the annotations only")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=run_check)


def run_synth(args: argparse.Namespace) -> int:
    from ..data.atomic import check_writable
    from ..data.synthetic import write_synthetic_coco

    if len(args.size) > 2:
        raise CommandError(f"--size takes one side or a height and a width, got {args.size}")
    check_writable(args.out, "OUT", folder=True)
    size = tuple(args.size) if len(args.size) == 2 else args.size[0]
    write_synthetic_coco(args.out, split=args.split, num=args.num, size=size, seed=args.seed, progress=not args.quiet)
    print(f"wrote {args.num} {args.split} images to {args.out}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.cityscapes:
        from ..data.cityscapes import CityscapesPanoptic

        dataset = CityscapesPanoptic(args.cityscapes, split=args.split, use_train_id=args.train_id)
    else:
        if not args.json:
            raise CommandError("give a COCO panoptic JSON file, or --cityscapes ROOT")
        from ..data.coco import CocoPanoptic

        dataset = CocoPanoptic(args.json, png_folder=args.png_folder, image_folder=args.image_folder)
    if len(dataset) == 0:
        raise CommandError(f"{args.cityscapes or args.json}: no images to check (the set is empty)")
    segments, crowd = 0, 0
    for index in tqdm(range(len(dataset)), desc="checking", unit="image", disable=args.quiet):
        pan = dataset.panoptic(index) if args.no_images else dataset[index].panoptic
        segments += len(pan.segments)
        crowd += sum(1 for s in pan.segments if s.iscrowd)
    print(f"ok: {len(dataset)} images, {segments} segments ({crowd} crowd), {len(dataset.categories)} categories")
    return 0
