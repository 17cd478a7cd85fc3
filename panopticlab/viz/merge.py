"""Figures of the heuristic merge: what the two networks predict, and how the merge resolves it.

Drawn from a prediction record (anything with ``panoptic``, ``semantic``,
``detections`` and ``merge`` attributes, as
:class:`panopticlab.models.common.PanopticPrediction`) and the merge's
:class:`~panopticlab.postprocess.heuristic.MergeSteps`, so ``viz`` imports no model.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
from matplotlib.patches import Patch, Rectangle
from scipy import ndimage

from ..data.categories import CategorySet
from .colors import colorize_instances, colorize_semantic
from .overlay import draw_panoptic, overlay_masks
from .panels import add_legend, new_figure

__all__ = ["MERGE_HIGHLIGHTS", "show_network_outputs", "show_merge_steps", "number_instances", "plot_sweeps"]

# what the third panel of show_merge_steps marks: MergeSteps attribute -> (meaning, colour)
MERGE_HIGHLIGHTS = {
    "things_over_stuff": ("things beat stuff", (46, 160, 67)),
    "unclaimed_things": ("thing pixels without an instance (void)", (214, 39, 40)),
    "small_stuff": ("stuff too small (void)", (255, 127, 14)),
}


def _no_ticks(axes) -> None:
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])


def show_network_outputs(image: np.ndarray, prediction, categories: CategorySet, score_threshold: float = 0.5,
                         mask_threshold: float = 0.5, panel_size: float = 3.6,
                         titles: Sequence[str] = ("semantic network", "instance network"), with_result: bool = False):
    """The image, the semantic map and the detections that the merge starts from.

    Args:
        image: (H, W, 3) uint8.
        prediction: has ``semantic`` ((H, W) category ids, void black) and ``detections``
            (numpy: ``boxes`` [N, 4], ``scores`` [N], ``category_ids`` [N], ``masks`` [N, H, W]).
        score_threshold: detections below it are not drawn (the merge drops them).
        titles: of the semantic and the detection panel (e.g. the two branches of one network).
        with_result: add a fourth panel, the merged ``prediction.panoptic``.

    Returns:
        a Figure of three (or four) panels with a legend of the categories.
    """
    detections = prediction.detections
    keep = detections["scores"] >= score_threshold
    fig, axes = new_figure(1, 4 if with_result else 3, panel_size, image.shape[0] / image.shape[1],
                           legend_entries=len(categories))
    axes = axes[0]
    axes[0].imshow(image)
    axes[0].set_title("image")
    axes[1].imshow(colorize_semantic(prediction.semantic, categories), interpolation="nearest")
    axes[1].set_title(titles[0])
    if with_result:
        draw_panoptic(axes[3], image, prediction.panoptic, categories)
        axes[3].set_title("merged panoptic result")
    colors = [categories[int(c)].color for c in detections["category_ids"][keep]]
    axes[2].imshow(overlay_masks(image, detections["masks"][keep] >= mask_threshold, colors))
    for box, score in zip(detections["boxes"][keep], detections["scores"][keep]):
        x1, y1, x2, y2 = (float(v) for v in box)
        axes[2].add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="w", linewidth=1))
        axes[2].text(x1, y1, f"{score:.2f}", color="w", fontsize=7, va="bottom")
    axes[2].set_title(f"{titles[1]}: {int(keep.sum())} detections\nwith score >= {score_threshold}")
    _no_ticks(axes)
    add_legend(fig, categories, categories.ids)
    return fig


def number_instances(ax, masks: np.ndarray, order: Sequence[int], fontsize: float = 8) -> None:
    """Write each instance's rank in ``order`` at the pixel deepest inside its mask.

    A number that would land on another (duplicate masks share their deepest pixel) is
    moved down until it is free.
    """
    placed: list[tuple[int, int]] = []
    for rank, index in enumerate(order):
        mask = masks[index]
        if not mask.any():
            continue
        depth = ndimage.distance_transform_edt(mask)
        row, col = np.unravel_index(np.argmax(depth), depth.shape)
        while any(abs(row - r) < 5 and abs(col - c) < 8 for r, c in placed):
            row += 6
        placed.append((row, col))
        ax.text(col, row, str(rank), ha="center", va="center", fontsize=fontsize, color="w", fontweight="bold")


def show_merge_steps(image: np.ndarray, prediction, categories: CategorySet, mask_threshold: float = 0.5,
                     panel_size: float = 3.4):
    """The merge of one image in four panels.

    1. the instances above the score threshold, numbered in the order they claim pixels;
    2. the result of claiming (stuff grey, void black);
    3. where things beat stuff, thing pixels no instance claimed, stuff removed as too small;
    4. the panoptic result.

    Args:
        prediction: has ``detections`` (numpy, masks [N, H, W]), ``merge`` (its ``steps``
            are :class:`~panopticlab.postprocess.heuristic.MergeSteps`) and ``panoptic``.
    """
    steps = prediction.merge.steps
    masks = prediction.detections["masks"] >= mask_threshold
    category_ids = prediction.detections["category_ids"]
    fig, axes = new_figure(1, 4, panel_size, image.shape[0] / image.shape[1], legend_entries=len(MERGE_HIGHLIGHTS))
    axes = axes[0]
    axes[0].imshow(overlay_masks(image, masks[steps.order], [categories[int(category_ids[i])].color
                                                             for i in steps.order]))
    number_instances(axes[0], masks, steps.order)
    axes[0].set_title("instances above the score threshold\n(numbered in visiting order)", fontsize=9)
    axes[1].imshow(colorize_instances(prediction.panoptic, categories), interpolation="nearest")
    axes[1].set_title("after resolving overlaps\n(grey: stuff, black: void)", fontsize=9)
    highlight = np.full((*steps.owner.shape, 3), 255, np.uint8)
    for name, (_, color) in MERGE_HIGHLIGHTS.items():
        highlight[getattr(steps, name)] = color
    axes[2].imshow(highlight, interpolation="nearest")
    axes[2].set_title("where the rules decided", fontsize=9)
    draw_panoptic(axes[3], image, prediction.panoptic, categories, ids=False, title="panoptic result")
    _no_ticks(axes)
    fig.legend(handles=[Patch(facecolor=np.array(color) / 255, label=label)
                        for label, color in MERGE_HIGHLIGHTS.values()],
               loc="outside lower center", ncol=len(MERGE_HIGHLIGHTS), frameon=False, fontsize="small")
    return fig


def plot_sweeps(score: Callable[..., Mapping], sweeps: Mapping[str, Sequence[float]], defaults: Mapping[str, float],
                groups: Sequence[str] = ("All", "Things", "Stuff"), panel_size: float = 4.0):
    """PQ as each merge setting moves, the others at their defaults.

    Args:
        score: ``score(**{setting: value})`` -> PQ results (``results[group]["pq"]``).
        sweeps: setting -> the values to try.
        defaults: setting -> its default, marked by a dashed line.

    Returns:
        ``(figure, curves)``: ``curves[setting][group]`` is the list of PQs (fractions).
    """
    fig, axes = new_figure(1, len(sweeps), panel_size, 0.75, legend_entries=len(groups))
    curves: dict[str, dict[str, list[float]]] = {}
    for ax, (setting, values) in zip(axes[0], sweeps.items()):
        results = [score(**{setting: value}) for value in values]
        curves[setting] = {group: [r[group]["pq"] for r in results] for group in groups}
        for group in groups:
            ax.plot(values, [100 * pq for pq in curves[setting][group]], marker="o", label=group)
        ax.axvline(defaults[setting], color="k", linestyle="--", linewidth=1)
        ax.set(xlabel=setting, ylabel="PQ", title=f"{setting} (dashed: default)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=len(groups), frameon=False)
    return fig, curves
