"""Data-parallel training with ``torch.distributed``: one process per device.

Launch a script with ``torchrun --nproc_per_node N script.py``; inside, call
:func:`init_distributed` once. It reads the variables torchrun sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), picks the backend
(``nccl`` on CUDA, ``gloo`` on the CPU) and binds each process to its GPU. Without
those variables it returns a single-process context and initialises nothing, so the
same script runs unchanged on a laptop.

The trainer wraps the model in ``DistributedDataParallel`` (:func:`wrap_model`), each
process reads its own shard of the data
(:class:`~panopticlab.engine.sampling.ResumableSampler`), and only rank 0 logs,
shows progress and writes checkpoints (:func:`is_main_process`).

:func:`spawn` starts N local processes with the same variables set, for notebooks and tests.
"""
from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DistributedContext", "init_distributed", "destroy_distributed", "is_distributed", "get_rank",
    "get_world_size", "is_main_process", "barrier", "wrap_model", "unwrap_model", "broadcast_buffers",
    "all_reduce_mean",
    "all_gather_objects", "check_on_main_process", "spawn",
]

#: Seconds a process waits for the others of its group before it gives up (torch's default is 30 minutes).
RENDEZVOUS_SECONDS = 300
RENDEZVOUS_ENV = "PANOPTICLAB_RENDEZVOUS_SECONDS"
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None
    device: torch.device = torch.device("cpu")


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"environment variable {name}={value!r} must be an integer "
                         f"(torchrun sets {', '.join(TORCHRUN_VARIABLES)})") from None


def init_distributed(backend: str | None = None, device: str | torch.device | None = None) -> DistributedContext:
    """Join the process group torchrun describes in the environment, or run alone.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default ``nccl`` when CUDA is available, else ``gloo``.
        device: ``"cpu"`` forces CPU training (with ``gloo``) on a machine with GPUs.

    Returns:
        the :class:`DistributedContext`; ``device`` is ``cuda:LOCAL_RANK`` on GPUs.
    """
    use_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if "WORLD_SIZE" not in os.environ or _env_int("WORLD_SIZE") == 1:
        return DistributedContext(device=torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank, world_size = _env_int("RANK"), _env_int("LOCAL_RANK"), _env_int("WORLD_SIZE")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={world_size} is set but {', '.join(missing)} is not; "
                         f"launch with torchrun, which sets {', '.join(TORCHRUN_VARIABLES)}")
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend == "nccl" and not use_cuda:
        raise ValueError("the nccl backend needs CUDA devices; use backend='gloo' on the CPU")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        seconds = _env_int(RENDEZVOUS_ENV) if RENDEZVOUS_ENV in os.environ else RENDEZVOUS_SECONDS
        try:
            dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                                    timeout=datetime.timedelta(seconds=seconds))
        except (RuntimeError, TimeoutError) as error:  # torch's DistStoreError and DistNetworkError among them
            raise ValueError(
                f"rank {rank} of WORLD_SIZE={world_size} found no group at {os.environ['MASTER_ADDR']}:"
                f"{os.environ['MASTER_PORT']} within {seconds} s ({type(error).__name__}): all {world_size} "
                f"processes must start, e.g. with torchrun --nproc-per-node {world_size}; {RENDEZVOUS_ENV} sets "
                f"the wait") from None
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, backend=backend,
                              device=torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


def destroy_distributed() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and when running alone): the process that logs and writes files."""
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def wrap_model(model: nn.Module, device: torch.device | str, find_unused_parameters: bool = False) -> nn.Module:
    """``DistributedDataParallel(model)`` inside a process group; ``model`` itself otherwise.

    DDP broadcasts rank 0's parameters and buffers on construction, so every process
    starts from the same weights whatever its own initialisation drew.
    """
    if not is_distributed() or isinstance(model, DistributedDataParallel):
        return model
    device = torch.device(device)
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints store and evaluation calls)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def broadcast_buffers(model: nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics), in place.

    DDP copies them from rank 0 at the start of each training forward, so after the
    last step every other process still holds statistics updated by its own last batch;
    this makes all processes evaluate what the checkpoint holds. A no-op when alone.
    """
    if is_distributed():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over the processes (a copy; the input itself when running alone)."""
    if not is_distributed():
        return tensor
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / dist.get_world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` when running alone)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def check_on_main_process(check: Callable[[], Any], errors: tuple[type[BaseException], ...] = (OSError, ValueError)
                          ) -> None:
    """Run ``check()`` on rank 0 (e.g. that a path it will write is writable) and raise its error everywhere.

    Every process raises the error rank 0 met (one of ``errors``), so that none is left
    waiting for rank 0 at a collective. Running alone, this is ``check()``.
    """
    problem = None
    if is_main_process():
        try:
            check()
        except errors as error:
            problem = error
    problem = all_gather_objects(problem)[0]
    if problem is not None:
        raise problem


def free_port() -> int:
    """A TCP port that was free a moment ago, for ``MASTER_PORT`` on this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawned_entry(local_rank: int, world_size: int, port: int, function: Callable, args: tuple) -> None:
    os.environ.update(RANK=str(local_rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        function(*args)
    finally:
        destroy_distributed()


def spawn(function: Callable, world_size: int, *args) -> None:
    """Run ``function(*args)`` in ``world_size`` new local processes, as torchrun would.

    Each process gets torchrun's environment variables, so ``function`` calls
    :func:`init_distributed` exactly as a torchrun script does. ``function`` must be
    importable by name (defined at module level, not in a notebook cell); its return
    value is discarded, so it reports through files. An exception in any process is
    raised here.
    """
    if int(world_size) < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    mp.spawn(_spawned_entry, args=(int(world_size), free_port(), function, args), nprocs=int(world_size), join=True)
