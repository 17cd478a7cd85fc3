"""Panoptic FPN's semantic branch: every pyramid level brought to stride 4 and summed.

For each level P_k (stride s = 2**k) the branch stacks log2(s / 4) stages of

    3 x 3 conv (``channels``) -> GroupNorm(``norm_groups``) -> ReLU -> 2x bilinear upsampling

(P5: 3 stages, P4: 2, P3: 1; P2 gets one conv and no upsampling), so every level
arrives at stride 4 with ``channels`` channels. The four maps are **summed** (not
concatenated: the symmetric, FPN-style decoder of the paper; UPSNet concatenates), a
1 x 1 conv gives the class logits at stride 4, and the model upsamples them 4x to the
image.

Published (Kirillov et al., "Panoptic Feature Pyramid Networks", CVPR 2019; detectron2's
``SemSegFPNHead``): 128 channels, GroupNorm with 32 groups, P2-P5 of a 256-channel FPN,
MSRA (He) initialisation of every conv.

Shapes: ``features`` maps level names to float [B, C, H / s, W / s]; the output is float
[B, num_classes, H / 4, W / 4].
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Mapping, Sequence

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

__all__ = ["SemanticFPNHead", "upsampling_stages"]

COMMON_STRIDE = 4


def upsampling_stages(stride: int, common_stride: int = COMMON_STRIDE) -> int:
    """How many [conv, upsample 2x] stages bring a level of ``stride`` to ``common_stride``
    (0 for the common stride itself, which still gets one conv)."""
    stages = math.log2(stride / common_stride)
    if stages < 0 or stages != int(stages):
        raise ValueError(f"a level of stride {stride} cannot be upsampled by factors of 2 to stride {common_stride}")
    return int(stages)


class SemanticFPNHead(nn.Module):
    """The semantic branch of Panoptic FPN; see the module docstring.

    Args:
        in_channels: channels of every pyramid level (the FPN's width).
        num_classes: output logits (Panoptic FPN: the stuff classes + one "things" class).
        level_strides: level name -> stride, finest first (``{"p2": 4, ..., "p5": 32}``).
        channels: width of every conv of the branch (published 128).
        norm_groups: GroupNorm groups (published 32).

    Attributes:
        scale_heads: level name -> its stack of stages (``nn.Sequential``).
        predictor: the 1 x 1 conv to ``num_classes``.
    """

    def __init__(self, in_channels: int, num_classes: int, level_strides: Mapping[str, int], channels: int = 128,
                 norm_groups: int = 32):
        super().__init__()
        if channels % norm_groups:
            raise ValueError(f"GroupNorm needs channels ({channels}) divisible by norm_groups ({norm_groups})")
        self.level_strides = dict(level_strides)
        self.scale_heads = nn.ModuleDict()
        for name, stride in self.level_strides.items():
            stages = upsampling_stages(stride)
            layers: list[nn.Module] = []
            for index in range(max(1, stages)):
                layers.append(Conv2dNormActivation(in_channels if index == 0 else channels, channels, 3,
                                                   norm_layer=lambda c: nn.GroupNorm(norm_groups, c)))
                if stages:
                    layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.scale_heads[name] = nn.Sequential(*layers)
        self.predictor = nn.Conv2d(channels, num_classes, 1)
        for module in self.modules():  # detectron2's c2_msra_fill
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def level_outputs(self, features: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
        """Each level after its stages: float [B, channels, H / 4, W / 4] per level (for a figure)."""
        missing = [name for name in self.level_strides if name not in features]
        if missing:
            raise ValueError(f"the semantic branch needs the levels {missing}; got {list(features)}")
        outputs = OrderedDict((name, head(features[name])) for name, head in self.scale_heads.items())
        sizes = {tuple(x.shape[-2:]) for x in outputs.values()}
        if len(sizes) != 1:
            raise ValueError(f"the levels reach stride {COMMON_STRIDE} at different sizes {sorted(sizes)}: pad the "
                             f"images to a multiple of the coarsest stride ({max(self.level_strides.values())})")
        return outputs

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits float [B, num_classes, H / 4, W / 4] from the levels ``features``."""
        return self.predictor(sum(self.level_outputs(features).values()))

    @staticmethod
    def strides_of(names: Sequence[str]) -> dict[str, int]:
        """``{"p2": 4, "p3": 8, ...}`` for FPN level names ``p<k>`` (stride 2**k)."""
        return {name: 2 ** int(name.lstrip("p")) for name in names}
