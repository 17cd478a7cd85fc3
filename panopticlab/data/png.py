"""Decoding COCO panoptic PNGs into segment ids: checked first, then as fast as PyPI allows.

A panoptic PNG is an 8-bit RGB image whose pixel ``(R, G, B)`` holds the segment id
``R + 256 G + 256^2 B`` (0 = void). Decoding these files is most of the time an
evaluation takes, so the fastest installed decoder is used, in this order:

* Wuffs, Google's memory-safe decoders (``pywuffs``, the ``fast`` extra, Linux wheels):
  its inflate and unfiltering are the fastest measured (``benchmarks/png_io.py``);
* libspng (``pyspng``, also in the ``fast`` extra);
* Pillow (always installed).

All three give the same ids (the tests compare them on every kind of PNG); only the
speed differs. (The one file Wuffs would read differently, an RGB PNG with a ``tRNS``
chunk, it passes on to the next decoder.) Whatever the decoder, :func:`decode_panoptic_png`
first walks the chunks and checks every CRC and the header itself, so a damaged or
unsuitable file is refused with the same message everywhere.
"""
from __future__ import annotations

import functools
import io
import threading
import zlib
from typing import Callable

import numpy as np
from PIL import Image

from .errors import PanopticFormatError

__all__ = ["decode_panoptic_png", "png_decoder", "DECODERS"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB = 2  # PNG colour type of truecolour without alpha
_COLOUR_TYPE_NAMES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey + alpha", 6: "RGBA"}
_DECODE_ERRORS = (RuntimeError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def decode_panoptic_png(data: bytes, source: str = "panoptic PNG") -> np.ndarray:
    """Decode the bytes of a COCO panoptic PNG into segment ids.

    The chunk structure and every chunk's CRC are checked here first (cheap: the file is
    small), so a damaged file is refused whichever decoder runs, then the pixels are
    decoded by :func:`png_decoder`.

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
    _check_png(data, source)
    try:
        return png_decoder()(data)
    except _DECODE_ERRORS as err:
        raise PanopticFormatError(f"{source}: cannot decode the panoptic PNG; the file is truncated or corrupt "
                                  f"({type(err).__name__}: {err})") from None


def _check_png(data: bytes, source: str) -> None:
    """Signature, IHDR (8-bit RGB), chunk lengths and CRCs, and a closing IEND chunk."""
    if not data.startswith(_PNG_SIGNATURE):
        raise PanopticFormatError(f"{source}: not a PNG file")
    corrupt = f"{source}: cannot decode the panoptic PNG; the file is truncated or corrupt"
    view, position = memoryview(data), len(_PNG_SIGNATURE)
    while position + 12 <= len(data):  # length, type, data, CRC
        length = int.from_bytes(view[position:position + 4], "big")
        end = position + 12 + length
        kind = bytes(view[position + 4:position + 8])
        if end > len(data):
            raise PanopticFormatError(f"{corrupt} (its {kind!r} chunk at byte {position} runs past the end "
                                      f"of the file)")
        if zlib.crc32(view[position + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            raise PanopticFormatError(f"{corrupt} (CRC mismatch in its {kind!r} chunk at byte {position})")
        if position == len(_PNG_SIGNATURE):
            _check_header(kind, view[position + 8:end - 4], source)
        if kind == b"IEND":
            return
        position = end
    raise PanopticFormatError(f"{corrupt} (it ends after {len(data)} bytes, before its IEND chunk)")


def _check_header(kind: bytes, header: memoryview, source: str) -> None:
    if kind != b"IHDR" or len(header) != 13:
        raise PanopticFormatError(f"{source}: cannot decode the panoptic PNG; the file is truncated or corrupt "
                                  f"(it starts with a {kind!r} chunk of {len(header)} bytes, not a 13-byte IHDR)")
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    if width == 0 or height == 0:
        raise PanopticFormatError(f"{source}: cannot decode the panoptic PNG; its header gives it {width} x {height} "
                                  f"pixels (W x H)")
    # a few corrupt or hostile header bytes must not make a decoder allocate gigabytes
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise PanopticFormatError(f"{source}: its header claims {width} x {height} pixels (W x H), more than the "
                                  f"{limit} that PIL.Image.MAX_IMAGE_PIXELS allows; raise that limit if the file "
                                  f"is genuine")
    bit_depth, colour_type = header[8], header[9]
    if (bit_depth, colour_type) != (8, _RGB):
        kind_name = _COLOUR_TYPE_NAMES.get(colour_type, "unknown")
        raise PanopticFormatError(
            f"{source}: a panoptic PNG must be 8-bit RGB (id = R + 256 G + 256^2 B), got a {bit_depth}-bit "
            f"{kind_name} PNG (bit depth {bit_depth}, colour type {colour_type}, PIL mode "
            f"{_pil_mode(bit_depth, colour_type)!r})")


def _pil_mode(bit_depth: int, colour_type: int) -> str:
    """The mode Pillow opens such a PNG in (error messages speak both languages)."""
    if colour_type == 0:
        return {1: "1", 16: "I;16"}.get(bit_depth, "L")
    return {2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}.get(colour_type, "?")


# --- the decoders: checked 8-bit RGB PNG bytes -> (H, W) uint32 ids ----------------------
class _WuffsDecoders(threading.local):
    """One Wuffs decoder per thread (a decoder holds state while it decodes)."""

    def __init__(self):
        from pywuffs import ImageDecoderType, PixelFormat
        from pywuffs.aux import ImageDecoder, ImageDecoderConfig

        config = ImageDecoderConfig()
        config.enabled_decoders = [ImageDecoderType.PNG]  # a panoptic file is a PNG or nothing
        # four bytes a pixel: a little-endian uint32 is then the id plus 255 * 256^3 (alpha)
        config.pixel_format = PixelFormat.RGBA_NONPREMUL
        self.decoder = ImageDecoder(config)


@functools.cache
def _wuffs() -> _WuffsDecoders:
    return _WuffsDecoders()


def _decode_with_wuffs(data: bytes) -> np.ndarray:
    """(H, W) uint32 ids via Wuffs (``pywuffs``) from a checked 8-bit RGB PNG.

    A file with a ``tRNS`` chunk (one RGB colour marked transparent) is handed to the next
    installed decoder: Wuffs decodes the pixels of that colour as (0, 0, 0, 0), id 0, where
    libspng, Pillow and panopticapi keep the colour's id. Such files are rare.
    """
    if _has_transparency_chunk(data):
        return _decoder_without_wuffs()(data)
    result = _wuffs().decoder.decode(data)
    if result.error_message:
        raise ValueError(result.error_message)
    pixels = result.pixbuf  # (H, W, 4) uint8 R, G, B, A, a new array
    height, width = pixels.shape[:2]
    words = pixels.view("<u4").reshape(height, width)
    np.bitwise_and(words, 0xFFFFFF, out=words)  # clear the alpha byte: in place, one pass
    return words.view(np.uint32)


def _has_transparency_chunk(data: bytes) -> bool:
    """Whether a ``tRNS`` chunk precedes the first ``IDAT``, where the PNG specification puts it.

    Wuffs ignores one that comes later, as the other decoders' RGB output ignores any.
    Reads only the chunk headers before the pixels: a few per file.
    """
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(data):
        kind = data[position + 4:position + 8]
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        position += 12 + int.from_bytes(data[position:position + 4], "big")
    return False


@functools.cache
def _decoder_without_wuffs() -> Callable[[bytes], np.ndarray]:
    """The fastest installed decoder other than Wuffs (Pillow at worst)."""
    return next(decoder for name, decoder in installed_decoders().items() if name != "wuffs")


def _decode_with_libspng(data: bytes) -> np.ndarray:
    """(H, W) uint32 ids via libspng (``pyspng``) from a checked 8-bit RGB PNG."""
    import pyspng

    pixels = pyspng.load(data, "RGB")  # (H, W, 3) uint8
    return _ids_from_rgb_bytes(pixels.reshape(-1), *pixels.shape[:2])


def _decode_with_pillow(data: bytes) -> np.ndarray:
    """(H, W) uint32 ids via Pillow from a checked 8-bit RGB PNG."""
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


# name -> (decoder, the module it needs), fastest first
DECODERS: dict[str, tuple[Callable[[bytes], np.ndarray], str | None]] = {
    "wuffs": (_decode_with_wuffs, "pywuffs"),
    "libspng": (_decode_with_libspng, "pyspng"),
    "pillow": (_decode_with_pillow, None),
}


def installed_decoders() -> dict[str, Callable[[bytes], np.ndarray]]:
    """name -> decoder for every decoder whose library imports here, fastest first."""
    found = {}
    for name, (decoder, module) in DECODERS.items():
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                continue
        found[name] = decoder
    return found


@functools.lru_cache(maxsize=1)
def png_decoder() -> Callable[[bytes], np.ndarray]:
    """The PNG bytes -> (H, W) uint32 ids function in use: the fastest of :data:`DECODERS` installed.

    On 640 x 480 panoptic PNGs with Pillow's default settings (``benchmarks/png_io.py``,
    one core) Wuffs takes 0.35 ms, libspng 1.34 ms and Pillow 2.28 ms; on files written
    at zlib level 1 (as panopticlab writes them) 0.38, 0.52 and 1.42 ms.
    torchvision's ``decode_png`` is not a candidate: it crashes the process (a
    segmentation fault, which would also hang a worker pool) on a PNG whose deflate
    stream is corrupt.
    """
    return next(iter(installed_decoders().values()))
