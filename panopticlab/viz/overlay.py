"""Panoptic colours blended onto an image, segment boundaries and segment labels.

:func:`overlay` returns an (H, W, 3) uint8 array (for saving or further processing);
:func:`draw_panoptic` draws the same picture on a matplotlib axis, where labels are
crisp text instead of pixels.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
from scipy import ndimage

from ..data.categories import CategorySet
from ..data.errors import PanopticFormatError
from ..data.panoptic import VOID, PanopticSegmentation, Segment
from .colors import BLACK, RGB, as_rgb, colorize, segment_colors

LabelKind = Literal[False, "segment", "category", "name"]
LABEL_KINDS = (False, None, True, "segment", "category", "name")
WHITE: RGB = (255, 255, 255)


def as_image(image, shape: tuple[int, int] | None = None, what: str = "image") -> np.ndarray:
    """Check an image and return it as (H, W, 3) uint8.

    Accepts (H, W, 3) or (H, W, 4) (alpha dropped) or (H, W) grey, as uint8, as
    integers in [0, 255] or as floats in [0, 1].

    Args:
        shape: the (H, W) it must have, e.g. that of the panoptic id map drawn on it.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        hint = " (channels first? use image.transpose(1, 2, 0))" if image.ndim == 3 and image.shape[0] in (3, 4) else ""
        raise ValueError(f"{what} must be (H, W, 3), got shape {image.shape}{hint}")
    image = image[..., :3]
    if shape is not None and image.shape[:2] != tuple(shape):
        raise ValueError(f"{what} is {image.shape[0]}x{image.shape[1]} but the segmentation drawn on it is "
                         f"{shape[0]}x{shape[1]}")
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        if image.size and (np.nanmin(image) < 0 or np.nanmax(image) > 1):
            raise ValueError(f"{what} holds floats outside [0, 1] "
                             f"([{float(np.nanmin(image)):.3g}, {float(np.nanmax(image)):.3g}])")
        return np.rint(np.nan_to_num(image) * 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        if image.size and (image.min() < 0 or image.max() > 255):
            raise ValueError(f"{what} holds integers outside [0, 255] ([{int(image.min())}, {int(image.max())}])")
        return image.astype(np.uint8)
    raise ValueError(f"{what} has dtype {image.dtype}; expected uint8, integers or floats in [0, 1]")


def segment_boundaries(id_map: np.ndarray) -> np.ndarray:
    """Pixels that have a 4-neighbour with a different id.

    Both sides of every edge between two ids are marked (boundaries are two pixels
    thick), so every segment, however thin, keeps its own outline. Edges between a
    segment and void count; the image border does not.

    Args:
        id_map: (H, W) integer id map.

    Returns:
        (H, W) bool.
    """
    id_map = np.asarray(id_map)
    if id_map.ndim != 2:
        raise PanopticFormatError(f"id map must be 2-D (H, W), got shape {id_map.shape}")
    vertical = id_map[1:, :] != id_map[:-1, :]
    horizontal = id_map[:, 1:] != id_map[:, :-1]
    boundary = np.zeros(id_map.shape, dtype=bool)
    boundary[1:, :] |= vertical
    boundary[:-1, :] |= vertical
    boundary[:, 1:] |= horizontal
    boundary[:, :-1] |= horizontal
    return boundary


def representative_points(id_map: np.ndarray, segment_ids: Sequence[int] | None = None) -> dict[int, tuple[int, int]]:
    """A pixel well inside each segment, where its label can go.

    The point is the maximum of the distance to the segment's own boundary (Euclidean
    distance transform), with the image border counting as boundary: the centre of the
    largest disc that fits in the segment. Unlike the centroid it always lies inside
    the segment, also for a ring or a C shape whose centroid falls in the hole.

    Args:
        id_map: (H, W) integer id map.
        segment_ids: the segments wanted; default every non-void id of the map.

    Returns:
        ``{segment_id: (row, col)}``.
    """
    id_map = np.asarray(id_map)
    present = np.unique(id_map)
    if segment_ids is None:
        wanted = present[present != VOID]
    else:
        wanted = np.asarray(list(segment_ids), dtype=id_map.dtype)
        missing = np.setdiff1d(wanted, present)
        if missing.size:
            raise PanopticFormatError(f"segments {missing[:10].tolist()} have no pixel in the id map")
    if wanted.size == 0:
        return {}
    # A frame of a fresh value makes the image border a boundary too, so labels keep off the edge.
    framed = np.pad(id_map.astype(np.int64), 1, constant_values=-1)
    depth = ndimage.distance_transform_edt(~segment_boundaries(framed))[1:-1, 1:-1]
    positions = ndimage.maximum_position(depth, labels=id_map, index=wanted)
    return {int(i): (int(r), int(c)) for i, (r, c) in zip(wanted.tolist(), positions)}


def segment_label(segment: Segment, categories: CategorySet, ids: LabelKind = "name") -> str:
    """The text written on a segment: its id, its category id or its category name.

    Crowd regions get a ``(crowd)`` suffix with ``"name"``; ``ids=True`` means ``"name"``.
    """
    check_label_kind(ids)
    if ids == "segment":
        return str(segment.id)
    if ids == "category":
        return str(segment.category_id)
    return categories.name(segment.category_id) + (" (crowd)" if segment.iscrowd else "")


def check_label_kind(ids) -> None:
    """Raise ValueError unless ``ids`` is False/None (no labels), True, "segment", "category" or "name"."""
    if not any(ids is kind or (isinstance(kind, str) and ids == kind) for kind in LABEL_KINDS):
        raise ValueError(f"ids must be False, 'segment', 'category' or 'name', got {ids!r}")


def text_color(background: Sequence[int]) -> RGB:
    """Black or white, whichever reads better on ``background`` (Rec. 601 luma)."""
    r, g, b = background
    return BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else WHITE


def blend(image: np.ndarray, colored: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colored`` on ``mask``, ``image`` elsewhere; uint8 in and out."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colored.astype(np.float32)
    return np.where(mask[..., None], np.rint(mixed).astype(np.uint8), image)


def _labelled_segments(pan: PanopticSegmentation, min_area: int) -> list[Segment]:
    ids, counts = np.unique(pan.id_map, return_counts=True)
    area = dict(zip(ids.tolist(), counts.tolist()))
    return [s for s in pan.segments if s.id != VOID and area.get(s.id, 0) >= min_area]


def overlay(image: np.ndarray | None, pan: PanopticSegmentation, categories: CategorySet, alpha: float = 0.5,
            contours: bool = True, ids: LabelKind = False, contour_color: Sequence[int] = WHITE,
            seed: int = 0, min_label_area: int = 16) -> np.ndarray:
    """Blend the panoptic colours onto an image.

    Args:
        image: (H, W, 3) image (see :func:`as_image`), or None for the colours alone.
        pan: the segmentation to draw, same (H, W).
        alpha: weight of the segment colours (0: image only, 1: colours only). Void
            pixels always show the image.
        contours: paint :func:`segment_boundaries` in ``contour_color``.
        ids: write a label on each segment of at least ``min_label_area`` pixels at its
            :func:`representative_points`: its ``"segment"`` id, ``"category"`` id or
            category ``"name"``. The text is rasterised into the pixels, so on a small
            image it is coarse; :func:`draw_panoptic` writes crisp text on an axis.

    Returns:
        (H, W, 3) uint8 image.
    """
    check_label_kind(ids)
    colored = colorize(pan, categories, seed=seed)
    if image is None:
        out = colored
    else:
        out = blend(as_image(image, pan.shape), colored, pan.id_map != VOID, alpha)
    if contours:
        out = out.copy()
        out[segment_boundaries(pan.id_map)] = as_rgb(contour_color, "contour_color")
    if ids:
        out = _write_labels(out, pan, categories, ids, seed, min_label_area)
    return out


def _write_labels(image: np.ndarray, pan: PanopticSegmentation, categories: CategorySet, ids: LabelKind,
                  seed: int, min_area: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    segments = _labelled_segments(pan, min_area)
    points = representative_points(pan.id_map, [s.id for s in segments])
    colors = segment_colors(pan, categories, seed)
    size = max(8, min(pan.shape) // 16)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for s in segments:
        row, col = points[s.id]
        fill = text_color(colors[s.id])
        draw.text((col, row), segment_label(s, categories, ids), fill=fill, font=font, anchor="mm",
                  stroke_width=1, stroke_fill=WHITE if fill == BLACK else BLACK)
    return np.array(canvas)  # a writable copy


def draw_panoptic(ax, image: np.ndarray | None, pan: PanopticSegmentation, categories: CategorySet,
                  alpha: float = 0.5, contours: bool = True, ids: LabelKind = "name",
                  contour_color: Sequence[int] = WHITE, seed: int = 0, min_label_area: int = 16,
                  fontsize: float = 8, title: str | None = None):
    """Draw :func:`overlay` on a matplotlib axis, with text labels and no ticks.

    Each segment of at least ``min_label_area`` pixels gets its label (see
    :func:`segment_label`) at its :func:`representative_points`, on a patch of its own
    colour.

    Returns:
        the axis.
    """
    check_label_kind(ids)
    ax.imshow(overlay(image, pan, categories, alpha, contours, False, contour_color, seed), interpolation="nearest")
    if ids:
        segments = _labelled_segments(pan, min_label_area)
        points = representative_points(pan.id_map, [s.id for s in segments])
        colors = segment_colors(pan, categories, seed)
        for s in segments:
            write_label(ax, points[s.id], segment_label(s, categories, ids), colors[s.id], fontsize)
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax


def write_label(ax, point: tuple[int, int], text: str, color: Sequence[int], fontsize: float = 8):
    """Write ``text`` centred on pixel ``point = (row, col)``, on a patch of ``color``, in black or white."""
    row, col = point
    ax.text(col, row, text, ha="center", va="center", fontsize=fontsize, clip_on=True,
            color=np.asarray(text_color(color)) / 255.0,
            bbox=dict(boxstyle="round,pad=0.15", facecolor=np.asarray(color) / 255.0, alpha=0.8, edgecolor="none"))


def overlay_masks(image: np.ndarray | None, masks: np.ndarray, colors: Sequence[Sequence[int]],
                  alpha: float = 0.5, background: Sequence[int] = BLACK) -> np.ndarray:
    """Composite possibly overlapping masks, one after the other, each with opacity ``alpha``.

    Where masks overlap their colours mix, which makes the overlap visible: a
    panoptic segmentation cannot hold such pixels, each has exactly one id.

    Args:
        image: (H, W, 3) image, or None for a plain ``background``.
        masks: (N, H, W) bool.
        colors: N ``(r, g, b)`` colours.

    Returns:
        (H, W, 3) uint8 image.
    """
    masks = as_mask_stack(masks)
    if len(colors) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(colors)} colours")
    if image is None:
        out = np.empty((*masks.shape[1:], 3), np.uint8)
        out[:] = as_rgb(background, "background")
    else:
        out = as_image(image, masks.shape[1:])
    for mask, color in zip(masks, colors):
        out = blend(out, np.broadcast_to(np.asarray(as_rgb(color), np.uint8), out.shape), mask, alpha)
    return out


def as_mask_stack(masks: np.ndarray, shape: tuple[int, int] | None = None, what: str = "masks") -> np.ndarray:
    """Check an (N, H, W) stack of instance masks and return it as bool.

    Accepts bool or 0/1 values (numpy arrays or anything ``np.asarray`` takes).
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"{what} must be an (N, H, W) stack, got shape {masks.shape}")
    if shape is not None and masks.shape[1:] != tuple(shape):
        raise ValueError(f"{what} are {masks.shape[1]}x{masks.shape[2]} but the image is {shape[0]}x{shape[1]}")
    if masks.dtype != bool:
        if masks.size and not np.isin(masks, (0, 1)).all():
            raise ValueError(f"{what} must hold booleans or 0/1, got values in "
                             f"[{masks.min()}, {masks.max()}]; threshold soft masks first")
        masks = masks.astype(bool)
    return masks
