"""Models: shared parts, one file per model, and the model table.

Every model is an ``nn.Module`` taking images float [B, 3, H, W] in [0, 1] (normalised
inside by :class:`~.common.ImageBatcher`): in train mode ``model(images, targets)``
returns a dict of named scalar losses whose sum is the objective; ``model.inference(images)``
returns one :class:`~.common.PanopticPrediction` per image (the panoptic result and the
raw outputs it came from). Each has a ``tiny`` configuration (CPU, minutes, the built-in
dataset) and a ``full`` one (the published architecture), as plain dataclasses; no
weights are downloaded.

* :mod:`.common` - batching (normalise, resize, pad; sizes kept), the prediction record;
* :mod:`.backbones` - TinyResNet, ResNet-50, dilated features at any stride, ResNet-FPN;
* :mod:`.detection` - the RPN and RoI heads from torchvision's parts, mask logits of boxes;
* :mod:`.roi_align` - RoIAlign as bilinear sampling (torchvision's numbers, a faster CPU backward);
* :mod:`.semantic_fpn` - Panoptic FPN's semantic branch (every level to stride 4, summed);
* :mod:`.deformable` - deformable convolutions and UPSNet's semantic head (levels concatenated);
* :mod:`.dense_pretraining` - how the shipped tiny backbone was pretrained;
* :mod:`.pspnet`, :mod:`.mask_rcnn`, :mod:`.heuristic_baseline`, :mod:`.panoptic_fpn`, :mod:`.upsnet`,
  :mod:`.panoptic_deeplab` - the models;
* :mod:`.zoo` - the model table: names, builders, targets, recipes, shipped weights.
"""
from . import backbones, common, deformable, dense_pretraining, detection, heuristic_baseline, mask_rcnn, \
    panoptic_deeplab, panoptic_fpn, pspnet, roi_align, semantic_fpn, upsnet, zoo
from .backbones import BackboneConfig, TinyResNet, dilated_backbone, dilated_features, fpn_backbone, make_norm_layer, \
    resnet_fpn, tiny_backbone
from .common import ImageBatcher, PanopticPrediction
from .detection import DetectionConfig
from .heuristic_baseline import HeuristicBaseline
from .mask_rcnn import MaskRCNN, MaskRCNNConfig
from .panoptic_deeplab import PanopticDeepLab, PanopticDeepLabConfig
from .panoptic_fpn import PanopticFPN, PanopticFPNConfig
from .pspnet import PSPNet, PSPNetConfig
from .upsnet import UPSNet, UPSNetConfig
from .zoo import MODEL_NAMES, MODELS, ModelSpec, build_model

__all__ = [
    "backbones", "common", "dense_pretraining", "detection", "pspnet", "mask_rcnn", "heuristic_baseline",
    "panoptic_fpn", "panoptic_deeplab", "roi_align", "semantic_fpn", "deformable", "upsnet", "zoo",
    "BackboneConfig", "TinyResNet", "tiny_backbone", "dilated_backbone", "dilated_features", "fpn_backbone", "resnet_fpn",
    "make_norm_layer", "ImageBatcher", "PanopticPrediction", "DetectionConfig",
    "PSPNet", "PSPNetConfig", "MaskRCNN", "MaskRCNNConfig", "HeuristicBaseline", "PanopticFPN", "PanopticFPNConfig",
    "UPSNet", "UPSNetConfig", "PanopticDeepLab", "PanopticDeepLabConfig",
    "MODELS", "MODEL_NAMES", "ModelSpec", "build_model",
]
