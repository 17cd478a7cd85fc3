"""Figures of Panoptic-DeepLab: centre heatmap, offset arrows, centres, votes and the majority vote.

Drawn from arrays and from the post-processing's result record (anything with the
attributes of :class:`~panopticlab.postprocess.deeplab.DeepLabPanoptic`: ``panoptic``,
``centers``, ``center_scores``, ``instance_map``, ``offsets``, ``votes``), so ``viz``
imports neither a model nor the post-processing.

Coordinates follow the package: points and offsets are ``(y, x)`` / ``(dy, dx)`` in
pixels, the offset of a pixel pointing *to* its instance's centre.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.colors as mcolors
import numpy as np
from matplotlib import patheffects
from matplotlib.patches import Rectangle

from ..data.categories import VOID_LABEL, CategorySet
from .colors import INSTANCE_PALETTE, colorize_semantic
from .overlay import draw_panoptic, overlay_masks, segment_boundaries
from .panels import add_legend, new_figure

__all__ = ["CENTER_MARKER", "draw_centers", "draw_detections", "draw_offsets", "outvoted_pixels", "plot_center_grid",
           "show_deeplab_outputs", "show_grouping_steps", "show_rescored", "show_top_down_vs_bottom_up"]

CENTER_MARKER = {"marker": "x", "color": "white", "s": 40, "linewidths": 2}


def _no_ticks(axes) -> None:
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])


def draw_centers(ax, centers: np.ndarray, labels: bool = False, label_color: str = "white", **marker) -> None:
    """Mark (K, 2) ``(y, x)`` centres with crosses (``labels``: number them 1..K as the grouping does,
    in ``label_color`` with a rim of the opposite shade so the number reads on any background)."""
    centers = np.asarray(centers).reshape(-1, 2)
    if len(centers):
        ax.scatter(centers[:, 1], centers[:, 0], **{**CENTER_MARKER, **marker})
    if labels:
        rim = "black" if np.mean(mcolors.to_rgb(label_color)) > 0.5 else "white"
        for k, (y, x) in enumerate(centers.tolist(), start=1):
            ax.text(x + 1.5, y - 1.5, str(k), color=label_color, fontsize=7, fontweight="bold", zorder=5,
                    path_effects=[patheffects.withStroke(linewidth=1.5, foreground=rim)])


def draw_offsets(ax, offsets: np.ndarray, mask: np.ndarray | None = None, step: int = 6,
                 color: str = "white") -> int:
    """Draw offset arrows from every ``step``-th pixel to where it votes, ``(x + dx, y + dy)``.

    Args:
        offsets: (2, H, W) ``(dy, dx)``.
        mask: (H, W) bool, the pixels that get an arrow (default: all on the grid).
        step: spacing of the grid of arrows in pixels.

    Returns:
        the number of arrows drawn.
    """
    offsets = np.asarray(offsets)
    if offsets.ndim != 3 or offsets.shape[0] != 2:
        raise ValueError(f"offsets must be (2, H, W) (dy, dx), got shape {offsets.shape}")
    if int(step) < 1:
        raise ValueError(f"step must be a positive number of pixels, got {step}")
    ys, xs = np.mgrid[step // 2:offsets.shape[1]:step, step // 2:offsets.shape[2]:step]
    keep = np.ones(ys.shape, bool) if mask is None else np.asarray(mask, bool)[ys, xs]
    ys, xs = ys[keep], xs[keep]
    # angles/scale in data units: each arrow ends exactly at the vote, on the image's (inverted) y axis
    ax.quiver(xs, ys, offsets[1][ys, xs], offsets[0][ys, xs], angles="xy", scale_units="xy", scale=1,
              color=color, width=0.004, headwidth=4)
    return int(keep.sum())


def draw_detections(ax, image: np.ndarray, detections: Mapping[str, np.ndarray], categories: CategorySet,
                    score_threshold: float = 0.5, mask_threshold: float = 0.5) -> int:
    """A detector's masks and boxes (score >= ``score_threshold``) on the image; returns how many."""
    keep = np.asarray(detections["scores"]) >= score_threshold
    colors = [categories[int(c)].color for c in np.asarray(detections["category_ids"])[keep]]
    ax.imshow(overlay_masks(image, np.asarray(detections["masks"])[keep] >= mask_threshold, colors))
    for x1, y1, x2, y2 in np.asarray(detections["boxes"])[keep].tolist():
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="w", linewidth=1))
    return int(keep.sum())


def _heatmap_panel(ax, heatmap: np.ndarray, centers: np.ndarray, title: str) -> None:
    shown = ax.imshow(np.asarray(heatmap), cmap="magma", vmin=0, vmax=max(1.0, float(np.max(heatmap))))
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    draw_centers(ax, centers)
    ax.set_title(title)


def show_deeplab_outputs(image: np.ndarray, semantic: np.ndarray, heatmap: np.ndarray, result,
                         categories: CategorySet, step: int = 6, panel_size: float = 3.2):
    """The three maps of Panoptic-DeepLab and what the post-processing makes of them.

    Panels: image; semantic arg-max; centre heatmap with the centres found; offset arrows
    on the thing pixels; the panoptic result.

    Args:
        image: (H, W, 3) uint8.
        semantic: (H, W) category ids.
        heatmap: (H, W) the centre heatmap.
        result: a ``DeepLabPanoptic`` (centres, offsets, panoptic).
        step: spacing of the offset arrows.
    """
    fig, axes = new_figure(1, 5, panel_size, image.shape[0] / image.shape[1], legend_entries=len(categories))
    axes = axes[0]
    axes[0].imshow(image)
    axes[0].set_title("image")
    axes[1].imshow(colorize_semantic(semantic, categories), interpolation="nearest")
    axes[1].set_title("semantic head (arg-max)")
    _heatmap_panel(axes[2], heatmap, result.centers, f"centre heatmap: {len(result.centers)} centres")
    thing = np.isin(semantic, categories.thing_ids)
    axes[3].imshow(image, alpha=0.6)
    drawn = draw_offsets(axes[3], result.offsets, thing, step)
    draw_centers(axes[3], result.centers, color="yellow")
    axes[3].set_title(f"offsets of thing pixels\n({drawn} arrows, every {step} px)")
    draw_panoptic(axes[4], image, result.panoptic, categories, title="panoptic result")
    _no_ticks(axes)
    add_legend(fig, categories, categories.ids)
    return fig


def _instance_palette(num: int) -> np.ndarray:
    """(num + 1, 3) uint8: black for 0 (no instance), then a repeating palette."""
    colors = np.array(INSTANCE_PALETTE, np.uint8)
    return np.concatenate([np.zeros((1, 3), np.uint8), colors[np.arange(num) % len(colors)]])


def outvoted_pixels(semantic: np.ndarray, result) -> np.ndarray:
    """(H, W) bool: grouped pixels whose semantic label the majority vote replaced.

    Each instance takes the majority category of its pixels, so its minority pixels come
    out with another label than the semantic head gave them: these are the pixels the
    vote changed. (Where the head is wrong on most of an instance, the vote keeps that
    wrong label and changes the few right pixels; the vote makes the label of an
    instance consistent, not right.)

    Args:
        semantic: (H, W) category ids the post-processing read.
        result: a ``DeepLabPanoptic`` (``instance_map``, ``panoptic``).
    """
    semantic, instance_map = np.asarray(semantic), np.asarray(result.instance_map)
    if semantic.shape != instance_map.shape:
        raise ValueError(f"semantic map {semantic.shape} and instance map {instance_map.shape} differ in shape")
    voted = result.panoptic.category_map()
    return (instance_map > 0) & (voted != semantic)


def _nearest_centre_map(shape: tuple[int, int], centers: np.ndarray) -> np.ndarray:
    """(H, W) int: 1 + the index of the centre nearest to each pixel (the grouping rule applied
    to a vote landing there; exact ties may break otherwise), 0 everywhere when there is no centre."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    if not len(centers):
        return np.zeros(shape, np.int64)
    from scipy.spatial import cKDTree

    rows, cols = np.mgrid[:shape[0], :shape[1]]
    _, nearest = cKDTree(centers).query(np.column_stack([rows.ravel(), cols.ravel()]))
    return nearest.reshape(shape) + 1


def _light_grey(image: np.ndarray, strength: float = 0.35) -> np.ndarray:
    """The image in light grey: its luminance squeezed to ``[1 - strength, 1]``, as (H, W, 3) floats."""
    grey = np.asarray(image, np.float64)[..., :3] @ np.array([0.299, 0.587, 0.114]) / 255.0
    return np.repeat((1.0 - strength + strength * grey)[..., None], 3, axis=2)


OUTVOTED_COLOR = "yellow"


def show_grouping_steps(image: np.ndarray, semantic: np.ndarray, result, categories: CategorySet,
                        panel_size: float = 3.4, max_votes: int = 4000, seed: int = 0, truth=None):
    """Grouping and the majority vote, step by step.

    Panels: (1) every thing pixel's vote ``(y + dy, x + dx)`` as a dot, coloured by the
    centre nearest to it, with the numbered centres, on the image in light grey; thin grey
    lines split the plane by nearest centre (where a vote lands decides the instance);
    (2) the class-agnostic instance map that grouping gives (centre ``k`` -> colour ``k``);
    (3) the semantic labels inside the instances, the votes of the majority vote (instance
    outlines in white, the outvoted pixels, :func:`outvoted_pixels`, outlined in yellow);
    (4) the result, each instance with its majority category. With ``truth``, (5) each
    grouped pixel's label after the vote against the ground truth: right (green), wrong
    (red) or void in the truth (grey), the outvoted pixels again in yellow, so a wrong label
    the vote imposed (red inside yellow) stands apart from one the semantic head itself gave
    most of the instance (red, no yellow); the title counts the outvoted pixels the vote
    made right and those whose right semantic label it overwrote.

    Args:
        image: (H, W, 3) uint8.
        semantic: (H, W) category ids the post-processing read.
        result: a ``DeepLabPanoptic``.
        max_votes: at most this many vote dots are drawn (a random subset, ``seed``).
        truth: the ground-truth ``PanopticSegmentation`` of the image, for panel 5 (optional).
    """
    ncols = 4 if truth is None else 5
    fig, axes = new_figure(1, ncols, panel_size, image.shape[0] / image.shape[1], legend_entries=len(categories))
    axes = axes[0]
    instance_map = np.asarray(result.instance_map)
    palette = _instance_palette(len(result.centers))
    grouped = np.flatnonzero(instance_map.ravel() > 0)
    if len(grouped) > max_votes:
        grouped = np.sort(np.random.default_rng(seed).choice(grouped, max_votes, replace=False))
    votes = np.asarray(result.votes).reshape(2, -1)[:, grouped]
    background = _light_grey(image)
    regions = _nearest_centre_map(instance_map.shape, result.centers)
    borders = np.zeros(regions.shape, bool)  # one pixel wide: the lower / right side of each change
    borders[1:, :] |= regions[1:, :] != regions[:-1, :]
    borders[:, 1:] |= regions[:, 1:] != regions[:, :-1]
    background[borders] = 0.6
    axes[0].imshow(background, interpolation="nearest")
    # a dot about 1.5 pixels wide, opaque with a dark rim: a cloud of a few hundred votes is a solid blob
    points_per_pixel = panel_size * 72 / image.shape[1]
    dot = max(9.0, (1.5 * points_per_pixel) ** 2)
    axes[0].scatter(votes[1], votes[0], s=dot, c=palette[instance_map.ravel()[grouped]] / 255.0,
                    edgecolors="black", linewidths=0.25, zorder=3, gid="votes")
    draw_centers(axes[0], result.centers, labels=True, label_color="black", color="black", s=30, linewidths=1.5,
                 zorder=4)
    axes[0].set_xlim(-0.5, image.shape[1] - 0.5)
    axes[0].set_ylim(image.shape[0] - 0.5, -0.5)
    axes[0].set_title("1. votes (y + dy, x + dx)\nby nearest centre (grey: borders)")
    axes[1].imshow(palette[instance_map], interpolation="nearest")
    draw_centers(axes[1], result.centers, labels=True)
    axes[1].set_title(f"2. grouping: {len(result.centers)} centres,\n"
                      f"{int((result.center_segment > 0).sum())} non-empty instances")
    outvoted = outvoted_pixels(semantic, result)
    inside = np.where(instance_map > 0, semantic, -1)
    labels = colorize_semantic(np.where(inside >= 0, inside, semantic), categories)
    labels[instance_map == 0] = (labels[instance_map == 0] * 0.25).astype(np.uint8)
    labels[segment_boundaries(instance_map) & (instance_map > 0)] = 255
    axes[2].imshow(labels, interpolation="nearest")
    _outline(axes[2], outvoted)
    axes[2].set_title(f"3. semantic labels inside each instance\n(its votes; yellow: {int(outvoted.sum())} "
                      f"px outvoted)")
    draw_panoptic(axes[3], image, result.panoptic, categories, title="4. majority category\nper instance")
    if truth is not None:
        verdict, fixed, broken = _vote_verdict(semantic, result, truth)
        axes[4].imshow(VERDICT_COLORS[verdict], interpolation="nearest")
        _outline(axes[4], outvoted)
        axes[4].set_title(f"5. label after the vote: green right,\nred wrong (vote fixed {fixed} px, broke {broken})")
    _no_ticks(axes)
    add_legend(fig, categories, categories.ids)
    return fig


# panel 5: not grouped, right after the vote, wrong after the vote, void in the ground truth
VERDICT_COLORS = np.array([(40, 40, 40), (44, 160, 44), (214, 39, 40), (150, 150, 150)], np.uint8)


def _vote_verdict(semantic: np.ndarray, result, truth) -> tuple[np.ndarray, int, int]:
    """(H, W) codes into :data:`VERDICT_COLORS`, and how many outvoted pixels the vote made right
    (``fixed``) and how many it made wrong (``broke``: their semantic label was the true one)."""
    true = truth.category_map()
    if true.shape != np.asarray(semantic).shape:
        raise ValueError(f"ground truth {true.shape} and semantic map {np.asarray(semantic).shape} differ in shape")
    grouped, known = np.asarray(result.instance_map) > 0, true != VOID_LABEL
    right = result.panoptic.category_map() == true
    verdict = np.zeros(true.shape, np.int64)
    verdict[grouped & known] = np.where(right[grouped & known], 1, 2)
    verdict[grouped & ~known] = 3
    outvoted = outvoted_pixels(semantic, result) & known
    return verdict, int((outvoted & right).sum()), int((outvoted & (np.asarray(semantic) == true)).sum())


def _outline(ax, mask: np.ndarray) -> None:
    """Outline the regions of an (H, W) bool mask in :data:`OUTVOTED_COLOR` (a contour at 0.5)."""
    if mask.any():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[OUTVOTED_COLOR], linewidths=1.2)


def show_top_down_vs_bottom_up(image: np.ndarray, top_down, bottom_up, categories: CategorySet,
                               heatmap: np.ndarray, step: int = 6, panel_size: float = 3.4,
                               titles: Sequence[str] = ("top-down", "bottom-up")):
    """Two ways to find the things of one image, side by side.

    Top row: a top-down model's detections (boxes and masks, score >= 0.5), then its
    panoptic result. Bottom row: a bottom-up model's centre heatmap and centres with the
    offset arrows of its thing pixels, then its result.

    Args:
        top_down: a prediction with ``detections`` and ``panoptic`` (e.g. the baseline's).
        bottom_up: a ``DeepLabPanoptic`` (centres, offsets, instance map, panoptic).
        heatmap: (H, W) the bottom-up model's centre heatmap.
    """
    fig, axes = new_figure(2, 2, panel_size, image.shape[0] / image.shape[1], legend_entries=len(categories))
    count = draw_detections(axes[0, 0], image, top_down.detections, categories)
    axes[0, 0].set_title(f"{titles[0]}: detect {count} boxes,\nthen a mask in each")
    draw_panoptic(axes[0, 1], image, top_down.panoptic, categories, title=f"{titles[0]}: merged result")
    axes[1, 0].imshow(np.asarray(heatmap), cmap="magma", vmin=0, vmax=1)
    draw_offsets(axes[1, 0], bottom_up.offsets, np.asarray(bottom_up.instance_map) > 0, step, color="cyan")
    draw_centers(axes[1, 0], bottom_up.centers)
    axes[1, 0].set_title(f"{titles[1]}: {len(bottom_up.centers)} centres,\npixels point to them")
    draw_panoptic(axes[1, 1], image, bottom_up.panoptic, categories, title=f"{titles[1]}: grouped result")
    _no_ticks(axes)
    add_legend(fig, categories, categories.ids)
    return fig


def show_rescored(image: np.ndarray, heatmap: np.ndarray, result, categories: CategorySet,
                  title: str = "", panel_size: float = 3.4):
    """One image re-post-processed: the heatmap with its centres, the grouping, the result."""
    fig, axes = new_figure(1, 3, panel_size, image.shape[0] / image.shape[1])
    axes = axes[0]
    _heatmap_panel(axes[0], heatmap, result.centers, f"{len(result.centers)} centres")
    axes[1].imshow(_instance_palette(len(result.centers))[np.asarray(result.instance_map)], interpolation="nearest")
    draw_centers(axes[1], result.centers)
    axes[1].set_title("grouping")
    draw_panoptic(axes[2], image, result.panoptic, categories, title="result")
    _no_ticks(axes)
    if title:
        fig.suptitle(title)
    return fig


def plot_center_grid(grid: Mapping[tuple[float, int], Mapping], metrics: Sequence[tuple[str, str]] = (
        ("All", "pq"), ("Things", "pq")), marked: tuple[float, int] | None = None, panel_size: float = 3.6):
    """PQ (and other numbers) over a grid of centre thresholds x NMS kernels, as heat tables.

    Args:
        grid: ``{(threshold, kernel): PQ results}`` (:func:`~panopticlab.engine.center_analysis.center_setting_grid`).
        metrics: ``(group, key)`` pairs of the results to show, one panel each, in per cent.
        marked: a cell to outline (e.g. the model's own setting).

    Returns:
        a Figure.
    """
    if not grid:
        raise ValueError("the grid is empty")
    thresholds = sorted({t for t, _ in grid})
    kernels = sorted({k for _, k in grid})
    fig, axes = new_figure(1, len(metrics), panel_size, len(thresholds) / max(len(kernels), 1) * 0.9 + 0.2)
    for ax, (group, key) in zip(axes[0], metrics):
        table = np.full((len(thresholds), len(kernels)), np.nan)
        for (t, k), results in grid.items():
            table[thresholds.index(t), kernels.index(k)] = 100 * results[group][key]
        shown = ax.imshow(table, cmap="viridis", aspect="auto")
        for (row, col), value in np.ndenumerate(table):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=8,
                    color="black" if value > np.nanmean(table) else "white")
        if marked is not None and marked in grid:
            row, col = thresholds.index(marked[0]), kernels.index(marked[1])
            ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, color="red", linewidth=2))
        ax.set_xticks(range(len(kernels)), [str(k) for k in kernels])
        ax.set_yticks(range(len(thresholds)), [f"{t:g}" for t in thresholds])
        ax.set_xlabel("NMS kernel (px)")
        ax.set_ylabel("centre threshold")
        ax.set_title(f"{key.upper()} {group.lower()} (%)")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    return fig
