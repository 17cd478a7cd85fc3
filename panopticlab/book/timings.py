"""Measured run times of the chapters, and the run-time line at the top of each chapter.

A run of the book (``panopticlab book run OUT``) writes ``OUT/timings.json``:
``{"ci": {"01_the_task": 14.2, ...}, "laptop": {...}}``, seconds per chapter and profile.
The book keeps its own record, ``book/timings.json``, and each chapter's header holds one
line generated from it (:func:`runtime_line`)::

    # **Run time** (measured by `panopticlab book run`): `ci` 14 s and `laptop` 3 min 44 s
    # on two CPU cores; `gpu` not yet measured.

``panopticlab book times OUT/timings.json --write`` merges a run's timings into the
record and rewrites those lines, so a chapter never states a time nobody measured.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .chapters import chapter_paths

TIMINGS_FILE = "timings.json"
MAX_SECONDS = 7 * 24 * 3600  # a chapter's run time above a week is a corrupt record, not a measurement
PROFILES = ("ci", "laptop", "gpu")
RUNTIME_PREFIX = "# **Run time** (measured by `panopticlab book run`):"
# the two comment lines runtime_line writes
_RUNTIME_LINES = re.compile("^" + re.escape(RUNTIME_PREFIX) + r".*\n#.*\n", re.MULTILINE)


def record_timing(path: str | os.PathLike, profile: str, chapter: str, seconds: float) -> None:
    """Store ``seconds`` for ``chapter`` in the ``profile`` section of the timings JSON (created if absent)."""
    write_timings(path, merge_timings(read_timings(path), {profile: {chapter: seconds}}))


def read_timings(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """``{profile: {chapter: seconds}}`` from a timings JSON; empty when the file does not exist.

    Raises:
        ValueError: the file is not a timings JSON (the message names it).
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        timings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a timings JSON ({error})") from None
    if not isinstance(timings, dict) or not all(
            isinstance(v, dict) and all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in v.values())
            for v in timings.values()):
        raise ValueError(f"{path}: expected {{profile: {{chapter: seconds}}}}")
    implausible = [f"{profile}/{chapter}: {seconds!r}" for profile, chapters in timings.items()
                   for chapter, seconds in chapters.items() if not 0 <= seconds <= MAX_SECONDS]
    if implausible:  # it would be written into a chapter's header
        raise ValueError(f"{path}: run times must lie between 0 and {MAX_SECONDS} s (a week); got "
                         f"{', '.join(implausible)}")
    unknown = sorted(set(timings) - set(PROFILES))
    if unknown:
        raise ValueError(f"{path}: unknown profile(s) {unknown}; expected some of {list(PROFILES)}")
    return timings


def write_timings(path: str | os.PathLike, timings: dict[str, dict[str, float]]) -> None:
    from .editions import write_text  # atomic: a crash leaves the old record whole

    rounded = {p: {c: round(float(s), 1) for c, s in chapters.items()} for p, chapters in timings.items()}
    write_text(Path(path), json.dumps(rounded, indent=2, sort_keys=True) + "\n")


def merge_timings(old: dict[str, dict[str, float]], new: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``old`` with every chapter measured in ``new`` replaced (per profile)."""
    merged = {profile: dict(chapters) for profile, chapters in old.items()}
    for profile, chapters in new.items():
        merged.setdefault(profile, {}).update(chapters)
    return merged


def format_seconds(seconds: float) -> str:
    """``14`` -> ``"14 s"``, ``224`` -> ``"3 min 44 s"``, ``3900`` -> ``"1 h 5 min"``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s" if seconds % 60 else f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def runtime_lines(timings: dict[str, dict[str, float]], profiles=PROFILES) -> dict[str, str]:
    """Per chapter, a short summary: ``"ci: 14 s, laptop: 3 min 44 s"``
    (profiles in the order given; a profile not measured is left out)."""
    chapters = sorted({c for per_profile in timings.values() for c in per_profile})
    return {chapter: ", ".join(f"{p}: {format_seconds(timings[p][chapter])}" for p in profiles
                               if chapter in timings.get(p, {})) for chapter in chapters}


def runtime_line(chapter: str, timings: dict[str, dict[str, float]]) -> str:
    """The chapter header's run-time line (two comment lines of py:percent markdown)."""
    def measured(profile):
        seconds = timings.get(profile, {}).get(chapter)
        return None if seconds is None else f"`{profile}` {format_seconds(seconds)}"

    cpu = [m for m in (measured("ci"), measured("laptop")) if m]
    cpu_text = f"{' and '.join(cpu)} on two CPU cores" if cpu else "not yet measured on a CPU"
    gpu = measured("gpu")
    gpu_text = f"{gpu} on one GPU" if gpu else "`gpu` not yet measured"
    return f"{RUNTIME_PREFIX} {cpu_text};\n# {gpu_text}.\n"


def chapter_runtime_text(source: str) -> str | None:
    """The run-time line(s) of a chapter's source, or None when it has none."""
    found = _RUNTIME_LINES.search(source)
    return found.group(0) if found else None


def update_runtime_lines(book_dir: str | os.PathLike, timings: dict[str, dict[str, float]]) -> list[Path]:
    """Rewrite the run-time line of every chapter from ``timings``; returns the files changed.

    Raises:
        ValueError: a chapter has no run-time line (its path is named); nothing is written.
    """
    from .editions import write_text

    updates = []
    for path in chapter_paths(book_dir):
        source = path.read_text(encoding="utf-8")
        found = _RUNTIME_LINES.search(source)
        if found is None:
            raise ValueError(f"{path}: no run-time line to update (a line starting with {RUNTIME_PREFIX!r})")
        new = source[:found.start()] + runtime_line(path.stem, timings) + source[found.end():]
        if new != source:
            updates.append((path, new))
    for path, new in updates:
        write_text(path, new)
    return [path for path, _ in updates]
