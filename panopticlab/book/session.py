"""One submission's kernel, held at arm's length: cells run with hard limits, answers come out as data.

:class:`GradingSession` starts a kernel for one submission in its own throw-away folder
(in the Linux namespace sandbox of :mod:`panopticlab.book.sandbox` when asked), runs the
notebook's cells one at a time, and lets the grader reach what the notebook defined:
:meth:`GradingSession.fetch` gives a value as plain data
(:mod:`panopticlab.book.answers`) or, for a function, a :class:`RemoteFunction` that
runs the call *in the kernel* and brings back only what it returned. The checker itself
runs in the grader's process, which no cell can reach.

Limits that hold whatever a cell does:

* a cell over ``timeout_per_cell`` is interrupted; one that ignores the interrupt for
  :data:`GRACE_SECONDS` more is killed with the whole kernel (its process group, and in
  the sandbox every process it started), and the session is over;
* the session ends at ``time_limit`` seconds in all, the same way;
* a cell keeps at most :data:`MAX_OUTPUT_CHARS` characters of output (the rest is
  dropped, with one line saying so) and streams are not coalesced, so a flood of text
  costs linear time;
* a kernel that dies (``os._exit``) ends the session, not the grader.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import pickle
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import panopticlab

from ..exercises.checking import ExerciseError
from ..exercises.forbidden import active_refusals
from .answers import AnswerError, capture_random_state, read_answer, restore_random_state
from .runner import WORK_FOLDER, kernel_variables, short_poll_client
from .textbars import KERNEL_ARGUMENT

GRACE_SECONDS = 5.0
MAX_OUTPUT_CHARS = 100_000
MAX_OUTPUTS = 500
TRUNCATED = "\n[the grader kept the first {limit} characters of this cell's output]\n"
SERVICE_FOLDER = ".grader"


class KernelStopped(RuntimeError):
    """The kernel is gone: it died, or the grader killed it at a limit (the reason says which)."""


class CallTimedOut(RuntimeError):
    """A call of the student's function ran past the time limit per cell."""


class StudentCodeError(RuntimeError):
    """The student's function raised (its exception type and message, as text)."""


@dataclass
class CellOutcome:
    index: int
    status: str  # "ok", "error", "timed out", "killed" or "dead"
    seconds: float
    error: str = ""


class RemoteFunction:
    """A function of the submission, callable from the grader: each call runs in the kernel.

    The arguments are pickled to the kernel; the call runs there under the refusals of the
    enclosing :func:`~panopticlab.exercises.forbidden.forbidden` blocks and from the
    grader's current random state; what it returned comes back as plain data. It raises
    ``NotImplementedError`` or :class:`ExerciseError` as the student's function did,
    :class:`StudentCodeError` for any other exception, :class:`CallTimedOut` past the limit.
    """

    def __init__(self, session: "GradingSession", name: str):
        self.session, self.__name__ = session, name

    def __call__(self, *args, **kwargs):
        return self.session.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__} of the submission>"


def _kernel_environment(folder: Path, profile: str) -> dict:
    """The kernel's whole environment: nothing of the grader's is passed on but the paths it needs."""
    home = folder / ".home"
    home.mkdir(exist_ok=True)
    environment = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home), "TMPDIR": "/tmp", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "MPLCONFIGDIR": str(home / ".matplotlib"), "IPYTHONDIR": str(home / ".ipython"),
        **kernel_variables(profile, folder / WORK_FOLDER),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        # the kernel imports the very package the grader runs (an editable install's or a checkout's)
        "PYTHONPATH": str(Path(panopticlab.__file__).resolve().parent.parent),
    }
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if name in os.environ:
            environment[name] = os.environ[name]
    return environment


def _make_kernel_manager(folder: Path, requests: Path, sandboxed: bool):
    from jupyter_client.manager import AsyncKernelManager

    from . import sandbox

    mountpoint = folder.parent / "root"

    class KernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            command = super().format_kernel_cmd(extra_arguments)
            if not sandboxed:
                return command
            return sandbox.wrap(command, folder, mountpoint, readable=[*sandbox.readable_paths(), requests])

    if sandboxed:
        mountpoint.mkdir(exist_ok=True)
    # Unix sockets in the submission's folder: a sandboxed kernel has no network, not even loopback
    return KernelManager(kernel_name="python3", transport="ipc", ip=str(folder / SERVICE_FOLDER / "kernel"),
                         connection_file=str(folder / SERVICE_FOLDER / "kernel.json"))


class GradingSession:
    """A submission's notebook in a kernel of its own (see the module's docstring).

    Args:
        notebook: the notebook to run (its cells receive their outputs).
        folder: the submission's working folder (empty but for its own copy); its parent
            must be a folder of the grader's own (the sandbox's mount point and the
            grader's requests go there).
        sandboxed: run the kernel in the namespace sandbox.
    """

    def __init__(self, notebook, folder: str | os.PathLike, *, profile: str = "ci", timeout_per_cell: float = 120,
                 time_limit: float = 3600, sandboxed: bool = False, progress=None):
        if timeout_per_cell <= 0 or time_limit <= 0:
            raise ValueError("the time limits must be positive")
        self.notebook, self.folder = notebook, Path(folder).resolve()
        self.profile, self.timeout_per_cell, self.time_limit = profile, timeout_per_cell, time_limit
        self.sandboxed, self.progress = sandboxed, progress
        self.stopped: str | None = None  # why the kernel is gone, once it is
        self.outcomes: list[CellOutcome] = []
        # the grader's requests, beside the submission's folder: read-only to a sandboxed kernel
        self.requests = self.folder.parent / "requests"
        self._client = None
        self._deadline = 0.0

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> "GradingSession":
        from jupyter_core.utils import run_sync

        (self.folder / SERVICE_FOLDER).mkdir(parents=True, exist_ok=True)
        self.requests.mkdir(parents=True, exist_ok=True)
        _become_subreaper()
        self._before = set(_descendants(os.getpid()))
        self._client = _make_client(self.notebook, self.folder, self.requests, self.sandboxed)
        self._deadline = time.monotonic() + self.time_limit
        run_sync(self._start)()
        return self

    async def _start(self) -> None:
        client = self._client
        await client.async_start_new_kernel(cwd=str(self.folder), env=_kernel_environment(self.folder, self.profile))
        await client.async_start_new_kernel_client()

    def __exit__(self, *exc) -> None:
        from jupyter_core.utils import run_sync

        try:
            run_sync(self._shutdown)()
        finally:
            _kill_strays(self._before)

    async def _shutdown(self) -> None:
        client = self._client
        if client is None or client.km is None:
            return
        try:
            if await client.km.is_alive():
                await client.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - the kernel may be gone already
            pass
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
            await client.km.cleanup_resources()

    # -- cells --------------------------------------------------------------------------

    def run_cell(self, index: int) -> CellOutcome:
        """Execute the notebook's cell ``index`` (its outputs land in the cell)."""
        from jupyter_core.utils import run_sync

        return run_sync(self._run_cell)(index)

    async def _run_cell(self, index: int) -> CellOutcome:
        from nbclient.exceptions import DeadKernelError

        cell = self.notebook.cells[index]
        if self.stopped:
            return self._record(CellOutcome(index, "not run", 0.0, self.stopped))
        start = time.monotonic()
        self._client.timeout = max(1, int(min(self.timeout_per_cell, self._deadline - start)))
        try:
            await asyncio.wait_for(self._client.async_execute_cell(cell, index), self._hard_limit(start))
        except (asyncio.TimeoutError, DeadKernelError) as error:
            # nbclient reports its cancellation by our time limit as a dead kernel: ask the kernel
            if isinstance(error, asyncio.TimeoutError) or await self._client.km.is_alive():
                await self._kill(f"{self._label(index)} ran past the time limit and ignored the interrupt", start)
                return self._record(CellOutcome(index, "killed", time.monotonic() - start, self.stopped))
            self.stopped = f"the kernel died while running {self._label(index)}"
            return self._record(CellOutcome(index, "dead", time.monotonic() - start, self.stopped))
        except Exception as error:  # noqa: BLE001 - a kernel that breaks its own protocol is stopped
            await self._kill(f"the kernel broke the Jupyter protocol while running {self._label(index)} "
                             f"({type(error).__name__}: {error})", start)
            return self._record(CellOutcome(index, "dead", time.monotonic() - start, self.stopped))
        seconds = time.monotonic() - start
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            return self._record(CellOutcome(index, "ok", seconds))
        name = str(errors[-1].get("ename", ""))
        if name == "KeyboardInterrupt" and seconds >= self._client.timeout - 0.5:
            return self._record(CellOutcome(index, "timed out", seconds, "ran past the time limit per cell"))
        text = str(errors[-1].get("evalue", "") or "").split("\n")[0][:300]
        return self._record(CellOutcome(index, "error", seconds, f"{name}: {text}"))

    def _label(self, index: int) -> str:
        """``code cell 3``: cells counted as JupyterLab's "Run All" meets them (code cells, from 1)."""
        return f"code cell {sum(c.cell_type == 'code' for c in self.notebook.cells[:index + 1])}"

    def _record(self, outcome: CellOutcome) -> CellOutcome:
        self.outcomes.append(outcome)
        return outcome

    def _hard_limit(self, start: float) -> float:
        left = self._deadline - start
        if left <= 0:
            return 0.01
        return min(self.timeout_per_cell + GRACE_SECONDS, left + GRACE_SECONDS)

    async def _kill(self, reason: str, start: float) -> None:
        if time.monotonic() >= self._deadline:
            reason = f"the submission ran past its time limit of {self.time_limit:g} s"
        self.stopped = reason
        try:
            await self._client.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            pass

    # -- answers ------------------------------------------------------------------------

    def fetch(self, name: str):
        """What ``name`` is in the notebook: a :class:`RemoteFunction`, or its value as data.

        Raises:
            NameError: the notebook does not define ``name``.
            KernelStopped, CallTimedOut, AnswerError: as for :meth:`call`.
        """
        out = self._answer_path()
        self._service(f"describe_name(globals(), {name!r}, {str(out)!r})")
        record = _as_record(read_answer(out))
        if record["kind"] == "missing":
            raise NameError(f"name '{name}' is not defined")
        if record["kind"] == "function":
            return RemoteFunction(self, name)
        return record.get("value")

    def call(self, name: str, args: tuple, kwargs: dict | None = None):
        """Call the notebook's function ``name`` with ``args`` in the kernel (see :class:`RemoteFunction`)."""
        request, out = self.requests / f"{uuid.uuid4().hex}.in", self._answer_path()
        # created, never opened if it exists: nothing planted at the path is written through
        with os.fdopen(os.open(request, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb") as file:
            pickle.dump({"args": args, "kwargs": kwargs or {}, "random": capture_random_state(), "forbidden": active_refusals()}, file)
        try:
            self._service(f"serve_call(globals(), {name!r}, {str(request)!r}, {str(out)!r})")
        finally:
            request.unlink(missing_ok=True)
        record = _as_record(read_answer(out))
        if isinstance(record.get("random"), dict):
            restore_random_state(record["random"])
        if record["kind"] == "returned":
            return record.get("value")
        kind, message = str(record.get("type", "Exception")), str(record.get("message", ""))
        if kind == "NotImplementedError":
            raise NotImplementedError(message)
        if kind == "ExerciseError":
            raise ExerciseError(message)
        raise StudentCodeError(f"{kind}: {message}" if message else kind)

    def _answer_path(self) -> Path:
        """Where the kernel writes one answer: a name it cannot guess in advance."""
        return self.folder / SERVICE_FOLDER / f"{uuid.uuid4().hex}.out"

    def _service(self, expression: str) -> None:
        from jupyter_core.utils import run_sync

        code = f"__import__('panopticlab.book.answers', fromlist=['answers']).{expression}"
        run_sync(self._execute_quietly)(code)

    async def _execute_quietly(self, code: str) -> None:
        """Run ``code`` in the kernel, not as a cell of the notebook, within the limits."""
        if self.stopped:
            raise KernelStopped(self.stopped)
        start = time.monotonic()
        kc = self._client.kc
        msg_id = kc.execute(code, silent=False, store_history=False, allow_stdin=False, stop_on_error=False)
        soft = min(self.timeout_per_cell, max(0.01, self._deadline - start))
        reply = await self._reply(msg_id, soft)
        if reply is None:  # past the limit: interrupt, then give it the grace period
            try:
                await self._client.km.interrupt_kernel()
            except Exception:  # noqa: BLE001
                pass
            reply = await self._reply(msg_id, GRACE_SECONDS)
            if reply is None:
                await self._kill("a call of the submission's function ran past the time limit and ignored "
                                 "the interrupt", start)
                raise KernelStopped(self.stopped)
            raise CallTimedOut("the call ran past the time limit per cell")
        content = reply.get("content", {})
        if content.get("status") != "ok":
            if content.get("ename") == "KeyboardInterrupt":
                raise CallTimedOut("the call ran past the time limit per cell")
            raise StudentCodeError(f"the grader's call could not run in the notebook's kernel: "
                                   f"{content.get('ename')}: {str(content.get('evalue', ''))[:300]}")

    async def _reply(self, msg_id: str, seconds: float):
        """The shell reply to ``msg_id`` within ``seconds`` (None if none came); a dead kernel stops the session."""
        from queue import Empty

        kc = self._client.kc
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                message = await kc.shell_channel.get_msg(timeout=min(1.0, left))
            except Empty:
                if not await self._client.km.is_alive():
                    self.stopped = "the kernel died during a call of the submission's function"
                    raise KernelStopped(self.stopped) from None
                continue
            except Exception as error:  # noqa: BLE001 - a kernel that breaks its own protocol is stopped
                await self._kill(f"the kernel broke the Jupyter protocol ({type(error).__name__}: {error})",
                                 time.monotonic())
                raise KernelStopped(self.stopped) from None
            if isinstance(message, dict) and message.get("parent_header", {}).get("msg_id") == msg_id:
                return message


def _as_record(value) -> dict:
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise AnswerError("the kernel's answer is not a record the grader wrote")
    return value


def _make_client(notebook, folder: Path, requests: Path, sandboxed: bool):
    """An nbclient client whose cells keep bounded output and whose polls stay short."""
    class Client(short_poll_client()):
        def output(self, outs, msg, display_id, cell_index):
            kept = sum(_size(o) for o in outs)
            if outs and outs[-1].get("panopticlab_truncated"):
                return None
            out = super().output(outs, msg, display_id, cell_index)
            if out is None or out.get("output_type") == "error":
                return out  # errors are kept: they say how the cell ended
            if kept + _size(out) > MAX_OUTPUT_CHARS or len(outs) > MAX_OUTPUTS:
                outs.remove(out)
                from nbformat.v4 import new_output

                notice = new_output("stream", name="stderr", text=TRUNCATED.format(limit=MAX_OUTPUT_CHARS))
                notice["panopticlab_truncated"] = True
                outs.append(notice)
            return out

    return Client(notebook, timeout=120, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
                  coalesce_streams=False, store_widget_state=True, startup_timeout=120,
                  km=_make_kernel_manager(folder, requests, sandboxed), shutdown_kernel="immediate",
                  resources={"metadata": {"path": str(folder)}},
                  extra_arguments=["--log-level=ERROR", KERNEL_ARGUMENT])


def _size(output) -> int:
    if output.get("output_type") == "stream":
        return len(output.get("text", ""))
    return sum(len(str(value)) for value in output.get("data", {}).values()) + len(str(output.get("traceback", "")))


# --- processes that escape the kernel's process group (without the sandbox) -------------

PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> None:
    """Make this process inherit the orphans of what it starts, so none can outlive grading
    by leaving its process group (``start_new_session=True``) and being adopted by init."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _kill_strays(before: set[int]) -> None:
    """Kill every process descended from this one that was not there ``before`` the kernel
    started (all of them the submission's, by now)."""
    if not Path("/proc").is_dir():
        return
    for _ in range(3):
        strays = [pid for pid in _descendants(os.getpid()) if pid not in before]
        if not strays:
            return
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in strays:
            try:
                os.waitpid(pid, os.WNOHANG)
            except OSError:
                pass
        time.sleep(0.1)


def _descendants(root: int) -> list[int]:
    if not Path("/proc").is_dir():
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found
