"""Shared set-up of the single-core benchmarks: import this before numpy or torch.

Importing it limits the BLAS / OpenMP thread pools to one thread (they read these
variables once, when they load); :func:`pin_to_one_core` then pins the process, and
:func:`best_seconds` times a function the way every benchmark here does.
"""
import os
import time
from typing import Callable

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"


def pin_to_one_core() -> str:
    """Pin this process to one CPU where the system allows it; says what it did."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity on this system)"


def best_seconds(function: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls of ``function``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)
