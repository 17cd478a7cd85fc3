"""``panopticlab models``: the model table, one line per model."""
from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def add_parser(commands) -> None:
    parser = commands.add_parser("models", help="list the models of the book (names for --model)")
    parser.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from ..models import zoo

    width = max(len(name) for name in zoo.MODELS) + 1
    for row in zoo.MODELS.values():
        trained = f"trained as {' + '.join(row.components)}" if row.components else f"trains on {', '.join(row.targets)}"
        shipped = "; weights shipped" if row.shipped else ""
        print(f"{row.name:<{width}} {row.summary} ({trained}{shipped})")
    return 0
