"""Reading a COCO panoptic result set for evaluation: the JSON pair and the PNGs.

The evaluator reads the same inputs as panopticapi's ``pq_compute``: a ground-truth
JSON (``annotations`` and ``categories``), a prediction JSON (``annotations``) and a
folder of RGB PNGs for each (default: the JSON path without ``.json``). Reading is
kept lean because it dominates the evaluation time: PNGs are decoded by
:func:`~panopticlab.data.png.decode_panoptic_png` (Wuffs when installed,
else Pillow) straight into 32-bit ids, and segment areas come from the
joint histogram (:mod:`~panopticlab.metrics.overlap`), which also checks each PNG
against its JSON record. ``area`` and ``bbox`` fields of the JSON are not read.
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.categories import CategorySet
from ..data.coco import read_json, read_panoptic_png
from ..data.errors import PanopticFormatError, PanopticWarning
from ..data.fields import coco_file_name, coco_image_id
from ..data.png import png_decoder
from .overlap import SegmentTable

__all__ = ["ImageJob", "load_result_set", "png_decoder", "read_id_png", "read_json", "reuse_freed_memory"]

PathLike = str | os.PathLike


def read_id_png(path: PathLike) -> np.ndarray:
    """Decode a COCO panoptic PNG into segment ids (:func:`~panopticlab.data.coco.read_panoptic_png`).

    Returns:
        (H, W) uint32 ids ``R + 256 G + 256^2 B``; 0 is void. Unsigned, so that
        :func:`~panopticlab.metrics.overlap.compute_overlaps` needs no scan for negative ids.

    Raises:
        PanopticFormatError: naming the file, when it is missing, not a PNG, not 8-bit RGB
            (grey, palette, alpha and 16-bit files are refused rather than guessed at), or
            truncated or corrupt.
    """
    return read_panoptic_png(path).view(np.uint32)


@functools.cache
def reuse_freed_memory() -> None:
    """Make the C allocator keep freed arrays of up to 16 MiB for reuse (once per process).

    Evaluating an image allocates and frees a dozen arrays of 0.5 to 2.5 MB (decoded
    PNGs, dense indices, histogram keys). glibc's malloc (Linux) returns such blocks to
    the operating system as soon as they are freed, so every image page-faults all its
    memory in again: a third of the evaluation time at 640 x 480 (``benchmarks/pq_speed.py``).
    Its thresholds adapt to the largest block freed so far, up to 32 MiB: freeing one
    16 MiB block raises them for the rest of the process and the workers it forks,
    which then keep up to 32 MiB of freed memory for reuse. Elsewhere this is one
    harmless allocation.
    """
    block = np.empty(16 << 20, np.uint8)  # never touched: costs one mmap and one munmap
    del block


@dataclass(frozen=True)
class ImageJob:
    """One image to evaluate: where its two PNGs are and what their JSON records list.

    ``gt_json`` and ``pred_json``, the files the records come from, only name them in errors.
    """

    image_id: int | str
    gt_png: Path
    gt_segments: list
    pred_png: Path
    pred_segments: list
    gt_json: Path | None = None
    pred_json: Path | None = None

    @property
    def source(self) -> str:
        """How errors name this image."""
        return f"image {self.image_id!r} (ground truth {self.gt_png}, prediction {self.pred_png})"

    def _json_source(self, side: str, json_path: Path | None) -> str:
        return f"{self.source}, {side} JSON" + (f" {json_path}" if json_path is not None else "")

    def read(self) -> tuple[np.ndarray, SegmentTable, np.ndarray, SegmentTable]:
        """Both id maps and segment tables; errors name the image and the file."""
        reuse_freed_memory()
        gt_map = read_id_png(self.gt_png)
        pred_map = read_id_png(self.pred_png)
        gt = SegmentTable.from_records(self.gt_segments, self._json_source("ground truth", self.gt_json))
        pred = SegmentTable.from_records(self.pred_segments, self._json_source("prediction", self.pred_json))
        return gt_map, gt, pred_map, pred


def _annotations_by_image(annotations: list, json_path: Path) -> dict:
    """The annotation records by image id; the ids and file names checked (:mod:`~panopticlab.data.fields`)."""
    by_image = {}
    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise PanopticFormatError(f"{json_path}: annotations[{position}] lacks an 'image_id'")
        image_id = coco_image_id(annotation["image_id"], f"{json_path}: annotations[{position}]: image_id")
        for key in ("file_name", "segments_info"):
            if key not in annotation:
                raise PanopticFormatError(f"{json_path}: the annotation of image {image_id!r} lacks {key!r}")
        coco_file_name(annotation["file_name"], f"{json_path}: the annotation of image {image_id!r}: file_name")
        if not isinstance(annotation["segments_info"], list):
            raise PanopticFormatError(f"{json_path}: segments_info of image {image_id!r} is not a list")
        if image_id in by_image:
            raise PanopticFormatError(f"{json_path}: image {image_id!r} has more than one annotation")
        by_image[image_id] = annotation
    return by_image


def _few(ids: list) -> str:
    shown = ", ".join(repr(i) for i in ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def load_result_set(gt_json: PathLike, pred_json: PathLike, gt_folder: PathLike | None = None,
                    pred_folder: PathLike | None = None) -> tuple[CategorySet, list[ImageJob]]:
    """The categories and the per-image jobs of a ground-truth / prediction pair of JSON files.

    Args:
        gt_json: ground truth with ``annotations`` and ``categories``.
        pred_json: predictions with ``annotations`` (its categories, if any, are not used).
        gt_folder, pred_folder: PNG folders; default: the JSON path without ``.json``.

    Returns:
        the ground truth's categories, and one job per ground-truth annotation in file order.

    Raises:
        PanopticFormatError: unreadable JSON, missing fields, a missing folder, duplicate
            image ids, an empty ``annotations`` list, or images present in one set and not
            the other (naming them).

    Warns:
        PanopticWarning: the predictions list no segment at all (every PNG void): the
            results are those panopticapi computes, every ground-truth segment missed.
    """
    gt_json, pred_json = Path(gt_json), Path(pred_json)
    gt_folder = Path(gt_folder) if gt_folder is not None else gt_json.with_suffix("")
    pred_folder = Path(pred_folder) if pred_folder is not None else pred_json.with_suffix("")
    gt_data = read_json(gt_json, ("annotations", "categories"))
    pred_data = read_json(pred_json, ("annotations",))
    for folder, what in ((gt_folder, "ground-truth"), (pred_folder, "prediction")):
        if not folder.is_dir():
            raise PanopticFormatError(f"{folder}: {what} PNG folder not found")
    try:
        categories = CategorySet.from_coco(gt_data["categories"])
    except PanopticFormatError as err:
        raise PanopticFormatError(f"{gt_json}: {err}") from None

    if not gt_data["annotations"]:  # panopticapi would divide by zero
        raise PanopticFormatError(f"{gt_json}: 'annotations' is empty: there is no ground-truth image to evaluate on")
    gt_by_image = _annotations_by_image(gt_data["annotations"], gt_json)
    if not pred_data["annotations"]:
        raise PanopticFormatError(f"{pred_json}: 'annotations' is empty: there is no prediction for any of the "
                                  f"{len(gt_by_image)} ground-truth images")
    pred_by_image = _annotations_by_image(pred_data["annotations"], pred_json)
    missing = [i for i in gt_by_image if i not in pred_by_image]
    if missing:
        raise PanopticFormatError(f"{pred_json}: no prediction for the ground-truth images {_few(missing)}")
    extra = [i for i in pred_by_image if i not in gt_by_image]
    if extra:
        raise PanopticFormatError(f"{pred_json}: predictions for images {_few(extra)} that {gt_json} does not have")
    jobs = [ImageJob(image_id, gt_folder / gt["file_name"], gt["segments_info"],
                     pred_folder / pred_by_image[image_id]["file_name"], pred_by_image[image_id]["segments_info"],
                     gt_json, pred_json)
            for image_id, gt in gt_by_image.items()]
    if not any(job.pred_segments for job in jobs):  # scored as panopticapi scores it, but said
        warnings.warn(PanopticWarning(f"{pred_json}: the predictions list no segment in any of the {len(jobs)} "
                                      f"images; every ground-truth segment counts as missed"), stacklevel=3)
    return categories, jobs
