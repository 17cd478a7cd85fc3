"""Panoptic data: categories, the one panoptic representation, file formats, the built-in dataset."""
from .categories import Category, CategorySet
from .errors import PanopticFormatError, PanopticWarning
from .panoptic import (
    LABEL_DIVISOR,
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


def __getattr__(name: str):
    # The built-in dataset draws with scipy, slow to import: load it when first asked for,
    # so that reading and scoring files (the evaluator, the command line) start at once.
    if name == "SYNTHETIC_CATEGORIES":
        from .synthetic import SYNTHETIC_CATEGORIES

        return SYNTHETIC_CATEGORIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
