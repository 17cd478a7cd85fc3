"""One image's ground truth and prediction side by side, each unmatched segment named.

Both panels draw the segmentation over the image with category names and segment
outlines (:func:`~.overlay.draw_panoptic`). Every segment left unmatched at IoU > 0.5 is
outlined in the colour of its kind and its label says which, as
:func:`panopticlab.metrics.error_analysis` classes it:

* **miss** - a ground-truth segment without a match (orange, the false negatives' colour);
* **false alarm** - a predicted segment without a match (red, the false positives' colour);
* **merge** - a prediction over most of two or more objects (magenta): the prediction,
  and the objects it swallowed that are left unmatched;
* **split** - an object cut into two or more predictions (cyan): the object when it is
  left unmatched, and its unmatched pieces.

The colours are those of chapter 7's :func:`~.errors.show_errors_side_by_side`. Crowd
regions and predictions that lie mostly on void or crowd are neither (PQ ignores them).

:class:`ResultFiles` reads the same from any COCO panoptic result on disk (a ground-truth
JSON and PNG folder, a prediction JSON and PNG folder, or either alone, with the images
if they can be found) and ranks its images by their own PQ, for ``panopticlab show``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from matplotlib.patches import Patch

from ..data.categories import CategorySet
from ..data.coco import coco_panoptic_paths, panoptic_from_annotation, read_image, read_json
from ..data.errors import PanopticFormatError
from ..data.fields import coco_file_name, coco_image_id
from ..data.panoptic import VOID, PanopticSegmentation
from ..metrics.errors import ImageErrors, error_analysis
from ..metrics.files import load_result_set
from ..metrics.matching import MATCH_IOU, ImageMatching
from ..metrics.pq import PQAccumulator
from .colors import segment_colors
from .errors import MERGE_COLOR, MISSED_COLOR, SPLIT_COLOR
from .matching import OUTCOME_STYLE
from .overlay import LabelKind, draw_panoptic, representative_points, segment_label, write_label
from .panels import new_figure

__all__ = ["MISS", "FALSE_ALARM", "MERGE", "SPLIT", "KIND_STYLE", "ImageReview", "ResultFiles", "draw_marked",
           "review_image", "save_figure", "show_prediction", "unmatched_kinds"]

MISS, FALSE_ALARM, MERGE, SPLIT = "miss", "false alarm", "merge", "split"
# kind -> (legend text, outline colour)
KIND_STYLE = {
    MISS: ("miss: a ground-truth segment without a match", MISSED_COLOR),
    FALSE_ALARM: ("false alarm: a predicted segment without a match", OUTCOME_STYLE[1][1]),
    MERGE: ("merge: one prediction over several objects", MERGE_COLOR),
    SPLIT: ("split: one object in several predictions", SPLIT_COLOR),
}
# how a panel's title counts its marked segments: (one, several)
COUNTED = {MISS: ("miss", "misses"), FALSE_ALARM: ("false alarm", "false alarms"), MERGE: ("in a merge", "in merges"),
           SPLIT: ("in a split", "in splits")}
OUTLINE_WIDTH = 2.0  # points: thicker than the white segment outlines, so a marked segment stands out

PathLike = str | os.PathLike


def unmatched_kinds(errors: ImageErrors) -> tuple[dict[int, str], dict[int, str]]:
    """The kind of every unmatched segment of one image, on each side.

    A ground-truth segment is a ``"merge"`` when a merging prediction swallowed it, else a
    ``"split"`` when it is a split object, else a ``"miss"``; a predicted segment is a
    ``"merge"`` when it is a merging prediction, else a ``"split"`` when it is a piece of a
    split object, else a ``"false alarm"``. Matched segments are not listed (a merge or
    split can leave one of its segments matched).

    Args:
        errors: :func:`panopticlab.metrics.error_analysis` of the image.

    Returns:
        ``(gt_kinds, pred_kinds)``: segment id -> kind, for ``errors.false_negatives`` and
        ``errors.false_positives``.
    """
    swallowed = {g for _, objects in errors.merges for g in objects}
    merging = {p for p, _ in errors.merges}
    split_objects = {g for g, _ in errors.splits}
    pieces = {p for _, parts in errors.splits for p in parts}
    gt = {int(g): MERGE if g in swallowed else SPLIT if g in split_objects else MISS for g in errors.false_negatives}
    pred = {int(p): MERGE if p in merging else SPLIT if p in pieces else FALSE_ALARM for p in errors.false_positives}
    return gt, pred


@dataclass(frozen=True)
class ImageReview:
    """What a figure of one image shows, as data.

    Attributes:
        image_id: the image's id (or ``None``).
        matching: the PQ matching of its ground truth and prediction.
        errors: :func:`panopticlab.metrics.error_analysis` of the matching.
        pq: the image's own Panoptic Quality (a fraction; over the categories it holds,
            as the dataset's PQ over its images); NaN when neither side holds a segment to score.
        gt_kinds, pred_kinds: segment id -> kind of each unmatched segment (:func:`unmatched_kinds`).
    """

    image_id: int | str | None
    matching: ImageMatching
    errors: ImageErrors
    pq: float
    gt_kinds: dict[int, str]
    pred_kinds: dict[int, str]

    def counts(self) -> dict[str, int]:
        """Mistakes by kind: misses and false alarms by segment, merges and splits once each."""
        return {MISS: sum(k == MISS for k in self.gt_kinds.values()),
                FALSE_ALARM: sum(k == FALSE_ALARM for k in self.pred_kinds.values()),
                MERGE: len(self.errors.merges), SPLIT: len(self.errors.splits)}


def review_image(gt: PanopticSegmentation, pred: PanopticSegmentation, categories: CategorySet,
                 image_id: int | str | None = None, iou_threshold: float = MATCH_IOU) -> ImageReview:
    """Match one image's prediction to its ground truth, score it and class its mistakes.

    Raises:
        PanopticFormatError: the two differ in size, an id map disagrees with its segments,
            or a segment's category is not one of ``categories`` (naming the image).
    """
    accumulator = PQAccumulator(categories, iou_threshold)
    matching = accumulator.update(gt, pred, image_id=image_id)
    errors = error_analysis(matching)
    gt_kinds, pred_kinds = unmatched_kinds(errors)
    return ImageReview(image_id, matching, errors, accumulator.results()["All"]["pq"], gt_kinds, pred_kinds)


def _outline_segment(ax, id_map: np.ndarray, segment_id: int, color) -> None:
    """Outline one segment along its pixel edges (closed at the image border too)."""
    rows, cols = np.nonzero(id_map == segment_id)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    # a frame of zeros around the crop closes the outline where the segment meets the border
    crop = np.pad(id_map[top:bottom, left:right] == segment_id, 1).astype(np.float32)
    limits = ax.get_xlim(), ax.get_ylim()
    ax.contour(np.arange(left - 1, right + 1), np.arange(top - 1, bottom + 1), crop, levels=[0.5],
               colors=[np.asarray(color) / 255], linewidths=OUTLINE_WIDTH)
    ax.set_xlim(limits[0])
    ax.set_ylim(limits[1])


def draw_marked(ax, image: np.ndarray | None, pan: PanopticSegmentation, categories: CategorySet,
                kinds: Mapping[int, str], title: str | None = None, ids: LabelKind = "name",
                min_label_area: int = 16, fontsize: float = 7, alpha: float = 0.5):
    """One panel: ``pan`` over ``image`` with labels and outlines, each segment of ``kinds`` outlined
    in its kind's colour and labelled ``"<label>: <kind>"`` on a patch of that colour.

    Args:
        kinds: segment id -> one of :data:`KIND_STYLE`'s kinds (e.g. from :func:`unmatched_kinds`).
        min_label_area: unmarked segments smaller than this are not labelled; marked ones always are.

    Returns:
        the axis.
    """
    draw_panoptic(ax, image, pan, categories, alpha=alpha, ids=False, title=title)
    present = dict(zip(*np.unique(pan.id_map, return_counts=True)))
    shown = [s for s in pan.segments if s.id != VOID and s.id in present
             and (s.id in kinds or present[s.id] >= min_label_area)]
    points = representative_points(pan.id_map, [s.id for s in shown])
    colors = segment_colors(pan, categories)
    for segment in shown:
        kind = kinds.get(segment.id)
        text = segment_label(segment, categories, ids) if ids else ""
        if kind is None:
            if text:
                write_label(ax, points[segment.id], text, colors[segment.id], fontsize)
            continue
        _outline_segment(ax, pan.id_map, segment.id, KIND_STYLE[kind][1])
        write_label(ax, points[segment.id], f"{text}: {kind}" if text else kind, KIND_STYLE[kind][1], fontsize)
    return ax


def _side_title(side: str, kinds: Mapping[int, str]) -> str:
    """``"ground truth: 2 misses, 2 in merges"``: the panel's marked segments by kind."""
    found = [(kind, sum(k == kind for k in kinds.values())) for kind in KIND_STYLE]
    listed = ", ".join(f"{n} {COUNTED[kind][n > 1]}" for kind, n in found if n)
    return f"{side}: {listed}" if listed else side


def show_prediction(image: np.ndarray | None, gt: PanopticSegmentation | None, pred: PanopticSegmentation | None,
                    categories: CategorySet, *, review: ImageReview | None = None, image_id: int | str | None = None,
                    title: str | None = None, ids: LabelKind = "name", panel_size: float = 5.0,
                    fontsize: float = 7):
    """Ground truth and prediction side by side, every unmatched segment marked (see the module docstring).

    Args:
        image: (H, W, 3) image under both, or None for the segment colours alone.
        gt, pred: the two segmentations, same (H, W); either may be None to draw the other
            alone (then nothing is matched, so nothing is marked).
        review: :func:`review_image` of ``gt`` and ``pred``, if already computed.
        image_id: names the image in the title (default: ``review.image_id``).
        title: replaces the default title (the image and its PQ).

    Returns:
        the Figure: one or two panels, the kinds of mistake in a legend below.
    """
    if gt is None and pred is None:
        raise ValueError("show_prediction needs a ground truth, a prediction, or both")
    if gt is not None and pred is not None and review is None:
        review = review_image(gt, pred, categories, image_id)
    gt_kinds, pred_kinds = (review.gt_kinds, review.pred_kinds) if review is not None else ({}, {})
    panels = [(side, pan, kinds) for side, pan, kinds in (("ground truth", gt, gt_kinds),
                                                          ("prediction", pred, pred_kinds)) if pan is not None]
    height, width = panels[0][1].shape
    figure, axes = new_figure(1, len(panels), panel_size, height / width,
                              legend_entries=len(KIND_STYLE) if review is not None else 0)
    for ax, (side, pan, kinds) in zip(axes[0], panels):
        draw_marked(ax, image, pan, categories, kinds, _side_title(side, kinds), ids=ids, fontsize=fontsize)
    image_id = review.image_id if image_id is None and review is not None else image_id
    if title is None:
        title = "" if image_id is None else f"image {image_id}"
        if review is not None:
            title += ("  " if title else "") + ("PQ -" if math.isnan(review.pq) else f"PQ {100 * review.pq:.1f}")
    if title:
        figure.suptitle(title)
    if review is not None:
        handles = [Patch(facecolor="none", edgecolor=np.asarray(color) / 255, linewidth=OUTLINE_WIDTH, label=text)
                   for text, color in KIND_STYLE.values()]
        figure.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7, frameon=False)
    return figure


def save_figure(figure, path: PathLike, dpi: float = 150) -> Path:
    """Write a figure as a PNG, atomically (a crash leaves no half-written file)."""
    from ..data.atomic import atomic_write

    with atomic_write(path, "wb") as file:
        figure.savefig(file, format="png", dpi=dpi)
    return Path(path)


# --- result files on disk -----------------------------------------------------------------
def _index_annotations(annotations: Iterable, json_path: Path) -> dict:
    """image id -> annotation record, the ids and file names checked."""
    by_image = {}
    for position, annotation in enumerate(annotations):
        where = f"{json_path}: annotations[{position}]"
        if not isinstance(annotation, dict) or not {"image_id", "file_name", "segments_info"} <= set(annotation):
            raise PanopticFormatError(f"{where} lacks 'image_id', 'file_name' or 'segments_info'")
        image_id = coco_image_id(annotation["image_id"], f"{where}: image_id")
        coco_file_name(annotation["file_name"], f"{where}: file_name")
        if image_id in by_image:
            raise PanopticFormatError(f"{json_path}: image {image_id!r} has more than one annotation")
        by_image[image_id] = annotation
    return by_image


def _job_annotation(job, side: str) -> tuple[Path, dict]:
    """``(PNG folder, annotation record)`` of one side of a :class:`~panopticlab.metrics.files.ImageJob`."""
    png, segments = (job.gt_png, job.gt_segments) if side == "gt" else (job.pred_png, job.pred_segments)
    return png.parent, {"image_id": job.image_id, "file_name": png.name, "segments_info": segments}


def _coco_image_folder(json_path: Path) -> Path | None:
    """``ROOT/<split>`` for a ground truth at ``ROOT/annotations/panoptic_<split>.json`` (COCO's layout)."""
    prefix = "panoptic_"
    if json_path.parent.name != "annotations" or not json_path.stem.startswith(prefix):
        return None
    return coco_panoptic_paths(json_path.parent.parent, json_path.stem[len(prefix):])["image_folder"]


class ResultFiles:
    """A COCO panoptic result on disk: a ground truth, a prediction, or both, and their images.

    Args:
        gt_json, pred_json: the JSON files (at least one); with both, they are paired as
            ``panopticlab evaluate`` pairs them (:func:`~panopticlab.metrics.files.load_result_set`):
            every ground-truth image needs its prediction.
        gt_folder, pred_folder: their PNG folders (default: the JSON path without ``.json``).
        image_folder: where the images are, named by the ``images`` records of the ground-truth
            JSON (else of the prediction JSON). Default: COCO's layout for the ground truth
            (``ROOT/<split>`` for ``ROOT/annotations/panoptic_<split>.json``); an image not found
            there is drawn without its pixels.

    Attributes:
        categories: the ground truth's categories (alone, the prediction JSON's).
        image_ids: the images, in the order of the ground truth's (else the prediction's) annotations.

    Raises:
        PanopticFormatError: unreadable or malformed JSON, missing folders, images in one set
            and not the other, a prediction JSON alone without ``categories`` (naming the file).
    """

    def __init__(self, gt_json: PathLike | None = None, pred_json: PathLike | None = None,
                 gt_folder: PathLike | None = None, pred_folder: PathLike | None = None,
                 image_folder: PathLike | None = None):
        if gt_json is None and pred_json is None:
            raise ValueError("give a ground-truth JSON, a prediction JSON, or both")
        self.gt_json = None if gt_json is None else Path(gt_json)
        self.pred_json = None if pred_json is None else Path(pred_json)
        self._folders = {side: Path(folder) if folder is not None else json_path and json_path.with_suffix("")
                         for side, json_path, folder in (("gt", self.gt_json, gt_folder),
                                                         ("pred", self.pred_json, pred_folder))}
        self._annotations: dict[str, dict] = {}  # side -> image id -> (PNG folder, annotation record)
        if self.gt_json is not None and self.pred_json is not None:
            self.categories, jobs = load_result_set(self.gt_json, self.pred_json, gt_folder, pred_folder)
            for side in ("gt", "pred"):
                self._annotations[side] = {job.image_id: _job_annotation(job, side) for job in jobs}
        else:
            side, path = ("gt", self.gt_json) if self.gt_json is not None else ("pred", self.pred_json)
            data = read_json(path, ("annotations",))
            if not isinstance(data.get("categories"), list):
                raise PanopticFormatError(f"{path}: no 'categories' list; give the ground truth too "
                                          f"(--gt-json), whose categories the predictions use")
            try:
                self.categories = CategorySet.from_coco(data["categories"])
            except PanopticFormatError as error:
                raise PanopticFormatError(f"{path}: {error}") from None
            folder = self._folders[side]
            if not folder.is_dir():
                raise PanopticFormatError(f"{folder}: PNG folder of {path} not found")
            indexed = _index_annotations(data["annotations"], path)
            self._annotations[side] = {image_id: (folder, annotation) for image_id, annotation in indexed.items()}
            if not self._annotations[side]:
                raise PanopticFormatError(f"{path}: 'annotations' is empty: there is no image to show")
        self.image_ids = list(next(iter(self._annotations.values())))
        self.image_folder = Path(image_folder) if image_folder is not None else None
        self._image_folder_given = image_folder is not None
        if self.image_folder is None and self.gt_json is not None:
            self.image_folder = _coco_image_folder(self.gt_json)
        self._image_records = None

    def find(self, text: str) -> int | str:
        """The image id a command line names: ``"139"`` is image 139 (or the string id ``"139"``).

        Raises:
            KeyError: no such image (the message lists a few ids there are).
        """
        known = set(self.image_ids)
        if text in known:
            return text
        if text.lstrip("-").isdigit() and int(text) in known:
            return int(text)
        shown = ", ".join(repr(i) for i in self.image_ids[:5]) + (" ..." if len(self.image_ids) > 5 else "")
        raise KeyError(f"no image {text!r} in {self.gt_json or self.pred_json} (its images: {shown})")

    def panoptic(self, image_id: int | str, side: str) -> PanopticSegmentation | None:
        """The ``"gt"`` or ``"pred"`` segmentation of an image (read and checked), or None without that side."""
        annotations = self._annotations.get(side)
        if annotations is None:
            return None
        folder, annotation = annotations[image_id]
        return panoptic_from_annotation(annotation, folder, self.categories)

    def image(self, image_id: int | str, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The image's pixels, (H, W, 3) uint8, or None where no image is found (see the class docstring).

        Raises:
            PanopticFormatError: the image is missing from a given ``image_folder``, cannot be
                decoded, or is not of ``shape`` (the size of its PNGs).
        """
        record = self._records().get(image_id)
        if self.image_folder is None or record is None:
            return None
        path = self.image_folder / coco_file_name(record.get("file_name"), f"the image record of {image_id!r}")
        if not path.is_file() and not self._image_folder_given:
            return None
        image = read_image(path)
        if shape is not None and image.shape[:2] != tuple(shape):
            raise PanopticFormatError(f"{path} is {image.shape[0]}x{image.shape[1]} (height x width) but its "
                                      f"panoptic PNG is {shape[0]}x{shape[1]}")
        return image

    def _records(self) -> dict:
        """image id -> image record, from the ground truth's ``images`` (else the prediction's)."""
        if self._image_records is None:
            self._image_records = {}
            for path in (self.gt_json, self.pred_json):
                if path is not None:
                    images = read_json(path, ()).get("images")
                    if isinstance(images, list):
                        self._image_records = {r.get("id"): r for r in images if isinstance(r, dict)}
                        break
        return self._image_records

    def review(self, image_id: int | str) -> ImageReview:
        """:func:`review_image` of one image (both sides needed)."""
        gt, pred = self.panoptic(image_id, "gt"), self.panoptic(image_id, "pred")
        if gt is None or pred is None:
            raise ValueError("scoring an image needs both the ground truth and the prediction")
        return review_image(gt, pred, self.categories, image_id)

    def worst(self, n: int, progress: bool = True) -> list[tuple[int | str, float]]:
        """The ``n`` images of lowest PQ, worst first, as ``(image id, pq)``.

        Ties keep the file order; images with nothing to score (NaN) come last.
        """
        from tqdm.auto import tqdm

        scores = [(image_id, self.review(image_id).pq)
                  for image_id in tqdm(self.image_ids, desc="PQ per image", unit="image", disable=not progress)]
        ranked = sorted(range(len(scores)), key=lambda k: (math.isnan(scores[k][1]), scores[k][1], k))
        return [scores[k] for k in ranked[:n]]

    def figure(self, image_id: int | str, **options):
        """:func:`show_prediction` of one image, its pixels under both sides when they can be found."""
        gt, pred = self.panoptic(image_id, "gt"), self.panoptic(image_id, "pred")
        review = review_image(gt, pred, self.categories, image_id) if gt is not None and pred is not None else None
        image = self.image(image_id, (gt if gt is not None else pred).shape)
        return show_prediction(image, gt, pred, self.categories, review=review, image_id=image_id, **options)
