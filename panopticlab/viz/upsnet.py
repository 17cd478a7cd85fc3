"""Figures of UPSNet: the panoptic logits channel by channel, and a deformable layer's offsets.

Drawn from the head's result record (anything with the attributes of
:class:`~panopticlab.postprocess.upsnet.UPSNetPanoptic`: ``x_mask``, ``y_mask``,
``unknown_logits``, ``argmax``, ``num_stuff``, ``layout``, ``kept``) and from arrays, so
``viz`` imports neither a model nor the post-processing.

Offsets follow torchvision's layout: float [2 * 9, h, w], ``(dy, dx)`` per tap, taps in
row-major order, in cells of the feature map the layer reads.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.categories import CategorySet
from .colors import category_color
from .overlay import as_image
from .panels import new_figure

__all__ = ["panoptic_channels", "show_deformable_offsets", "show_panoptic_logits", "tap_positions"]

UNKNOWN_COLOR = (255, 255, 255)


def _channels(result, stuff_logits: np.ndarray, categories: CategorySet,
              instance_categories: Sequence[int] | None) -> list[tuple[str, np.ndarray]]:
    stuff_logits = np.asarray(stuff_logits, dtype=np.float32)
    if stuff_logits.ndim != 3 or stuff_logits.shape[0] != result.num_stuff:
        raise ValueError(f"stuff logits {stuff_logits.shape}: expected [{result.num_stuff}, H, W]")
    channels = [(f"stuff: {categories.name(result.layout[k])}", stuff_logits[k]) for k in range(result.num_stuff)]
    instance_logits = np.asarray(result.x_mask) + np.asarray(result.y_mask)
    scores = getattr(result, "scores", np.zeros(len(instance_logits)))
    for i, logits in enumerate(instance_logits):
        name = categories.name(instance_categories[i]) if instance_categories is not None else "instance"
        score = f" {scores[i]:.2f}" if i < len(scores) else ""
        channels.append((f"instance {i}: {name}{score}", logits))
    if result.unknown_logits is not None:
        channels.append(("unknown", np.asarray(result.unknown_logits)))
    return channels


def panoptic_channels(result, stuff_logits: np.ndarray, categories: CategorySet,
                      instance_categories: Sequence[int] | None = None) -> list[tuple[str, np.ndarray]]:
    """``(title, logits [H, W])`` of every channel of the head in channel order.

    Args:
        result: the head's record (``x_mask``, ``y_mask``, ``unknown_logits``, ``num_stuff``, ``layout``).
        stuff_logits: float [S, H, W], the stuff channels (the semantic logits' first ``S``).
        categories: for the names.
        instance_categories: the category of each instance channel, for the titles.

    Returns:
        stuff channels, one per instance (``X_mask + Y_mask``), then unknown when the head has it.
    """
    if instance_categories is not None and len(instance_categories) != len(np.asarray(result.x_mask)):
        raise ValueError(f"{len(instance_categories)} instance categories for {len(np.asarray(result.x_mask))} "
                         f"instance channels")
    return _channels(result, stuff_logits, categories, instance_categories)


def _argmax_colors(result, categories: CategorySet, instance_colors: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W, 3) uint8: the argmax channel of each pixel, stuff in its class colour,
    instances in ``instance_colors``, unknown white."""
    argmax = np.asarray(result.argmax)
    count = len(np.asarray(result.x_mask))
    palette = [category_color(categories, result.layout[k]) for k in range(result.num_stuff)]
    palette += [tuple(instance_colors[i % len(instance_colors)]) for i in range(count)]
    palette.append(UNKNOWN_COLOR)
    lut = np.array(palette, dtype=np.uint8)
    if argmax.min() < 0 or argmax.max() >= len(lut):
        raise ValueError(f"argmax labels {argmax.min()}..{argmax.max()} do not fit {len(lut)} channels")
    return lut[argmax]


INSTANCE_PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207))


def show_panoptic_logits(image, result, stuff_logits: np.ndarray, categories: CategorySet,
                         instance_categories: Sequence[int] | None = None, ncols: int = 5, panel_width: float = 2.2):
    """The head's logits channel by channel on one shared colour scale, then their argmax.

    Args:
        image: (H, W, 3) the input.
        result: the head's record (:class:`~panopticlab.postprocess.upsnet.UPSNetPanoptic`).
        stuff_logits: float [S, H, W] the stuff channels.
        categories: names and colours.
        instance_categories: the category of each instance channel, for the titles.

    Returns:
        a Figure: the image, every channel (:func:`panoptic_channels`), the argmax (stuff in
        its colour, instance channel ``i`` in a colour of its own, unknown white).
    """
    channels = panoptic_channels(result, stuff_logits, categories, instance_categories)
    image = as_image(image, np.asarray(result.argmax).shape)
    panels = 2 + len(channels)
    nrows = -(-panels // ncols)
    fig, axes = new_figure(nrows, ncols, panel_width, image.shape[0] / image.shape[1])
    values = np.concatenate([logits.ravel() for _, logits in channels])
    bound = float(np.percentile(np.abs(values), 99)) or 1.0
    flat = list(axes.ravel())
    flat[0].imshow(image)
    flat[0].set_title("image", fontsize=8)
    shown = None
    for ax, (title, logits) in zip(flat[1:], channels):
        shown = ax.imshow(logits, cmap="RdBu_r", vmin=-bound, vmax=bound)
        ax.set_title(title, fontsize=8)
    ax = flat[1 + len(channels)]
    ax.imshow(_argmax_colors(result, categories, INSTANCE_PALETTE))
    ax.set_title("argmax (unknown: white)", fontsize=8)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[panels:]:
        ax.set_axis_off()
    if shown is not None:
        fig.colorbar(shown, ax=axes, shrink=0.6, label="logit")
    return fig


def tap_positions(offsets: np.ndarray, point: tuple[int, int], dilation: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Where a 3 x 3 deformable layer reads for one output cell.

    Args:
        offsets: float [18, h, w] ``(dy, dx)`` per tap, row-major taps (torchvision's layout).
        point: ``(row, col)`` of the output cell.
        dilation: spacing of the regular taps.

    Returns:
        ``(regular, sampled)``: float [9, 2] ``(y, x)`` cells of the plain 3 x 3 grid and of
        the grid plus the learned offsets.
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.ndim != 3 or offsets.shape[0] != 18:
        raise ValueError(f"offsets {offsets.shape}: expected [18, h, w] (dy, dx for each of 3 x 3 taps)")
    y, x = point
    if not (0 <= y < offsets.shape[1] and 0 <= x < offsets.shape[2]):
        raise ValueError(f"point {point} lies outside the {offsets.shape[1]} x {offsets.shape[2]} map")
    taps = np.array([(i, j) for i in range(3) for j in range(3)], dtype=np.float64)
    regular = np.array([y, x], dtype=np.float64) + (taps - 1) * dilation
    learned = offsets[:, y, x].reshape(9, 2)  # (dy, dx) per tap
    return regular, regular + learned


def show_deformable_offsets(image, offsets: np.ndarray, points: Sequence[tuple[int, int]], stride: int,
                            title: str = "", panel_width: float = 4.0):
    """The taps of a deformable layer at a few output cells, drawn on the image.

    Args:
        image: (H, W, 3) the input.
        offsets: float [18, h, w] of a layer reading a map at ``stride`` pixels per cell.
        points: ``(row, col)`` output cells to draw.
        stride: image pixels per cell (cell ``(r, c)`` is centred on pixel ``(r + 0.5) * stride``).

    Returns:
        a Figure: grey circles the plain 3 x 3 grid, coloured dots where the layer samples,
        lines joining each tap to its sample.
    """
    image = as_image(image)
    fig, axes = new_figure(1, 1, panel_width, image.shape[0] / image.shape[1])
    ax = axes[0, 0]
    ax.imshow(image)
    for k, point in enumerate(points):
        regular, sampled = tap_positions(offsets, point)
        regular, sampled = (regular + 0.5) * stride - 0.5, (sampled + 0.5) * stride - 0.5  # cells -> pixels
        color = np.array(INSTANCE_PALETTE[k % len(INSTANCE_PALETTE)]) / 255
        ax.scatter(regular[:, 1], regular[:, 0], s=30, facecolors="none", edgecolors="lightgrey", linewidths=1)
        for (y0, x0), (y1, x1) in zip(regular, sampled):
            ax.plot([x0, x1], [y0, y1], color=color, linewidth=1)
        ax.scatter(sampled[:, 1], sampled[:, 0], s=14, color=color)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "plain 3x3 taps (grey) and where the layer samples", fontsize=8)
    return fig
