"""``panopticlab data``: write the built-in dataset, check a dataset on disk, convert your own labels."""
from __future__ import annotations

import argparse

from .common import CommandError, positive_int, refuse_overwriting_inputs

__all__ = ["add_parser"]


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="write the built-in synthetic dataset in COCO panoptic format")
    synth.add_argument("out", help="root folder; writes OUT/<split>/, OUT/annotations/panoptic_<split>.json and PNGs")
    synth.add_argument("--split", default="val", choices=["train", "val", "test"])
    synth.add_argument("--num", type=positive_int, default=100, help="number of images")
    synth.add_argument("--size", type=positive_int, nargs="+", default=[256], metavar="N",
                       help="image side, or height and width")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(func=run_synth)
    check = data.add_parser("check", help="read every image and annotation of a set and report the first problem")
    check.add_argument("json", nargs="?", help="COCO panoptic JSON (PNG and image folders follow COCO's layout)")
    check.add_argument("--png-folder", help="folder of the panoptic PNGs (default: the JSON's path without .json)")
    check.add_argument("--image-folder", help="folder of the images (default: COCO's layout)")
    check.add_argument("--cityscapes", metavar="ROOT", help="a Cityscapes root with the panoptic annotations")
    check.add_argument("--split", default="val", help="Cityscapes split")
    check.add_argument("--train-id", action="store_true", help="Cityscapes annotations in train ids")
    check.add_argument("--no-images", action="store_true", help="check the annotations only")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=run_check)
    _add_convert_parser(data)


_CONVERT_EPILOG = ("categories: a JSON list of COCO category records {id, name, isthing, color} (color optional), or "
                   "an object whose 'categories' field is one (a COCO panoptic file), or a built-in set: cityscapes, "
                   "synthetic. Label PNGs: 8- or 16-bit grey, or palette (the palette index is the id, the colours "
                   "are ignored); RGB, RGBA, grey + alpha and JPEG files are refused. Files pair up by name (without "
                   "extension and suffix), searched recursively. Every conflict between labels is resolved by the "
                   "rule of its option and listed.")


def _add_convert_parser(data) -> None:
    convert = data.add_parser("convert", help="convert your own labels into COCO panoptic (PNG + JSON)",
                              description="Convert your own labels into COCO panoptic: one RGB PNG per image and "
                                          "a JSON with area, bbox, iscrowd and the categories.")
    formats = convert.add_subparsers(dest="source_format", required=True, metavar="FORMAT")
    semantic = formats.add_parser("semantic", help="a semantic PNG plus an instance PNG per image",
                                  epilog=_CONVERT_EPILOG,
                                  description="A semantic PNG (category ids) plus an instance PNG (instance ids, 0: "
                                              "none) per image, labelled separately; an image without thing pixels "
                                              "needs no instance PNG.")
    semantic.add_argument("semantic", metavar="SEMANTIC", help="folder of the semantic PNGs")
    semantic.add_argument("instances", metavar="INSTANCES", help="folder of the instance PNGs")
    _convert_options(semantic, unassigned="crowd", coco=False)
    divisor = formats.add_parser("divisor", help="label-divisor id maps, category * divisor + instance "
                                                 "(Cityscapes' *_instanceIds.png)", epilog=_CONVERT_EPILOG,
                                 description="Label-divisor id maps as Cityscapes' *_instanceIds.png: a value v of "
                                             "at least DIVISOR is instance v % DIVISOR of category v // DIVISOR; a "
                                             "smaller one is the bare category: stuff, or a crowd region of a thing.")
    divisor.add_argument("labels", metavar="LABELS", help="folder of the label-divisor PNGs")
    _convert_options(divisor, unassigned="crowd", coco=False)
    divisor.add_argument("--divisor", type=positive_int, default=1000, help="the label divisor (default: 1000)")
    coco = formats.add_parser("coco", help="COCO instance annotations (polygons, RLE) plus stuff maps",
                              epilog=_CONVERT_EPILOG,
                              description="COCO instance annotations (polygons or RLE) plus, optionally, a stuff "
                                          "map per image (COCO-Stuff style: category ids, void elsewhere).")
    coco.add_argument("instances_json", metavar="INSTANCES_JSON", help="the COCO instances JSON")
    _convert_options(coco, unassigned="void", coco=True)
    coco.add_argument("--stuff", metavar="DIR", help="folder of the stuff maps, <image file stem>.png")
    coco.add_argument("--stuff-suffix", default="", metavar="S", help="the stuff maps are named <stem>S.png")
    coco.add_argument("--overlap", choices=["smaller", "first", "last", "void"], default="smaller",
                      help="overlapping instance masks: the smaller one keeps the shared pixels (default), the "
                           "first or last in the file does, or neither")
    for parser in (semantic, divisor):
        parser.add_argument("--images", metavar="DIR", help="folder of the images: each label needs one of its "
                                                            "size, each image labels (default: images are named "
                                                            "<key>.jpg, not checked)")
        parser.add_argument("--label-suffix", default="", metavar="S",
                            help="take only label files named <key>S.png (e.g. _gtFine_instanceIds)")
        parser.add_argument("--image-suffix", default="", metavar="S",
                            help="images are named <key>S.<ext> (e.g. _leftImg8bit)")
    semantic.add_argument("--instance-ids", choices=["image", "class"], default="image",
                          help="an instance id names one object of the image (default), or ids are numbered per "
                               "class")
    for parser, where in ((semantic, "stuff or void of the semantic map"), (coco, "stuff of the stuff map")):
        parser.add_argument("--prefer", choices=["instances", "semantic"], default="instances",
                            help=f"where an instance lies on {where}: the instance takes the pixels (default) or "
                                 f"the map keeps them")


def _int_list(text: str) -> list[int]:
    """An argparse ``type``: whole numbers separated by commas, ``0,255``."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def _convert_options(parser: argparse.ArgumentParser, unassigned: str, coco: bool) -> None:
    """The options every source format of ``data convert`` takes (``coco``: the categories may come from its JSON)."""
    parser.add_argument("--categories", required=not coco, metavar="FILE",
                        help="the categories (see below)" + ("; default: the instances JSON's, all things"
                                                             if coco else ""))
    parser.add_argument("--output", required=True, metavar="JSON", help="the COCO panoptic JSON to write")
    parser.add_argument("--png-folder", metavar="DIR", help="its PNG folder (default: JSON without .json)")
    parser.add_argument("--void", type=_int_list, metavar="N[,N...]",
                        help="label values meaning unlabeled, e.g. 0,255 (default: 0 and 255, unless a category id)")
    parser.add_argument("--unknown", choices=["error", "void"], default="error",
                        help="a value that is no category and not void: an error (default), or void")
    parser.add_argument("--unassigned", choices=["crowd", "void"], default=unassigned,
                        help=f"thing pixels no instance covers: a crowd region per class, or void "
                             f"(default: {unassigned})")
    parser.add_argument("--empty", choices=["error", "skip", "keep"], default="error",
                        help="an image with no labels, or only void: an error (default), left out, or kept "
                             "without segments")
    parser.add_argument("--strict", action="store_true", help="refuse every conflict instead of resolving it")
    parser.add_argument("--report", metavar="FILE", help="write every conflict to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_convert)


def run_synth(args: argparse.Namespace) -> int:
    from ..data.atomic import check_writable
    from ..data.synthetic import write_synthetic_coco

    if len(args.size) > 2:
        raise CommandError(f"--size takes one side or a height and a width, got {args.size}")
    check_writable(args.out, "OUT", folder=True)
    size = tuple(args.size) if len(args.size) == 2 else args.size[0]
    write_synthetic_coco(args.out, split=args.split, num=args.num, size=size, seed=args.seed, progress=not args.quiet)
    print(f"wrote {args.num} {args.split} images to {args.out}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.cityscapes:
        from ..data.cityscapes import CityscapesPanoptic

        dataset = CityscapesPanoptic(args.cityscapes, split=args.split, use_train_id=args.train_id)
    else:
        if not args.json:
            raise CommandError("give a COCO panoptic JSON file, or --cityscapes ROOT")
        from ..data.coco import CocoPanoptic

        dataset = CocoPanoptic(args.json, png_folder=args.png_folder, image_folder=args.image_folder)
    if len(dataset) == 0:
        raise CommandError(f"{args.cityscapes or args.json}: no images to check (the set is empty)")
    segments, crowd = 0, 0
    for index in tqdm(range(len(dataset)), desc="checking", unit="image", disable=args.quiet):
        pan = dataset.panoptic(index) if args.no_images else dataset[index].panoptic
        segments += len(pan.segments)
        crowd += sum(1 for s in pan.segments if s.iscrowd)
    print(f"ok: {len(dataset)} images, {segments} segments ({crowd} crowd), {len(dataset.categories)} categories")
    return 0


_SHOWN_CONFLICTS = 10  # conflict lines printed; --report lists them all


def run_convert(args: argparse.Namespace) -> int:
    """Convert, after refusing outputs that would overwrite an input; conflicts are listed, then the summary."""
    from pathlib import Path

    from ..data import convert
    from ..data.atomic import check_writable

    rules = convert.ConvertRules(void=args.void, unknown=args.unknown, prefer=getattr(args, "prefer", "instances"),
                                 unassigned=args.unassigned, instance_ids=getattr(args, "instance_ids", "image"),
                                 overlap=getattr(args, "overlap", "smaller"), empty=args.empty, strict=args.strict)
    png_folder = args.png_folder or str(Path(args.output).with_suffix(""))
    if args.source_format == "semantic":
        inputs = [args.semantic, args.instances, args.images]
    elif args.source_format == "divisor":
        inputs = [args.labels, args.images]
    else:
        inputs = [args.instances_json, args.stuff]
    if args.categories and Path(args.categories).exists():
        inputs.append(args.categories)
    refuse_overwriting_inputs([("--output", args.output), ("--png-folder", png_folder), ("--report", args.report)],
                              inputs)
    if args.report is not None:
        report = Path(args.report).resolve()
        if report == Path(args.output).resolve() or Path(png_folder).resolve() in report.parents:
            raise CommandError(f"--report {args.report}: it would overwrite the output; write it elsewhere")
        check_writable(args.report, "--report")
    categories = convert.read_categories(args.categories) if args.categories else None
    common = {"rules": rules, "progress": not args.quiet}
    if args.source_format == "semantic":
        result = convert.convert_semantic_instances(
            args.semantic, args.instances, categories, args.output, png_folder, image_folder=args.images,
            label_suffix=args.label_suffix, image_suffix=args.image_suffix, **common)
    elif args.source_format == "divisor":
        result = convert.convert_label_divisor(
            args.labels, categories, args.output, png_folder, divisor=args.divisor, image_folder=args.images,
            label_suffix=args.label_suffix, image_suffix=args.image_suffix, **common)
    else:
        result = convert.convert_coco_instances(args.instances_json, args.output, png_folder, categories=categories,
                                                stuff_folder=args.stuff, stuff_suffix=args.stuff_suffix, **common)
    if args.report is not None:
        from ..data.atomic import write_json

        write_json(args.report, [conflict.to_json() for conflict in result.conflicts], indent=1)
    _print_conflicts(result.conflicts, args.report)
    skipped = f", {len(result.skipped)} skipped as empty" if result.skipped else ""
    print(f"wrote {result.images} images ({result.segments} segments, {result.crowd} crowd{skipped}) to "
          f"{result.json_path} and {result.png_folder}")
    return 0


def _print_conflicts(conflicts, report) -> None:
    """Each kind of conflict counted on stdout; the first few in full on stderr."""
    import sys
    from collections import Counter

    if not conflicts:
        return
    for conflict in conflicts[:_SHOWN_CONFLICTS]:
        print(f"conflict: {conflict}", file=sys.stderr)
    if len(conflicts) > _SHOWN_CONFLICTS:
        where = f"all in {report}" if report else "--report FILE lists them all"
        print(f"conflict: ... and {len(conflicts) - _SHOWN_CONFLICTS} more ({where})", file=sys.stderr)
    kinds, pixels = Counter(), Counter()
    for conflict in conflicts:
        kinds[conflict.kind] += 1
        pixels[conflict.kind] += conflict.pixels
    print(f"{len(conflicts)} conflicts, each resolved by its rule: "
          + "; ".join(f"{kind} x{count} ({pixels[kind]} pixels)" for kind, count in kinds.items()))
