"""Models compared at a glance, from their run records (chapter 7).

Reads :class:`panopticlab.engine.runs.TrainingRun`-like objects (``results``,
``inference``, ``losses`` attributes), so ``viz`` needs no import of ``engine``. A label
maps to one run or to its runs over several seeds: bars then show the mean, a line the
sample standard deviation and a dot each seed's run.
"""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np


def _grouped(runs: Mapping[str, object]) -> dict[str, list]:
    return {label: [value] if hasattr(value, "results") else list(value) for label, value in runs.items()}


def _bars(ax, x, per_seed: np.ndarray, width: float, label: str, bottom=None):
    """Bars at the mean of ``per_seed`` (labels x seeds), with the spread and each seed's value
    when there are several."""
    means = np.nanmean(per_seed, axis=1)
    bars = ax.bar(x, means, width, label=label, bottom=bottom)
    if per_seed.shape[1] > 1:
        sd = [np.std(row[np.isfinite(row)], ddof=1) if np.isfinite(row).sum() > 1 else 0.0 for row in per_seed]
        ax.errorbar(x, means if bottom is None else means + bottom, yerr=sd,
                    fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        for column in per_seed.T:
            ax.plot(x, column if bottom is None else column + bottom, "o", color="black", markersize=1.8)
    return bars, means


def _label_above(ax, x, per_seed: np.ndarray) -> None:
    """Each bar's mean as text, above its highest run and its error bar."""
    for position, row in zip(x, per_seed):
        runs = row[np.isfinite(row)]
        if len(runs):
            top = max(runs.max(), runs.mean() + (np.std(runs, ddof=1) if len(runs) > 1 else 0.0))
            ax.annotate(f"{runs.mean():.0f}", (position, top), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)


def plot_comparison(runs: Mapping[str, object], figsize=(13, 3.6)):
    """Three panels: PQ / PQ_th / PQ_st per model; SQ and RQ per model; milliseconds per
    image, network and post-processing stacked. With several runs per model: the mean, the
    sample standard deviation and each run (each seed) as a dot.

    Returns:
        the Figure.
    """
    grouped = _grouped(runs)
    labels = list(grouped)
    seeds = max(len(group) for group in grouped.values())

    def per_seed(read) -> np.ndarray:  # labels x seeds, NaN-padded where a model has fewer runs
        table = np.full((len(labels), seeds), np.nan)
        for row, label in enumerate(labels):
            table[row, :len(grouped[label])] = [read(run) for run in grouped[label]]
        return table

    x = np.arange(len(labels))
    figure, (scores, parts, times) = plt.subplots(1, 3, figsize=figsize, layout="constrained")
    plt.close(figure)
    for k, (group, name) in enumerate((("All", "PQ"), ("Things", "PQ things"), ("Stuff", "PQ stuff"))):
        values = per_seed(lambda r: 100 * r.results[group]["pq"])
        _bars(scores, x + (k - 1) * 0.27, values, 0.27, name)
        _label_above(scores, x + (k - 1) * 0.27, values)
    for k, (key, name) in enumerate((("sq", "SQ"), ("rq", "RQ"))):
        values = per_seed(lambda r: 100 * r.results["All"][key])
        _bars(parts, x + (k - 0.5) * 0.35, values, 0.35, name)
        _label_above(parts, x + (k - 0.5) * 0.35, values)
    _, network = _bars(times, x, per_seed(lambda r: 1000 * r.inference.get("network", np.nan)), 0.6, "network")
    _, post = _bars(times, x, per_seed(lambda r: 1000 * r.inference.get("postprocess", np.nan)), 0.6,
                    "post-processing", bottom=network)
    for ax, title, unit in ((scores, "Panoptic Quality", "%"), (parts, "segmentation and recognition", "%"),
                            (times, "time per image", "ms")):
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(title + (f" ({seeds} seeds)" if seeds > 1 and unit == "%" else ""))
        ax.set_ylabel(unit)
        ax.legend(fontsize=7, ncol=3, loc="upper center")
    scores.set_ylim(0, 115)  # room for the legend above the bars
    parts.set_ylim(0, 115)
    tallest = np.nanmax(network + post) if np.isfinite(network + post).any() else 1.0
    times.set_ylim(0, 1.25 * tallest)
    return figure


def plot_loss_curves(runs: Mapping[str, object], series: str = "loss", panel_size: tuple[float, float] = (2.6, 2.4)):
    """Each network's training loss against its step, one panel each (for a run of several
    networks, each network's ``<network>/<series>`` curve), on a log scale; a model's runs
    over several seeds as one line each in its panel.

    The models minimise different objectives (a pixel cross-entropy, five detection losses,
    eight UPSNet losses, a heatmap and offset regression), so their values are not
    comparable: each panel has its own axis, and only the shapes are to be compared.

    Returns:
        the Figure.
    """
    curves = [(label + (f"\n({name.rsplit('/', 1)[0]})" if "/" in name else ""), name, group)
              for label, group in _grouped(runs).items() for name in group[0].losses
              if name == series or name.endswith("/" + series)]
    if not curves:
        raise ValueError(f"no run holds a {series!r} curve")
    figure, axes = plt.subplots(1, len(curves), figsize=(panel_size[0] * len(curves), panel_size[1]),
                                layout="constrained", squeeze=False)
    plt.close(figure)
    for ax, (title, name, group) in zip(axes[0], curves):
        for run in group:  # one line per seed
            steps, values = np.asarray(run.losses[name], dtype=float).T
            ax.plot(steps, values, linewidth=1, alpha=1.0 if len(group) == 1 else 0.6)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=8)
    axes[0, 0].set_ylabel(f"{series} (each its own objective)")
    figure.suptitle("training loss, from the run records", fontsize=10)
    return figure
