"""The chapter sources: where they are, which ones, and how one becomes a notebook.

Chapters are stored in ``book/`` as jupytext ``py:percent`` files, the one source of
truth (readable diffs, no stored outputs).
"""
from __future__ import annotations

import os
from pathlib import Path

#: The chapters of a source checkout: ``book/`` beside the package. An installed package
#: has no chapters; :func:`find_book_dir` says so and how to point at them.
BOOK_DIR = Path(__file__).resolve().parent.parent.parent / "book"
BOOK_ENV_VAR = "PANOPTICLAB_BOOK"
#: Where a notebook written by this package records what it is (chapter, edition).
METADATA_KEY = "panopticlab"
#: The kernel as JupyterLab records it when it saves a notebook (ipykernel's own spec), so
#: that saving an unedited chapter leaves its paired ``.py`` header as it was.
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def find_book_dir(book_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the chapter sources: ``book_dir``, else ``$PANOPTICLAB_BOOK``, else the checkout's ``book/``.

    Raises:
        FileNotFoundError: the folder does not exist (the message says how to name it).
    """
    chosen = book_dir or os.environ.get(BOOK_ENV_VAR) or BOOK_DIR
    path = Path(chosen)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder of chapters; the chapters are the book/ folder of the "
                                f"panopticlab repository: pass --book PATH or set {BOOK_ENV_VAR}")
    return path


def chapter_paths(book_dir: str | os.PathLike = BOOK_DIR, chapters: list[str] | None = None) -> list[Path]:
    """The chapter sources ``book/NN_*.py`` in chapter order; ``chapters`` keeps those named (``"01"`` or a stem).

    Raises:
        FileNotFoundError: no chapter in the folder, or a name in ``chapters`` matches none.
    """
    paths = sorted(Path(book_dir).glob("[0-9][0-9]_*.py"))
    if not paths:
        raise FileNotFoundError(f"no chapters (NN_*.py) in {book_dir}")
    if chapters:
        unknown = [c for c in chapters if not any(_names(p, c) for p in paths)]
        if unknown:
            raise FileNotFoundError(f"no chapter {', '.join(unknown)} in {book_dir}; the chapters are "
                                    f"{', '.join(p.stem for p in paths)}")
        paths = [p for p in paths if any(_names(p, c) for c in chapters)]
    return paths


def _names(path: Path, name: str) -> bool:
    return path.stem == name or path.name == name or path.stem.split("_")[0] == name.zfill(2)


def chapter_number(stem: str) -> int | None:
    """``"01_the_task"`` -> 1; None for a name without the ``NN_`` prefix."""
    head = Path(stem).stem.split("_")[0]
    return int(head) if head.isdigit() else None


def load_chapter(path: str | os.PathLike):
    """Read a ``py:percent`` chapter into an ``nbformat`` notebook (no outputs).

    The notebook's metadata records the chapter (``metadata.panopticlab.chapter``), so that
    a notebook handed in later can be matched with its chapter.
    """
    import jupytext

    path = Path(path)
    notebook = jupytext.read(path, fmt="py:percent")
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata[METADATA_KEY] = {"chapter": path.stem}
    return notebook


def chapter_title(notebook) -> str:
    """The first ``# `` heading of the notebook's markdown, without the ``#``; '' if none."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""
