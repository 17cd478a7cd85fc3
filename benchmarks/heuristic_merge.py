"""The heuristic merge: panopticlab's ``heuristic_merge`` against panopticapi's combine script, in one run.

    python benchmarks/heuristic_merge.py [--images 20 --height 480 --width 640 --detections 100]

The peer is ``combine_to_panoptic_single_core`` from panopticapi's
``combine_semantic_and_instance_predictions.py``: the per-image loop of the reference
script, on its native input (COCO RLE masks, instances already filtered by score and
sorted, as its ``combine_predictions`` does before calling it), writing one PNG per
image. It is timed against

* ``ours + png``: :func:`heuristic_merge` on dense boolean masks, then the same PNG;
* ``ours from rle + png``: the same, starting from the peer's own input (its filtered RLE
  instances and per-category stuff RLEs, decoded with pycocotools inside the timing):
  identical inputs and outputs;
* ``ours``: the merge alone.

Inputs, per image (the defaults are a COCO-sized image and torchvision's 100
detections): a semantic map of elliptic stuff and thing regions over a stuff
background; ``--detections`` elliptic instance masks of random sizes, many overlapping,
with uniform scores (about half pass the 0.5 threshold). Both sides run the published
defaults (score 0.5, overlap 0.5, stuff area 4096). The outputs are checked to be the same
segmentation before anything is timed.

Everything runs on one core (thread pools limited to one thread before numpy is imported,
the process pinned to one CPU where the system allows it). Each timing is the best of
``--repeats`` passes over all images; printed in milliseconds per image.
"""
from __future__ import annotations


from one_core import best_seconds, pin_to_one_core  # noqa: E402  (first: it limits the thread pools)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from panopticapi.combine_semantic_and_instance_predictions import combine_to_panoptic_single_core  # noqa: E402
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_util  # noqa: E402

from panopticlab.data import SYNTHETIC_CATEGORIES as CATEGORIES  # noqa: E402
from panopticlab.data import id_to_rgb, rgb_to_id  # noqa: E402
from panopticlab.postprocess.heuristic import heuristic_merge  # noqa: E402

SCORE, OVERLAP, STUFF_AREA = 0.5, 0.5, 4096
VOID = 255


def ellipse(shape, rng: np.random.Generator, max_radius: float) -> np.ndarray:
    h, w = shape
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(4, max_radius, size=2)
    ys, xs = np.ogrid[:h, :w]
    return ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1


def make_image(rng: np.random.Generator, shape, detections: int):
    """(semantic (H, W) category ids, masks (N, H, W) bool, scores (N,), category ids (N,))."""
    semantic = np.full(shape, rng.choice(CATEGORIES.stuff_ids))
    for _ in range(12):
        semantic[ellipse(shape, rng, max(shape) / 3)] = rng.choice(CATEGORIES.ids)
    masks = np.stack([ellipse(shape, rng, max(shape) / 6) for _ in range(detections)])
    scores = rng.uniform(0, 1, detections)
    labels = rng.choice(CATEGORIES.thing_ids, detections)
    return semantic, masks, scores, labels


def rle(mask: np.ndarray) -> dict:
    return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))


def peer_inputs(images):
    """panopticapi's per-image dictionaries, as ``combine_predictions`` prepares them."""
    img_id2img, inst_by_image, sem_by_image = {}, {}, {}
    for image_id, (semantic, masks, scores, labels) in enumerate(images):
        h, w = semantic.shape
        img_id2img[image_id] = {"id": image_id, "height": h, "width": w, "file_name": f"{image_id}.jpg"}
        instances = [{"segmentation": rle(m), "score": float(s), "category_id": int(c)}
                     for m, s, c in zip(masks, scores, labels) if s >= SCORE]
        inst_by_image[image_id] = sorted(instances, key=lambda el: -el["score"])
        sem_by_image[image_id] = [{"segmentation": rle(semantic == c), "category_id": c}
                                  for c in CATEGORIES.stuff_ids if (semantic == c).any()]
    categories = {c["id"]: c for c in CATEGORIES.to_coco()}
    return img_id2img, inst_by_image, sem_by_image, categories


def run_peer(inputs, folder: Path):
    img_id2img, inst_by_image, sem_by_image, categories = inputs
    with contextlib.redirect_stdout(io.StringIO()):  # it reports progress every 100 images
        return combine_to_panoptic_single_core(0, list(img_id2img), img_id2img, inst_by_image, sem_by_image,
                                               str(folder), OVERLAP, STUFF_AREA, categories)


def merge(semantic, masks, scores, labels):
    return heuristic_merge(semantic, masks, scores, labels, CATEGORIES, score_threshold=SCORE,
                           overlap_threshold=OVERLAP, stuff_area_limit=STUFF_AREA)


def run_ours(images, folder: Path | None):
    for image_id, image in enumerate(images):
        result = merge(*image)
        if folder is not None:
            Image.fromarray(id_to_rgb(result.panoptic.id_map)).save(folder / f"{image_id}.png")


def run_ours_from_rle(images, inputs, folder: Path):
    """From the peer's own input: its score-filtered, sorted RLE instances and stuff RLEs."""
    _, inst_by_image, sem_by_image, _ = inputs
    for image_id, (semantic, _, _, _) in enumerate(images):
        instances, stuff = inst_by_image[image_id], sem_by_image[image_id]
        shape = semantic.shape
        masks = np.zeros((0, *shape), bool)
        if instances:
            decoded = mask_util.decode([i["segmentation"] for i in instances])  # (H, W, N), Fortran order
            masks = np.ascontiguousarray(decoded.transpose(2, 0, 1), dtype=bool)
        stuff_map = np.full(shape, VOID)
        for record in stuff:
            stuff_map[mask_util.decode(record["segmentation"]) == 1] = record["category_id"]
        result = merge(stuff_map, masks, [i["score"] for i in instances], [i["category_id"] for i in instances])
        Image.fromarray(id_to_rgb(result.panoptic.id_map)).save(folder / f"{image_id}.png")


def check_same_output(images, folder: Path) -> None:
    """Our segments and panopticapi's PNGs partition the pixels identically."""
    for image_id, image in enumerate(images):
        ours = merge(*image).panoptic.id_map
        theirs = rgb_to_id(np.array(Image.open(folder / f"{image_id}.png")))
        # the same partition: every (ours, theirs) id pair is one-to-one
        pairs = np.unique(np.stack([ours.ravel(), theirs.ravel()]), axis=1)
        if len(np.unique(pairs[0])) != pairs.shape[1] or len(np.unique(pairs[1])) != pairs.shape[1]:
            raise AssertionError(f"image {image_id}: the two merges differ")
        if not np.array_equal(ours == 0, theirs == 0):
            raise AssertionError(f"image {image_id}: the void pixels differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(pin_to_one_core())
    rng = np.random.default_rng(args.seed)
    images = [make_image(rng, (args.height, args.width), args.detections) for _ in range(args.images)]
    inputs = peer_inputs(images)
    kept = np.mean([len(v) for v in inputs[1].values()])
    print(f"{args.images} images of {args.height} x {args.width}, {args.detections} detections each "
          f"({kept:.0f} with score >= {SCORE})")

    with tempfile.TemporaryDirectory() as tmp:
        peer_folder, our_folder = Path(tmp, "peer"), Path(tmp, "ours")
        peer_folder.mkdir(), our_folder.mkdir()
        run_peer(inputs, peer_folder)
        check_same_output(images, peer_folder)
        run_ours_from_rle(images, inputs, our_folder)
        check_same_output(images, our_folder)
        timings = {
            "panopticapi combine (rle + png)": best_seconds(lambda: run_peer(inputs, peer_folder), args.repeats),
            "ours + png": best_seconds(lambda: run_ours(images, our_folder), args.repeats),
            "ours from rle + png": best_seconds(lambda: run_ours_from_rle(images, inputs, our_folder), args.repeats),
            "ours": best_seconds(lambda: run_ours(images, None), args.repeats),
        }
    peer = timings["panopticapi combine (rle + png)"]
    print(f"{'method':34s} {'ms / image':>10s} {'speed-up':>9s}")
    for name, seconds in timings.items():
        print(f"{name:34s} {1000 * seconds / args.images:10.2f} {peer / seconds:8.2f}x")


if __name__ == "__main__":
    main()
