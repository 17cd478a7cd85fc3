"""Small measurements on panoptic annotations that chapters report and plot."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .categories import CategorySet
from .panoptic import PanopticSegmentation

# COCO's object size classes, by area in pixels
SMALL_AREA = 32**2
LARGE_AREA = 96**2


@dataclass(frozen=True)
class SemanticCount:
    """How many instances a category has vs how many regions its semantic mask splits into."""

    category_id: int
    instances: int
    regions: int

    @property
    def lost(self) -> int:
        """Instances that connected components of a perfect semantic map cannot recover."""
        return max(self.instances - self.regions, 0)


def semantic_region_counts(pan: PanopticSegmentation, categories: CategorySet) -> list[SemanticCount]:
    """Per thing category: non-crowd instances vs 4-connected regions of its semantic mask.

    Touching instances of one class fuse into one region, which is why semantic
    segmentation alone cannot count things. Crowd pixels belong to the mask (a semantic
    network labels them with the category), but a region holding only crowd pixels is
    not counted: it recovers no instance, so ``lost`` counts the same instances as a count
    that leaves crowds out.
    """
    semantic = pan.category_map()
    crowd = np.isin(pan.id_map, [s.id for s in pan.segments if s.iscrowd])
    counts = []
    for category_id in categories.thing_ids:
        instances = sum(1 for s in pan.segments if s.category_id == category_id and not s.iscrowd)
        labels, _ = ndimage.label(semantic == category_id)
        regions = np.unique(labels[(labels > 0) & ~crowd]).size  # regions with a non-crowd pixel
        counts.append(SemanticCount(category_id, instances, int(regions)))
    return counts


def mask_overlap(masks: np.ndarray) -> int:
    """Pixels claimed by more than one of the (N, H, W) boolean masks."""
    masks = np.asarray(masks, dtype=bool)
    return int((masks.sum(axis=0) > 1).sum()) if len(masks) else 0


def size_class(area: int | np.ndarray) -> np.ndarray:
    """COCO size class of an area: 0 small (< 32^2), 1 medium, 2 large (>= 96^2)."""
    return np.digitize(area, [SMALL_AREA, LARGE_AREA])


def segment_areas(pans, categories: CategorySet) -> dict[str, np.ndarray]:
    """Areas of all segments of many images, split into ``things``, ``stuff`` and ``crowd``."""
    things, stuff, crowd = [], [], []
    for pan in pans:
        for s in pan.segments:
            (crowd if s.iscrowd else things if categories.isthing(s.category_id) else stuff).append(s.area)
    return {"things": np.array(things, int), "stuff": np.array(stuff, int), "crowd": np.array(crowd, int)}
