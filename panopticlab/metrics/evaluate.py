"""Evaluating a whole dataset: from COCO panoptic files on disk, or from memory.

* :func:`evaluate_folders` / :func:`pq_compute` - the inputs of panopticapi's
  ``pq_compute`` (two JSON files, two PNG folders), one process or several.
* :func:`evaluate_pairs` - (ground truth, prediction) :class:`PanopticSegmentation`
  pairs straight from a model, no PNG written; what the training and evaluation loops use.
* :func:`evaluate_thresholds` - the same at several IoU thresholds in one pass.

Each returns :meth:`PQAccumulator.results` (per threshold for the last): panopticapi's result shape plus the
breakdowns by size and PQ-dagger.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable


from ..data.categories import CategorySet
from ..data.panoptic import PanopticSegmentation
from .files import ImageJob, PathLike, load_result_set, png_decoder
from .matching import MATCH_IOU
from .overlap import overlaps_of
from .pq import PQAccumulator
from .report import format_table


def evaluate_jobs(jobs: list[ImageJob], categories: CategorySet, iou_threshold: float = MATCH_IOU,
                  progress=None) -> PQAccumulator:
    """Accumulate the images of ``jobs`` in this process; ``progress`` is a tqdm bar or None."""
    accumulator = PQAccumulator(categories, iou_threshold)
    for job in jobs:
        gt_map, gt, pred_map, pred = job.read()
        accumulator.update_arrays(gt_map, gt, pred_map, pred, source=job.source)
        if progress is not None:
            progress.update(1)
    return accumulator


class WorkerDiedError(ChildProcessError):
    """A worker process of :func:`evaluate_folders` ended without returning its chunk
    (killed by a signal, e.g. by the out-of-memory killer, or exited). The message names
    its process id, how it ended and the images it was evaluating."""


# what a worker process evaluates: set once per worker by the pool's initializer, which
# costs nothing under fork (the worker inherits it) and one pickle per worker under spawn
_worker_jobs: tuple | None = None


def _start_worker(jobs: list[ImageJob], categories: CategorySet, iou_threshold: float, chunk_pids) -> None:
    global _worker_jobs
    _worker_jobs = (jobs, categories, iou_threshold, chunk_pids)


def _evaluate_range(index: int, bounds: tuple[int, int]) -> PQAccumulator:
    jobs, categories, iou_threshold, chunk_pids = _worker_jobs
    # shared with the parent: if this process dies, the parent can tell which chunk it held
    chunk_pids[index] = os.getpid()
    return evaluate_jobs(jobs[bounds[0]:bounds[1]], categories, iou_threshold)


def _how_it_ended(exitcode: int) -> str:
    if exitcode < 0:
        try:
            name = f", {signal.Signals(-exitcode).name}"
        except ValueError:
            name = ""
        return f"killed by signal {-exitcode}{name}"
    return f"exited with status {exitcode}"


def _dead_worker_error(processes: dict, chunk_pids, ranges: list[tuple[int, int]],
                       futures: list[Future], error: BrokenProcessPool) -> WorkerDiedError:
    """Name the worker that broke the pool, from the exit codes of the (joined) workers.

    The pool SIGTERMs the surviving workers once one has died, so a worker that ended
    otherwise is the culprit; a worker evaluates its chunks in order, so the last chunk
    it started is the one it died in.
    """
    ended = {pid: process.exitcode for pid, process in processes.items() if process.exitcode not in (None, 0)}
    culprits = [pid for pid, code in ended.items() if code != -signal.SIGTERM] or list(ended)
    if not culprits:  # e.g. a result that could not be sent back: the pool's own cause says more
        cause = f": {error.__cause__}" if error.__cause__ is not None else ""
        return WorkerDiedError(f"a worker process ended abruptly ({error}){cause}")
    pid = culprits[0]
    held = [k for k in range(len(ranges)) if chunk_pids[k] == pid
            and not (futures[k].done() and not futures[k].cancelled() and futures[k].exception() is None)]
    where = f" while evaluating images {ranges[held[-1]][0]}..{ranges[held[-1]][1] - 1}" if held else ""
    return WorkerDiedError(f"worker process {pid} died ({_how_it_ended(ended[pid])}){where}; "
                           "the evaluation was stopped")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pool_context():
    # fork shares the imported modules with the workers; spawn would re-import torch in each
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods and sys.platform != "darwin" else "spawn")


def evaluate_folders(gt_json: PathLike, pred_json: PathLike, gt_folder: PathLike | None = None,
                     pred_folder: PathLike | None = None, *, workers: int = 1, iou_threshold: float = MATCH_IOU,
                     progress: bool = True) -> dict:
    """Panoptic Quality of predictions in COCO panoptic format.

    Args:
        gt_json, pred_json: the ground-truth and prediction JSON files.
        gt_folder, pred_folder: their PNG folders (default: the JSON path without ``.json``).
        workers: processes; the images are split into chunks and the counts merged.
        iou_threshold: matching threshold (COCO: 0.5).
        progress: show a tqdm progress bar.

    Returns:
        :meth:`PQAccumulator.results` of the whole set.

    Raises:
        PanopticFormatError: naming the file, image and segment at fault (see
            :func:`~panopticlab.metrics.files.load_result_set` and
            :func:`~panopticlab.metrics.overlap.compute_overlaps`), or an unknown category.
        WorkerDiedError: a worker process died (a signal, the out-of-memory killer), naming it
            and its images; the run stops instead of waiting for the lost chunk.
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    categories, jobs = load_result_set(gt_json, pred_json, gt_folder, pred_folder)
    from tqdm.auto import tqdm  # imported when used: the command line starts faster

    bar = tqdm(total=len(jobs), desc="PQ", unit="image", disable=not progress)
    try:
        if workers == 1 or len(jobs) < 2:
            return evaluate_jobs(jobs, categories, iou_threshold, bar).results()
        # a few chunks per worker balance the load; larger chunks cost less to ship
        chunk = max(1, min(64, math.ceil(len(jobs) / (4 * workers))))
        ranges = [(k, min(k + chunk, len(jobs))) for k in range(0, len(jobs), chunk)]
        png_decoder()  # import the decoder's library here once, not in every forked worker
        total = PQAccumulator(categories, iou_threshold)
        context = _pool_context()
        chunk_pids = context.RawArray("q", len(ranges))  # which worker took each chunk, 0: none yet
        # ProcessPoolExecutor, not Pool: Pool replaces a worker that died and waits forever
        # for its result, the executor fails every pending future with BrokenProcessPool
        executor = ProcessPoolExecutor(max_workers=min(int(workers), len(ranges)), mp_context=context,
                                       initializer=_start_worker,
                                       initargs=(jobs, categories, iou_threshold, chunk_pids))
        futures: list[Future] = []
        processes: dict = {}
        broken = None
        try:
            futures = [executor.submit(_evaluate_range, k, bounds) for k, bounds in enumerate(ranges)]
            processes = dict(getattr(executor, "_processes", None) or {})  # started by now; for the error
            for future in futures:  # in order: the same sums on every run
                part = future.result()
                total.merge(part)
                bar.update(part.num_images)
        except BrokenProcessPool as error:
            broken = error
        finally:
            # an error in a worker (a bad PNG) is raised as is; the chunks not started are dropped
            executor.shutdown(wait=True, cancel_futures=True)
        if broken is not None:  # after the shutdown: the workers are joined and their exit codes known
            raise _dead_worker_error(processes, chunk_pids, ranges, futures, broken) from broken
        return total.results()
    finally:
        bar.close()


def pq_compute(gt_json_file: PathLike, pred_json_file: PathLike, gt_folder: PathLike | None = None,
               pred_folder: PathLike | None = None, workers: int = 1) -> dict:
    """panopticapi's ``pq_compute``: evaluate, print the PQ / SQ / RQ table, return the results."""
    results = evaluate_folders(gt_json_file, pred_json_file, gt_folder, pred_folder, workers=workers)
    print(format_table(results))
    return results


def evaluate_pairs(pairs: Iterable[tuple[PanopticSegmentation, PanopticSegmentation]], categories: CategorySet,
                   *, iou_threshold: float = MATCH_IOU, progress: bool = False) -> dict:
    """Panoptic Quality of in-memory (ground truth, prediction) pairs; no file is written.

    Args:
        pairs: one (ground truth, prediction) pair per image, same (H, W) within a pair.
        categories: the dataset's categories.

    Returns:
        :meth:`PQAccumulator.results`. Errors name the image by its position in ``pairs``.
    """
    accumulator = PQAccumulator(categories, iou_threshold)
    total = len(pairs) if hasattr(pairs, "__len__") else None
    from tqdm.auto import tqdm

    for index, (gt, pred) in enumerate(tqdm(pairs, total=total, desc="PQ", unit="image", disable=not progress)):
        accumulator.update(gt, pred, image_id=index)
    return accumulator.results()


def evaluate_thresholds(pairs: Iterable[tuple[PanopticSegmentation, PanopticSegmentation]],
                        categories: CategorySet, thresholds: Iterable[float]) -> dict[float, dict]:
    """Results at several IoU thresholds from one pass: each image's histogram is computed once.

    Thresholds below 0.5 are allowed, but there the matching is no longer unique (see
    :func:`~panopticlab.metrics.matching.match_overlaps`).

    Returns:
        ``{threshold: PQAccumulator.results()}``.
    """
    accumulators = {float(t): PQAccumulator(categories, t) for t in thresholds}
    for index, (gt, pred) in enumerate(pairs):
        overlaps = overlaps_of(gt, pred, f"image {index}")
        for accumulator in accumulators.values():
            accumulator.add_overlaps(overlaps)
    return {threshold: accumulator.results() for threshold, accumulator in accumulators.items()}
