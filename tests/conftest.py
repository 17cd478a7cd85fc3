"""Shared test helpers."""
import os
import stat

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """Under `pytest -n N` the N workers share the machine's cores: each worker, and every kernel
    or process it starts (they inherit OMP_NUM_THREADS), gets its share of them. Four torch
    threads on two cores spin-wait for one another: a chapter then ran 5x slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, cores // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)

from panopticlab.data import SYNTHETIC_CATEGORIES, PanopticSegmentation  # noqa: E402


def random_panoptic(rng: np.random.Generator, shape=(24, 32), categories=SYNTHETIC_CATEGORIES,
                    num_things=6, crowd_probability=0.2, void_probability=0.05) -> PanopticSegmentation:
    """A random scene: horizontal stuff bands, rectangular things drawn over them, some void."""
    h, w = shape
    id_map = np.zeros(shape, dtype=np.int32)
    category_of, iscrowd = {}, {}
    stuff = rng.permutation(categories.stuff_ids)[: rng.integers(1, 4)]
    cuts = np.sort(rng.choice(np.arange(1, h), size=len(stuff) - 1, replace=False)) if len(stuff) > 1 else []
    for seg_id, (top, bottom, cat) in enumerate(zip([0, *cuts], [*cuts, h], stuff), start=1):
        id_map[top:bottom] = seg_id
        category_of[seg_id] = int(cat)
    next_id = 100
    crowd_categories = set()
    for _ in range(num_things):
        y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
        dy, dx = rng.integers(2, max(3, h // 2)), rng.integers(2, max(3, w // 2))
        id_map[y:y + dy, x:x + dx] = next_id
        category_of[next_id] = int(rng.choice(categories.thing_ids))
        # at most one crowd region per category, as in COCO and Cityscapes
        crowd = rng.random() < crowd_probability and category_of[next_id] not in crowd_categories
        if crowd:
            crowd_categories.add(category_of[next_id])
        iscrowd[next_id] = int(crowd)
        next_id += int(rng.integers(1, 500))
    id_map[rng.random(shape) < void_probability] = 0
    present = set(np.unique(id_map).tolist()) - {0}
    return PanopticSegmentation.from_id_map(id_map, {k: v for k, v in category_of.items() if k in present},
                                            {k: v for k, v in iscrowd.items() if k in present})


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on busy shared cores, torch's thread pool spends most of its time waiting."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)`` takes the write permission of ``folder`` away (given back after the test).

    Permissions do not bind root, which these tests may run as: then ``os.access``, which
    the package asks, is made to answer from the mode bits, as for an unprivileged owner.
    """
    made = []

    def make(folder):
        folder.chmod(0o555)
        made.append(folder)
        return folder

    if hasattr(os, "geteuid") and os.geteuid() == 0:
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and not os.stat(path).st_mode & stat.S_IWUSR:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield make
    for folder in made:
        folder.chmod(0o755)


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """A small COCO-format dataset with COCO-like sparse ids (tests/full_size.py), once per test module."""
    from full_size import write_coco_root

    return write_coco_root(tmp_path_factory.mktemp("coco"))
