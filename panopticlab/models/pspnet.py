"""PSPNet, the baseline's semantic model (Zhao et al., "Pyramid Scene Parsing Network", 2017).

A dilated ResNet keeps output stride 8 (``layer3`` and ``layer4`` trade their stride for
dilation). The *pyramid pooling module* averages the last feature map over 1x1, 2x2,
3x3 and 6x6 grids, reduces each pooled map with a 1x1 conv, upsamples them back and
concatenates them with the features, so every pixel sees context at four scales. A 3x3
conv, dropout and a 1x1 classifier give logits at stride 8, upsampled bilinearly to the
input size. During training an *auxiliary* FCN head on ``layer3`` adds a second
cross-entropy with weight 0.4, which helps the deep network train.

Published defaults (mmsegmentation's ``pspnet_r50-d8``, the ``full`` config): 512
channels per pooling branch and after the bottleneck, dropout 0.1, auxiliary head of
256 channels with loss weight 0.4, cross-entropy ignoring label 255. The backbone here is
torchvision's ResNet-50 (7x7 stem) rather than mmsegmentation's ResNet-50-V1c (three 3x3
stem convs). The ``tiny`` config keeps the whole design at a few per cent of the width.

Interface, for images float [B, 3, H, W] in [0, 1] (normalised inside with the
ImageNet mean and std):

* train mode: ``model(images, targets)`` -> ``{"loss_semantic": CE, "loss_aux": 0.4 * CE}``
  (already weighted: their sum is the objective). ``targets``: int64 [B, H, W] train ids
  (:func:`panopticlab.data.targets.semantic_target`, ignore label 255) or the collated
  batch dict holding them under ``"semantic"``.
* eval mode: ``model(images)`` -> ``{"logits": float [B, C, H, W], "semantic": int64
  [B, H, W]}``, the per-pixel dataset category id of the arg-max.
* ``model.inference(images)`` -> B :class:`~.common.PanopticPrediction`: the semantic
  map as a panoptic result, things from its connected regions (the "semantic only"
  ablation of chapter 3), the semantic map kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from ..data.categories import VOID_LABEL, CategorySet
from ..postprocess.ablations import ablation_merge
from ..postprocess.heuristic import MergeConfig
from ..recipe import OptimConfig, PublishedSchedule
from .backbones import BackboneConfig, dilated_features, dilation_for_stride, make_norm_layer, stage_channels, \
    tiny_backbone
from .common import ImageBatcher, PanopticModel, PanopticPrediction, config_for_size, semantic_targets

__all__ = ["PUBLISHED_SCHEDULES", "PSPNetConfig", "PyramidPooling", "PSPHead", "FCNHead", "PSPNet", "for_categories"]


# mmsegmentation's 80k schedule (configs/_base_/schedules/schedule_80k.py): SGD 0.01, momentum
# 0.9, weight decay 5e-4, poly decay (power 0.9) to 1e-4, no warmup
_MMSEG_80K = OptimConfig(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="poly", poly_power=0.9)
_MMSEG_DIFFERENCES = ("the poly decay ends at 0 (mmsegmentation: 1e-4); no photometric distortion and no "
                      "cat_max_ratio re-drawing of crops; BatchNorm per process (SyncBN there)")
PUBLISHED_SCHEDULES = {
    "cityscapes": PublishedSchedule(
        "cityscapes", 8, 80_000, _MMSEG_80K, crop_size=(512, 1024), test_size=1024, augment_scale=(0.5, 2.0),
        inputs="images rescaled 0.5-2.0 (of 2048 x 1024), 512 x 1024 crops, flip; tested at 2048 x 1024",
        source="open-mmlab/mmsegmentation configs/pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py "
               "(4 GPUs x 2 images) with _base_/datasets/cityscapes.py and _base_/schedules/schedule_80k.py",
        differences=_MMSEG_DIFFERENCES),
    # COCO: the nearest published PSPNet run is on COCO-Stuff 164k (the same images, 171 classes)
    "coco": PublishedSchedule(
        "coco", 16, 80_000, _MMSEG_80K, crop_size=(512, 512), test_size=512, short_sides=(512,),
        augment_scale=(0.5, 2.0),
        inputs="short side 512 x 0.5-2.0 (RandomResize scale (2048, 512), ratio_range (0.5, 2.0)), 512 x 512 "
               "crops, flip; tested at short side 512",
        source="open-mmlab/mmsegmentation configs/pspnet/pspnet_r50-d8_4xb4-80k_coco-stuff164k-512x512.py "
               "(4 GPUs x 4 images) with _base_/datasets/coco-stuff164k.py and _base_/schedules/schedule_80k.py",
        differences="trained on COCO panoptic's 133 classes with mmsegmentation's COCO-Stuff 164k schedule; "
                    + _MMSEG_DIFFERENCES),
}


@dataclass
class PSPNetConfig:
    """Every choice of the semantic model; defaults are the published (``full``) ones.

    Attributes:
        num_classes: output channels (categories of the dataset, in train-id order).
        backbone: the dilated body (``layer3`` and ``layer4`` use dilation: output stride 8).
        bins: grid sizes of the pyramid pooling branches.
        pool_channels: channels of each pooling branch after its 1x1 conv.
        head_channels: channels of the 3x3 bottleneck conv before the classifier.
        aux_channels: channels of the auxiliary head's 3x3 conv; 0 disables the head.
        aux_weight: weight of the auxiliary loss.
        dropout: dropout before both classifiers.
        ignore_index: target label without loss (void).
    """

    num_classes: int = 19
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig("resnet50", norm="batch"))
    bins: tuple[int, ...] = (1, 2, 3, 6)
    pool_channels: int = 512
    head_channels: int = 512
    aux_channels: int = 256
    aux_weight: float = 0.4
    dropout: float = 0.1
    ignore_index: int = VOID_LABEL

    @classmethod
    def full(cls, num_classes: int, **overrides) -> "PSPNetConfig":
        """PSPNet R50-D8 (mmsegmentation ``pspnet_r50-d8``), randomly initialised."""
        return replace(cls(num_classes=num_classes), **overrides)

    @classmethod
    def tiny(cls, num_classes: int, **overrides) -> "PSPNetConfig":
        """A narrow PSPNet that trains on ~128 px images on a CPU in minutes."""
        # the shared tiny body, pretrained (tiny_backbone(pretrained=False) trains from scratch),
        # with the pyramid pooling and heads at a few per cent of the published widths
        config = cls(num_classes=num_classes, backbone=tiny_backbone(), pool_channels=32, head_channels=64,
                     aux_channels=32)
        return replace(config, **overrides)


class PyramidPooling(nn.Module):
    """The pyramid pooling module.

    [B, C, h, w] -> [B, C + len(bins) * channels, h, w]: the input concatenated with, for
    each bin size b, an adaptive average pool to b x b, a 1x1 conv + norm + ReLU and a
    bilinear upsampling back to h x w.
    """

    def __init__(self, in_channels: int, channels: int, bins: Sequence[int], norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b),
                          Conv2dNormActivation(in_channels, channels, 1, norm_layer=norm_layer))
            for b in bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(branch(x), size=size, mode="bilinear", align_corners=False) for branch in self.branches]
        return torch.cat([x, *pooled], dim=1)


class PSPHead(nn.Sequential):
    """Pyramid pooling, 3x3 conv + norm + ReLU, dropout, 1x1 classifier: [B, C, h, w] -> [B, K, h, w]."""

    def __init__(self, in_channels: int, num_classes: int, bins: Sequence[int], pool_channels: int,
                 head_channels: int, dropout: float, norm_layer=nn.BatchNorm2d):
        super().__init__(
            PyramidPooling(in_channels, pool_channels, bins, norm_layer),
            Conv2dNormActivation(in_channels + len(bins) * pool_channels, head_channels, 3, norm_layer=norm_layer),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_channels, num_classes, 1),
        )


class FCNHead(nn.Sequential):
    """The auxiliary head: 3x3 conv + norm + ReLU, dropout, 1x1 classifier.

    torchvision's ``FCNHead`` fixes BatchNorm and a width of ``in_channels // 4``; this one
    takes both as arguments.
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int, dropout: float, norm_layer=nn.BatchNorm2d):
        super().__init__(
            Conv2dNormActivation(in_channels, channels, 3, norm_layer=norm_layer),
            nn.Dropout2d(dropout),
            nn.Conv2d(channels, num_classes, 1),
        )


class PSPNet(PanopticModel):
    """PSPNet with an auxiliary head; see the module docstring for the interface.

    Args:
        config: the architecture.
        categories: the dataset's categories, one output channel each (train-id order): the
            eval output ``semantic`` holds their ids (``categories.ids``).
        merge: the merge settings of :meth:`inference`.
    """

    def __init__(self, config: PSPNetConfig, categories: CategorySet, merge: MergeConfig = MergeConfig()):
        super().__init__()
        if config.num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {config.num_classes}")
        if 0 <= config.ignore_index < config.num_classes:
            raise ValueError(f"ignore_index={config.ignore_index} collides with a class (0..{config.num_classes - 1})")
        if len(categories) != config.num_classes:
            raise ValueError(f"{len(categories)} category ids for num_classes={config.num_classes}")
        self.config = config
        self.categories = categories
        self.merge_config = merge
        # stride-8 features: pad to a multiple of 8 so the upsampled logits align with the pixels
        self.transform = ImageBatcher(None, size_divisible=8)
        body = config.backbone.build(replace_stride_with_dilation=dilation_for_stride(8))
        channels = stage_channels(body)
        norm_layer = make_norm_layer(config.backbone.norm)
        self.backbone = dilated_features(body, {"layer3": "aux", "layer4": "out"})
        self.head = PSPHead(channels[3], config.num_classes, config.bins, config.pool_channels,
                            config.head_channels, config.dropout, norm_layer)
        self.aux_head = (FCNHead(channels[2], config.aux_channels, config.num_classes, config.dropout, norm_layer)
                         if config.aux_channels > 0 else None)
        self.register_buffer("train_id_to_category", torch.tensor(categories.ids).long(), persistent=False)

    def forward(self, images: torch.Tensor, targets: torch.Tensor | dict | None = None):
        """See the module docstring."""
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"PSPNet takes one [B, 3, H, W] batch of images of one size, got a "
                             f"{type(images).__name__} (train it on crops, not on whole images of mixed sizes)")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
        semantic = semantic_targets(targets, images) if self.training else None
        batch = self.transform.batch(images, semantic=semantic)
        features = self.backbone(batch.images.tensors)
        padded = batch.images.tensors.shape[-2:]
        logits = F.interpolate(self.head(features["out"]), size=padded, mode="bilinear", align_corners=False)
        if not self.training:
            logits = torch.stack(self.transform.to_input_size(logits, batch))  # images of one size
            return {"logits": logits, "semantic": self.train_id_to_category[logits.argmax(dim=1)]}

        losses = {"loss_semantic": F.cross_entropy(logits, batch.semantic, ignore_index=self.config.ignore_index)}
        if self.aux_head is not None:
            aux = F.interpolate(self.aux_head(features["aux"]), size=padded, mode="bilinear", align_corners=False)
            losses["loss_aux"] = self.config.aux_weight * F.cross_entropy(aux, batch.semantic,
                                                                          ignore_index=self.config.ignore_index)
        return losses

    def postprocess(self, outputs: dict) -> list[PanopticPrediction]:
        """The eval-mode semantic maps as panoptic results (no network runs here)."""
        predictions = []
        for semantic in outputs["semantic"].cpu().numpy():
            merged = ablation_merge("semantic_only", semantic, None, self.categories, self.merge_config)
            predictions.append(PanopticPrediction(merged.panoptic, semantic=semantic, merge=merged))
        return predictions


def for_categories(categories: CategorySet, size: str = "tiny", dataset: str | None = None, **overrides) -> PSPNet:
    """A ``tiny`` or ``full`` PSPNet with one output per category of ``categories`` (train-id order).
    ``dataset`` changes nothing: the architecture is one for every dataset (the crop size and
    schedule are the recipe's), and the network takes images at their size."""
    config = config_for_size(size, PSPNetConfig.tiny, PSPNetConfig.full, len(categories), **overrides)
    return PSPNet(config, categories, merge=MergeConfig.for_size(size))
