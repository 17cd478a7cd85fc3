"""What the sub-commands share: the error type for bad input and small argument checks."""
from __future__ import annotations

import argparse

__all__ = ["CommandError", "positive_int", "no_progress_option"]


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
