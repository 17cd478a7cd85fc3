"""Your own labels into COCO panoptic: the converters behind ``panopticlab data convert``.

Three sources, one function each; every one writes a COCO panoptic JSON (``images``,
``annotations`` with ``segments_info`` carrying ``area``, ``bbox`` and ``iscrowd``, and
``categories``) and one RGB PNG per image:

* :func:`convert_semantic_instances`: a semantic PNG plus an instance PNG per image, the
  "label them separately" workflow (:func:`~.convert_merge.panoptic_from_semantic_and_instance_maps`);
* :func:`convert_label_divisor`: label-divisor id maps, ``category * divisor + instance``,
  Cityscapes' ``*_instanceIds.png`` (:func:`~.convert_merge.panoptic_from_divisor_map`);
* :func:`convert_coco_instances`: COCO instance annotations (polygons or RLE) plus
  COCO-Stuff style stuff maps (:func:`~.convert_coco.panoptic_from_coco_instances`).

The categories are a JSON file: a list of COCO category records ``{"id", "name",
"isthing", "color"}`` (``color`` optional), or any JSON object whose ``categories`` field
is such a list (a COCO panoptic file); or a built-in set by name (:data:`BUILT_IN_CATEGORIES`).
Label files are found and read as :mod:`~.convert_labels` says (which PNGs are accepted).

Where labels disagree, a :class:`~.convert_rules.ConvertRules` field decides and the
result lists each :class:`~.convert_rules.Conflict` (image, pixels, the two segments, the
rule). Bad input is one :class:`PanopticFormatError` naming the file and the fault.
Files are checked (names, pairing, PNG kinds and sizes) before anything is written; the
PNGs are written into a hidden staging folder that moves into place only when every
image converted, and the JSON last, atomically: a conversion that fails or is interrupted
leaves the output paths as they were.
"""
from __future__ import annotations

import os
from pathlib import Path

from .categories import CategorySet
from .coco import panoptic_png_name
from .convert_coco import read_coco_instances
from .convert_labels import IMAGE_EXTENSIONS, find_files, image_id_of, image_size, label_png_size, read_label_png
from .convert_rules import Conflict, ConvertRules
from .convert_write import ConversionResult, Job, write_conversion
from .errors import PanopticFormatError
from .panoptic import LABEL_DIVISOR

PathLike = str | os.PathLike
BUILT_IN_CATEGORIES = ("cityscapes", "synthetic")

__all__ = ["BUILT_IN_CATEGORIES", "Conflict", "ConversionResult", "ConvertRules", "convert_coco_instances",
           "convert_label_divisor", "convert_semantic_instances", "read_categories"]


def read_categories(source: PathLike) -> CategorySet:
    """The categories of a conversion: a JSON file, or a built-in set by name.

    Args:
        source: a JSON file holding a list of COCO category records (``id``, ``name``,
            ``isthing``, optional ``color``) or an object with such a ``categories`` list;
            or, when no such file exists, ``"cityscapes"`` (the 19 evaluated classes by
            label id) or ``"synthetic"`` (the built-in dataset's).

    Raises:
        PanopticFormatError: naming the file: missing, not JSON, or a bad record.
    """
    import json

    path = Path(source)
    if not path.exists() and str(source) in BUILT_IN_CATEGORIES:
        if str(source) == "cityscapes":
            from .cityscapes import CITYSCAPES_CATEGORIES
            return CITYSCAPES_CATEGORIES
        from .synthetic import SYNTHETIC_CATEGORIES
        return SYNTHETIC_CATEGORIES
    if not path.is_file():
        raise PanopticFormatError(f"{path}: categories file not found (give a JSON file, or one of the built-in "
                                  f"sets {list(BUILT_IN_CATEGORIES)})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PanopticFormatError(f"{path}: not valid JSON ({err})") from None
    records = data.get("categories") if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise PanopticFormatError(f"{path}: expected a non-empty list of categories (id, name, isthing), or an "
                                  f"object whose 'categories' field is one")
    try:
        return CategorySet.from_coco(records)
    except PanopticFormatError as err:
        raise PanopticFormatError(f"{path}: {err}") from None


def convert_semantic_instances(semantic_folder: PathLike, instance_folder: PathLike | None, categories: CategorySet,
                               json_path: PathLike, png_folder: PathLike | None = None, *,
                               image_folder: PathLike | None = None, label_suffix: str = "", image_suffix: str = "",
                               rules: ConvertRules = ConvertRules(), progress: bool = False,
                               workers: int | None = None) -> ConversionResult:
    """Convert a semantic PNG plus an instance PNG per image into COCO panoptic.

    ``SEMANTIC/<key>.png`` holds category ids (or void values) and ``INSTANCES/<key>.png``
    instance ids (0: none); an image without thing pixels needs no instance PNG. How the
    two maps are merged: :func:`~.convert_merge.panoptic_from_semantic_and_instance_maps`.

    Args:
        semantic_folder, instance_folder: the label folders (searched recursively).
        categories: :func:`read_categories`.
        json_path: the COCO panoptic JSON to write.
        png_folder: its PNG folder; default: ``json_path`` without ``.json``.
        image_folder: the images, found by key; then every image needs labels, every label
            an image of its size, and the JSON names the image files. Without it, images
            are named ``<key>.jpg`` (detectron2's convention) and their sizes not checked.
        label_suffix, image_suffix: only files whose name ends with it (before the
            extension) are taken, and it is cut off to give the key.
        rules: how conflicts and bad cases are resolved.
        progress: show a progress bar over the images.
        workers: threads converting images side by side; default: the CPU cores, at most 8.

    Returns:
        what was written, with every conflict and how it was resolved.

    Raises:
        PanopticFormatError: naming the file and the fault, with the output paths left as they were.
        ValueError: an output that is an input or lies in an input folder; a void value that is a category.
    """
    _refuse_writing_into(json_path, png_folder, semantic_folder, instance_folder, image_folder)
    semantic = find_files(semantic_folder, label_suffix, "semantic")
    instances = find_files(instance_folder, label_suffix, "instance") if instance_folder is not None else {}
    for key, path in instances.items():
        if key not in semantic:
            raise PanopticFormatError(f"{path}: an instance map without a semantic map (no {key}.png in "
                                      f"{semantic_folder})")
    jobs = _label_jobs({key: (path, instances.get(key)) for key, path in semantic.items()}, semantic_folder,
                       image_folder, image_suffix, rules)

    def convert(job: Job):
        from .convert_merge import panoptic_from_semantic_and_instance_maps

        semantic_path, instance_path = job.sources
        shape = (job.height, job.width)
        instance_map = None if instance_path is None else read_label_png(instance_path, shape)
        return panoptic_from_semantic_and_instance_maps(read_label_png(semantic_path, shape), instance_map, categories,
                                                        rules, semantic_source=str(semantic_path),
                                                        instance_source=str(instance_path))

    return write_conversion(jobs, convert, categories, json_path, png_folder, rules, progress, workers)


def convert_label_divisor(label_folder: PathLike, categories: CategorySet, json_path: PathLike,
                          png_folder: PathLike | None = None, *, divisor: int = LABEL_DIVISOR,
                          image_folder: PathLike | None = None, label_suffix: str = "", image_suffix: str = "",
                          rules: ConvertRules = ConvertRules(), progress: bool = False,
                          workers: int | None = None) -> ConversionResult:
    """Convert label-divisor id maps (``category * divisor + instance``; Cityscapes' ``*_instanceIds.png``).

    How a map is decoded: :func:`~.convert_merge.panoptic_from_divisor_map`. For
    Cityscapes itself: ``categories=read_categories("cityscapes")``,
    ``label_suffix="_gtFine_instanceIds"``, ``image_suffix="_leftImg8bit"`` and
    ``rules.unknown="void"`` (the classes Cityscapes does not evaluate become void, as
    cityscapesScripts' ``createPanopticImgs.py`` makes them).

    Args:
        label_folder: the label-divisor PNGs (searched recursively).
        divisor: the label divisor.
        categories, json_path, png_folder, image_folder, label_suffix, image_suffix, rules,
            progress, workers: as for :func:`convert_semantic_instances`.

    Returns:
        what was written, with every conflict and how it was resolved.

    Raises:
        PanopticFormatError: naming the file and the fault, with the output paths left as they were.
        ValueError: an output that is an input or lies in an input folder; a void value that is a category.
    """
    if divisor < 1:
        raise ValueError(f"--divisor must be at least 1, got {divisor}")
    _refuse_writing_into(json_path, png_folder, label_folder, image_folder)
    labels = find_files(label_folder, label_suffix, "label")
    jobs = _label_jobs({key: (path,) for key, path in labels.items()}, label_folder, image_folder, image_suffix,
                       rules)

    def convert(job: Job):
        from .convert_merge import panoptic_from_divisor_map

        (path,) = job.sources
        return panoptic_from_divisor_map(read_label_png(path, (job.height, job.width)), categories, rules,
                                         divisor=divisor, source=str(path))

    return write_conversion(jobs, convert, categories, json_path, png_folder, rules, progress, workers)


def convert_coco_instances(instances_json: PathLike, json_path: PathLike, png_folder: PathLike | None = None, *,
                           categories: CategorySet | None = None, stuff_folder: PathLike | None = None,
                           stuff_suffix: str = "", rules: ConvertRules = ConvertRules(),
                           progress: bool = False, workers: int | None = None) -> ConversionResult:
    """Convert COCO instance annotations (polygons or RLE) plus stuff maps into COCO panoptic.

    The images are the instances file's (ids, file names and sizes are kept). With
    ``stuff_folder``, every image needs a stuff map ``<image file stem><stuff_suffix>.png``
    of its size. How one image is merged: :func:`~.convert_coco.panoptic_from_coco_instances`.

    Args:
        instances_json: the COCO instances file (``images``, ``annotations``, ``categories``).
        categories: all categories, things and stuff; default: the instances file's
            categories, all taken as things (then a stuff map can hold only void).
        stuff_folder: the stuff maps, or ``None`` for things only.
        json_path, png_folder, rules, progress, workers: as for :func:`convert_semantic_instances`.

    Returns:
        what was written, with every conflict and how it was resolved.

    Raises:
        PanopticFormatError: naming the file and the fault, with the output paths left as they were.
        ValueError: an output that is an input or lies in an input folder; a void value that is a category.
    """
    from .convert_coco import panoptic_from_coco_instances

    _refuse_writing_into(json_path, png_folder, instances_json, stuff_folder)
    instances = read_coco_instances(instances_json)
    if categories is None:
        if not instances.categories:
            raise PanopticFormatError(f"{instances_json}: no 'categories' list; give the categories file")
        try:
            categories = CategorySet.from_coco([{**record, "isthing": 1} for record in instances.categories
                                                if isinstance(record, dict)])
        except PanopticFormatError as err:
            raise PanopticFormatError(f"{instances_json}: {err}") from None
    stuff = find_files(stuff_folder, stuff_suffix, "stuff") if stuff_folder is not None else None
    jobs, pngs = [], {}
    for record in instances.images:
        key = Path(record["file_name"]).stem
        annotations = instances.annotations[record["id"]]
        stuff_path = None
        if stuff is not None:
            stuff_path = stuff.pop(key, None)
            if stuff_path is None:
                raise PanopticFormatError(f"{stuff_folder}: no stuff map {key}{stuff_suffix}.png for image "
                                          f"{record['id']!r} ({record['file_name']}) of {instances_json}")
            _same_size(stuff_path, label_png_size(stuff_path), (record["height"], record["width"]),
                       f"the image record of {record['file_name']} in {instances_json}")
        elif not annotations and rules.empty == "error":
            raise PanopticFormatError(f"{instances_json}: image {record['id']!r} ({record['file_name']}) has no "
                                      f"labels (no annotation, and no stuff maps); pass --empty skip or keep")
        png_name = panoptic_png_name(record["file_name"])
        _claim(pngs, png_name, record["file_name"])
        jobs.append(Job(key, record["id"], record["file_name"], record["height"], record["width"], png_name,
                         (annotations, stuff_path), f"{instances_json} (image {record['id']!r})"))
    if not jobs:
        raise PanopticFormatError(f"{instances_json}: no image to convert")
    if stuff:
        key, path = next(iter(stuff.items()))
        raise PanopticFormatError(f"{path}: a stuff map of no image in {instances_json} (no image file named {key}.*)")

    def convert(job: Job):
        annotations, stuff_path = job.sources
        stuff_map = read_label_png(stuff_path, (job.height, job.width)) if stuff_path is not None else None
        return panoptic_from_coco_instances(annotations, job.height, job.width, categories, rules, stuff_map,
                                            source=f"{instances_json} (image {job.image_id!r})",
                                            stuff_source=str(stuff_path))

    return write_conversion(jobs, convert, categories, json_path, png_folder, rules, progress, workers)


# ---------------------------------------------------------------------------------------
# planning: every file found, paired and sized before anything is written
# ---------------------------------------------------------------------------------------
def _label_jobs(labels: dict[str, tuple], label_folder: PathLike, image_folder: PathLike | None, image_suffix: str,
                rules: ConvertRules) -> list[Job]:
    """One job per key of ``labels`` (``key -> label paths``, the first never ``None``)."""
    if not labels:
        raise PanopticFormatError(f"{label_folder}: no label PNGs found")
    images = find_files(image_folder, image_suffix, "image", IMAGE_EXTENSIONS) if image_folder is not None else None
    if images is not None:
        for key, path in images.items():
            if key not in labels and rules.empty == "error":
                raise PanopticFormatError(f"{path}: an image with no labels (no {key}.png in {label_folder}); "
                                          f"pass --empty skip or keep")
    jobs, ids, pngs = [], {}, {}
    for key, paths in labels.items():
        size = label_png_size(paths[0])
        for other in paths[1:]:
            if other is not None:
                _same_size(other, label_png_size(other), size, f"the semantic map {paths[0]}")
        if images is None:
            file_name = f"{key}.jpg"
        elif key not in images:
            raise PanopticFormatError(f"{paths[0]}: labels of no image (no {key}{image_suffix} image in "
                                      f"{image_folder})")
        else:
            file_name = images[key].relative_to(image_folder).as_posix()
            _same_size(paths[0], size, image_size(images[key]), f"the image {images[key]}")
        image_id = image_id_of(key)
        if image_id in ids:
            raise PanopticFormatError(f"{paths[0]}: its image id {image_id!r} is also that of {ids[image_id]}")
        ids[image_id] = paths[0]
        png_name = panoptic_png_name(file_name)
        _claim(pngs, png_name, str(paths[0]))
        jobs.append(Job(key, image_id, file_name, *size, png_name, paths,
                        " + ".join(str(p) for p in paths if p is not None)))
    if images is not None:  # images without labels: refused above, or left to write_conversion to skip or keep
        for key, path in images.items():
            if key not in labels:
                png_name = panoptic_png_name(path.name)
                _claim(pngs, png_name, str(path))
                jobs.append(Job(key, image_id_of(key), path.relative_to(image_folder).as_posix(), *image_size(path),
                                png_name, (), str(path)))
    return jobs


def _refuse_writing_into(json_path: PathLike, png_folder: PathLike | None, *inputs: PathLike | None) -> None:
    """Refuse outputs that are an input or lie inside an input folder (a PNG could replace a label)."""
    json_path = Path(json_path)
    outputs = (json_path, Path(png_folder) if png_folder is not None else json_path.with_suffix(""))
    for output in outputs:
        target = output.resolve()
        for source in (Path(p).resolve() for p in inputs if p is not None):
            if target == source or source in target.parents:
                raise ValueError(f"{output}: this would write into {source}, an input of the conversion; "
                                 f"write the output elsewhere")


def _same_size(path: Path, size: tuple[int, int], expected: tuple[int, int], what: str) -> None:
    if tuple(size) != tuple(expected):
        raise PanopticFormatError(f"{path}: labels of the wrong size: {size[0]}x{size[1]} (height x width), but "
                                  f"{what} is {expected[0]}x{expected[1]}")


def _claim(pngs: dict, png_name: str, owner: str) -> None:
    if png_name in pngs:
        raise PanopticFormatError(f"{owner}: its panoptic PNG {png_name} would overwrite that of {pngs[png_name]}")
    pngs[png_name] = owner
