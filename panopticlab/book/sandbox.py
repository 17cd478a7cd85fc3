"""A Linux namespace sandbox for the kernel that runs a submission.

:func:`wrap` turns a kernel's command line into one that starts it under ``unshare``
(util-linux) in new user, mount, PID, network, IPC and UTS namespaces, after this file,
run as a script inside them, has built the filesystem the kernel sees:

* a private root (a small tmpfs) holding, read-only, the system (``/usr``, ``/etc`` and
  the ``/bin`` style links), the Python installation and the virtual environment, and
  the ``panopticlab`` package itself, but not the folder it sits in: the book's
  reference solutions, other submissions and the gradebook are not there at all;
* the submission's own working folder, writable, at the same path as outside;
* a fresh ``/tmp``, ``/dev/shm``, the usual ``/dev`` nodes, and a ``/proc`` that shows
  only the sandbox's own processes;
* no network (only a loopback that is down), so the kernel talks to the grader over
  Unix sockets in its working folder.

The kernel then runs with no capabilities (an emptied bounding set and
``no_new_privs``), so it cannot undo a mount. It is process 1 of its PID namespace: when
it ends, or the grader kills it, every process it started ends with it, also one started
in a new session.

This is the mechanism bubblewrap and container runtimes use; it needs unprivileged user
namespaces (``unshare --user`` working), which :func:`unavailable` checks.

This file runs as a script with the standard library only (``python -I -S sandbox.py``).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
TMPFS_SIZE = "256m"

_unavailable_cache: dict[str, str | None] = {}


def unavailable() -> str | None:
    """Why the sandbox cannot run on this machine (None when it can)."""
    if "reason" in _unavailable_cache:
        return _unavailable_cache["reason"]
    reason = None
    if not sys.platform.startswith("linux"):
        reason = f"Linux namespaces are not available on {sys.platform}"
    elif shutil.which("unshare") is None:
        reason = "the unshare command (util-linux) is not installed"
    else:
        try:
            probe = subprocess.run([shutil.which("unshare"), *_UNSHARE_OPTIONS, "true"], capture_output=True,
                                   text=True, timeout=30)
            if probe.returncode != 0:
                reason = ("unprivileged user namespaces are not allowed here (unshare: "
                          f"{probe.stderr.strip() or probe.returncode})")
        except (OSError, subprocess.TimeoutExpired) as error:
            reason = f"unshare failed ({error})"
    _unavailable_cache["reason"] = reason
    return reason


_IGNORE_INTERRUPTS_AND_RUN = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                              "os.execv(sys.argv[1], sys.argv[1:])")
_UNSHARE_OPTIONS = ("--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork",
                    "--kill-child")


def readable_paths() -> list[Path]:
    """What the kernel may read besides the system: Python, the environment, the package."""
    import panopticlab

    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
             Path(panopticlab.__file__).resolve().parent}
    return sorted(paths)


def wrap(argv: list[str], workdir: str | os.PathLike, mountpoint: str | os.PathLike,
         readable: list[Path] | None = None) -> list[str]:
    """``argv`` (a kernel's command line) run inside the sandbox, in ``workdir``.

    ``mountpoint`` is an empty folder outside ``workdir`` where the sandbox's root is
    built (in the sandbox's own mount namespace: outside, it stays empty)."""
    # unshare waits for the kernel; an interrupt sent to the kernel's process group must not end it
    # (its --kill-child would take the kernel along), so it starts with SIGINT ignored
    ignoring_interrupts = [sys.executable, "-I", "-S", "-c", _IGNORE_INTERRUPTS_AND_RUN]
    command = [*ignoring_interrupts, shutil.which("unshare") or "unshare", *_UNSHARE_OPTIONS, sys.executable, "-I", "-S",
               str(Path(__file__).resolve()), "--work", str(Path(workdir).resolve()),
               "--root", str(Path(mountpoint).resolve())]
    for path in readable if readable is not None else readable_paths():
        command += ["--read", str(path)]
    return command + ["--", *argv]


# --- inside the namespaces -------------------------------------------------------------

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_libc = None


def _call(name: str, *args) -> None:
    result = getattr(_libc, name)(*args)
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{name}{tuple(a.decode() if isinstance(a, bytes) else a for a in args)}: "
                             f"{os.strerror(error)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    _call("mount", _b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))


def _b(value):
    return None if value is None else str(value).encode()


def _bind(source: Path, root: Path, writable: bool = False) -> None:
    target = root / str(source).lstrip("/")
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    _mount(source, target, None, MS_BIND | MS_REC)
    if not writable:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_root(workdir: Path, root: Path, readable: list[Path]) -> None:
    """Mount the sandbox's filesystem at ``root`` and make it the root."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the grader's mounts
    _mount("none", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={TMPFS_SIZE},mode=0755")
    # first the fresh /tmp, so that a working folder under /tmp is mounted over it, not hidden
    for name in ("tmp", "dev/shm"):
        (root / name).mkdir(parents=True, exist_ok=True)
        _mount("none", root / name, "tmpfs", MS_NOSUID | MS_NODEV, f"size={TMPFS_SIZE},mode=1777")
    for directory in SYSTEM_DIRS:
        if Path(directory).is_dir():
            _bind(Path(directory), root)
    for link in SYSTEM_LINKS:
        path = Path(link)
        if path.is_symlink():
            (root / link.lstrip("/")).symlink_to(os.readlink(path))
        elif path.is_dir():
            _bind(path, root)
    for path in readable:
        _bind(path, root)
    _bind(workdir, root, writable=True)
    for device in DEVICES:
        if Path("/dev", device).exists():
            _bind(Path("/dev", device), root, writable=True)
    (root / "proc").mkdir()
    _mount("proc", root / "proc", "proc", MS_NOSUID | MS_NODEV)
    os.chdir(root)
    _call("syscall", ctypes.c_long(SYS_PIVOT_ROOT[os.uname().machine]), b".", b".")
    _call("umount2", b".", MNT_DETACH)  # the grader's filesystem is gone from view
    os.chdir("/")


def drop_privileges() -> None:
    """No capability survives the kernel's exec: nothing mounted here can be undone."""
    for capability in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def main(arguments: list[str]) -> None:
    global _libc
    _libc = ctypes.CDLL(None, use_errno=True)
    split = arguments.index("--")
    options, argv = arguments[:split], arguments[split + 1:]
    workdir = Path(options[options.index("--work") + 1])
    readable = [Path(options[i + 1]) for i, option in enumerate(options) if option == "--read"]
    root = Path(options[options.index("--root") + 1])
    build_root(workdir, root, readable)
    drop_privileges()
    os.chdir(workdir)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the kernel is interrupted as usual
    os.execv(argv[0], argv)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as error:  # noqa: BLE001 - the grader reads this line from the kernel's stderr
        print(f"panopticlab sandbox: {error}", file=sys.stderr)
        sys.exit(70)
