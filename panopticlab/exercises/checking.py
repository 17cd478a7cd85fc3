"""What every exercise checker shares: the error it raises, the verdict it prints, and when it raises.

A checker (every ``check_*`` of ``panopticlab.exercises.chNN``, wrapped by :func:`checker`)
explains a wrong answer with :class:`ExerciseError`. Where it reaches the student depends
on where the checker runs:

* **strict** (the default outside a notebook: scripts, pytest, the book's own runs and
  the autograder's grading cells): the error is raised, so a reference solution that
  fails its checker fails the run.
* **interactive** (inside a Jupyter kernel): the message is printed as one line,
  ``Exercise 5.1: not yet - <message>``, the checker returns False and the cell ends
  without an error, so "Run All" on the student edition runs every cell, as otter-grader's
  ``grader.check`` does.

A kernel is made strict by :data:`STRICT_ENV` set to ``1`` in its environment (the book's
runner does so for the kernels it starts; set it for ``jupyter nbconvert --execute`` or
papermill in a CI) or, for one block, by :func:`strict_checks`. A kernel that a pytest run
started (nbval) is strict too unless :data:`STRICT_ENV` is ``0``: it inherits pytest's
``PYTEST_CURRENT_TEST``.
"""
from __future__ import annotations

import functools
import os
import re
import sys
from contextlib import contextmanager
from contextvars import ContextVar

#: Set to "1" in a kernel's environment, every checker raises (the book's runner sets it).
STRICT_ENV = "PANOPTICLAB_STRICT_CHECKS"

_strict_block: ContextVar[bool | None] = ContextVar("panopticlab_strict_checks", default=None)
_inside_checker: ContextVar[bool] = ContextVar("panopticlab_inside_checker", default=False)
_NUMBERED = re.compile(r"^Exercise (\d+\.\d+):\s*(.*)$", re.DOTALL)


class ExerciseError(AssertionError):
    """The student's answer is wrong; the message says how and hints at the fix."""


def passed(exercise: str, detail: str = "") -> bool:
    """Print the confirmation and return True, so a checker call can also be asserted."""
    print(f"Exercise {exercise}: correct." + (f" {detail}" if detail else ""))
    return True


def call(exercise: str, fn, *args):
    """Call the student's function, turning a crash into an explanation."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseError(f"Exercise {exercise}: not implemented yet - replace the `raise NotImplementedError` "
                            f"line with your solution.") from None


def answered(exercise: str, *values) -> None:
    """Raise "not implemented yet" if any value is still ``...``, the student edition's
    placeholder for an answer written at the top level of a cell (not in a function)."""
    if any(value is Ellipsis for value in values):
        raise ExerciseError(f"Exercise {exercise}: not implemented yet - replace each `...` in the cell with "
                            f"your answer.")


def prediction_choice(exercise: str, prediction, choices) -> str:
    """A "predict, then measure" exercise's prediction as one of ``choices`` (case and spaces
    ignored); an ExerciseError that lists them otherwise (``...`` is "not implemented yet")."""
    answered(exercise, prediction)
    text = " ".join(prediction.split()).lower() if isinstance(prediction, str) else None
    if text not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ExerciseError(f"Exercise {exercise}: write your prediction as one of {listed} (a string), "
                            f"got {prediction!r}.")
    return text


def prediction_report(predicted, measured, why: str = "") -> str:
    """What a checker says of a prediction: it matched, or what was measured instead (a wrong
    prediction is reported, not failed; ``why`` adds a hint)."""
    if predicted == measured:
        return f"You predicted {predicted!r}: as measured."
    return f"You predicted {predicted!r}; measured {measured!r}{': ' + why if why else ''} - see the answer key."


def either(mistakes: list[str]) -> str:
    """The mistakes a wrong answer matches, as one clause: several readings can give the
    same wrong answer on a drawn case, and the message should not guess between them."""
    return "; or ".join(mistakes)


@contextmanager
def strict_checks(strict: bool = True):
    """Within the block, checkers raise (``strict``) or print their verdict (not ``strict``),
    wherever they run. The autograder's grading cells run their checker call in one."""
    token = _strict_block.set(strict)
    try:
        yield
    finally:
        _strict_block.reset(token)


def checks_are_strict() -> bool:
    """True when a failing checker must raise: a :func:`strict_checks` block says so,
    :data:`STRICT_ENV` is ``1``, the code does not run in a Jupyter kernel, or it runs in
    one that a pytest run started (and :data:`STRICT_ENV` is not ``0``)."""
    block = _strict_block.get()
    if block is not None:
        return block
    setting = os.environ.get(STRICT_ENV, "").strip()
    if setting not in ("", "0"):
        return True
    if not _in_notebook_kernel():
        return True
    return setting == "" and _started_by_pytest()


def _started_by_pytest() -> bool:
    # nbval's kernels run a test suite: a wrong answer must fail it
    return "PYTEST_CURRENT_TEST" in os.environ


def _in_notebook_kernel() -> bool:
    # IPython is imported only where a shell runs; a terminal IPython has no kernel and stays strict
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def verdict_line(error: ExerciseError) -> str:
    """The one line a notebook shows for a failed check: ``Exercise 5.1: not yet - <message>``."""
    text = " ".join(str(error).split())
    match = _NUMBERED.match(text)
    if not match:
        return f"not yet - {text}"
    number, message = match.groups()
    if message.startswith("not implemented yet"):
        return f"Exercise {number}: {message}"
    return f"Exercise {number}: not yet - {message}"


def checker(function):
    """Make ``function`` (a ``check_*``) print its verdict instead of raising in a notebook.

    The wrapped checker returns what ``function`` returns when the answer passes. When it
    raises :class:`ExerciseError`: in strict mode (:func:`checks_are_strict`) the error
    propagates; otherwise its :func:`verdict_line` is printed and the checker returns
    False. A checker called by another checker always raises to its caller, so only the
    outermost one decides. Other exceptions (the answer's own crash) always propagate.
    """
    @functools.wraps(function)
    def check(*args, **kwargs):
        if _inside_checker.get():
            return function(*args, **kwargs)
        token = _inside_checker.set(True)
        try:
            return function(*args, **kwargs)
        except ExerciseError as error:
            if checks_are_strict():
                raise
            print(verdict_line(error))
            return False
        finally:
            _inside_checker.reset(token)

    check.is_exercise_checker = True
    return check
