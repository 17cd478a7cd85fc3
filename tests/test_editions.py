"""The two editions: the student's holds no solution and every exercise in it fails its
checker; the instructor's executes, with an answer key, the site and the timings."""
import ast
import importlib
import json
import re

import nbformat
import pytest

from panopticlab.book.chapters import BOOK_DIR, chapter_paths, load_chapter
from panopticlab.book.editions import (
    answer_key,
    solution_lines,
    student_edition,
    sync_notebook,
    write_student_edition,
)
from panopticlab.book.exercises import find_exercises, is_stub, rejections, solution_blocks, strip_solutions
from panopticlab.book.timings import (TIMINGS_FILE, chapter_runtime_text, format_seconds, read_timings,
                                      runtime_line, runtime_lines)
from panopticlab.commands import main
from panopticlab.exercises.checking import ExerciseError

CHAPTERS = chapter_paths(BOOK_DIR)
EXERCISES = [(path, exercise) for path in CHAPTERS for exercise in find_exercises(load_chapter(path))]


def test_student_edition_holds_no_solution(tmp_path):
    assert main(["book", "student", str(tmp_path)]) == 0
    written = sorted(p for p in tmp_path.rglob("*.ipynb"))
    assert [p.name for p in written] == [f"{p.stem}.ipynb" for p in CHAPTERS]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.suffix != ".ipynb") == ["jupytext.toml"]
    assert len(solution_lines(BOOK_DIR)) > 10
    for path in written:
        secrets = solution_lines(BOOK_DIR, [path.stem])
        text = path.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        sources = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
        leaked = [line for line in secrets if line in {s.strip() for s in sources.splitlines()}]
        assert not leaked, f"{path.name} leaks solution lines: {leaked[:3]}"


def test_student_edition_pairs_with_no_text_file(tmp_path):
    """Saving a student notebook in JupyterLab writes the .ipynb alone: no jupytext pairing in its
    metadata, and none from a configuration above it (the repository's pyproject.toml pairs
    every notebook under it)."""
    from jupytext import TextFileContentsManager

    student = student_edition(load_chapter(CHAPTERS[0]))
    assert "jupytext" not in student.metadata and "formats" not in json.dumps(dict(student.metadata))
    assert student.metadata["kernelspec"] == load_chapter(CHAPTERS[0]).metadata["kernelspec"]
    (tmp_path / "pyproject.toml").write_text('[tool.jupytext]\nformats = "ipynb,py:percent"\n', encoding="utf-8")
    out = tmp_path / "student"
    [notebook] = write_student_edition(out, BOOK_DIR, ["01"])
    for root in (tmp_path, out):  # JupyterLab started in the repository, or in the student folder
        manager = TextFileContentsManager(root_dir=str(root))
        name = notebook.relative_to(root).as_posix()
        manager.save(manager.get(name), name)
        assert not list(out.glob("*.py")), f"saving from {root} paired a .py"


def test_solution_lines_catch_a_leak():
    assert "rgb = rgb.astype(np.int64)" in solution_lines(BOOK_DIR, ["01"])


def test_an_edition_that_would_show_a_solution_is_not_written(tmp_path, monkeypatch, capsys):
    from panopticlab.book import editions

    monkeypatch.setattr(editions, "strip_solutions", lambda source: source)  # markers the stripping missed
    assert main(["book", "student", str(tmp_path / "out"), "--chapter", "01"]) == 1
    error = capsys.readouterr().err
    assert "01_" in error and "line(s) of a solution" in error and "Nothing was written" in error
    assert not (tmp_path / "out").exists()


def _student_exercise(path, exercise):
    """The student edition of ``path`` and ``exercise`` found in it (the edition leaves the
    answers cells out, so an exercise after one sits at another index there)."""
    student = student_edition(load_chapter(path))
    found = [e for e in find_exercises(student) if e.checker == exercise.checker and e.call == exercise.call]
    assert len(found) == 1, exercise.checker
    return student, found[0]


@pytest.mark.parametrize("path,exercise", EXERCISES, ids=[e.checker for _, e in EXERCISES])
def test_every_student_exercise_fails_its_checker(path, exercise):
    """Run the stubbed exercise cell (and its checker call) alone: the stub raises, or the
    checker says "not implemented yet"; nothing else (no NameError, no pass)."""
    student, exercise = _student_exercise(path, exercise)
    cells = sorted({exercise.solution_cell, exercise.check_cell})
    module = exercise.checker.split(".")[0]
    namespace = {module: importlib.import_module(f"panopticlab.exercises.{module}"),
                 "np": importlib.import_module("numpy"), "score": _not_to_be_called}
    with pytest.raises((NotImplementedError, ExerciseError)) as failure:
        for index in cells:
            exec(compile(student.cells[index].source, f"{path.stem}[{index}]", "exec"), namespace)  # noqa: S102
    if failure.type is ExerciseError:
        assert re.match(rf"Exercise {re.escape(exercise.number)}: not implemented yet", str(failure.value))
    else:
        assert "write your solution here" in str(failure.value)


def _not_to_be_called(**options):
    """Chapter 3's ``score``, which exercise 3.3's checker must not call for an unanswered exercise."""
    raise AssertionError("the checker scored an unanswered exercise")


@pytest.mark.parametrize("path,exercise", EXERCISES, ids=[e.checker for _, e in EXERCISES])
def test_no_student_exercise_cell_raises_by_itself(path, exercise):
    """"Run All" must get past every exercise: its cell may only define the stubbed function or
    assign ``...``; the error, if any, comes from the checker call (which a kernel shows as a verdict)."""
    student, exercise = _student_exercise(path, exercise)
    cell = student.cells[exercise.solution_cell]
    tree = ast.parse(cell.source)
    checks = [node for node in tree.body if "check_" in ast.unparse(node)]
    rest = ast.Module(body=[node for node in tree.body if node not in checks], type_ignores=[])
    namespace = {"np": importlib.import_module("numpy"), "score": _not_to_be_called,
                 "print": lambda *args: None}
    preceding = [c.source for c in student.cells[:exercise.solution_cell] if c.cell_type == "code"]
    for source in preceding:  # the imports the exercise cell relies on (ndimage, F, ...)
        for node in ast.parse(source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                exec(compile(ast.Module(body=[node], type_ignores=[]), "imports", "exec"), namespace)  # noqa: S102
    exec(compile(rest, f"{path.stem}[{exercise.solution_cell}]", "exec"), namespace)  # noqa: S102


def test_top_level_solutions_become_values_to_fill_in():
    source = ("# count them\n# BEGIN SOLUTION\ntp, fp = 3, 2\nhelper = [1]\nrq = tp / (tp + fp / 2)\n"
              "# END SOLUTION\nprint(rq)\ncheck(tp, fp, rq)\n")
    stripped = strip_solutions(source)
    assert stripped == ("# count them\n# YOUR CODE HERE: replace each ... with your answer\n"
                        "tp, fp = ..., ...\nrq = ...\nprint(rq)\ncheck(tp, fp, rq)\n")
    assert is_stub(stripped) and not is_stub(stripped.replace("tp, fp = ..., ...", "tp, fp = 3, 2"))
    loop = "# BEGIN SOLUTION\nfor x in range(3):\n    print(x)\n# END SOLUTION\n"
    assert "raise NotImplementedError" in strip_solutions(loop)  # nothing to assign: the raising stub


def test_answer_key_lists_every_exercise():
    entries = answer_key(BOOK_DIR)
    for path in CHAPTERS:
        # one exercise per code cell holding solution blocks (a "predict, then measure" cell holds two:
        # the prediction and the function)
        cells = [c for c in load_chapter(path).cells if c.cell_type == "code" and solution_blocks(c.source)]
        assert sum(e["chapter"] == path.stem for e in entries) == len(cells), path.name
    numbers = [e["number"] for e in entries]
    assert "?" not in numbers and len(set(numbers)) == len(numbers)
    assert all(e["rejects"] and e["solution"].startswith("# BEGIN SOLUTION") for e in entries)
    rgb = next(e for e in entries if e["checker"] == "ch01.check_rgb_to_id")
    assert any("channels are reversed" in item for item in rgb["rejects"])


def test_rejections_prefer_the_docstring_section():
    def check_thing(fn):
        """Exercise 9.9: ``fn(x)`` -> x + 1.

        Rejects:
            - an answer off by one
            - a float where an int is due,
              even when equal
        """
    assert rejections(check_thing) == ["an answer off by one", "a float where an int is due, even when equal"]


def test_rejections_list_every_mistake_table():
    """Checkers that compare a wrong answer with a table of named mistakes list each of them."""
    from panopticlab.exercises import ch04, ch05
    for checker, table in ((ch04.check_semantic_level, ch04.MISTAKES), (ch05.check_unknown_channel, ch05.UNKNOWN_MISTAKES),
                           (ch05.check_paste_mask, ch05.PASTE_MISTAKES)):
        listed = rejections(checker)
        for mistake in table:
            assert sum(item.endswith(": " + mistake) for item in listed) == 1, (checker.__name__, mistake)
        assert any("differs from the package's" in item for item in listed)


def test_rejections_list_the_functions_an_answer_may_not_call():
    from panopticlab.exercises import ch01, ch04

    assert "an answer that calls data.rgb_to_id (made unavailable while it runs)" in rejections(ch01.check_rgb_to_id)
    listed = rejections(ch04.check_branch_layout)
    assert any("models.semantic_fpn.upsampling_stages" in item for item in listed)


@pytest.mark.parametrize("path,exercise", [(p, e) for p, e in EXERCISES if e.checker[2:4] in ("04", "05", "06", "07")],
                         ids=[e.checker for p, e in EXERCISES if e.checker[2:4] in ("04", "05", "06", "07")])
def test_every_later_exercise_names_what_it_refuses(path, exercise):
    """Chapters 4-7 ask for what the package implements: the answer key says which function is refused."""
    assert any("calls" in item for item in rejections(exercise.function())), exercise.checker


def test_sync_keeps_outputs_unless_fresh(tmp_path):
    source = tmp_path / "01_the_task.py"
    source.write_text(CHAPTERS[0].read_text(encoding="utf-8"), encoding="utf-8")
    assert sync_notebook(source) == 0
    target = source.with_suffix(".ipynb")
    notebook = nbformat.read(target, as_version=4)
    code = next(c for c in notebook.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a student's output\n")]
    nbformat.write(notebook, target)
    assert sync_notebook(source) == 1
    assert "a student's output" in target.read_text(encoding="utf-8")
    assert sync_notebook(source, fresh=True) == 0
    assert "a student's output" not in target.read_text(encoding="utf-8")


def test_runtime_lines():
    timings = {"ci": {"01_the_task": 14.2}, "laptop": {"01_the_task": 224.0, "02_pq": 59.6}}
    assert runtime_lines(timings) == {"01_the_task": "ci: 14 s, laptop: 3 min 44 s", "02_pq": "laptop: 1 min"}
    assert format_seconds(3900) == "1 h 5 min"


def test_every_chapter_states_the_measured_run_time():
    """Each chapter's run-time line is the one generated from book/timings.json (so it cannot drift)."""
    timings = read_timings(BOOK_DIR / TIMINGS_FILE)
    for path in CHAPTERS:
        assert chapter_runtime_text(path.read_text(encoding="utf-8")) == runtime_line(path.stem, timings), \
            f"{path.name}: run `panopticlab book times OUT/timings.json --write` after measuring"
        assert path.stem in timings["ci"] and path.stem in timings["laptop"], f"{path.name}: not measured"


def test_times_write_rewrites_the_lines(tmp_path, capsys):
    book = tmp_path / "book"
    book.mkdir()
    for path in CHAPTERS[:2]:
        (book / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (book / TIMINGS_FILE).write_text((BOOK_DIR / TIMINGS_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    run = tmp_path / "timings.json"
    run.write_text(json.dumps({"gpu": {CHAPTERS[0].stem: 75.0}}), encoding="utf-8")
    assert main(["book", "times", str(run), "--write", "--book", str(book)]) == 0
    first = (book / CHAPTERS[0].name).read_text(encoding="utf-8")
    assert "`gpu` 1 min 15 s on one GPU." in chapter_runtime_text(first)
    unchanged = CHAPTERS[1].read_text(encoding="utf-8")
    assert (book / CHAPTERS[1].name).read_text(encoding="utf-8") == unchanged
    before = CHAPTERS[0].read_text(encoding="utf-8")
    assert first.replace(chapter_runtime_text(first), "") == before.replace(chapter_runtime_text(before), "")
    record = read_timings(book / TIMINGS_FILE)
    assert record["gpu"] == {CHAPTERS[0].stem: 75.0} and record["ci"] == read_timings(BOOK_DIR / TIMINGS_FILE)["ci"]
    (book / CHAPTERS[1].name).write_text(unchanged.replace("**Run time**", "Run time"), encoding="utf-8")
    run.write_text(json.dumps({"gpu": {CHAPTERS[0].stem: 90.0}}), encoding="utf-8")
    assert main(["book", "times", str(run), "--write", "--book", str(book)]) == 1
    assert f"{CHAPTERS[1].name}: no run-time line" in capsys.readouterr().err
    assert (book / CHAPTERS[0].name).read_text(encoding="utf-8") == first, "nothing is written when a chapter fails"
    assert read_timings(book / TIMINGS_FILE)["gpu"] == {CHAPTERS[0].stem: 75.0}


def test_instructor_edition_executes(tmp_path, capsys):
    """Chapter 1 in ci: executed with solutions, progress per cell, timings, the answer key, the site."""
    out = tmp_path / "instructor"
    assert main(["book", "instructor", str(out), "--chapter", "01", "--profile", "ci"]) == 0
    captured = capsys.readouterr()
    stem = CHAPTERS[0].stem
    code_cells = sum(c.cell_type == "code" for c in load_chapter(CHAPTERS[0]).cells)
    assert f"[{stem}] cell {code_cells}/{code_cells} ok" in captured.err
    assert re.search(rf"^{stem}: \d+ s$", captured.err, re.MULTILINE)
    notebook = nbformat.read(out / f"{stem}.ipynb", as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert all(f"Exercise 1.{n}: correct." in text for n in range(1, 5))
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert re.search(r"writing val: 100%\|", text), "the chapter's progress bar is kept as text"
    assert read_timings(out / "timings.json")["ci"][stem] > 0
    key = (out / "answer_key.md").read_text(encoding="utf-8")
    assert all(f"### Exercise {e.number}" in key for p, e in EXERCISES if p == CHAPTERS[0])
    assert "### Exercise 2.1" not in key  # the key covers the chapters built
    index = (out / "html" / "index.html").read_text(encoding="utf-8")
    assert f'href="{stem}.html"' in index and 'href="answer_key.html"' in index
    page = (out / "html" / f"{stem}.html").read_text(encoding="utf-8")
    assert page.count('<nav class="book">') == 2 and "data:image/png;base64" in page
    assert "widget" not in re.sub(r"<script.*?</script>|<style.*?</style>", "", page, flags=re.DOTALL).lower()
    json.loads((out / f"{stem}.ipynb").read_text())
    ast.parse("\n".join(c.source for c in notebook.cells if c.cell_type == "code" and not c.source.startswith("%")))


def test_written_answers_go_to_the_answer_key_not_to_the_student():
    """Each "check your understanding" list and each thinking exercise has a cell of answers
    (tagged "answers"), one numbered answer per question: in the instructor's key, absent
    from the student edition."""
    from panopticlab.book.editions import answer_key_markdown, is_answers_cell, written_answers

    answers = written_answers(BOOK_DIR)
    for path in CHAPTERS:
        notebook = load_chapter(path)
        cells = notebook.cells
        questions = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "Check your understanding" in c.source]
        thinking = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "(thinking)" in c.source]
        for index in questions + thinking:
            following = next((c for c in cells[index + 1:] if c.cell_type == "markdown"), None)
            assert following is not None and is_answers_cell(following), f"{path.stem}: cell {index} has no answers"
        for index in questions:
            asked = len(re.findall(r"(?m)^(\d+)\. ", cells[index].source.split("Check your understanding")[1]))
            answered = len(re.findall(r"(?m)^(\d+)\. ", cells[index + 1].source))
            assert asked == answered > 0, f"{path.stem}: {asked} questions, {answered} answers"
        student = student_edition(notebook)
        texts = "\n".join(c.source for c in student.cells)
        assert not any(is_answers_cell(c) for c in student.cells)
        assert all(a["text"].strip() not in texts for a in answers if a["chapter"] == path.stem)
    key = answer_key_markdown(answer_key(BOOK_DIR), answers)
    assert len(answers) >= len(CHAPTERS) + 1 and all(a["text"].strip() in key for a in answers)
    assert "Answer to exercise 5.3" in key


@pytest.mark.parametrize("seconds", ["Infinity", "NaN", "1e300", "-5"])
def test_times_refuses_an_implausible_run_time(tmp_path, capsys, seconds):
    """A corrupt timings file must not write "inf s" or a negative time into a chapter's header."""
    book = tmp_path / "book"
    book.mkdir()
    (book / CHAPTERS[0].name).write_text(CHAPTERS[0].read_text(encoding="utf-8"), encoding="utf-8")
    run = tmp_path / "timings.json"
    run.write_text(f'{{"gpu": {{"{CHAPTERS[0].stem}": {seconds}}}}}', encoding="utf-8")
    assert main(["book", "times", str(run), "--write", "--book", str(book)]) == 1
    error = capsys.readouterr().err
    assert "run times must lie between 0 and 604800 s" in error and str(run) in error
    assert (book / CHAPTERS[0].name).read_text(encoding="utf-8") == CHAPTERS[0].read_text(encoding="utf-8")


def test_book_student_never_overwrites_a_students_work(tmp_path, capsys):
    assert main(["book", "student", str(tmp_path), "--chapter", "01"]) == 0
    assert main(["book", "student", str(tmp_path), "--chapter", "01"]) == 0  # untouched: written again
    target = tmp_path / f"{CHAPTERS[0].stem}.ipynb"
    notebook = nbformat.read(target, as_version=4)
    notebook.cells[3].source += "\n# a student's answer"
    nbformat.write(notebook, target)
    worked = target.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["book", "student", str(tmp_path), "--chapter", "01"]) == 1
    assert f"{target}: changed since the student edition was written" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == worked


def test_sync_never_discards_edits_made_in_the_notebook(tmp_path):
    import os

    source = tmp_path / "01_the_task.py"
    source.write_text(CHAPTERS[0].read_text(encoding="utf-8"), encoding="utf-8")
    sync_notebook(source)
    target = source.with_suffix(".ipynb")
    notebook = nbformat.read(target, as_version=4)
    notebook.cells[3].source += "\n# edited in the notebook, not saved to the .py"
    nbformat.write(notebook, target)
    os.utime(source, ns=(1, 1))  # the notebook is the newer file
    edited = target.read_text(encoding="utf-8")
    for fresh in (False, True):
        with pytest.raises(FileExistsError, match=r"1 cell\(s\) edited in the notebook after 01_the_task.py"):
            sync_notebook(source, fresh=fresh)
        assert target.read_text(encoding="utf-8") == edited
    source.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")  # the chapter is newer: it wins
    assert sync_notebook(source) == 0 and "edited in the notebook" not in target.read_text(encoding="utf-8")
