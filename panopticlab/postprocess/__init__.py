"""Post-processing: pure functions from network outputs (arrays) to panoptic segmentations.

Names load when first used: a model that merges with the heuristic does not load
Panoptic-DeepLab's grouping.
"""
from .._lazy import lazy_names

_EXPORTS = {
    ".centers": ("find_instance_centers", "square_max_pool"),
    ".deeplab": ("CITYSCAPES", "COCO", "DeepLabPanoptic", "merge_semantic_and_instances",
                 "panoptic_deeplab_postprocess"),
    ".deeplab_outputs": ("DeepLabOutputs", "repostprocess"),
    ".ablations": ("ABLATIONS", "ablation_merge", "connected_component_instances"),
    ".heuristic": ("HeuristicMerge", "MergeConfig", "MergeSteps", "heuristic_merge", "scaled_stuff_area"),
    ".upsnet": ("UPSNetHeadConfig", "UPSNetPanoptic", "panoptic_from_logits", "select_detections"),
    ".grouping": ("group_pixels", "nearest_center", "pixel_votes", "vote_map"),
    ".mask_former": ("MaskFormerPanoptic", "MaskInferenceConfig", "mask_former_panoptic", "semantic_inference"),
}
__all__ = [name for names in _EXPORTS.values() for name in names]
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
