"""Figures of UPSNet: the panoptic logits channel by channel, and a deformable layer's offsets.

Drawn from the head's result record (what :func:`~panopticlab.models.upsnet_head.unified_panoptic`
returns, or anything with the attributes of :class:`~panopticlab.postprocess.upsnet.UPSNetPanoptic`:
``x_mask``, ``y_mask``, ``unknown_logits``, ``argmax``, ``num_stuff``, ``layout``, ``kept``)
and from arrays, so ``viz`` imports neither a model nor the post-processing.

Offsets follow torchvision's layout: float [2 * 9, h, w], ``(dy, dx)`` per tap, taps in
row-major order, in cells of the feature map the layer reads.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.patches import Rectangle

from ..data.categories import CategorySet
from .colors import INSTANCE_PALETTE, category_color
from .overlay import as_image
from .panels import new_figure

__all__ = ["instance_windows", "panoptic_channels", "show_deformable_offsets", "show_panoptic_logits",
           "tap_positions"]

UNKNOWN_COLOR = (255, 255, 255)


def _instance_classes(result, instance_categories: Sequence[int] | None) -> list[int | None]:
    count = len(np.asarray(result.x_mask))
    if instance_categories is None:
        return [None] * count
    if len(instance_categories) != count:
        raise ValueError(f"{len(instance_categories)} instance categories for {count} instance channels")
    return [int(c) for c in instance_categories]


def _channels(result, stuff_logits: np.ndarray, categories: CategorySet,
              instance_categories: Sequence[int] | None) -> list[tuple[str, np.ndarray]]:
    stuff_logits = np.asarray(stuff_logits, dtype=np.float32)
    if stuff_logits.ndim != 3 or stuff_logits.shape[0] != result.num_stuff:
        raise ValueError(f"stuff logits {stuff_logits.shape}: expected [{result.num_stuff}, H, W]")
    classes = _instance_classes(result, instance_categories)
    channels = [(f"stuff {categories.name(result.layout[k])}", stuff_logits[k]) for k in range(result.num_stuff)]
    instance_logits = np.asarray(result.x_mask) + np.asarray(result.y_mask)
    scores = np.asarray(getattr(result, "scores", np.zeros(0)))
    for i, logits in enumerate(instance_logits):
        name = categories.name(classes[i]) if classes[i] is not None else "class not given"
        score = f" {scores[i]:.2f}" if i < len(scores) else ""
        channels.append((f"instance {i}: {name}{score}", logits))
    if result.unknown_logits is not None:
        channels.append(("unknown", np.asarray(result.unknown_logits)))
    return [(f"channel {k}: {title}", logits) for k, (title, logits) in enumerate(channels)]


def panoptic_channels(result, stuff_logits: np.ndarray, categories: CategorySet,
                      instance_categories: Sequence[int] | None = None) -> list[tuple[str, np.ndarray]]:
    """``(title, logits [H, W])`` of every channel of the head in channel order.

    Args:
        result: the head's record (``x_mask``, ``y_mask``, ``unknown_logits``, ``num_stuff``, ``layout``;
            ``scores`` when it has them).
        stuff_logits: float [S, H, W], the stuff channels (the semantic logits' first ``S``).
        categories: for the names.
        instance_categories: the category of each instance channel, for the titles.

    Returns:
        stuff channels, one per instance (``X_mask + Y_mask``), then unknown when the head has it.
        Title ``k`` names channel ``k`` (its index in the argmax): ``"channel 0: stuff sky"``,
        ``"channel 6: instance 1: disc 0.93"`` (instance number, class, score), ``"channel 9: unknown"``.
    """
    _instance_classes(result, instance_categories)
    return _channels(result, stuff_logits, categories, instance_categories)


def _channel_palette(result, categories: CategorySet, instance_colors: Sequence[Sequence[int]]) -> np.ndarray:
    """(C, 3) uint8: the argmax colour of each channel, stuff in its class colour, instance ``i``
    in ``instance_colors[i]`` (cycled), unknown white."""
    count = len(np.asarray(result.x_mask))
    palette = [category_color(categories, result.layout[k]) for k in range(result.num_stuff)]
    palette += [tuple(instance_colors[i % len(instance_colors)]) for i in range(count)]
    palette.append(UNKNOWN_COLOR)
    return np.array(palette, dtype=np.uint8)


def _argmax_colors(result, categories: CategorySet, instance_colors: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, W, 3) uint8: the argmax channel of each pixel, stuff in its class colour,
    instances in ``instance_colors``, unknown white."""
    argmax = np.asarray(result.argmax)
    lut = _channel_palette(result, categories, instance_colors)
    if argmax.min() < 0 or argmax.max() >= len(lut):
        raise ValueError(f"argmax labels {argmax.min()}..{argmax.max()} do not fit {len(lut)} channels")
    return lut[argmax]


UNKNOWN_FRAME = (90, 90, 90)  # the unknown channel's frame: its argmax colour, white, would not show


def instance_windows(result, min_size: int = 12, margin: float = 0.25) -> list[tuple[int, int, int, int]]:
    """The crop that shows each instance channel: its box, with room around it.

    An instance channel is 0 outside its box B_i, so drawn on the whole image a small
    instance is a few coloured pixels on a blank panel. The window is centred on the
    smallest rectangle holding every pixel where ``X_mask`` or ``Y_mask`` is non-zero (B_i):
    square, its side the longer side of B_i grown by ``margin`` on each end, at least
    ``min_size`` pixels, and moved (or cut) to stay inside the image.

    Args:
        result: the head's record (``x_mask``, ``y_mask``: float (N, H, W)).

    Returns:
        one ``(row0, row1, col0, col1)`` per instance channel, half-open pixel ranges that
        hold its box; the whole image for a channel that is 0 everywhere.
    """
    x_mask, y_mask = np.asarray(result.x_mask), np.asarray(result.y_mask)
    height, width = x_mask.shape[1:]
    windows = []
    for support in (x_mask != 0) | (y_mask != 0):
        box = _support_box(support)
        if box is None:
            windows.append((0, height, 0, width))
            continue
        row0, row1, col0, col1 = box
        side = max(min_size, int(np.ceil(max(row1 - row0, col1 - col0) * (1 + 2 * margin))))
        spans = []
        for lo, hi, size in ((row0, row1, height), (col0, col1, width)):
            want = min(size, side)
            start = int(np.clip((lo + hi - want) // 2, 0, size - want))
            spans += [start, start + want]
        windows.append(tuple(spans))
    return windows


def _support_box(support: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(row0, row1, col0, col1)`` half-open bounds of a (H, W) bool map, ``None`` when empty."""
    if not support.any():
        return None
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def show_panoptic_logits(image, result, stuff_logits: np.ndarray, categories: CategorySet,
                         instance_categories: Sequence[int] | None = None, ncols: int = 5, panel_width: float = 2.2,
                         crop: bool = True):
    """The head's logits channel by channel on one shared colour scale, then their argmax.

    Args:
        image: (H, W, 3) the input.
        result: the head's record (:class:`~panopticlab.postprocess.upsnet.UPSNetPanoptic`,
            :func:`~panopticlab.models.upsnet_head.unified_panoptic`).
        stuff_logits: float [S, H, W] the stuff channels.
        categories: names and colours.
        instance_categories: the category of each instance channel, for the titles.
        crop: show each instance channel on its window (:func:`instance_windows`) instead of
            the whole image, where it is 0 outside its box.

    Returns:
        a Figure: the image with each instance's box numbered, every channel
        (:func:`panoptic_channels`, titled by its channel number and what it is; an instance
        channel with its box dashed, on its window of :func:`instance_windows` when ``crop``,
        the title then saying "box crop"), the argmax. Each channel panel is
        framed in the colour the argmax gives that channel (stuff its class colour, instance
        ``i`` a colour of its own; unknown, white in the argmax, framed dark grey).
    """
    channels = panoptic_channels(result, stuff_logits, categories, instance_categories)
    image = as_image(image, np.asarray(result.argmax).shape)
    palette = _channel_palette(result, categories, INSTANCE_PALETTE)
    num_instances = len(np.asarray(result.x_mask))
    windows = instance_windows(result)
    panels = 2 + len(channels)
    nrows = -(-panels // ncols)
    fig, axes = new_figure(nrows, ncols, panel_width, image.shape[0] / image.shape[1])
    values = np.concatenate([logits.ravel() for _, logits in channels])
    bound = float(np.percentile(np.abs(values), 99)) or 1.0
    flat = list(axes.ravel())
    flat[0].imshow(image)
    flat[0].set_title("image, instance boxes\n(numbered as their channels)", fontsize=8)
    boxes = [_support_box(support) for support in (np.asarray(result.x_mask) != 0) | (np.asarray(result.y_mask) != 0)]
    for i, box in enumerate(boxes):
        if box is not None:
            color = palette[result.num_stuff + i] / 255
            flat[0].add_patch(Rectangle((box[2] - 0.5, box[0] - 0.5), box[3] - box[2], box[1] - box[0],
                                        fill=False, edgecolor=color, linewidth=1.2))
            flat[0].text(box[2], box[0] - 1, str(i), color="white", fontsize=6, fontweight="bold", va="bottom",
                         bbox={"facecolor": color, "edgecolor": "none", "pad": 0.8})
    shown = None
    for k, (ax, (title, logits)) in enumerate(zip(flat[1:], channels)):
        shown = ax.imshow(logits, cmap="RdBu_r", vmin=-bound, vmax=bound)
        frame = UNKNOWN_FRAME if k == result.num_stuff + num_instances else palette[k]
        for spine in ax.spines.values():
            spine.set_edgecolor(np.asarray(frame) / 255)
            spine.set_linewidth(3)
        instance = k - result.num_stuff
        title = title.replace(": ", "\n", 1)
        if 0 <= instance < num_instances:
            row0, row1, col0, col1 = windows[instance]
            if crop and (row1 - row0, col1 - col0) != image.shape[:2]:
                ax.set_xlim(col0 - 0.5, col1 - 0.5)
                ax.set_ylim(row1 - 0.5, row0 - 0.5)
                title = title.replace("\n", " (box crop)\n", 1)
            if boxes[instance] is not None:
                r0, r1, c0, c1 = boxes[instance]
                ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, edgecolor="k",
                                       linewidth=0.8, linestyle="--"))
        ax.set_title(title, fontsize=8)
    ax = flat[1 + len(channels)]
    ax.imshow(_argmax_colors(result, categories, INSTANCE_PALETTE))
    ax.set_title("argmax: the colour of each\nchannel's frame (unknown white)", fontsize=8)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[panels:]:
        ax.set_axis_off()
    if shown is not None:
        fig.colorbar(shown, ax=axes, shrink=0.6, label="logit (all channels, one scale)")
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


PLAIN_TAP_COLOR = "0.4"  # dark grey ring of a plain tap...
PLAIN_TAP_HALO = "white"  # ...over a wider white ring, so it shows on dark and on light pixels alike


def show_deformable_offsets(image, offsets: np.ndarray, points: Sequence[tuple[int, int]], stride: int,
                            title: str = "", panel_width: float = 6.5):
    """The taps of a deformable layer at a few output cells, drawn on the image.

    Args:
        image: (H, W, 3) the input.
        offsets: float [18, h, w] of a layer reading a map at ``stride`` pixels per cell.
        points: ``(row, col)`` output cells to draw.
        stride: image pixels per cell (cell ``(r, c)`` is centred on pixel ``(r + 0.5) * stride``).
        panel_width: inches; markers and lines scale with it.

    Returns:
        a Figure: grey rings (on a white halo, visible on any pixel) the plain 3 x 3 grid,
        dots in one colour per output cell (white-edged) where the layer samples, lines
        joining each tap to its sample. Per cell, three scatter collections with gids
        ``"plain-halo"``, ``"plain"`` and ``"samples"``.
    """
    image = as_image(image)
    fig, axes = new_figure(1, 1, panel_width, image.shape[0] / image.shape[1])
    ax = axes[0, 0]
    ax.imshow(image)
    scale = panel_width / 4.0  # the sizes below were chosen for a 4-inch panel
    for k, point in enumerate(points):
        regular, sampled = tap_positions(offsets, point)
        regular, sampled = (regular + 0.5) * stride - 0.5, (sampled + 0.5) * stride - 0.5  # cells -> pixels
        color = np.array(INSTANCE_PALETTE[k % len(INSTANCE_PALETTE)]) / 255
        ax.scatter(regular[:, 1], regular[:, 0], s=40 * scale ** 2, facecolors="none", edgecolors=PLAIN_TAP_HALO,
                   linewidths=2.8 * scale, gid="plain-halo")
        ax.scatter(regular[:, 1], regular[:, 0], s=40 * scale ** 2, facecolors="none", edgecolors=PLAIN_TAP_COLOR,
                   linewidths=1.8 * scale, gid="plain")
        for (y0, x0), (y1, x1) in zip(regular, sampled):
            ax.plot([x0, x1], [y0, y1], color=color, linewidth=1.3 * scale)
        ax.scatter(sampled[:, 1], sampled[:, 0], s=22 * scale ** 2, color=color, edgecolors="white",
                   linewidths=0.8 * scale, zorder=3, gid="samples")
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "plain 3x3 taps (grey) and where the layer samples", fontsize=10)
    return fig
