"""``panopticlab evaluate``: Panoptic Quality of predictions in COCO panoptic format.

    panopticlab evaluate --gt-json G --gt-folder GF --pred-json P --pred-folder PF \\
        [--workers N] [--output results.json] [--per-class] [--breakdown]

The same inputs as panopticapi's ``pq_compute``. Prints panopticapi's table; ``--output``
writes the full results (panopticapi's shape plus the size breakdown and PQ-dagger) as JSON.
"""
from __future__ import annotations

import argparse
import sys

from ..data.errors import PanopticFormatError
from .evaluate import available_cpus, evaluate_folders
from .matching import MATCH_IOU
from .report import format_by_size, format_per_class, format_pq_dagger, format_table, save_results


def add_evaluate_arguments(parser: argparse.ArgumentParser, required: bool = True) -> argparse.ArgumentParser:
    """Add the evaluator's options to ``parser`` (a sub-command's parser).

    ``required=False`` leaves ``--gt-json`` / ``--pred-json`` optional for a parser that
    also evaluates models another way; :func:`run_evaluate` still needs them.
    """
    parser.add_argument("--gt-json", required=required, help="ground-truth COCO panoptic JSON")
    parser.add_argument("--gt-folder", default=None, help="ground-truth PNG folder (default: GT_JSON without .json)")
    parser.add_argument("--pred-json", required=required, help="predictions JSON")
    parser.add_argument("--pred-folder", default=None, help="prediction PNG folder (default: PRED_JSON without .json)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes (default: one per CPU this process may use, as panopticapi and hotcoco do)")
    parser.add_argument("--output", default=None, help="write the full results to this JSON file")
    parser.add_argument("--iou-threshold", type=float, default=MATCH_IOU,
                        help="match when IoU is above this (default 0.5, COCO's; the matching is unique from 0.5 up)")
    parser.add_argument("--per-class", action="store_true", help="also print the per-class table")
    parser.add_argument("--breakdown", action="store_true", help="also print the size breakdown and PQ-dagger")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation that ``args`` describes; returns the exit status (1 for bad input)."""
    if not args.gt_json or not args.pred_json:
        print("error: give both --gt-json and --pred-json", file=sys.stderr)
        return 1
    try:
        results = evaluate_folders(args.gt_json, args.pred_json, args.gt_folder, args.pred_folder,
                                   workers=available_cpus() if args.workers is None else args.workers,
                                   iou_threshold=args.iou_threshold,
                                   progress=not args.no_progress)
    except (PanopticFormatError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_table(results))
    if args.per_class:
        print()
        print(format_per_class(results))
    if args.breakdown:
        print()
        print(format_by_size(results))
        print()
        print(format_pq_dagger(results))
    if args.output:
        save_results(results, args.output)
        print(f"results written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_evaluate_arguments(argparse.ArgumentParser(prog="python -m panopticlab.metrics.cli",
                                                            description=__doc__.split("\n")[0]))
    return run_evaluate(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
