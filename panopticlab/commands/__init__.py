"""The ``panopticlab`` command line, above everything else in the package.

    panopticlab data synth OUT --split val --num 100 --size 256 --seed 0
    panopticlab data check JSON [--image-folder DIR] | --cityscapes ROOT --split val
    panopticlab data convert semantic SEMANTIC INSTANCES --categories FILE --output JSON (or divisor, coco)
    panopticlab models
    panopticlab train --model baseline-tiny [--profile laptop] [--output runs/baseline-tiny]
    panopticlab evaluate --gt-json G --gt-folder GF --pred-json P --pred-folder PF
    panopticlab evaluate --model baseline-tiny --pretrained | --checkpoint runs/baseline-tiny
    panopticlab predict --model panoptic-fpn-tiny --pretrained IMAGES... --output preds.json [--show]
    panopticlab show --gt-json G --pred-json P (--image-id ID | --worst N) --output PNG|DIR
    panopticlab book run [--profile laptop] [--output build/book] [--chapter 01]
    panopticlab book student OUT
    panopticlab book sync

One module per sub-command. Building the parser imports nothing but the standard
library, and each sub-command imports what it needs when it runs: ``--help``, ``data``
and the folder form of ``evaluate`` never import torch, so they start at once.
``benchmarks/cli_start.py`` measures it.

Bad input ends a command with one line on stderr (``error: ...``) and exit status 1;
argparse's own usage errors exit with 2. Suspicious input (predictions without a single
segment) gets one line on stderr (``warning: ...``) and the command goes on.
"""
from __future__ import annotations

import argparse
import sys
import warnings

from . import book, data, evaluate, models, predict, show, train
from .common import CommandError

__all__ = ["CommandError", "build_parser", "main"]

SUBCOMMANDS = (data, models, train, evaluate, predict, show, book)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="panopticlab", description="panopticlab: a runnable textbook on "
                                                                     "panoptic segmentation")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(commands)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    # the package's own error types import nothing heavy
    from ..data.errors import PanopticFormatError
    from ..profiles import ProfileError

    return (CommandError, PanopticFormatError, ProfileError, ValueError, OSError)


def _one_line_warnings(show):
    """``warnings.showwarning`` that prints the package's own warnings as ``warning: ...``, one line each."""
    def showwarning(message, category, filename, lineno, file=None, line=None):
        from ..data.errors import PanopticWarning

        if issubclass(category, PanopticWarning):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            show(message, category, filename, lineno, file, line)
    return showwarning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # puts showwarning back on the way out
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        try:
            return args.func(args)
        except _user_errors() as error:
            print(f"error: {error}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
