"""Matching diagrams: which segments are true positives, false positives, false negatives.

Drawn from a :class:`panopticlab.metrics.ImageMatching`-like object (anything with
``gt``/``pred`` segment tables holding ``ids``, ``gt_outcome``/``pred_outcome``
arrays of outcome codes, and ``gt_iou()``/``pred_iou()``), so that ``viz`` needs no
import of ``metrics``.
"""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch

from ..data.categories import CategorySet
from ..data.panoptic import PanopticSegmentation, segment_statistics
from .colors import paint, shade
from .overlay import as_image, blend, representative_points, segment_boundaries, write_label
from .panels import new_figure

# outcome code (TP, FP, FN, IGNORED, as in panopticlab.metrics.Outcome) -> (name, colour)
OUTCOME_STYLE = {
    0: ("true positive", (46, 160, 67)),
    1: ("false positive", (214, 39, 40)),
    2: ("false negative", (255, 127, 14)),
    3: ("ignored (crowd / void)", (150, 150, 150)),
}


# errors on segments smaller than this (pixels, or this fraction of the image) get a ring around them
TINY_AREA = 40
TINY_FRACTION = 0.002


def outcome_colors(ids: np.ndarray, outcomes: np.ndarray, pale: np.ndarray | None = None
                   ) -> dict[int, tuple[int, int, int]]:
    """Segment id -> the colour of its outcome; segments flagged in ``pale`` get a lighter shade."""
    pale = np.zeros(len(ids), bool) if pale is None else pale
    return {int(i): shade(OUTCOME_STYLE[int(o)][1], 0.6) if p else OUTCOME_STYLE[int(o)][1]
            for i, o, p in zip(ids, outcomes, pale)}


def draw_outcomes(ax, image, pan: PanopticSegmentation, ids: np.ndarray, outcomes: np.ndarray, iou: np.ndarray,
                  categories: CategorySet, title: str, alpha: float = 0.6, fontsize: float = 7,
                  iou_labels: bool = True) -> None:
    """One panel: segments filled with their outcome colour (stuff paler) over the image at
    opacity ``alpha``, IoU written on matches (unless ``iou_labels`` is false), and a ring in
    the outcome colour around each false positive or negative too small to see."""
    base = as_image(image, pan.shape) if image is not None else np.full((*pan.shape, 3), 255, np.uint8)
    # stuff in pale shades, so the things' outcomes stand out
    stuff = np.array([not categories.isthing(pan.segment(int(i)).category_id) for i in ids], bool)
    painted = paint(pan.id_map, outcome_colors(ids, outcomes, pale=stuff), default=(0, 0, 0))
    picture = blend(base, painted, pan.id_map > 0, alpha)
    picture[segment_boundaries(pan.id_map)] = 255
    ax.imshow(picture, interpolation="nearest")
    points = representative_points(pan.id_map, [int(i) for i in ids])
    areas = {seg_id: area for seg_id, (area, _) in segment_statistics(pan.id_map).items()}
    tiny = max(TINY_AREA, TINY_FRACTION * pan.id_map.size)
    for seg_id, outcome, value in zip(ids.tolist(), outcomes.tolist(), iou.tolist()):
        if seg_id in points and outcome == 0 and iou_labels:
            write_label(ax, points[seg_id], f"{value:.2f}", OUTCOME_STYLE[0][1], fontsize=fontsize)
        elif seg_id in points and outcome in (1, 2) and areas[seg_id] < tiny:
            # a few pixels hide under the white boundaries: ring the error so it can be found
            row, col = points[seg_id]
            ax.scatter([col], [row], s=90, facecolors="none", edgecolors=np.array(OUTCOME_STYLE[outcome][1]) / 255,
                       linewidths=1.8)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def show_matching(image, gt: PanopticSegmentation, pred: PanopticSegmentation, matching, categories: CategorySet,
                  title: str | None = None, panel_size: float = 4.0):
    """Ground truth and prediction side by side, coloured by TP / FP / FN / ignored.

    Args:
        image: (H, W, 3) image or None.
        gt, pred: the two segmentations that ``matching`` was computed from.
        matching: an ``ImageMatching`` of ``gt`` vs ``pred``.

    Returns:
        a Figure with two panels and a legend of the outcomes.
    """
    counts = matching.counts()
    fig, axes = new_figure(1, 2, panel_size, gt.shape[0] / gt.shape[1], legend_entries=4)
    draw_outcomes(axes[0, 0], image, gt, matching.gt.ids, matching.gt_outcome, matching.gt_iou(), categories,
                  f"ground truth: {counts['tp']} TP, {counts['fn']} FN")
    draw_outcomes(axes[0, 1], image, pred, matching.pred.ids, matching.pred_outcome, matching.pred_iou(), categories,
                  f"prediction: {counts['tp']} TP, {counts['fp']} FP")
    handles = [Patch(facecolor=np.array(color) / 255, label=name) for name, color in OUTCOME_STYLE.values()]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
