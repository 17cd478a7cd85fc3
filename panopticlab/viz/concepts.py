"""Concept figures drawn from the objects they explain: PSPNet's pyramid pooling from its
config, the heuristic merge as a flowchart from its :class:`~panopticlab.postprocess.MergeConfig`.

Each figure has a ``*_labels`` function that returns the text of its boxes, so a test can
check that the drawing follows the configuration (another ``bins`` gives other branches;
another threshold, another label) without looking at pixels.
"""
from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["draw_mask_rcnn", "draw_merge_flowchart", "draw_pyramid_pooling", "mask_rcnn_labels",
           "merge_flowchart_labels", "pyramid_pooling_labels"]

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


def draw_pyramid_pooling(config, ax=None):
    """PSPNet's pyramid pooling module as the config builds it: one branch per bin."""
    labels = pyramid_pooling_labels(config)
    n = len(labels["branches"])
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2 * n + 3.0, 4.2))
    mid = (n - 1) / 2 * 2.2
    _box(ax, mid, 3.0, labels["features"], FEATURE_COLOR, width=3.0)
    for k, text in enumerate(labels["branches"]):
        x = k * 2.2
        _box(ax, x, 1.6, text, POOL_COLOR, height=0.9)
        _arrow(ax, (mid, 2.7), (x, 2.05))
        _arrow(ax, (x, 1.15), (mid, 0.55))
    _arrow(ax, (mid + 1.6, 3.0), (mid + 2.4, 0.3), "identity")
    _box(ax, mid, 0.3, labels["concat"], HEAD_COLOR, width=4.0, height=0.5)
    _box(ax, mid, -0.8, labels["head"], HEAD_COLOR, width=4.0, height=0.7)
    _arrow(ax, (mid, 0.05), (mid, -0.45))
    if labels["aux"]:
        ax.text(mid, -1.5, labels["aux"], ha="center", fontsize=7, style="italic")
    ax.set(xlim=(-1.2, 2.2 * (n - 1) + 2.6), ylim=(-1.8, 3.5), title="PSPNet: pyramid pooling, from its config")
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
