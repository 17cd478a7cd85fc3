"""Writing files so that a crash never leaves a half-written one behind.

:func:`atomic_write` writes into a temporary file in the destination's folder, flushes
and fsyncs it, then renames it over the destination with :func:`os.replace` (atomic
within one file system): a reader sees the old file or the complete new one, and an
exception or Ctrl-C leaves the old file as it was. :func:`staging_folder` does the same
for a batch of files that belong together (a split's PNGs); :func:`check_writable`
refuses a path that could not be written before the work starts, not after it.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
from PIL import Image

PathLike = str | os.PathLike
# What open() masks out of 0o666, read the only portable way (set it, put it back) once, at
# import: not while other threads may be creating files.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open ``path`` for writing so that it appears complete or not at all.

    Missing parent folders are created. A new file gets the permissions ``open()`` would
    give it; an existing one keeps its own. A symbolic link stays and its target is
    written. A character device or a FIFO (``--output /dev/null``) is written through,
    not atomically: replacing it would put a regular file where the device was.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` / ``"wt"`` (UTF-8 text). A folder, or a path
    below a file, is refused before anything is written, by an OSError naming ``path``.
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"atomic_write supports the modes 'wb', 'w' and 'wt', got {mode!r}")
    encoding = None if "b" in mode else "utf-8"
    target = _target(Path(path), str(path))
    if target is None:
        with open(path, mode, encoding=encoding) as file:
            yield file
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # In the destination's folder, since os.replace is atomic only within one file system.
    # mkstemp creates the file private (0o600): the permissions are set before the rename.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _target(path: Path, named: str) -> Path | None:
    """The regular file ``atomic_write(path)`` replaces, ``None`` to write through; errors say ``named``."""
    try:
        kind = os.stat(path).st_mode  # follows links
    except (FileNotFoundError, NotADirectoryError):
        kind = None
    if kind is not None and not stat.S_ISREG(kind):
        if stat.S_ISCHR(kind) or stat.S_ISFIFO(kind):
            return None
        if stat.S_ISDIR(kind):
            raise IsADirectoryError(f"{named}: cannot write a file there, it is a folder")
        raise OSError(f"{named}: cannot write a file there, it is not a regular file")
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    existing = next(p for p in target.parents if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(f"{named}: cannot write a file there, {existing} is a file, not a folder")
    return target


def check_writable(path: PathLike, what: str | None = None, *, folder: bool = False) -> Path:
    """Check now, writing nothing, that ``path`` could be written later: before an hour of work, not after.

    A file passes if :func:`atomic_write` would accept it and the nearest existing folder
    above it is writable; a folder of files (``folder=True``, a :func:`staging_folder`'s
    destination) if it is a folder or absent, and writable or creatable. Returns ``path``
    as a Path; raises ``IsADirectoryError``, ``NotADirectoryError`` or ``PermissionError``
    in one line naming ``path``, after ``what`` (e.g. ``"--output runs/r.json: ..."``).
    """
    path = Path(path)
    named = f"{what} {path}" if what else str(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{named}: cannot write files into it, it is a file, not a folder")
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(f"{named}: cannot create that folder, {existing} is a file, not a folder")
        writes, needed = "files into it", path
    else:
        target = _target(path, named)
        if target is None:  # a device or a FIFO, written through
            return path
        existing = next(p for p in target.parents if p.exists())
        writes, needed = "a file there", target.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        created = "" if existing == needed else f" (so {needed} cannot be created)"
        raise PermissionError(f"{named}: cannot write {writes}, the folder {existing} is not writable{created}")
    return path


@contextmanager
def staging_folder(folder: PathLike) -> Iterator[Path]:
    """A hidden folder inside ``folder`` whose files move into ``folder`` when the block succeeds.

    Write a batch of plain files (no sub-folders) into the yielded folder. On normal exit
    each replaces its namesake in ``folder``; on an exception the batch is discarded,
    ``folder`` is left as it was, and removed again if this call created it and it is empty.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    try:
        yield stage
        for entry in sorted(os.scandir(stage), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                raise ValueError(f"{entry.path}: staging folders hold plain files only")
            os.replace(entry.path, folder / entry.name)
        os.rmdir(stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            with suppress(OSError):  # not empty: something else wrote there meanwhile
                folder.rmdir()
        raise


def write_json(path: PathLike, obj: Any, indent: int | None = None) -> Path:
    """Write ``obj`` as UTF-8 JSON, atomically; NumPy scalars and arrays and paths are converted."""
    text = json.dumps(obj, indent=indent, default=_json_default)  # fails before the file is touched
    with atomic_write(path, "w") as file:
        file.write(text)
    return Path(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_, np.ndarray)):
        return value.tolist()  # the Python int, float, bool or nested list
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"an object of type {type(value).__name__} cannot be written as JSON")


def write_image(path: PathLike, image: Image.Image, file_format: str, **options: Any) -> Path:
    """Save a PIL image atomically in ``file_format`` (``"PNG"``, ``"JPEG"``) with Pillow's save ``options``.

    The extension of ``path`` is not looked at; an encoder error leaves ``path`` as it was.
    """
    with atomic_write(path, "wb") as file:
        image.save(file, format=file_format, **options)
    return Path(path)


def write_png(path: PathLike, array: np.ndarray, compress_level: int | None = None) -> Path:
    """Write (H, W) uint8/uint16/bool grey or (H, W, 3|4) uint8 RGB(A) as a lossless PNG, atomically.

    ``compress_level`` is zlib's 0 (none, fastest) to 9 (smallest); ``None``: Pillow's 6.
    ``benchmarks/png_io.py`` measures level 1 against 6: the built-in dataset's images are
    encoded several times faster into files no larger, panoptic label maps faster into
    files 1.5 times larger that decode about twice as fast.
    """
    array = np.asarray(array)
    grey = array.ndim == 2 and array.dtype in (np.uint8, np.uint16, np.bool_)
    colour = array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8
    if not (grey or colour) or array.size == 0:
        raise ValueError(f"{path}: write_png takes a non-empty (H, W) uint8/uint16/bool or (H, W, 3|4) uint8 "
                         f"array, got shape {array.shape} and dtype {array.dtype}")
    options = {}
    if compress_level is not None:
        if isinstance(compress_level, bool) or not isinstance(compress_level, (int, np.integer)) \
                or not 0 <= compress_level <= 9:
            raise ValueError(f"{path}: compress_level must be an integer from 0 to 9, got {compress_level!r}")
        options["compress_level"] = int(compress_level)
    return write_image(path, Image.fromarray(np.ascontiguousarray(array)), "PNG", **options)
