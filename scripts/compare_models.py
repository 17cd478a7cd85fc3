"""The methods side by side, from their run records: chapter 7's table and the README's copy.

    .venv/bin/python scripts/compare_models.py                      # the shipped records
    .venv/bin/python scripts/compare_models.py runs/a runs/b ...    # your own run folders
    .venv/bin/python scripts/compare_models.py --train --budget 180 --seeds 0 1 2 [--ship] [--readme README.md]

With ``--train`` it first trains each tiny model of :data:`MODELS`, for each seed, with
``panopticlab train --model NAME --profile laptop --seed S [--budget SECONDS] --output
WORK/NAME/seed-S``: the same pretrained tiny backbone, the same built-in data, the same
validation split. ``--budget`` gives every model the same wall-clock training time: a
first run of each model (``WORK/NAME/calibration``, not in the table) times a few steps
and trains for the budget; its realised time per step, an average over the whole run,
then sets the steps of every seed (``train --step-times-from``), so that a model's seeds
train the same steps and differ in their seed alone; without ``--budget`` each model
trains its ``laptop`` recipe's steps. The runs go seed by seed, the models one after the
other within a seed, on this machine, so that a slower hour weighs on every model alike;
run it on an otherwise idle machine. ``--ship`` replaces the package's records
(``panopticlab/checkpoints/runs/``, which chapter 7 reads) by these; ``--readme`` rewrites
the README's table between its ``<!-- model-comparison:start -->`` and
``<!-- model-comparison:end -->`` markers. A model with several seeds shows ``mean ± sd``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from panopticlab.commands import main as panopticlab_main
from panopticlab.data.atomic import write_json
from panopticlab.engine.comparison import SUMMARY_COLUMNS, comparison_markdown, replace_marked_section
from panopticlab.engine.runs import RUN_FILE, SHIPPED_RUNS, read_run, shipped_run_path, shipped_runs
from panopticlab.models import zoo

# the tiny panoptic models of the table, in its (the chapters') order: not the networks a model is made of
_NETWORKS = {name for row in zoo.MODELS.values() for name in row.components}
MODELS = tuple(row.name for row in zoo.MODELS.values() if row.size == "tiny" and row.name not in _NETWORKS)
README_SECTION = "model-comparison"
CALIBRATION = "calibration"  # with --budget: the run whose realised step times set every seed's steps


def train_all(work_dir: Path, models: list[str], profile: str, seeds: list[int], budget: float | None,
              resume: bool) -> list[Path]:
    def train(name: str, seed: int, folder: Path, options: list[str]) -> None:
        if resume and (folder / RUN_FILE).exists():
            print(f"{name}, seed {seed}: {folder / RUN_FILE} exists, kept")
            return
        code = panopticlab_main(["train", "--model", name, "--profile", profile, "--seed", str(seed), "--output",
                                 str(folder), "--no-progress"] + options + (["--resume"] if resume and folder.exists()
                                                                             else []))
        if code:
            sys.exit(f"training {name} (seed {seed}) failed (exit {code})")

    if budget is not None:  # a first run of each model measures what its step costs over a whole run
        for name in models:
            train(name, seeds[0], work_dir / name / CALIBRATION, ["--budget", str(budget)])
    folders = []
    for seed in seeds:
        for name in models:
            folder = work_dir / name / f"seed-{seed}"
            train(name, seed, folder, [] if budget is None else
                  ["--budget", str(budget), "--step-times-from", str(work_dir / name / CALIBRATION)])
            folders.append(folder)
    return folders


def by_model(records) -> dict[str, list]:
    """The records by model, in the table's (the chapters') order, each model's by seed."""
    grouped: dict[str, list] = {}
    for run in sorted(records, key=lambda r: (MODELS.index(r.model) if r.model in MODELS else len(MODELS), r.seed)):
        grouped.setdefault(run.model, []).append(run)
    return grouped


def table_note(runs: dict[str, list]) -> str:
    first = next(iter(runs.values()))[0]
    inference, seeds = first.inference, sorted({run.seed for group in runs.values() for run in group})
    budget = (f"each trained for a {first.budget_seconds:g} s budget" if first.budget_seconds
              else "each trained for its recipe's steps")
    spread = f"mean ± sample standard deviation over seeds {', '.join(map(str, seeds))}; " if len(seeds) > 1 else ""
    return (f"Profile `{first.profile}`, {budget}; {spread}{first.results['num_images']} validation images; times on "
            f"{inference.get('threads', '?')} CPU thread(s), per image of {inference.get('image_size', '?')} px. "
            f"Made by `scripts/compare_models.py` from the run records.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run folders or run.json files (default: the shipped records)")
    parser.add_argument("--train", action="store_true", help="train the tiny models first")
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="with --train: the seeds (default 0)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="with --train: every model's wall-clock training time (default: its recipe's steps)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="with --train: the models to train (default: every tiny model of the table)")
    parser.add_argument("--work-dir", default="runs/compare", help="where --train writes the run folders")
    parser.add_argument("--resume", action="store_true", help="with --train: keep finished runs, resume the others")
    parser.add_argument("--ship", action="store_true", help="replace the records in panopticlab/checkpoints/runs/")
    parser.add_argument("--readme", default=None, help="rewrite the comparison section of this README")
    args = parser.parse_args(argv)

    paths = [Path(p) for p in args.runs]
    if args.train:
        paths = train_all(Path(args.work_dir), args.models, args.profile, args.seeds, args.budget, args.resume)
    runs = by_model(map(read_run, paths)) if paths else by_model(r for group in shipped_runs().values() for r in group)
    if not runs:
        sys.exit(f"no run records given and none shipped in {SHIPPED_RUNS}")
    table = comparison_markdown(runs, SUMMARY_COLUMNS)
    print(table)
    if args.ship:
        SHIPPED_RUNS.mkdir(parents=True, exist_ok=True)
        written = {write_json(shipped_run_path(run), run.to_dict(), indent=1) for group in runs.values() for run in group}
        # then the same models' records of seeds not run now: the new ones are all in place first
        for old in SHIPPED_RUNS.glob("*.json"):
            if old not in written and read_run(old).model in runs:
                old.unlink()
        print(f"records written to {SHIPPED_RUNS}")
    if args.readme:
        readme = Path(args.readme)
        readme.write_text(replace_marked_section(readme.read_text(encoding="utf-8"), README_SECTION,
                                                 f"{table}\n\n{table_note(runs)}"), encoding="utf-8")
        print(f"{readme}: comparison section rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
