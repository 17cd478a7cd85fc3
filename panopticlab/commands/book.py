"""``panopticlab book``: run the chapters, write the student edition, pair notebooks for JupyterLab."""
from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def add_parser(commands) -> None:
    book = commands.add_parser("book", help="run the book").add_subparsers(dest="book_command", required=True)
    run = book.add_parser("run", help="execute every chapter and write notebooks and HTML")
    run.add_argument("--profile", default=None, help="ci, laptop or gpu (default: $PANOPTICLAB_PROFILE or laptop)")
    run.add_argument("--output", default="build/book")
    run.add_argument("--chapter", action="append", help="only this chapter (e.g. 01); repeatable")
    run.add_argument("--no-html", action="store_true")
    run.add_argument("--book", default=None, help="folder of the chapter sources (default: the repository's book/)")
    run.set_defaults(func=run_book)
    student = book.add_parser("student", help="write the student edition (solutions stripped)")
    student.add_argument("out")
    student.add_argument("--book", default=None, help="folder of the chapter sources (default: the repository's book/)")
    student.set_defaults(func=run_student)
    sync = book.add_parser("sync", help="write book/NN_*.ipynb paired with the .py sources, for JupyterLab")
    sync.add_argument("--book", default=None, help="folder of the chapter sources (default: the repository's book/)")
    sync.set_defaults(func=run_sync)


def run_book(args: argparse.Namespace) -> int:
    from ..notebooks import build_book, find_book_dir
    from ..profiles import get_profile

    from ..data.atomic import check_writable

    get_profile(args.profile)  # an unknown profile, or gpu without CUDA: say so before any chapter runs
    check_writable(args.output, "--output", folder=True)
    reports = build_book(args.output, profile=args.profile, book_dir=find_book_dir(args.book),
                         chapters=args.chapter, html=not args.no_html)
    for report in reports:
        print(f"{report.chapter}: {report.seconds:.0f} s -> {report.notebook_path}")
    if not args.no_html:
        print(f"HTML: {args.output}/html/index.html")
    return 0


def run_student(args: argparse.Namespace) -> int:
    from ..notebooks import find_book_dir, write_student_edition

    for path in write_student_edition(args.out, find_book_dir(args.book)):
        print(path)
    return 0


def run_sync(args: argparse.Namespace) -> int:
    import jupytext

    from ..notebooks import chapter_paths, find_book_dir, load_chapter

    for path in chapter_paths(find_book_dir(args.book)):
        target = path.with_suffix(".ipynb")
        notebook = load_chapter(path)
        notebook.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
        jupytext.write(notebook, target)
        print(f"{path.name} -> {target.name} (paired: edits in JupyterLab are saved to both)")
    return 0
