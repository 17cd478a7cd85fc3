"""What the sub-commands share: the error type for bad input and small argument checks."""
from __future__ import annotations

import argparse
import os
from contextlib import contextmanager

__all__ = ["CommandError", "positive_int", "positive_float", "no_progress_option", "refuse_overwriting_inputs", "exclusive_use"]


class CommandError(Exception):
    """Bad input to a command: the message says what is wrong and where."""


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def no_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def refuse_overwriting_inputs(outputs, inputs) -> None:
    """Refuse, before any work, an output that would replace or write into an input of the
    same command: a file that is an input, or a path inside an input folder.

    Args:
        outputs: ``(option, path)`` pairs (``None`` paths are skipped).
        inputs: the command's input files and folders.

    Raises:
        CommandError: naming the option, its path and the input it would overwrite.
    """
    from pathlib import Path

    given = [Path(path).resolve() for path in inputs if path is not None]
    for option, path in outputs:
        if path is None:
            continue
        target = Path(path).resolve()
        for source in given:
            if target == source or source in target.parents:
                raise CommandError(f"{option} {path}: this would overwrite {source}, an input of this command; "
                                   f"write the output elsewhere")


@contextmanager
def exclusive_use(path, option: str):
    """Hold ``path`` (an output file or folder) for this command alone while the block runs.

    A second command writing to the same output at the same time is refused at once,
    before any work, instead of both reporting success and one result being lost. The lock
    is an ``fcntl`` lock on a hidden file beside ``path`` (released if the process dies);
    where ``fcntl`` does not exist, nothing is locked.

    Raises:
        CommandError: another process holds ``path``, naming the option and the path.
    """
    from pathlib import Path

    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks of this kind
        yield
        return
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            raise CommandError(f"{option} {path}: another command is writing it now"
                               f"{f' (process {holder})' if holder else ''}; wait for it to end, or write "
                               f"elsewhere") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()
