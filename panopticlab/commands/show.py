"""``panopticlab show``: one image's ground truth and prediction side by side, its mistakes named.

    panopticlab show --gt-json G [--gt-folder GF] --pred-json P [--pred-folder PF] [--image-folder DIR] \\
        (--image-id ID [--image-id ID ...] | --worst N) --output PNG|DIR

Takes the files ``panopticlab evaluate`` takes (COCO panoptic JSON + PNG folder, ground
truth and prediction, or either alone) and draws each image asked for with category
names and segment outlines, every unmatched segment outlined and labelled as a miss, a
false alarm, a merge or a split (:mod:`panopticlab.viz.review`). ``--worst N`` draws the N
images of lowest PQ, each scored alone as the evaluator scores a dataset. One image goes
to ``--output x.png``; several go into the folder ``--output DIR`` (``<image id>.png``, or
``worst01_<image id>.png``, ... in order for ``--worst``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import CommandError, no_progress_option, positive_int, refuse_overwriting_inputs

__all__ = ["add_parser", "run_show"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "show", help="draw an image's ground truth and prediction side by side, each miss, false alarm, "
                     "merge and split marked (COCO panoptic files, as `evaluate` takes them)")
    files = parser.add_argument_group("the files (either side may be left out)")
    files.add_argument("--gt-json", help="ground-truth COCO panoptic JSON")
    files.add_argument("--gt-folder", default=None, help="ground-truth PNG folder (default: GT_JSON without .json)")
    files.add_argument("--pred-json", help="predictions JSON")
    files.add_argument("--pred-folder", default=None, help="prediction PNG folder (default: PRED_JSON without .json)")
    files.add_argument("--image-folder", default=None,
                       help="the images, named by the JSON's 'images' records (default: COCO's layout, "
                            "ROOT/<split> for ROOT/annotations/panoptic_<split>.json; else no image underneath)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--image-id", action="append", metavar="ID", help="an image to draw (repeat for several)")
    which.add_argument("--worst", type=positive_int, metavar="N", help="the N images of lowest PQ (needs both sides)")
    parser.add_argument("--output", required=True, metavar="PNG|DIR",
                        help="a .png file for one image, or a folder for several")
    no_progress_option(parser)
    parser.set_defaults(func=run_show)


def _file_name(image_id) -> str:
    """A file name for an image id (string ids may hold path separators)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(image_id))


def run_show(args: argparse.Namespace) -> int:
    if not args.gt_json and not args.pred_json:
        raise CommandError("give --gt-json, --pred-json or both")
    if args.worst and not (args.gt_json and args.pred_json):
        raise CommandError("--worst ranks images by PQ: give both --gt-json and --pred-json")
    output = Path(args.output)
    to_file = output.suffix.lower() == ".png"
    count = args.worst or len(args.image_id)
    if to_file and count > 1:
        raise CommandError(f"--output {output}: {count} images are drawn; give a folder, not a .png file")
    inputs = [args.gt_json, args.pred_json, args.gt_folder, args.pred_folder, args.image_folder]
    inputs += [str(Path(p).with_suffix("")) for p in (args.gt_json, args.pred_json) if p]
    refuse_overwriting_inputs([("--output", args.output)], inputs)
    from ..data.atomic import check_writable
    from ..viz.review import ResultFiles, save_figure

    check_writable(output, "--output", folder=not to_file)  # now, not after ranking every image
    files = ResultFiles(args.gt_json, args.pred_json, args.gt_folder, args.pred_folder, args.image_folder)
    if args.worst:
        ranked = files.worst(args.worst, progress=not args.no_progress)
        chosen = [(image_id, f"worst{rank:02d}_{_file_name(image_id)}.png", f"PQ {100 * pq:.1f}  ")
                  for rank, (image_id, pq) in enumerate(ranked, start=1)]
    else:
        try:
            ids = [files.find(text) for text in args.image_id]
        except KeyError as error:
            raise CommandError(f"--image-id: {error.args[0]}") from None
        chosen = [(image_id, f"{_file_name(image_id)}.png", "") for image_id in dict.fromkeys(ids)]
    for image_id, name, score in chosen:
        target = output if to_file else output / name
        save_figure(files.figure(image_id), target)
        print(f"image {image_id!r}: {score}-> {target}")
    return 0
