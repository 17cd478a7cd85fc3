"""Showing and saving Panoptic Quality results.

:func:`format_table` prints the table panopticapi prints; the other tables show the
per-class scores, the size breakdown and PQ-dagger. :func:`save_results` writes the
results as JSON atomically (an interrupted write leaves any previous file intact).
"""
from __future__ import annotations

import math
import os

from ..data.atomic import write_json
from .pq import GROUPS


def _pct(value: float) -> str:
    return "  n/a" if value is None or math.isnan(value) else f"{100 * value:5.1f}"


def format_table(results: dict) -> str:
    """The PQ / SQ / RQ / N table over All, Things and Stuff, in percent, as panopticapi prints it."""
    lines = ["{:10s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"), "-" * (10 + 7 * 4)]
    for name, _ in GROUPS:
        group = results[name]
        lines.append(f"{name:10s}| {_pct(group['pq'])}  {_pct(group['sq'])}  {_pct(group['rq'])} {group['n']:5d}")
    return "\n".join(lines)


def format_comparison(rows: dict[str, dict]) -> str:
    """One line per result: PQ, SQ, RQ of All and PQ of Things and Stuff, in percent.

    Args:
        rows: label -> PQ results (``results["All"]["pq"]``, ...), e.g. a model and its ablations.
    """
    width = max([14, *(len(label) + 1 for label in rows)])
    lines = [f"{'':<{width}} {'PQ':>6} {'SQ':>6} {'RQ':>6} {'PQ_th':>6} {'PQ_st':>6}"]
    for label, r in rows.items():
        lines.append(f"{label:<{width}} {_pct(r['All']['pq']):>6} {_pct(r['All']['sq']):>6} {_pct(r['All']['rq']):>6} "
                     f"{_pct(r['Things']['pq']):>6} {_pct(r['Stuff']['pq']):>6}")
    return "\n".join(lines)


def format_per_class(results: dict) -> str:
    """One row per category: name, PQ, SQ, RQ in percent and the TP / FP / FN counts."""
    lines = [f"{'category':24s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'TP':>6s} {'FP':>6s} {'FN':>6s}",
             "-" * 60]
    for category_id, row in results["per_class"].items():
        kind = "thing" if row.get("isthing") else "stuff"
        name = f"{row.get('name', '')} ({category_id}, {kind})"
        lines.append(f"{name[:24]:24s}| {_pct(row['pq'])}  {_pct(row['sq'])}  {_pct(row['rq'])} "
                     f"{row['tp']:6d} {row['fp']:6d} {row['fn']:6d}")
    return "\n".join(lines)


def format_by_size(results: dict) -> str:
    """PQ / SQ / RQ / N of each object size (by ground-truth area) and group."""
    lines = [f"{'size':8s}{'group':8s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>5s}", "-" * 44]
    for size, groups in results["by_size"].items():
        for name, _ in GROUPS:
            group = groups[name]
            lines.append(f"{size:8s}{name:8s}| {_pct(group['pq'])}  {_pct(group['sq'])}  {_pct(group['rq'])} "
                         f"{group['n']:5d}")
    return "\n".join(lines)


def format_pq_dagger(results: dict) -> str:
    """PQ-dagger of All, Things and Stuff, in percent."""
    lines = [f"{'PQ-dagger':10s}| {'PQ':>5s} {'N':>5s}", "-" * 24]
    for name, _ in GROUPS:
        group = results["pq_dagger"][name]
        lines.append(f"{name:10s}| {_pct(group['pq'])} {group['n']:5d}")
    return "\n".join(lines)


def to_json_compatible(value):
    """The results with NaN as ``None`` (strict JSON has no NaN) and dict keys as strings."""
    if isinstance(value, dict):
        return {str(key): to_json_compatible(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_compatible(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def save_results(results: dict, path: str | os.PathLike) -> None:
    """Write the results as JSON (category ids become string keys, NaN becomes null), atomically."""
    write_json(path, to_json_compatible(results), indent=1)
