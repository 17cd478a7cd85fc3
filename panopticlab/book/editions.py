"""The two editions of the book: the student's (solutions stripped) and the instructor's answer key.

The student edition is the chapters as notebooks with every solution block replaced by
a stub (:data:`~panopticlab.book.exercises.STUDENT_STUB`); the checker calls stay, so each
exercise cell fails its checker ("not implemented yet") until the student writes the
answer. The instructor edition is the executed chapters with their solutions
(:func:`panopticlab.book.build.build_book`) plus :func:`answer_key`: every exercise, its
checker, its contract and what the checker rejects.
"""
from __future__ import annotations

import copy
import html
import inspect
import os
import textwrap
from pathlib import Path

from ..data.atomic import atomic_write
from .chapters import METADATA_KEY, chapter_paths, chapter_title, load_chapter
from .exercises import find_exercises, rejections, solution_blocks, strip_solutions


#: Written beside the student edition: its notebooks pair with no text file, even inside a
#: tree whose jupytext configuration (the repository's pyproject.toml) pairs every notebook.
STUDENT_JUPYTEXT_CONFIG = ("# The student edition is notebooks only: saving one in JupyterLab writes no paired .py\n"
                           "# (the autograder grades the .ipynb).\n"
                           'formats = "ipynb"\n')


#: The tag of a markdown cell that answers the questions above it ("check your
#: understanding", a thinking exercise): in the instructor's answer key, not in the
#: student edition. In a chapter source: ``# %% [markdown] tags=["answers"]``.
ANSWERS_TAG = "answers"


def is_answers_cell(cell) -> bool:
    """The cell holds written answers for the instructor (markdown, tagged :data:`ANSWERS_TAG`)."""
    return cell.cell_type == "markdown" and ANSWERS_TAG in cell.get("metadata", {}).get("tags", [])


def student_edition(notebook):
    """A copy of ``notebook`` with the exercise solutions removed, marked ``edition: student``.

    The chapter's jupytext metadata (its pairing with the ``.py`` source) is dropped, so a
    student's JupyterLab saves the notebook alone; the kernelspec stays. The written answers
    (:func:`is_answers_cell`) are left out.
    """
    student = copy.deepcopy(notebook)
    student.cells = [cell for cell in student.cells if not is_answers_cell(cell)]
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    student.metadata.pop("jupytext", None)
    student.metadata.setdefault(METADATA_KEY, {})["edition"] = "student"
    return student


def write_student_edition(output: str | os.PathLike, book_dir: str | os.PathLike,
                          chapters: list[str] | None = None) -> list[Path]:
    """Write ``output/NN_*.ipynb`` with solutions stripped, ready to hand out, and
    ``output/jupytext.toml`` (:data:`STUDENT_JUPYTEXT_CONFIG`); returns the notebooks.

    Raises:
        FileExistsError: a notebook there differs from the edition it would be (a student
            worked in it); nothing is written then.
        ValueError: a chapter's edition would still show a line of a solution
            (:func:`solution_lines`); nothing is written then.
    """
    import nbformat

    output = Path(output)
    editions = {}
    for path in chapter_paths(book_dir, chapters):
        edition = student_edition(load_chapter(path))
        shown = {line.strip() for cell in edition.cells for line in cell.source.splitlines()}
        leaked = sorted(_solution_lines(path.read_text(encoding="utf-8")) & shown)
        if leaked:  # checked for every chapter before any is written
            raise ValueError(f"{path}: its student edition would show {len(leaked)} line(s) of a solution, e.g. "
                             f"{leaked[0]!r}; check the chapter's solution markers. Nothing was written")
        editions[output / f"{path.stem}.ipynb"] = nbformat.writes(edition)
    worked_in = [str(target) for target, text in editions.items()
                 if target.exists() and _cell_contents(target.read_text(encoding="utf-8")) != _cell_contents(text)]
    if worked_in:  # checked for every chapter before any is written
        raise FileExistsError(f"{', '.join(worked_in)}: changed since the student edition was written (a student's "
                              f"work?); not overwritten: move {'them' if len(worked_in) > 1 else 'it'} away or "
                              f"write the edition into another folder")
    written = []
    for target, text in editions.items():
        write_text(target, text)
        written.append(target)
    write_text(output / "jupytext.toml", STUDENT_JUPYTEXT_CONFIG)
    return written


def solution_lines(book_dir: str | os.PathLike, chapters: list[str] | None = None) -> set[str]:
    """The lines of the chapters' solutions that appear nowhere else in their chapter.

    A student edition holding any of them leaks a solution; lines such as ``return x``
    that the chapter also prints outside a solution are left out (they give nothing away).
    """
    return set().union(*(_solution_lines(path.read_text(encoding="utf-8"))
                         for path in chapter_paths(book_dir, chapters)))


def _solution_lines(text: str) -> set[str]:
    """:func:`solution_lines` of one chapter source."""
    blocks = solution_blocks(text)
    outside = text
    for block in blocks:
        outside = outside.replace(block, "")
    outside_lines = {line.strip() for line in outside.splitlines()}
    inside = (line.strip() for block in blocks for line in block.splitlines()[1:-1])  # between the markers
    return {line for line in inside if line and not line.startswith("#") and line not in outside_lines}


def answer_key(book_dir: str | os.PathLike, chapters: list[str] | None = None) -> list[dict]:
    """One entry per exercise of every chapter, in order.

    Returns:
        dicts with ``chapter``, ``title``, ``number``, ``checker`` (its id), ``call`` (the
        chapter's checker call), ``contract`` (the checker's docstring), ``rejects`` (list
        of what the checker rejects, see :func:`~panopticlab.book.exercises.rejections`)
        and ``solution`` (the reference solution's source).
    """
    entries = []
    for path in chapter_paths(book_dir, chapters):
        notebook = load_chapter(path)
        title = chapter_title(notebook)
        for exercise in find_exercises(notebook):
            checker = exercise.function()
            solution_source = notebook.cells[exercise.solution_cell].source if exercise.solution_cell is not None else ""
            entries.append({"chapter": path.stem, "title": title, "number": exercise.number,
                            "checker": exercise.checker, "call": exercise.call,
                            "contract": inspect.getdoc(checker) or "", "rejects": rejections(checker),
                            "solution": textwrap.dedent("\n".join(solution_blocks(solution_source)))})
    return entries


def written_answers(book_dir: str | os.PathLike, chapters: list[str] | None = None) -> list[dict]:
    """The answers cells (:func:`is_answers_cell`) of every chapter, in order.

    Returns:
        dicts with ``chapter``, ``title`` and ``text`` (the cell's Markdown).
    """
    answers = []
    for path in chapter_paths(book_dir, chapters):
        notebook = load_chapter(path)
        answers += [{"chapter": path.stem, "title": chapter_title(notebook), "text": cell.source}
                    for cell in notebook.cells if is_answers_cell(cell)]
    return answers


def _by_chapter(entries: list[dict], answers: list[dict]) -> list[tuple[str, str, list[dict], list[dict]]]:
    """``(chapter, title, its exercise entries, its written answers)`` in chapter order."""
    order = list(dict.fromkeys([e["chapter"] for e in entries] + [a["chapter"] for a in answers]))
    titles = {item["chapter"]: item["title"] for item in [*entries, *answers]}
    return [(chapter, titles[chapter], [e for e in entries if e["chapter"] == chapter],
             [a for a in answers if a["chapter"] == chapter]) for chapter in sorted(order)]


def answer_key_markdown(entries: list[dict], answers: list[dict] = ()) -> str:
    """The answer key as one Markdown page: each chapter's exercises (:func:`answer_key`),
    then its written answers (:func:`written_answers`)."""
    lines = ["# Answer key", "", ("Every exercise of the book, its checker and what the checker rejects, and the "
                                  "answers to the questions without a checker. Written by `panopticlab book "
                                  "instructor`; the solutions are the chapters' own."), ""]
    for chapter, title, chapter_entries, chapter_answers in _by_chapter(entries, list(answers)):
        lines += [f"## {title or chapter}", ""]
        lines += _exercise_markdown(chapter_entries)
        for answer in chapter_answers:
            lines += ["### Answers to the questions", "", answer["text"].strip(), ""]
    return "\n".join(lines)


def _exercise_markdown(entries: list[dict]) -> list[str]:
    lines = []
    for entry in entries:
        first, _, rest = entry["contract"].partition("\n")
        lines += [f"### Exercise {entry['number']}", "", f"- checker: `{entry['checker']}` (called as `{entry['call']}`)",
                  f"- contract: {first.partition(':')[2].strip() or first}"]
        if rest.strip():
            lines += ["", *("  " + line if line else "" for line in rest.strip().splitlines())]
        lines += ["- the checker rejects:", *(f"  - {item}" for item in entry["rejects"] or ["(nothing listed)"]),
                  "", "```python", entry["solution"].rstrip(), "```", ""]
    return lines


def answer_key_html(entries: list[dict], answers: list[dict] = ()) -> str:
    """The answer key as one HTML page (the site's ``answer_key.html``)."""
    import nbconvert.filters

    parts = ["<h1>Answer key</h1><p>Every exercise of the book, its checker and what the checker rejects, and "
             "the answers to the questions without a checker.</p>"]
    for chapter, title, chapter_entries, chapter_answers in _by_chapter(entries, list(answers)):
        parts.append(f"<h2>{html.escape(title or chapter)}</h2>")
        parts += [_exercise_html(entry) for entry in chapter_entries]
        for answer in chapter_answers:
            parts.append("<h3>Answers to the questions</h3>" + nbconvert.filters.markdown2html(answer["text"]))
    return "\n".join(parts)


def _exercise_html(entry: dict) -> str:
    rejects = "".join(f"<li>{html.escape(item)}</li>" for item in entry["rejects"] or ["(nothing listed)"])
    return (f"<h3>Exercise {html.escape(entry['number'])}</h3>"
            f"<p>checker: <code>{html.escape(entry['checker'])}</code> called as "
            f"<code>{html.escape(entry['call'])}</code></p>"
            f"<pre class='contract'>{html.escape(entry['contract'])}</pre>"
            f"<p>The checker rejects:</p><ul>{rejects}</ul>"
            f"<pre><code>{html.escape(entry['solution'])}</code></pre>")


def _cell_contents(text: str) -> list | None:
    """A notebook's cells as (type, source, outputs), without the random cell ids; None if unreadable."""
    import nbformat

    try:
        cells = nbformat.reads(text, as_version=4).cells
    except Exception:  # noqa: BLE001 - anything unreadable differs from a fresh edition
        return None
    return [(c.cell_type, c.source, c.get("outputs", [])) for c in cells]


def _unsaved_edits(previous, notebook, target: Path, source: Path) -> int:
    """Cells of the existing notebook ``previous`` that the chapter ``notebook`` lacks, when the
    notebook is newer than its source: edits a sync would discard. 0 when the source is newer
    (the chapter was edited: the sync brings it to the notebook)."""
    if target.stat().st_mtime_ns <= source.stat().st_mtime_ns:
        return 0
    sources = {cell.source for cell in notebook.cells}
    return sum(1 for cell in previous.cells if cell.source not in sources)


def write_text(path: Path, text: str) -> None:
    with atomic_write(path, mode="w") as file:
        file.write(text)


def sync_notebook(path: str | os.PathLike, fresh: bool = False) -> int:
    """Write ``path``'s paired notebook ``NN_*.ipynb`` beside it, for JupyterLab.

    An existing notebook keeps the outputs of every cell whose source is unchanged (as
    ``jupytext --sync`` does), so a second sync does not wipe a student's work; ``fresh``
    writes a notebook without outputs. Returns the number of cells whose outputs were kept.
    """
    import jupytext
    from jupytext.combine import combine_inputs_with_outputs

    path = Path(path)
    target = path.with_suffix(".ipynb")
    notebook = load_chapter(path)
    notebook.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    kept = 0
    if target.exists():
        previous = jupytext.read(target)
        edited = _unsaved_edits(previous, notebook, target, path)
        if edited:
            raise FileExistsError(f"{target}: {edited} cell(s) edited in the notebook after {path.name} was last "
                                  f"written; syncing would discard them: save the notebook in JupyterLab (which "
                                  f"writes both files), or move it away")
        if not fresh:
            notebook = combine_inputs_with_outputs(notebook, previous, fmt="py:percent")
            kept = sum(bool(c.get("outputs")) for c in notebook.cells if c.cell_type == "code")
    write_text(target, jupytext.writes(notebook, fmt="ipynb"))
    return kept
