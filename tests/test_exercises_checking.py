"""A checker raises outside a notebook and in the book's own runs, and prints a one-line
verdict inside a student's kernel, so "Run All" on the student edition reaches the end."""
import importlib
import inspect
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from panopticlab.book.chapters import BOOK_DIR, chapter_paths, load_chapter
from panopticlab.book.editions import student_edition
from panopticlab.book.exercises import find_exercises
from panopticlab.book.runner import execute_notebook
from panopticlab.exercises import checking
from panopticlab.exercises.checking import (
    STRICT_ENV,
    ExerciseError,
    checker,
    checks_are_strict,
    passed,
    strict_checks,
    verdict_line,
)

TINY = Path(__file__).parent / "data" / "01_tiny_chapter.py"
CELL_TIMEOUT_SECONDS = 240


@checker
def check_even(n):
    """Exercise 9.1: ``n`` is even."""
    if n % 2:
        raise ExerciseError(f"Exercise 9.1: {n} is odd.")
    return passed("9.1")


@checker
def check_both(a, b):
    """Exercise 9.2: both even (calls another checker)."""
    check_even(a)
    check_even(b)
    return passed("9.2")


@pytest.fixture
def in_kernel(monkeypatch):
    """As inside a student's Jupyter kernel (one that neither a runner nor pytest started)."""
    monkeypatch.setattr(checking, "_in_notebook_kernel", lambda: True)
    monkeypatch.setattr(checking, "_started_by_pytest", lambda: False)
    monkeypatch.delenv(STRICT_ENV, raising=False)


def test_outside_a_notebook_a_checker_raises():
    assert not checking._in_notebook_kernel() and checks_are_strict()
    assert check_even(2) is True
    with pytest.raises(ExerciseError, match="3 is odd"):
        check_even(3)


def test_in_a_kernel_a_checker_prints_its_verdict_and_returns_false(in_kernel, capsys):
    assert check_even(3) is False
    assert capsys.readouterr().out == "Exercise 9.1: not yet - 3 is odd.\n"
    assert check_even(4) is True


def test_a_checker_inside_a_checker_reports_to_the_outer_one(in_kernel, capsys):
    assert check_both(2, 3) is False
    # the inner failure reaches the outer checker, which prints it once and returns
    assert capsys.readouterr().out == "Exercise 9.1: correct.\nExercise 9.1: not yet - 3 is odd.\n"


@pytest.mark.parametrize("value, strict", [("1", True), ("0", False), ("", False)])
def test_the_environment_makes_a_kernel_strict(in_kernel, monkeypatch, value, strict):
    monkeypatch.setenv(STRICT_ENV, value)
    assert checks_are_strict() is strict


def test_a_kernel_that_pytest_started_is_strict(monkeypatch):
    """nbval runs the book's notebooks in kernels that inherit pytest's environment."""
    monkeypatch.setattr(checking, "_in_notebook_kernel", lambda: True)
    monkeypatch.delenv(STRICT_ENV, raising=False)
    assert checking._started_by_pytest() and checks_are_strict()
    monkeypatch.setenv(STRICT_ENV, "0")  # what the runner sets for a student's run
    assert not checks_are_strict()


def test_a_strict_block_wins_over_the_kernel(in_kernel):
    with strict_checks():
        with pytest.raises(ExerciseError):
            check_even(5)
        with strict_checks(False):
            assert check_even(5) is False
    assert check_even(5) is False


def test_the_answers_own_crash_is_not_a_verdict(in_kernel):
    @checker
    def check_crash(fn):
        return fn()

    with pytest.raises(ZeroDivisionError):
        check_crash(lambda: 1 / 0)


def test_verdict_lines():
    assert verdict_line(ExerciseError("Exercise 5.1: the channel\n  differs.")) == \
        "Exercise 5.1: not yet - the channel differs."
    assert verdict_line(ExerciseError("Exercise 2.1: not implemented yet - replace each `...`.")) == \
        "Exercise 2.1: not implemented yet - replace each `...`."
    assert verdict_line(ExerciseError("no number")) == "not yet - no number"


def test_every_chapter_checker_is_wrapped():
    folder = Path(importlib.import_module("panopticlab.exercises").__file__).parent
    modules = [importlib.import_module(f"panopticlab.exercises.{path.stem}") for path in sorted(folder.glob("ch[0-9][0-9].py"))]
    assert len(modules) >= 8
    checkers = [f for m in modules for name, f in vars(m).items() if name.startswith("check_") and callable(f)
                and inspect.getmodule(inspect.unwrap(f)) is m]
    unwrapped = [f.__name__ for f in checkers if not getattr(f, "is_exercise_checker", False)]
    assert not unwrapped, f"checkers without @checker: {unwrapped}"
    exercises = [e for path in chapter_paths(BOOK_DIR) for e in find_exercises(load_chapter(path))]
    assert {e.function() for e in exercises} <= set(checkers) and len(exercises) >= 18


def outputs_of(notebook):
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def stdout_of(notebook) -> str:
    return "".join(o.get("text", "") for o in outputs_of(notebook) if o.get("output_type") == "stream")


def assert_ran_every_cell(notebook):
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    errors = [(o["ename"], o["evalue"]) for o in outputs_of(notebook) if o.get("output_type") == "error"]
    assert not errors


def test_run_all_on_the_student_edition_runs_every_cell(tmp_path):
    """The tiny chapter's student edition in a real kernel: no error, one verdict per checker."""
    notebook = execute_notebook(student_edition(load_chapter(TINY)), "ci", tmp_path, timeout=120,
                                strict_checks=False)
    assert_ran_every_cell(notebook)
    text = stdout_of(notebook)
    for number in ("1.1", "1.2", "1.3"):
        assert f"Exercise {number}: not implemented yet - replace the `raise NotImplementedError` line" in text
    assert "Traceback" not in text and text.rstrip().endswith("the end")


def test_a_chapter_student_edition_runs_to_the_end(tmp_path):
    """Chapter 2, whose exercise 2.1 is answered at the top level of a cell (``tp, fp, fn = ...``)."""
    path = next(p for p in chapter_paths(BOOK_DIR) if p.stem.startswith("02_"))
    exercises = find_exercises(load_chapter(path))
    notebook = execute_notebook(student_edition(load_chapter(path)), "ci", tmp_path, timeout=CELL_TIMEOUT_SECONDS,
                                strict_checks=False)
    assert_ran_every_cell(notebook)
    verdicts = re.findall(r"^Exercise (\d+\.\d+): not implemented yet", stdout_of(notebook), re.MULTILINE)
    assert verdicts == [e.number for e in exercises]


def wrong_tiny_chapter():
    notebook = load_chapter(TINY)
    cell = next(c for c in notebook.cells if "def rgb_to_id" in c.source)
    cell.source = cell.source.replace("rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]",
                                      "rgb[..., 2] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 0]")
    assert "rgb[..., 2] +" in cell.source
    return notebook


def test_the_book_runs_stay_strict(tmp_path):
    """A solution that fails its checker fails the run (as the chapters' own test relies on)."""
    with pytest.raises(CellExecutionError, match="ExerciseError") as failure:
        execute_notebook(wrong_tiny_chapter(), "ci", tmp_path, timeout=120)
    assert "channels are reversed" in str(failure.value)


def test_a_wrong_answer_in_a_students_kernel_is_a_verdict(tmp_path):
    notebook = execute_notebook(wrong_tiny_chapter(), "ci", tmp_path, timeout=120, strict_checks=False)
    assert_ran_every_cell(notebook)
    text = stdout_of(notebook)
    assert "Exercise 1.1: not yet - the channels are reversed" in text
    assert "Exercise 1.2: correct." in text and "Exercise 1.3: correct." in text


def test_the_kernel_does_not_keep_the_mode(tmp_path, monkeypatch):
    """The runner restores this process's environment after the run."""
    monkeypatch.delenv(STRICT_ENV, raising=False)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import os; print(os.environ['PANOPTICLAB_STRICT_CHECKS'])")]
    assert stdout_of(execute_notebook(notebook, "ci", tmp_path, timeout=60)) == "1\n"
    assert stdout_of(execute_notebook(notebook, "ci", tmp_path, timeout=60, strict_checks=False)) == "0\n"
    assert STRICT_ENV not in os.environ
