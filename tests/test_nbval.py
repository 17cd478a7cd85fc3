"""nbval runs a paired chapter notebook in the ci profile, as an instructor's CI would
(`panopticlab book sync`, then `pytest --nbval-lax book/*.ipynb`)."""
import os
import subprocess
import sys

from panopticlab.book.chapters import BOOK_DIR, chapter_paths
from panopticlab.book.editions import sync_notebook


def test_nbval_runs_chapter_1(tmp_path):
    chapter = chapter_paths(BOOK_DIR, ["01"])[0]
    source = tmp_path / chapter.name
    source.write_text(chapter.read_text(encoding="utf-8"), encoding="utf-8")
    sync_notebook(source)  # the chapter's data is written beside the copy, in tmp_path
    environment = {**os.environ, "PANOPTICLAB_PROFILE": "ci", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                             "--nbval-cell-timeout", "240", "--rootdir", str(tmp_path),
                             str(source.with_suffix(".ipynb"))],
                            check=False, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    code_cells = sum(1 for line in source.read_text(encoding="utf-8").splitlines() if line.startswith("# %%")
                     and "[markdown]" not in line)
    assert f"{code_cells} passed" in result.stdout
