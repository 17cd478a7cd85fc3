"""Backbones: a tiny ResNet for CPU training, torchvision's ResNet-50, dilation and FPN.

Every backbone *body* here is a ResNet-shaped module whose children run in order and
whose four stages are called ``layer1`` .. ``layer4`` (strides 4, 8, 16, 32 without
dilation). That is the shape torchvision's ``IntermediateLayerGetter`` and
``BackboneWithFPN`` expect, so the same body feeds

* a dilated network (:func:`dilated_backbone`: any stages, at output stride 8 as in
  PSPNet or 16 as in Panoptic-DeepLab, the strides of the last stages replaced by
  dilation), and
* an FPN (:func:`resnet_fpn`, torchvision's ``BackboneWithFPN``) with levels named
  ``p2`` .. ``p6``, which Mask R-CNN, Panoptic FPN and UPSNet share.

``"resnet52"`` is ResNet-50 with DeepLab's stem (:func:`deeplab_stem`: three 3x3 convs,
128 channels, in place of the 7x7 conv), detectron2's "R52" of Panoptic-DeepLab; its
``layer4`` takes DeepLab's multi-grid dilations with :func:`set_multi_grid`.

Normalisation is a choice (:func:`make_norm_layer`) because the models here train from
scratch: torchvision's detection backbones default to ``FrozenBatchNorm2d``, which
freezes the statistics of pretrained weights and leaves a randomly initialised network
with no normalisation at all (its mask loss then diverges). ``"batch"`` (trainable
BatchNorm) is the default; ``"group"`` (GroupNorm) is independent of the batch size.

Nothing here downloads weights: ResNet-50 is always built with ``weights=None``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torchvision.models import resnet50 as torchvision_resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool

__all__ = [
    "NORM_LAYERS",
    "make_norm_layer",
    "BasicBlock",
    "TinyResNet",
    "BackboneConfig",
    "SHIPPED_WEIGHTS",
    "tiny_backbone",
    "weights_path",
    "load_weights",
    "freeze_stages",
    "stage_channels",
    "STAGE_STRIDES",
    "dilation_for_stride",
    "stage_strides",
    "dilated_features",
    "dilated_backbone",
    "deeplab_stem",
    "set_multi_grid",
    "LastLevelP6",
    "level_names",
    "fpn_backbone",
    "resnet_fpn",
]

NORM_LAYERS = ("batch", "group", "frozen_batch")
GROUP_NORM_GROUPS = 8  # groups of GroupNorm, reduced to a divisor of narrow layers' width


def _group_norm(num_channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(GROUP_NORM_GROUPS, num_channels), num_channels)


def make_norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """A normalisation factory ``num_channels -> nn.Module``.

    Args:
        kind: ``"batch"`` (trainable ``nn.BatchNorm2d``), ``"group"`` (``nn.GroupNorm``
            with up to 8 groups) or ``"frozen_batch"`` (torchvision's
            ``FrozenBatchNorm2d``: fixed statistics, only for fine-tuning pretrained weights).
    """
    if kind == "batch":
        return nn.BatchNorm2d
    if kind == "group":
        return _group_norm
    if kind == "frozen_batch":
        return FrozenBatchNorm2d
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {NORM_LAYERS}")


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet's two-conv residual block, with dilation.

    torchvision's ``BasicBlock`` refuses ``dilation > 1``; a dilated tiny backbone needs it.
    Input [B, in_channels, H, W] -> output [B, channels, H / stride, W / stride].
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1,
                 first_dilation: int | None = None, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.conv1 = _conv3x3(in_channels, channels, stride, first_dilation)
        self.bn1 = norm_layer(channels)
        self.conv2 = _conv3x3(channels, channels, 1, dilation)
        self.bn2 = norm_layer(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                            norm_layer(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TinyResNet(nn.Module):
    """A narrow ResNet of basic blocks, small enough to train from scratch on a CPU.

    Layout (children in order, as torchvision's ``ResNet``): ``stem`` (3x3 conv stride 2,
    norm, ReLU, 3x3 max-pool stride 2: stride 4), then ``layer1`` .. ``layer4`` with
    ``widths[i]`` channels and ``blocks[i]`` blocks; ``layer2`` .. ``layer4`` halve the
    resolution unless ``replace_stride_with_dilation`` turns their stride into dilation
    (torchvision's convention: one flag for each of ``layer2``, ``layer3``, ``layer4``).

    Input [B, 3, H, W] (already normalised) -> ``layer4`` output
    [B, widths[3], H / s, W / s] with s = 32, 16 or 8.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), blocks: Sequence[int] = (1, 1, 1, 1),
                 norm: str = "batch", replace_stride_with_dilation: Sequence[bool] = (False, False, False)):
        super().__init__()
        if len(widths) != 4 or len(blocks) != 4:
            raise ValueError(f"a ResNet has 4 stages: got widths={tuple(widths)}, blocks={tuple(blocks)}")
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation needs one flag for each of layer2, layer3, layer4")
        norm_layer = make_norm_layer(norm)
        self.widths = tuple(int(w) for w in widths)
        self.stem = nn.Sequential(
            nn.Conv2d(3, self.widths[0], 3, stride=2, padding=1, bias=False),
            norm_layer(self.widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        dilation = 1
        in_channels = self.widths[0]
        for index, (width, count) in enumerate(zip(self.widths, blocks)):
            stride = 1 if index == 0 else 2
            previous_dilation = dilation
            if index > 0 and replace_stride_with_dilation[index - 1]:
                dilation, stride = dilation * stride, 1
            layers = [BasicBlock(in_channels, width, stride, dilation, previous_dilation, norm_layer)]
            layers += [BasicBlock(width, width, 1, dilation, norm_layer=norm_layer) for _ in range(count - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*layers))
            in_channels = width
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
        return x


def _init_weights(module: nn.Module) -> None:
    """He initialisation and zero-initialised last norm of each residual branch.

    The zero init (Goyal et al., used by torchvision's ``zero_init_residual``) starts
    every block as the identity, which makes training from scratch start stably.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, BasicBlock) and isinstance(m.bn2, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.zeros_(m.bn2.weight)


@dataclass
class BackboneConfig:
    """Which backbone body to build.

    Attributes:
        name: ``"tiny"`` (:class:`TinyResNet`), ``"resnet50"`` (torchvision's, ``weights=None``)
            or ``"resnet52"`` (the same with :func:`deeplab_stem`).
        widths: channels of the four stages (tiny only; ResNet-50 has 256, 512, 1024, 2048).
        blocks: blocks per stage (tiny only; ResNet-50 has 3, 4, 6, 3).
        norm: one of :data:`NORM_LAYERS`.
        weights: starting weights: the name of a file shipped in ``panopticlab/checkpoints``
            (``"tiny-resnet-fpn"``: the tiny body and FPN pretrained on the built-in
            dataset) or a path; ``None`` starts from random weights. Dilation changes no
            weight, so the same file serves dilated bodies.
        frozen_stages: how many of the first modules (``stem``, ``layer1``, ...) stay
            fixed during training, their normalisation frozen too: detectron2's
            ``FREEZE_AT`` (2: the stem and res2, its default for pretrained backbones).
    """

    name: str = "tiny"
    widths: tuple[int, ...] = (16, 32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    norm: str = "batch"
    weights: str | None = None
    frozen_stages: int = 0

    def build(self, replace_stride_with_dilation: Sequence[bool] = (False, False, False)) -> nn.Module:
        """The body: a ResNet-shaped module with ``layer1`` .. ``layer4``, with :attr:`weights` loaded."""
        make_norm_layer(self.norm)  # fail early on a misspelt name
        if not 0 <= self.frozen_stages <= 5:
            raise ValueError(f"frozen_stages must lie in 0..5 (stem and four stages), got {self.frozen_stages}")
        if self.name == "tiny":
            body = TinyResNet(self.widths, self.blocks, self.norm, replace_stride_with_dilation)
        elif self.name in ("resnet50", "resnet52"):
            body = torchvision_resnet50(weights=None, norm_layer=make_norm_layer(self.norm),
                                        replace_stride_with_dilation=list(replace_stride_with_dilation))
            if self.name == "resnet52":
                deeplab_stem(body, make_norm_layer(self.norm))
        else:
            raise ValueError(f"unknown backbone {self.name!r}; choose 'tiny', 'resnet50' or 'resnet52'")
        if self.weights is not None:
            load_weights(body, self.weights, "body.")
        freeze_stages(body, self.frozen_stages)
        return body


#: Where the package's shipped weights are (``BackboneConfig.weights`` names a file there).
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "checkpoints"


def weights_path(weights: str | os.PathLike) -> Path:
    """The file of ``weights``: a shipped name (``"tiny-resnet-fpn"``) or a path."""
    shipped = SHIPPED_WEIGHTS / f"{weights}.pt"
    path = shipped if shipped.is_file() else Path(weights)
    if not path.is_file():
        names = sorted(p.stem for p in SHIPPED_WEIGHTS.glob("*.pt"))
        raise FileNotFoundError(f"no weights {weights!r}: neither a file nor one of the shipped {names}")
    return path


def load_weights(module: nn.Module, weights: str | os.PathLike, prefix: str) -> None:
    """Copy the tensors named ``prefix + name`` of a weights file into ``module`` (all of its state).

    The file is a checkpoint holding a state dict under ``"model"`` (as
    ``scripts/pretrain_backbone.py`` writes it); float16 tensors are cast to the
    module's dtype.

    Raises:
        ValueError: the file lacks some of the module's tensors or their shapes differ
            (the message names the file and the first mismatches).
    """
    path = weights_path(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception as error:  # unpickling errors have many types
        raise ValueError(f"{path}: not a weights file ({error})") from None
    wanted = module.state_dict()
    found = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    missing = [key for key in wanted if key not in found and not key.endswith("num_batches_tracked")]
    mismatched = [key for key in wanted if key in found and found[key].shape != wanted[key].shape]
    if missing or mismatched:
        raise ValueError(f"{path}: the weights do not fit this {type(module).__name__} (missing {missing[:3]}, "
                         f"other shapes {mismatched[:3]}); were they made for other widths?")
    module.load_state_dict({key: found[key] for key in wanted if key in found}, strict=False)


def freeze_stages(body: nn.Module, count: int) -> None:
    """Fix the first ``count`` modules of the body (``stem`` / ``conv1``, then ``layer1`` ..).

    Their parameters stop requiring gradients and their BatchNorms become torchvision's
    ``FrozenBatchNorm2d`` with the same statistics, so training neither updates them nor
    their running statistics (a plain BatchNorm in train mode would).
    """
    names = ["stem" if hasattr(body, "stem") else "conv1", "layer1", "layer2", "layer3", "layer4"][:count]
    for name in names:
        stage = getattr(body, name)
        for parameter in stage.parameters():
            parameter.requires_grad_(False)
        _freeze_batch_norms(stage)
    if "conv1" in names:  # torchvision's ResNet: the stem's norm is a sibling module
        body.bn1 = _frozen_copy(body.bn1) if isinstance(body.bn1, nn.BatchNorm2d) else body.bn1
        for parameter in body.bn1.parameters():
            parameter.requires_grad_(False)


def _frozen_copy(norm: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    frozen = FrozenBatchNorm2d(norm.num_features, eps=norm.eps)
    frozen.weight.copy_(norm.weight.detach())
    frozen.bias.copy_(norm.bias.detach())
    frozen.running_mean.copy_(norm.running_mean)
    frozen.running_var.copy_(norm.running_var)
    return frozen


def _freeze_batch_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, _frozen_copy(child))
        else:
            _freeze_batch_norms(child)


def tiny_backbone(pretrained: bool = True) -> BackboneConfig:
    """The body every tiny model of the book starts from.

    A :class:`TinyResNet` of widths 32-256, one basic block per stage, trainable
    BatchNorm. ``pretrained``: the shipped ``tiny-resnet-fpn`` weights (pretrained on the
    built-in dataset by ``scripts/pretrain_backbone.py``, as full models start from
    ImageNet), with the stem and ``layer1`` frozen as detectron2 freezes them (its
    ``FREEZE_AT = 2``): they hold the generic low-level filters, and their backward pass
    at stride 4 is the costliest of the body. ``pretrained=False``: random weights, all
    trained (training from scratch).
    """
    if pretrained:
        return BackboneConfig("tiny", widths=(32, 64, 128, 256), norm="batch", weights="tiny-resnet-fpn",
                              frozen_stages=2)
    return BackboneConfig("tiny", widths=(32, 64, 128, 256), norm="batch")


def stage_channels(body: nn.Module) -> tuple[int, int, int, int]:
    """Output channels of ``layer1`` .. ``layer4`` of a ResNet-shaped body."""
    if isinstance(body, TinyResNet):
        return body.widths
    channels = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        last_block = getattr(body, name)[-1]
        last_conv = getattr(last_block, "conv3", None) or last_block.conv2  # Bottleneck or BasicBlock
        channels.append(last_conv.out_channels)
    return tuple(channels)


STAGE_STRIDES = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}  # without dilation


def dilation_for_stride(output_stride: int) -> tuple[bool, bool, bool]:
    """``replace_stride_with_dilation`` flags of ``layer2`` .. ``layer4`` for a body of ``output_stride``.

    32: no dilation; 16: ``layer4`` dilated (DeepLab's setting); 8: ``layer3`` and
    ``layer4`` dilated (PSPNet's).
    """
    flags = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}
    if output_stride not in flags:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    return flags[output_stride]


def stage_strides(output_stride: int) -> dict[str, int]:
    """Stride of each stage's output in a body built with :func:`dilation_for_stride` (``output_stride``)."""
    return {name: min(stride, output_stride) for name, stride in STAGE_STRIDES.items()}


def dilated_features(body: nn.Module, return_layers: dict[str, str] | None = None) -> IntermediateLayerGetter:
    """Named stage outputs of a (dilated) body, as torchvision's segmentation models take them.

    Args:
        body: a ResNet-shaped module (``layer1`` .. ``layer4``); build it with
            :func:`dilation_for_stride` flags for the output stride wanted.
        return_layers: stage name -> output name; default ``{"layer3": "aux", "layer4":
            "out"}`` (PSPNet's two heads). Panoptic-DeepLab asks for
            ``{"layer1": "res2", "layer2": "res3", "layer4": "res5"}`` at output stride 16:
            strides 4, 8 and 16.

    Returns:
        a module mapping [B, 3, H, W] to an ``OrderedDict`` of those outputs.
    """
    return_layers = {"layer3": "aux", "layer4": "out"} if return_layers is None else dict(return_layers)
    unknown = sorted(set(return_layers) - set(STAGE_STRIDES))
    if not return_layers or unknown:
        raise ValueError(f"return_layers must name stages among {list(STAGE_STRIDES)}, got {list(return_layers)}")
    return IntermediateLayerGetter(body, return_layers=return_layers)


def dilated_backbone(config: "BackboneConfig", output_stride: int,
                     return_layers: dict[str, str] | None = None) -> IntermediateLayerGetter:
    """:func:`dilated_features` of a body built from ``config`` at ``output_stride`` (8, 16 or 32)."""
    return dilated_features(config.build(replace_stride_with_dilation=dilation_for_stride(output_stride)),
                            return_layers)


def deeplab_stem(body: nn.Module, norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
                 channels: int = 128) -> nn.Module:
    """Give a torchvision ResNet DeepLab's stem, in place: detectron2's ``STEM_TYPE: "deeplab"``.

    ``conv1`` (7x7, stride 2, 64 channels) becomes three 3x3 convs (stride 2, then 1, 1;
    ``channels // 2``, ``channels // 2``, ``channels``) with norm and ReLU between them,
    followed by ``bn1`` over ``channels``; the max-pool stays. The first block of
    ``layer1`` then takes ``channels`` inputs (its ``conv1`` and ``downsample`` conv).
    Strides and output shapes are unchanged. New convs get He initialisation (fan out).

    Returns:
        ``body``.
    """
    half = channels // 2
    body.conv1 = nn.Sequential(
        nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), norm_layer(half), nn.ReLU(inplace=True),
        nn.Conv2d(half, half, 3, padding=1, bias=False), norm_layer(half), nn.ReLU(inplace=True),
        nn.Conv2d(half, channels, 3, padding=1, bias=False),
    )
    body.bn1 = norm_layer(channels)
    first = body.layer1[0]
    first.conv1 = nn.Conv2d(channels, first.conv1.out_channels, 1, bias=False)
    first.downsample[0] = nn.Conv2d(channels, first.downsample[0].out_channels, 1, bias=False)
    for conv in (*body.conv1[::3], first.conv1, first.downsample[0]):
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return body


def set_multi_grid(stage: nn.Sequential, dilation: int, grid: Sequence[int]) -> None:
    """DeepLab's multi-grid, in place: block ``i`` of a dilated stage gets dilation ``dilation * grid[i]``.

    detectron2's ``RES5_MULTI_GRID`` (1, 2, 4) with ``RES5_DILATION`` 2 (output stride 16)
    gives ``layer4``'s three blocks dilations 2, 4 and 8; torchvision's dilated ``layer4``
    has 1, 2, 2 (its first block keeps the previous dilation). Changed: each block's
    ``conv2`` (the 3x3 conv of a bottleneck), dilation and padding alike, so shapes stay.

    Raises:
        ValueError: ``grid`` does not have one rate per block.
    """
    if len(grid) != len(stage):
        raise ValueError(f"multi-grid {tuple(grid)} needs one rate per block; the stage has {len(stage)} blocks")
    for block, rate in zip(stage, grid):
        rate = int(dilation * rate)
        block.conv2.dilation = (rate, rate)
        block.conv2.padding = (rate, rate)


class LastLevelP6(LastLevelMaxPool):
    """torchvision's ``LastLevelMaxPool`` (P6 = stride-2 max-pool of P5), named ``p6``."""

    def forward(self, x, y, names):
        x, names = super().forward(x, y, names)
        return x, [*names[:-1], "p6"]


def level_names(returned_layers: Sequence[int]) -> list[str]:
    """Pyramid level names of the stages feeding an FPN: stage ``k`` (stride 2**(k+1)) is ``p{k+1}``."""
    return [f"p{layer + 1}" for layer in returned_layers]


def fpn_backbone(body: nn.Module, out_channels: int, returned_layers: Sequence[int] = (1, 2, 3, 4),
                 extra_blocks: ExtraFPNBlock | None = None) -> BackboneWithFPN:
    """Put torchvision's FPN on a body.

    Args:
        body: ResNet-shaped module (``layer1`` .. ``layer4``), without dilation.
        out_channels: channels of every pyramid level.
        returned_layers: which stages feed the FPN (1 = stride 4 ... 4 = stride 32).
        extra_blocks: extra levels; default :class:`LastLevelP6` (P6 = max-pool of the
            coarsest level, as Mask R-CNN's RPN uses).

    Returns:
        ``BackboneWithFPN``: [B, 3, H, W] -> ``OrderedDict`` ``"p2"`` .. ``"p5"`` (one per
        returned layer, finest first: [B, out_channels, H / 2**k, W / 2**k] for ``pk``)
        and ``"p6"``; its ``out_channels`` attribute is the channels of every level.
        Parameter names are torchvision's (``body.*``, ``fpn.*``), whatever the level names.
    """
    if not returned_layers or any(layer not in (1, 2, 3, 4) for layer in returned_layers):
        raise ValueError(f"returned_layers must be a non-empty subset of (1, 2, 3, 4), got {tuple(returned_layers)}")
    channels = stage_channels(body)
    return_layers = dict(zip((f"layer{layer}" for layer in returned_layers), level_names(returned_layers)))
    in_channels_list = [channels[layer - 1] for layer in returned_layers]
    return BackboneWithFPN(body, return_layers, in_channels_list, out_channels,
                           extra_blocks=LastLevelP6() if extra_blocks is None else extra_blocks)


def resnet_fpn(config: "BackboneConfig", out_channels: int,
               returned_layers: Sequence[int] = (1, 2, 3, 4)) -> BackboneWithFPN:
    """A ResNet-FPN from ``config``: :func:`fpn_backbone` on an undilated body.

    With ``config.weights`` the FPN starts from the file's FPN too when it holds one of
    this shape (``fpn.*``), as the shipped ``tiny-resnet-fpn`` does.
    """
    backbone = fpn_backbone(config.build(), out_channels, returned_layers)
    if config.weights is not None:
        try:
            load_weights(backbone.fpn, config.weights, "fpn.")
        except ValueError:
            pass  # a body-only file, or an FPN of other channels: the FPN starts from random weights
    return backbone
