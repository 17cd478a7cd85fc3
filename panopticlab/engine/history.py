"""The record of a training run: named scalar series indexed by step.

Losses are logged every step, the learning rate and the gradient norm too, and
validation metrics whenever they are computed; each name is its own series of
``(step, value)`` pairs, so series of different frequencies live side by side.
:func:`panopticlab.viz.curves.plot_history` draws them. A history is plain data
(``state_dict``), so it travels inside checkpoints and to JSON.
"""
from __future__ import annotations

import math
from typing import Iterator, Mapping

import numpy as np

__all__ = ["History"]


class History:
    """Scalar series by name, e.g. ``loss``, ``loss/semantic``, ``lr``, ``val/pq``.

    Steps count optimiser steps from 1 (the value logged at step ``s`` is measured
    during the ``s``-th step). Within a series the steps must increase.
    """

    def __init__(self):
        self._steps: dict[str, list[int]] = {}
        self._values: dict[str, list[float]] = {}

    # --- writing -----------------------------------------------------------------------
    def log(self, step: int, values: Mapping[str, float] | None = None, /, **named: float) -> None:
        """Record values at ``step``: ``history.log(10, loss=0.3)`` or ``history.log(10, {"val/pq": 0.5})``."""
        step = int(step)
        for name, value in {**(values or {}), **named}.items():
            steps = self._steps.setdefault(name, [])
            if steps and step <= steps[-1]:
                raise ValueError(f"history series {name!r}: step {step} logged after step {steps[-1]}; "
                                 f"steps must increase")
            steps.append(step)
            self._values.setdefault(name, []).append(float(value))

    # --- reading -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Series names in the order they were first logged."""
        return list(self._steps)

    def __contains__(self, name: str) -> bool:
        return name in self._steps

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def _check(self, name: str) -> None:
        if name not in self._steps:
            raise KeyError(f"no series {name!r} in the history; it has {self.names}")

    def steps(self, name: str) -> np.ndarray:
        """(N,) int64 steps of series ``name``."""
        self._check(name)
        return np.asarray(self._steps[name], dtype=np.int64)

    def values(self, name: str) -> np.ndarray:
        """(N,) float64 values of series ``name``."""
        self._check(name)
        return np.asarray(self._values[name], dtype=np.float64)

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of series ``name``."""
        return self.steps(name), self.values(name)

    def last(self, name: str, default: float = math.nan) -> float:
        """The most recent value of ``name``, or ``default`` if nothing was logged."""
        values = self._values.get(name)
        return values[-1] if values else default

    def running_mean(self, name: str, window: int = 20) -> float:
        """Mean of the last ``window`` values of ``name`` (NaN if none): what the progress bar shows."""
        values = self._values.get(name, [])[-int(window):]
        return math.fsum(values) / len(values) if values else math.nan

    @property
    def last_step(self) -> int:
        """The largest step logged in any series (0 when empty)."""
        return max((steps[-1] for steps in self._steps.values() if steps), default=0)

    # --- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict[str, dict[str, list]]:
        """``{name: {"steps": [int], "values": [float]}}``: plain Python, JSON- and checkpoint-safe."""
        return {name: {"steps": list(self._steps[name]), "values": list(self._values[name])} for name in self._steps}

    def load_state_dict(self, state: Mapping[str, Mapping[str, list]]) -> None:
        """Replace the content with a :meth:`state_dict`."""
        steps, values = {}, {}
        for name, series in state.items():
            if set(series) != {"steps", "values"} or len(series["steps"]) != len(series["values"]):
                raise ValueError(f"history series {name!r} must hold 'steps' and 'values' of equal length")
            steps[name] = [int(s) for s in series["steps"]]
            values[name] = [float(v) for v in series["values"]]
        self._steps, self._values = steps, values

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Mapping[str, list]]) -> "History":
        history = cls()
        history.load_state_dict(state)
        return history

    def __eq__(self, other: object) -> bool:
        # Exact comparison, NaN equal to NaN: a resumed run must reproduce every value bit for bit.
        if not isinstance(other, History) or self._steps != other._steps:
            return False
        return all(np.array_equal(self.values(n), other.values(n), equal_nan=True) for n in self._steps)

    def __repr__(self) -> str:
        return f"History({', '.join(f'{n}: {len(s)}' for n, s in self._steps.items())})"
