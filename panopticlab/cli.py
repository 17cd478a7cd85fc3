"""The ``panopticlab`` command line.

    panopticlab data synth OUT --split val --num 100 --size 256 --seed 0
    panopticlab evaluate --gt-json G --gt-folder GF --pred-json P --pred-folder PF
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


def _evaluate(args: argparse.Namespace) -> int:
    from .metrics.cli import run_evaluate

    return run_evaluate(args)


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

    evaluate = commands.add_parser("evaluate", help="panoptic quality of predictions in COCO panoptic format")
    try:
        from .metrics.cli import add_evaluate_arguments
    except ImportError:  # the evaluator is optional at import time of the CLI
        add_evaluate_arguments = None
    if add_evaluate_arguments is not None:
        add_evaluate_arguments(evaluate)
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
