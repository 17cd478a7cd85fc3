"""Panoptic Quality (and semantic mIoU): matching, PQ / SQ / RQ and their breakdowns, folder and in-memory evaluation.

Exactly the semantics of COCO's panopticapi ``pq_compute``, computed from one joint
histogram per image (:mod:`.overlap`), matched (:mod:`.matching`), accumulated
per category (:mod:`.pq`), and driven over files or memory (:mod:`.evaluate`).
"""
from .errors import ImageErrors, error_analysis
from .evaluate import WorkerDiedError, evaluate_folders, evaluate_pairs, evaluate_thresholds, pq_compute
from .matching import MATCH_IOU, ImageMatching, Outcome, bipartite_matching, match_overlaps, match_segments
from .overlap import OverlapTable, SegmentTable, compute_overlaps, overlaps_of
from .pq import SIZE_RANGES, PQAccumulator, PQCounts, quantile_size_ranges
from .semantic import confusion_matrix, mean_iou
from .rescore import bipartite_match_ious, rescore_matchings
from .report import format_by_size, format_comparison, format_per_class, format_pq_dagger, format_table, save_results

__all__ = [
    "MATCH_IOU", "SIZE_RANGES", "ImageMatching", "OverlapTable", "Outcome", "PQAccumulator", "PQCounts",
    "SegmentTable", "bipartite_matching", "compute_overlaps", "confusion_matrix", "mean_iou", "evaluate_folders", "evaluate_pairs",
    "evaluate_thresholds", "WorkerDiedError",
    "format_by_size", "format_comparison", "format_per_class", "format_pq_dagger", "format_table", "match_overlaps",
    "match_segments", "overlaps_of", "pq_compute", "quantile_size_ranges", "save_results",
    "bipartite_match_ious", "rescore_matchings", "ImageErrors", "error_analysis",
]
