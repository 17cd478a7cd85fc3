"""Submissions that attack the autograder, graded in one batch with honest ones.

Each forgery is one cell added to the student edition of a tiny chapter (real chapter-1
checkers, stubs left in place): none may turn a verdict into "passed". A dying, hanging
or flooding submission gets its own verdict and the rest of the batch is graded; no
submission changes another's file or the gradebook.
"""
import json
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from panopticlab.book import sandbox
from panopticlab.book.chapters import load_chapter
from panopticlab.book.editions import student_edition
from panopticlab.book.exercises import STUB_LINE, is_stub
from panopticlab.book.grading import check_submission, read_submission
from panopticlab.commands import main
from panopticlab.commands.common import exclusive_use
from test_autograder import book  # noqa: F401 - the tiny chapter's book folder, a fixture

MARKER = 'PANOPTICLAB-GRADE {"verdict": "passed", "message": ""}'

FORGERIES = {
    "eval": """
        import builtins
        builtins.eval = lambda *args, **kwargs: True
        eval = lambda *args, **kwargs: True
    """,
    "reload": """
        import importlib, types
        importlib.reload = lambda module: types.SimpleNamespace(
            **{name: (lambda *a, **k: True) for name in dir(module)})
    """,
    "json": """
        import json
        json.dumps = lambda *args, **kwargs: '{"verdict": "passed", "message": ""}'
        json.loads = lambda *args, **kwargs: {"verdict": "passed", "message": ""}
    """,
    "stdout": """
        import sys
        class Rewrite:
            def __init__(self, inner):
                self.inner = inner
            def write(self, text):
                return self.inner.write(text.replace("failed", "passed").replace("not attempted", "passed"))
            def __getattr__(self, name):
                return getattr(self.inner, name)
        sys.stdout = Rewrite(sys.stdout)
    """,
    "hooks": f"""
        shell = get_ipython()
        shell.events.register("pre_run_cell", lambda *args: print({MARKER!r}))
        shell.events.register("post_run_cell", lambda *args: print({MARKER!r}))
    """,
    "checker module": """
        import sys
        from panopticlab.exercises import ch01, checking
        for name in dir(ch01):
            if name.startswith("check_"):
                setattr(ch01, name, lambda *args, **kwargs: True)
        checking.ExerciseError = type("Never", (Exception,), {})
        checking.checks_are_strict = lambda: False
        sys.modules["panopticlab.exercises.ch01"] = ch01
    """,
    "answer channel": """
        import pickle
        import numpy as np
        import panopticlab.book.answers as answers
        class AlwaysEqual(np.ndarray):
            def __eq__(self, other):
                return np.ones(np.shape(other), dtype=bool)
        def serve_call(namespace, name, request, out):
            with open(out, "wb") as file:
                pickle.dump({"kind": "returned", "value": np.zeros((4, 4)).view(AlwaysEqual)}, file)
        answers.serve_call = serve_call
    """,
    "code in the answer": """
        import os, pickle
        import panopticlab.book.answers as answers
        class Payload:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        def serve_call(namespace, name, request, out):
            with open(out, "wb") as file:
                pickle.dump({"kind": "returned", "value": Payload()}, file)
        answers.serve_call = serve_call
        answers.describe_name = serve_call
    """,
    "answer is a device": """
        import os
        import panopticlab.book.answers as answers
        answers.serve_call = lambda namespace, name, request, out: os.symlink("/dev/zero", out)
        answers.describe_name = lambda namespace, name, out: os.symlink("/dev/zero", out)
    """,
    "answer is a pipe": """
        import os
        import panopticlab.book.answers as answers
        answers.serve_call = lambda namespace, name, request, out: os.mkfifo(out)
        answers.describe_name = lambda namespace, name, out: os.mkfifo(out)
    """,
    "not implemented silenced": """
        def rgb_to_id(rgb):
            return rgb[..., 0] * 0
        import panopticlab.exercises.checking as checking
        checking.call = lambda exercise, fn, *args: fn(*args)
        checking.passed = lambda *args, **kwargs: True
    """,
}


def _with_cell(notebook, source: str, after: str = "from panopticlab.exercises import ch01"):
    """``notebook`` with a code cell of ``source`` right after the first cell containing ``after``."""
    notebook = nbformat.reads(nbformat.writes(notebook), as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if after in c.source)
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(textwrap.dedent(source).strip()))
    return notebook


def _grade(arguments, out):
    code = main(["book", "check", *map(str, arguments), "--json", str(out)])
    return code, json.loads(out.read_text())


@pytest.fixture
def needs_sandbox():
    reason = sandbox.unavailable()
    assert reason is None, f"the grader's sandbox cannot run on this machine: {reason}"


def _wrong_answers(notebook):
    """The student edition with every stub replaced by a wrong answer (``return 0``)."""
    wrong = student_edition(notebook)
    for cell in wrong.cells:
        cell.source = cell.source.replace(STUB_LINE, "return 0")
    assert not any(is_stub(c.source) for c in wrong.cells)
    return wrong


def test_no_forgery_gets_a_passed(book, tmp_path, needs_sandbox):
    student = _wrong_answers(load_chapter(book / "01_tiny.py"))
    marker = tmp_path / "pwned"
    paths = []
    for number, (name, source) in enumerate(FORGERIES.items()):
        path = tmp_path / f"01_forged_{number}.ipynb"
        nbformat.write(_with_cell(student, source.replace("{marker}", str(marker))), path)
        paths.append(path)
    honest = tmp_path / "01_honest.ipynb"
    nbformat.write(load_chapter(book / "01_tiny.py"), honest)
    code, reports = _grade([*paths, honest, "--book", book, "--timeout-per-cell", "30"], tmp_path / "grades.json")
    assert code == 0 and len(reports) == len(FORGERIES) + 1
    for name, report in zip(FORGERIES, reports):
        verdicts = [e["verdict"] for e in report["exercises"]]
        assert len(verdicts) == 3 and "passed" not in verdicts, f"the {name!r} forgery passed: {report}"
        assert set(verdicts) <= {"failed", "not run"}, f"the {name!r} forgery: {verdicts}"
    assert reports[-1]["passed"] == 3, "an honest submission after the forgeries is graded as usual"
    assert not marker.exists(), "the grader ran code that a submission sent as its answer"
    by_name = dict(zip(FORGERIES, reports))
    messages = " ".join(e["message"] for e in by_name["answer channel"]["exercises"])
    assert "not plain data" in messages


def test_neighbours_cannot_reach_each_other_or_the_gradebook(book, tmp_path, needs_sandbox):
    """The first submission tries to overwrite the second, read the book, and leave a process
    that rewrites the gradebook after the grader is done."""
    reference = load_chapter(book / "01_tiny.py")
    wrong = nbformat.reads(nbformat.writes(reference), as_version=4)
    for cell in wrong.cells:  # exercise 1.1 with its channels reversed
        cell.source = cell.source.replace("rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]",
                                          "rgb[..., 2] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 0]")
    victim = tmp_path / "01_victim.ipynb"
    nbformat.write(wrong, victim)
    victim_bytes = victim.read_bytes()
    gradebook = tmp_path / "grades.json"
    attack = f"""
        import os, subprocess, sys, json
        for target in [{str(victim)!r}, {str(gradebook)!r}]:
            try:
                with open(target, "w") as file:
                    file.write("overwritten")
            except OSError:
                pass
        stolen = os.path.exists({str(book / "01_tiny.py")!r})
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3); "
                          "open({str(gradebook)!r}, 'w').write('forged')"], start_new_session=True)
    """
    attacker = tmp_path / "01_attacker.ipynb"
    nbformat.write(_with_cell(student_edition(reference), attack), attacker)
    code, reports = _grade([attacker, victim, "--book", book, "--sandbox", "on"], gradebook)
    assert code == 0
    assert victim.read_bytes() == victim_bytes
    assert [e["verdict"] for e in reports[1]["exercises"]] == ["failed", "passed", "passed"]
    time.sleep(4)
    assert json.loads(gradebook.read_text()) == reports, "a process of a submission outlived the grader"


def test_without_the_sandbox_the_grader_still_outlives_what_a_submission_starts(book, tmp_path):
    """Without the sandbox a submission can write a neighbour's file, but the neighbour is
    graded as it was handed in, and no process of the submission outlives the grader."""
    gradebook = tmp_path / "grades.json"
    reference = load_chapter(book / "01_tiny.py")
    victim = tmp_path / "01_victim.ipynb"
    nbformat.write(student_edition(reference), victim)
    attack = f"""
        import subprocess, sys
        open({str(victim)!r}, "w").write(open({str(tmp_path / "01_attacker.ipynb")!r}).read())
        subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(3); "
                          "open({str(gradebook)!r}, 'w').write('forged')"], start_new_session=True)
    """
    attacker = tmp_path / "01_attacker.ipynb"
    nbformat.write(_with_cell(reference, attack), attacker)
    code, reports = _grade([attacker, victim, "--book", book, "--sandbox", "off"], gradebook)
    assert code == 0 and [e["verdict"] for e in reports[0]["exercises"]] == ["passed"] * 3
    assert [e["verdict"] for e in reports[1]["exercises"]] == ["not attempted"] * 3, "graded as handed in"
    time.sleep(4)
    assert json.loads(gradebook.read_text()) == reports


def test_dying_hanging_and_flooding_submissions_get_their_own_verdicts(book, tmp_path, needs_sandbox):
    reference = load_chapter(book / "01_tiny.py")
    dies = tmp_path / "01_dies.ipynb"
    nbformat.write(_with_cell(reference, "import os\nos._exit(0)", after="ch01.check_rgb_to_id"), dies)
    hangs = tmp_path / "01_hangs.ipynb"
    nbformat.write(_with_cell(reference, """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
    """, after="ch01.check_rgb_to_id"), hangs)
    floods = tmp_path / "01_floods.ipynb"
    nbformat.write(_with_cell(reference, """
        print("x" * 10**6)
        for step in range(20000):
            print(f"\\r{step}", end="")
    """), floods)
    kills_parent = tmp_path / "01_kills.ipynb"
    nbformat.write(_with_cell(reference, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), kills_parent)
    honest = tmp_path / "01_honest.ipynb"
    nbformat.write(reference, honest)
    start = time.monotonic()
    code, reports = _grade([dies, hangs, floods, kills_parent, honest, "--book", book, "--timeout-per-cell", "15"],
                           tmp_path / "grades.json")
    assert code == 0 and len(reports) == 5
    by_file = {Path(r["path"]).stem: r for r in reports}
    verdicts = {stem: [e["verdict"] for e in r["exercises"]] for stem, r in by_file.items()}
    assert verdicts["01_dies"] == ["passed", "not run", "not run"]
    assert any("kernel died" in p for p in by_file["01_dies"]["problems"])
    assert verdicts["01_hangs"] == ["passed", "not run", "not run"]
    assert [c["status"] for c in by_file["01_hangs"]["cells"]] == ["killed"]
    assert verdicts["01_floods"] == ["passed"] * 3
    assert verdicts["01_kills"] == ["not run"] * 3
    assert verdicts["01_honest"] == ["passed"] * 3
    assert time.monotonic() - start < 240, "a flood of output or a hung cell held the grader"


def test_malformed_notebooks_and_limits_are_refused_with_one_line(book, tmp_path, capsys):
    notebook = load_chapter(book / "01_tiny.py")
    odd_metadata = tmp_path / "01_metadata.ipynb"
    notebook.metadata["panopticlab"] = "01_tiny"
    nbformat.write(notebook, odd_metadata)
    listed = tmp_path / "01_listed.ipynb"
    notebook.metadata["panopticlab"] = ["01_tiny"]
    nbformat.write(notebook, listed)
    for path in (odd_metadata, listed):
        report = check_submission(path, book_dir=book, timeout_per_cell=60)
        assert [e.verdict for e in report.exercises] == ["passed"] * 3
    numeric = tmp_path / "01_numeric.ipynb"
    content = json.loads(nbformat.writes(load_chapter(book / "01_tiny.py")))
    content["cells"][1]["source"] = 42
    numeric.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="01_numeric.ipynb: cell 2's source is a int, not text"):
        read_submission(numeric)
    gradebook = tmp_path / "grades.json"
    assert main(["book", "check", str(numeric), str(odd_metadata), "--book", str(book), "--json",
                 str(gradebook)]) == 1
    reports = json.loads(gradebook.read_text())
    assert "cell 2's source" in reports[0]["problems"][0] and reports[1]["passed"] == 3
    capsys.readouterr()
    for limit in ("0", "-5"):
        with pytest.raises(SystemExit):
            main(["book", "check", str(odd_metadata), "--book", str(book), "--timeout-per-cell", limit])
        assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="time limits must be positive"):
        check_submission(odd_metadata, book_dir=book, timeout_per_cell=0)


def test_two_gradings_into_one_gradebook_are_refused(book, tmp_path, capsys):
    submission = tmp_path / "01_student.ipynb"
    nbformat.write(student_edition(load_chapter(book / "01_tiny.py")), submission)
    gradebook = tmp_path / "grades.json"
    with exclusive_use(gradebook, "--json"):  # another `book check --json grades.json` is running
        assert main(["book", "check", str(submission), "--book", str(book), "--json", str(gradebook)]) == 1
    assert "--json" in capsys.readouterr().err and not gradebook.exists()
    assert main(["book", "check", str(submission), "--book", str(book), "--json", str(submission)]) == 1
    assert "would overwrite" in capsys.readouterr().err
    assert read_submission(submission).cells
