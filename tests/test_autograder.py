"""The autograder's verdicts on a tiny chapter that uses the real chapter-1 checkers: the
reference solutions pass, the student edition is not attempted, and a doctored notebook
(one wrong answer, one infinite loop, one deleted exercise cell) gets one verdict each."""
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from panopticlab.book.chapters import load_chapter
from panopticlab.book.editions import student_edition
from panopticlab.book.grading import check_submission, read_submission, submission_files
from panopticlab.commands import main

TINY = Path(__file__).parent / "data" / "01_tiny_chapter.py"


@pytest.fixture
def book(tmp_path):
    folder = tmp_path / "book"
    folder.mkdir()
    shutil.copy(TINY, folder / "01_tiny.py")
    return folder


def verdicts(report):
    return {e.number: e.verdict for e in report.exercises}


def test_reference_solutions_pass_and_student_edition_is_not_attempted(book, tmp_path):
    reference = load_chapter(book / "01_tiny.py")
    nbformat.write(reference, tmp_path / "01_reference.ipynb")
    nbformat.write(student_edition(reference), tmp_path / "01_student.ipynb")
    report = check_submission(tmp_path / "01_reference.ipynb", book_dir=book, timeout_per_cell=60)
    assert verdicts(report) == {"1.1": "passed", "1.2": "passed", "1.3": "passed"}
    assert not report.cells and not report.problems
    report = check_submission(tmp_path / "01_student.ipynb", book_dir=book, timeout_per_cell=60)
    assert set(verdicts(report).values()) == {"not attempted"}
    assert not report.cells  # the exercises' own failures are verdicts, not crashed cells


def test_doctored_notebook_gets_one_verdict_per_fault(book, tmp_path, capsys):
    notebook = load_chapter(book / "01_tiny.py")
    cells = notebook.cells
    rgb = next(c for c in cells if "def rgb_to_id" in c.source)  # channels reversed: a wrong answer
    rgb.source = rgb.source.replace("rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]",
                                    "rgb[..., 2] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 0]")
    loop = next(c for c in cells if "def semantic_from_panoptic" in c.source)
    loop.source = loop.source.replace("semantic = np.full(", "while True:\n        pass\n    semantic = np.full(")
    assert "while True" in loop.source and "rgb[..., 2] +" in rgb.source, "the doctoring must change the answers"
    notebook.cells = [c for c in cells if "count_instances" not in c.source]  # exercise 1.3 deleted
    nbformat.write(notebook, tmp_path / "01_doctored.ipynb")
    out = tmp_path / "grades.json"
    assert main(["book", "check", str(tmp_path / "01_doctored.ipynb"), "--book", str(book),
                 "--timeout-per-cell", "4", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    [report] = json.loads(out.read_text())
    by_number = {e["number"]: e for e in report["exercises"]}
    assert by_number["1.1"]["verdict"] == "failed" and "reversed" in by_number["1.1"]["message"]
    assert by_number["1.2"]["verdict"] == "timed out"
    assert by_number["1.3"]["verdict"] == "missing"
    assert any("1.3" in p and "missing" in p for p in report["problems"])
    assert [c["status"] for c in report["cells"]] == ["timed out"]  # and the notebook ran on after it
    assert report["counts"]["passed"] == 0 and report["total"] == 3
    assert "timed out" in table and "reversed" in table


def test_another_chapter_and_broken_files_are_named(book, tmp_path):
    notebook = load_chapter(book / "01_tiny.py")
    nbformat.write(notebook, tmp_path / "02_renamed.ipynb")
    (book / "02_other.py").write_text("# %% [markdown]\n# # Chapter 2\n\n# %%\nfrom panopticlab.exercises import ch02\n"
                                      "ch02.check_pq_from_counts(print)\n")
    report = check_submission(tmp_path / "02_renamed.ipynb", book_dir=book)
    assert any("chapter 01_tiny, not of 02_other" in p for p in report.problems)
    assert verdicts(report) == {"2.3": "missing"}  # graded against chapter 2: nothing of it is there
    broken = tmp_path / "01_broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="01_broken.ipynb: not a readable Jupyter notebook"):
        read_submission(broken)
    assert main(["book", "check", str(broken), "--book", str(book)]) == 1


def test_check_grades_only_the_notebooks_of_a_folder_or_pattern(book, tmp_path, capsys):
    """A JupyterLab save can leave a paired .py beside a notebook: `book check` names it and
    grades the notebook alone."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(student_edition(load_chapter(book / "01_tiny.py")), folder / "01_student.ipynb")
    (folder / "01_student.py").write_text("# %%\nprint('paired')\n")
    (folder / ".ipynb_checkpoints").mkdir()
    assert submission_files([str(folder)]) == ([folder / "01_student.ipynb"], [folder / "01_student.py"])
    assert submission_files([str(folder / "01_*"), str(folder / "01_student.ipynb")]) == \
        ([folder / "01_student.ipynb"], [folder / "01_student.py"])
    assert submission_files([str(folder / "02_*")]) == ([folder / "02_*"], [])  # named as missing when graded
    out = tmp_path / "grades.json"
    assert main(["book", "check", str(folder), "--book", str(book), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"skipped, not a .ipynb notebook: {folder / '01_student.py'}" in captured.err
    [report] = json.loads(out.read_text())
    assert report["path"] == str(folder / "01_student.ipynb") and report["counts"]["not attempted"] == 3
    assert main(["book", "check", str(folder / "01_student.py"), "--book", str(book)]) == 1
    assert "no .ipynb notebook to grade" in capsys.readouterr().err
