"""Training curves: the series of a :class:`~panopticlab.engine.history.History`, one panel per kind.

Series are grouped into panels by name: every ``loss*`` series shares the losses panel,
``lr`` and ``grad_norm`` get one each, and the rest are grouped by the prefix before the
first ``/`` (``val/pq``, ``val/sq`` and ``val/rq`` share a ``val`` panel).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["panel_of", "moving_average", "plot_history"]


def panel_of(name: str) -> str:
    """The panel a series is drawn in: ``losses``, ``lr``, ``grad_norm``, or its prefix."""
    if name.startswith("loss"):
        return "losses"
    return name.split("/", 1)[0]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (shorter at the start), same length as ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or values.size == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return (sums[1:] - sums[np.arange(values.size) + 1 - counts]) / counts


def plot_history(history, names: Sequence[str] | None = None, *, smooth: int = 1, log_losses: bool = True,
                 axes: Sequence[plt.Axes] | None = None, panel_size: tuple[float, float] = (4.5, 3.2),
                 groups: Mapping[str, Sequence[str]] | None = None) -> plt.Figure:
    """Plot the series of a training history.

    Args:
        history: a :class:`~panopticlab.engine.history.History`.
        names: the series to draw (default: all), in panel order of first appearance.
        smooth: window of a trailing moving average over the curves (1: raw values).
            Smoothed curves are drawn over the raw values, which stay visible in a lighter tone.
        log_losses: logarithmic y axis in the losses panel.
        axes: one matplotlib Axes per panel to draw into (default: a new figure with one row).
        panel_size: (width, height) in inches of each panel of a new figure.
        groups: panel title -> the series it draws, instead of :func:`panel_of`'s grouping
            (e.g. one panel per head of a model); ``names`` is then every series they list.

    Returns:
        the figure. Each series is a line labelled with its name.
    """
    if groups is not None:
        names = [name for members in groups.values() for name in members]
    names = list(history.names if names is None else names)
    if not names:
        raise ValueError("the history holds no series to plot")
    for name in names:
        if name not in history:
            raise KeyError(f"no series {name!r} in the history; it has {history.names}")
    panels: dict[str, list[str]] = {}
    if groups is not None:
        panels = {title: list(members) for title, members in groups.items() if members}
    else:
        for name in names:
            panels.setdefault(panel_of(name), []).append(name)

    if axes is None:
        figure, axes = plt.subplots(1, len(panels), figsize=(panel_size[0] * len(panels), panel_size[1]),
                                    squeeze=False, constrained_layout=True)
        axes = axes[0]
    elif len(axes) != len(panels):
        raise ValueError(f"{len(panels)} panels ({', '.join(panels)}) need {len(panels)} axes, got {len(axes)}")
    figure = axes[0].figure

    for ax, (panel, members) in zip(axes, panels.items()):
        for name in members:
            steps, values = history.series(name)
            if smooth > 1:
                raw, = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
                ax.plot(steps, moving_average(values, smooth), color=raw.get_color(), label=name)
            else:
                ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=name)
        if all(n.startswith("loss") for n in members) and log_losses and \
                all((history.values(n) > 0).all() for n in members):
            ax.set_yscale("log")
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return figure
