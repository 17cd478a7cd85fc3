"""Shared by the converter tests: the built-in synthetic scenes written in each source format that
``panopticlab data convert`` reads, so that converting them back can be compared with the scenes."""
import json

import numpy as np
from PIL import Image

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.synthetic import render_scene

VOID = 255  # the void value of the semantic and stuff maps written here
SIZE = (40, 56)


def scenes(num=4, size=SIZE, seed=3):
    """Synthetic samples with measured statistics (several crowd regions among them)."""
    samples = [render_scene(i, size=size, seed=seed, split="val") for i in range(num)]
    for sample in samples:
        sample.panoptic = sample.panoptic.with_statistics()
    return samples


def save_png(path, array, mode=None):
    """Save (H, W) ids as a PNG: 8-bit grey (uint8), 16-bit grey (uint16) or palette (``mode="P"``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "P":
        image = Image.fromarray(array.astype(np.uint8), "P")
        image.putpalette(list(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8)))
    else:
        image = Image.fromarray(array)
    image.save(path)
    return path


def save_image(path, sample):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample.image).save(path)


def semantic_and_instances(sample):
    """(semantic uint8 category ids, VOID on void; instance uint16 ids, 0 off things and on crowd)."""
    pan = sample.panoptic
    semantic = pan.category_map(void=VOID).astype(np.uint8)
    instances = np.zeros(pan.shape, np.uint16)
    for number, segment in enumerate(pan.segments, start=1):
        if CATS.isthing(segment.category_id) and not segment.iscrowd:
            instances[pan.id_map == segment.id] = 300 + number  # beyond 8 bits: a 16-bit PNG is needed
    return semantic, instances


def write_semantic_source(root, samples, palette=False, images=True):
    """``root/semantic/<key>.png`` (palette PNGs when ``palette``), ``root/instances/<key>.png`` (16-bit,
    only for images with things) and ``root/images/<key>.png``; returns ``root``."""
    for sample in samples:
        key = f"{sample.image_id:012d}"
        semantic, instances = semantic_and_instances(sample)
        save_png(root / "semantic" / f"{key}.png", semantic, "P" if palette else None)
        if any(CATS.isthing(s.category_id) for s in sample.panoptic.segments):
            save_png(root / "instances" / f"{key}.png", instances)
        if images:
            save_image(root / "images" / f"{key}.png", sample)
    (root / "instances").mkdir(parents=True, exist_ok=True)
    return root


def divisor_map(sample, divisor=1000):
    """Cityscapes-style uint16 labels: stuff and crowd the bare category, instance k of category c is
    ``c * divisor + k`` (k from 0, as Cityscapes counts), void 0."""
    pan = sample.panoptic
    labels = np.zeros(pan.shape, np.uint16)
    next_k = {}
    for segment in pan.segments:
        value = segment.category_id
        if CATS.isthing(segment.category_id) and not segment.iscrowd:
            k = next_k.get(segment.category_id, 0)
            next_k[segment.category_id] = k + 1
            value = segment.category_id * divisor + k
        labels[pan.id_map == segment.id] = value
    return labels


def write_divisor_source(root, samples, divisor=1000):
    """Cityscapes' layout: ``root/gtFine/val/<city>/<key>_gtFine_instanceIds.png`` and
    ``root/leftImg8bit/val/<city>/<key>_leftImg8bit.png``; returns ``root``."""
    for sample in samples:
        city = "aachen" if sample.image_id % 2 else "bremen"
        key = f"{city}_000000_{sample.image_id:06d}"
        save_png(root / "gtFine" / "val" / city / f"{key}_gtFine_instanceIds.png", divisor_map(sample, divisor))
        save_image(root / "leftImg8bit" / "val" / city / f"{key}_leftImg8bit.png", sample)
    return root


def write_coco_source(root, samples, rle="compressed", thing_placeholders=True):
    """``root/instances.json`` (one RLE annotation per thing segment; ``rle`` "compressed" or
    "uncompressed") and ``root/stuff/<stem>.png`` (stuff ids, VOID on void; under things their
    category id when ``thing_placeholders``, as COCO-Stuff's stuffthingmaps, else VOID)."""
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for sample in samples:
        pan = sample.panoptic
        height, width = pan.shape
        file_name = f"{sample.image_id:012d}.jpg"
        images.append({"id": sample.image_id, "file_name": file_name, "height": height, "width": width})
        stuff = np.full(pan.shape, VOID, np.uint8)
        for segment in pan.segments:
            mask = pan.id_map == segment.id
            if not CATS.isthing(segment.category_id):
                stuff[mask] = segment.category_id
                continue
            if thing_placeholders:
                stuff[mask] = segment.category_id
            if rle == "compressed":
                encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                encoded["counts"] = encoded["counts"].decode("ascii")
            else:
                encoded = {"size": [height, width], "counts": uncompressed_counts(mask)}
            annotations.append({"id": len(annotations) + 1, "image_id": sample.image_id,
                                "category_id": segment.category_id, "iscrowd": segment.iscrowd,
                                "segmentation": encoded, "area": segment.area, "bbox": list(segment.bbox)})
        save_png(root / "stuff" / f"{sample.image_id:012d}.png", stuff)
    categories = [{"id": c.id, "name": c.name} for c in CATS if c.isthing]
    (root / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                     "categories": categories}))
    return root


def uncompressed_counts(mask):
    """COCO's uncompressed RLE of a mask: run lengths in column-major order, starting with zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    return ([0] + counts) if flat[0] else counts


def write_categories(path, categories=CATS):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(categories.to_coco()))
    return path
