"""How long each ``panopticlab`` sub-command takes to start, against starting Python itself.

    python benchmarks/cli_start.py [--repeat 7]

Each command runs as a fresh process (what a user types), the fastest of ``--repeat``
runs counted, next to ``python -c pass``: the difference is what the package's imports
cost. The commands that work on files run on a one-image set in COCO panoptic format
written to a temporary folder first, so their time is almost all start-up. ``models``
imports torch and is listed as the contrast.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def best_run(command: list[str], repeat: int) -> float:
    """Fastest wall time of ``repeat`` runs of ``command`` (seconds); it must succeed."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per command; the fastest counts (default 7)")
    args = parser.parse_args()
    script = shutil.which("panopticlab", path=str(Path(sys.executable).parent)) or shutil.which("panopticlab")
    if script is None:
        raise SystemExit("the panopticlab console script is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([script, "data", "synth", folder, "--num", "1", "--size", "64", "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        gt = str(Path(folder) / "annotations" / "panoptic_val.json")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "panopticlab --help": [script, "--help"],
            "panopticlab data synth (1 image, 32 px)": [script, "data", "synth", str(Path(folder) / "more"), "--num",
                                                        "1", "--size", "32", "--quiet"],
            "panopticlab data check (1 image)": [script, "data", "check", gt, "--quiet"],
            "panopticlab evaluate --gt-json ... (1 image)": [script, "evaluate", "--gt-json", gt, "--pred-json", gt,
                                                             "--workers", "1", "--no-progress"],
            "panopticlab evaluate --help": [script, "evaluate", "--help"],
            "panopticlab models (imports torch)": [script, "models"],
        }
        timings = {name: best_run(command, args.repeat) for name, command in commands.items()}
    python = timings["python -c pass"]
    print(f"{'command':<46} {'seconds':>8} {'minus python':>13}")
    for name, seconds in timings.items():
        print(f"{name:<46} {seconds:8.3f} {seconds - python:13.3f}")


if __name__ == "__main__":
    main()
