"""Concept figures drawn from the objects they explain: PSPNet's pyramid pooling from its
config, the heuristic merge as a flowchart from its :class:`~panopticlab.postprocess.MergeConfig`,
and each category's SQ against its RQ from a PQ result.

Each figure has a ``*_labels`` function that returns the text of its boxes, so a test can
check that the drawing follows the configuration (another ``bins`` gives other branches;
another threshold, another label) without looking at pixels.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path

__all__ = ["draw_mask_rcnn", "draw_merge_flowchart", "draw_pyramid_pooling", "mask_rcnn_labels",
           "merge_flowchart_labels", "plot_sq_vs_rq", "pyramid_pooling_labels", "pyramid_pooling_layout"]

POOL_COLOR, FEATURE_COLOR, HEAD_COLOR, DECISION_COLOR, DROP_COLOR = "#9ecae1", "#d9d9d9", "#c7e9c0", "#fdd0a2", "#fcbba1"


def _box(ax, x, y, text, color, width=1.8, height=0.6, fontsize=8):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.04",
                                facecolor=color, edgecolor="k", linewidth=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, text=None):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color="k", linewidth=0.8,
                                 shrinkA=0, shrinkB=0))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2, text, fontsize=7, va="center")


def pyramid_pooling_labels(config) -> dict[str, list[str] | str]:
    """The boxes of :func:`draw_pyramid_pooling` for a :class:`~panopticlab.models.pspnet.PSPNetConfig`.

    Returns:
        ``{"features": str, "branches": [one label per bin], "concat": str, "head": str,
        "aux": str or ""}``.
    """
    if not config.bins:
        raise ValueError("a pyramid pooling module needs at least one bin")
    branches = [f"avg-pool to {b}x{b}\nconv 1x1, {config.pool_channels}\nupsample" for b in config.bins]
    return {
        "features": f"dilated {config.backbone.name} features\n(output stride 8)",
        "branches": branches,
        "concat": f"concat: features + {len(config.bins)} x {config.pool_channels} channels",
        "head": f"conv 3x3, {config.head_channels} -> conv 1x1, {config.num_classes} classes\nupsample 8x",
        "aux": (f"auxiliary head on res4: conv 3x3, {config.aux_channels}; loss x {config.aux_weight}"
                if config.aux_channels else ""),
    }


BRANCH_SPACING = 2.2  # data units between the centres of two pyramid branches


def pyramid_pooling_layout(config) -> dict:
    """Where :func:`draw_pyramid_pooling` puts its boxes and arrows, in data units.

    Returns:
        ``{"boxes": {name: (x, y, width, height)}, "arrows": [(source, target, points)], "xlim", "ylim"}``:
        boxes named ``"features"``, ``"branch 0"``.. (one per bin), ``"concat"`` and ``"head"``, each
        by its centre and size; every arrow a polyline of ``(x, y)`` points that starts on the edge
        of box ``source`` and ends on the edge of box ``target`` (the identity path goes round the
        branches to the concatenation it feeds); limits that hold every box and label.
    """
    n = len(pyramid_pooling_labels(config)["branches"])
    mid = (n - 1) / 2 * BRANCH_SPACING
    boxes = {"features": (mid, 3.0, 3.0, 0.6)}
    boxes.update({f"branch {k}": (k * BRANCH_SPACING, 1.6, 1.8, 0.9) for k in range(n)})
    boxes["concat"] = (mid, 0.3, 4.0, 0.5)
    boxes["head"] = (mid, -0.8, 4.0, 0.7)

    def edge(name, side):
        x, y, w, h = boxes[name]
        return {"top": (x, y + h / 2), "bottom": (x, y - h / 2), "right": (x + w / 2, y)}[side]

    arrows = []
    for k in range(n):
        arrows.append(("features", f"branch {k}", [(mid, edge("features", "bottom")[1]), edge(f"branch {k}", "top")]))
        arrows.append((f"branch {k}", "concat", [edge(f"branch {k}", "bottom"), (mid, edge("concat", "top")[1])]))
    # identity: out of the features' right side, past every branch, down, and into the concatenation's right side
    right = max(x + w / 2 for x, _, w, _ in boxes.values()) + 0.5
    start, end = edge("features", "right"), edge("concat", "right")
    arrows.append(("features", "concat", [start, (right, start[1]), (right, end[1]), end]))
    arrows.append(("concat", "head", [edge("concat", "bottom"), edge("head", "top")]))
    left = min(x - w / 2 for x, _, w, _ in boxes.values()) - 0.3
    return {"boxes": boxes, "arrows": arrows, "xlim": (left, right + 0.3), "ylim": (-1.8, 3.5)}


def _route(ax, points, text=None):
    """An arrow along a polyline of (x, y) points, the head at the last one."""
    if len(points) == 2:
        _arrow(ax, points[0], points[1])
    else:
        ax.add_patch(FancyArrowPatch(path=Path(points), arrowstyle="-|>", mutation_scale=10, color="k",
                                     linewidth=0.8))
    if text:  # on the first leg, above it
        (x0, y0), (x1, y1) = points[0], points[1]
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.06, text, fontsize=7, ha="center", va="bottom")


def draw_pyramid_pooling(config, ax=None):
    """PSPNet's pyramid pooling module as the config builds it: one branch per bin, and the
    identity path that carries the features themselves to the concatenation
    (geometry: :func:`pyramid_pooling_layout`)."""
    labels = pyramid_pooling_labels(config)
    layout = pyramid_pooling_layout(config)
    n = len(labels["branches"])
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2 * n + 3.0, 4.2))
    texts = {"features": labels["features"], "concat": labels["concat"], "head": labels["head"],
             **{f"branch {k}": text for k, text in enumerate(labels["branches"])}}
    colors = {"features": FEATURE_COLOR, "concat": HEAD_COLOR, "head": HEAD_COLOR}
    for name, (x, y, w, h) in layout["boxes"].items():
        _box(ax, x, y, texts[name], colors.get(name, POOL_COLOR), width=w, height=h)
    for source, target, points in layout["arrows"]:
        _route(ax, points, "identity" if len(points) > 2 else None)
    if labels["aux"]:
        head_x, head_y, _, head_h = layout["boxes"]["head"]
        ax.text(head_x, head_y - head_h / 2 - 0.35, labels["aux"], ha="center", fontsize=7, style="italic")
    ax.set(xlim=layout["xlim"], ylim=layout["ylim"], title="PSPNet: pyramid pooling, from its config")
    ax.axis("off")
    return ax


def mask_rcnn_labels(config) -> list[str]:
    """The stages of :func:`draw_mask_rcnn` for a :class:`~panopticlab.models.mask_rcnn.MaskRCNNConfig`."""
    d = config.detection
    strides = [2 ** (layer + 1) for layer in config.returned_layers] + [2 ** (config.returned_layers[-1] + 2)]
    mask_size = 2 * d.mask_roi_size  # the mask head's transposed conv doubles the RoI grid
    anchors = "/".join(map(str, d.anchor_sizes))
    ratios = "/".join(f"{r:g}" for r in d.aspect_ratios)
    return [
        f"{config.backbone.name} body",
        f"FPN: {len(strides)} levels, strides {'/'.join(map(str, strides))}, {config.fpn_channels} channels",
        (f"RPN: anchors {anchors} px x ratios {ratios}\n"
        f"{d.rpn_post_nms_top_n_test} proposals after NMS {d.rpn_nms_thresh:g}"),
        (f"RoIAlign {d.box_roi_size}x{d.box_roi_size}\nbox head: 2 fc {d.box_representation_size}\n"
        "class + box per RoI"),
        (f"RoIAlign {d.mask_roi_size}x{d.mask_roi_size}\nmask head: {len(d.mask_head_channels)} conv 3x3\n"
        f"{mask_size}x{mask_size} mask per class"),
        (f"score > {d.box_score_thresh:g}, NMS {d.box_nms_thresh:g}, at most {d.box_detections_per_img}\n"
        "-> boxes, classes, scores, masks"),
    ]


def draw_mask_rcnn(config, ax=None):
    """Mask R-CNN's stages as the config builds them, top to bottom, with the two RoI heads side by side."""
    labels = mask_rcnn_labels(config)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5.2))
    positions = [(0, 4.2), (0, 3.2), (0, 2.1), (-1.9, 0.8), (1.9, 0.8), (0, -0.5)]
    sizes = [(3.0, 0.5), (5.0, 0.5), (5.2, 0.8), (3.4, 0.9), (3.4, 0.9), (5.2, 0.7)]
    colors = [FEATURE_COLOR, FEATURE_COLOR, POOL_COLOR, HEAD_COLOR, HEAD_COLOR, DECISION_COLOR]
    for (x, y), (w, h), text, color in zip(positions, sizes, labels, colors):
        _box(ax, x, y, text, color, width=w, height=h)
    for a, b in ((0, 1), (1, 2), (2, 3), (2, 4), (3, 5), (4, 5)):
        (xa, ya), (xb, yb) = positions[a], positions[b]
        _arrow(ax, (xa, ya - sizes[a][1] / 2), (xb, yb + sizes[b][1] / 2))
    ax.set(xlim=(-3.8, 3.8), ylim=(-1.0, 4.6), title="Mask R-CNN, from its config")
    ax.axis("off")
    return ax


def merge_flowchart_labels(merge, image_area: float) -> list[str]:
    """The steps of :func:`draw_merge_flowchart`, with ``merge``'s thresholds written in."""
    limit = merge.stuff_limit(image_area)
    return [
        "instances (masks, scores, classes)",
        f"score < {merge.score_threshold:g}?",
        "visit by score, highest first",
        f"taken fraction > {merge.overlap_threshold:g}?",
        "keep its free pixels (things win)",
        "stuff from the semantic map\non pixels no instance took",
        f"free pixels of a stuff class < {limit:.0f}?",
        "panoptic segmentation",
    ]


def draw_merge_flowchart(merge, image_area: float, ax=None):
    """The heuristic merge as a flowchart; decisions in orange, drops in red."""
    labels = merge_flowchart_labels(merge, image_area)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 6.4))
    ys = [7, 6, 5, 4, 3, 2, 1, 0]
    colors = [FEATURE_COLOR, DECISION_COLOR, POOL_COLOR, DECISION_COLOR, HEAD_COLOR, POOL_COLOR, DECISION_COLOR,
              FEATURE_COLOR]
    for y, text, color in zip(ys, labels, colors):
        _box(ax, 0, y, text, color, width=3.4, height=0.62)
    for a, b in itertools.pairwise(ys):
        _arrow(ax, (0, a - 0.31), (0, b + 0.31), "no" if colors[ys.index(a)] == DECISION_COLOR else None)
    for y, drop in ((6, "dropped"), (4, "dropped"), (1, "void")):
        _box(ax, 3.0, y, drop, DROP_COLOR, width=1.3, height=0.5)
        _arrow(ax, (1.7, y), (2.35, y), "yes")
    ax.set(xlim=(-2.0, 4.0), ylim=(-0.6, 7.6), title="the heuristic merge")
    ax.axis("off")
    return ax


def plot_sq_vs_rq(per_class: Mapping[int, Mapping[str, float]], categories, ax=None, marker_size: float = 60):
    """Each category's SQ against its RQ: circles things, squares stuff, the line SQ = RQ.

    Both axes share one range, from a little below the smallest value to a little above 1,
    so the diagonal runs at 45 degrees and a category at RQ = 1 or SQ = 1 (stuff often is)
    is drawn whole, clear of the frame.

    Args:
        per_class: ``{category id: {"sq", "rq", "tp", "fp", "fn", ...}}``, e.g. the
            ``"per_class"`` entry of :func:`panopticlab.metrics.evaluate_pairs`; a category
            with no segment on either side (``tp + fp + fn == 0``) is left out.
        categories: the :class:`~panopticlab.data.categories.CategorySet` (names, colours, isthing).
        marker_size: scatter size in points squared.

    Returns:
        the axis. The legend sits outside it, on the right, so it hides no point, and gives each
        category's RQ and SQ: categories with nearly the same values (stuff at RQ = 1) overlap.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.6, 4.2), layout="constrained")
    shown = [(category, per_class[category.id]) for category in categories
             if category.id in per_class
             and per_class[category.id]["tp"] + per_class[category.id]["fp"] + per_class[category.id]["fn"] > 0]
    for category, entry in shown:
        ax.scatter(entry["rq"], entry["sq"], color=np.array(category.color) / 255, s=marker_size,
                   marker="o" if category.isthing else "s", edgecolor="k", linewidth=0.8, zorder=3,
                   label=f"{category.name}: RQ {entry['rq']:.2f}, SQ {entry['sq']:.2f}")
    values = [v for _, entry in shown for v in (entry["rq"], entry["sq"])]
    low = min([0.5, *values])
    # an extreme value sits a whole marker width (and 2 points) inside the frame, in data units of this axis
    width_inches = ax.get_position().width * ax.figure.get_figwidth()
    pad_points = np.sqrt(marker_size) + 2
    span = 1.0 - low
    pad = max(0.04 * span, pad_points / 72 / max(width_inches, 0.5) * span * 1.2)
    limits = (low - pad, 1.0 + pad)
    ax.plot(limits, limits, color="grey", linewidth=0.8, zorder=1)
    ax.set(xlabel="RQ (recognition)", ylabel="SQ (segmentation)", xlim=limits, ylim=limits,
           title="per category: circles things, squares stuff")
    ax.set_aspect("equal", adjustable="box")
    if shown:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    return ax
