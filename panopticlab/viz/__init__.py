"""Drawing panoptic segmentations: colours, overlays and the chapters' ready-made figures.

* :mod:`.colors` - category colours, per-instance shades, colourised id and semantic maps, legends;
* :mod:`.overlay` - colours blended onto an image, segment boundaries, label positions;
* :mod:`.panels` - one-call figures: a labelled overlay, the semantic / instance /
  panoptic comparison, a dataset grid, overlapping instance masks;
* :mod:`.matching` - true / false positives and false negatives of a PQ matching;
* :mod:`.merge` - the networks' outputs and the heuristic merge, step by step; merge sweeps;
* :mod:`.curves` - training curves from an engine ``History``;
* :mod:`.architecture` - diagrams drawn from a model's modules (Panoptic FPN's semantic branch, UPSNet,
  Panoptic-DeepLab) and the measured cost of three decoder designs;
* :mod:`.deeplab` - Panoptic-DeepLab: centre heatmap, offset arrows, votes, grouping, centre-setting grids.
* :mod:`.upsnet` - UPSNet: the panoptic head's logits channel by channel, a deformable layer's taps.
* :mod:`.errors` - several models' mistakes on one image: misses, false alarms, merges, splits.
* :mod:`.mask_former` - mask classification: each query's class and mask, the matching's cost matrix.
* :mod:`.comparison` - models side by side from their run records: scores, times, loss curves.
"""
from .colors import (
    category_color,
    colorize,
    colorize_instances,
    colorize_semantic,
    instance_colors,
    legend_handles,
    paint,
    segment_colors,
    shade,
)
from .overlay import (
    draw_panoptic,
    overlay,
    overlay_masks,
    representative_points,
    segment_boundaries,
    segment_label,
)
from .architecture import (
    draw_decoder_designs,
    draw_panoptic_deeplab,
    draw_semantic_fpn,
    draw_upsnet,
)
from .curves import plot_history
from .matching import show_matching
from .merge import plot_sweeps, show_merge_steps, show_network_outputs
from .panels import show_grid, show_masks, show_panoptic, show_side_by_side

__all__ = [
    "category_color", "colorize", "colorize_instances", "colorize_semantic", "instance_colors", "legend_handles",
    "paint", "segment_colors", "shade",
    "draw_panoptic", "overlay", "overlay_masks", "representative_points", "segment_boundaries", "segment_label",
    "show_grid", "show_masks", "show_panoptic", "show_side_by_side", "plot_history", "show_matching",
    "show_network_outputs", "show_merge_steps", "plot_sweeps", "draw_semantic_fpn", "draw_upsnet",
    "draw_panoptic_deeplab", "draw_decoder_designs",
]
from .deeplab import (
    draw_centers,
    draw_offsets,
    outvoted_pixels,
    plot_center_grid,
    show_deeplab_outputs,
    show_grouping_steps,
    show_rescored,
    show_top_down_vs_bottom_up,
)

__all__ += ["draw_centers", "draw_offsets", "outvoted_pixels", "plot_center_grid", "show_deeplab_outputs", "show_grouping_steps",
            "show_rescored", "show_top_down_vs_bottom_up"]
from .upsnet import (
    panoptic_channels,
    show_deformable_offsets,
    show_panoptic_logits,
    tap_positions,
)

__all__ += ["panoptic_channels", "show_deformable_offsets", "show_panoptic_logits", "tap_positions"]
from .mask_former import show_queries, show_set_matching

__all__ += ["show_queries", "show_set_matching"]
from .comparison import plot_comparison, plot_loss_curves
from .errors import show_errors_side_by_side

__all__ += ["plot_comparison", "plot_loss_curves", "show_errors_side_by_side"]
from .review import ResultFiles, review_image, show_prediction, unmatched_kinds

__all__ += ["ResultFiles", "review_image", "show_prediction", "unmatched_kinds"]
