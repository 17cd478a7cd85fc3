"""The models of the book by name: ``build_model("maskrcnn-tiny", categories)``.

A name is ``<family>-<size>``: the family is ``pspnet`` (the semantic network),
``maskrcnn`` (the instance network) or ``baseline`` (both, merged by the heuristic);
the size is ``tiny`` (CPU, minutes, the built-in dataset) or ``full`` (the published
architecture, randomly initialised). :data:`BUILDERS` is a plain dict from name to a
function ``categories -> nn.Module``; there is no registry to decorate.

Only the baseline is a panoptic model on its own. For measuring what one network
achieves alone, :class:`SemanticOnly` and :class:`InstanceOnly` turn the semantic or the
instance network into a panoptic model with the ablations of chapter 3 (things from
connected regions of the semantic map; instances without any stuff).
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data.categories import CategorySet
from ..data.panoptic import PanopticSegmentation
from ..postprocess.ablations import connected_component_instances
from ..postprocess.heuristic import OVERLAP_THRESHOLD, SCORE_THRESHOLD, STUFF_AREA_LIMIT, heuristic_merge, \
    scaled_stuff_area
from . import instance, semantic
from .baseline import HeuristicBaseline
from .instance import MaskRCNN
from .semantic import PSPNet

__all__ = ["BUILDERS", "MODEL_NAMES", "COMPONENTS", "build_model", "check_name", "family", "SemanticOnly",
           "InstanceOnly", "as_panoptic_model"]

BUILDERS: dict[str, Callable[[CategorySet], nn.Module]] = {
    "pspnet-tiny": partial(semantic.for_categories, size="tiny"),
    "pspnet-full": partial(semantic.for_categories, size="full"),
    "maskrcnn-tiny": partial(instance.for_categories, size="tiny"),
    "maskrcnn-full": partial(instance.for_categories, size="full"),
    "baseline-tiny": partial(HeuristicBaseline.for_categories, size="tiny"),
    "baseline-full": partial(HeuristicBaseline.for_categories, size="full"),
}
MODEL_NAMES: tuple[str, ...] = tuple(BUILDERS)

# The baseline is two networks trained separately, as in the paper: (semantic, instance).
COMPONENTS: dict[str, tuple[str, str]] = {
    "baseline-tiny": ("pspnet-tiny", "maskrcnn-tiny"),
    "baseline-full": ("pspnet-full", "maskrcnn-full"),
}


def check_name(name: str) -> str:
    """``name`` if it is one of :data:`MODEL_NAMES`; otherwise a ValueError listing them."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return name


def family(name: str) -> str:
    """``"pspnet"``, ``"maskrcnn"`` or ``"baseline"``: the part of a model name before the size."""
    return check_name(name).rsplit("-", 1)[0]


def build_model(name: str, categories: CategorySet) -> nn.Module:
    """A randomly initialised model of :data:`MODEL_NAMES` with outputs for ``categories``.

    ``pspnet-*``: one output per category (train-id order); ``maskrcnn-*``: labels
    1..K for ``categories.thing_ids``; ``baseline-*``: both, merged with the published
    thresholds.

    Raises:
        ValueError: ``name`` is not one of :data:`MODEL_NAMES` (the message lists them).
    """
    return BUILDERS[check_name(name)](categories)


def _merge_options(score_threshold: float, overlap_threshold: float, stuff_area_limit: float | None,
                   mask_threshold: float) -> dict:
    return dict(score_threshold=score_threshold, overlap_threshold=overlap_threshold,
                stuff_area_limit=stuff_area_limit, mask_threshold=mask_threshold)


def _stuff_limit(limit: float | None, shape: tuple[int, int]) -> float:
    # None: the published 4096 px scaled to the image's area, as HeuristicBaseline does
    return scaled_stuff_area(STUFF_AREA_LIMIT, shape[0] * shape[1]) if limit is None else limit


class SemanticOnly(nn.Module):
    """The semantic network alone as a panoptic model: the "semantic only" ablation.

    Each 4-connected region of a thing category becomes one instance
    (:func:`~panopticlab.postprocess.ablations.connected_component_instances`), so
    touching objects of one class merge; stuff comes from the semantic map through the
    same heuristic merge as the baseline. Eval mode only: ``model(images [B, 3, H, W])``
    -> B :class:`PanopticSegmentation`.
    """

    def __init__(self, semantic_model: PSPNet, categories: CategorySet, *, score_threshold: float = SCORE_THRESHOLD,
                 overlap_threshold: float = OVERLAP_THRESHOLD, stuff_area_limit: float | None = None,
                 mask_threshold: float = 0.5):
        super().__init__()
        self.semantic_model = semantic_model
        self.categories = categories
        self.merge_options = _merge_options(score_threshold, overlap_threshold, stuff_area_limit, mask_threshold)

    def merge(self, semantic_map: np.ndarray) -> PanopticSegmentation:
        """One image's (H, W) category-id map -> its panoptic segmentation."""
        masks, scores, category_ids = connected_component_instances(semantic_map, self.categories)
        options = dict(self.merge_options, stuff_area_limit=_stuff_limit(self.merge_options["stuff_area_limit"],
                                                                         semantic_map.shape))
        return heuristic_merge(semantic_map, masks, scores, category_ids, self.categories, **options).panoptic

    def forward(self, images: torch.Tensor) -> list[PanopticSegmentation]:
        if self.training:
            raise ValueError("SemanticOnly is for evaluation; train the semantic network itself")
        semantic_maps = self.semantic_model(images)["semantic"].cpu().numpy()
        return [self.merge(s) for s in semantic_maps]


class InstanceOnly(nn.Module):
    """The instance network alone as a panoptic model: the "instance only" ablation.

    The heuristic merge without a semantic map: detections become thing segments and
    every other pixel is void. Eval mode only: ``model(images [B, 3, H, W])`` -> B
    :class:`PanopticSegmentation`.
    """

    def __init__(self, instance_model: MaskRCNN, categories: CategorySet, *, score_threshold: float = SCORE_THRESHOLD,
                 overlap_threshold: float = OVERLAP_THRESHOLD, stuff_area_limit: float | None = None,
                 mask_threshold: float = 0.5):
        super().__init__()
        self.instance_model = instance_model
        self.categories = categories
        self.merge_options = _merge_options(score_threshold, overlap_threshold, stuff_area_limit, mask_threshold)

    def merge(self, detections: dict) -> PanopticSegmentation:
        """One image's detections (torchvision's dict with ``category_ids``) -> its panoptic segmentation."""
        options = dict(self.merge_options, stuff_area_limit=0.0)  # no stuff to filter
        return heuristic_merge(None, detections["masks"].float().numpy(), detections["scores"].float().numpy(),
                               detections["category_ids"].numpy(), self.categories, **options).panoptic

    def forward(self, images: torch.Tensor) -> list[PanopticSegmentation]:
        if self.training:
            raise ValueError("InstanceOnly is for evaluation; train the instance network itself")
        detections = self.instance_model(images)
        return [self.merge({key: value.cpu() for key, value in d.items()}) for d in detections]


def as_panoptic_model(model: nn.Module, categories: CategorySet, **merge_options) -> nn.Module:
    """A model whose eval output is panoptic: the baseline as it is, one network through its ablation.

    Args:
        model: a :class:`HeuristicBaseline`, :class:`PSPNet` or :class:`MaskRCNN`.
        categories: the dataset's categories.
        **merge_options: ``score_threshold``, ``overlap_threshold``, ``stuff_area_limit``,
            ``mask_threshold`` for the ablation wrappers (a baseline keeps its own).
    """
    if isinstance(model, HeuristicBaseline):
        return model
    if isinstance(model, PSPNet):
        return SemanticOnly(model, categories, **merge_options)
    if isinstance(model, MaskRCNN):
        return InstanceOnly(model, categories, **merge_options)
    raise ValueError(f"no panoptic output for a {type(model).__name__}; expected HeuristicBaseline, PSPNet or "
                     f"MaskRCNN")
