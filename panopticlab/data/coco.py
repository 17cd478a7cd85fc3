"""COCO panoptic files: reading and writing them exactly as panopticapi and detectron2 do.

A COCO panoptic split on disk::

    ROOT/<split>/                          the images (e.g. 000000000139.jpg)
    ROOT/annotations/panoptic_<split>.json images, annotations, categories
    ROOT/annotations/panoptic_<split>/     one RGB PNG per image, <image stem>.png

Each PNG pixel holds a segment id as ``R + 256 G + 256^2 B`` (0 = void); the JSON's
``annotations[i].segments_info`` lists each segment's ``id``, ``category_id``,
``iscrowd``, ``area`` and ``bbox``. Reading checks the PNG against its JSON record and
raises one :class:`PanopticFormatError` naming the PNG file and the segment or
category at fault. Writing is atomic file by file, and a split's JSON is written
last, so an interrupted write never leaves a JSON pointing at missing files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image, ImageOps

from .atomic import check_writable, staging_folder, write_image, write_json
from .categories import CategorySet
from .errors import PanopticFormatError
from .fields import coco_file_name, coco_image_id
from .panoptic import MAX_SEGMENT_ID, PanopticSegmentation, Segment
from .png import decode_panoptic_png, png_decoder
from .sample import Sample

PathLike = str | os.PathLike

# Image file formats write_coco_panoptic accepts, by extension. PNG keeps pixels exact
# (the built-in dataset uses it); JPEG at quality 95 is what COCO ships.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
JPEG_QUALITY = 95
# zlib level of the PNGs written here (Pillow's default is 6): level 1 writes the built-in
# dataset's images about 4 times faster, in files no larger, and its label maps in files
# about 1.5 times larger that read faster (benchmarks/png_io.py)
PNG_COMPRESS_LEVEL = 1


# ---------------------------------------------------------------------------------------
# single files
# ---------------------------------------------------------------------------------------
def read_panoptic_png(path: PathLike) -> np.ndarray:
    """Read a COCO panoptic PNG.

    Returns:
        (H, W) int32 segment ids, ``R + 256 G + 256^2 B``; 0 is void.

    Raises:
        PanopticFormatError: naming the file, when it is missing, is not a PNG, is not
            8-bit RGB (grey, RGBA, palette and 16-bit PNGs are refused rather than guessed
            at), or is truncated or corrupt (see :func:`decode_panoptic_png`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PanopticFormatError(f"{path}: panoptic PNG not found") from None
    except OSError as err:
        raise PanopticFormatError(f"{path}: cannot read the panoptic PNG ({err})") from None
    # ids < 256^3 read the same as uint32 and int32: a view, no copy
    return decode_panoptic_png(data, str(path)).view(np.int32)


def write_panoptic_png(path: PathLike, id_map: np.ndarray, source: str | None = None) -> Path:
    """Write (H, W) non-negative integer ids below 256^3 as a COCO panoptic RGB PNG, atomically.

    Encoded at zlib level :data:`PNG_COMPRESS_LEVEL`: label maps are flat colours, which
    level 1 encodes faster than Pillow's default (6), into files about 1.5 times larger
    that Pillow decodes about twice as fast (Wuffs decodes both alike;
    ``benchmarks/png_io.py``).

    Args:
        path: destination file.
        id_map: (H, W) integer ids.
        source: names the id map in errors (default: ``path``).

    Raises:
        PanopticFormatError: ``id_map`` is not a non-empty 2-D integer array with ids in
            ``[0, 256^3 - 1]``; nothing is written then.
    """
    image = _id_map_image(id_map, source or str(path))
    return write_image(path, image, "PNG", compress_level=PNG_COMPRESS_LEVEL)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, upright.

    As detectron2's ``read_image`` (``detectron2/data/detection_utils.py``): any PIL mode is
    converted to RGB, and a camera's EXIF orientation tag is applied, so a phone photograph
    stored on its side is predicted, drawn and sized as it is viewed.

    Raises:
        PanopticFormatError: naming the file, when it is missing, truncated or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise PanopticFormatError(f"{path}: image not found")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here and not later
            ImageOps.exif_transpose(image, in_place=True)  # no copy when there is no rotation to apply
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise PanopticFormatError(f"{path}: cannot decode the image; the file is truncated or corrupt "
                                  f"({type(err).__name__}: {err})") from None


def panoptic_png_name(file_name: str) -> str:
    """The panoptic PNG's name for an image file name: ``000000000139.jpg`` -> ``000000000139.png``."""
    return Path(file_name).stem + ".png"


def _id_map_image(id_map: np.ndarray, source: str) -> Image.Image:
    """An RGB PIL image of (H, W) ids, ``R + 256 G + 256^2 B``, after checking the ids fit."""
    id_map = np.asarray(id_map)
    if id_map.ndim != 2 or id_map.size == 0 or not np.issubdtype(id_map.dtype, np.integer):
        raise PanopticFormatError(f"{source}: a panoptic id map must be a non-empty (H, W) integer array, "
                                  f"got shape {id_map.shape} and dtype {id_map.dtype}")
    low, high = int(id_map.min()), int(id_map.max())
    if low < 0 or high > MAX_SEGMENT_ID:
        raise PanopticFormatError(f"{source}: ids must lie in [0, {MAX_SEGMENT_ID}] to fit an RGB PNG, "
                                  f"got [{low}, {high}]")
    # each little-endian uint32 is the bytes R, G, B, 0: Pillow's "RGBX" unpacker drops the
    # fourth, 100 times faster than building an (H, W, 3) array with id_to_rgb
    words = np.ascontiguousarray(id_map, dtype="<u4")
    height, width = id_map.shape
    return Image.frombytes("RGB", (width, height), words, "raw", "RGBX")


def _write_image(path: Path, image: np.ndarray) -> None:
    file_format = IMAGE_FORMATS[path.suffix.lower()]
    options = {"quality": JPEG_QUALITY} if file_format == "JPEG" else {"compress_level": PNG_COMPRESS_LEVEL}
    write_image(path, Image.fromarray(np.ascontiguousarray(image)), file_format, **options)


# ---------------------------------------------------------------------------------------
# one annotation record
# ---------------------------------------------------------------------------------------
def panoptic_from_annotation(annotation: Mapping, png_folder: PathLike, categories: CategorySet,
                             expected_size: tuple[int, int] | None = None) -> PanopticSegmentation:
    """Read the PNG of one COCO panoptic annotation record and check it against the record.

    Args:
        annotation: ``{"image_id", "file_name", "segments_info": [...]}`` from the JSON.
        png_folder: folder holding ``annotation["file_name"]``.
        categories: the dataset's categories; every segment's category must be one.
        expected_size: ``(height, width)`` of the image record, if known.

    Returns:
        the segmentation, segment ids as in the PNG and segments in ``segments_info``
        order. ``area`` and ``bbox`` are measured on the PNG; where the record gives
        them they must agree (prediction files may leave them out).

    Raises:
        PanopticFormatError: naming the PNG file and the segment or category, for a PNG
            of another size than ``expected_size``, an id or category id that is not an
            integer (:func:`~panopticlab.data.panoptic.segment_fields`), an id in the PNG
            without a segment, a segment without pixels, a duplicate segment id, an unknown
            category, or an ``area`` / ``bbox`` that disagrees with the PNG. Only
            ``iscrowd == 1`` is crowd, as in panopticapi; other values read as 0.
    """
    image_id = annotation.get("image_id")
    for key in ("file_name", "segments_info"):
        if key not in annotation:
            raise PanopticFormatError(f"the annotation of image {image_id!r} lacks the field {key!r}")
    png_path = Path(png_folder) / coco_file_name(annotation["file_name"],
                                                 f"the annotation of image {image_id!r}: file_name")
    source = f"{png_path} (image {image_id!r})"
    records = annotation["segments_info"]
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise PanopticFormatError(f"{source}: segments_info must be a list of segment records")

    id_map = read_panoptic_png(png_path)
    if expected_size is not None and id_map.shape != tuple(expected_size):
        raise PanopticFormatError(f"{source}: the PNG is {id_map.shape[0]}x{id_map.shape[1]} (height x width) "
                                  f"but the image record says {expected_size[0]}x{expected_size[1]}")
    pan = PanopticSegmentation(id_map, [Segment.from_coco(r, where=f"{source}, segments_info[{k}]")
                                        for k, r in enumerate(records)])
    measured = checked_with_statistics(pan, categories, source)
    for record, segment in zip(records, measured.segments):
        if "area" in record and record["area"] != segment.area:
            raise PanopticFormatError(f"{source}: segment {segment.id} has area {record['area']} in the JSON "
                                      f"but {segment.area} pixels in the PNG")
        if "bbox" in record and [float(v) for v in record["bbox"]] != list(segment.bbox):
            raise PanopticFormatError(f"{source}: segment {segment.id} has bbox {record['bbox']} in the JSON "
                                      f"but {list(segment.bbox)} in the PNG")
    return measured


def checked_with_statistics(panoptic: PanopticSegmentation, categories: CategorySet,
                            source: str) -> PanopticSegmentation:
    """``panoptic.validate(categories, source)`` then ``panoptic.with_statistics()``, in one pass over the pixels.

    :func:`segment_statistics` runs once, not twice: reading and writing a split spend
    a good part of their time there.

    Returns:
        a copy whose segments carry the ``area`` and ``bbox`` measured on the id map.

    Raises:
        PanopticFormatError: naming ``source`` and the segment or category at fault.
    """
    return panoptic.with_statistics(panoptic.validate(categories, source))


# ---------------------------------------------------------------------------------------
# a whole split
# ---------------------------------------------------------------------------------------
def coco_panoptic_paths(root: PathLike, split: str) -> dict[str, Path]:
    """COCO's layout of one split: ``json_path``, ``png_folder`` and ``image_folder``.

    The keys are :class:`CocoPanoptic`'s arguments, so ``CocoPanoptic(**paths)`` reads it.
    """
    root = Path(root)
    return {"json_path": root / "annotations" / f"panoptic_{split}.json",
            "png_folder": root / "annotations" / f"panoptic_{split}",
            "image_folder": root / split}


class CocoPanoptic:
    """A COCO panoptic split on disk, as a map-style image source of :class:`Sample`.

    The JSON is read once, here; images and PNGs are read on access. Item ``i`` is the
    ``i``-th record of the JSON's ``images``; ``annotations[i]`` is its annotation.

    Args:
        json_path: ``panoptic_<split>.json``.
        png_folder: folder of the panoptic PNGs; default: ``json_path`` without ``.json``
            (panopticapi's convention).
        image_folder: folder of the images; default: COCO's layout, ``ROOT/<split>`` for
            ``ROOT/annotations/panoptic_<split>.json``.

    Attributes:
        categories: the JSON's categories, in file order.
        images: the JSON's image records (``id``, ``file_name``, ``height``, ``width``).
        annotations: the annotation record of each image, aligned with ``images``.

    Raises:
        PanopticFormatError: naming the JSON file and the image id, for an unreadable
            JSON, a missing field, a duplicate image id, an annotation whose image is
            missing, or an image without annotation.
    """

    def __init__(self, json_path: PathLike, png_folder: PathLike | None = None,
                 image_folder: PathLike | None = None):
        self.json_path = Path(json_path)
        self.png_folder = Path(png_folder) if png_folder is not None else self.json_path.with_suffix("")
        self.image_folder = Path(image_folder) if image_folder is not None else _coco_image_folder(self.json_path)
        data = read_json(self.json_path, ("images", "annotations", "categories"), "annotation file")
        try:
            self.categories = CategorySet.from_coco(data["categories"])
        except PanopticFormatError as err:
            raise PanopticFormatError(f"{self.json_path}: {err}") from None
        self.images: list[dict] = data["images"]
        self._index_of = _index_image_records(self.images, self.json_path)
        self.annotations: list[dict] = _align_annotations(data["annotations"], self._index_of, self.json_path)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        """The image (read with PIL as (H, W, 3) uint8 RGB) and its checked panoptic annotation.

        ``Sample.file_name`` is the name of :meth:`image_path`, without folder.
        """
        index = self._check_index(index)
        record = self.images[index]
        panoptic = self.panoptic(index)
        image_path = self.image_path(index)
        image = read_image(image_path)
        if image.shape[:2] != panoptic.shape:
            png_path = self.png_folder / self.annotations[index]["file_name"]
            raise PanopticFormatError(f"{image_path} is {image.shape[0]}x{image.shape[1]} (height x width) but its "
                                      f"panoptic PNG {png_path} is {panoptic.shape[0]}x{panoptic.shape[1]}")
        return Sample(image=image, panoptic=panoptic, image_id=record["id"], file_name=image_path.name)

    def panoptic(self, index: int) -> PanopticSegmentation:
        """The panoptic annotation of item ``index`` alone, without reading its image."""
        index = self._check_index(index)
        record = self.images[index]
        size = (record["height"], record["width"]) if "height" in record and "width" in record else None
        return panoptic_from_annotation(self.annotations[index], self.png_folder, self.categories, size)

    def image_path(self, index: int) -> Path:
        """Where the image of item ``index`` lives."""
        if self.image_folder is None:
            raise ValueError(f"{self.json_path}: no image folder is known for this split; "
                             f"pass image_folder= to {type(self).__name__}")
        return self.image_folder / self.images[self._check_index(index)]["file_name"]

    @property
    def image_ids(self) -> list[int | str]:
        return [record["id"] for record in self.images]

    def index_of(self, image_id: int | str) -> int:
        """Position of an image id in :attr:`images`."""
        try:
            return self._index_of[image_id]
        except KeyError:
            raise KeyError(f"{self.json_path} has no image with id {image_id!r}") from None

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images in {self.json_path}")
        return index % len(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.json_path)!r}, {len(self)} images, {len(self.categories)} categories)"


def _coco_image_folder(json_path: Path) -> Path | None:
    prefix = "panoptic_"
    if json_path.parent.name == "annotations" and json_path.stem.startswith(prefix):
        return json_path.parent.parent / json_path.stem[len(prefix):]
    return None


def read_json(path: PathLike, required: tuple[str, ...], what: str = "JSON file") -> dict:
    """A JSON object with the ``required`` list fields; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise PanopticFormatError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PanopticFormatError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:  # valid, but nested deeper than Python's parser goes
        raise PanopticFormatError(f"{path}: cannot read the JSON, its arrays or objects are nested too deeply "
                                  f"(a COCO panoptic file nests 4 levels)") from None
    if not isinstance(data, dict):
        raise PanopticFormatError(f"{path}: expected a JSON object with the fields {list(required)}")
    for key in required:
        if not isinstance(data.get(key), list):
            raise PanopticFormatError(f"{path}: the field {key!r} is missing or not a list")
    return data


def _index_image_records(images: list, json_path: Path) -> dict:
    index_of = {}
    for position, record in enumerate(images):
        if not isinstance(record, dict) or "id" not in record or "file_name" not in record:
            raise PanopticFormatError(f"{json_path}: images[{position}] lacks an 'id' or a 'file_name'")
        image_id = coco_image_id(record["id"], f"{json_path}: images[{position}]: id")
        coco_file_name(record["file_name"], f"{json_path}: images[{position}] (image {image_id!r}): file_name")
        if image_id in index_of:
            raise PanopticFormatError(f"{json_path}: image id {image_id!r} appears twice in 'images'")
        index_of[image_id] = position
    return index_of


def _align_annotations(annotations: list, index_of: dict, json_path: Path) -> list[dict]:
    """Annotations reordered to follow the image records, one per image."""
    aligned: list[dict | None] = [None] * len(index_of)
    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise PanopticFormatError(f"{json_path}: annotations[{position}] lacks an 'image_id'")
        image_id = coco_image_id(annotation["image_id"], f"{json_path}: annotations[{position}]: image_id")
        if image_id not in index_of:
            raise PanopticFormatError(f"{json_path}: there is an annotation for image id {image_id!r} "
                                      f"but no image record with that id")
        if aligned[index_of[image_id]] is not None:
            raise PanopticFormatError(f"{json_path}: image id {image_id!r} has more than one annotation")
        if "file_name" in annotation:
            coco_file_name(annotation["file_name"],
                           f"{json_path}: annotations[{position}] (image {image_id!r}): file_name")
        aligned[index_of[image_id]] = annotation
    missing = [image_id for image_id, position in index_of.items() if aligned[position] is None]
    if missing:
        raise PanopticFormatError(f"{json_path}: image id {missing[0]!r} has no annotation"
                                  + (f" (nor do {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return aligned


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def write_coco_panoptic(root: PathLike, split: str, samples: Iterable[Sample], categories: CategorySet, *,
                        progress: bool = False) -> dict[str, Path]:
    """Write samples as a COCO panoptic split under ``root`` (layout: :func:`coco_panoptic_paths`).

    Images are written in the format their ``file_name`` names: PNG (lossless, so a
    round trip is exact) for ``.png``, JPEG at quality 95 for ``.jpg`` / ``.jpeg``.
    Segment ``area`` and ``bbox`` are measured on the id map.

    Nothing is half-done: images and PNGs go to hidden staging folders and move into
    place only after every sample was written; the JSON is written last, atomically.
    If a sample is bad or the iterator raises, the split on disk is left as it was.

    Args:
        root: dataset root (created if needed).
        split: split name, e.g. ``"val2017"``.
        samples: the images and annotations; ``image_id`` an int or str, unique.
        categories: written to the JSON; every segment must use one of them.
        progress: show a tqdm progress bar.

    Returns:
        ``{"json_path", "png_folder", "image_folder"}``: ``CocoPanoptic(**paths)`` reads it back.
    """
    paths = coco_panoptic_paths(root, split)
    images, annotations = [], []
    seen_ids, seen_pngs = set(), {}
    total = len(samples) if hasattr(samples, "__len__") else None
    with staging_folder(paths["image_folder"]) as image_stage, staging_folder(paths["png_folder"]) as png_stage:
        from tqdm.auto import tqdm  # imported when used: the command line starts faster

        for sample in tqdm(samples, total=total, desc=f"writing {split}", unit="image", disable=not progress):
            panoptic = _checked_sample(sample, categories, seen_ids, seen_pngs)
            _write_image(image_stage / sample.file_name, sample.image)
            png_name = panoptic_png_name(sample.file_name)
            write_panoptic_png(png_stage / png_name, panoptic.id_map, source=_sample_source(sample))
            height, width = panoptic.shape
            images.append({"id": sample.image_id, "file_name": sample.file_name, "height": height, "width": width})
            annotations.append({"image_id": sample.image_id, "file_name": png_name,
                                "segments_info": [s.to_coco() for s in panoptic.segments]})
    write_json(paths["json_path"], {"images": images, "annotations": annotations,
                                    "categories": categories.to_coco()})
    return paths


def write_predictions(json_path: PathLike, png_folder: PathLike | None,
                      results: Iterable[tuple[int | str, str, PanopticSegmentation]],
                      categories: CategorySet) -> Path:
    """Write predictions in the format panopticapi's ``pq_compute`` reads.

    One PNG per image (``<image stem>.png``) in ``png_folder``, then the JSON
    ``{"annotations": [{image_id, file_name, segments_info}], "categories": [...]}``;
    segments keep their ``score`` when they have one. Same all-or-nothing guarantee as
    :func:`write_coco_panoptic`.

    Args:
        json_path: the predictions JSON.
        png_folder: folder for the PNGs; ``None``: ``json_path`` without ``.json``,
            where ``pq_compute`` looks by default.
        results: ``(image_id, image file_name, prediction)`` per image.
        categories: every predicted segment must use one of them.

    Returns:
        ``json_path`` as a :class:`~pathlib.Path`.
    """
    json_path, png_folder = _prediction_paths(json_path, png_folder)
    annotations, seen_pngs = [], {}
    with staging_folder(png_folder) as png_stage:
        for image_id, file_name, panoptic in results:
            png_name = panoptic_png_name(file_name)
            source = f"prediction for image {image_id!r} ({png_name})"
            _claim(seen_pngs, png_name, image_id, source)
            panoptic = checked_with_statistics(panoptic, categories, source)
            write_panoptic_png(png_stage / png_name, panoptic.id_map, source=source)
            annotations.append({"image_id": image_id, "file_name": png_name,
                                "segments_info": [s.to_coco() for s in panoptic.segments]})
    return write_json(json_path, {"annotations": annotations, "categories": categories.to_coco()})


def check_predictions_writable(json_path: PathLike, png_folder: PathLike | None = None,
                               what: str | None = None) -> None:
    """Check up front that :func:`write_predictions` could write there (:func:`~.atomic.check_writable`).

    Args:
        json_path, png_folder: as for :func:`write_predictions`.
        what: names ``json_path`` in errors, e.g. ``"--predictions"``.

    Raises:
        OSError: the JSON or the PNG folder cannot be written, naming it.
        ValueError: the JSON and its PNG folder would be one path (a JSON name without extension).
    """
    json_path, png_folder = _prediction_paths(json_path, png_folder, what)
    check_writable(json_path, what)
    check_writable(png_folder, f"the PNG folder of {what}" if what else "the PNG folder", folder=True)


def _prediction_paths(json_path: PathLike, png_folder: PathLike | None, what: str | None = None) -> tuple[Path, Path]:
    json_path = Path(json_path)
    png_folder = Path(png_folder) if png_folder is not None else json_path.with_suffix("")
    if png_folder == json_path:
        raise ValueError(f"{what + ' ' if what else ''}{json_path}: the predictions JSON and its PNG folder would be "
                         f"the same path; give the JSON a name ending in .json")
    return json_path, png_folder


def _checked_sample(sample: Sample, categories: CategorySet, seen_ids: set, seen_pngs: dict) -> PanopticSegmentation:
    """The sample's panoptic segmentation with measured statistics, after checking the sample."""
    image_id, file_name = sample.image_id, sample.file_name
    source = _sample_source(sample)
    if isinstance(image_id, (bool, np.bool_)) or not isinstance(image_id, (int, np.integer, str)):
        raise PanopticFormatError(f"{source}: image_id must be an int or a str, got {type(image_id).__name__}")
    if image_id in seen_ids:
        raise PanopticFormatError(f"{source}: image id {image_id!r} appears twice")
    seen_ids.add(image_id)
    if Path(file_name).name != file_name or Path(file_name).suffix.lower() not in IMAGE_FORMATS:
        raise PanopticFormatError(f"{source}: file_name must be a bare file name ending in one of "
                                  f"{sorted(IMAGE_FORMATS)}, got {file_name!r}")
    _claim(seen_pngs, panoptic_png_name(file_name), image_id, source)
    image = np.asarray(sample.image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PanopticFormatError(f"{source}: the image must be (H, W, 3) uint8, "
                                  f"got shape {image.shape} and dtype {image.dtype}")
    if image.shape[:2] != sample.panoptic.shape:
        raise PanopticFormatError(f"{source}: the image is {image.shape[0]}x{image.shape[1]} but its panoptic "
                                  f"id map is {sample.panoptic.shape[0]}x{sample.panoptic.shape[1]}")
    return checked_with_statistics(sample.panoptic, categories, source)


def _sample_source(sample: Sample) -> str:
    return f"sample {sample.image_id!r} ({sample.file_name})"


def _claim(seen_pngs: dict, png_name: str, image_id, source: str) -> None:
    """Refuse two images whose PNGs would share a name (``a.jpg`` and ``a.png``)."""
    if png_name in seen_pngs:
        raise PanopticFormatError(f"{source}: its panoptic PNG {png_name} would overwrite that of "
                                  f"image {seen_pngs[png_name]!r}")
    seen_pngs[png_name] = image_id


__all__ = [
    "PNG_COMPRESS_LEVEL", "CocoPanoptic", "check_predictions_writable", "checked_with_statistics",
    "coco_panoptic_paths", "decode_panoptic_png", "panoptic_from_annotation", "panoptic_png_name", "png_decoder",
    "read_image", "read_panoptic_png", "write_coco_panoptic", "write_panoptic_png", "write_predictions",
]
