"""Panoptic Quality (and semantic mIoU): matching, PQ / SQ / RQ and their breakdowns, folder and in-memory evaluation.

Exactly the semantics of COCO's panopticapi ``pq_compute``, computed from one joint
histogram per image (:mod:`.overlap`), matched (:mod:`.matching`), accumulated
per category (:mod:`.pq`), and driven over files or memory (:mod:`.evaluate`). Names load
when first used: scoring in memory does not load the file readers or the worker pool.
"""
from .._lazy import lazy_names

_EXPORTS = {
    ".errors": ("ImageErrors", "error_analysis"),
    ".evaluate": ("WorkerDiedError", "evaluate_folders", "evaluate_pairs", "evaluate_thresholds", "pq_compute"),
    ".matching": ("MATCH_IOU", "ImageMatching", "Outcome", "bipartite_matching", "match_overlaps", "match_segments"),
    ".overlap": ("OverlapTable", "SegmentTable", "compute_overlaps", "overlaps_of"),
    ".pq": ("SIZE_RANGES", "PQAccumulator", "PQCounts", "quantile_size_ranges"),
    ".semantic": ("confusion_matrix", "mean_iou"),
    ".rescore": ("bipartite_match_ious", "rescore_matchings"),
    ".report": ("format_by_size", "format_comparison", "format_per_class", "format_pq_dagger", "format_table",
                "save_results"),
}
__all__ = [name for names in _EXPORTS.values() for name in names]
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
