"""Writing files so that a crash never leaves a half-written one behind.

Every file the package writes goes through :func:`atomic_write`: the bytes go to a
temporary file in the destination folder, are flushed to disk, and only then is the
temporary renamed over the destination with :func:`os.replace`, which is atomic on
POSIX and Windows. A reader therefore sees either the old file or the complete new
one, and an exception (or Ctrl-C) while writing leaves the old file untouched.

:func:`staging_folder` extends the idea to a batch of files that only make sense
together (the PNGs of a dataset split): they are written into a hidden folder and
moved into place only when the whole batch succeeded.

:func:`write_png` and :func:`write_image` encode images this way, and
:func:`check_writable` tells up front, before any long work, whether a path could be
written at all.
"""
from __future__ import annotations

import functools
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
_STAGING_PREFIX = ".staging-"  # hidden folders of staging_folder()


@contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open ``path`` for writing so that it appears complete or not at all.

    Missing parent folders are created. On normal exit the data is fsync-ed and the
    temporary file replaces ``path``; on an exception the temporary file is removed
    and ``path`` keeps its previous content (or stays absent). A new file gets the
    permissions ``open()`` would give it (0o666 minus the umask); an existing one
    keeps its permissions. The folder is fsync-ed too, so that the new name is on disk,
    except inside a :func:`staging_folder`, whose files move on and whose destination
    is fsync-ed once for the whole batch.

    What ``path`` names decides how it is written:

    * a regular file, or nothing yet: atomically, as above. Temporary files of the same
      destination left by a process that was killed while writing are removed once the
      new content is in place.
    * a symbolic link: the link stays and the file it points to is written as the link's
      target would be (atomically if that is a regular file or absent).
    * a character device or a FIFO (``/dev/null``, ``/dev/stdout`` on a terminal or a
      pipe), or a standard stream's link (``/dev/stdout``, ``/proc/self/fd/1``) to a
      file: written through directly, since it cannot be replaced; not atomic.
    * a folder, a block device, a socket, or a path below a regular file:
      refused before anything is written, with an :class:`OSError` naming ``path``.

    Args:
        path: destination file.
        mode: ``"wb"`` (bytes) or ``"w"`` / ``"wt"`` (UTF-8 text).

    Yields:
        the open file object to write to.
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"atomic_write supports the modes 'wb', 'w' and 'wt', got {mode!r}")
    path = Path(path)
    encoding = None if "b" in mode else "utf-8"
    target = _writable_target(path)
    if target is None:  # a device or a FIFO: nothing to rename over, write through
        with _named_errors(path), open(path, mode, encoding=encoding) as file:
            yield file
            file.flush()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the destination: os.replace is only atomic within one file system.
    # The writer's pid in the name tells a temporary still being written from one left by a killed process.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}-", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, _permissions_for(target))
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _remove_stale_temporaries(target)
    if not target.parent.name.startswith(_STAGING_PREFIX):
        _fsync_folder(target.parent)


_TMP_SUFFIX = ".tmp"


def _writable_target(path: Path, named: str | None = None) -> Path | None:
    """The regular file (existing or not) that ``atomic_write(path)`` replaces; ``None``: write through.

    ``named`` is how errors name ``path`` (default: ``path`` itself).

    Raises:
        OSError: ``path`` is a folder, a block device or a socket, or lies below a file.
    """
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        mode = None  # a parent is a file: named below
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            return None
        what = "a folder" if stat.S_ISDIR(mode) else "a block device" if stat.S_ISBLK(mode) \
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        error = IsADirectoryError if stat.S_ISDIR(mode) else OSError
        raise error(f"{named or path}: cannot write a file there, it is {what}")
    if not path.is_symlink():
        target = path
    elif mode is not None and os.name == "posix" and any(
            str(p).startswith(("/dev/", "/proc/")) for p in (os.path.abspath(path), os.path.realpath(path))):
        return None  # /dev/stdout or /proc/self/fd/1 redirected to a file: a stream, whose file is not ours to swap
    else:  # the link's target is replaced, not the link; realpath also resolves links among the parents
        target = Path(os.path.realpath(path))
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{named or path}: cannot write a file there, {parent} is a file, "
                                         f"not a folder")
            break
    return target


def check_writable(path: PathLike, what: str | None = None, *, folder: bool = False) -> Path:
    """Check now that ``path`` could be written later: before an hour of work, not after it.

    For a file (``folder=False``) the checks are those :func:`atomic_write` makes, plus
    one it can only make when it tries: that the folder the file goes into (or the
    nearest existing folder above it, if it has to be created) is writable. For a
    folder of files (``folder=True``, e.g. a :func:`staging_folder`'s destination),
    ``path`` must be a folder or absent, and be writable or creatable. Nothing is written.

    Args:
        path: the file or folder.
        what: names the path in errors, e.g. ``"--output"``: ``"--output runs/r.json: ..."``.
        folder: ``path`` is a folder to write files into.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: naming ``path``: ``IsADirectoryError`` (a file is to go where a folder is),
            ``NotADirectoryError`` (a path below a file, or a folder where a file is),
            ``PermissionError`` (a folder this process may not write in), or ``OSError``
            (a block device or a socket).
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
        target = _writable_target(path, named)
        if target is None:  # a device or a FIFO, written through
            return path
        existing = next(p for p in target.parents if p.exists())  # a folder: _writable_target refused files
        writes, needed = "a file there", target.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        created = "" if existing == needed else f" (so {needed} cannot be created)"
        raise PermissionError(f"{named}: cannot write {writes}, the folder {existing} is not writable{created}")
    return path


@contextmanager
def _named_errors(path: Path) -> Iterator[None]:
    """Give OS errors without a file name (a full device, a closed pipe) the name of ``path``."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno is not None:
            raise type(error)(error.errno, error.strerror, str(path)) from error
        raise


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporaries of ``target`` whose writer is gone (killed while writing).

    They are named ``.<name>.<pid>-<random>.tmp`` (``.<name>.<random>.tmp`` by older
    versions, which are always stale once a new write has succeeded). One whose pid is
    a live process is kept: it may be another writer still at work.
    """
    prefix = f".{target.name}."
    try:
        names = [name for name in os.listdir(target.parent)
                 if name.startswith(prefix) and name.endswith(_TMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        if _left_by_a_dead_writer(name[len(prefix):-len(_TMP_SUFFIX)]):
            with suppress(OSError):  # gone already, or not ours to remove
                os.unlink(target.parent / name)


def _remove_stale_staging_folders(folder: Path, unnamed_too: bool) -> None:
    """Remove the staging folders in ``folder`` of :func:`staging_folder` calls whose process is gone.

    They are named ``.staging-<pid>-<random>`` (``.staging-<random>`` by older versions,
    removed only with ``unnamed_too``, once a new batch has succeeded). One whose pid is a
    live process (this one included) is kept: it may be another batch still being written.
    """
    try:
        entries = [entry for entry in os.scandir(folder)
                   if entry.name.startswith(_STAGING_PREFIX) and entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for entry in entries:
        if _left_by_a_dead_writer(entry.name[len(_STAGING_PREFIX):], unnamed_too):
            shutil.rmtree(entry.path, ignore_errors=True)  # what cannot be removed stays


def _left_by_a_dead_writer(middle: str, unnamed_too: bool = True) -> bool:
    """Whether a temporary name's ``<pid>-<random>`` part names a process that is gone.

    A bare ``<random>`` part (the names of older versions, without the pid) counts as gone
    when ``unnamed_too``; anything else is not a name of ours and is left alone.
    """
    pid, dash, rest = middle.partition("-")
    if dash and pid.isdigit():
        return _is_random_part(rest) and not _process_alive(int(pid))
    return unnamed_too and _is_random_part(middle)


def _is_random_part(text: str) -> bool:
    # tempfile.mkstemp's random part: 8 characters from a-z, 0-9 and _
    return len(text) == 8 and all(c.islower() or c.isdigit() or c == "_" for c in text) and text.isascii()


def _process_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows: never call a writer dead
    if pid == os.getpid():
        return True  # another thread of this process may be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def write_json(path: PathLike, obj: Any, indent: int | None = None) -> Path:
    """Write ``obj`` as UTF-8 JSON, atomically. NumPy scalars and arrays are converted.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    # Serialise first: an unserialisable object must fail before the file is touched.
    text = json.dumps(obj, indent=indent, default=_json_default)
    with atomic_write(path, "w") as file:
        file.write(text)
    return Path(path)


def write_image(path: PathLike, image: Image.Image, file_format: str, **options: Any) -> Path:
    """Save a PIL image atomically: encode into a temporary file, then rename it into place.

    An encoder error leaves ``path`` as it was.

    Args:
        path: destination file (its extension is not looked at).
        image: the image to save.
        file_format: PIL format name, e.g. ``"PNG"`` or ``"JPEG"``.
        **options: PIL save options, e.g. ``compress_level=1`` or ``quality=95``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_write(path, "wb") as file:
        image.save(file, format=file_format, **options)
    return Path(path)


def write_png(path: PathLike, array: np.ndarray, compress_level: int | None = None) -> Path:
    """Write an image array as a lossless PNG, atomically.

    Args:
        path: destination file (the ``.png`` extension is not required).
        array: (H, W) uint8 or uint16 grey levels, (H, W) bool, or (H, W, 3) / (H, W, 4)
            uint8 RGB / RGBA.
        compress_level: zlib level 0 (none, fastest) to 9 (smallest, slowest); ``None``:
            Pillow's default (6). ``benchmarks/png_io.py`` measures level 1 against 6: the
            built-in dataset's images are encoded several times faster into files no
            larger, panoptic label maps faster into files 1.5 times larger that decode
            about twice as fast.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    array = np.asarray(array)
    grey = array.ndim == 2 and array.dtype in (np.uint8, np.uint16, np.bool_)
    colour = array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8
    if not (grey or colour) or array.size == 0:
        raise ValueError(f"{path}: write_png takes a non-empty (H, W) uint8/uint16/bool or (H, W, 3|4) uint8 "
                         f"array, got shape {array.shape} and dtype {array.dtype}")
    return write_image(path, Image.fromarray(np.ascontiguousarray(array)), "PNG", **_png_options(compress_level, path))


def _png_options(compress_level: int | None, path: PathLike = "PNG") -> dict:
    """Pillow's PNG save options for a zlib level (``None``: Pillow's default); bad levels name ``path``."""
    if compress_level is None:
        return {}
    if isinstance(compress_level, bool) or not isinstance(compress_level, (int, np.integer)) \
            or not 0 <= compress_level <= 9:
        raise ValueError(f"{path}: compress_level must be an integer from 0 to 9, got {compress_level!r}")
    return {"compress_level": int(compress_level)}


@contextmanager
def staging_folder(folder: PathLike) -> Iterator[Path]:
    """A hidden folder inside ``folder`` whose files move into ``folder`` on success.

    Write a batch of files into the yielded folder (flat, no sub-folders). When the
    ``with`` block ends normally, each file replaces its namesake in ``folder`` and
    the staging folder is removed. When it raises, the staging folder and everything
    in it are removed, ``folder`` is left exactly as it was, and ``folder`` itself is
    removed again if this call created it and it is still empty.

    The staging folder is named ``.staging-<pid>-<random>``. Those of processes that were
    killed meanwhile (their pid runs no more) are removed when the next call starts, as
    :func:`atomic_write` removes its stale temporaries; those of live processes are kept.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    # a killed process leaves its staging folder behind, a whole batch of files: free that space first
    _remove_stale_staging_folders(folder, unnamed_too=False)
    # the pid in the name tells a batch still being written from one left by a killed process
    stage = Path(tempfile.mkdtemp(dir=folder, prefix=f"{_STAGING_PREFIX}{os.getpid()}-"))
    try:
        yield stage
        for entry in sorted(os.scandir(stage), key=lambda e: e.name):
            if not entry.is_file(follow_symlinks=False):
                raise ValueError(f"{entry.path}: staging folders hold plain files only")
            os.replace(entry.path, folder / entry.name)
        os.rmdir(stage)
        _fsync_folder(folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            with suppress(OSError):  # not empty: something else wrote there meanwhile
                folder.rmdir()
        raise
    _remove_stale_staging_folders(folder, unnamed_too=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"an object of type {type(value).__name__} cannot be written as JSON")


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # The only portable way to read the umask is to set it and put it back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _permissions_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: fsync the folder entry (POSIX only; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename itself is still atomic
    finally:
        os.close(fd)
