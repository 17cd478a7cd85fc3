"""Three ways back to fine features, measured on real modules (chapter 4).

The Panoptic FPN paper contrasts (a) a dilated backbone, (b) a symmetric encoder-decoder
and (c) FPN's asymmetric, lightweight decoder. :func:`decoder_design_costs` counts the
multiply-adds and parameters of each on one image: (a) and (c) are the package's full
PSPNet backbone and the full Panoptic FPN's FPN and semantic branch; (b), which no model
of the package uses, is :class:`SymmetricDecoder`, built for the measurement only.
``panopticlab.viz.draw_decoder_designs`` draws the result.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["count_macs", "SymmetricDecoder", "decoder_design_costs"]


def _convs(module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def count_macs(function, *inputs):
    """``(multiply-adds, output)`` of one call ``function(*inputs)``.

    Counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix products and
    convolutions (2 FLOPs per multiply-add; normalisation, activations, pooling and resizing
    are not counted). Inputs on the ``meta`` device cost no arithmetic: the count comes
    from the shapes alone.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        output = function(*inputs)
    return counter.get_total_flops() // 2, output


def _out_channels(block: nn.Module) -> int:
    last = getattr(block, "conv3", None) or block.conv2  # Bottleneck or BasicBlock
    return int(last.out_channels)


class SymmetricDecoder(nn.Module):
    """A decoder that mirrors an encoder stage by stage, built for :func:`decoder_design_costs` only.

    No model of the package uses it and it is never trained: it stands for design (b) of
    the Panoptic FPN paper's comparison, a symmetric encoder-decoder (U-Net style), so its
    cost can be measured on real modules. From the coarsest stage's output, for each finer
    stage, coarse to fine: a 2x bilinear upsampling to that stage's size, concatenation
    with the stage's output (the skip connection), a 1 x 1 conv + norm + ReLU back to the
    stage's width, then as many residual blocks as the stage has, each a copy of the
    stage's last block: as wide and as deep as the encoder stage it mirrors. It ends at
    the finest stage's stride (4 for a ResNet) and width.

    Args:
        stages: the encoder's stages, finest first (a ResNet's ``layer1`` .. ``layer4``);
            the last block of each mirrored stage must keep its input's width and stride.
        norm_layer: normalisation after each 1 x 1 fusion conv.

    Shapes: ``forward(features)`` takes the stages' outputs, finest first, and returns
    [B, width of the finest stage, H / 4, W / 4] for a ResNet.
    """

    def __init__(self, stages, norm_layer=nn.BatchNorm2d):
        super().__init__()
        from torchvision.ops.misc import Conv2dNormActivation

        stages = list(stages)
        widths = [_out_channels(stage[-1]) for stage in stages]
        self.fuse = nn.ModuleList()
        self.blocks = nn.ModuleList()
        self.mirrored = []  # (index of the encoder stage, blocks, width), coarse to fine
        previous = widths[-1]
        for index in range(len(stages) - 2, -1, -1):
            last = stages[index][-1]
            if getattr(last, "downsample", None) is not None or any(c.stride != (1, 1) for c in _convs(last)):
                raise ValueError(f"stage {index + 1}'s last block changes width or stride: it cannot be repeated")
            self.fuse.append(Conv2dNormActivation(previous + widths[index], widths[index], 1, norm_layer=norm_layer))
            self.blocks.append(nn.Sequential(*(copy.deepcopy(last) for _ in range(len(stages[index])))))
            self.mirrored.append((index, len(stages[index]), widths[index]))
            previous = widths[index]

    def forward(self, features):
        features = list(features)
        y = features[-1]
        for (index, _, _), fuse, blocks in zip(self.mirrored, self.fuse, self.blocks):
            skip = features[index]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = blocks(fuse(torch.cat([y, skip], dim=1)))
        return y


def _parameters(*modules) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def _stage_outputs(backbone, image, stages=("layer1", "layer2", "layer3", "layer4")):
    """Multiply-adds of ``backbone(image)``, the shape of each stage's output (forward hooks), the output."""
    shapes = {}
    hooks = [getattr(backbone, name).register_forward_hook(
        lambda module, args, output, name=name: shapes.__setitem__(name, tuple(output.shape))) for name in stages]
    try:
        macs, output = count_macs(backbone, image)
    finally:
        for hook in hooks:
            hook.remove()
    return macs, shapes, output


def decoder_design_costs(size: int = 512, categories=None) -> dict:
    """Measure the three ways back to fine features that the Panoptic FPN paper contrasts.

    On one image of ``size`` x ``size`` (batch 1), on the ``meta`` device (shapes only, no
    arithmetic: 0.5 s on two CPU cores once the models' modules are imported), with
    :func:`count_macs`:

    * ``encoder``: the plain ResNet-50 body at its strides 4-32 (the full Panoptic FPN's),
      the part the three designs share;
    * ``dilated`` (a): the full PSPNet's backbone, a ResNet-50 whose ``layer3`` and
      ``layer4`` trade their stride for dilation (output stride 8, DeepLab and PSPNet);
    * ``symmetric`` (b): the encoder plus a :class:`SymmetricDecoder` mirroring its
      stages back to stride 4 (built for this measurement only);
    * ``fpn`` (c): the encoder plus the full Panoptic FPN's FPN and semantic branch (the
      lightweight, asymmetric decoder, to the logits at stride 4).

    The models are the package's ``pspnet-full`` and ``panoptic-fpn-full`` for
    ``categories`` (default the built-in dataset's; the class count changes only the
    branch's 1 x 1 classifier).

    Returns:
        a dict: ``size``; for each of ``encoder``, ``dilated``, ``symmetric`` and ``fpn``:
        ``macs`` and ``params`` (totals), ``parts`` and ``param_parts`` (name -> its share;
        the encoder's part is named ``encoder``), ``output_stride`` and ``channels`` of the
        output; the designs' layouts: ``stages`` (encoder and dilated: ``name``,
        ``stride`` measured from the output shapes, ``channels``, ``blocks``,
        ``dilation``: the largest of the stage), ``decoder_stages`` (symmetric: the stage
        each mirrors, ``stride``, ``channels``, ``blocks``), ``levels`` (fpn: ``name``,
        ``stride``, ``channels``, ``branch_convs``: the semantic branch's 3 x 3 convs on
        that level) and ``branch_channels``, ``classes`` (fpn).
    """
    from ..data import SYNTHETIC_CATEGORIES
    from . import zoo

    categories = SYNTHETIC_CATEGORIES if categories is None else categories
    with torch.device("meta"):
        pspnet = zoo.build_model("pspnet-full", categories).eval()
        fpn_model = zoo.build_model("panoptic-fpn-full", categories).eval()
        image = torch.zeros(1, 3, size, size)
        body = fpn_model.backbone.body  # the plain ResNet-50 (IntermediateLayerGetter: layer1-4 -> p2-p5)
        names = list(body.return_layers)
        decoder = SymmetricDecoder([getattr(body, name) for name in names]).eval()

    def layout(backbone, shapes):
        return [{"name": name, "stride": size // shapes[name][-1], "channels": shapes[name][1],
                 "blocks": len(getattr(backbone, name)),
                 "dilation": max(int(block.conv2.dilation[0]) for block in getattr(backbone, name))}
                for name in names]

    encoder_macs, encoder_shapes, features = _stage_outputs(body, image)
    dilated_macs, dilated_shapes, _ = _stage_outputs(pspnet.backbone, image)
    fpn_macs, pyramid = count_macs(fpn_model.backbone.fpn, features)
    branch_macs, logits = count_macs(fpn_model.semantic_head, pyramid)
    decoder_macs, decoded = count_macs(decoder, list(features.values()))
    encoder_params = _parameters(body)
    encoder = {"macs": encoder_macs, "params": encoder_params, "parts": {"encoder": encoder_macs},
               "param_parts": {"encoder": encoder_params}, "stages": layout(body, encoder_shapes),
               "output_stride": size // encoder_shapes[names[-1]][-1], "channels": encoder_shapes[names[-1]][1]}
    dilated_params = _parameters(pspnet.backbone)
    dilated = {"macs": dilated_macs, "params": dilated_params,
               "parts": {"encoder": encoder_macs, "dilation": dilated_macs - encoder_macs},
               "param_parts": {"encoder": dilated_params}, "stages": layout(pspnet.backbone, dilated_shapes),
               "output_stride": size // dilated_shapes[names[-1]][-1], "channels": dilated_shapes[names[-1]][1]}
    decoder_params = _parameters(decoder)
    symmetric = {"macs": encoder_macs + decoder_macs, "params": encoder_params + decoder_params,
                 "parts": {"encoder": encoder_macs, "symmetric decoder": decoder_macs},
                 "param_parts": {"encoder": encoder_params, "symmetric decoder": decoder_params},
                 "stages": encoder["stages"],
                 "decoder_stages": [{"mirrors": names[index], "stride": encoder["stages"][index]["stride"],
                                     "channels": width, "blocks": blocks}
                                    for index, blocks, width in decoder.mirrored],
                 "output_stride": size // decoded.shape[-1], "channels": int(decoded.shape[1])}
    fpn_params, branch_params = _parameters(fpn_model.backbone.fpn), _parameters(fpn_model.semantic_head)
    branch = fpn_model.semantic_head
    fpn = {"macs": encoder_macs + fpn_macs + branch_macs, "params": encoder_params + fpn_params + branch_params,
           "parts": {"encoder": encoder_macs, "FPN": fpn_macs, "semantic branch": branch_macs},
           "param_parts": {"encoder": encoder_params, "FPN": fpn_params, "semantic branch": branch_params},
           "stages": encoder["stages"],
           "levels": [{"name": name, "stride": size // value.shape[-1], "channels": int(value.shape[1]),
                       "branch_convs": len(_convs(branch.scale_heads[name]))}
                      for name, value in pyramid.items() if name in branch.level_strides],
           "branch_channels": int(_convs(next(iter(branch.scale_heads.values())))[0].out_channels),
           "classes": int(branch.predictor.out_channels),
           "output_stride": size // logits.shape[-1], "channels": int(logits.shape[1])}
    return {"size": size, "encoder": encoder, "dilated": dilated, "symmetric": symmetric, "fpn": fpn}
