"""``panopticlab predict``: a trained model on your own images, as COCO panoptic predictions.

    panopticlab predict --model NAME (--checkpoint PATH | --pretrained) IMAGES... --output OUT.json \\
        [--input-size PX] [--device DEV] [--show [DIR]] [--no-progress]

IMAGES are JPEG or PNG files of any size, or folders of them. The model is loaded as
``panopticlab evaluate --model`` loads it (a run folder of ``panopticlab train``, a
checkpoint file, or the shipped weights), and each image is predicted at its own size.
``OUT.json`` and the PNG folder ``OUT/`` are what ``panopticlab evaluate --pred-json`` and
panopticapi's ``pq_compute`` read (:mod:`panopticlab.engine.predict_images`). Run it again
into the same ``OUT.json`` to resume: images already written are skipped. ``--show`` also
draws each prediction over its image (``panopticlab show``'s figure) into DIR, by default
``OUT-drawn/``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import CommandError, exclusive_use, no_progress_option, positive_int, refuse_overwriting_inputs
from .trained import resolve_device, run_categories, trained_model

__all__ = ["add_parser", "run_predict"]


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "predict", help="predict your own images (JPEG or PNG, any size) with a trained model, in COCO "
                        "panoptic format; resumable")
    parser.add_argument("images", nargs="+", metavar="IMAGES", help="image files, or folders of them")
    parser.add_argument("--model", required=True, help="the model, e.g. panoptic-fpn-tiny (see `panopticlab models`)")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--checkpoint", default=None,
                         help="the run folder of `panopticlab train`, or a checkpoint file (last.pt or shipped "
                              "weights)")
    weights.add_argument("--pretrained", action="store_true", help="the weights shipped with the package")
    parser.add_argument("--output", required=True, metavar="OUT.json",
                        help="the predictions JSON; the PNGs go in the folder OUT/ beside it")
    parser.add_argument("--input-size", type=positive_int, default=None, metavar="PX",
                        help="the short side a network that resizes its images resizes them to (default: the "
                             "run's `train --input-size`, else the model's published size)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--show", nargs="?", const="", default=None, metavar="DIR",
                        help="also draw each prediction over its image into DIR (default: OUT-drawn/)")
    no_progress_option(parser)
    parser.set_defaults(func=run_predict)


def _show_folder(args: argparse.Namespace, json_path: Path) -> Path | None:
    if args.show is None:
        return None
    return Path(args.show) if args.show else json_path.with_name(json_path.stem + "-drawn")


def run_predict(args: argparse.Namespace) -> int:
    from ..data.atomic import check_writable
    from ..data.coco import check_predictions_writable
    from ..engine.predict_images import find_images, predict_images, prediction_paths
    from ..models import zoo
    zoo.check_name(args.model)
    try:
        json_path, png_folder, journal = prediction_paths(args.output)
    except ValueError as error:
        raise CommandError(f"--output {error}") from None
    show_folder = _show_folder(args, json_path)
    refuse_overwriting_inputs([("--output", json_path), ("--output", png_folder), ("--output", journal),
                               ("--show", show_folder)], [*args.images, args.checkpoint])
    check_predictions_writable(json_path, png_folder, what="--output")
    if show_folder is not None:
        check_writable(show_folder, "--show", folder=True)
    find_images(args.images)  # every input is an image: refused now, before the model loads
    device = resolve_device(args.device)
    categories = run_categories(args.checkpoint)
    model = trained_model(args.model, args.checkpoint, args.pretrained, categories, args.input_size).to(device)
    record = {"name": args.model,
              "weights": "pretrained" if args.pretrained else str(Path(args.checkpoint).resolve())}
    if args.input_size is not None:
        record["input_size"] = args.input_size
    with exclusive_use(json_path, "--output"):
        run = predict_images(model, args.images, json_path, categories, model_record=record, device=device,
                             progress=not args.no_progress)
        skipped = f" ({len(run.skipped)} written before, skipped)" if run.skipped else ""
        speed = f" in {run.seconds:.1f} s, {run.images_per_second:.2f} images/s" if run.predicted else ""
        print(f"predicted {len(run.predicted)} images{skipped}{speed}: {json_path} and {png_folder}/")
        if show_folder is not None:
            drawn = draw_predictions(run, categories, show_folder, progress=not args.no_progress)
            print(f"drew {drawn} images into {show_folder}/")
    return 0


def draw_predictions(run, categories, folder: Path, progress: bool = True) -> int:
    """Draw each image of ``run`` (a :class:`~panopticlab.engine.predict_images.PredictionRun`) with its
    prediction into ``folder/<image stem>.png``: those predicted now, and those not drawn yet.

    Returns:
        how many were drawn.
    """
    from tqdm.auto import tqdm

    from ..data.coco import read_image
    from ..viz.review import ResultFiles, save_figure, show_prediction

    files = ResultFiles(pred_json=run.json_path, pred_folder=run.png_folder)
    fresh = set(run.predicted)
    todo = [(image_id, path) for image_id, path in run.image_paths.items()
            if image_id in fresh or not (folder / f"{path.stem}.png").is_file()]
    for image_id, path in tqdm(todo, desc="draw", unit="image", disable=not progress):
        figure = show_prediction(read_image(path), None, files.panoptic(image_id, "pred"), categories,
                                 image_id=image_id, title=path.name)
        save_figure(figure, folder / f"{path.stem}.png")
    return len(todo)
