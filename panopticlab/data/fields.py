"""Values of COCO JSON fields, checked: integers, flags, image ids and file names.

JSON gives a file's author free rein: ``"id": 9.7``, ``"isthing": "yes"``,
``"image_id": [1]``, ``"file_name": null`` or ``"id": 2**70`` all parse. Every reader of
the package (categories, segment records, annotation records) takes its fields through
these functions, so that such a value is refused with one :class:`PanopticFormatError`
naming the field, instead of being truncated, taken as true, or failing later with a
Python error far from the file.
"""
from __future__ import annotations

import numpy as np

from .errors import PanopticFormatError

__all__ = ["INT64_MAX", "INT64_MIN", "coco_file_name", "coco_flag", "coco_image_id", "coco_integer"]

# ids and category ids become numpy int64 values (segment tables, lookup tables)
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1


def _integral(value) -> int | None:
    """``value`` as an ``int`` when it is a JSON integer (or an integral float), else ``None``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


def coco_integer(value, what: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """A COCO integer field's value as an ``int``; ``what`` names it in errors (``"segment id"``).

    JSON has a single number type, so a float with an integral value (``9.0``) is the integer
    it equals, as in panopticapi, whose lookups treat ``9.0`` and ``9`` alike. Anything
    else is refused rather than rounded: ``int(9.7)`` would silently read segment 9.

    Args:
        value: the parsed JSON value.
        what: how errors name the field.
        low, high: the values allowed (default: those of a signed 64-bit integer, the numpy
            type ids are kept in).

    Raises:
        PanopticFormatError: ``"{what} {value!r} is not an integer (a float)"`` for other
            floats, strings (``"9"``, which panopticapi does not match to segment 9 either),
            booleans, ``None`` and the rest; ``"{what} {value} is out of range ..."`` for an
            integer outside ``[low, high]``.
    """
    number = _integral(value)
    if number is None:
        raise PanopticFormatError(f"{what} {value!r} is not an integer (a {type(value).__name__})")
    if not low <= number <= high:
        allowed = "a signed 64-bit integer" if (low, high) == (INT64_MIN, INT64_MAX) else f"[{low}, {high}]"
        shown = repr(value) if isinstance(value, (float, np.floating)) else number  # 1e+300, not 301 digits
        raise PanopticFormatError(f"{what} {shown} is out of range (it must fit in {allowed})")
    return number


def coco_flag(value, what: str) -> bool:
    """A COCO 0/1 field (``isthing``) as a bool: 0, 1, ``false`` or ``true`` (``0.0`` and ``1.0`` too).

    Raises:
        PanopticFormatError: ``"{what} must be 0, 1, true or false, got {value!r}"`` for anything
            else (``2``, ``"yes"``, ``null``), which ``bool()`` would read as true or false.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _integral(value) in (0, 1):
        return bool(_integral(value))
    raise PanopticFormatError(f"{what} must be 0, 1, true or false, got {value!r}")


def coco_image_id(value, what: str = "image_id") -> int | str:
    """An ``image_id`` (or an image record's ``id``): an integer (as :func:`coco_integer`) or a string.

    Raises:
        PanopticFormatError: ``"{what} [1] is neither an integer nor a string (a list)"``, or
            an integer out of the 64-bit range.
    """
    if isinstance(value, str):
        return value
    if _integral(value) is None:
        raise PanopticFormatError(f"{what} {value!r} is neither an integer nor a string (a {type(value).__name__})")
    return coco_integer(value, what)


def coco_file_name(value, what: str = "file_name") -> str:
    """A ``file_name`` field: a non-empty string.

    Raises:
        PanopticFormatError: ``"{what} must be a non-empty string, got None"``.
    """
    if not isinstance(value, str) or not value:
        raise PanopticFormatError(f"{what} must be a non-empty string, got {value!r}")
    return value
