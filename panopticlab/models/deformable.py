"""UPSNet's semantic head: one shared stack of deformable convolutions on every pyramid level.

A deformable convolution (Dai et al., ICCV 2017; DCNv1) samples its 3 x 3 inputs not on
the regular grid but at the grid plus a learned offset per tap and per pixel. The offsets
(2 x 9 channels: dy, dx for each tap) come from an ordinary 3 x 3 conv on the same input,
**initialised to zero**, so the layer starts as a plain conv and learns where to look.
:class:`DeformableConv2d` is that pair; :func:`grid_deform_conv2d` computes the same
numbers as ``torchvision.ops.deform_conv2d`` (the default) as one bilinear sampling of
all nine taps and one matrix product, about ten times faster forward and backward on a
CPU (3 x 3, 64 channels at 32 x 32, batch 4, two threads: 0.05 s instead of 0.5 s); the
head's ``grid_sampling`` switch also pools its RoIs with
:func:`~.roi_align.grid_roi_align` (torchvision's RoIAlign numbers, a faster backward).

:class:`DeformableSemanticHead` (UPSNet's ``FCNHead``):

    P_k [B, C, H/s, W/s] -> the same deformable sub-network for every level
        (``num_layers`` x [deformable 3 x 3 conv -> ReLU], no normalisation)
        -> [B, channels, H/s, W/s] -> bilinear upsampling to stride 4
    concatenate the four levels -> [B, 4 x channels, H/4, W/4]
    1 x 1 conv -> [B, num_classes, H/4, W/4]  (all classes: stuff first, then things)

The sub-network's weights are shared by the levels (one module applied four times);
its widths follow the published code: layers keep the input width until the
second-to-last, which narrows to ``channels``, and the last keeps ``channels``
(COCO, 3 layers: 256 -> 256, 256 -> 128, 128 -> 128; Cityscapes, 2 layers: 256 -> 128,
128 -> 128). Concatenation, not Panoptic FPN's sum (:mod:`.semantic_fpn`), keeps each
level's channels apart for the classifier.

Published (Xiong et al., "UPSNet", CVPR 2019; uber-research/UPSNet ``fcn.py``): 128
channels, 3 layers on COCO and 2 on Cityscapes, P2-P5 of a 256-channel FPN; the
deformable weights He-normal (fan-in) with zero bias, the offset convs zero, the
classifier normal with std 0.01 and zero bias. :meth:`~DeformableSemanticHead.roi_logits`
serves the semantic RoI loss: RoIAlign of the concatenated feature (stride 4) inside
boxes, then the same 1 x 1 classifier.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import DeformConv2d, roi_align

from .roi_align import grid_roi_align
from .semantic_fpn import COMMON_STRIDE

__all__ = ["DeformableConv2d", "DeformableSemanticHead", "grid_deform_conv2d", "layer_widths"]


def grid_deform_conv2d(x: Tensor, offset: Tensor, weight: Tensor, bias: Tensor | None = None, padding: int = 1,
                       dilation: int = 1) -> Tensor:
    """``torchvision.ops.deform_conv2d`` (stride 1, one offset group, no mask) as bilinear sampling.

    Tap ``k = (i, j)`` of output pixel ``(y, x)`` reads the input at
    ``(y - padding + i * dilation + dy_k, x - padding + j * dilation + dx_k)``, bilinearly
    interpolated with zeros outside the image: one ``F.grid_sample`` for all taps
    (``align_corners=True`` puts pixel centres at integer coordinates) gives the column
    matrix, multiplied by the weights.

    Args:
        x: float [B, C, H, W].
        offset: float [B, 2 * kh * kw, H, W], ``(dy, dx)`` per tap, taps in row-major order
            (torchvision's layout).
        weight: float [O, C, kh, kw].
        bias: float [O] or ``None``.

    Returns:
        float [B, O, H, W] (the output keeps the input size: ``padding = dilation * (k - 1) / 2``).
    """
    b, c, h, w = x.shape
    out_channels, in_channels, kh, kw = weight.shape
    if in_channels != c or offset.shape != (b, 2 * kh * kw, h, w):
        raise ValueError(f"input {tuple(x.shape)}, offsets {tuple(offset.shape)} and weights {tuple(weight.shape)} "
                         f"do not fit (offsets must be [B, 2 * kh * kw, H, W])")
    if 2 * padding != dilation * (kh - 1) or 2 * padding != dilation * (kw - 1):
        raise ValueError(f"grid_deform_conv2d keeps the size: padding must be dilation * (k - 1) / 2, got "
                         f"padding={padding}, dilation={dilation}, kernel {kh} x {kw}")
    taps = torch.arange(kh * kw, device=x.device)
    tap_y = ((taps // kw) * dilation - padding).to(x.dtype).view(1, -1, 1, 1)
    tap_x = ((taps % kw) * dilation - padding).to(x.dtype).view(1, -1, 1, 1)
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, 1, w)
    offset = offset.view(b, kh * kw, 2, h, w)
    sy, sx = 2.0 / max(h - 1, 1), 2.0 / max(w - 1, 1)  # pixel -> [-1, 1] (a side of 1 px: any factor)
    y = (rows + tap_y + offset[:, :, 0]) * sy - 1  # [B, taps, H, W]
    xx = (cols + tap_x + offset[:, :, 1]) * sx - 1
    # all taps in one sampling: the taps stacked along the rows of one [B, taps x H, W] grid
    grid = torch.stack((xx, y), dim=-1).view(b, kh * kw * h, w, 2)  # (x, y) order
    columns = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # [B, C, taps x H, W]
    # channel-major columns [B, C x taps, H x W] meet the weights in their own layout: no copy
    out = torch.matmul(weight.reshape(out_channels, in_channels * kh * kw), columns.view(b, c * kh * kw, h * w))
    out = out.view(b, out_channels, h, w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DeformableConv2d(nn.Module):
    """A 3 x 3 deformable convolution with its own offsets (UPSNet's ``DeformConvWithOffset``).

    Args:
        in_channels, out_channels: widths.
        kernel_size: taps per side (3).
        dilation: spacing of the taps; the padding keeps the size.
        grid_sampling: compute with :func:`grid_deform_conv2d` (the same numbers, a faster
            CPU backward) instead of ``torchvision.ops.deform_conv2d``; the weights are the
            same either way.

    Attributes:
        offset: plain ``nn.Conv2d`` (3 x 3, padding 1) -> ``2 * kernel_size**2`` offset
            channels, weight and bias zero: the layer starts as an ordinary conv.
        conv: ``torchvision.ops.DeformConv2d`` holding the weights (He-normal, bias zero).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 grid_sampling: bool = False):
        super().__init__()
        self.grid_sampling = grid_sampling
        self.offset = nn.Conv2d(in_channels, 2 * kernel_size * kernel_size, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        padding = dilation * (kernel_size - 1) // 2
        self.conv = DeformConv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation)
        nn.init.kaiming_normal_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """float [B, in_channels, H, W] -> [B, out_channels, H, W]."""
        offset = self.offset(x)
        if not torch.isfinite(offset).all():
            # torchvision's CPU kernel reads memory at non-finite positions (a crash, not an error)
            raise FloatingPointError(f"{type(self).__name__}: non-finite sampling offsets; the features feeding "
                                     f"them are not finite (a diverged training run?)")
        if self.grid_sampling:
            return grid_deform_conv2d(x, offset, self.conv.weight, self.conv.bias, self.conv.padding[0],
                                      self.conv.dilation[0])
        return self.conv(x, offset)


def layer_widths(in_channels: int, channels: int, num_layers: int) -> list[tuple[int, int]]:
    """``(in, out)`` of each layer of the sub-network: the input width until the
    second-to-last layer, which narrows to ``channels``; the last keeps ``channels``."""
    if num_layers < 2:
        raise ValueError(f"the deformable sub-network has at least 2 layers, got {num_layers}")
    widths = []
    for index in range(num_layers):
        out = channels if index >= num_layers - 2 else in_channels
        widths.append((in_channels, out))
        in_channels = out
    return widths


class DeformableSemanticHead(nn.Module):
    """UPSNet's semantic head; see the module docstring.

    Args:
        in_channels: channels of every pyramid level (the FPN's width).
        num_classes: output logits (UPSNet: every category, stuff first, then things).
        level_strides: level name -> stride, finest first (``{"p2": 4, ..., "p5": 32}``).
        channels: width of each level's output (published 128).
        num_layers: deformable layers of the shared sub-network (COCO 3, Cityscapes 2).
        grid_sampling: compute the deformable convs (:class:`DeformableConv2d`) and the RoI
            pooling of :meth:`roi_logits` (:func:`~.roi_align.grid_roi_align`) by bilinear
            sampling: torchvision's numbers, a faster backward pass on a CPU.

    Attributes:
        subnet: the shared ``nn.Sequential`` of [DeformableConv2d, ReLU] layers.
        predictor: the 1 x 1 conv from ``len(level_strides) * channels`` to ``num_classes``.
    """

    def __init__(self, in_channels: int, num_classes: int, level_strides: Mapping[str, int], channels: int = 128,
                 num_layers: int = 3, grid_sampling: bool = False):
        super().__init__()
        self.grid_sampling = grid_sampling
        self.level_strides = dict(level_strides)
        if self.level_strides and min(self.level_strides.values()) != COMMON_STRIDE:
            raise ValueError(f"the finest level must have stride {COMMON_STRIDE}, got {self.level_strides}")
        layers: list[nn.Module] = []
        for cin, cout in layer_widths(in_channels, channels, num_layers):
            layers += [DeformableConv2d(cin, cout, grid_sampling=grid_sampling), nn.ReLU(inplace=True)]
        self.subnet = nn.Sequential(*layers)
        self.predictor = nn.Conv2d(len(self.level_strides) * channels, num_classes, 1)
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.zeros_(self.predictor.bias)

    def level_outputs(self, features: Mapping[str, Tensor]) -> "OrderedDict[str, Tensor]":
        """Each level through the shared sub-network and upsampled to stride 4:
        float [B, channels, H / 4, W / 4] per level (for a figure)."""
        missing = [name for name in self.level_strides if name not in features]
        if missing:
            raise ValueError(f"the semantic head needs the levels {missing}; got {list(features)}")
        finest = min(self.level_strides, key=self.level_strides.get)
        size = features[finest].shape[-2:]
        outputs = OrderedDict()
        for name, stride in self.level_strides.items():
            x = self.subnet(features[name])
            if stride != COMMON_STRIDE:
                if tuple(x.shape[-2:]) != tuple(-(-s // (stride // COMMON_STRIDE)) for s in size):
                    raise ValueError(f"level {name} of size {tuple(x.shape[-2:])} does not align with stride "
                                     f"{COMMON_STRIDE} ({tuple(size)}): pad the images to a multiple of "
                                     f"{max(self.level_strides.values())}")
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            outputs[name] = x
        return outputs

    def features(self, features: Mapping[str, Tensor]) -> Tensor:
        """The concatenated levels: float [B, levels x channels, H / 4, W / 4]."""
        return torch.cat(list(self.level_outputs(features).values()), dim=1)

    def forward(self, features: Mapping[str, Tensor]) -> Tensor:
        """Logits float [B, num_classes, H / 4, W / 4] from the levels ``features``."""
        return self.predictor(self.features(features))

    def roi_logits(self, feature: Tensor, boxes: Sequence[Tensor], output_size: int, sampling_ratio: int = 2
                   ) -> Tensor:
        """The classifier inside boxes: RoIAlign of the concatenated feature (stride 4), then the 1 x 1 conv.

        Args:
            feature: :meth:`features`' output, float [B, levels x channels, H / 4, W / 4].
            boxes: per image float [N_i, 4] (x1, y1, x2, y2) in image pixels.
            output_size: side of each RoI (published 28, the mask logits' size).
            sampling_ratio: bilinear samples per bin along each axis.

        Returns:
            float [sum N_i, num_classes, output_size, output_size].
        """
        boxes = [b.to(feature.dtype) for b in boxes]
        if self.grid_sampling:
            pooled = grid_roi_align(feature, boxes, (output_size, output_size), 1.0 / COMMON_STRIDE, sampling_ratio)
        else:
            pooled = roi_align(feature, boxes, output_size, spatial_scale=1.0 / COMMON_STRIDE,
                               sampling_ratio=sampling_ratio, aligned=False)
        return self.predictor(pooled)
