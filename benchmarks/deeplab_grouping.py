"""Panoptic-DeepLab grouping: the dense K x (H*W) formulation against panopticlab's, in one run.

The dense formulation is detectron2's ``group_pixels`` (every pixel against every centre
in one float32 distance tensor, then argmin), followed by the thing mask. panopticlab's
``group_pixels`` groups only thing pixels with a KD-tree on the CPU (``auto``) or a running
minimum over the centres (``scan``), in float64; both are exact (tests/test_deeplab_postprocess.py).
The end-to-end post-processing (centres, grouping, merge, segments) is timed as well.

Synthetic outputs: ``--centers`` centres on a jittered grid; the heatmap is a Gaussian
(sigma 8) around the nearest centre, so NMS finds exactly those centres; the thing pixels
are the ``--thing-fraction`` of pixels nearest to a centre; offsets point to the nearest
centre plus Gaussian noise (sigma 1.5 px).

Measurement: each method runs in a fresh Python process that first builds the inputs.

* peak RSS, on the first full-size call (after a warm-up on a 64 x 128 image, which loads
  code and starts threads): the resident-set high-water mark (Linux ``VmHWM``, reset
  through ``/proc/self/clear_refs`` just before the call) minus the resident set at that
  moment. This sees every allocation, torch's included. So that freed memory cannot be
  reused unseen, blocks of 128 KiB and more are mmap-ed (glibc ``mallopt``) and the heap
  is trimmed (``malloc_trim``) before the call; Linux and glibc only.
* tracemalloc peak, on the same call: numpy and Python allocations only (torch's CPU
  allocator is invisible to it), for comparison;
* wall time: the median of ``--repeats`` further calls (for the dense formulation, which
  takes seconds, the first call alone).

Run: ``python benchmarks/deeplab_grouping.py [--height 512 --width 1024 --centers 150]``.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import torch
from scipy.spatial import cKDTree

from panopticlab.data import SYNTHETIC_CATEGORIES
from panopticlab.postprocess import group_pixels, panoptic_deeplab_postprocess

METHODS = ("dense", "auto", "scan", "end-to-end")
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def synthetic_outputs(height: int, width: int, num_centers: int, thing_fraction: float, seed: int = 0):
    """(semantic (H, W) int64 ids, heatmap (H, W) f32, offsets (2, H, W) f32, centres (K, 2) int64)."""
    rng = np.random.default_rng(seed)
    rows = max(1, round(np.sqrt(num_centers * height / width)))
    cols = -(-num_centers // rows)
    cell_y, cell_x = height / rows, width / cols
    grid = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), -1).reshape(-1, 2)[:num_centers]
    jitter = rng.uniform(-0.25, 0.25, size=grid.shape) * [cell_y, cell_x]
    centers = np.floor((grid + 0.5) * [cell_y, cell_x] + jitter).astype(np.int64)
    centers = centers[np.lexsort((centers[:, 1], centers[:, 0]))]  # raster order

    ys, xs = np.mgrid[:height, :width]
    pixels = np.stack([ys.ravel(), xs.ravel()], 1)
    distance, nearest = cKDTree(centers).query(pixels)
    heatmap = np.exp(-distance**2 / (2 * 8.0**2)).reshape(height, width).astype(np.float32)
    thing = (distance <= np.quantile(distance, thing_fraction)).reshape(height, width)

    things, stuff = SYNTHETIC_CATEGORIES.thing_ids, SYNTHETIC_CATEGORIES.stuff_ids
    semantic = np.where(ys < height // 2, stuff[0], stuff[1]).astype(np.int64)
    semantic[thing] = np.asarray(things)[nearest.reshape(height, width)[thing] % len(things)]
    offsets = (centers[nearest].T.reshape(2, height, width) - np.stack([ys, xs])
               + rng.normal(0, 1.5, size=(2, height, width))).astype(np.float32)
    return semantic, heatmap, offsets, centers


def dense_group_pixels(center_points: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """detectron2's ``group_pixels``: a [K, H*W] distance matrix over all pixels."""
    height, width = offsets.size()[1:]
    y_coord, x_coord = torch.meshgrid(torch.arange(height, dtype=offsets.dtype),
                                      torch.arange(width, dtype=offsets.dtype), indexing="ij")
    coord = torch.cat((y_coord.unsqueeze(0), x_coord.unsqueeze(0)), dim=0)
    center_loc = (coord + offsets).flatten(1).T.unsqueeze_(0)  # [1, H*W, 2]
    distance = torch.norm(center_points.unsqueeze(1) - center_loc, dim=-1)  # [K, H*W]
    return torch.argmin(distance, dim=0).reshape((height, width)) + 1


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def make_call(method: str, semantic, heatmap, offsets, centers):
    """A no-argument function that runs ``method`` on these inputs."""
    things = torch.from_numpy(np.isin(semantic, SYNTHETIC_CATEGORIES.thing_ids))
    semantic_t, heatmap_t, offsets_t, centers_t = map(torch.from_numpy, (semantic, heatmap, offsets, centers))
    return {
        "dense": lambda: dense_group_pixels(centers_t, offsets_t) * things,
        "auto": lambda: group_pixels(centers_t, offsets_t, things, method="auto"),
        "scan": lambda: group_pixels(centers_t, offsets_t, things, method="scan"),
        "end-to-end": lambda: panoptic_deeplab_postprocess(semantic_t, heatmap_t, offsets_t, SYNTHETIC_CATEGORIES),
    }[method]


def measure(method: str, args) -> dict:
    """Run one method in this process; return wall time and peak memory above the inputs."""
    libc = ctypes.CDLL("libc.so.6")
    # large blocks always from mmap (fresh pages, unmapped on free), never from a heap
    # that still holds freed pages of an earlier allocation
    libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    semantic, heatmap, offsets, centers = synthetic_outputs(args.height, args.width, args.centers,
                                                            args.thing_fraction)
    call = make_call(method, semantic, heatmap, offsets, centers)
    # warm-up on a small image: loads code pages and starts thread pools
    make_call(method, *synthetic_outputs(64, 128, min(args.centers, 8), args.thing_fraction))()
    gc.collect()
    libc.malloc_trim(0)  # give the freed heap of the set-up back, so new pages show in RSS

    # memory: the first full-size call, so that no earlier call's freed heap hides what it needs
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current resident set
    baseline_kib = _rss_kib("VmRSS")
    tracemalloc.start()
    start = time.perf_counter()
    out = call()
    times = [time.perf_counter() - start]
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_kib = _rss_kib("VmHWM")
    # time: the median of the calls after that first one
    if method != "dense":
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - start)

    if method == "end-to-end":
        num_centers = len(out.centers)
        labels = out.instance_map
    else:
        num_centers = len(centers)
        labels = out.numpy()
    return {"method": method, "seconds": statistics.median(times), "repeats": len(times),
            "peak_rss_mb": (peak_kib - baseline_kib) / 1024, "tracemalloc_mb": traced_peak / 2**20,
            "centers": num_centers, "labels_hash": int(np.asarray(labels, np.int64).sum() % (2**61 - 1)),
            "labels": labels.tolist() if args.return_labels else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--centers", type=int, default=150)
    parser.add_argument("--thing-fraction", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--return-labels", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.child:
        print(json.dumps(measure(args.child, args)))
        return

    print(f"{args.height} x {args.width}, {args.centers} centres, {args.thing_fraction:.0%} thing pixels, "
          f"{args.threads} torch threads, torch {torch.__version__}, numpy {np.__version__}")
    results = {}
    for method in METHODS:
        command = [sys.executable, __file__, "--child", method, "--height", str(args.height),
                   "--width", str(args.width), "--centers", str(args.centers),
                   "--thing-fraction", str(args.thing_fraction), "--repeats", str(args.repeats),
                   "--threads", str(args.threads)]
        if method in ("dense", "auto"):
            command.append("--return-labels")
        results[method] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)

    dense = results["dense"]
    print(f"{'method':<34}{'wall time':>12}{'peak RSS':>12}{'tracemalloc':>13}{'speed-up':>10}")
    names = {"dense": "dense K x (H*W), float32 (d2)", "auto": "panopticlab group_pixels (kdtree)",
             "scan": "panopticlab group_pixels (scan)", "end-to-end": "panopticlab full post-processing"}
    for method, r in results.items():
        print(f"{names[method]:<34}{r['seconds'] * 1000:>9.0f} ms{r['peak_rss_mb']:>9.1f} MB"
              f"{r['tracemalloc_mb']:>10.1f} MB{dense['seconds'] / r['seconds']:>9.1f}x")
    print(f"centres found by the end-to-end NMS: {results['end-to-end']['centers']}")
    dense_labels, ours = np.array(dense["labels"]), np.array(results["auto"]["labels"])
    thing = dense_labels > 0
    print(f"thing pixels assigned alike by the float32 dense and the float64 exact grouping: "
          f"{(dense_labels[thing] == ours[thing]).mean():.6%} of {int(thing.sum())}")


if __name__ == "__main__":
    main()
