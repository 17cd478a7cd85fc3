"""Diagrams drawn from a model's modules: Panoptic FPN's semantic branch.

:func:`draw_semantic_fpn` reads the branch it is given (``level_strides``,
``scale_heads``, ``predictor``, as :class:`panopticlab.models.semantic_fpn.SemanticFPNHead`
has them) and draws one row per pyramid level: its stages ([conv, GroupNorm, ReLU], then
a 2x upsampling when the level is coarser than stride 4), the sum, the 1 x 1 classifier
and the final 4x upsampling. A branch with other stages draws differently: the figure
is the module, not a picture of the paper.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch
from torch import nn

__all__ = ["semantic_fpn_stages", "draw_semantic_fpn"]

CONV_COLOR = "#9ecae1"
UP_COLOR = "#fdd0a2"
SUM_COLOR = "#c7e9c0"


def semantic_fpn_stages(head) -> dict[str, list[str]]:
    """Level name -> the labels of its layers in order (``"conv 3x3, 128"``, ``"GN + ReLU"``, ``"up 2x"``)."""
    stages = {}
    for name, sequence in head.scale_heads.items():
        labels = []
        for module in sequence.modules():
            if isinstance(module, nn.Conv2d):
                labels.append(f"conv {module.kernel_size[0]}x{module.kernel_size[1]}, {module.out_channels}")
            elif isinstance(module, nn.GroupNorm):
                labels[-1] += f"\nGN({module.num_groups}) + ReLU"
            elif isinstance(module, nn.Upsample):
                labels.append(f"up {int(module.scale_factor)}x")
        stages[name] = labels
    return stages


def _box(ax, x, y, text, color, width=1.5, height=0.7):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                                facecolor=color, edgecolor="0.3"))
    ax.text(x, y, text, ha="center", va="center", fontsize=7)


def draw_semantic_fpn(head, ax=None, num_classes_label: str | None = None):
    """The branch as a diagram: one row per level, coarsest on top, then the sum and the classifier.

    Args:
        head: the semantic branch (``level_strides``, ``scale_heads``, ``predictor``).
        num_classes_label: text for the classifier's output (default: its channel count).

    Returns:
        the Figure.
    """
    stages = semantic_fpn_stages(head)
    levels = list(reversed(list(stages)))  # coarsest (P5) on top
    longest = max(len(labels) for labels in stages.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(2.0 + 1.8 * (longest + 4), 0.9 * len(levels) + 1.2))
    step = 1.8
    sum_x = step * (longest + 1.5)
    for row, name in enumerate(levels):
        y = len(levels) - 1 - row
        stride = head.level_strides[name]
        _box(ax, 0, y, f"{name.upper()}\nstride {stride}", "0.9", width=1.3)
        x = 0
        for label in stages[name]:
            x += step
            _box(ax, x, y, label, UP_COLOR if label.startswith("up") else CONV_COLOR)
            ax.annotate("", (x - 0.78, y), (x - step + 0.78 if x > step else 0.68, y),
                        arrowprops=dict(arrowstyle="->", color="0.4"))
        ax.annotate("", (sum_x - 0.35, (len(levels) - 1) / 2), (x + 0.78, y),
                    arrowprops=dict(arrowstyle="->", color="0.6", linewidth=0.8))
    middle = (len(levels) - 1) / 2
    _box(ax, sum_x, middle, "sum\n(stride 4)", SUM_COLOR, width=0.7)
    classes = num_classes_label or str(head.predictor.out_channels)
    _box(ax, sum_x + step, middle, f"conv 1x1\n-> {classes}", CONV_COLOR)
    _box(ax, sum_x + 2 * step, middle, "up 4x\n(stride 1)", UP_COLOR)
    for start, end in ((sum_x + 0.4, sum_x + step - 0.78), (sum_x + step + 0.78, sum_x + 2 * step - 0.78)):
        ax.annotate("", (end, middle), (start, middle), arrowprops=dict(arrowstyle="->", color="0.4"))
    ax.set_xlim(-1, sum_x + 2 * step + 1)
    ax.set_ylim(-0.8, len(levels) - 0.2)
    ax.set_axis_off()
    ax.set_title("semantic branch: every level to stride 4, summed", fontsize=9)
    return ax.figure
