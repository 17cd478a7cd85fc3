"""Executing a chapter notebook: the run profile, a time limit per cell, progress you can see.

:func:`execute_notebook` runs a notebook in a fresh kernel with ``PANOPTICLAB_PROFILE``
set, prints (when asked) one line per cell with its number out of how many, its elapsed
time and the last text of the chapter's own progress bars, and leaves the outputs in the
notebook. Progress bars are text (:mod:`panopticlab.book.textbars`), so saved notebooks
and their HTML show them.
"""
from __future__ import annotations

import inspect
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..exercises.checking import STRICT_ENV
from .textbars import KERNEL_ARGUMENT

WORK_FOLDER = "work"  # inside the run's folder: where panopticlab.work_dir points the chapter


@dataclass
class CellTiming:
    index: int
    seconds: float
    status: str  # "ok", "error" or "timeout"


@dataclass
class RunRecord:
    """What :func:`execute_notebook` measured: seconds per code cell and in all."""

    name: str
    cells: list[CellTiming] = field(default_factory=list)
    seconds: float = 0.0


def kernel_variables(profile: str, work_dir, strict_checks: bool = True) -> dict[str, str]:
    """The variables every kernel the book's tools start is given: the run profile, where the
    chapter writes, the inline backend (figures kept in the notebook), strict checkers."""
    return {"PANOPTICLAB_PROFILE": profile, "PANOPTICLAB_WORK_DIR": str(work_dir),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline", STRICT_ENV: "1" if strict_checks else "0"}


@contextmanager
def _kernel_environment(profile: str, work_dir, strict_checks: bool = True):
    """Set what the kernel inherits from this process, and restore it afterwards."""
    values = kernel_variables(profile, work_dir, strict_checks)
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


POLL_SECONDS = 1.0


def _poll_in_short_waits(channel) -> None:
    """Make ``channel.get_msg(timeout)`` wait in polls of at most :data:`POLL_SECONDS`.

    A single long poll of the kernel's socket can miss its wake-up while a cell with an
    interactive widget exchanges messages, and nbclient then waits for a reply the kernel
    has already sent, until the cell's timeout (nbclient issue 312; seen on chapter 6's
    widget cell, with the kernel idle). A short poll that comes back empty is simply
    repeated, and a message already waiting is seen by the next poll.
    """
    from queue import Empty

    get_msg = channel.get_msg

    async def get_msg_in_short_waits(timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
            try:
                message = get_msg(timeout=left)
                return (await message) if inspect.isawaitable(message) else message
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg_in_short_waits


def short_poll_client():
    """nbclient's ``NotebookClient`` whose kernel channels poll in short waits (see
    :func:`_poll_in_short_waits`): the base of every client that runs a chapter."""
    from nbclient import NotebookClient

    class ShortPollClient(NotebookClient):
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            for channel in (kc.shell_channel, kc.iopub_channel):
                _poll_in_short_waits(channel)
            return kc

    return ShortPollClient


class _Progress:
    """The per-cell lines: ``[01_the_task] cell 12/40 ... 3.2 s | train: 40%|####  | 80/200``."""

    def __init__(self, name: str, notebook, stream):
        self.name, self.stream = name, stream
        self.code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
        self.start = 0.0
        self.bar = ""
        self.last_print = 0.0

    def cell_start(self, cell_index: int) -> None:
        self.start = time.perf_counter()
        self.bar = ""
        self._print(cell_index, "running", end="\r")

    def bar_text(self, text: str, cell_index: int) -> None:
        """The chapter's own bar: tqdm rewrites its line with ``\\r``; keep the newest non-empty one."""
        pieces = [p.strip() for p in text.replace("\n", "\r").split("\r") if p.strip()]
        if pieces:
            self.bar = pieces[-1][:90]
            if time.perf_counter() - self.last_print > 0.5:  # at most two updates a second
                self._print(cell_index, "running", end="\r")

    def cell_done(self, cell_index: int, status: str) -> float:
        seconds = time.perf_counter() - self.start
        self._print(cell_index, f"{status} {seconds:.1f} s", end="\n")
        return seconds

    def _print(self, cell_index: int, state: str, end: str) -> None:
        if self.stream is None:
            return
        self.last_print = time.perf_counter()
        number = self.code.index(cell_index) + 1 if cell_index in self.code else 0
        elapsed = time.perf_counter() - self.start
        line = f"[{self.name}] cell {number}/{len(self.code)} {state}"
        if state == "running":
            line += f" {elapsed:.0f} s"
        if self.bar:
            line += f" | {self.bar}"
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        if end == "\r" and not is_tty:
            return  # a log file gets one line per cell, not every update
        self.stream.write(("\r\033[K" if is_tty else "") + line + ("" if end == "\r" else "\n"))
        self.stream.flush()


def execute_notebook(notebook, profile: str, cwd: str | os.PathLike, timeout: int = 1800, *,
                     allow_errors: bool = False, progress: bool = False, name: str = "notebook",
                     record: RunRecord | None = None, stream=None, strict_checks: bool = True):
    """Execute ``notebook`` in place with ``PANOPTICLAB_PROFILE=profile`` in the folder ``cwd``.

    The files the chapter writes through :func:`panopticlab.work_dir` land in ``cwd/work/``.

    Args:
        timeout: seconds a cell may run. With ``allow_errors`` a cell over the limit is
            interrupted (its output ends in ``KeyboardInterrupt``) and the next cells run;
            without, the run stops there.
        allow_errors: keep going after a failing cell (the autograder); else stop at the first.
        progress: print a line per cell (``stream``, default stderr) with elapsed times.
        record: filled with the seconds per code cell.
        strict_checks: every exercise checker raises on a wrong answer, so a reference
            solution that fails its checker fails the run (the book's runs, the autograder).
            False runs the checkers as a student's JupyterLab does: a failed check prints
            its verdict and the notebook runs on (:mod:`panopticlab.exercises.checking`).

    The kernel draws with matplotlib's inline backend whatever ``MPLBACKEND`` says here
    (scripts and tests set ``Agg``), so that every figure is kept in the executed notebook.

    Raises:
        nbclient.exceptions.CellExecutionError: (without ``allow_errors``) naming the failing
            cell and its traceback; ``CellTimeoutError`` for a cell over ``timeout``.
    """
    record = record if record is not None else RunRecord(name)
    shown = _Progress(name, notebook, (stream or sys.stderr) if progress else None)

    class Client(short_poll_client()):
        def output(self, outs, msg, display_id, cell_index):
            if msg["msg_type"] == "stream" and msg["content"].get("name") == "stderr":
                shown.bar_text(msg["content"].get("text", ""), cell_index)
            return super().output(outs, msg, display_id, cell_index)

    def on_start(cell, cell_index):
        shown.cell_start(cell_index)

    def on_executed(cell, cell_index, execute_reply):
        content = execute_reply.get("content", {})
        status = "ok"
        if content.get("status") != "ok":
            status = "timeout" if content.get("ename") == "KeyboardInterrupt" else "error"
        record.cells.append(CellTiming(cell_index, shown.cell_done(cell_index, status), status))

    start = time.perf_counter()
    with _kernel_environment(profile, Path(cwd).resolve() / WORK_FOLDER, strict_checks):  # the kernel inherits this process's environment
        # the kernel talks to us over local TCP; its log line warning about that is noise here
        client = Client(notebook, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                        interrupt_on_timeout=allow_errors, coalesce_streams=True,
                        # nbclient keeps the state of Output widgets (ipywidgets.interactive) only while it
                        # stores widget state: without it, their first output raises a KeyError
                        store_widget_state=True,
                        resources={"metadata": {"path": str(cwd)}},
                        extra_arguments=["--log-level=ERROR", KERNEL_ARGUMENT],
                        on_cell_start=on_start, on_cell_executed=on_executed)
        try:
            client.execute()
        finally:
            record.seconds = time.perf_counter() - start
    return notebook
