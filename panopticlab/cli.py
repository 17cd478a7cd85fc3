"""The ``panopticlab`` command line.

    panopticlab data synth OUT --split val --num 100 --size 256 --seed 0
    panopticlab data check JSON [--image-folder DIR] | --cityscapes ROOT --split val
    panopticlab train --model baseline-tiny [--profile laptop] [--output runs/baseline-tiny]
    panopticlab evaluate --gt-json G --gt-folder GF --pred-json P --pred-folder PF
    panopticlab evaluate --model baseline-tiny --pretrained | --checkpoint runs/baseline-tiny
    panopticlab book run [--profile laptop] [--output build/book] [--chapter 01]
    panopticlab book student OUT
    panopticlab book sync
"""
from __future__ import annotations

import argparse
import sys


def _data_synth(args: argparse.Namespace) -> int:
    from .data.synthetic import write_synthetic_coco

    if len(args.size) > 2:
        raise SystemExit(f"--size takes one side or a height and a width, got {args.size}")
    size = tuple(args.size) if len(args.size) == 2 else args.size[0]
    write_synthetic_coco(args.out, split=args.split, num=args.num, size=size, seed=args.seed, progress=not args.quiet)
    print(f"wrote {args.num} {args.split} images to {args.out}")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data.errors import PanopticFormatError

    try:
        if args.cityscapes:
            from .data.cityscapes import CityscapesPanoptic

            dataset = CityscapesPanoptic(args.cityscapes, split=args.split, use_train_id=args.train_id)
        else:
            if not args.json:
                raise SystemExit("give a COCO panoptic JSON file, or --cityscapes ROOT")
            from .data.coco import CocoPanoptic

            dataset = CocoPanoptic(args.json, png_folder=args.png_folder, image_folder=args.image_folder)
        segments, crowd = 0, 0
        for index in tqdm(range(len(dataset)), desc="checking", unit="image", disable=args.quiet):
            pan = dataset.panoptic(index) if args.no_images else dataset[index].panoptic
            segments += len(pan.segments)
            crowd += sum(s.iscrowd for s in pan.segments)
    except (PanopticFormatError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"ok: {len(dataset)} images, {segments} segments ({crowd} crowd), {len(dataset.categories)} categories")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.model:
        from .engine.cli import run_model_evaluation

        return run_model_evaluation(args)
    from .metrics.cli import run_evaluate

    return run_evaluate(args)


def _train(args: argparse.Namespace) -> int:
    from .engine.cli import run_train

    return run_train(args)


def _book_run(args: argparse.Namespace) -> int:
    from .notebooks import build_book

    reports = build_book(args.output, profile=args.profile, chapters=args.chapter, html=not args.no_html)
    for report in reports:
        print(f"{report.chapter}: {report.seconds:.0f} s -> {report.notebook_path}")
    if not args.no_html:
        print(f"HTML: {args.output}/html/index.html")
    return 0


def _book_student(args: argparse.Namespace) -> int:
    from .notebooks import write_student_edition

    for path in write_student_edition(args.out):
        print(path)
    return 0


def _book_sync(args: argparse.Namespace) -> int:
    import jupytext

    from .notebooks import chapter_paths, load_chapter

    for path in chapter_paths():
        target = path.with_suffix(".ipynb")
        notebook = load_chapter(path)
        notebook.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
        jupytext.write(notebook, target)
        print(f"{path.name} -> {target.name} (paired: edits in JupyterLab are saved to both)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="panopticlab", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the built-in synthetic dataset in COCO panoptic format")
    synth.add_argument("out", help="root folder; writes OUT/<split>/, OUT/annotations/panoptic_<split>.json and PNGs")
    synth.add_argument("--split", default="val", choices=["train", "val", "test"])
    synth.add_argument("--num", type=int, default=100, help="number of images")
    synth.add_argument("--size", type=int, nargs="+", default=[256], metavar="N",
                       help="image side, or height and width")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=_data_synth)
    check = data.add_parser("check", help="read every image and annotation of a set and report the first problem")
    check.add_argument("json", nargs="?", help="COCO panoptic JSON (PNG and image folders follow COCO's layout)")
    check.add_argument("--png-folder", help="folder of the panoptic PNGs (default: the JSON's path without .json)")
    check.add_argument("--image-folder", help="folder of the images (default: COCO's layout)")
    check.add_argument("--cityscapes", metavar="ROOT", help="a Cityscapes root with the panoptic annotations")
    check.add_argument("--split", default="val", help="Cityscapes split")
    check.add_argument("--train-id", action="store_true", help="Cityscapes annotations in train ids")
    check.add_argument("--no-images", action="store_true", help="check the annotations only")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=_data_check)

    from .engine.cli import add_model_evaluation_arguments, add_train_arguments
    from .metrics.cli import add_evaluate_arguments

    train = commands.add_parser("train", help="train a named model with its recipe for the run profile")
    add_train_arguments(train)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate", help="panoptic quality: of predictions in COCO panoptic format (--gt-json/--pred-json), "
                         "or of a named model on the built-in validation split (--model)")
    add_evaluate_arguments(evaluate, required=False)
    add_model_evaluation_arguments(evaluate)
    evaluate.set_defaults(func=_evaluate)

    book = commands.add_parser("book", help="run the book").add_subparsers(dest="book_command", required=True)
    run = book.add_parser("run", help="execute every chapter and write notebooks and HTML")
    run.add_argument("--profile", default=None, help="ci, laptop or gpu (default: $PANOPTICLAB_PROFILE or laptop)")
    run.add_argument("--output", default="build/book")
    run.add_argument("--chapter", action="append", help="only this chapter (e.g. 01); repeatable")
    run.add_argument("--no-html", action="store_true")
    run.set_defaults(func=_book_run)
    student = book.add_parser("student", help="write the student edition (solutions stripped)")
    student.add_argument("out")
    student.set_defaults(func=_book_student)
    sync = book.add_parser("sync", help="write book/NN_*.ipynb paired with the .py sources, for JupyterLab")
    sync.set_defaults(func=_book_sync)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
