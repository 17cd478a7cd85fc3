"""Panoptic data: categories, the one panoptic representation, file formats, the built-in dataset."""
from .categories import Category, CategorySet
from .errors import PanopticFormatError
from .panoptic import (
    VOID,
    PanopticSegmentation,
    Segment,
    from_label_divisor,
    from_semantic_and_instances,
    id_to_rgb,
    rgb_to_id,
    segment_statistics,
    to_label_divisor,
    to_semantic_and_instances,
)
from .sample import Sample
from .synthetic import SYNTHETIC_CATEGORIES
