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
* :mod:`.upsnet_head` - UPSNet's parameter-free panoptic head: its logits from the semantic and mask heads;
* :mod:`.dense_pretraining` - how the shipped tiny backbone was pretrained;
* :mod:`.set_matching` - the one-to-one matching of predicted and true segments and the set loss;
* :mod:`.pspnet`, :mod:`.mask_rcnn`, :mod:`.heuristic_baseline`, :mod:`.panoptic_fpn`, :mod:`.upsnet`,
  :mod:`.panoptic_deeplab`, :mod:`.mask_former` - the models;
* :mod:`.zoo` - the model table: names, builders, targets, recipes, shipped weights.

Names load when first used: ``import panopticlab.models`` loads none of the models, and
loading them all (``from panopticlab.models import zoo``) loads torch and torchvision,
not the engine, the metrics or the synthetic data.
"""
from .._lazy import lazy_names

_EXPORTS = {
    ".backbones": ("BackboneConfig", "TinyResNet", "dilated_backbone", "dilated_features", "fpn_backbone",
                   "make_norm_layer", "resnet_fpn", "tiny_backbone"),
    ".common": ("ImageBatcher", "PanopticPrediction"),
    ".detection": ("DetectionConfig",),
    ".heuristic_baseline": ("HeuristicBaseline",),
    ".mask_former": ("MaskFormer", "MaskFormerConfig"),
    ".mask_rcnn": ("MaskRCNN", "MaskRCNNConfig"),
    ".panoptic_deeplab": ("PanopticDeepLab", "PanopticDeepLabConfig"),
    ".panoptic_fpn": ("PanopticFPN", "PanopticFPNConfig"),
    ".pspnet": ("PSPNet", "PSPNetConfig"),
    ".upsnet": ("UPSNet", "UPSNetConfig"),
    ".upsnet_head": ("unified_panoptic",),
    ".zoo": ("MODEL_NAMES", "MODELS", "ModelSpec", "build_model"),
}
__all__ = [
    "backbones", "common", "dense_pretraining", "detection", "pspnet", "mask_rcnn", "heuristic_baseline",
    "panoptic_fpn", "panoptic_deeplab", "roi_align", "semantic_fpn", "deformable", "upsnet", "upsnet_head", "zoo",
    "mask_former", "set_matching",
    *(name for names in _EXPORTS.values() for name in names),
]
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
