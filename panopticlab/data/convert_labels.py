"""The label files of :mod:`panopticlab.data.convert`: found, paired by image, and read as id arrays.

A label PNG holds one channel of integer ids. Accepted:

* 8- or 16-bit grey: the pixel value is the id (16 bits hold ids up to 65535, which
  instance maps and label-divisor maps such as Cityscapes' ``*_instanceIds.png`` need);
* palette PNGs (1, 2, 4 or 8 bits): the palette *index* is the id and the colours are
  ignored, since that is how VOC, CVAT and labelme export class ids.

Refused, with one line naming the file, before anything is written: RGB, RGBA and
grey + alpha PNGs (colour-coded labels would need a colour table, which is not guessed),
1-, 2- and 4-bit grey PNGs (Pillow rescales their values), JPEGs (lossy compression
changes label values at every edge) and anything else that is not a PNG.

Files are paired by their *key*: the file name without extension and without the
folder's suffix (``--label-suffix``, ``--image-suffix``), so ``0001.png`` in the semantic
folder goes with ``0001.png`` in the instance folder and ``0001.jpg`` among the images.
Folders are searched recursively (Cityscapes keeps a folder per city); keys must be
unique within a folder, since the panoptic PNGs written are named ``<key>.png`` side by side.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import PanopticFormatError

__all__ = ["IMAGE_EXTENSIONS", "find_files", "image_id_of", "image_size", "label_png_size", "read_label_png"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# the first bytes of files that turn up where a label PNG belongs
_OTHER_FORMATS = ((b"\xff\xd8\xff", "a JPEG"), (b"GIF8", "a GIF"), (b"BM", "a BMP"), (b"II*\x00", "a TIFF"),
                  (b"MM\x00*", "a TIFF"), (b"RIFF", "a WebP or other RIFF file"))
_GREY, _RGB, _PALETTE, _GREY_ALPHA, _RGBA = 0, 2, 3, 4, 6
_COLOUR_TYPES = {_GREY: "grey", _RGB: "RGB", _PALETTE: "palette", _GREY_ALPHA: "grey + alpha", _RGBA: "RGBA"}
_JPEG_FAULT = "a JPEG where a label PNG was expected (JPEG compression changes label values at every edge; " \
              "export the labels as PNG)"


def find_files(folder: str | os.PathLike, suffix: str = "", what: str = "label",
               extensions: tuple[str, ...] = (".png",)) -> dict[str, Path]:
    """Files of ``folder`` and its sub-folders by key (name without extension and ``suffix``).

    Hidden files and folders (names starting with ``.``) are skipped. With a ``suffix``
    only files whose name without extension ends with it are taken. For label folders
    (``extensions == (".png",)``) a ``.jpg`` or ``.jpeg`` file that would be taken is an
    error: a JPEG where a label PNG was expected.

    Args:
        folder: the folder to search.
        suffix: e.g. ``"_gtFine_instanceIds"``; ``""`` takes every file.
        what: names the files in errors (``"semantic"``, ``"image"``).
        extensions: lower-case extensions taken.

    Returns:
        ``{key: path}`` in sorted order of keys.

    Raises:
        PanopticFormatError: ``folder`` is missing or not a folder; a JPEG among labels;
            two files with one key (naming both).
    """
    folder = Path(folder)
    if not folder.is_dir():
        fault = "is not a folder" if folder.exists() else "does not exist"
        raise PanopticFormatError(f"{folder}: the {what} folder {fault}")
    found: dict[str, Path] = {}
    labels = extensions == (".png",)
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            extension = path.suffix.lower()
            if name.startswith(".") or extension not in extensions + (_JPEG_EXTENSIONS if labels else ()):
                continue
            stem = path.stem
            if suffix:
                if not stem.endswith(suffix) or stem == suffix:
                    continue
                stem = stem[:-len(suffix)]
            if labels and extension in _JPEG_EXTENSIONS:
                raise PanopticFormatError(f"{path}: {_JPEG_FAULT}")
            if stem in found:
                raise PanopticFormatError(f"{found[stem]} and {path}: two {what} files for image {stem!r} "
                                          f"(keys must be unique across sub-folders)")
            found[stem] = path
    return dict(sorted(found.items()))


def image_id_of(key: str) -> int | str:
    """The COCO ``image_id`` of a key: an int for a key of digits (``"000139"`` -> 139), else the key."""
    return int(key) if key.isascii() and key.isdigit() else key


def label_png_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an acceptable label PNG, from its header alone (33 bytes read).

    Raises:
        PanopticFormatError: naming ``path``: missing, not a PNG (a JPEG is named as such),
            a truncated header, or a kind of PNG that is refused (see the module's docstring).
    """
    try:
        with open(path, "rb") as file:
            head = file.read(33)
    except OSError as err:
        raise PanopticFormatError(f"{path}: cannot read the label PNG ({err.strerror or err})") from None
    if not head.startswith(_PNG_SIGNATURE):
        for magic, kind in _OTHER_FORMATS:
            if head.startswith(magic):
                raise PanopticFormatError(f"{path}: {_JPEG_FAULT}" if kind == "a JPEG" else
                                          f"{path}: {kind} where a label PNG was expected")
        raise PanopticFormatError(f"{path}: not a PNG file, where a label PNG was expected")
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise PanopticFormatError(f"{path}: the PNG is truncated or corrupt (no complete IHDR header)")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    bit_depth, colour_type = head[24], head[25]
    if colour_type == _PALETTE or (colour_type == _GREY and bit_depth in (8, 16)):
        return height, width
    kind = _COLOUR_TYPES.get(colour_type, f"colour type {colour_type}")
    hint = ("colour-coded labels would need a colour table, which is not guessed; save the ids themselves"
            if colour_type in (_RGB, _RGBA) else "save the ids as 8- or 16-bit grey")
    article = "an" if bit_depth in (8, 11, 18) else "a"
    raise PanopticFormatError(f"{path}: {article} {bit_depth}-bit {kind} PNG, but a label PNG must hold one channel "
                              f"of ids (8- or 16-bit grey, or palette indices); {hint}")


def read_label_png(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label PNG as its ids.

    Args:
        path: the file.
        shape: ``(height, width)`` it must have, when known.

    Returns:
        (H, W) uint8 or uint16 ids: grey values, or palette indices.

    Raises:
        PanopticFormatError: naming ``path``, for what :func:`label_png_size` refuses, a
            truncated or corrupt file, or another size than ``shape``.
    """
    size = label_png_size(path)
    if shape is not None and size != tuple(shape):
        raise PanopticFormatError(f"{path}: the label PNG is {size[0]}x{size[1]} (height x width), "
                                  f"expected {shape[0]}x{shape[1]}")
    try:
        with Image.open(path) as image:
            image.load()
            ids = np.asarray(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise PanopticFormatError(f"{path}: cannot decode the label PNG; the file is truncated or corrupt "
                                  f"({type(err).__name__}: {err})") from None
    return ids.astype(ids.dtype.newbyteorder("="), copy=False)


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header (the pixels are not decoded).

    Raises:
        PanopticFormatError: naming ``path``, when it cannot be opened as an image.
    """
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise PanopticFormatError(f"{path}: cannot open the image ({type(err).__name__}: {err})") from None
