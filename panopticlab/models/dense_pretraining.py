"""The tiny backbone's pretraining: a ResNet-FPN learning dense targets of the built-in dataset.

Full-size models start from ImageNet weights; the tiny models of the book start from a
tiny ResNet-FPN pretrained on the built-in dataset by ``scripts/pretrain_backbone.py``
and shipped as ``panopticlab/checkpoints/tiny-resnet-fpn.pt``. Every tiny model loads
it through :attr:`~.backbones.BackboneConfig.weights`: the FPN models (Mask R-CNN,
Panoptic FPN, UPSNet) body and FPN as they are, the dilated ones (PSPNet,
Panoptic-DeepLab) the body with its last stages dilated.

The pretraining task asks for what both kinds of model need: *what* is at each pixel and
*which object* it belongs to. On the pyramid of :func:`~.backbones.resnet_fpn`, each of
P2-P5 goes through a 3x3 conv + ReLU and is upsampled to stride 4; their sum feeds three
1x1 heads, upsampled 4x to the image:

* semantic logits of every category (cross-entropy, void ignored);
* Panoptic-DeepLab's instance-centre heatmap (MSE, weight 200) and offsets from each
  thing pixel to its centre (L1, weight 0.01), both normalised by their pixel weights,
  from :func:`panopticlab.data.targets.deeplab_targets`.

Interface: images float [B, 3, H, W] in [0, 1]; ``model(images, targets)`` with the
collated ``deeplab`` targets -> ``{"loss_semantic", "loss_center", "loss_offset"}``; in
eval mode -> ``{"semantic" [B, C, H, W], "center" [B, 1, H, W], "offset" [B, 2, H, W]}``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data.categories import VOID_LABEL
from .backbones import BackboneConfig, level_names, resnet_fpn
from .common import ImageBatcher

__all__ = ["DensePretrainingConfig", "DensePretraining"]


@dataclass
class DensePretrainingConfig:
    """The pretrained tiny backbone and its training heads.

    Attributes:
        num_classes: semantic classes (the built-in dataset's 9 categories).
        backbone: the body; the widths every tiny model then uses.
        fpn_channels: channels of the pyramid (the tiny Mask R-CNN's).
        center_weight, offset_weight: loss weights (Panoptic-DeepLab's 200 and 0.01).
    """

    num_classes: int = 9
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig("tiny", widths=(32, 64, 128, 256)))
    fpn_channels: int = 64
    center_weight: float = 200.0
    offset_weight: float = 0.01


class DensePretraining(nn.Module):
    """ResNet-FPN + semantic, centre and offset heads; see the module docstring."""

    def __init__(self, config: DensePretrainingConfig = DensePretrainingConfig()):
        super().__init__()
        self.config = config
        self.transform = ImageBatcher(None)
        self.backbone = resnet_fpn(config.backbone, config.fpn_channels)
        channels = config.fpn_channels
        self.levels = level_names((1, 2, 3, 4))
        self.lateral = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
                                     for _ in self.levels)
        self.semantic = nn.Conv2d(channels, config.num_classes, 1)
        self.center = nn.Conv2d(channels, 1, 1)
        self.offset = nn.Conv2d(channels, 2, 1)
        for head in (self.center, self.offset):  # start at "no centre, no offset": small first losses
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """What the tiny models start from: ``body.*`` and ``fpn.*`` of the backbone."""
        return {key: value.detach().cpu() for key, value in self.backbone.state_dict().items()}

    def _heads(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = self.transform.batch(images)
        features = self.backbone(batch.images.tensors)
        finest = features[self.levels[0]].shape[-2:]
        fused = sum(F.interpolate(conv(features[name]), size=finest, mode="bilinear", align_corners=False)
                    for conv, name in zip(self.lateral, self.levels))
        size = batch.images.tensors.shape[-2:]
        up = {name: F.interpolate(head(fused), size=size, mode="bilinear", align_corners=False)
              for name, head in (("semantic", self.semantic), ("center", self.center), ("offset", self.offset))}
        up["offset"] = up["offset"] * 4  # predicted in units of the stride-4 grid
        h, w = images.shape[-2:]
        return {name: value[..., :h, :w] for name, value in up.items()}

    def forward(self, images: torch.Tensor, targets: dict | None = None):
        outputs = self._heads(images)
        if not self.training:
            return outputs
        if not isinstance(targets, dict) or "deeplab" not in targets:
            raise ValueError("pretraining needs the collated 'deeplab' targets (PanopticDataset(..., "
                             "targets=('deeplab',)))")
        t = {key: value.to(images.device) for key, value in targets["deeplab"].items() if torch.is_tensor(value)}
        semantic = F.cross_entropy(outputs["semantic"], t["semantic"], ignore_index=VOID_LABEL, reduction="none")
        semantic = (semantic * t["semantic_weights"]).sum() / (t["semantic"] != VOID_LABEL).sum().clamp(min=1)
        center = ((outputs["center"] - t["center"]) ** 2)[:, 0] * t["center_weights"]
        offset = (outputs["offset"] - t["offset"]).abs().sum(1) * t["offset_weights"]
        return {"loss_semantic": semantic,
                "loss_center": self.config.center_weight * center.sum() / t["center_weights"].sum().clamp(min=1),
                "loss_offset": self.config.offset_weight * offset.sum() / t["offset_weights"].sum().clamp(min=1)}
