"""Speed of Panoptic Quality evaluation: panopticlab, panopticapi and hotcoco on one set, in one run.

The set: ``--num`` random scenes of 640 x 480 with simulated predictions (shifted and
rescaled masks, merges, splits, misses, category swaps, false positives, crowd and
void), written in COCO panoptic format (RGB PNGs + JSON). Every tool evaluates the same
files; the script checks that they agree to 1e-9 and prints wall times and ratios.

    python benchmarks/pq_speed.py                 # 500 images: a few minutes on 2 cores
    python benchmarks/pq_speed.py --num 100 --repeat 1

Configurations: each tool with one process / thread, and with its default parallelism
(panopticapi: ``multiprocessing.cpu_count()`` processes; hotcoco: one thread per core;
panopticlab: ``--workers``, default ``os.cpu_count()``). hotcoco runs in a subprocess so
that its thread count (``RAYON_NUM_THREADS``) can be set; its time is measured inside.

panopticlab is also run in new processes, with its allocator set-up (``tuned``, the
default) and without it (``untuned``: glibc returns freed arrays to the system after
every image; see :func:`~panopticlab.metrics.files.reuse_freed_memory`).

The PNGs are written with Pillow's default settings, as panopticapi and COCO's own files
are. ``--pred-level 1`` rewrites the predictions at zlib level 1, as panopticlab's
``write_predictions`` writes them (faster to decode, for every tool). Two more rows
split panopticlab's time: decoding the two PNGs of each image alone, and everything
else (the in-memory path on ids already decoded).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from panopticlab.data import SYNTHETIC_CATEGORIES
from panopticlab.data.atomic import write_png
from panopticlab.metrics.evaluate import evaluate_folders
from panopticlab.metrics.files import load_result_set, png_decoder, read_id_png
from panopticlab.metrics.pq import PQAccumulator
from panopticlab.metrics.simulate import random_pair, write_result_set

HOTCOCO_SNIPPET = """
import json, sys, time
from hotcoco import panoptic
gt_json, pred_json, gt_folder, pred_folder = sys.argv[1:5]
start = time.perf_counter()
evaluator = panoptic.PanopticEval(gt_json, pred_json, gt_folder=gt_folder, pred_folder=pred_folder)
evaluator.evaluate()
seconds = time.perf_counter() - start
results = evaluator.results()
print(json.dumps({"seconds": seconds, "groups": {g: results[g] for g in ("All", "Things", "Stuff")}}))
"""

# one evaluation in a fresh process, with or without reuse_freed_memory(), to show what it is worth
PANOPTICLAB_SNIPPET = """
import json, sys, time
from panopticlab.metrics import evaluate, files
gt_json, pred_json, gt_folder, pred_folder, allocator = sys.argv[1:6]
if allocator == "untuned":
    files.reuse_freed_memory = lambda: None  # leave glibc's allocator thresholds as they come
files.png_decoder()
start = time.perf_counter()
results = evaluate.evaluate_folders(gt_json, pred_json, gt_folder, pred_folder, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "groups": {g: results[g] for g in ("All", "Things", "Stuff")}}))
"""


def make_set(folder: Path, num: int, size: tuple[int, int], seed: int, pred_level: int | None) -> dict:
    rng = np.random.default_rng(seed)
    pairs = (random_pair(rng, size) for _ in range(num))
    paths = write_result_set(folder, tqdm(pairs, total=num, desc="writing the set", unit="image"),
                             SYNTHETIC_CATEGORIES)
    if pred_level is not None:
        for png in tqdm(sorted(paths["pred_folder"].glob("*.png")), desc=f"predictions at level {pred_level}"):
            write_png(png, np.asarray(Image.open(png)), compress_level=pred_level)
    return paths


def run_panopticlab(paths: dict, workers: int) -> tuple[float, dict]:
    start = time.perf_counter()
    results = evaluate_folders(paths["gt_json"], paths["pred_json"], paths["gt_folder"], paths["pred_folder"],
                               workers=workers, progress=False)
    return time.perf_counter() - start, results


def run_panopticlab_in_memory(paths: dict, num: int) -> tuple[float, int]:
    """Time of the in-memory path (id maps already decoded) on the first ``num`` images."""
    categories, jobs = load_result_set(paths["gt_json"], paths["pred_json"], paths["gt_folder"], paths["pred_folder"])
    decoded = [job.read() for job in jobs[:num]]
    accumulator = PQAccumulator(categories)
    start = time.perf_counter()
    for gt_map, gt, pred_map, pred in decoded:
        accumulator.update_arrays(gt_map, gt, pred_map, pred)
    return time.perf_counter() - start, len(decoded)


def run_decoding_only(paths: dict, num: int) -> tuple[float, int]:
    """Time of decoding the two PNGs of each of the first ``num`` images, and nothing else."""
    _, jobs = load_result_set(paths["gt_json"], paths["pred_json"], paths["gt_folder"], paths["pred_folder"])
    start = time.perf_counter()
    for job in jobs[:num]:
        read_id_png(job.gt_png)
        read_id_png(job.pred_png)
    return time.perf_counter() - start, len(jobs[:num])


def run_panopticapi(paths: dict, processes: int | None) -> tuple[float, dict]:
    """panopticapi's ``pq_compute``; ``processes=1`` makes its pool a single worker."""
    from panopticapi import evaluation

    patch = (mock.patch.object(evaluation.multiprocessing, "cpu_count", return_value=processes)
             if processes else contextlib.nullcontext())
    start = time.perf_counter()
    with patch, contextlib.redirect_stdout(io.StringIO()):
        results = evaluation.pq_compute(str(paths["gt_json"]), str(paths["pred_json"]),
                                        str(paths["gt_folder"]), str(paths["pred_folder"]))
    return time.perf_counter() - start, results


def run_hotcoco(paths: dict, threads: int | None) -> tuple[float, dict]:
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    else:
        env.pop("RAYON_NUM_THREADS", None)
    return run_snippet(HOTCOCO_SNIPPET, paths, env=env)


def run_panopticlab_fresh(paths: dict, allocator: str) -> tuple[float, dict]:
    """panopticlab, one process, in a new interpreter; ``allocator``: ``"tuned"`` or ``"untuned"``."""
    return run_snippet(PANOPTICLAB_SNIPPET, paths, allocator)


def run_snippet(snippet: str, paths: dict, *extra: str, env: dict | None = None) -> tuple[float, dict]:
    """Run a timing snippet in a new interpreter; it prints its own seconds and results as JSON."""
    arguments = [str(paths[k]) for k in ("gt_json", "pred_json", "gt_folder", "pred_folder")]
    done = subprocess.run([sys.executable, "-c", snippet, *arguments, *extra], env=env, check=True,
                          capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["seconds"], report["groups"]


def best_of(repeat: int, run, *arguments):
    times, results = [], None
    for _ in range(repeat):
        seconds, results = run(*arguments)
        times.append(seconds)
    return min(times), results


def check_agreement(name: str, reference: dict, results: dict) -> None:
    for group in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq", "n"):
            if abs(reference[group][key] - results[group][key]) > 1e-9:
                raise SystemExit(f"{name} disagrees with panopticlab on {group} {key}: "
                                 f"{results[group][key]} vs {reference[group][key]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=500, help="number of images (default 500)")
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="panopticlab's parallel workers")
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", default=None, help="where to write the set (default: a temporary folder)")
    parser.add_argument("--skip-panopticapi-default", action="store_true",
                        help="do not time panopticapi with its default number of processes")
    parser.add_argument("--pred-level", type=int, default=None, choices=range(10), metavar="0-9",
                        help="rewrite the prediction PNGs at this zlib level (panopticlab writes level 1)")
    args = parser.parse_args(argv)
    load_at_start = os.getloadavg()[0]  # other work on the machine skews every row: say how busy it was

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.folder or scratch)
        paths = make_set(folder, args.num, tuple(args.size), args.seed, args.pred_level)
        decoder = png_decoder().__name__  # import the decoder before timing, as the other tools are imported

        cpus = os.cpu_count()
        rows = []
        seconds, reference = best_of(args.repeat, run_panopticlab, paths, 1)
        rows.append(("panopticlab", "1 process", seconds))
        seconds, results = best_of(args.repeat, run_panopticlab, paths, args.workers)
        check_agreement("panopticlab with workers", reference, results)
        rows.append(("panopticlab", f"{args.workers} processes (--workers)", seconds))
        for allocator in ("tuned", "untuned"):
            seconds, results = best_of(args.repeat, run_panopticlab_fresh, paths, allocator)
            check_agreement(f"panopticlab in a new process ({allocator})", reference, results)
            rows.append(("panopticlab", f"1 new process, {allocator}", seconds))
        seconds, results = best_of(1, run_panopticapi, paths, 1)
        check_agreement("panopticapi", reference, results)
        rows.append(("panopticapi", "1 process", seconds))
        if not args.skip_panopticapi_default:
            seconds, results = best_of(1, run_panopticapi, paths, None)
            check_agreement("panopticapi (default)", reference, results)
            rows.append(("panopticapi", f"default: {cpus} processes", seconds))
        seconds, results = best_of(args.repeat, run_hotcoco, paths, 1)
        check_agreement("hotcoco", reference, results)
        rows.append(("hotcoco", "1 thread", seconds))
        seconds, results = best_of(args.repeat, run_hotcoco, paths, None)
        check_agreement("hotcoco (default)", reference, results)
        rows.append(("hotcoco", f"default: {cpus} threads", seconds))
        memory_seconds, memory_images = best_of(args.repeat, run_panopticlab_in_memory, paths, min(args.num, 50))
        decoding_seconds, decoding_images = best_of(args.repeat, run_decoding_only, paths, min(args.num, 50))

    ours_single = rows[0][2]
    levels = "Pillow's default" + (f", predictions at level {args.pred_level}" if args.pred_level is not None else "")
    print(f"\n{args.num} images of {args.size[1]}x{args.size[0]} ({levels}), {cpus} CPUs, load average "
          f"{load_at_start:.2f} before the run; all tools agree to 1e-9 (PQ {100 * reference['All']['pq']:.2f}); "
          f"panopticlab decodes with {decoder}\n")
    print(f"{'tool':12s} {'configuration':28s} {'wall s':>8s} {'ms/image':>9s} {'time / panopticlab 1 process':>30s}")
    for tool, configuration, seconds in rows:
        print(f"{tool:12s} {configuration:28s} {seconds:8.2f} {1000 * seconds / args.num:9.2f} "
              f"{seconds / ours_single:29.2f}x")
    memory_ms = 1000 * memory_seconds / memory_images
    print(f"{'panopticlab':12s} {'in memory (no PNG decoding)':28s} {'':8s} {memory_ms:9.2f}")
    decoding_ms = 1000 * decoding_seconds / decoding_images
    print(f"{'panopticlab':12s} {'decoding the 2 PNGs alone':28s} {'':8s} {decoding_ms:9.2f}")
    by = {(tool, configuration.split(' ')[0]): seconds for tool, configuration, seconds in rows}
    api_single, ours_parallel = by[("panopticapi", "1")], rows[1][2]
    print(f"\nspeed-up over panopticapi's single-process pq_compute: {api_single / ours_single:.1f}x with 1 process, "
          f"{api_single / ours_parallel:.1f}x with {args.workers}")
    if ("panopticapi", "default:") in by:
        print(f"speed-up over panopticapi's default ({cpus} processes) with {args.workers} processes: "
              f"{by[('panopticapi', 'default:')] / ours_parallel:.1f}x")
    print(f"hotcoco / panopticlab time: {by[('hotcoco', '1')] / ours_single:.2f} (1 thread vs 1 process), "
          f"{by[('hotcoco', 'default:')] / ours_parallel:.2f} (defaults); above 1 means panopticlab is faster")
    fresh = {configuration: seconds for tool, configuration, seconds in rows if "new process" in configuration}
    print(f"allocator set-up: a new process takes {fresh['1 new process, untuned'] / fresh['1 new process, tuned']:.2f}"
          f" times as long without reuse_freed_memory()")


if __name__ == "__main__":
    main()
