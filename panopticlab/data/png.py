"""Decoding COCO panoptic PNGs into segment ids.

A panoptic PNG is an 8-bit RGB image whose pixel ``(R, G, B)`` holds the segment id
``R + 256 G + 256^2 B`` (0 = void). Decoding is most of an evaluation's time, so Wuffs
(``pywuffs``, the ``fast`` extra; wheels for Linux x86_64 only) decodes where it is
installed, Pillow (a dependency) everywhere else. From bytes to ids, on 640 x 480 panoptic
PNGs written with Pillow's defaults, one core, Wuffs takes 0.47 ms and Pillow 2.26 ms; at
zlib level 1 (as panopticlab writes them) 0.50 and 1.45 ms (``benchmarks/png_io.py``).

Both give the same ids, and both check the pixel data against its checksums (Wuffs the
zlib one, Pillow every chunk's CRC), so a damaged or truncated file is refused rather than
misread. The header is read here first, so that only 8-bit RGB files of a sane size reach
either decoder.
"""
from __future__ import annotations

import functools
import io
import struct
from typing import Callable

import numpy as np
from PIL import Image

from .errors import PanopticFormatError

__all__ = ["decode_panoptic_png", "png_decoder", "DECODERS"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE_NAMES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGBA"}
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def decode_panoptic_png(data: bytes, source: str = "panoptic PNG") -> np.ndarray:
    """Decode the bytes of a COCO panoptic PNG into segment ids, with :func:`png_decoder`.

    Args:
        data: the whole file.
        source: names the file in errors.

    Returns:
        (H, W) uint32 ids ``R + 256 G + 256^2 B``; 0 is void.

    Raises:
        PanopticFormatError: naming ``source``, when ``data`` is not a PNG, not 8-bit RGB
            (grey, palette, alpha and 16-bit PNGs are refused rather than guessed at), or
            truncated or corrupt.
    """
    _check_header(data, source)
    try:
        return png_decoder()(data)
    except _DECODE_ERRORS as err:
        raise PanopticFormatError(f"{source}: cannot decode the panoptic PNG; the file is truncated or corrupt "
                                  f"({type(err).__name__}: {err})") from None


def _check_header(data: bytes, source: str) -> None:
    """The signature and the IHDR chunk that must follow it: 8-bit RGB, of at most Pillow's pixel limit."""
    if not data.startswith(_PNG_SIGNATURE):
        raise PanopticFormatError(f"{source}: not a PNG file")
    if len(data) < 33 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise PanopticFormatError(f"{source}: cannot decode the panoptic PNG; the file is truncated or corrupt "
                                  f"(it does not start with a 13-byte IHDR chunk)")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    # a few corrupt or hostile header bytes must not make a decoder allocate gigabytes
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise PanopticFormatError(f"{source}: its header claims {width} x {height} pixels (W x H), more than the "
                                  f"{limit} that PIL.Image.MAX_IMAGE_PIXELS allows; raise that limit if the file "
                                  f"is genuine")
    if (bit_depth, colour_type) != (8, 2):
        pil_mode = ({1: "1", 16: "I;16"}.get(bit_depth, "L") if colour_type == 0
                    else {2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}.get(colour_type, "?"))
        raise PanopticFormatError(
            f"{source}: a panoptic PNG must be 8-bit RGB (id = R + 256 G + 256^2 B), got a {bit_depth}-bit "
            f"{_COLOUR_TYPE_NAMES.get(colour_type, 'unknown')} PNG (bit depth {bit_depth}, colour type "
            f"{colour_type}, PIL mode {pil_mode!r})")


# --- the decoders: 8-bit RGB PNG bytes -> (H, W) uint32 ids --------------------------------
def _decode_with_wuffs(data: bytes) -> np.ndarray:
    """Via Wuffs (``pywuffs``), checksums verified; a file with a ``tRNS`` chunk goes to Pillow.

    Wuffs decodes the colour a ``tRNS`` chunk marks transparent as black, id 0, where Pillow
    and panopticapi keep the colour's id. The chunk is rare; the four bytes turning up by
    chance in a file's compressed pixels (odds of about its size / 2^32) only cost speed.
    """
    from pywuffs.aux import ImageDecoder

    if b"tRNS" in data:
        return _decode_with_pillow(data)
    result = ImageDecoder(_wuffs_config()).decode(data)  # a decoder a call (0.3 us): safe in threads
    if result.error_message:
        raise ValueError(result.error_message)
    pixels = result.pixbuf  # (H, W, 4) uint8 R, G, B, A, a new array
    height, width = pixels.shape[:2]
    words = pixels.view("<u4").reshape(height, width)  # the id plus 255 * 256^3 (alpha)
    np.bitwise_and(words, 0xFFFFFF, out=words)  # in place, one pass: 5 % faster than RGB bytes to ids
    return words.view(np.uint32)


@functools.cache
def _wuffs_config():
    from pywuffs import ImageDecoderQuirks, ImageDecoderType, PixelFormat
    from pywuffs.aux import ImageDecoderConfig

    config = ImageDecoderConfig()
    config.enabled_decoders = [ImageDecoderType.PNG]
    config.pixel_format = PixelFormat.RGBA_NONPREMUL
    config.quirks = {ImageDecoderQuirks.IGNORE_CHECKSUM: 0}  # pywuffs ignores the zlib checksum otherwise
    return config


def _decode_with_pillow(data: bytes) -> np.ndarray:
    """Via Pillow, after its ``verify`` has checked every chunk's CRC.

    Pillow's decoder stops at the last pixel without reading the zlib checksum: alone, it
    decodes about one in five single-bit errors in compressed pixels into wrong ids.
    """
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        height, width = image.height, image.width
        raw = image.tobytes()
    return _ids_from_rgb_bytes(np.frombuffer(raw, np.uint8), height, width)


def _ids_from_rgb_bytes(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H * W * 3,) uint8 R, G, B bytes in raster order -> (H, W) uint32 ids ``R + 256 G + 256^2 B``.

    The little-endian 4-byte word that starts at a pixel's R byte is ``R + 256 G +
    256^2 B + 256^3 R'`` (R' the next pixel's red): masking its top byte gives the id, in
    one pass over a view of the bytes, 3 apart. The last pixel has no byte after it and
    is computed alone.
    """
    count = height * width
    ids = np.empty(count, np.uint32)
    words = np.ndarray((count - 1,), "<u4", rgb, strides=(3,))
    np.bitwise_and(words, 0xFFFFFF, out=ids[:-1])
    red, green, blue = rgb[-3:].tolist()
    ids[-1] = red + 256 * green + 65536 * blue
    return ids.reshape(height, width)


DECODERS: dict[str, Callable[[bytes], np.ndarray]] = {"wuffs": _decode_with_wuffs, "pillow": _decode_with_pillow}


@functools.lru_cache(maxsize=1)
def png_decoder() -> Callable[[bytes], np.ndarray]:
    """The decoder in use: Wuffs where ``pywuffs`` imports, else Pillow.

    Not libspng (``pyspng``): slower than Wuffs on both kinds of file (1.42 and 0.55 ms for
    the library call alone), and it ignores the checksums. Nor torchvision's ``decode_png``
    (1.72 and 0.86 ms): it imports torch, and it crashes the process on a PNG whose deflate
    stream is corrupt.
    """
    try:
        import pywuffs  # noqa: F401
    except ImportError:
        return _decode_with_pillow
    return _decode_with_wuffs
