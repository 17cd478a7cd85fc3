"""The book's chapters as notebooks: load, execute, render, and make the student edition.

Chapters are stored in ``book/`` as jupytext ``py:percent`` files, the one source of
truth (readable diffs, no stored outputs). This module turns them into notebooks,
executes them in a run profile, writes the executed ``.ipynb`` and an HTML version,
and strips exercise solutions to produce the student edition.

Exercise solutions sit between two marker lines inside a code cell::

    def rgb_to_id(rgb):
        # BEGIN SOLUTION
        ...reference solution...
        # END SOLUTION

The student edition replaces each such block with ``raise NotImplementedError(...)``
at the same indentation.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .data.atomic import atomic_write

#: The chapters of a source checkout: ``book/`` beside the package. An installed package
#: has no chapters; :func:`find_book_dir` says so and how to point at them.
BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
BOOK_ENV_VAR = "PANOPTICLAB_BOOK"
SOLUTION_BLOCK = re.compile(r"^([ \t]*)# BEGIN SOLUTION[^\n]*\n.*?^[ \t]*# END SOLUTION[^\n]*(\n|$)", re.M | re.S)
STUDENT_STUB = '{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError("write your solution here")\n'


def find_book_dir(book_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the chapter sources: ``book_dir``, else ``$PANOPTICLAB_BOOK``, else the checkout's ``book/``.

    Raises:
        FileNotFoundError: the folder does not exist (the message says how to name it).
    """
    chosen = book_dir or os.environ.get(BOOK_ENV_VAR) or BOOK_DIR
    path = Path(chosen)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder of chapters; the chapters are the book/ folder of the "
                                f"panopticlab repository: pass --book PATH or set {BOOK_ENV_VAR}")
    return path


def chapter_paths(book_dir: str | os.PathLike = BOOK_DIR) -> list[Path]:
    """The chapter sources ``book/NN_*.py`` in chapter order."""
    paths = sorted(Path(book_dir).glob("[0-9][0-9]_*.py"))
    if not paths:
        raise FileNotFoundError(f"no chapters (NN_*.py) in {book_dir}")
    return paths


def load_chapter(path: str | os.PathLike):
    """Read a ``py:percent`` chapter into an ``nbformat`` notebook (no outputs)."""
    import jupytext

    notebook = jupytext.read(path, fmt="py:percent")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def strip_solutions(source: str) -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a stub."""
    return SOLUTION_BLOCK.sub(lambda m: STUDENT_STUB.format(indent=m.group(1)), source)


def student_edition(notebook):
    """A copy of ``notebook`` with the exercise solutions removed."""
    import copy

    student = copy.deepcopy(notebook)
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
    return student


@dataclass
class ExecutionReport:
    chapter: str
    seconds: float
    notebook_path: Path
    html_path: Path | None


def execute_notebook(notebook, profile: str, cwd: str | os.PathLike, timeout: int = 1800):
    """Execute ``notebook`` in place with ``PANOPTICLAB_PROFILE=profile``; stop at the first error.

    The kernel draws with matplotlib's inline backend whatever ``MPLBACKEND`` says here
    (scripts and tests set ``Agg``), so that every figure is kept in the executed notebook.

    Raises:
        nbclient.exceptions.CellExecutionError: naming the failing cell and its traceback.
    """
    from nbclient import NotebookClient

    kernel_environment = {"PANOPTICLAB_PROFILE": profile, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    before = {name: os.environ.get(name) for name in kernel_environment}
    os.environ.update(kernel_environment)  # the kernel inherits this process's environment
    try:
        # the kernel talks to us over local TCP; its log line warning about that is noise here
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}}, extra_arguments=["--log-level=ERROR"])
        client.execute()
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return notebook


def build_book(output: str | os.PathLike, profile: str | None = None, book_dir: str | os.PathLike = BOOK_DIR,
               chapters: list[str] | None = None, html: bool = True) -> list[ExecutionReport]:
    """Execute every chapter and write ``output/NN_*.ipynb`` (+ ``output/html/``).

    Each chapter runs with ``output`` as its working directory, so files a chapter
    writes (datasets, checkpoints) land there and not in the source tree.
    """
    import nbformat
    from tqdm.auto import tqdm

    from .profiles import get_profile

    profile = get_profile(profile).name
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = chapter_paths(book_dir)
    if chapters:
        paths = [p for p in paths if any(p.name.startswith(c) or p.stem == c for c in chapters)]
    reports = []
    for path in tqdm(paths, desc=f"chapters ({profile} profile)", unit="chapter"):
        start = time.perf_counter()
        notebook = execute_notebook(load_chapter(path), profile, cwd=output)
        notebook_path = output / f"{path.stem}.ipynb"
        _write_atomic(notebook_path, nbformat.writes(notebook))
        html_path = None
        if html:
            html_path = output / "html" / f"{path.stem}.html"
            _write_atomic(html_path, _to_html(notebook))
        reports.append(ExecutionReport(path.stem, time.perf_counter() - start, notebook_path, html_path))
    if html:
        _write_atomic(output / "html" / "index.html", _index_html(reports))
    return reports


def write_student_edition(output: str | os.PathLike, book_dir: str | os.PathLike = BOOK_DIR) -> list[Path]:
    """Write ``output/NN_*.ipynb`` with solutions stripped, ready to hand out."""
    import nbformat

    output = Path(output)
    written = []
    for path in chapter_paths(book_dir):
        target = output / f"{path.stem}.ipynb"
        _write_atomic(target, nbformat.writes(student_edition(load_chapter(path))))
        written.append(target)
    return written


def _to_html(notebook) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    return body


def _index_html(reports: list[ExecutionReport]) -> str:
    items = "\n".join(f'<li><a href="{r.chapter}.html">{r.chapter.replace("_", " ")}</a> '
                      f"({r.seconds:.0f} s)</li>" for r in reports)
    return f"<!doctype html><html><head><meta charset='utf-8'><title>panopticlab</title></head>" \
           f"<body><h1>panopticlab: a runnable textbook on panoptic segmentation</h1><ol>{items}</ol></body></html>\n"


def _write_atomic(path: Path, text: str) -> None:
    with atomic_write(path, mode="w") as file:
        file.write(text)
