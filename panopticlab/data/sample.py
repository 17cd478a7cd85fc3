"""One annotated image, as every image source in the package hands it out."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .panoptic import PanopticSegmentation


@dataclass
class Sample:
    """An image with its panoptic annotation.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        panoptic: the annotation, same (H, W).
        image_id: COCO ``image_id`` (an int, or a string such as Cityscapes' ``city_seq_frame``).
        file_name: image file name without folder, e.g. ``000000000123.jpg``.
    """

    image: np.ndarray
    panoptic: PanopticSegmentation
    image_id: int | str
    file_name: str
