"""Ready-made figures for the chapters: one call, one readable figure.

Every function returns a matplotlib :class:`~matplotlib.figure.Figure`, sized for a
notebook, with titles and without ticks. Figures a function creates itself are
detached from pyplot's list of open figures, so a notebook cell that ends with the
call shows the figure exactly once and a loop that makes many figures keeps no
memory; save one with ``fig.savefig(path)``. Functions that take ``ax=`` draw into
the caller's figure instead and return it.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..data.categories import CategorySet
from ..data.errors import PanopticFormatError
from ..data.panoptic import PanopticSegmentation
from .colors import BLACK, STUFF_GREY, colorize_instances, colorize_semantic, instance_colors, legend_handles
from .overlay import (
    WHITE,
    LabelKind,
    as_image,
    as_mask_stack,
    draw_panoptic,
    overlay_masks,
    representative_points,
    write_label,
)

TITLE_SPACE = 0.4  # inches per row of panels, for the titles
LEGEND_SPACE = 0.3  # inches per row of legend entries
LEGEND_COLUMN_WIDTH = 1.8  # inches a legend entry such as "triangle (thing)" needs


def new_figure(nrows: int, ncols: int, panel_width: float, aspect: float, legend_entries: int = 0):
    """A detached figure with an (nrows, ncols) array of axes, panels of ``panel_width`` inches.

    ``aspect`` is the image height / width; ``legend_entries`` reserves room for a legend below.

    Returns:
        ``(fig, axes)`` with ``axes`` an (nrows, ncols) object array.
    """
    legend_rows = -(-legend_entries // legend_columns(ncols * panel_width, legend_entries)) if legend_entries else 0
    height = nrows * (panel_width * aspect + TITLE_SPACE) + legend_rows * LEGEND_SPACE
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * panel_width, height), layout="constrained",
                             squeeze=False)
    plt.close(fig)  # the caller owns it: no duplicate display in notebooks, no leak in loops
    return fig, axes


def legend_columns(width: float, entries: int) -> int:
    """How many legend entries fit side by side in ``width`` inches."""
    return max(1, min(entries, int(width // LEGEND_COLUMN_WIDTH)))


def add_legend(fig, categories: CategorySet, category_ids: Iterable[int]) -> None:
    """A legend of ``category_ids`` below the panels, outside them so it hides nothing."""
    handles = legend_handles(categories, category_ids)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", frameon=False, fontsize="small",
                   ncols=legend_columns(fig.get_figwidth(), len(handles)))


def _present_categories(pan: PanopticSegmentation) -> set[int]:
    present = set(np.unique(pan.id_map).tolist())
    return {s.category_id for s in pan.segments if s.id in present}


def _check_labels(labels: Sequence[int], n_masks: int, categories: CategorySet) -> list[int]:
    labels = [int(c) for c in np.asarray(labels).reshape(-1)]
    if len(labels) != n_masks:
        raise ValueError(f"{n_masks} masks but {len(labels)} labels")
    for index, category_id in enumerate(labels):
        if category_id not in categories:
            raise PanopticFormatError(f"mask {index} has unknown category id {category_id}; "
                                      f"known ids: {categories.ids}")
    return labels


def _draw_mask_outlines(ax, masks: np.ndarray, colors: Sequence[Sequence[int]]) -> None:
    """Each mask's outline in its colour, along pixel edges (sub-pixel contours at 0.5)."""
    for mask, color in zip(masks, colors):
        if mask.any() and not mask.all():  # a constant mask has no outline
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[np.asarray(color) / 255.0], linewidths=1.5)


def _draw_instance_masks(ax, image, masks: np.ndarray, labels: list[int], categories: CategorySet,
                         alpha: float, seed: int, numbered: bool, fontsize: float) -> int:
    """Composite, outline and optionally number the masks; return the pixels claimed twice or more."""
    colors = instance_colors(labels, categories, seed, taken=[BLACK, WHITE, STUFF_GREY])
    # Without an image, translucent masks on white read like a Venn diagram: overlaps come out darker.
    ax.imshow(overlay_masks(image, masks, colors, alpha, background=WHITE), interpolation="nearest")
    _draw_mask_outlines(ax, masks, colors)
    overlap = masks.sum(axis=0) > 1
    if overlap.any() and not overlap.all():
        ax.contour(overlap.astype(np.float32), levels=[0.5], colors=["black" if image is None else "white"],
                   linewidths=1.2, linestyles="dashed")
    if numbered:
        for index, (mask, category_id, color) in enumerate(zip(masks, labels, colors)):
            if not mask.any():
                continue
            point = representative_points(mask.astype(np.int32), [1])[1]
            write_label(ax, point, f"{index}: {categories.name(category_id)}", color, fontsize)
    if image is None:  # keep the frame: it marks the image extent on the white background
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.set_axis_off()
    return int(overlap.sum())


def show_panoptic(image: np.ndarray | None, pan: PanopticSegmentation, categories: CategorySet, ax=None,
                  title: str | None = "panoptic segmentation", ids: LabelKind = "name", alpha: float = 0.5,
                  contours: bool = True, legend: bool = False, seed: int = 0, size: float = 5.0):
    """One panoptic segmentation over its image, labelled (see :func:`draw_panoptic`).

    Args:
        image: (H, W, 3) image, or None to show the segment colours alone.
        ax: draw into this axis; default a new figure ``size`` inches wide.
        legend: add a legend of the categories present (new figures only).

    Returns:
        the Figure.
    """
    if ax is None:
        entries = len(_present_categories(pan)) if legend else 0
        fig, axes = new_figure(1, 1, size, pan.shape[0] / max(pan.shape[1], 1), entries)
        ax = axes[0, 0]
        if legend:
            add_legend(fig, categories, _present_categories(pan))
    draw_panoptic(ax, image, pan, categories, alpha=alpha, contours=contours, ids=ids, seed=seed, title=title)
    return ax.figure


def show_side_by_side(image: np.ndarray, pan: PanopticSegmentation, categories: CategorySet,
                      masks: np.ndarray | None = None, labels: Sequence[int] | None = None,
                      title: str | None = None, ids: LabelKind = False, legend: bool = True,
                      seed: int = 0, panel_size: float = 3.0):
    """The three tasks on one image: image | semantic | instance | panoptic.

    * semantic: each pixel in its category's colour. Instances of one class share a
      colour, so touching objects of the same class merge into one blob.
    * instance: things only (stuff grey, void black), each instance in its own shade.
      By default the instances are the thing segments of ``pan``; pass ``masks``
      (N, H, W) with ``labels`` (N,) category ids to show an instance segmentation's
      own masks instead, translucent on white, where overlaps come out darker and are
      outlined dashed (see :func:`show_masks`).
    * panoptic: every pixel one segment: stuff in category colours, things in shades.

    Returns:
        the Figure, with 4 axes.
    """
    image = as_image(image, pan.shape)
    present = _present_categories(pan)
    if masks is not None:
        if labels is None:
            raise ValueError("masks given without labels: pass one category id per mask")
        masks = as_mask_stack(masks, pan.shape)
        labels = _check_labels(labels, len(masks), categories)
        present |= {c for c, m in zip(labels, masks) if m.any()}
    elif labels is not None:
        raise ValueError("labels given without masks")
    fig, axes = new_figure(1, 4, panel_size, pan.shape[0] / max(pan.shape[1], 1), len(present) if legend else 0)
    ax_image, ax_semantic, ax_instance, ax_panoptic = axes[0]

    ax_image.imshow(image, interpolation="nearest")
    ax_image.set_title("image")
    ax_image.set_axis_off()

    semantic = pan.category_map(void=-1)  # -1: never a category id
    ax_semantic.imshow(colorize_semantic(semantic, categories, void_label=-1), interpolation="nearest")
    ax_semantic.set_title("semantic")
    ax_semantic.set_axis_off()

    if masks is None:
        ax_instance.imshow(colorize_instances(pan, categories, seed=seed), interpolation="nearest")
        ax_instance.set_axis_off()
        ax_instance.set_title("instance (things only)")
    else:
        overlap = _draw_instance_masks(ax_instance, None, masks, labels, categories, 0.5, seed, False, 7)
        ax_instance.set_title(f"instance ({len(masks)} masks" + (f", {overlap} px overlap)" if overlap else ")"))

    draw_panoptic(ax_panoptic, None, pan, categories, ids=ids, seed=seed, fontsize=7, title="panoptic")
    if title:
        fig.suptitle(title)
    if legend:
        add_legend(fig, categories, present)
    return fig


def show_grid(samples: Iterable, categories: CategorySet, ncols: int = 4, alpha: float = 0.5,
              contours: bool = True, ids: LabelKind = False, seed: int = 0, panel_size: float = 2.5):
    """A dataset preview: each sample's image with its panoptic overlay, in a grid.

    Args:
        samples: :class:`~panopticlab.data.Sample` objects (anything with ``image`` and
            ``panoptic``); each panel is titled with its ``file_name`` or ``image_id``.
        ncols: panels per row.

    Returns:
        the Figure, with one axis per sample.
    """
    samples = list(samples)
    if not samples:
        raise ValueError("show_grid needs at least one sample")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    for index, sample in enumerate(samples):
        if not (hasattr(sample, "image") and hasattr(sample, "panoptic")):
            raise ValueError(f"sample {index} is a {type(sample).__name__}, not a Sample (needs .image and .panoptic)")
    ncols = min(ncols, len(samples))
    nrows = -(-len(samples) // ncols)
    height, width = samples[0].panoptic.shape
    fig, axes = new_figure(nrows, ncols, panel_size, height / max(width, 1))
    for index, ax in enumerate(axes.ravel()):
        if index >= len(samples):
            fig.delaxes(ax)  # an empty slot in the last row
            continue
        sample = samples[index]
        name = getattr(sample, "file_name", None) or str(getattr(sample, "image_id", index))
        draw_panoptic(ax, sample.image, sample.panoptic, categories, alpha=alpha, contours=contours, ids=ids,
                      seed=seed, fontsize=6, title=name)
        ax.title.set_fontsize("small")
    return fig


def show_masks(masks: np.ndarray, labels: Sequence[int], categories: CategorySet, image: np.ndarray | None = None,
               alpha: float = 0.5, ax=None, title: str | None = None, numbered: bool = True, legend: bool = True,
               seed: int = 0, size: float = 5.0):
    """Overlapping instance masks, each semi-transparent, outlined in its own colour.

    Where masks overlap their colours mix and the overlap is outlined dashed (black on
    the default white background, white on an image): pixels claimed by two instances,
    which a panoptic segmentation must give to exactly one.

    Args:
        masks: (N, H, W) bool (or 0/1) instance masks.
        labels: (N,) category ids.
        image: (H, W, 3) image under the masks; default a white background.
        numbered: write "index: name" inside each mask.
        title: default says how many pixels are claimed more than once.

    Returns:
        the Figure.
    """
    masks = as_mask_stack(masks)
    labels = _check_labels(labels, len(masks), categories)
    if image is not None:
        image = as_image(image, masks.shape[1:])
    height, width = masks.shape[1:]
    if ax is None:
        entries = len(set(labels)) if legend else 0
        fig, axes = new_figure(1, 1, size, height / max(width, 1), entries)
        ax = axes[0, 0]
        if legend:
            add_legend(fig, categories, set(labels))
    overlap = _draw_instance_masks(ax, image, masks, labels, categories, alpha, seed, numbered, 8)
    if title is None:
        title = f"{len(masks)} instance masks, {overlap} pixels claimed more than once"
    ax.set_title(title)
    return ax.figure
