"""Where a full model's training starts: ImageNet weights of its ResNet-50, a file, or nothing.

The published runs fine-tune from ImageNet: detectron2 and torchvision start every
ResNet-50 body from ImageNet classification weights and, for the detectors, keep its
BatchNorms frozen and the stem and first stage fixed (detectron2's FrozenBN and
``FREEZE_AT: 2``; torchvision builds the same only when its backbone is pretrained: a random
start needs trainable norms). Both are the recipe's (:attr:`~panopticlab.recipe.TrainRecipe.start`,
``freeze_norms``, ``freeze_at``): :func:`load_start` before the first step, then
:func:`freeze_bodies`; ``evaluate`` rebuilds a run's model the same way. The start:

* ``"imagenet"``: torchvision's ``ResNet50_Weights.IMAGENET1K_V1``, from torch's cache
  (``torch.hub.get_dir()/checkpoints``), downloaded there when missing; without a network,
  a :class:`StartWeightsError` names the file to fetch and where to put it;
* a file: a ResNet-50 state dict as torchvision saves it (``torch.save(model.state_dict())``,
  the file above included) or a checkpoint holding one under ``"model"``;
* ``None``: random initialisation.

Every ResNet body of the model takes the weights (both of the baseline's networks), found
by its tensor names, so no model needs to say where its body is.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["IMAGENET", "StartWeightsError", "imagenet_state_dict", "read_state_dict", "load_start", "freeze_bodies"]

IMAGENET = "imagenet"
# a tensor every ResNet body has, wherever the model keeps it
_BODY_MARKER = "layer1.0.conv1.weight"
_IGNORED = ("fc.", "num_batches_tracked")  # the classifier; a counter FrozenBatchNorm2d does not keep


class StartWeightsError(ValueError):
    """The start weights cannot be had or do not fit (the message says which file and why)."""


def imagenet_state_dict(progress: bool = True) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet-50 (``ResNet50_Weights.IMAGENET1K_V1``), from the cache or the network."""
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    try:
        return weights.get_state_dict(progress=progress, check_hash=True)
    except (OSError, RuntimeError) as error:  # no network (URLError is an OSError), or a bad download
        raise StartWeightsError(
            f"the ImageNet start of ResNet-50 is not in {cached} and could not be downloaded "
            f"({type(error).__name__}: {error}); fetch {weights.url} to that path, or pass --weights FILE "
            f"(a ResNet-50 state dict), or --weights random") from None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: a plain one (torchvision's form) or a checkpoint's ``"model"``."""
    path = Path(path)
    if not path.is_file():
        raise StartWeightsError(f"--weights {path}: no such file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors have many types
        raise StartWeightsError(f"{path}: not a weights file ({type(error).__name__}: {error})") from None
    state = content.get("model", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StartWeightsError(f"{path}: not a state dict (tensors by name), nor a checkpoint holding one")
    return state


def load_start(model: nn.Module, start: str | os.PathLike | None, progress: bool = True) -> list[str]:
    """Copy the start weights into every ResNet body of ``model``; return the bodies' prefixes.

    Raises:
        StartWeightsError: the weights cannot be had, the model has no ResNet body, or a
            tensor of the weights does not fit (naming the first few).
    """
    if start is None:
        return []
    state = imagenet_state_dict(progress) if str(start) == IMAGENET else read_state_dict(start)
    state = {k: v for k, v in state.items() if not any(part in k for part in _IGNORED)}
    own = model.state_dict()
    prefixes = [prefix + "." if prefix else "" for prefix in body_prefixes(model)]
    if not prefixes:
        raise StartWeightsError(f"{type(model).__name__} has no ResNet body for the start weights {start}")
    for prefix in prefixes:
        missing = [k for k in state if prefix + k not in own]
        mismatched = [k for k in state if prefix + k in own and own[prefix + k].shape != state[k].shape]
        if missing or mismatched:
            raise StartWeightsError(
                f"the start weights {start} do not fit the body {prefix or 'of the model'}: "
                f"not in it {missing[:3]}, other shapes {mismatched[:3]} (a ResNet-50's weights for another body?)")
        with torch.no_grad():
            for key, value in state.items():
                own[prefix + key].copy_(value)
    return [prefix.rstrip(".") for prefix in prefixes]


def body_prefixes(model: nn.Module) -> list[str]:
    """The dotted names of the ResNet bodies in ``model`` (``""`` for a model that is one)."""
    return [key[:-len(_BODY_MARKER)].rstrip(".") for key in model.state_dict() if key.endswith(_BODY_MARKER)]


def freeze_bodies(model: nn.Module, norms: bool, stages: int) -> list[str]:
    """Freeze every ResNet body of ``model`` as the published detectors fine-tune from ImageNet:
    all BatchNorms frozen with their statistics (``norms``; detectron2's FrozenBN) and the first
    ``stages`` modules fixed (detectron2's ``FREEZE_AT``; 2: the stem and ``layer1``).

    Apply it after the start weights are loaded (the frozen norms copy their statistics) and
    before a checkpoint of such a run is (its norms have a frozen norm's tensors).

    Returns:
        the prefixes of the bodies frozen.
    """
    from .backbones import _freeze_batch_norms, freeze_stages

    prefixes = body_prefixes(model)
    for prefix in prefixes:
        body = model.get_submodule(prefix) if prefix else model
        if norms:
            _freeze_batch_norms(body)
        freeze_stages(body, stages)
    return prefixes
