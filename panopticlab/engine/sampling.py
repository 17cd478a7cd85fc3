"""Data order that survives an interruption, and data loaders built on it.

A resumed run must see exactly the batches the uninterrupted run would have seen.
:class:`ResumableSampler` makes the order of an epoch a pure function of
``(seed, epoch)`` (it is torch's ``DistributedSampler``, which already shards the data
across processes) and can start part-way through an epoch; the trainer records the
epoch and how many samples of it were consumed, and restarts the sampler there.

Item randomness (augmentations) must not depend on which worker or which call
produced it: :class:`~panopticlab.data.dataset.PanopticDataset` seeds each item from
``(seed, epoch, index)``, which makes it resumable too.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sized

from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .distributed import get_rank, get_world_size

__all__ = ["ResumableSampler", "ShardSampler", "make_train_loader", "make_eval_loader"]


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can begin an epoch at any position.

    The epoch's order is ``torch.randperm`` seeded with ``seed + epoch`` (or
    ``0..N-1`` without shuffling), padded with repeats to a multiple of ``num_replicas``
    and dealt out round robin: rank ``r`` gets positions ``r, r + R, r + 2R, ...``.

    Args:
        dataset: anything with ``len``.
        num_replicas, rank: default to the current process group (1 and 0 when running alone).
        shuffle: reshuffle each epoch.
        seed: base seed of the order; must be the same on every rank.
        drop_last: drop the tail instead of padding it, so no sample repeats in an epoch.
    """

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        num_replicas = get_world_size() if num_replicas is None else num_replicas
        rank = get_rank() if rank is None else rank
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Begin the next iteration in ``epoch``, skipping this rank's first ``start`` samples."""
        if not 0 <= int(start) <= self.num_samples:
            raise ValueError(f"start {start} is outside the epoch of {self.num_samples} samples on this rank")
        self.set_epoch(int(epoch))
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + R, rank + 2R, ...`` in order, without padding.

    For evaluation: each image is scored exactly once across the processes (a padded
    ``DistributedSampler`` would count the repeated ones twice).
    """

    def __init__(self, dataset: Sized, num_replicas: int | None = None, rank: int | None = None):
        self.size = len(dataset)
        self.num_replicas = get_world_size() if num_replicas is None else int(num_replicas)
        self.rank = get_rank() if rank is None else int(rank)
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank {self.rank} is outside 0..{self.num_replicas - 1}")

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))


def _default_collate() -> Callable:
    from ..data.dataset import collate_panoptic

    return collate_panoptic


def _evaluation_collate() -> Callable:
    # images of several sizes come as a list, for the evaluator to run one by one
    from ..data.dataset import collate_mixed_sizes

    return collate_mixed_sizes


def make_train_loader(dataset: Dataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                      num_workers: int = 0, collate_fn: Callable | None = None, drop_last: bool = True,
                      pin_memory: bool = False) -> DataLoader:
    """A training ``DataLoader`` whose order the trainer can checkpoint and resume.

    ``batch_size`` is per process: the global batch is ``batch_size * world_size``.
    ``collate_fn`` defaults to :func:`~panopticlab.data.dataset.collate_panoptic`;
    ``drop_last`` drops an epoch's incomplete last batch so every step sees a full batch.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    sampler = ResumableSampler(dataset, shuffle=shuffle, seed=seed)
    if drop_last and sampler.num_samples < batch_size:
        raise ValueError(f"an epoch has {sampler.num_samples} samples per process, fewer than one batch of "
                         f"{batch_size}; use a smaller batch or drop_last=False")
    return DataLoader(dataset, batch_size=int(batch_size), sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_fn or _default_collate(), drop_last=drop_last, pin_memory=pin_memory)


def make_eval_loader(dataset: Dataset, batch_size: int = 1, *, num_workers: int = 0,
                     collate_fn: Callable | None = None, pin_memory: bool = False) -> DataLoader:
    """An evaluation ``DataLoader``: every image once, in order, this process's shard only."""
    return DataLoader(dataset, batch_size=int(batch_size), sampler=ShardSampler(dataset), num_workers=num_workers,
                      collate_fn=collate_fn or _evaluation_collate(), pin_memory=pin_memory)
