"""``panopticlab book``: run the chapters, write the student and instructor editions, grade
a student's notebook, pair notebooks for JupyterLab."""
from __future__ import annotations

import argparse
import json
import sys

from .common import CommandError, exclusive_use, positive_int, refuse_overwriting_inputs

__all__ = ["add_parser"]

BOOK_HELP = "folder of the chapter sources (default: the repository's book/)"
SANDBOX_CHOICES = ("auto", "on", "off")


def add_parser(commands) -> None:
    book = commands.add_parser("book", help="run the book").add_subparsers(dest="book_command", required=True)
    run = book.add_parser("run", help="execute every chapter and write notebooks, HTML and timings.json")
    _run_options(run, "build/book")
    run.set_defaults(func=run_book)
    instructor = book.add_parser("instructor", help="the instructor edition: executed chapters with solutions "
                                                    "and an answer key")
    instructor.add_argument("out")
    _run_options(instructor, None)
    instructor.set_defaults(func=run_instructor)
    student = book.add_parser("student", help="write the student edition (solutions stripped)")
    student.add_argument("out")
    student.add_argument("--chapter", action="append", help="only this chapter (e.g. 01); repeatable")
    student.add_argument("--book", default=None, help=BOOK_HELP)
    student.set_defaults(func=run_student)
    check = book.add_parser("check", help="grade students' notebooks: per exercise passed / failed / not attempted")
    check.add_argument("submissions", nargs="+", metavar="SUBMISSION.ipynb",
                       help="notebooks, folders of notebooks or patterns; only .ipynb files are graded")
    check.add_argument("--json", default=None, metavar="OUT", help="also write the reports as JSON (a gradebook)")
    check.add_argument("--timeout-per-cell", type=positive_int, default=120, metavar="S",
                       help="seconds a cell (or one call of an answer) may run before it is interrupted; one "
                            "that ignores the interrupt is killed with its kernel (default 120)")
    check.add_argument("--time-limit", type=positive_int, default=3600, metavar="S",
                       help="seconds one submission may run in all (default 3600)")
    check.add_argument("--sandbox", choices=SANDBOX_CHOICES, default="auto",
                       help="run each submission in a Linux namespace sandbox: no view of the book, other "
                            "submissions or the gradebook, no network (auto: where the machine allows it; "
                            "on: refuse to grade without it; off: a plain process). See the README.")
    check.add_argument("--profile", default="ci", help="run profile (default ci)")
    check.add_argument("--chapter", default=None, help="the chapter every submission must be (default: from "
                                                       "the file name, else from its contents)")
    check.add_argument("--progress", action="store_true", help="print a line per cell while grading")
    check.add_argument("--book", default=None, help=BOOK_HELP)
    check.set_defaults(func=run_check)
    sync = book.add_parser("sync", help="write book/NN_*.ipynb paired with the .py sources, for JupyterLab; "
                                        "an existing notebook keeps its outputs")
    sync.add_argument("--book", default=None, help=BOOK_HELP)
    sync.add_argument("--fresh", action="store_true", help="write new notebooks, dropping their outputs")
    sync.set_defaults(func=run_sync)
    times = book.add_parser("times", help="the run-time line of each chapter, from a run's timings.json; "
                                          "--write puts them into the chapters")
    times.add_argument("timings", nargs="?", default="build/book/timings.json")
    times.add_argument("--write", action="store_true",
                       help="merge the timings into BOOK/timings.json and rewrite each chapter's run-time line")
    times.add_argument("--book", default=None, help=BOOK_HELP)
    times.set_defaults(func=run_times)


def _run_options(parser, default_output) -> None:
    parser.add_argument("--profile", default=None, help="ci, laptop or gpu (default: $PANOPTICLAB_PROFILE or laptop)")
    if default_output:
        parser.add_argument("--output", default=default_output)
    parser.add_argument("--chapter", action="append", help="only this chapter (e.g. 01); repeatable")
    parser.add_argument("--no-html", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    parser.add_argument("--book", default=None, help=BOOK_HELP)


def _build(args, output: str, edition: str, key: bool) -> int:
    from ..book.build import build_book
    from ..book.chapters import chapter_paths, find_book_dir
    from ..book.timings import format_seconds
    from ..data.atomic import check_writable
    from ..profiles import get_profile

    get_profile(args.profile)  # an unknown profile, or gpu without CUDA: say so before any chapter runs
    check_writable(output, "output folder", folder=True)
    book_dir = find_book_dir(args.book)
    chapter_paths(book_dir, args.chapter)  # an unknown --chapter: say so before anything runs
    reports = build_book(output, profile=args.profile, book_dir=book_dir, chapters=args.chapter,
                         html=not args.no_html, progress=not args.quiet, edition=edition, key=key)
    for report in reports:
        print(f"{report.chapter}: {format_seconds(report.seconds)} -> {report.notebook_path}")
    print(f"times per chapter: {output}/timings.json")
    if key:
        print(f"answer key: {output}/answer_key.md")
    if not args.no_html:
        print(f"HTML: {output}/html/index.html")
    return 0


def run_book(args: argparse.Namespace) -> int:
    return _build(args, args.output, "instructor", key=False)


def run_instructor(args: argparse.Namespace) -> int:
    return _build(args, args.out, "instructor", key=True)


def run_student(args: argparse.Namespace) -> int:
    from ..book.chapters import find_book_dir
    from ..book.editions import write_student_edition

    for path in write_student_edition(args.out, find_book_dir(args.book), args.chapter):
        print(path)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from ..book import sandbox
    from ..book.chapters import find_book_dir
    from ..book.grading import SubmissionReport, check_submission, read_submission, submission_files
    from ..data.atomic import atomic_write

    book_dir = find_book_dir(args.book)
    submissions, skipped = submission_files(args.submissions)
    if skipped:
        print("skipped, not a .ipynb notebook: " + ", ".join(map(str, skipped)), file=sys.stderr)
    if not submissions:
        print("error: no .ipynb notebook to grade", file=sys.stderr)
        return 1
    if args.json:  # the gradebook may not replace a submission or land in the book
        refuse_overwriting_inputs([("--json", args.json)], [*submissions, book_dir])
    sandboxed = _sandbox_choice(args.sandbox, sandbox.unavailable())
    _load_checkers()
    with exclusive_use(args.json, "--json") if args.json else nullcontext():
        # every file is read before any is run: no submission can change another's before it is graded
        read = []
        for submission in submissions:
            try:
                read.append((submission, read_submission(submission)))
            except ValueError as error:
                read.append((submission, error))
        reports, unreadable = [], 0
        for submission, notebook in read:
            if isinstance(notebook, ValueError):
                print(f"error: {notebook}", file=sys.stderr)
                report = SubmissionReport(str(submission), None, problems=[f"not graded: {notebook}"])
                unreadable += 1
            else:
                try:
                    report = check_submission(submission, book_dir=book_dir, profile=args.profile,
                                              timeout_per_cell=args.timeout_per_cell, time_limit=args.time_limit,
                                              chapter=args.chapter, sandboxed=sandboxed, progress=args.progress,
                                              notebook=notebook)
                except Exception as error:  # noqa: BLE001 - one submission never ends the batch
                    report = SubmissionReport(str(submission), None, problems=[
                        f"not graded: the grader failed on this submission ({type(error).__name__}: {error})"])
                    unreadable += 1
                print(report.table(), flush=True)
            reports.append(report.to_json())
        if args.json:
            with atomic_write(args.json, mode="w") as file:
                json.dump(reports, file, indent=2)
            print(f"JSON: {args.json}")
    return 1 if unreadable else 0


def _load_checkers() -> None:
    """Import every checker module before any submission runs: a submission that could write
    the package's files (without the sandbox) finds the grader's copy already loaded."""
    import importlib
    import pkgutil

    from .. import exercises

    for module in pkgutil.iter_modules(exercises.__path__):
        importlib.import_module(f"{exercises.__name__}.{module.name}")


def _sandbox_choice(mode: str, unavailable: str | None) -> bool:
    """Whether to sandbox, per ``--sandbox``; ``on`` without a sandbox is refused before any grading."""
    if mode == "off":
        print("grading without the sandbox (--sandbox off): each submission runs as a plain process of "
              "this user; see the README on what that does not protect", file=sys.stderr)
        return False
    if unavailable is None:
        return True
    if mode == "on":
        raise CommandError(f"--sandbox on: the sandbox cannot run on this machine: {unavailable}")
    print(f"grading without the sandbox: {unavailable}; each submission runs as a plain process of this "
          f"user (see the README)", file=sys.stderr)
    return False


def run_sync(args: argparse.Namespace) -> int:
    from ..book.chapters import chapter_paths, find_book_dir
    from ..book.editions import sync_notebook

    for path in chapter_paths(find_book_dir(args.book)):
        kept = sync_notebook(path, fresh=args.fresh)
        how = f"outputs of {kept} cells kept" if kept else "paired: edits in JupyterLab are saved to both"
        print(f"{path.name} -> {path.with_suffix('.ipynb').name} ({how})")
    return 0


def run_times(args: argparse.Namespace) -> int:
    from ..book.chapters import find_book_dir
    from ..book.timings import (TIMINGS_FILE, merge_timings, read_timings, runtime_lines, update_runtime_lines,
                                write_timings)

    measured = read_timings(args.timings)
    if not measured:
        print(f"{args.timings}: no timings yet; `panopticlab book run` writes them", file=sys.stderr)
        return 1
    for chapter, line in runtime_lines(measured).items():
        print(f"{chapter}: {line}")
    if args.write:
        book_dir = find_book_dir(args.book)
        record = book_dir / TIMINGS_FILE
        merged = merge_timings(read_timings(record), measured)
        changed = update_runtime_lines(book_dir, merged)  # checks every chapter before writing any
        write_timings(record, merged)
        print(f"{record} updated; run-time lines rewritten in {len(changed)} chapter(s)")
    return 0
