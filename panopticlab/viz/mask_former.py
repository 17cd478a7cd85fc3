"""Figures of mask classification: what each query predicts, and the matching to the ground truth.

Drawn from arrays and from the inference's record (anything with the attributes of
:class:`~panopticlab.postprocess.mask_former.MaskFormerPanoptic`: ``scores``, ``category_ids``,
``outcomes``, ``owner``, ``query_segment``), so ``viz`` needs no model; the outcome names
are the post-processing's own.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..data.categories import CategorySet
from ..postprocess.mask_former import EMPTY, KEPT, LOW_SCORE, MERGED, NO_OBJECT, OVERLAP
from .colors import category_color
from .overlay import as_image, blend
from .panels import new_figure

__all__ = ["show_queries", "show_set_matching"]

PAIRS_PER_ROW = 8
# what became of a query, spelled for a title
_OUTCOME_WORDS = {NO_OBJECT: "no object", LOW_SCORE: "score too low", EMPTY: "won nothing",
                  OVERLAP: "lost to others", KEPT: "a segment", MERGED: "merged (stuff)"}


def show_queries(image, mask_probs, result, categories: CategorySet, max_queries: int = 12, ncols: int = 6,
                 panel_width: float = 1.8):
    """The queries that named a class, most confident first: each one's mask over the image.

    Args:
        image: uint8 (H, W, 3).
        mask_probs: float (Q, H, W), each query's mask probability (sigmoid of its logits).
        result: the inference's record (``scores``, ``category_ids``, ``outcomes``).
        categories: for the names and colours.
        max_queries: at most this many panels.

    Returns:
        The figure; each title reads ``q<index> <class> <score>`` and what became of it.

    Raises:
        ValueError: ``mask_probs`` not (Q, H, W) with Q the record's queries and (H, W) the image's.
    """
    mask_probs = np.asarray(mask_probs, dtype=np.float32)
    scores, outcomes = np.asarray(result.scores), list(result.outcomes)
    if mask_probs.ndim != 3 or len(mask_probs) != len(scores):
        raise ValueError(f"mask_probs {mask_probs.shape}: expected ({len(scores)}, H, W), one map per query")
    image = as_image(image, mask_probs.shape[1:])
    named = [q for q in np.argsort(-scores, kind="stable") if outcomes[q] != NO_OBJECT][:max_queries]
    rows = max(1, -(-len(named) // ncols))
    fig, axes = new_figure(rows, ncols, panel_width, image.shape[0] / image.shape[1])
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, query in zip(axes.flat, named):
        category = int(result.category_ids[query])
        color = np.asarray(category_color(categories, category), dtype=np.uint8)
        colored = np.broadcast_to(color, image.shape)
        # the mask probability as the blend's opacity: a confident mask covers, a vague one tints
        shown = image.astype(np.float32) * (1 - 0.8 * mask_probs[query, ..., None]) \
            + colored.astype(np.float32) * 0.8 * mask_probs[query, ..., None]
        ax.imshow(shown.astype(np.uint8))
        ax.set_title(f"q{query} {categories.name(category)} {scores[query]:.2f}\n{_OUTCOME_WORDS[outcomes[query]]}",
                     fontsize=8)
    if not named:
        axes.flat[0].set_title("no query named a class", fontsize=8)
    return fig


def show_set_matching(cost, rows: Sequence[int], cols: Sequence[int], target_names: Sequence[str],
                      image=None, target_masks=None, query_masks=None, max_queries: int | None = None):
    """The matching of Q queries to N ground-truth segments: the cost matrix and the chosen pairs.

    Args:
        cost: float (Q, N), the matching cost (lower is better).
        rows, cols: the assignment (query ``rows[i]`` to segment ``cols[i]``), as returned by
            :func:`~panopticlab.models.set_matching.hungarian_matching`.
        target_names: N labels for the columns.
        image, target_masks, query_masks: optional uint8 (H, W, 3), bool (N, H, W) and float
            (Q, H, W) mask probabilities: with them, a second row shows each matched pair, the
            segment outlined over the image and the query's mask blended in.
        max_queries: show only the first rows of the matrix (the matched queries are always shown).

    Returns:
        The figure.

    Raises:
        ValueError: inconsistent shapes, or an assignment outside the matrix.
    """
    cost = np.asarray(cost, dtype=np.float64)
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if cost.ndim != 2 or len(target_names) != cost.shape[1]:
        raise ValueError(f"cost {cost.shape} and {len(target_names)} target names: expected (Q, N) and N names")
    if len(rows) != len(cols) or (len(rows) and (rows.max() >= cost.shape[0] or cols.max() >= cost.shape[1])):
        raise ValueError(f"the assignment ({len(rows)} rows, {len(cols)} columns) does not fit a cost of {cost.shape}")
    shown = np.arange(cost.shape[0])
    if max_queries is not None and max_queries < cost.shape[0]:
        shown = np.union1d(np.arange(max_queries), rows)
    pairs = len(rows) if image is not None and target_masks is not None and query_masks is not None else 0
    ncols, pair_rows = min(pairs, PAIRS_PER_ROW) or 1, -(-pairs // PAIRS_PER_ROW)
    heights = [0.16 * len(shown) + 1.5] + [1.9] * pair_rows
    fig = plt.figure(figsize=(max(6.0, 1.5 * ncols), sum(heights)), layout="constrained")
    plt.close(fig)  # the caller owns it (as panels.new_figure)
    grid = fig.add_gridspec(1 + pair_rows, ncols, height_ratios=heights)
    matrix = fig.add_subplot(grid[0, :])
    # large segments (stuff) cost far more than small ones for every query: the colours stop
    # at the costs' upper quartile so that the differences among the small ones stay visible
    ceiling = float(np.percentile(cost[shown], 75))
    picture = matrix.imshow(cost[shown], cmap="viridis_r", aspect="auto", vmax=max(ceiling, float(cost.min()) + 1e-6))
    fig.colorbar(picture, ax=matrix, shrink=0.8, label="cost (lower: a better pair;\ncolours stop at the upper quartile)")
    row_of = {int(q): k for k, q in enumerate(shown)}
    matrix.scatter(cols, [row_of[int(q)] for q in rows], s=60, facecolors="none", edgecolors="red", linewidths=1.5,
                   label="matched pair")
    matrix.set_xticks(range(cost.shape[1]), target_names, rotation=60, fontsize=7)
    matrix.set_yticks(range(len(shown)), [f"q{q}" for q in shown], fontsize=6)
    matrix.set_xlabel("ground-truth segment")
    matrix.set_ylabel("query")
    matrix.legend(loc="upper right", fontsize=7)
    if pairs:
        image = as_image(image)
        target_masks, query_masks = np.asarray(target_masks, dtype=bool), np.asarray(query_masks, dtype=np.float32)
        for k, (query, target) in enumerate(zip(rows, cols)):
            ax = fig.add_subplot(grid[1 + k // PAIRS_PER_ROW, k % PAIRS_PER_ROW])
            tinted = blend(image, np.full_like(image, (255, 64, 64)), query_masks[query] >= 0.5, 0.6)
            ax.imshow(tinted)
            ax.contour(target_masks[target], levels=[0.5], colors="white", linewidths=1)
            ax.set_title(f"q{query} -> {target_names[target]}\ncost {cost[query, target]:.2f}", fontsize=7)
            ax.set_axis_off()
    return fig
