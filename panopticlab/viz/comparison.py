"""Models compared at a glance, from their run records (chapter 7).

Reads :class:`panopticlab.engine.runs.TrainingRun`-like objects (``results``,
``inference``, ``losses`` attributes), so ``viz`` needs no import of ``engine``.
"""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np


def plot_comparison(runs: Mapping[str, object], figsize=(13, 3.6)):
    """Three panels: PQ / PQ_th / PQ_st per model; SQ and RQ per model; milliseconds per
    image, network and post-processing stacked.

    Returns:
        the Figure.
    """
    labels = list(runs)
    x = np.arange(len(labels))
    figure, (scores, parts, times) = plt.subplots(1, 3, figsize=figsize, layout="constrained")
    plt.close(figure)
    for k, (group, name) in enumerate((("All", "PQ"), ("Things", "PQ things"), ("Stuff", "PQ stuff"))):
        values = [100 * runs[m].results[group]["pq"] for m in labels]
        bars = scores.bar(x + (k - 1) * 0.27, values, 0.27, label=name)
        scores.bar_label(bars, fmt="%.0f", fontsize=7)
    for k, (key, name) in enumerate((("sq", "SQ"), ("rq", "RQ"))):
        values = [100 * runs[m].results["All"][key] for m in labels]
        bars = parts.bar(x + (k - 0.5) * 0.35, values, 0.35, label=name)
        parts.bar_label(bars, fmt="%.0f", fontsize=7)
    network = np.array([1000 * runs[m].inference.get("network", np.nan) for m in labels])
    post = np.array([1000 * runs[m].inference.get("postprocess", np.nan) for m in labels])
    times.bar(x, network, 0.6, label="network")
    times.bar(x, post, 0.6, bottom=network, label="post-processing")
    for ax, title, unit in ((scores, "Panoptic Quality", "%"), (parts, "segmentation and recognition", "%"),
                            (times, "time per image", "ms")):
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.legend(fontsize=7, ncol=3, loc="upper center")
    scores.set_ylim(0, 115)  # room for the legend above the bars
    parts.set_ylim(0, 115)
    tallest = np.nanmax(network + post) if np.isfinite(network + post).any() else 1.0
    times.set_ylim(0, 1.2 * tallest)
    return figure


def plot_loss_curves(runs: Mapping[str, object], series: str = "loss", panel_size: tuple[float, float] = (2.6, 2.4)):
    """Each network's training loss against its step, one panel each (for a run of several
    networks, each network's ``<network>/<series>`` curve), on a log scale.

    The models minimise different objectives (a pixel cross-entropy, five detection losses,
    eight UPSNet losses, a heatmap and offset regression), so their values are not
    comparable: each panel has its own axis, and only the shapes are to be compared.

    Returns:
        the Figure.
    """
    curves = [(label + (f"\n({name.rsplit('/', 1)[0]})" if "/" in name else ""), np.asarray(points, dtype=float).T)
              for label, run in runs.items() for name, points in run.losses.items()
              if name == series or name.endswith("/" + series)]
    if not curves:
        raise ValueError(f"no run holds a {series!r} curve")
    figure, axes = plt.subplots(1, len(curves), figsize=(panel_size[0] * len(curves), panel_size[1]),
                                layout="constrained", squeeze=False)
    plt.close(figure)
    for ax, (title, (steps, values)) in zip(axes[0], curves):
        ax.plot(steps, values, linewidth=1)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=8)
    axes[0, 0].set_ylabel(f"{series} (each its own objective)")
    figure.suptitle("training loss, from the run records", fontsize=10)
    return figure
