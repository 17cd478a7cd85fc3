"""Models side by side, from their run records (:mod:`.runs`): the table of chapter 7.

One row per run: PQ / SQ / RQ overall, things and stuff; PQ of small, medium and large
objects (COCO's area ranges, things and stuff together); PQ-dagger; parameters; training
time; and the network and post-processing times per image. Everything is read from the
records, so the table is rebuilt without training or loading any weight.
"""
from __future__ import annotations

import math
import re

from .runs import TrainingRun

__all__ = ["COLUMNS", "comparison_markdown", "comparison_rows", "replace_marked_section"]

# (column title, how to read it from a run, format)
COLUMNS = (
    ("PQ", lambda r: r.results["All"]["pq"], "pct"),
    ("SQ", lambda r: r.results["All"]["sq"], "pct"),
    ("RQ", lambda r: r.results["All"]["rq"], "pct"),
    ("PQ_th", lambda r: r.results["Things"]["pq"], "pct"),
    ("SQ_th", lambda r: r.results["Things"]["sq"], "pct"),
    ("RQ_th", lambda r: r.results["Things"]["rq"], "pct"),
    ("PQ_st", lambda r: r.results["Stuff"]["pq"], "pct"),
    ("SQ_st", lambda r: r.results["Stuff"]["sq"], "pct"),
    ("RQ_st", lambda r: r.results["Stuff"]["rq"], "pct"),
    ("PQ_S", lambda r: r.results["by_size"]["small"]["All"]["pq"], "pct"),
    ("PQ_M", lambda r: r.results["by_size"]["medium"]["All"]["pq"], "pct"),
    ("PQ_L", lambda r: r.results["by_size"]["large"]["All"]["pq"], "pct"),
    ("PQ†", lambda r: r.results["pq_dagger"]["All"]["pq"], "pct"),
    ("params (M)", lambda r: r.parameters / 1e6, ".2f"),
    ("steps", lambda r: r.steps, "d"),
    ("train (min)", lambda r: r.total_training_seconds / 60, ".1f"),
    ("net (ms/img)", lambda r: 1000 * r.inference["network"], ".1f"),
    ("post (ms/img)", lambda r: 1000 * r.inference["postprocess"], ".1f"),
)


def _value(run: TrainingRun, read) -> float | None:
    try:
        value = read(run)
    except (KeyError, TypeError):
        return None  # a record without that measurement (e.g. no inference timing)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def comparison_rows(runs: dict[str, TrainingRun]) -> list[dict]:
    """``[{"label", column: value or None, ...}]``, one per run in the given order (fractions for scores)."""
    return [{"label": label, **{title: _value(run, read) for title, read, _ in COLUMNS}} for label, run in runs.items()]


def _format(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}"
    return f"{value:{kind}}" if kind != "d" else str(int(value))


def comparison_markdown(runs: dict[str, TrainingRun], columns=None) -> str:
    """The table as GitHub Markdown (scores in percent; ``-`` where a record lacks a value)."""
    chosen = [c for c in COLUMNS if columns is None or c[0] in columns]
    header = "| model | " + " | ".join(title for title, _, _ in chosen) + " |"
    rule = "|---|" + "|".join("---:" for _ in chosen) + "|"
    lines = [header, rule]
    for label, run in runs.items():
        lines.append(f"| {label} | " + " | ".join(_format(_value(run, read), kind) for _, read, kind in chosen) + " |")
    return "\n".join(lines)


def replace_marked_section(text: str, name: str, body: str) -> str:
    """``text`` with what lies between ``<!-- name:start -->`` and ``<!-- name:end -->`` replaced by ``body``.

    Raises:
        ValueError: the markers are missing, or appear more than once.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    found = pattern.findall(text)
    if len(found) != 1:
        raise ValueError(f"expected one {start} ... {end} section, found {len(found)}")
    return pattern.sub(lambda _: f"{start}\n{body.strip()}\n{end}", text)
