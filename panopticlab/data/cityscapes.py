"""Cityscapes panoptic: the label table, the instanceIds conversion, and the converted files.

Cityscapes annotates each image with a ``*_gtFine_instanceIds.png`` whose value is

* a *label id* (< 1000) for stuff, and for a region of a thing class annotated as a
  group rather than as individual objects (a crowd);
* ``label_id * 1000 + k`` (k = 0, 1, ...) for the k-th individual object of a thing class.

cityscapesScripts' ``createPanopticImgs.py`` turns these into COCO panoptic files
(``gtFine/cityscapes_panoptic_<split>[_trainId].json`` plus a PNG folder of the same
name). :func:`panoptic_from_instance_ids` does the same conversion in memory, and
:class:`CityscapesPanoptic` reads the converted files with the checks of
:mod:`panopticlab.data.coco`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .categories import Category, CategorySet
from .coco import CocoPanoptic
from .errors import PanopticFormatError
from .panoptic import LABEL_DIVISOR, VOID, PanopticSegmentation

PathLike = str | os.PathLike

# The 19 classes Cityscapes evaluates, from cityscapesScripts' helpers/labels.py:
# (name, label id, train id, isthing, colour). Every other label id in 0..33 is
# "ignoreInEval" and becomes void.
CITYSCAPES_LABELS: tuple[tuple[str, int, int, bool, tuple[int, int, int]], ...] = (
    ("road", 7, 0, False, (128, 64, 128)),
    ("sidewalk", 8, 1, False, (244, 35, 232)),
    ("building", 11, 2, False, (70, 70, 70)),
    ("wall", 12, 3, False, (102, 102, 156)),
    ("fence", 13, 4, False, (190, 153, 153)),
    ("pole", 17, 5, False, (153, 153, 153)),
    ("traffic light", 19, 6, False, (250, 170, 30)),
    ("traffic sign", 20, 7, False, (220, 220, 0)),
    ("vegetation", 21, 8, False, (107, 142, 35)),
    ("terrain", 22, 9, False, (152, 251, 152)),
    ("sky", 23, 10, False, (70, 130, 180)),
    ("person", 24, 11, True, (220, 20, 60)),
    ("rider", 25, 12, True, (255, 0, 0)),
    ("car", 26, 13, True, (0, 0, 142)),
    ("truck", 27, 14, True, (0, 0, 70)),
    ("bus", 28, 15, True, (0, 60, 100)),
    ("train", 31, 16, True, (0, 80, 100)),
    ("motorcycle", 32, 17, True, (0, 0, 230)),
    ("bicycle", 33, 18, True, (119, 11, 32)),
)
NUM_LABEL_IDS = 34  # label ids 0..33 occur in instanceIds PNGs
IGNORE_TRAIN_ID = 255

CITYSCAPES_CATEGORIES = CategorySet(Category(label_id, name, isthing, color)
                                    for name, label_id, _, isthing, color in CITYSCAPES_LABELS)
CITYSCAPES_TRAIN_ID_CATEGORIES = CategorySet(Category(train_id, name, isthing, color)
                                             for name, _, train_id, isthing, color in CITYSCAPES_LABELS)

# label_id_to_train_id[label_id] -> train id 0..18, or 255 for classes that are not evaluated.
label_id_to_train_id = np.full(NUM_LABEL_IDS, IGNORE_TRAIN_ID, dtype=np.int64)
label_id_to_train_id[[label_id for _, label_id, _, _, _ in CITYSCAPES_LABELS]] = \
    [train_id for _, _, train_id, _, _ in CITYSCAPES_LABELS]
label_id_to_train_id.flags.writeable = False
TRAIN_ID_TO_LABEL_ID = {train_id: label_id for _, label_id, train_id, _, _ in CITYSCAPES_LABELS}


def predictions_with_label_ids(json_path: PathLike) -> Path:
    """Rewrite a predictions JSON of the 19 train-id categories with Cityscapes label ids, in place.

    The benchmark and cityscapesScripts' ``evalPanopticSemanticLabeling.py`` (by default
    against ``gtFine/cityscapes_panoptic_val.json``) expect label ids (``person`` is 24,
    not 11). Only the JSON changes: the PNGs hold segment ids, not categories. Written
    atomically; a file with other categories is refused and left as it was.
    """
    from .atomic import write_json

    json_path = Path(json_path)
    predictions = json.loads(json_path.read_text())
    if CategorySet.from_coco(predictions.get("categories", [])).to_coco() != CITYSCAPES_TRAIN_ID_CATEGORIES.to_coco():
        raise PanopticFormatError(f"{json_path}: its categories are not Cityscapes' 19 train ids; "
                                  f"only predictions made with train ids are converted")
    for annotation in predictions["annotations"]:
        for segment in annotation["segments_info"]:
            segment["category_id"] = TRAIN_ID_TO_LABEL_ID[segment["category_id"]]
    predictions["categories"] = CITYSCAPES_CATEGORIES.to_coco()
    return write_json(json_path, predictions)


def panoptic_from_instance_ids(instance_ids: np.ndarray, use_train_id: bool = False,
                               source: str = "instanceIds map") -> PanopticSegmentation:
    """Convert a Cityscapes ``*_gtFine_instanceIds.png`` array, as ``createPanopticImgs.py`` does.

    Each distinct value becomes one segment whose id *is* that value (in both modes);
    values below 1000 of a thing class become crowd segments (``iscrowd=1``); classes
    that are not evaluated (unlabeled, ego vehicle, parking, caravan, ...) become void.

    Args:
        instance_ids: (H, W) non-negative integer array, as read from the PNG.
        use_train_id: category ids are train ids 0..18 (``CITYSCAPES_TRAIN_ID_CATEGORIES``,
            the script's ``--use-train-id``) instead of label ids 7..33
            (``CITYSCAPES_CATEGORIES``).
        source: names the input in error messages (e.g. the file).

    Returns:
        the segmentation, (H, W) int32 id map.

    Raises:
        PanopticFormatError: naming ``source``, for a map that is not 2-D integer, or a
            value that decodes to no Cityscapes label id.
    """
    instance_ids = np.asarray(instance_ids)
    if instance_ids.ndim != 2 or not np.issubdtype(instance_ids.dtype, np.integer):
        raise PanopticFormatError(f"{source}: expected a 2-D integer array, got shape {instance_ids.shape} "
                                  f"and dtype {instance_ids.dtype}")
    values, inverse = np.unique(instance_ids, return_inverse=True)
    is_group = values < LABEL_DIVISOR
    label_ids = np.where(is_group, values, values // LABEL_DIVISOR)
    bad = (label_ids < 0) | (label_ids >= NUM_LABEL_IDS)
    if bad.any():
        raise PanopticFormatError(f"{source}: value {int(values[bad][0])} decodes to no Cityscapes label id "
                                  f"(label ids are 0..{NUM_LABEL_IDS - 1}, instances label_id * {LABEL_DIVISOR} + k)")
    train_ids = label_id_to_train_id[label_ids]
    evaluated = train_ids != IGNORE_TRAIN_ID
    category_ids = train_ids if use_train_id else label_ids
    categories = CITYSCAPES_TRAIN_ID_CATEGORIES if use_train_id else CITYSCAPES_CATEGORIES

    # One segment per distinct value, its id the value itself; not-evaluated values -> void.
    segment_ids = np.where(evaluated, values, VOID).astype(np.int32)
    id_map = segment_ids[inverse.reshape(instance_ids.shape)]
    crowd = is_group & np.isin(category_ids, categories.thing_ids)
    kept = values[evaluated].tolist()
    category_of = dict(zip(kept, category_ids[evaluated].tolist()))
    iscrowd = dict(zip(kept, crowd[evaluated].astype(int).tolist()))
    return PanopticSegmentation.from_id_map(id_map, category_of, iscrowd, source=source)


def cityscapes_panoptic_paths(root: PathLike, split: str, use_train_id: bool = False) -> dict[str, Path]:
    """Where ``createPanopticImgs.py`` puts a split by default: ``json_path`` and ``png_folder``."""
    name = f"cityscapes_panoptic_{split}" + ("_trainId" if use_train_id else "")
    gt_folder = Path(root) / "gtFine"
    return {"json_path": gt_folder / f"{name}.json", "png_folder": gt_folder / name}


class CityscapesPanoptic(CocoPanoptic):
    """A Cityscapes split converted by ``createPanopticImgs.py``, as an image source of ``Sample``.

    Reads ``ROOT/gtFine/cityscapes_panoptic_<split>[_trainId].json`` and its PNG folder
    with :class:`~panopticlab.data.coco.CocoPanoptic`'s checks, and the images from
    ``ROOT/leftImg8bit/<split>/<city>/<image_id>_leftImg8bit.png``. Image ids are the
    strings ``"<city>_<seq>_<frame>"``, and ``Sample.file_name`` is the image's real file
    name; categories are the JSON's (label ids, or train ids with ``use_train_id``).

    Args:
        root: the Cityscapes root, holding ``gtFine/`` and ``leftImg8bit/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        use_train_id: read the ``_trainId`` conversion.
    """

    def __init__(self, root: PathLike, split: str = "val", use_train_id: bool = False):
        self.root = Path(root)
        self.split = split
        super().__init__(**cityscapes_panoptic_paths(root, split, use_train_id),
                         image_folder=self.root / "leftImg8bit" / split)

    def image_path(self, index: int) -> Path:
        # Built from the image id, as detectron2 does: the script's JSON names the images
        # "<image_id>_gtFine_leftImg8bit.png", a file that does not exist.
        image_id = str(self.images[self._check_index(index)]["id"])
        city = image_id.split("_")[0]
        return self.image_folder / city / f"{image_id}_leftImg8bit.png"


__all__ = [
    "CITYSCAPES_CATEGORIES", "CITYSCAPES_LABELS", "CITYSCAPES_TRAIN_ID_CATEGORIES", "CityscapesPanoptic",
    "TRAIN_ID_TO_LABEL_ID", "cityscapes_panoptic_paths", "label_id_to_train_id", "panoptic_from_instance_ids",
    "predictions_with_label_ids",
]
