"""Running the whole book: execute chapters, write notebooks, the HTML site and the timings.

``OUT/timings.json`` keeps the measured seconds per chapter and profile, updated by
every run; :mod:`panopticlab.book.timings` turns them into each chapter's run-time line.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .chapters import METADATA_KEY, chapter_paths, chapter_title, load_chapter
from .editions import answer_key, answer_key_html, answer_key_markdown, write_text, written_answers
from .runner import RunRecord, execute_notebook
from .site import Page, index_html, notebook_html, simple_page, with_navigation
from .timings import TIMINGS_FILE, record_timing


@dataclass
class ExecutionReport:
    chapter: str
    seconds: float
    notebook_path: Path
    html_path: Path | None
    title: str = ""
    record: RunRecord | None = None
    notebook: object = field(default=None, repr=False)  # the executed notebook, until its page is written


def build_book(output: str | os.PathLike, profile: str | None = None, book_dir: str | os.PathLike | None = None,
               chapters: list[str] | None = None, html: bool = True, progress: bool = False,
               edition: str = "instructor", key: bool = False, stream=None) -> list[ExecutionReport]:
    """Execute the chapters and write ``output/NN_*.ipynb``, ``output/html/`` and ``output/timings.json``.

    Each chapter runs with ``output`` as its working directory, so files a chapter
    writes (datasets, checkpoints) land there and not in the source tree. With ``key``
    the answer key is written too (``output/answer_key.md`` and, with ``html``,
    ``output/html/answer_key.html``). ``progress`` prints a line per cell and each
    chapter's time (to ``stream``, default stderr).
    """
    import nbformat

    from ..profiles import get_profile
    from .chapters import BOOK_DIR

    profile = get_profile(profile).name
    book_dir = book_dir or BOOK_DIR
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = chapter_paths(book_dir, chapters)
    stream = stream or sys.stderr
    reports = []
    for number, path in enumerate(paths, 1):
        if progress:
            stream.write(f"chapter {number}/{len(paths)}: {path.stem} ({profile} profile)\n")
            stream.flush()
        notebook = load_chapter(path)
        notebook.metadata[METADATA_KEY]["edition"] = edition
        record = RunRecord(path.stem)
        start = time.perf_counter()
        execute_notebook(notebook, profile, cwd=output, progress=progress, name=path.stem, record=record,
                         stream=stream)
        seconds = time.perf_counter() - start
        notebook_path = output / f"{path.stem}.ipynb"
        write_text(notebook_path, nbformat.writes(notebook))
        reports.append(ExecutionReport(path.stem, seconds, notebook_path, None, chapter_title(notebook), record))
        record_timing(output / TIMINGS_FILE, profile, path.stem, seconds)
        if progress:
            stream.write(f"{path.stem}: {seconds:.0f} s\n")
        if html:
            reports[-1].html_path = output / "html" / f"{path.stem}.html"
            reports[-1].notebook = notebook
    extra = []
    if key:
        entries, answers = answer_key(book_dir, chapters), written_answers(book_dir, chapters)
        write_text(output / "answer_key.md", answer_key_markdown(entries, answers))
        extra.append(("answer_key.html", "answer key"))
        if html:
            write_text(output / "html" / "answer_key.html",
                       simple_page("Answer key", answer_key_html(entries, answers)))
    if html:
        write_site(output / "html", reports, extra, profile)
    return reports


def write_site(folder: Path, reports: list[ExecutionReport], extra: list[tuple[str, str]] = (),
               profile: str | None = None) -> Path:
    """Write each executed chapter's page with prev/next links, and ``index.html``; returns the index."""
    pages = [Page(r.chapter, r.title or r.chapter, r.seconds) for r in reports]
    for position, report in enumerate(reports):
        write_text(folder / f"{report.chapter}.html",
                   with_navigation(notebook_html(report.notebook), pages, position, extra))
        report.notebook = None  # the page is written; the notebook is on disk
    for href, _ in extra:
        page = folder / href
        if page.exists():
            write_text(page, with_navigation(page.read_text(encoding="utf-8"), pages, None, extra))
    index = folder / "index.html"
    write_text(index, index_html(pages, extra, profile))
    return index
