"""Post-processing: pure functions from network outputs (arrays) to panoptic segmentations."""
from .centers import find_instance_centers, square_max_pool
from .deeplab import (
    COCO,
    CITYSCAPES,
    DeepLabPanoptic,
    merge_semantic_and_instances,
    panoptic_deeplab_postprocess,
)
from .deeplab_rescore import DeepLabOutputs, Rescored, center_setting_grid, repostprocess, rescore_deeplab
from .ablations import ABLATIONS, ablation_merge, connected_component_instances
from .heuristic import HeuristicMerge, MergeConfig, MergeSteps, heuristic_merge, scaled_stuff_area
from .upsnet import UPSNetHeadConfig, UPSNetPanoptic, select_detections, unified_panoptic
from .grouping import (
    group_pixels,
    nearest_center,
    nearest_center_grid,
    nearest_center_kdtree,
    nearest_center_scan,
    pixel_votes,
    vote_map,
)

__all__ = [
    "CITYSCAPES", "COCO", "DeepLabPanoptic", "find_instance_centers", "group_pixels",
    "merge_semantic_and_instances", "nearest_center", "nearest_center_grid", "nearest_center_kdtree", "nearest_center_scan",
    "panoptic_deeplab_postprocess", "pixel_votes", "square_max_pool", "vote_map",
    "HeuristicMerge", "MergeConfig", "MergeSteps", "heuristic_merge", "scaled_stuff_area",
    "ABLATIONS", "ablation_merge", "connected_component_instances",
    "UPSNetHeadConfig", "UPSNetPanoptic", "select_detections", "unified_panoptic",
    "DeepLabOutputs", "Rescored", "center_setting_grid", "repostprocess", "rescore_deeplab",
]
