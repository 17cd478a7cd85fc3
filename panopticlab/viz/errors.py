"""Several models' mistakes on the same images, side by side (chapter 7).

Each model's panel shows its prediction coloured by outcome (true positive, false
positive, ignored, as :mod:`.matching`), the outlines of the ground-truth segments it
missed (false negatives), and the two structural mistakes of
:func:`panopticlab.metrics.error_analysis`: merging predictions outlined in magenta, the
ground truth of split objects outlined in cyan. Drawn from matchings and error lists
the caller computed, so ``viz`` needs no import of ``metrics``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.patches import Patch

from ..data.categories import CategorySet
from ..data.panoptic import PanopticSegmentation
from .colors import shade
from .matching import OUTCOME_STYLE, draw_outcomes
from .overlay import draw_panoptic, segment_boundaries
from .panels import new_figure

MERGE_COLOR = (220, 0, 220)
SPLIT_COLOR = (0, 200, 230)
MISSED_COLOR = OUTCOME_STYLE[2][1]


def outline(ax, id_map: np.ndarray, ids, color) -> None:
    """Paint the boundaries of the segments ``ids`` of ``id_map`` on ``ax`` in ``color``."""
    ids = list(ids)
    if not ids:
        return
    mask = np.isin(id_map, ids)
    edges = segment_boundaries(np.where(mask, id_map, 0)) & mask
    layer = np.zeros((*id_map.shape, 4))
    layer[edges] = (*(np.array(color) / 255), 1.0)
    ax.imshow(layer, interpolation="nearest")


def show_errors_side_by_side(image, gt: PanopticSegmentation, predictions: Mapping[str, PanopticSegmentation],
                             matchings: Mapping, errors: Mapping, categories: CategorySet, panel_size: float = 3.2):
    """One row: the ground truth, then each model's prediction with its mistakes drawn.

    Args:
        image: (H, W, 3) image or None.
        predictions: model label -> its prediction of this image.
        matchings: model label -> its ``ImageMatching`` against ``gt``.
        errors: model label -> its ``ImageErrors`` (``false_negatives``, ``merges``, ``splits``).

    Returns:
        the Figure (1 + len(predictions) panels and a legend).
    """
    height, width = gt.shape
    figure, axes = new_figure(1, 1 + len(predictions), panel_size, height / width, legend_entries=8)
    axes = axes.ravel()
    draw_panoptic(axes[0], image, gt, categories, ids="name", fontsize=6, title="ground truth")
    for ax, (label, pred) in zip(axes[1:], predictions.items()):
        matching, found = matchings[label], errors[label]
        # nearly opaque, so a fill reads as its legend colour whatever the image below; no IoU
        # labels: at this panel size they are unreadable, and the figure is about mistakes
        draw_outcomes(ax, image, pred, matching.pred.ids, matching.pred_outcome, matching.pred_iou(), categories,
                      title="", alpha=0.85, iou_labels=False)
        outline(ax, gt.id_map, found.false_negatives, MISSED_COLOR)
        outline(ax, pred.id_map, [p for p, _ in found.merges], MERGE_COLOR)
        outline(ax, gt.id_map, [g for g, _ in found.splits], SPLIT_COLOR)
        counts = found.counts()
        ax.set_title(f"{label}\nFP {counts['fp']}  FN {counts['fn']}  merges {counts['merges']}  "
                     f"splits {counts['splits']}", fontsize=8)
    legend = [Patch(color=np.array(OUTCOME_STYLE[k][1]) / 255, label=f"thing: {OUTCOME_STYLE[k][0]}") for k in (0, 1)]
    legend += [Patch(color=np.array(shade(OUTCOME_STYLE[k][1], 0.6)) / 255, label=f"stuff: {OUTCOME_STYLE[k][0]}")
               for k in (0, 1)]
    legend += [Patch(color=np.array(OUTCOME_STYLE[3][1]) / 255, label=OUTCOME_STYLE[3][0])]
    legend += [Patch(facecolor="none", edgecolor=np.array(c) / 255, linewidth=2, label=text) for c, text in
               ((MISSED_COLOR, "missed object (FN), outlined"), (MERGE_COLOR, "merging prediction"),
                (SPLIT_COLOR, "split object"))]
    figure.legend(handles=legend, loc="outside lower center", ncol=4, fontsize=7, frameon=False)
    return figure
