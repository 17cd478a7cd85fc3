"""Run a student's function with the package functions an exercise forbids made unavailable.

An exercise that asks "write it without ``data.rgb_to_id``" cannot tell by its output
whether the answer was written or borrowed: both are right. :func:`forbidden` swaps the
named functions, wherever a loaded module holds them (``from panopticlab.data import
rgb_to_id`` in the notebook included), for a stand-in that raises
:class:`~panopticlab.exercises.checking.ExerciseError` with the exercise's own wording,
and puts the originals back when the block ends, whether the answer passed or failed.

The autograder calls a student's function in the submission's kernel, not where the
checker runs: :func:`active_refusals` names what the enclosing blocks forbid, so that
the call there runs under the same refusals.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar

from .checking import ExerciseError

_active: ContextVar[tuple] = ContextVar("panopticlab_forbidden", default=())


def active_refusals() -> list[tuple]:
    """What the enclosing :func:`forbidden` blocks refuse, by name:
    ``[(exercise, [(label, module, qualname)], [(label, module, class qualname, method)])]``."""
    return list(_active.get())


def _refusal(exercise: str, label: str):
    def refuse(*args, **kwargs):
        raise ExerciseError(f"Exercise {exercise}: this exercise asks you to write it without {label} "
                            f"(called directly or through another package function that uses it).")

    return refuse


@contextmanager
def forbidden(exercise: str, functions: dict | None = None, methods: dict | None = None):
    """Make package functions and methods raise while the ``with`` block runs.

    Args:
        exercise: the exercise number, for the message ("1.1").
        functions: ``{label: function}``; every module attribute that *is* this function
            (in any module loaded now, the notebook's ``__main__`` included) is replaced.
        methods: ``{label: (cls, name)}``; the class attribute ``cls.name`` is replaced.

    Everything replaced is restored on exit, also when the block raises.
    """
    replaced = []  # (namespace dict or class, name, original)
    originals = {}  # id(stand-in) -> the function it stands in for
    token = _active.set(_active.get() + ((
        exercise,
        [(label, f.__module__, f.__qualname__) for label, f in (functions or {}).items()],
        [(label, cls.__module__, cls.__qualname__, name) for label, (cls, name) in (methods or {}).items()],
    ),))
    try:
        for label, function in (functions or {}).items():
            stand_in = _refusal(exercise, label)
            originals[id(stand_in)] = (stand_in, function)
            for namespace in _module_namespaces():
                for name, value in list(namespace.items()):
                    if value is function:
                        replaced.append((namespace, name, value))
                        namespace[name] = stand_in
        for label, (cls, name) in (methods or {}).items():
            replaced.append((cls, name, cls.__dict__[name]))
            setattr(cls, name, _refusal(exercise, label))
        yield
    finally:
        _active.reset(token)
        for owner, name, original in reversed(replaced):
            if isinstance(owner, dict):
                owner[name] = original
            else:
                setattr(owner, name, original)
        # a stand-in copied while the block ran (a package's lazy name first looked up then,
        # an import in the notebook) must not outlive it
        for namespace in _module_namespaces():
            for name, value in list(namespace.items()):
                pair = originals.get(id(value))
                if pair is not None and pair[0] is value:
                    namespace[name] = pair[1]


def _module_namespaces() -> list[dict]:
    """The namespace of every module loaded now (the notebook's ``__main__`` included)."""
    namespaces = (getattr(module, "__dict__", None) for module in list(sys.modules.values()))
    return [namespace for namespace in namespaces if isinstance(namespace, dict)]
