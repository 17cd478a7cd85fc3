"""Panoptic PNG input and output: the decoders on PyPI, and writing a COCO panoptic split, in one run.

    python benchmarks/png_io.py                      # about a minute
    python benchmarks/png_io.py --num 20 --repeat 3  # quicker

Reading. ``--num`` random ground-truth and prediction id maps of 640 x 480
(:mod:`panopticlab.metrics.simulate`, the maps of ``benchmarks/pq_speed.py``) are
encoded in memory as RGB PNGs twice: with Pillow's default settings (zlib level 6,
adaptive filters), which is how panopticapi and COCO's own files are written, and at
zlib level 1, which is how panopticlab writes them. Each candidate decodes every PNG
to pixels (the library call alone) and is checked to give exactly the ids the map
holds; the first row is panopticlab's whole path from bytes to (H, W) ids
(:func:`~panopticlab.data.png.decode_panoptic_png`: header check, decoding with its
checksums verified, ids), the second its Pillow fallback (where ``pywuffs`` has no wheel).
Candidates that are not installed are listed as such.

Writing. ``--write-num`` images of the built-in dataset (``--write-size``, PNG images)
are encoded in memory (the image and the panoptic PNG, each way), then written to disk
as a COCO panoptic split by :func:`~panopticlab.data.coco.write_coco_panoptic`
(checked, atomic, fsync-ed) at panopticlab's zlib level and at Pillow's default, and by
the peer: panopticapi's way of writing a split (``Image.save`` with Pillow's defaults,
``id2rgb``, one ``json.dump``; no checks, no atomic writes, no fsync).

Everything runs on one core (thread pools limited to one thread before numpy is
imported, the process pinned to one CPU where the system allows it), with the allocator
set up as the evaluator sets it up (:func:`~panopticlab.metrics.files.reuse_freed_memory`).
Each timing is the best of ``--repeat`` passes, the decoders taking turns; printed in
milliseconds per PNG or per image.
"""
from __future__ import annotations


from one_core import best_seconds, pin_to_one_core  # noqa: E402  (first: it limits the thread pools)

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from panopticlab.data import SYNTHETIC_CATEGORIES, coco, id_to_rgb, png  # noqa: E402
from panopticlab.data.synthetic import SyntheticPanoptic  # noqa: E402
from panopticlab.metrics.files import reuse_freed_memory  # noqa: E402
from panopticlab.metrics.simulate import random_pair  # noqa: E402


def rgb_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 R, G, B -> (H, W) int64 ids; only to check exactness, never timed."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


# --- the candidates: PNG bytes -> pixels, and pixels -> ids for the exactness check -----
def candidates() -> dict[str, tuple[Callable, Callable] | str]:
    """name -> (decode, to_ids), or the reason the candidate is missing."""
    found: dict[str, tuple[Callable, Callable] | str] = {
        "panopticlab decode_panoptic_png": (coco.decode_panoptic_png, lambda ids: ids),
        "panopticlab's Pillow fallback (Pillow verify + decode)": (png.DECODERS["pillow"], lambda ids: ids)}
    try:
        import pyspng
        found[f"pyspng {pyspng.__version__} (libspng), RGBA"] = (
            lambda data: pyspng.load(data, "RGBA"), lambda pixels: rgb_ids(pixels[..., :3]))
        found[f"pyspng {pyspng.__version__} (libspng), RGB"] = (lambda data: pyspng.load(data, "RGB"), rgb_ids)
    except ImportError:
        found["pyspng (libspng)"] = "not installed (pip install pyspng)"
    try:
        import pywuffs
        from pywuffs.aux import ImageDecoder, ImageDecoderConfig

        for pixel_format in ("RGB", "RGBA_NONPREMUL"):
            config = ImageDecoderConfig()
            config.enabled_decoders = [pywuffs.ImageDecoderType.PNG]
            config.pixel_format = getattr(pywuffs.PixelFormat, pixel_format)
            found[f"pywuffs (Wuffs), {pixel_format}"] = (
                lambda data, decoder=ImageDecoder(config): decoder.decode(data).pixbuf,
                lambda pixels: rgb_ids(pixels[..., :3]))
    except ImportError:
        found["pywuffs (Wuffs)"] = "not installed (pip install pywuffs)"
    try:
        import imagecodecs
        found[f"imagecodecs {imagecodecs.__version__} png_decode (libpng)"] = (imagecodecs.png_decode, rgb_ids)
        found[f"imagecodecs {imagecodecs.__version__} spng_decode (libspng)"] = (imagecodecs.spng_decode, rgb_ids)
    except ImportError:
        found["imagecodecs"] = "not installed (pip install imagecodecs)"
    try:
        import cv2
        cv2.setNumThreads(1)
        found[f"opencv {cv2.__version__} imdecode (libpng), BGR"] = (
            lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED),
            lambda pixels: rgb_ids(pixels[..., ::-1]))
    except ImportError:
        found["opencv"] = "not installed (pip install opencv-python-headless)"
    try:
        import torch
        import torchvision
        from torchvision.io import ImageReadMode, decode_png
        torch.set_num_threads(1)

        def torchvision_decode(data: bytes, mode=ImageReadMode.RGB):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)

        found[f"torchvision {torchvision.__version__} decode_png (libpng), RGB"] = (
            torchvision_decode, lambda pixels: rgb_ids(pixels.permute(1, 2, 0).numpy()))
        found[f"torchvision {torchvision.__version__} decode_png (libpng), RGBA"] = (
            lambda data: torchvision_decode(data, ImageReadMode.RGB_ALPHA),
            lambda pixels: rgb_ids(pixels.permute(1, 2, 0).numpy()[..., :3]))
    except ImportError:
        found["torchvision"] = "not installed"

    def pillow_decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image)

    found[f"Pillow {Image.__version__} (its own zlib decoder)"] = (pillow_decode, rgb_ids)
    return found


def encode(rgb: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def reading(num: int, size: tuple[int, int], repeat: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    maps = [m.id_map for _ in range(num) for m in random_pair(rng, size)]
    files = {"Pillow's default (level 6)": [encode(id_to_rgb(m)) for m in maps],
             f"level {coco.PNG_COMPRESS_LEVEL} (panopticlab)":
                 [encode(id_to_rgb(m), compress_level=coco.PNG_COMPRESS_LEVEL) for m in maps]}
    found = candidates()
    decoders = {name: candidate[0] for name, candidate in found.items() if not isinstance(candidate, str)}
    for name, (decode, to_ids) in ((n, c) for n, c in found.items() if not isinstance(c, str)):
        for blobs in files.values():
            for blob, id_map in zip(blobs, maps):
                if not np.array_equal(to_ids(decode(blob)), id_map):
                    raise SystemExit(f"{name} decodes a PNG to other ids than the map it was written from")
    # round robin, so that a slow spell of the machine hits every decoder alike
    best = {(name, kind): np.inf for name in decoders for kind in files}
    for round_ in range(repeat):
        names = list(decoders)
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            for kind, blobs in files.items():
                seconds = best_seconds(lambda decode=decoders[name], blobs=blobs: [decode(b) for b in blobs], 1)
                best[name, kind] = min(best[name, kind], seconds / len(blobs))

    print(f"\nReading: {len(maps)} panoptic PNGs of {size[1]}x{size[0]}, ms per PNG "
          f"(panopticlab decodes with {coco.png_decoder().__name__})")
    print(f"{'decoder':58s}" + "".join(f"{kind:>30s}" for kind in files))
    ours = next(iter(decoders))
    for name, candidate in found.items():
        if isinstance(candidate, str):
            print(f"{name:58s} {candidate}")
            continue
        cells = [f"{1000 * best[name, kind]:8.3f} ms ({best[name, kind] / best[ours, kind]:5.2f}x)" for kind in files]
        print(f"{name:58s}" + "".join(f"{cell:>30s}" for cell in cells))
    sizes = "   ".join(f"{kind}: {np.mean([len(b) for b in blobs]) / 1024:.1f} KiB" for kind, blobs in files.items())
    print(f"(time / panopticlab's in parentheses; every decoder gave exactly the ids of every map)\n"
          f"mean file size   {sizes}")


# --- writing ------------------------------------------------------------------------------
def write_like_panopticapi(root: Path, samples: list, categories) -> None:
    """panopticapi's converters: Image.save with Pillow's defaults, id2rgb, one json.dump."""
    from panopticapi.utils import id2rgb

    png_folder, image_folder = root / "annotations" / "panoptic_val", root / "val"
    png_folder.mkdir(parents=True, exist_ok=True)
    image_folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for sample in samples:
        Image.fromarray(sample.image).save(image_folder / sample.file_name)
        png_name = coco.panoptic_png_name(sample.file_name)
        Image.fromarray(id2rgb(sample.panoptic.id_map)).save(png_folder / png_name)
        height, width = sample.panoptic.shape
        images.append({"id": sample.image_id, "file_name": sample.file_name, "height": height, "width": width})
        annotations.append({"image_id": sample.image_id, "file_name": png_name,
                            "segments_info": [s.to_coco() for s in sample.panoptic.with_statistics().segments]})
    with open(root / "annotations" / "panoptic_val.json", "w") as file:
        json.dump({"images": images, "annotations": annotations, "categories": categories.to_coco()}, file)


def writing(num: int, size: int, repeat: int, seed: int) -> None:
    dataset = SyntheticPanoptic(num, size=size, seed=seed, split="val")
    samples = [dataset[index] for index in range(num)]
    level = coco.PNG_COMPRESS_LEVEL
    print(f"\nWriting: {num} images of the built-in dataset, {size}x{size}, ms per image")

    def in_memory(label: str, arrays: list, make, options: dict) -> float:
        seconds = best_seconds(lambda: [encode_image(make(a), options) for a in arrays], repeat) / num
        kib = np.mean([len(encode_image(make(a), options)) for a in arrays]) / 1024
        print(f"  {label:62s} {1000 * seconds:8.2f} ms {kib:8.1f} KiB")
        return seconds

    print("encoding in memory")
    images = [s.image for s in samples]
    maps = [s.panoptic.id_map for s in samples]
    image_default = in_memory("image PNG, Pillow's default (level 6)", images, Image.fromarray, {})
    image_ours = in_memory(f"image PNG, level {level} (panopticlab)", images, Image.fromarray,
                           {"compress_level": level})
    map_default = in_memory("panoptic PNG, id_to_rgb + Pillow's default (panopticapi's way)", maps,
                            lambda m: Image.fromarray(id_to_rgb(m)), {})
    in_memory("panoptic PNG, RGBX words + Pillow's default", maps, lambda m: coco._id_map_image(m, "map"), {})
    map_ours = in_memory(f"panoptic PNG, RGBX words + level {level} (panopticlab)", maps,
                         lambda m: coco._id_map_image(m, "map"), {"compress_level": level})
    print(f"  speed-up: images {image_default / image_ours:.1f}x, panoptic PNGs {map_default / map_ours:.1f}x")

    print("writing the split to disk")
    with tempfile.TemporaryDirectory() as scratch:
        rows = {}

        def timed(label: str, write) -> None:
            counter = iter(range(10**6))
            seconds = best_seconds(lambda: write(Path(scratch) / f"run{next(counter)}"), repeat) / num
            rows[label] = seconds
            print(f"  {label:62s} {1000 * seconds:8.2f} ms")

        timed(f"panopticlab write_coco_panoptic (level {level})",
              lambda root: coco.write_coco_panoptic(root, "val", samples, SYNTHETIC_CATEGORIES))
        with mock.patch.object(coco, "PNG_COMPRESS_LEVEL", 6):
            timed("panopticlab write_coco_panoptic at level 6 (Pillow's default)",
                  lambda root: coco.write_coco_panoptic(root, "val", samples, SYNTHETIC_CATEGORIES))
        timed("peer: panopticapi's way (no checks, not atomic, no fsync)",
              lambda root: write_like_panopticapi(root, samples, SYNTHETIC_CATEGORIES))
    ours, default, peer = rows.values()
    print(f"  level {level} vs Pillow's default: {default / ours:.2f}x faster; "
          f"panopticapi's way / panopticlab: {peer / ours:.2f} (above 1: panopticlab is faster)")


def encode_image(image: Image.Image, options: dict) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=40, help="ground-truth / prediction pairs to decode (default 40)")
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    parser.add_argument("--write-num", type=int, default=20, help="images to write (default 20)")
    parser.add_argument("--write-size", type=int, default=256, help="side of the written images (default 256)")
    parser.add_argument("--repeat", type=int, default=5, help="passes per timing; the fastest counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(pin_to_one_core())
    reuse_freed_memory()  # the allocator state the evaluator runs in, the same for every candidate
    reading(args.num, tuple(args.size), args.repeat, args.seed)
    writing(args.write_num, args.write_size, args.repeat, args.seed)


if __name__ == "__main__":
    main()
