"""Models side by side, from their run records (:mod:`.runs`): the table of chapter 7.

One row per model: PQ / SQ / RQ overall, things and stuff; PQ of small, medium and large
objects (COCO's area ranges, things and stuff together); PQ-dagger; parameters; training
steps and time; and the network and post-processing times per image. A model may have
several runs (one per seed): its cell is then their mean and sample standard deviation,
``mean ± sd``, so that a difference can be read against how far one seed's run moves.
Everything is read from the records, so the table is rebuilt without training or loading
any weight.
"""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .runs import TrainingRun

__all__ = ["COLUMNS", "SUMMARY_COLUMNS", "Spread", "comparison_markdown", "comparison_rows", "ranking",
           "replace_marked_section", "runs_by_label"]

Runs = Mapping[str, "TrainingRun | Sequence[TrainingRun]"]  # label -> one run, or its runs over seeds

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

# the columns of a summary (the README's table): scores, object sizes, budget and times
SUMMARY_COLUMNS = ("PQ", "SQ", "RQ", "PQ_th", "PQ_st", "PQ_S", "PQ_M", "steps", "train (min)", "net (ms/img)",
                   "post (ms/img)")


def _value(run: TrainingRun, read) -> float | None:
    try:
        value = read(run)
    except (KeyError, TypeError):
        return None  # a record without that measurement (e.g. no inference timing)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@dataclass(frozen=True)
class Spread:
    """One column's values over a model's runs (one per seed)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def sd(self) -> float | None:
        """The sample standard deviation (``None`` for a single run)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def runs_by_label(runs: Runs) -> dict[str, list[TrainingRun]]:
    """``runs`` with every value a list of runs (a single run becomes a list of one).

    Raises:
        ValueError: a label without runs, or one whose runs are of different models.
    """
    grouped = {label: [value] if isinstance(value, TrainingRun) else list(value) for label, value in runs.items()}
    for label, group in grouped.items():
        if not group:
            raise ValueError(f"{label}: no run records")
        if len({run.model for run in group}) > 1:
            raise ValueError(f"{label}: runs of different models {sorted({run.model for run in group})}")
    return grouped


def comparison_rows(runs: Runs) -> list[dict]:
    """``[{"label", "seeds", column: Spread or None, ...}]``, one per label in the given order
    (scores as fractions). A column is ``None`` where any of the label's runs lacks it."""
    rows = []
    for label, group in runs_by_label(runs).items():
        row = {"label": label, "seeds": [run.seed for run in group]}
        for title, read, _ in COLUMNS:
            values = [_value(run, read) for run in group]
            row[title] = None if None in values else Spread(tuple(float(v) for v in values))
        rows.append(row)
    return rows


def _format(value: float, kind: str) -> str:
    if kind == "pct":
        return f"{100 * value:.1f}"
    return f"{value:{kind}}" if kind != "d" else str(round(value))


def _cell(spread: Spread | None, kind: str) -> str:
    if spread is None:
        return "-"
    if spread.sd is None or (spread.sd == 0 and kind != "pct"):  # one run, or a setting alike in all
        return _format(spread.mean, kind)
    return f"{_format(spread.mean, kind)} ± {_format(spread.sd, '.1f' if kind == 'd' else kind)}"


def comparison_markdown(runs: Runs, columns=None) -> str:
    """The table as GitHub Markdown: scores in percent, ``mean ± sd`` over a model's seeds
    where it has several, ``-`` where a record lacks a value."""
    chosen = [c for c in COLUMNS if columns is None or c[0] in columns]
    header = "| model | " + " | ".join(title for title, _, _ in chosen) + " |"
    rule = "|---|" + "|".join("---:" for _ in chosen) + "|"
    lines = [header, rule]
    for row in comparison_rows(runs):
        lines.append(f"| {row['label']} | " + " | ".join(_cell(row[title], kind) for title, _, kind in chosen) + " |")
    return "\n".join(lines)


def ranking(runs: Runs, column: str) -> list[tuple[str, Spread, list[str]]]:
    """The labels by the mean of ``column``, best first: ``(label, spread, behind)``, where
    ``behind`` lists the labels below it that every one of its runs beats (their ranges over
    the seeds do not overlap). With few seeds it is a plain, conservative reading, not a
    significance test: what it does not list may still differ, but not by more than runs
    of one method differ from seed to seed.

    Raises:
        KeyError: no column of that title.
    """
    if column not in {title for title, _, _ in COLUMNS}:
        raise KeyError(f"no column {column!r}; the columns: {[title for title, _, _ in COLUMNS]}")
    spreads = {row["label"]: row[column] for row in comparison_rows(runs) if row[column] is not None}
    ordered = sorted(spreads, key=lambda label: spreads[label].mean, reverse=True)
    return [(label, spreads[label], [other for other in ordered[k + 1:]
                                     if min(spreads[label].values) > max(spreads[other].values)])
            for k, label in enumerate(ordered)]


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
