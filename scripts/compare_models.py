"""The four methods side by side, from their run records: chapter 7's table and the README's copy.

    .venv/bin/python scripts/compare_models.py                      # the shipped records
    .venv/bin/python scripts/compare_models.py runs/a runs/b ...    # your own run folders
    .venv/bin/python scripts/compare_models.py --train [--profile laptop] [--ship] [--readme README.md]

With ``--train`` it first trains each tiny model of :data:`MODELS` with
``panopticlab train --model NAME --profile P --output WORK/NAME`` (each model's own recipe
for that profile, from the same pretrained tiny backbone, on the same built-in data,
scored on the same validation split), one after the other on this machine, so their
times compare. ``--ship`` copies each ``run.json`` to ``panopticlab/checkpoints/runs/``,
where chapter 7 reads it; ``--readme`` rewrites the README's table between its
``<!-- model-comparison:start -->`` and ``<!-- model-comparison:end -->`` markers.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from panopticlab.commands import main as panopticlab_main
from panopticlab.engine.comparison import comparison_markdown, replace_marked_section
from panopticlab.engine.runs import RUN_FILE, SHIPPED_RUNS, read_run, shipped_runs
from panopticlab.models import zoo

# the tiny panoptic models of the table, in its (the chapters') order: not the networks a model is made of
_NETWORKS = {name for row in zoo.MODELS.values() for name in row.components}
MODELS = tuple(row.name for row in zoo.MODELS.values() if row.size == "tiny" and row.name not in _NETWORKS)
README_SECTION = "model-comparison"


def train_all(work_dir: Path, profile: str, resume: bool) -> list[Path]:
    folders = []
    for name in MODELS:
        folder = work_dir / name
        arguments = ["train", "--model", name, "--profile", profile, "--output", str(folder), "--no-progress"]
        if resume and (folder / RUN_FILE).exists():
            print(f"{name}: {folder / RUN_FILE} exists, kept")
        else:
            code = panopticlab_main(arguments + (["--resume"] if resume and folder.exists() else []))
            if code:
                sys.exit(f"training {name} failed (exit {code})")
        folders.append(folder)
    return folders


def table_note(runs) -> str:
    first = next(iter(runs.values()))
    inference = first.inference
    return (f"Profile `{first.profile}`, {first.results['num_images']} validation images; times on "
            f"{inference.get('threads', '?')} CPU thread(s), per image of {inference.get('image_size', '?')} px. "
            f"Made by `scripts/compare_models.py` from the run records.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run folders or run.json files (default: the shipped records)")
    parser.add_argument("--train", action="store_true", help="train the four tiny models first")
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--work-dir", default="runs/compare", help="where --train writes the run folders")
    parser.add_argument("--resume", action="store_true", help="with --train: keep finished runs, resume the others")
    parser.add_argument("--ship", action="store_true", help="copy the records to panopticlab/checkpoints/runs/")
    parser.add_argument("--readme", default=None, help="rewrite the comparison section of this README")
    args = parser.parse_args(argv)

    paths = [Path(p) for p in args.runs]
    if args.train:
        paths = train_all(Path(args.work_dir), args.profile, args.resume)
    runs = {run.model: run for run in map(read_run, paths)} if paths else shipped_runs()
    runs = dict(sorted(runs.items(), key=lambda item: MODELS.index(item[0]) if item[0] in MODELS else len(MODELS)))
    if not runs:
        sys.exit(f"no run records given and none shipped in {SHIPPED_RUNS}")
    table = comparison_markdown(runs)
    print(table)
    if args.ship:
        SHIPPED_RUNS.mkdir(parents=True, exist_ok=True)
        for path in paths:
            source = path / RUN_FILE if path.is_dir() else path
            shutil.copyfile(source, SHIPPED_RUNS / f"{read_run(source).model}.json")
        print(f"records copied to {SHIPPED_RUNS}")
    if args.readme:
        readme = Path(args.readme)
        readme.write_text(replace_marked_section(readme.read_text(encoding="utf-8"), README_SECTION,
                                                 f"{table}\n\n{table_note(runs)}"), encoding="utf-8")
        print(f"{readme}: comparison section rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
