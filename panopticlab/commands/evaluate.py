"""``panopticlab evaluate``: Panoptic Quality of prediction files, or of a trained model of the table.

    panopticlab evaluate --gt-json G --gt-folder GF --pred-json P --pred-folder PF \\
        [--workers N] [--output results.json] [--per-class] [--breakdown]
    panopticlab evaluate --model NAME (--checkpoint PATH | --pretrained) [--data KIND ROOT] [--predictions JSON] \\
        [--input-size PX]

The folder form takes the same inputs as panopticapi's ``pq_compute`` and gives its
numbers; it prints panopticapi's table, and ``--output`` writes the full results
(panopticapi's shape plus the size breakdown and PQ-dagger) as JSON. It imports neither
torch nor any model.

The model form scores a trained model on the synthetic validation split, or with
``--data coco ROOT`` / ``--data cityscapes ROOT`` on that dataset's val split, with the
categories its run folder recorded (``categories.json``): the PQ table,
the mIoU when the model predicts a semantic map, and the ablations its row of the model
table names (for the baseline: each network alone). ``--predictions`` also writes the
panoptic predictions in COCO panoptic format, for ``pq_compute`` or the folder form;
with ``--data cityscapes`` their categories are Cityscapes' label ids (``person`` is
24), as the benchmark and cityscapesScripts' evaluator read them against
``gtFine/cityscapes_panoptic_val.json``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import CommandError, positive_int, refuse_overwriting_inputs
from .trained import CATEGORIES_FILE, data_inputs, open_data, resolve_device, run_categories, trained_model

__all__ = ["add_parser", "ABLATION_TITLES", "print_evaluation"]

ABLATION_TITLES = {"semantic_only": "semantic network only (things from connected regions)",
                   "instance_only": "instance network only (no stuff)"}
MATCH_IOU = 0.5  # COCO's; metrics.matching.MATCH_IOU, restated here to keep the parser free of imports


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="panoptic quality: of predictions in COCO panoptic format (--gt-json/--pred-json), "
                         "or of a trained model on the built-in validation split (--model)")
    files = parser.add_argument_group("prediction files (panopticapi's pq_compute)")
    files.add_argument("--gt-json", help="ground-truth COCO panoptic JSON")
    files.add_argument("--gt-folder", default=None, help="ground-truth PNG folder (default: GT_JSON without .json)")
    files.add_argument("--pred-json", help="predictions JSON")
    files.add_argument("--pred-folder", default=None, help="prediction PNG folder (default: PRED_JSON without .json)")
    files.add_argument("--workers", type=positive_int, default=None,
                       help="processes (default: one per CPU this process may use, as panopticapi and hotcoco do)")
    files.add_argument("--output", default=None, help="write the full results to this JSON file")
    files.add_argument("--iou-threshold", type=float, default=None,
                       help="match when IoU is above this (default 0.5, COCO's; the matching is unique from 0.5 up)")
    files.add_argument("--breakdown", action="store_true", help="also print the size breakdown and PQ-dagger")
    model = parser.add_argument_group("a trained model (see `panopticlab models`)")
    model.add_argument("--model", help="the model to evaluate, e.g. baseline-tiny")
    weights = model.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", default=None,
                         help="a checkpoint file (last.pt or shipped weights), or the run folder of "
                              "`panopticlab train` (for a baseline: the folder holding its two networks)")
    weights.add_argument("--pretrained", action="store_true", help="the weights shipped with the package")
    model.add_argument("--data", nargs=2, metavar=("KIND", "ROOT"), default=None,
                       help="score on the val split of a dataset on disk: coco ROOT or cityscapes ROOT")
    model.add_argument("--num-images", type=positive_int, default=50, help="validation images (default 50)")
    model.add_argument("--image-size", type=positive_int, default=128, help="their side in pixels (default 128)")
    model.add_argument("--input-size", type=positive_int, default=None, metavar="PX",
                       help="the short side a network that resizes its images resizes them to (default: the "
                            "run's `train --input-size`, else the model's published size)")
    model.add_argument("--val-seed", type=int, default=0, help="seed of the validation split (default 0)")
    model.add_argument("--predictions", default=None, metavar="JSON",
                       help="also write the predictions in COCO panoptic format (PNGs next to JSON)")
    model.add_argument("--results-json", default=None, help="write the full results to this JSON file")
    model.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--per-class", action="store_true", help="also print the per-class table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    file_options = [flag for flag, value in (("--gt-json", args.gt_json), ("--pred-json", args.pred_json),
                                             ("--gt-folder", args.gt_folder), ("--pred-folder", args.pred_folder))
                    if value is not None]
    file_options += [flag for flag, value in (("--output", args.output), ("--workers", args.workers),
                                              ("--iou-threshold", args.iou_threshold), ("--breakdown", args.breakdown))
                     if value not in (None, False)]
    if args.model and file_options:
        raise CommandError(f"--model evaluates a model on the built-in validation split; it cannot be combined "
                           f"with {', '.join(file_options)}, options of the prediction-file form (for a model: "
                           f"--results-json for the results, --predictions for the files)")
    if args.model:
        return run_model_evaluation(args)
    return run_file_evaluation(args)


# --- prediction files ---------------------------------------------------------------------
def run_file_evaluation(args: argparse.Namespace) -> int:
    """Score prediction files as panopticapi's ``pq_compute`` does; print (and save) the results."""
    if not args.gt_json or not args.pred_json:
        raise CommandError("give both --gt-json and --pred-json (or --model NAME to evaluate a trained model)")
    from ..data.atomic import check_writable
    from ..metrics.evaluate import available_cpus, evaluate_folders
    from ..metrics.report import format_by_size, format_per_class, format_pq_dagger, format_table, save_results

    gt_folder = args.gt_folder or str(Path(args.gt_json).with_suffix(""))
    pred_folder = args.pred_folder or str(Path(args.pred_json).with_suffix(""))
    refuse_overwriting_inputs([("--output", args.output)], [args.gt_json, args.pred_json, gt_folder, pred_folder])
    if args.output:
        check_writable(args.output, "--output")  # now, not after the evaluation
    results = evaluate_folders(args.gt_json, args.pred_json, args.gt_folder, args.pred_folder,
                               workers=available_cpus() if args.workers is None else args.workers,
                               iou_threshold=MATCH_IOU if args.iou_threshold is None else args.iou_threshold,
                               progress=not args.no_progress)
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


def print_evaluation(name: str, evaluation, per_class: bool = False) -> None:
    """Print an :class:`~panopticlab.engine.evaluator.Evaluation`: the PQ table, mIoU, the ablations."""
    from ..metrics.report import format_per_class, format_table
    from ..models import zoo

    print(f"{name}: {zoo.spec(name).summary}")
    print(format_table(evaluation.results))
    if per_class:
        print()
        print(format_per_class(evaluation.results))
    if evaluation.miou is not None:
        print(f"\nmIoU of the semantic map: {100 * evaluation.miou:.1f}")
    for variant in evaluation.ablations:
        row = {key: 100 * value for key, value in evaluation.headline(variant).items()}
        print(f"{ABLATION_TITLES.get(variant, variant)}: PQ {row['pq']:.1f}, PQ_th {row['pq_th']:.1f}, "
              f"PQ_st {row['pq_st']:.1f}")


def evaluation_record(name: str, evaluation) -> dict:
    """The JSON-ready record of an evaluation: ``model``, ``results``, ``ablations``, ``miou``."""
    from ..metrics.report import to_json_compatible

    return to_json_compatible({"model": name, "results": evaluation.results, "ablations": evaluation.ablations,
                               "miou": evaluation.miou})


def run_model_evaluation(args: argparse.Namespace) -> int:
    """Score ``args.model`` with trained weights on the synthetic validation split; print the results."""
    if args.image_size < 16:
        raise CommandError(f"--image-size must be at least 16 px, got {args.image_size}")
    from ..data.atomic import check_writable, write_json
    from ..data.coco import check_predictions_writable
    from ..data.synthetic import SYNTHETIC_CATEGORIES
    from ..engine.evaluator import evaluate
    from ..engine.recipes import val_data
    from ..models import zoo

    row = zoo.spec(args.model)
    # the outputs are checked now: an unwritable path must not cost a model's evaluation
    if args.data:
        predictions_folder = None if args.predictions is None else str(Path(args.predictions).with_suffix(""))
        refuse_overwriting_inputs([("--predictions", args.predictions), ("--predictions", predictions_folder),
                                   ("--results-json", args.results_json)], data_inputs(*args.data))
    if args.predictions:
        check_predictions_writable(args.predictions, what="--predictions")
    if args.results_json:
        check_writable(args.results_json, "--results-json")
    device = resolve_device(args.device)
    if args.data:
        samples, categories = open_data(*args.data, "val")
        samples = [samples[i] for i in range(min(args.num_images, len(samples)))]
        recorded = run_categories(args.checkpoint)
        if args.checkpoint and recorded.to_coco() != categories.to_coco():
            raise CommandError(f"--data {' '.join(args.data)}: its categories are not those the model was trained "
                               f"for (the run's {CATEGORIES_FILE})")
        if args.pretrained and categories.to_coco() != SYNTHETIC_CATEGORIES.to_coco():
            raise CommandError(f"--data {' '.join(args.data)}: its categories are not the built-in dataset's, which "
                               f"the shipped --pretrained weights predict; train on it (`panopticlab train --data`) "
                               f"and evaluate that run's --checkpoint")
    else:
        samples = val_data(size=args.image_size, num=args.num_images, seed=args.val_seed)
        categories = SYNTHETIC_CATEGORIES
    model = trained_model(args.model, args.checkpoint, args.pretrained, categories, args.input_size).to(device)
    evaluation = evaluate(model, samples, categories, device, ablations=row.ablations,
                          predictions_json=args.predictions, progress=not args.no_progress)
    print_evaluation(args.model, evaluation, per_class=args.per_class)
    if args.predictions:
        if args.data and args.data[0] == "cityscapes":
            from ..data.cityscapes import predictions_with_label_ids

            predictions_with_label_ids(args.predictions)
            print(f"predictions written to {args.predictions} with Cityscapes label ids "
                  f"(score them against gtFine/cityscapes_panoptic_val.json)")
        else:
            print(f"predictions written to {args.predictions}")
    if args.results_json:
        write_json(args.results_json, evaluation_record(args.model, evaluation), indent=1)
        print(f"results written to {args.results_json}")
    return 0
