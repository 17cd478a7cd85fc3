"""The autograder: execute a student's chapter notebook and say, per exercise, how it went.

The submission runs top to bottom in a fresh kernel (the ``ci`` profile by default, a
time limit per cell, errors allowed so one crash does not hide the rest). After the cell
that calls each exercise's checker, the grader inserts its own cell that re-imports the
checker module and makes the chapter's reference call (the call as the chapter source
writes it, not as the student may have edited it), so the verdict is the checker's and
not text the notebook printed. That call runs in strict mode
(:func:`panopticlab.exercises.checking.strict_checks`): a wrong answer raises, whatever
mode the student's own cells ran in.

Verdicts (:data:`VERDICTS`): ``passed``; ``failed`` with the checker's message (or the
crash of the checker on the answer); ``not attempted`` (the stub is still there);
``timed out`` (the exercise, or its check, ran past the limit); ``missing`` (the
exercise's cell is not in the notebook: deleted, or a notebook of another chapter).
Cells of the notebook that crashed or timed out are reported too.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .chapters import (
    BOOK_DIR,
    METADATA_KEY,
    chapter_number,
    chapter_paths,
    load_chapter,
)
from .exercises import find_exercises, is_stub
from .runner import RunRecord, execute_notebook

VERDICTS = ("passed", "failed", "not attempted", "timed out", "missing")
GRADE_MARK = "PANOPTICLAB-GRADE "
GRADING_CELL = '''\
import importlib as _grader_importlib, json as _grader_json
from panopticlab.exercises.checking import ExerciseError as _GraderError, strict_checks as _grader_strict
_grader_module = _grader_importlib.reload(_grader_importlib.import_module({module!r}))
try:
    with _grader_strict():
        eval({call!r}, {{**globals(), {alias!r}: _grader_module}})
    _grader_verdict = {{"verdict": "passed", "message": ""}}
except _GraderError as _grader_error:
    _grader_verdict = {{"verdict": "failed", "message": str(_grader_error)}}
except NameError as _grader_error:
    _grader_verdict = {{"verdict": "failed", "name_error": True,
                       "message": f"{{_grader_error}}: the exercise's cell did not define it (did the cell run?)"}}
except Exception as _grader_error:
    _grader_verdict = {{"verdict": "failed", "message": f"the checker crashed on the answer: "
                       f"{{type(_grader_error).__name__}}: {{_grader_error}}"}}
print({mark!r} + _grader_json.dumps(_grader_verdict))
'''


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
    status: str  # "crashed" or "timed out"
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
        return nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - nbformat raises several kinds on a broken file
        raise ValueError(f"{path}: not a readable Jupyter notebook ({type(error).__name__}: {error})") from None


def detect_chapter(notebook, paths: list[Path]) -> str | None:
    """The chapter a notebook is a copy of: its metadata, else the modules of its checker calls."""
    recorded = notebook.metadata.get(METADATA_KEY, {}).get("chapter")
    if recorded in {p.stem for p in paths}:
        return recorded
    modules = Counter(e.checker.split(".")[0] for e in find_exercises(notebook))
    if modules:
        number = int(modules.most_common(1)[0][0][2:])
        for path in paths:
            if chapter_number(path.stem) == number:
                return path.stem
    return None


def check_submission(path: str | os.PathLike, *, book_dir: str | os.PathLike | None = None, profile: str = "ci",
                     timeout_per_cell: int = 120, chapter: str | None = None,
                     workdir: str | os.PathLike | None = None, progress: bool = False) -> SubmissionReport:
    """Execute the notebook at ``path`` and grade its exercises against its chapter.

    Args:
        chapter: the chapter it must be (``"01"`` or a stem); default the number its file
            name starts with, else the chapter its contents name.
        workdir: the folder the notebook runs in (default a fresh temporary folder).

    Raises:
        ValueError: the file is not a notebook (naming it).
    """
    notebook = read_submission(path)
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
    graded = _with_grading_cells(notebook, located)
    record = RunRecord(Path(path).stem)
    with tempfile.TemporaryDirectory(prefix="panopticlab-check-") as scratch:
        execute_notebook(graded, profile, cwd=workdir or scratch, timeout=timeout_per_cell, allow_errors=True,
                         progress=progress, name=Path(path).stem, record=record)
    report.seconds = record.seconds
    report.exercises = [_verdict(graded, r, e) for r, e in located]
    report.cells = _cell_problems(graded)
    return report


def _expected_chapter(path, chapter: str | None, paths: list[Path]) -> str | None:
    if chapter:
        for p in paths:
            if p.stem == chapter or p.stem.split("_")[0] == chapter.zfill(2):
                return p.stem
        raise ValueError(f"no chapter {chapter}; the chapters are {', '.join(p.stem for p in paths)}")
    number = chapter_number(Path(path).name)
    return next((p.stem for p in paths if chapter_number(p.stem) == number), None) if number is not None else None


def _with_grading_cells(notebook, located):
    """A copy of ``notebook`` with a grading cell after each located exercise's checker call."""
    import copy

    import nbformat

    graded = copy.deepcopy(notebook)
    for index, cell in enumerate(graded.cells):
        cell.metadata["panopticlab_index"] = index  # the cell's place in the submission
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    inserts = sorted(((e.check_cell, r) for r, e in located if e is not None), key=lambda item: -item[0])
    for index, reference in inserts:
        alias = reference.checker.split(".")[0]
        source = GRADING_CELL.format(module=reference.module, call=reference.call, alias=alias, mark=GRADE_MARK)
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["panopticlab_grading"] = reference.checker
        graded.cells.insert(index + 1, cell)
    return graded


def _verdict(graded, reference, exercise) -> ExerciseResult:
    result = ExerciseResult(reference.number, reference.checker, "missing", "no cell calls this checker")
    if exercise is None:
        return result
    grading = next(c for c in graded.cells if c.metadata.get("panopticlab_grading") == reference.checker)
    own_indices = {exercise.solution_cell, exercise.check_cell}
    own = [c for c in graded.cells if c.metadata.get("panopticlab_index", -1) in own_indices]
    stub = any(is_stub(c.source) for c in own)
    verdict = None
    for output in grading.get("outputs", []):
        if output.get("output_type") == "stream" and GRADE_MARK in output.get("text", ""):
            verdict = json.loads(output["text"].split(GRADE_MARK, 1)[1].splitlines()[0])
    errors = [o for o in grading.get("outputs", []) if o.get("output_type") == "error"]
    if verdict is not None:
        result.verdict, result.message = verdict["verdict"], verdict["message"]
    elif errors and errors[-1].get("ename") == "KeyboardInterrupt":
        result.verdict, result.message = "timed out", "the check ran past the time limit per cell"
    else:
        result.verdict = "failed"
        result.message = "the grader could not run the check" + (
            f": {errors[-1].get('ename')}: {errors[-1].get('evalue')}" if errors else "")
    if result.verdict == "failed" and ("not implemented yet" in result.message or stub):
        result.verdict, result.message = "not attempted", "the exercise still holds the stub"
    own_timeout = any(o.get("output_type") == "error" and o.get("ename") == "KeyboardInterrupt"
                      for c in own for o in c.get("outputs", []))
    if result.verdict == "failed" and own_timeout:
        result.verdict = "timed out"
        result.message = "the exercise's cell ran past the time limit per cell; " + result.message
    return result


def _cell_problems(graded) -> list[CellProblem]:
    problems = []
    code = [c for c in graded.cells if c.cell_type == "code" and "panopticlab_grading" not in c.metadata]
    for number, cell in enumerate(code, 1):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            error = errors[-1]
            if error.get("ename") == "ExerciseError" or (error.get("ename") == "NotImplementedError"
                                                         and is_stub(cell.source)):
                continue  # an exercise's own verdict, reported with the exercise
            timed_out = error.get("ename") == "KeyboardInterrupt"
            text = "ran past the time limit per cell" if timed_out else \
                f"{error.get('ename')}: {str(error.get('evalue', '')).splitlines()[0] if error.get('evalue') else ''}"
            problems.append(CellProblem(number, "timed out" if timed_out else "crashed", text))
    return problems
