"""A trained model on the user's own images: COCO panoptic predictions, written so a run can resume.

What a run leaves, for ``output = OUT.json``::

    OUT/<stem>.png       one panoptic PNG per image, written atomically as soon as it is predicted
    OUT.json.partial     one line per image written by an unfinished run (its JSON records)
    OUT.json             {"images", "annotations", "categories", "model"}, written atomically at the end

A second run into the same ``OUT.json`` skips every image whose PNG and record exist
(from the finished ``OUT.json`` or the unfinished run's ``OUT.json.partial``) and writes one
JSON holding both, so an interrupted run loses at most the image it was on, and images
added to a folder later are predicted alone. ``OUT.json`` is what panopticapi's
``pq_compute`` and ``panopticlab evaluate --pred-json`` read (PNG folder: the JSON path
without ``.json``), and with its ``images`` list what ``panopticlab data check`` and
:class:`~panopticlab.data.coco.CocoPanoptic` read too.

Images may have any size and mode (JPEG or PNG; grey, palette and RGBA are converted to
RGB, as :func:`~panopticlab.data.coco.read_image` does): each is predicted alone, at its own
size, as :func:`~.evaluator.iter_predictions` predicts a batch of mixed sizes, and the
model's :class:`~panopticlab.models.common.ImageBatcher` resizes and pads it as in
evaluation. An image's id is its file stem, as an integer when the stem is one (COCO's
``000000000139.jpg`` is image 139; the built-in dataset is named the same way), so the
predictions of a COCO-style image folder score against its ground truth unchanged.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from torch import nn

from ..data.atomic import atomic_write, write_json
from ..data.categories import CategorySet
from ..data.coco import checked_with_statistics, panoptic_png_name, read_image, read_json, write_panoptic_png
from ..data.dataset import image_tensor
from ..data.errors import PanopticFormatError
from ..data.fields import INT64_MAX
from .evaluator import as_panoptic, predict

__all__ = ["IMAGE_SUFFIXES", "JOURNAL_SUFFIX", "PredictionRun", "find_images", "image_id_of", "prediction_paths",
           "predict_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
JOURNAL_SUFFIX = ".partial"  # OUT.json.partial: the records of an unfinished run
_PIL_FORMATS = ("JPEG", "PNG")

PathLike = str | os.PathLike


def image_id_of(path: PathLike) -> int | str:
    """The image id of a file: its stem, as an integer when it is one (``000000000139.jpg`` -> 139)."""
    stem = Path(path).stem
    if stem.isascii() and stem.isdigit() and int(stem) <= INT64_MAX:
        return int(stem)
    return stem


def _check_image_file(path: Path) -> None:
    """Refuse a file that is not a JPEG or PNG by its header (the pixels are decoded later)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            found = image.format
    except UnidentifiedImageError:
        raise PanopticFormatError(f"{path}: not an image (neither JPEG nor PNG can read it)") from None
    except OSError as error:
        raise PanopticFormatError(f"{path}: cannot read the image ({error})") from None
    if found not in _PIL_FORMATS:
        raise PanopticFormatError(f"{path}: a {found} image under a {path.suffix} name; give JPEG or PNG files")


def find_images(inputs: Sequence[PathLike], check: bool = True) -> list[Path]:
    """The image files named by ``inputs``: files as given, and the JPEG and PNG files of folders.

    A folder contributes its ``.jpg``, ``.jpeg`` and ``.png`` files (any case, hidden files
    and sub-folders left out), sorted by name; other files in it are not images to predict.
    A file given by name must be one of them. Each file's header is read (``check``), so
    a file that is not a JPEG or PNG is refused now, before any prediction.

    Returns:
        the files in the order given, each once.

    Raises:
        PanopticFormatError: naming the path: missing, a folder without images, a file with
            another extension, or a file that is not a JPEG or PNG image.
    """
    if not inputs:
        raise PanopticFormatError("no images given: name image files or folders of images")
    found: list[Path] = []
    for given in map(Path, inputs):
        if given.is_dir():
            files = sorted(p for p in given.iterdir()
                           if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
            if not files:
                raise PanopticFormatError(f"{given}: no JPEG or PNG images in this folder "
                                          f"(looked for {', '.join(IMAGE_SUFFIXES)} files)")
            found += files
        elif given.is_file():
            if given.suffix.lower() not in IMAGE_SUFFIXES:
                raise PanopticFormatError(f"{given}: not a JPEG or PNG image (its name ends in "
                                          f"{given.suffix or 'no extension'}, not {', '.join(IMAGE_SUFFIXES)})")
            found.append(given)
        else:
            raise PanopticFormatError(f"{given}: no such image file or folder")
    unique = list(dict.fromkeys(found, None))  # a file named twice (a folder and one of its files) once
    if check:
        for path in unique:
            _check_image_file(path)
    return unique


def prediction_paths(output: PathLike) -> tuple[Path, Path, Path]:
    """``(json_path, png_folder, journal)`` of a predictions JSON ``output`` (``OUT.json``, ``OUT/``,
    ``OUT.json.partial``).

    Raises:
        ValueError: ``output`` does not end in ``.json`` (its PNG folder would be the file itself).
    """
    json_path = Path(output)
    if json_path.suffix.lower() != ".json":
        raise ValueError(f"{json_path}: give the predictions JSON a name ending in .json "
                         f"(its PNGs go in the folder of the same name without .json)")
    return json_path, json_path.with_suffix(""), json_path.with_name(json_path.name + JOURNAL_SUFFIX)


@dataclass
class PredictionRun:
    """What :func:`predict_images` did.

    Attributes:
        json_path: the predictions JSON.
        png_folder: its PNG folder.
        predicted: image ids predicted by this run, in order.
        skipped: image ids found already written and not predicted again.
        image_paths: image id -> its file, for every image of this run's inputs.
        seconds: wall time of the predictions (reading, network, post-processing, writing).
    """

    json_path: Path
    png_folder: Path
    predicted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    image_paths: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.predicted) / self.seconds if self.seconds > 0 else float("nan")


def _plan(paths: Sequence[Path]) -> dict[str, tuple[int | str, Path]]:
    """PNG name -> (image id, image file), refusing two images that would share an id or a PNG."""
    plan, file_of_id = {}, {}
    for path in paths:
        image_id, png_name = image_id_of(path), panoptic_png_name(path.name)
        if png_name in plan:
            raise ValueError(f"{path} and {plan[png_name][1]} would share the panoptic PNG {png_name}; "
                             f"rename one of them")
        if image_id in file_of_id:
            raise ValueError(f"{path} and {file_of_id[image_id]} would share the image id {image_id!r}; "
                             f"rename one of them")
        plan[png_name] = (image_id, path)
        file_of_id[image_id] = path
    return plan


def _read_written(json_path: Path, journal: Path, png_folder: Path, categories: CategorySet,
                  model: Mapping) -> dict[str, tuple[dict, dict]]:
    """The records already written, by PNG name: ``(image record, annotation)`` of every image whose
    PNG exists, from the finished JSON, then the unfinished run's journal (a later record wins).

    Raises:
        PanopticFormatError: the JSON is not one this function wrote, or it or the journal
            holds predictions of another model or other categories (naming the file).
    """
    written: dict[str, tuple[dict, dict]] = {}
    sources = []
    if json_path.is_file():
        data = read_json(json_path, ("images", "annotations", "categories"), "predictions JSON")
        _check_same_predictor(json_path, data, categories, model)
        images = {record.get("id"): record for record in data["images"] if isinstance(record, dict)}
        sources.append(((images.get(a.get("image_id")), a) for a in data["annotations"] if isinstance(a, dict)))
    if journal.is_file():
        sources.append(_journal_records(journal, categories, model))
    for records in sources:
        for image, annotation in records:
            name = annotation.get("file_name")
            if image is not None and isinstance(name, str) and (png_folder / name).is_file():
                written[name] = (image, annotation)
    return written


def _check_same_predictor(path: Path, data: Mapping, categories: CategorySet, model: Mapping) -> None:
    """Refuse to add to ``path`` (a predictions JSON or journal) what another model or category set wrote."""
    if not isinstance(data, Mapping) or data.get("categories") != categories.to_coco():
        raise PanopticFormatError(f"{path}: holds predictions for other categories than this model's; write elsewhere")
    if data.get("model") != dict(model):
        raise PanopticFormatError(f"{path}: holds predictions of {data.get('model')}, not of {dict(model)}; "
                                  f"write elsewhere, or predict with that model")


def _journal_records(journal: Path, categories: CategorySet, model: Mapping) -> Iterable[tuple[dict, dict]]:
    """The records of a journal; a last line cut short by a crash is left out (its image is predicted again)."""
    lines = journal.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                return
            raise PanopticFormatError(f"{journal}: line {number + 1} is not JSON; delete the file to predict "
                                      f"every image again") from None
        if number == 0:  # the header: who wrote the records
            _check_same_predictor(journal, entry, categories, model)
        elif isinstance(entry, dict) and isinstance(entry.get("image"), dict) \
                and isinstance(entry.get("annotation"), dict):
            yield entry["image"], entry["annotation"]
        else:
            raise PanopticFormatError(f"{journal}: line {number + 1} is not an image's record; delete the file "
                                      f"to predict every image again")


def predict_images(model: nn.Module, images: Sequence[PathLike], output: PathLike, categories: CategorySet, *,
                   model_record: Mapping | None = None, device=None, progress: bool = True) -> PredictionRun:
    """Predict every image of ``images`` that ``output`` does not hold yet; write the COCO panoptic result.

    Args:
        model: a panoptic model of the book (``inference`` returns a
            :class:`~panopticlab.models.common.PanopticPrediction` per image).
        images: image files and folders (:func:`find_images`).
        output: the predictions JSON, ``OUT.json``; PNGs go to ``OUT/`` (see the module docstring).
        categories: the model's categories, written to the JSON; every segment must use one.
        model_record: JSON values naming the model and its weights, stored as the JSON's
            ``model``; a run into a JSON of another model (or other categories) is refused.
        device: where the model runs (default: its own device).
        progress: a tqdm progress bar over the images still to predict.

    Returns:
        a :class:`PredictionRun`.

    Raises:
        PanopticFormatError: an input that is not an image (before any prediction), an image
            that cannot be decoded (naming it; the images before it stay written), or a
            prediction that breaks the panoptic contract.
        ValueError: two inputs that would share an image id or PNG name (also with an image
            written before), an ``output`` not ending in ``.json``, or a prediction of
            another size than its image.
    """
    from tqdm.auto import tqdm  # imported when used: the command line starts faster

    json_path, png_folder, journal = prediction_paths(output)
    model_record = dict(model_record or {})
    plan = _plan(find_images(images))
    written = _read_written(json_path, journal, png_folder, categories, model_record)
    run = PredictionRun(json_path, png_folder, image_paths={image_id: path for image_id, path in plan.values()})
    todo = _still_to_predict(plan, written, png_folder, run)
    png_folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if todo:
        # the journal starts afresh with what is known, so a line a crash cut short is not appended to
        with atomic_write(journal, "w") as log:
            log.write(json.dumps({"categories": categories.to_coco(), "model": model_record}) + "\n")
            for image, annotation in written.values():
                log.write(json.dumps({"image": image, "annotation": annotation}) + "\n")
        with open(journal, "a", encoding="utf-8") as log, \
                tqdm(todo, desc="predict", unit="image", disable=not progress, dynamic_ncols=True) as bar:
            for png_name, image_id, path in bar:
                image, annotation = _predict_one(model, path, image_id, png_name, png_folder, categories, device)
                # the PNG is in place before its record: a record never names a missing file
                log.write(json.dumps({"image": image, "annotation": annotation}) + "\n")
                log.flush()
                os.fsync(log.fileno())
                written[png_name] = (image, annotation)
                run.predicted.append(image_id)
    run.seconds = time.perf_counter() - start
    ordered = sorted(written.values(), key=lambda pair: pair[1]["file_name"])
    write_json(json_path, {"images": [image for image, _ in ordered],
                           "annotations": [annotation for _, annotation in ordered],
                           "categories": categories.to_coco(), "model": model_record})
    journal.unlink(missing_ok=True)  # every record is in the JSON now
    return run


def _still_to_predict(plan: Mapping[str, tuple], written: Mapping[str, tuple[dict, dict]], png_folder: Path,
                      run: PredictionRun) -> list[tuple[str, int | str, Path]]:
    """``(png name, image id, file)`` of the planned images not written yet; the others go to ``run.skipped``.

    Raises:
        ValueError: a written PNG of the same name holds another file's prediction, or a
            written image has the id of a new one.
    """
    ids_written = {image.get("id"): image.get("file_name") for image, _ in written.values()}
    todo = []
    for png_name, (image_id, path) in plan.items():
        if png_name in written:
            if written[png_name][0].get("file_name") != path.name:
                raise ValueError(f"{png_folder / png_name} holds the prediction of "
                                 f"{written[png_name][0].get('file_name')}, not of {path}; write elsewhere")
            run.skipped.append(image_id)
        elif image_id in ids_written:
            raise ValueError(f"{path} would have the image id {image_id!r} of {ids_written[image_id]}, predicted "
                             f"before into {run.json_path}; rename it or write elsewhere")
        else:
            todo.append((png_name, image_id, path))
    return todo


def _predict_one(model: nn.Module, path: Path, image_id, png_name: str, png_folder: Path, categories: CategorySet,
                 device) -> tuple[dict, dict]:
    """Predict one image file and write its PNG; returns its ``(image record, annotation)``."""
    image = read_image(path)  # (H, W, 3) uint8 RGB; names the file when it cannot be decoded
    height, width = image.shape[:2]
    panoptic = as_panoptic(predict(model, image_tensor(image)[None], device)[0], str(path))
    if panoptic.shape != (height, width):
        raise ValueError(f"{path}: the model predicted a {panoptic.shape[0]}x{panoptic.shape[1]} map for a "
                         f"{height}x{width} image; it must predict at input resolution")
    source = f"prediction for {path}"
    panoptic = checked_with_statistics(panoptic, categories, source)
    write_panoptic_png(png_folder / png_name, panoptic.id_map, source=source)
    return ({"id": image_id, "file_name": path.name, "height": height, "width": width},
            {"image_id": image_id, "file_name": png_name, "segments_info": [s.to_coco() for s in panoptic.segments]})
