"""Run profiles: one switch that scales every chapter.

``PANOPTICLAB_PROFILE`` selects one of

* ``ci`` - seconds per cell; what the notebook tests run;
* ``laptop`` (default) - minutes on a CPU, results worth looking at;
* ``gpu`` - longer schedules and larger images, on CUDA.

Chapters read sizes through :func:`get_profile` and :meth:`Profile.pick` only, never
through constants of their own, so the same notebook serves all three.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ENV_VAR = "PANOPTICLAB_PROFILE"
WORK_DIR_VAR = "PANOPTICLAB_WORK_DIR"
DEFAULT = "laptop"
T = TypeVar("T")


class ProfileError(RuntimeError):
    """An unknown profile, or the ``gpu`` profile on a machine without CUDA."""


@dataclass(frozen=True)
class Profile:
    """Sizes that scale with the profile.

    Attributes:
        name: ``ci``, ``laptop`` or ``gpu``.
        device: torch device string the chapter trains on.
        image_size: side of the built-in dataset's square images.
        num_train: training images of the built-in dataset.
        num_val: validation images.
        batch_size: training batch size.
        seed: the seed every chapter starts from (:func:`seed_everything`).
    """

    name: str
    device: str
    image_size: int
    num_train: int
    num_val: int
    batch_size: int
    seed: int = 0

    def pick(self, *, ci: T, laptop: T, gpu: T | None = None) -> T:
        """The value for this profile (``gpu`` defaults to the ``laptop`` value)."""
        return {"ci": ci, "laptop": laptop, "gpu": laptop if gpu is None else gpu}[self.name]

    @property
    def is_ci(self) -> bool:
        return self.name == "ci"


_PROFILES = {
    "ci": dict(image_size=64, num_train=16, num_val=8, batch_size=4),
    "laptop": dict(image_size=128, num_train=400, num_val=50, batch_size=8),
    "gpu": dict(image_size=256, num_train=4000, num_val=500, batch_size=16),
}
PROFILE_NAMES = tuple(_PROFILES)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def get_profile(name: str | None = None) -> Profile:
    """The profile named by ``name`` or by ``$PANOPTICLAB_PROFILE`` (default ``laptop``).

    Raises:
        ProfileError: the name is unknown, or ``gpu`` is asked for without a CUDA device.
    """
    source = "given" if name else (f"from {ENV_VAR}" if os.environ.get(ENV_VAR) else "the default")
    name = (name or os.environ.get(ENV_VAR) or DEFAULT).strip().lower()
    if name not in _PROFILES:
        raise ProfileError(f"unknown profile {name!r} ({source}); choose one of {', '.join(PROFILE_NAMES)}")
    device = "cpu"
    if name == "gpu":
        if not cuda_available():
            raise ProfileError(f"the 'gpu' profile needs a CUDA device, but torch sees none on this machine; "
                               f"set {ENV_VAR}=laptop (or ci) to run on the CPU")
        device = "cuda"
    return Profile(name=name, device=device, **_PROFILES[name])


def work_dir(name: str) -> Path:
    """The folder where a chapter writes files (datasets on disk, predictions): ``name`` inside
    ``$PANOPTICLAB_WORK_DIR``, or inside ``panopticlab/`` of the user's cache folder
    (``$XDG_CACHE_HOME``, default ``~/.cache``) - never beside the chapters' sources, so
    running a chapter leaves the book folder as it was. Created if missing.

    ``panopticlab book run`` points ``$PANOPTICLAB_WORK_DIR`` at its output folder.
    """
    base = os.environ.get(WORK_DIR_VAR)
    if not base:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "panopticlab"
    folder = Path(base).expanduser() / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a chapter repeats its numbers."""
    import numpy as np  # here, not at the top: `import panopticlab` (and the command line) stays light
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
