"""The autograder: execute a student's chapter notebook and say, per exercise, how it went.

The submission runs top to bottom in a kernel of its own (the ``ci`` profile by default,
errors allowed so one crash does not hide the rest), in a throw-away folder holding only
its own copy, and, where Linux allows it, in the namespace sandbox of
:mod:`panopticlab.book.sandbox` (no view of the book, other submissions or the
gradebook; no network). See :mod:`panopticlab.book.session` for the limits that hold.

**The verdict is not computed where the submission runs.** After the cell that calls an
exercise's checker, the grader makes the chapter's reference call (the call as the
chapter source writes it, not as the student may have edited it) *in its own process*:
each name the call passes is fetched from the kernel, a value as plain data, a function
as a :class:`~panopticlab.book.session.RemoteFunction` whose calls run in the kernel and
return plain data. So no cell can forge a verdict: not by redefining ``eval`` or
``print``, patching the checker module, rewriting ``sys.stdout`` or printing text that
looks like a grade; all it can shape is its answer. The check runs in strict mode
(:func:`panopticlab.exercises.checking.strict_checks`).

Verdicts (:data:`VERDICTS`): ``passed``; ``failed`` with the checker's message (or what
the student's function raised); ``not attempted`` (the stub is still there); ``timed
out`` (the exercise, or its check, ran past the limit); ``missing`` (the exercise's cell
is not in the notebook); ``not run`` (the kernel died, or was stopped at a limit, before
the exercise's check). Cells of the notebook that crashed, timed out or were killed are
reported too.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..exercises.checking import ExerciseError, strict_checks
from .answers import AnswerError
from .chapters import (
    BOOK_DIR,
    METADATA_KEY,
    chapter_number,
    chapter_paths,
    load_chapter,
)
from .exercises import find_exercises, is_stub
from .session import CallTimedOut, GradingSession, KernelStopped, StudentCodeError

VERDICTS = ("passed", "failed", "not attempted", "timed out", "missing", "not run")
#: What ``--sandbox`` may say: ``auto`` uses the sandbox where the machine allows it.
SANDBOX_MODES = ("auto", "on", "off")


@dataclass
class ExerciseResult:
    number: str
    checker: str
    verdict: str
    message: str = ""


@dataclass
class CellProblem:
    """A cell of the submission that crashed or ran past the time limit."""

    cell: int  # 1-based number among the notebook's code cells
    status: str  # "crashed", "timed out", "killed" (ignored the interrupt) or "died" (the kernel)
    error: str


@dataclass
class SubmissionReport:
    path: str
    chapter: str | None
    problems: list[str] = field(default_factory=list)
    exercises: list[ExerciseResult] = field(default_factory=list)
    cells: list[CellProblem] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        counts = Counter(e.verdict for e in self.exercises)
        return {verdict: counts.get(verdict, 0) for verdict in VERDICTS}

    def to_json(self) -> dict:
        return {**asdict(self), "counts": self.counts(), "passed": self.counts()["passed"],
                "total": len(self.exercises)}

    def table(self) -> str:
        """The report as text: one line per exercise, then the problems."""
        lines = [(f"{self.path}: chapter {self.chapter or '?'}, {self.counts()['passed']}/{len(self.exercises)} "
                  f"exercises passed ({self.seconds:.0f} s)")]
        width = max([len(e.checker) for e in self.exercises] + [7])
        lines.append(f"  {'exercise':<9} {'checker':<{width}}  {'verdict':<13} message")
        for e in self.exercises:
            message = " ".join(e.message.split())
            lines.append(f"  {e.number:<9} {e.checker:<{width}}  {e.verdict:<13} {message[:160]}")
        for cell in self.cells:
            lines.append(f"  cell {cell.cell} {cell.status}: {cell.error}")
        lines += [f"  note: {problem}" for problem in self.problems]
        return "\n".join(lines)


NOTEBOOK_SUFFIX = ".ipynb"
_GLOB_CHARACTERS = frozenset("*?[")


def submission_files(arguments: list[str]) -> tuple[list[Path], list[Path]]:
    """The notebooks to grade among ``book check``'s arguments, and the files left out.

    A folder stands for the files directly in it (hidden ones and subfolders aside); a
    pattern the shell did not expand (``"06_*"``) is expanded here. Of those, only
    ``.ipynb`` files are graded: the rest (a ``06_x.py`` that a JupyterLab save paired with
    its notebook, a ``jupytext.toml``) come back as skipped, for the command to name. An
    argument that matches nothing is kept as given, so grading it names the missing file.

    Returns:
        (notebooks in argument order without repeats, skipped files in the same order).
    """
    notebooks, skipped, seen = [], [], set()
    for argument in arguments:
        for path in _expand(argument):
            if path in seen:
                continue
            seen.add(path)
            (notebooks if path.suffix == NOTEBOOK_SUFFIX or not path.exists() else skipped).append(path)
    return notebooks, skipped


def _expand(argument: str) -> list[Path]:
    path = Path(argument)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not path.exists() and _GLOB_CHARACTERS & set(argument):
        import glob

        matches = sorted(Path(p) for p in glob.glob(argument) if Path(p).is_file())
        return matches or [path]
    return [path]


def read_submission(path: str | os.PathLike):
    """Read a notebook file, or raise ValueError naming the file and what is wrong with it."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such notebook file")
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - nbformat raises several kinds on a broken file
        raise ValueError(f"{path}: not a readable Jupyter notebook ({type(error).__name__}: {error})") from None
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        raise ValueError(f"{path}: not a readable Jupyter notebook (its \"cells\" is not a list)")
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise ValueError(f"{path}: cell {number} is not a notebook cell")
        if not isinstance(cell.get("source"), str):
            raise ValueError(f"{path}: cell {number}'s source is a {type(cell.get('source')).__name__}, not text")
        if not isinstance(cell.get("metadata", {}), dict):
            cell["metadata"] = nbformat.NotebookNode()
    if not isinstance(notebook.get("metadata"), dict):
        notebook["metadata"] = nbformat.NotebookNode()
    return notebook


def detect_chapter(notebook, paths: list[Path]) -> str | None:
    """The chapter a notebook is a copy of: its metadata, else the modules of its checker calls."""
    recorded = notebook.metadata.get(METADATA_KEY)
    recorded = recorded.get("chapter") if isinstance(recorded, dict) else None
    if isinstance(recorded, str) and recorded in {p.stem for p in paths}:
        return recorded
    modules = Counter(e.checker.split(".")[0] for e in find_exercises(notebook))
    if modules:
        number = int(modules.most_common(1)[0][0][2:])
        for path in paths:
            if chapter_number(path.stem) == number:
                return path.stem
    return None


def check_submission(path: str | os.PathLike, *, book_dir: str | os.PathLike | None = None, profile: str = "ci",
                     timeout_per_cell: float = 120, time_limit: float = 3600, chapter: str | None = None,
                     sandboxed: bool = False, progress: bool = False, notebook=None) -> SubmissionReport:
    """Execute the notebook at ``path`` and grade its exercises against its chapter.

    Args:
        chapter: the chapter it must be (``"01"`` or a stem); default the number its file
            name starts with, else the chapter its contents name.
        timeout_per_cell: seconds a cell (or one call of an answer) may run.
        time_limit: seconds the whole submission may run.
        sandboxed: run the kernel in the namespace sandbox (:mod:`panopticlab.book.sandbox`).
        notebook: the submission as already read (a batch reads every file before grading
            any, so that no submission can change another's); default read from ``path``.

    Raises:
        ValueError: the file is not a notebook (naming it), or a limit is not positive.
    """
    if timeout_per_cell <= 0 or time_limit <= 0:
        raise ValueError(f"the time limits must be positive, got {timeout_per_cell:g} s per cell and "
                         f"{time_limit:g} s in all")
    notebook = notebook if notebook is not None else read_submission(path)
    paths = chapter_paths(book_dir or BOOK_DIR)
    detected = detect_chapter(notebook, paths)
    expected = _expected_chapter(path, chapter, paths) or detected
    report = SubmissionReport(str(path), expected)
    if expected is None:
        report.problems.append("not a chapter notebook: it calls no exercise checker and names no chapter")
        return report
    if detected is not None and detected != expected:
        report.problems.append(f"this is a notebook of chapter {detected}, not of {expected}")
    reference = find_exercises(load_chapter(next(p for p in paths if p.stem == expected)))
    found = {}
    for exercise in find_exercises(notebook):
        found.setdefault(exercise.checker, exercise)
    located = [(r, found.get(r.checker)) for r in reference]
    missing = [r for r, e in located if e is None]
    if missing:
        report.problems.append("exercise cells missing (deleted?): " + ", ".join(
            f"{r.number} ({r.checker})" for r in missing))
    if all(e is None for _, e in located):
        report.exercises = [ExerciseResult(r.number, r.checker, "missing", "no cell calls this checker")
                            for r in reference]
        return report
    graded = _without_outputs(notebook)
    checks_after: dict[int, list] = {}
    for r, e in located:
        if e is not None:
            checks_after.setdefault(e.check_cell, []).append((r, e))
    results = {}
    start = time.monotonic()
    for module in {r.module for r in reference}:  # the checkers, loaded before any of the submission runs
        importlib.import_module(module)
    # a submission may leave files it made unremovable; the scratch folder's cleanup ignores them
    with tempfile.TemporaryDirectory(prefix="panopticlab-check-", ignore_cleanup_errors=True) as scratch:
        folder = Path(scratch) / "submission"
        folder.mkdir()
        import nbformat

        nbformat.write(notebook, folder / Path(path).name)  # its own copy, the only file it sees
        with GradingSession(graded, folder, profile=profile, timeout_per_cell=timeout_per_cell,
                            time_limit=time_limit, sandboxed=sandboxed) as session:
            code = [i for i, c in enumerate(graded.cells) if c.cell_type == "code"]
            for index, cell in enumerate(graded.cells):
                if cell.cell_type == "code" and not session.stopped:
                    outcome = session.run_cell(index)
                    if progress:
                        print(f"[{Path(path).stem}] cell {code.index(index) + 1}/{len(code)} {outcome.status} "
                              f"{outcome.seconds:.1f} s", flush=True)
                for r, e in checks_after.get(index, []):
                    results[r.checker] = _grade(session, r, e, graded)
            outcomes = list(session.outcomes)
    report.seconds = time.monotonic() - start
    report.exercises = [results.get(r.checker) or ExerciseResult(r.number, r.checker, "missing",
                                                                 "no cell calls this checker")
                        for r, _ in located]
    report.cells = _cell_problems(graded, outcomes)
    stopped = next((o.error for o in outcomes if o.status in ("killed", "dead")), None)
    if stopped:
        report.problems.append(stopped)
    return report


def _expected_chapter(path, chapter: str | None, paths: list[Path]) -> str | None:
    if chapter:
        for p in paths:
            if p.stem == chapter or p.stem.split("_")[0] == chapter.zfill(2):
                return p.stem
        raise ValueError(f"no chapter {chapter}; the chapters are {', '.join(p.stem for p in paths)}")
    number = chapter_number(Path(path).name)
    return next((p.stem for p in paths if chapter_number(p.stem) == number), None) if number is not None else None


def _without_outputs(notebook):
    """A copy of ``notebook`` to execute: outputs cleared, each cell knowing its place."""
    import copy

    graded = copy.deepcopy(notebook)
    for index, cell in enumerate(graded.cells):
        cell.metadata["panopticlab_index"] = index
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return graded


def _grade(session: GradingSession, reference, exercise, graded) -> ExerciseResult:
    """The verdict on one exercise, from the reference call made in this process."""
    result = ExerciseResult(reference.number, reference.checker, "failed")
    own_indices = {exercise.solution_cell, exercise.check_cell}
    own = [graded.cells[i] for i in own_indices if i is not None]
    stub = any(is_stub(c.source) for c in own)
    own_outcomes = [o for o in session.outcomes if o.index in own_indices]
    own_timeout = any(o.status in ("timed out", "killed") for o in own_outcomes)
    if session.stopped:
        ended_here = any(o.status in ("killed", "dead") for o in own_outcomes)
        result.verdict = "timed out" if own_timeout else ("failed" if ended_here else "not run")
        result.message = session.stopped
        return result
    try:
        _reference_call(session, reference)
        result.verdict = "passed"
    except ExerciseError as error:
        result.message = str(error)
    except NameError as error:
        result.message = f"{error}: the exercise's cell did not define it (did the cell run?)"
    except CallTimedOut:
        result.verdict, result.message = "timed out", "a call of the answer ran past the time limit per cell"
    except KernelStopped as error:
        result.verdict, result.message = ("timed out" if "time limit" in str(error) else "failed"), str(error)
    except AnswerError as error:
        result.message = f"the grader could not read the answer: {error}"
    except StudentCodeError as error:
        result.message = f"the answer raised {error}"
    except NotImplementedError:
        result.message = "not implemented yet"
    except Exception as error:  # noqa: BLE001 - whatever the answer makes the checker do is the answer's verdict
        result.message = f"the checker crashed on the answer: {type(error).__name__}: {error}"
    if result.verdict == "failed" and ("not implemented yet" in result.message or stub):
        result.verdict, result.message = "not attempted", "the exercise still holds the stub"
    if result.verdict == "failed" and own_timeout:
        result.verdict = "timed out"
        result.message = "the exercise's cell ran past the time limit per cell; " + result.message
    return result


def _reference_call(session: GradingSession, reference) -> None:
    """Call the exercise's checker here, as the chapter does, on what the notebook defined."""
    call = ast.parse(reference.call.strip().rstrip(";"), mode="eval").body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        raise ValueError(f"the chapter's checker call {reference.call!r} is not of the form chNN.check_x(...)")
    checker = getattr(importlib.import_module(reference.module), call.func.attr)
    args = [_argument(session, a, reference) for a in call.args]
    kwargs = {k.arg: _argument(session, k.value, reference) for k in call.keywords}
    with strict_checks(), contextlib.redirect_stdout(io.StringIO()):  # its "correct." lines are the verdict's
        checker(*args, **kwargs)


def _argument(session: GradingSession, node, reference):
    if isinstance(node, ast.Name):
        return session.fetch(node.id)
    if isinstance(node, ast.Constant):
        return node.value
    raise ValueError(f"the chapter's checker call {reference.call!r} passes an expression; it may pass names "
                     f"and constants only")


def _cell_problems(graded, outcomes) -> list[CellProblem]:
    code = [i for i, c in enumerate(graded.cells) if c.cell_type == "code"]
    problems = []
    for outcome in outcomes:
        if outcome.status == "ok" or outcome.index not in code:
            continue
        cell = graded.cells[outcome.index]
        if outcome.status == "error":
            name = outcome.error.split(":")[0]
            if name == "ExerciseError" or (name == "NotImplementedError" and is_stub(cell.source)):
                continue  # an exercise's own verdict, reported with the exercise
        number = code.index(outcome.index) + 1
        status = {"error": "crashed", "timed out": "timed out", "killed": "killed", "dead": "died"}[outcome.status]
        text = "ran past the time limit per cell" if outcome.status == "timed out" else outcome.error
        problems.append(CellProblem(number, status, text))
    return problems
