"""Depthwise-separable convolution: a k x k conv per channel, then a 1 x 1 conv across channels.

A regular k x k conv from C_in to C_out channels has C_in * C_out * k^2 weights. The
separable pair has C_in * k^2 (the depthwise conv, ``groups=C_in``: each channel filtered
alone) plus C_in * C_out (the pointwise 1 x 1 conv, which mixes the channels). Panoptic-DeepLab's
paper and detectron2's ``USE_DEPTHWISE_SEPARABLE_CONV`` use one 5 x 5 separable conv where
the regular heads have two 3 x 3 convs: the same 5 x 5 receptive field, for a fraction of the
weights and of the multiply-adds.

Layout, as detectron2's ``DepthwiseSeparableConv2d`` (``detectron2/layers/blocks.py``) with
``norm1``, ``activation1``, ``norm2`` and ``activation2`` set (MobileNet's placement: a norm and
a ReLU after each conv; the convs without bias, the norm has one)::

    [B, C_in, H, W] -> depthwise k x k conv (dilation d, padding d (k - 1) / 2) -> norm -> ReLU
                    -> pointwise 1 x 1 conv -> norm -> ReLU -> [B, C_out, H, W]

Both convs start from detectron2's ``c2_msra_fill`` (He normal, fan out, ReLU gain).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["DepthwiseSeparableConv2d", "depthwise_separable_layers"]


def depthwise_separable_layers(in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                               norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d) -> list[nn.Module]:
    """The six layers of a depthwise-separable conv: depthwise conv, norm, ReLU, pointwise conv, norm, ReLU.

    ``kernel_size`` is odd; the padding ``dilation * (kernel_size - 1) // 2`` keeps H and W.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd (the padding keeps the size), got {kernel_size}")
    depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                          dilation=dilation, groups=in_channels, bias=False)
    pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    for conv in (depthwise, pointwise):
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return [depthwise, norm_layer(in_channels), nn.ReLU(inplace=True),
            pointwise, norm_layer(out_channels), nn.ReLU(inplace=True)]


class DepthwiseSeparableConv2d(nn.Sequential):
    """[B, in_channels, H, W] -> [B, out_channels, H, W]; see the module docstring.

    Args:
        in_channels, out_channels: channels in and out.
        kernel_size: of the depthwise conv (odd; 5 in Panoptic-DeepLab's decoder and heads).
        dilation: of the depthwise conv (ASPP's atrous rates).
        norm_layer: ``num_channels -> module``, after each conv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__(*depthwise_separable_layers(in_channels, out_channels, kernel_size, dilation, norm_layer))

    @property
    def depthwise(self) -> nn.Conv2d:
        return self[0]

    @property
    def pointwise(self) -> nn.Conv2d:
        return self[3]
