"""Panoptic-DeepLab post-processing: detectron2's dense formulation against panopticlab's, in one run.

Both sides do the whole post-processing of one image, from the three network outputs to
the panoptic map:

* dense (detectron2's ``get_panoptic_segmentation``, projects/Panoptic-DeepLab, step for step):
  max-pool NMS and top-k, a float32 K x (H*W) distance tensor over every pixel and its
  argmin, one ``torch.mode`` per instance for the majority vote, one full-image mask per
  thing category, instance and stuff category for the merge;
* ours (:func:`panopticlab.postprocess.panoptic_deeplab_postprocess`): the same steps,
  exact in float64, plus the segment list (areas, boxes, scores) and the records the
  chapter draws.

Inputs (the same for both, made from ``--seed``), meant to look like a network's output on
a street scene rather than a best case:

* instances: ``K`` centres on a jittered grid; the thing pixels are the ``--thing-fraction``
  of the image nearest to a centre, each instance a thing category (cycling), with 3 % of
  its pixels relabelled to another thing category (the majority vote has work to do);
* stuff: the remaining pixels split into a dozen regions (Voronoi cells of 12 random
  seeds, stuff categories 11-14 cycling) plus three small blobs of category 15 that stay
  below the stuff area limit (2048 pixels) and become void;
* heatmap: a Gaussian (sigma 8) around the nearest centre, so NMS finds exactly those
  centres; with ``K = 0`` (the fixed per-image cost) the instances of a 60-centre layout
  remain in the semantic map but no heatmap value reaches the threshold;
* offsets: on thing pixels, to the instance's centre plus Gaussian noise of 1 to 2 px
  (sigma drawn per instance); on stuff pixels, noise only (sigma 10 px).

Measurement, for every centre count in ``--centers`` and both sides, each in two fresh
Python processes that build the inputs, then warm up on a 64 x 128 image (code pages,
thread pools):

* memory (first process), on the first full-size call: the resident-set high-water mark
  (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call) minus the
  resident set at that moment. This sees every allocation, torch's included. So that
  freed memory cannot be reused unseen, blocks of 128 KiB and more are mmap-ed (glibc
  ``mallopt``) and the heap is trimmed (``malloc_trim``) before the call; Linux and glibc
  only. The tracemalloc peak of the same call counts numpy and Python allocations only
  (torch's CPU allocator is invisible to it), for comparison;
* wall time (second process, with the allocator's default settings: the fixed mmap
  threshold of the first process makes every large temporary a fresh, page-faulted
  mapping, which doubles the time of many short passes): one full-size call to warm up,
  then the median of ``--repeats`` calls (``--dense-repeats`` for the dense formulation,
  which takes seconds).

The labels of both sides are compared pixel by pixel: they differ only where detectron2's
float32 norms round two centres' distances differently from the float64 ones.

With ``--nearest``, the nearest-centre step alone (the choice of
:func:`panopticlab.postprocess.nearest_center`'s method rests on it), in this process, on the
thing pixels' votes of the same inputs: ours (the table of pure cells, the rest scanned)
against the plain scan (a running minimum over the centres) and scipy's KD-tree (nearest
centre only: ties not resolved to the first centre, so a lower bound on an exact KD-tree
method); the median of ``--repeats`` calls after one to warm up.

Run: ``python benchmarks/deeplab_grouping.py [--height 512 --width 1024 --centers 0 60 150] [--nearest]``.
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
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from panopticlab.data import SYNTHETIC_CATEGORIES as CATEGORIES
from panopticlab.postprocess import nearest_center, panoptic_deeplab_postprocess
from panopticlab.postprocess.grouping import _pixel_votes, _scan

SIDES = ("ours", "dense")
STUFF_REGIONS = 12
LAYOUT_CENTERS_WHEN_NONE = 60
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
VOID = -1


def synthetic_outputs(height: int, width: int, num_centers: int, thing_fraction: float, seed: int = 0):
    """(semantic (H, W) int64 ids, heatmap (H, W) f32, offsets (2, H, W) f32, centres (K, 2) int64)."""
    rng = np.random.default_rng(seed)
    layout = num_centers or LAYOUT_CENTERS_WHEN_NONE
    rows = max(1, round(np.sqrt(layout * height / width)))
    cols = -(-layout // rows)
    cell_y, cell_x = height / rows, width / cols
    grid = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), -1).reshape(-1, 2)[:layout]
    jitter = rng.uniform(-0.25, 0.25, size=grid.shape) * [cell_y, cell_x]
    centers = np.floor((grid + 0.5) * [cell_y, cell_x] + jitter).astype(np.int64)
    centers = centers[np.lexsort((centers[:, 1], centers[:, 0]))]  # raster order

    ys, xs = np.mgrid[:height, :width]
    pixels = np.stack([ys.ravel(), xs.ravel()], 1)
    distance, nearest = cKDTree(centers).query(pixels)
    distance, nearest = distance.reshape(height, width), nearest.reshape(height, width)
    thing = distance <= np.quantile(distance, thing_fraction)

    things, stuff = np.asarray(CATEGORIES.thing_ids), np.asarray(CATEGORIES.stuff_ids)
    # stuff: Voronoi cells of a dozen seeds, the first four stuff categories cycling ...
    seeds = rng.uniform(0, [height, width], size=(STUFF_REGIONS, 2))
    region = cKDTree(seeds).query(pixels)[1].reshape(height, width)
    semantic = stuff[:4][region % 4].astype(np.int64)
    # ... and three small blobs of the fifth, below the stuff area limit together
    for y, x in rng.uniform([20, 20], [height - 20, width - 20], size=(3, 2)).astype(int):
        semantic[y - 12:y + 12, x - 12:x + 12] = stuff[4]
    semantic[thing] = things[nearest[thing] % len(things)]
    relabel = thing & (rng.random((height, width)) < 0.03)
    semantic[relabel] = rng.choice(things, size=int(relabel.sum()))

    sigma = rng.uniform(1.0, 2.0, size=len(centers))[nearest]
    offsets = np.where(thing, centers[nearest].transpose(2, 0, 1) - np.stack([ys, xs])
                       + rng.normal(0, 1, size=(2, height, width)) * sigma,
                       rng.normal(0, 10, size=(2, height, width))).astype(np.float32)
    heatmap = np.exp(-distance**2 / (2 * 8.0**2)).astype(np.float32)
    if num_centers == 0:
        heatmap *= 0.09  # below the 0.1 threshold everywhere
        centers = centers[:0]
    return semantic, heatmap, offsets, centers


def detectron2_panoptic(sem_seg, center_heatmap, offsets, thing_ids, label_divisor=1000, stuff_area=2048,
                        void_label=VOID, threshold=0.1, nms_kernel=7, top_k=200):
    """detectron2's ``get_panoptic_segmentation`` (find_instance_center, group_pixels,
    merge_semantic_and_instance), step for step as detectron2 computes them.

    sem_seg (1, H, W) int64, center_heatmap (1, H, W), offsets (2, H, W); returns (H, W) int64.
    """
    center_heatmap = F.threshold(center_heatmap, threshold, -1)
    pooled = F.max_pool2d(center_heatmap, kernel_size=nms_kernel, stride=1, padding=(nms_kernel - 1) // 2)
    center_heatmap[center_heatmap != pooled] = -1
    center_heatmap = center_heatmap.squeeze()
    top_k_scores, _ = torch.topk(torch.flatten(center_heatmap), top_k)
    center_points = torch.nonzero(center_heatmap > top_k_scores[-1].clamp_(min=0))
    thing_seg = torch.zeros_like(sem_seg)
    for thing_class in thing_ids:
        thing_seg[sem_seg == thing_class] = 1
    if center_points.size(0) == 0:
        ins_seg = torch.zeros_like(sem_seg)
    else:
        height, width = offsets.size()[1:]
        y_coord, x_coord = torch.meshgrid(torch.arange(height, dtype=offsets.dtype),
                                          torch.arange(width, dtype=offsets.dtype), indexing="ij")
        coord = torch.cat((y_coord.unsqueeze(0), x_coord.unsqueeze(0)), dim=0)
        center_loc = (coord + offsets).flatten(1).T.unsqueeze_(0)  # [1, H*W, 2]
        distance = torch.norm(center_points.unsqueeze(1) - center_loc, dim=-1)  # [K, H*W]
        ins_seg = thing_seg * (torch.argmin(distance, dim=0).reshape((1, height, width)) + 1)
    pan_seg = torch.zeros_like(sem_seg) + void_label
    is_thing = (ins_seg > 0) & (thing_seg > 0)
    tracker = Counter()
    for ins_id in torch.unique(ins_seg):
        if ins_id == 0:
            continue
        thing_mask = (ins_seg == ins_id) & is_thing
        if torch.nonzero(thing_mask).size(0) == 0:
            continue
        class_id, _ = torch.mode(sem_seg[thing_mask].view(-1))
        tracker[class_id.item()] += 1
        pan_seg[thing_mask] = class_id * label_divisor + tracker[class_id.item()]
    for class_id in torch.unique(sem_seg):
        if class_id.item() in thing_ids:
            continue
        stuff_mask = (sem_seg == class_id) & (ins_seg == 0)
        if stuff_mask.sum().item() >= stuff_area:
            pan_seg[stuff_mask] = class_id * label_divisor
    return pan_seg[0]


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def make_call(side: str, semantic, heatmap, offsets):
    """A no-argument function that runs one side on these inputs and returns its (H, W) label map."""
    semantic_t, heatmap_t, offsets_t = map(torch.from_numpy, (semantic, heatmap, offsets))
    if side == "ours":
        return lambda: panoptic_deeplab_postprocess(semantic_t, heatmap_t, offsets_t, CATEGORIES)
    # detectron2 thresholds the heatmap in place: give each call its own copy, outside the timing
    return lambda: detectron2_panoptic(semantic_t[None], heatmap_t[None].clone(), offsets_t, CATEGORIES.thing_ids)


def labels_of(side: str, out) -> np.ndarray:
    return out.label_divisor_map(void=VOID) if side == "ours" else out.numpy()


def measure(side: str, mode: str, args) -> dict:
    """Run one side in this process: its peak memory above the inputs and its labels
    (``mode="memory"``), or its wall time (``mode="time"``)."""
    libc = ctypes.CDLL("libc.so.6")
    if mode == "memory":
        # large blocks always from mmap (fresh pages, unmapped on free), never from a heap
        # that still holds freed pages of an earlier allocation
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    inputs = synthetic_outputs(args.height, args.width, args.num_centers, args.thing_fraction, args.seed)[:3]
    call = make_call(side, *inputs)
    # warm-up on a small image: loads code pages and starts thread pools
    make_call(side, *synthetic_outputs(64, 128, min(args.num_centers, 8), args.thing_fraction)[:3])()
    gc.collect()

    if mode == "time":
        call()  # the first full-size call grows the heap; the timed ones find it
        times = []
        for _ in range(args.dense_repeats if side == "dense" else args.repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return {"seconds": statistics.median(times), "repeats": len(times)}

    libc.malloc_trim(0)  # give the freed heap of the set-up back, so new pages show in RSS
    # memory: the first full-size call, so that no earlier call's freed heap hides what it needs
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current resident set
    baseline_kib = _rss_kib("VmRSS")
    tracemalloc.start()
    out = call()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_kib = _rss_kib("VmHWM")
    labels = labels_of(side, out)
    return {"peak_rss_mb": (peak_kib - baseline_kib) / 1024, "tracemalloc_mb": traced_peak / 2**20,
            "centers": len(out.centers) if side == "ours" else None,
            "segments": len(np.unique(labels[labels != VOID])), "labels": labels.tolist()}


def nearest_step(args) -> None:
    """Time the nearest-centre step alone against the scan and a KD-tree (``--nearest``)."""
    print(f"{args.height} x {args.width}, {args.thing_fraction:.0%} thing pixels' votes (1-2 px noise); "
          f"{args.threads} torch threads; median of {args.repeats} calls after a warm-up")
    print(f"{'centres':>7}  {'votes':>9}  {'ours':>9}  {'scan':>9}  {'KD-tree':>9}  {'vs scan':>8}  {'vs KD-tree':>10}")
    for num_centers in args.centers:
        semantic, _, offsets, centers = synthetic_outputs(args.height, args.width, num_centers,
                                                          args.thing_fraction, args.seed)
        if num_centers < 2:
            continue
        votes = _pixel_votes(offsets, np.flatnonzero(np.isin(semantic, CATEGORIES.thing_ids)))
        votes_t, centers_t, centers64 = torch.from_numpy(votes), torch.from_numpy(centers), centers.astype(np.float64)
        tree = cKDTree(centers64)
        calls = {"ours": lambda: nearest_center(votes_t, centers_t).numpy(),
                 "scan": lambda: _scan(votes, centers64),
                 "KD-tree": lambda: tree.query(votes, workers=args.threads)[1]}
        seconds, answers = {}, {}
        for name, call in calls.items():
            answers[name] = call()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            seconds[name] = statistics.median(times)
        assert np.array_equal(answers["ours"], answers["scan"]), "the methods disagree"
        ms = {name: f"{value * 1000:>6.1f} ms" for name, value in seconds.items()}
        print(f"{num_centers:>7}  {len(votes):>9}  {ms['ours']}  {ms['scan']}  {ms['KD-tree']}  "
              f"{seconds['scan'] / seconds['ours']:>7.1f}x  "
              f"{seconds['KD-tree'] / seconds['ours']:>9.1f}x   (KD-tree agrees on "
              f"{(answers['KD-tree'] == answers['ours']).mean():.4%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--centers", type=int, nargs="+", default=[0, 60, 150])
    parser.add_argument("--thing-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dense-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--nearest", action="store_true", help="time the nearest-centre step alone against its peers")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("memory", "time"), help=argparse.SUPPRESS)
    parser.add_argument("--num-centers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.child:
        print(json.dumps(measure(args.child, args.mode, args)))
        return
    if args.nearest:
        nearest_step(args)
        return

    print(f"{args.height} x {args.width}, {args.thing_fraction:.0%} thing pixels, {STUFF_REGIONS} stuff regions "
          f"+ 3 small ones, thing votes with 1-2 px noise, stuff offsets with 10 px noise; {args.threads} torch "
          f"threads, torch {torch.__version__}, numpy {np.__version__}; median of {args.repeats} (ours) and "
          f"{args.dense_repeats} (dense) calls after a warm-up; memory of the first call, in another process")
    print(f"{'centres':>7}  {'side':<40}{'wall time':>11}{'peak RSS':>11}{'tracemalloc':>13}{'speed-up':>10}")
    names = {"ours": "panopticlab panoptic_deeplab_postprocess",
             "dense": "detectron2 get_panoptic_segmentation"}
    for num_centers in args.centers:
        results = {}
        for side in SIDES:
            results[side] = {}
            for mode in ("memory", "time"):
                command = [sys.executable, __file__, "--child", side, "--mode", mode,
                           "--num-centers", str(num_centers), "--height", str(args.height),
                           "--width", str(args.width), "--thing-fraction", str(args.thing_fraction),
                           "--seed", str(args.seed), "--repeats", str(args.repeats),
                           "--dense-repeats", str(args.dense_repeats), "--threads", str(args.threads)]
                run = subprocess.run(command, check=True, capture_output=True, text=True)
                results[side].update(json.loads(run.stdout))
        dense = results["dense"]
        for side, r in results.items():
            print(f"{num_centers:>7}  {names[side]:<40}{r['seconds'] * 1000:>8.1f} ms{r['peak_rss_mb']:>8.1f} MB"
                  f"{r['tracemalloc_mb']:>10.1f} MB{dense['seconds'] / r['seconds']:>9.1f}x")
        ours_labels, dense_labels = np.array(results["ours"]["labels"]), np.array(dense["labels"])
        print(f"{'':>9}centres found: {results['ours']['centers']}; segments: {results['ours']['segments']} "
              f"(ours), {dense['segments']} (dense); pixels labelled alike: {(ours_labels == dense_labels).mean():.6%}")


if __name__ == "__main__":
    main()
