"""Models: backbones, the baseline's semantic (PSPNet) and instance (Mask R-CNN) networks, and the baseline.

Every model is an ``nn.Module`` taking images float [B, 3, H, W] in [0, 1] (normalised
inside): in train mode ``model(images, targets)`` returns a dict of named scalar losses
whose sum is the objective; in eval mode ``model(images)`` returns its predictions.
Each has a ``tiny`` configuration (CPU, minutes, the built-in dataset) and a ``full``
one (the published architecture), as plain dataclasses; no weights are downloaded.
"""
from . import backbones, baseline, instance, semantic
from .backbones import BackboneConfig, TinyResNet, dilated_features, fpn_backbone, make_norm_layer
from .baseline import BaselinePrediction, HeuristicBaseline
from .instance import MaskRCNN, MaskRCNNConfig
from .semantic import PSPNet, PSPNetConfig

__all__ = [
    "backbones",
    "semantic",
    "instance",
    "baseline",
    "BackboneConfig",
    "TinyResNet",
    "dilated_features",
    "fpn_backbone",
    "make_norm_layer",
    "PSPNet",
    "PSPNetConfig",
    "MaskRCNN",
    "MaskRCNNConfig",
    "HeuristicBaseline",
    "BaselinePrediction",
]
