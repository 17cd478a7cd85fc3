"""nbval runs a paired chapter notebook in the ci profile, as an instructor's CI would
(`panopticlab book sync`, then `pytest --nbval-lax book/*.ipynb`). The chapter is the grader
tests' tiny one (tests/data/01_tiny_chapter.py, with chapter 1's real checkers): the book's
own chapters are each executed by tests/test_notebooks.py."""
import os
import subprocess
import sys
from pathlib import Path

from panopticlab.book.editions import sync_notebook

TINY = Path(__file__).parent / "data" / "01_tiny_chapter.py"


def run_nbval(text: str, folder: Path) -> subprocess.CompletedProcess:
    """Write the chapter ``text`` into ``folder``, pair it with its notebook and run nbval on that."""
    source = folder / "01_tiny.py"
    source.write_text(text, encoding="utf-8")
    sync_notebook(source)
    environment = {**os.environ, "PANOPTICLAB_PROFILE": "ci", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           "--nbval-cell-timeout", "240", "--rootdir", str(folder), str(source.with_suffix(".ipynb"))],
                          check=False, cwd=folder, env=environment, capture_output=True, text=True, timeout=600)


def test_nbval_runs_a_synced_chapter(tmp_path):
    text = TINY.read_text(encoding="utf-8")
    result = run_nbval(text, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    code_cells = sum(1 for line in text.splitlines() if line.startswith("# %%") and "[markdown]" not in line)
    assert code_cells >= 4 and f"{code_cells} passed" in result.stdout


def test_nbval_fails_a_chapter_whose_checker_fails(tmp_path):
    """The run can fail: a wrong answer makes its cell, and so nbval, fail."""
    text = TINY.read_text(encoding="utf-8")
    wrong = text.replace("rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]",
                         "rgb[..., 2] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 0]")
    assert wrong != text
    result = run_nbval(wrong, tmp_path)
    assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout[-3000:]
