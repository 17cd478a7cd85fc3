"""The datasets a run can train and evaluate on, opened by kind and folder.

* ``coco``: COCO panoptic as ``datasets/prepare_coco_panoptic.sh`` lays it out:
  ``ROOT/annotations/panoptic_<split>.json``, its PNG folder beside it, the images in
  ``ROOT/<split>/`` (:class:`~.coco.CocoPanoptic`; the categories are the JSON's: 133 in
  COCO 2017, ids sparse, things first in file order);
* ``cityscapes``: the output of cityscapesScripts' ``createPanopticImgs.py`` with
  ``--use-train-id`` (:class:`~.cityscapes.CityscapesPanoptic`; the 19 evaluated classes
  with their train ids as category ids, as ``datasets/prepare_cityscapes_panoptic.sh``
  writes it).

The built-in synthetic data needs no folder and is not opened here
(:func:`panopticlab.engine.recipes.train_data`).
"""
from __future__ import annotations

from pathlib import Path

from .categories import CategorySet
from .cityscapes import CityscapesPanoptic, cityscapes_panoptic_paths
from .coco import CocoPanoptic, coco_panoptic_paths

DATA_KINDS = ("coco", "cityscapes")
# what a missing annotation file is, and what makes it
_PREPARED_BY = {"coco": ("COCO panoptic {split!r} split", "datasets/prepare_coco_panoptic.sh lays one out"),
                "cityscapes": ("Cityscapes panoptic {split!r} split with train ids",
                               "datasets/prepare_cityscapes_panoptic.sh writes one")}

__all__ = ["DATA_KINDS", "open_split", "split_paths"]


def split_paths(kind: str, root: str | Path, split: str) -> dict[str, Path]:
    """The files :func:`open_split` reads for one split: ``json_path``, ``png_folder``, ``image_folder``.

    Raises:
        ValueError: an unknown kind (the message lists the known ones).
    """
    if kind not in DATA_KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(DATA_KINDS)} (or none: the built-in data)")
    if kind == "coco":
        return coco_panoptic_paths(root, split)
    return {**cityscapes_panoptic_paths(root, split, use_train_id=True),
            "image_folder": Path(root) / "leftImg8bit" / split}


def open_split(kind: str, root: str | Path, split: str) -> tuple[CocoPanoptic, CategorySet]:
    """``(images, categories)`` of one split of a dataset on disk.

    Raises:
        ValueError: an unknown kind (the message lists the known ones).
        FileNotFoundError: the split's annotation file is missing (the message names it
            and the script that prepares the dataset).
    """
    json_path = split_paths(kind, root, split)["json_path"]
    if not json_path.is_file():
        what, script = _PREPARED_BY[kind]
        raise FileNotFoundError(f"{json_path}: no {what.format(split=split)} there ({script})")
    source = CocoPanoptic(json_path) if kind == "coco" else CityscapesPanoptic(root, split, use_train_id=True)
    return source, source.categories
