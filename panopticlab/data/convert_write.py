"""Writing a conversion: every image converted (by a few threads), its PNG staged, the JSON last.

The PNGs go into a hidden staging folder inside the PNG folder and move into place only
when every image converted; the JSON is written after them, atomically. A conversion that
fails or is interrupted therefore leaves the output paths as they were (folders it created
are removed again), and never a JSON naming PNGs that are not there.
"""
from __future__ import annotations

import os
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .atomic import check_writable, staging_folder, write_json
from .categories import CategorySet
from .coco import checked_with_statistics, write_panoptic_png
from .convert_rules import Conflict, ConvertRules
from .errors import PanopticFormatError
from .panoptic import PanopticSegmentation

PathLike = str | os.PathLike

__all__ = ["ConversionResult", "Job", "write_conversion"]


@dataclass
class ConversionResult:
    """What a conversion wrote.

    Attributes:
        json_path, png_folder: the COCO panoptic JSON and its PNG folder.
        images: images written; segments, crowd: segments written, crowd among them.
        skipped: keys of the images left out (``rules.empty == "skip"``).
        conflicts: every conflict, in image order.
    """

    json_path: Path
    png_folder: Path
    images: int = 0
    segments: int = 0
    crowd: int = 0
    skipped: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass
class Job:
    """One image to convert: its output records and the files it is made from."""

    key: str
    image_id: int | str
    file_name: str
    height: int
    width: int
    png_name: str
    sources: tuple  # the label paths, or the annotations and stuff path for COCO; () for none
    source: str  # names the image's labels in messages


def write_conversion(jobs: list[Job], convert: Callable[[Job], tuple[PanopticSegmentation, list[Conflict]]],
                     categories: CategorySet, json_path: PathLike, png_folder: PathLike | None, rules: ConvertRules,
                     progress: bool = False, workers: int | None = None) -> ConversionResult:
    """Convert every job, write its PNG into a staging folder and, once all are done, the JSON.

    Args:
        jobs: the images, in the order the JSON lists them.
        convert: one job's labels -> (segmentation with ids 1..n, conflicts); it raises
            :class:`PanopticFormatError` for bad labels. A job without sources is an
            image without labels (kept or skipped by ``rules.empty``).
        categories: written to the JSON; every segment must use one of them.
        json_path, png_folder: the outputs (``png_folder`` default: ``json_path`` without ``.json``).
        rules: ``empty`` applies here: a segmentation without a segment.
        progress: show a progress bar.
        workers: threads; default: the CPU cores, at most 8.

    Raises:
        PanopticFormatError, OSError: with the output paths left as they were.
    """
    from tqdm.auto import tqdm  # imported when used: the command line starts faster

    json_path = Path(json_path)
    png_folder = Path(png_folder) if png_folder is not None else json_path.with_suffix("")
    if png_folder == json_path:
        raise ValueError(f"{json_path}: the JSON and its PNG folder would be the same path; name the JSON *.json")
    check_writable(json_path)
    check_writable(png_folder, folder=True)
    result = ConversionResult(json_path, png_folder)
    images, annotations = [], []
    with _removed_if_failed(png_folder, json_path.parent):
        with staging_folder(png_folder) as stage:
            def one(job: Job):
                """The job's segments (``None``: skipped as empty) and conflicts, its PNG written."""
                panoptic, conflicts = convert(job) if job.sources else (
                    PanopticSegmentation(np.zeros((job.height, job.width), np.int32), []), [])
                if not panoptic.segments:
                    if rules.empty == "error":
                        raise PanopticFormatError(f"{job.source}: an image with no labels: every pixel is void; "
                                                  f"pass --empty skip or keep")
                    if rules.empty == "skip":
                        return job, None, conflicts
                panoptic = checked_with_statistics(panoptic, categories, job.source)
                write_panoptic_png(stage / job.png_name, panoptic.id_map, source=job.source)
                return job, panoptic.segments, conflicts

            with closing(_in_order(one, jobs, _workers(workers, len(jobs)))) as done:
                for job, segments, conflicts in tqdm(done, total=len(jobs), desc="converting", unit="image",
                                                     disable=not progress):
                    result.conflicts += conflicts
                    if segments is None:
                        result.skipped.append(job.key)
                        continue
                    images.append({"id": job.image_id, "file_name": job.file_name, "height": job.height,
                                   "width": job.width})
                    annotations.append({"image_id": job.image_id, "file_name": job.png_name,
                                        "segments_info": [s.to_coco() for s in segments]})
                    result.segments += len(segments)
                    result.crowd += sum(s.iscrowd for s in segments)
            if not images:
                raise PanopticFormatError(f"{json_path}: no image to write (every image was skipped as empty)")
        write_json(json_path, {"images": images, "annotations": annotations, "categories": categories.to_coco()})
    result.images = len(images)
    return result


def _workers(workers: int | None, jobs: int) -> int:
    if workers is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(cores, 8)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    return max(1, min(workers, jobs))


def _in_order(function: Callable, items: list, workers: int) -> Iterator:
    """``function(item)`` for each item, in order, computed by ``workers`` threads a few items ahead.

    Threads pay: decoding and encoding PNGs, fsync and most numpy work release the GIL.
    On an error (or Ctrl-C) the items not started are cancelled and the running ones
    finish before it propagates, so nothing writes into the staging folder after it is removed.
    """
    if workers == 1:
        yield from map(function, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(workers, thread_name_prefix="convert")
    pending = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _removed_if_failed(*folders: Path) -> Iterator[None]:
    """Remove again, if the block fails, the folders (and parents) it creates that are still empty."""
    created = []
    for folder in folders:
        for path in (folder, *folder.parents):
            if path.exists():
                break
            created.append(path)
    try:
        yield
    except BaseException:
        for path in sorted(set(created), key=lambda p: len(p.parts), reverse=True):
            with suppress(OSError):
                path.rmdir()
        raise
