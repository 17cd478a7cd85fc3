"""What the sub-commands share: the error type for bad input and small argument checks."""
from __future__ import annotations

import argparse

__all__ = ["CommandError", "positive_int", "no_progress_option", "refuse_overwriting_inputs"]


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
