"""The grader's two walls, tested without a notebook: the namespace sandbox a submission's
kernel runs in, and the answer format that carries data, never code, back to the grader."""
import enum
import io
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import panopticlab
from panopticlab.book import sandbox
from panopticlab.book.answers import AnswerError, OpaqueAnswer, plain, read_answer

REPOSITORY = Path(panopticlab.__file__).resolve().parent.parent


@pytest.fixture
def sandbox_folders(tmp_path):
    reason = sandbox.unavailable()
    assert reason is None, f"the grader's sandbox cannot run on this machine: {reason}"
    work, root = tmp_path / "work", tmp_path / "root"
    work.mkdir()
    root.mkdir()
    return work, root


def run_in_sandbox(work, root, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    script = work / "probe.py"
    script.write_text(textwrap.dedent(code))
    command = sandbox.wrap([sys.executable, str(script)], work, root)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=work,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTHONPATH": str(REPOSITORY)})


def test_the_sandbox_sees_python_and_the_package_but_not_the_book_or_other_files(sandbox_folders, tmp_path):
    work, root = sandbox_folders
    neighbour = tmp_path / "02_other_student.ipynb"
    neighbour.write_text("a neighbour's notebook")
    gradebook = tmp_path / "grades.json"
    gradebook.write_text("[]")
    result = run_in_sandbox(work, root, f"""
        import json, os, socket
        import panopticlab, torch
        seen = {{}}
        for name, path in {{"book": {str(REPOSITORY / "book")!r}, "neighbour": {str(neighbour)!r},
                            "gradebook": {str(tmp_path / "grades.json")!r}, "home": "/root/.bashrc"}}.items():
            seen[name] = os.path.exists(path)
        for name, path in {{"package": os.path.join(os.path.dirname(panopticlab.__file__), "x.py"),
                            "gradebook": {str(gradebook)!r}}}.items():
            try:
                open(path, "w").write("changed")
                seen["wrote " + name] = True
            except OSError:
                seen["wrote " + name] = False
        open("answer.txt", "w").write("mine")  # its own folder is writable
        seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        try:
            socket.create_connection(("127.0.0.1", 9), timeout=2)
            seen["network"] = True
        except OSError:
            seen["network"] = False
        print(json.dumps(seen))
    """)
    assert result.returncode == 0, result.stderr
    seen = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert seen["book"] is False and seen["neighbour"] is False and seen["gradebook"] is False
    assert seen["home"] is False
    assert seen["wrote package"] is False
    assert (work / "answer.txt").read_text() == "mine"
    # a write to the gradebook's path lands in the sandbox's own scratch, not in the gradebook
    assert gradebook.read_text() == "[]" and not (Path(panopticlab.__file__).parent / "x.py").exists()
    assert seen["pids"][0] == 1 and len(seen["pids"]) <= 3, "it sees processes outside its own namespace"
    assert seen["network"] is False


def test_no_process_outlives_the_sandbox(sandbox_folders, tmp_path):
    """A process started in a new session (out of the kernel's process group) ends with the sandbox."""
    work, root = sandbox_folders
    result = run_in_sandbox(work, root, f"""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3); open({str(work / 'late.txt')!r}, 'w').write('late')"],
                         start_new_session=True)
        print("started")
    """)
    assert result.returncode == 0 and "started" in result.stdout, result.stderr
    time.sleep(4)
    assert not (work / "late.txt").exists()


def test_a_sandboxed_kernel_cannot_undo_its_mounts(sandbox_folders):
    work, root = sandbox_folders
    result = run_in_sandbox(work, root, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        MS_REMOUNT, MS_BIND = 32, 4096
        remounted = libc.mount(None, b"/usr", None, MS_REMOUNT | MS_BIND, None) == 0
        unmounted = libc.umount2(b"/usr", 2) == 0
        print(remounted, unmounted)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_plain_answers_survive_the_crossing(tmp_path):
    value = {"ids": np.arange(6, dtype=np.int32).reshape(2, 3), "mask": torch.tensor([[True, False]]),
             "share": torch.tensor(0.25, requires_grad=True), "pairs": [(1, 2), (3, 4)], "groups": {frozenset({1, 2})},
             "todo": ..., "count": np.int64(3), "name": "disc", "half": torch.ones(2, dtype=torch.bfloat16),
             "kind": enum.IntEnum("Kind", "THING STUFF").STUFF}
    path = tmp_path / "answer"
    path.write_bytes(pickle.dumps(plain(value)))
    back = read_answer(path)
    assert np.array_equal(back["ids"], value["ids"]) and back["ids"].dtype == np.int32
    assert torch.equal(back["mask"], value["mask"]) and back["mask"].dtype == torch.bool
    assert back["share"].item() == 0.25 and back["share"].requires_grad
    assert back["half"].dtype == torch.bfloat16
    assert back["pairs"] == [(1, 2), (3, 4)] and back["groups"] == {frozenset({1, 2})}
    assert back["todo"] is Ellipsis and back["count"] == 3 and back["name"] == "disc"
    assert back["kind"] == 2 and type(back["kind"]) is int  # an IntEnum crosses as its int


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)


def test_an_answer_that_is_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "answer"
    path.write_bytes(pickle.dumps({"kind": "returned", "value": _Payload(marker)}))
    with pytest.raises(AnswerError, match="names posix.system|names os.system"):
        read_answer(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(np.zeros(3).view(_AlwaysEqual)))
    with pytest.raises(AnswerError, match="_AlwaysEqual, which is not plain data"):
        read_answer(path)
    # an object of any other type crosses as its name and repr, which no checker accepts
    path.write_bytes(pickle.dumps(plain(object())))
    assert isinstance(read_answer(path), OpaqueAnswer)
    path.write_bytes(b"\x80\x04truncated")
    with pytest.raises(AnswerError, match="cannot be read"):
        read_answer(path)


def test_an_ndarray_subclass_is_sent_as_a_plain_array():
    sent = plain(np.zeros(3).view(_AlwaysEqual))
    assert type(sent) is np.ndarray
    back = pickle.load(io.BytesIO(pickle.dumps(sent)))
    assert not (back == np.ones(3)).any()
