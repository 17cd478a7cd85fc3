"""MaskFormer and Mask2Former (Cheng et al., NeurIPS 2021, CVPR 2022): panoptic segmentation by mask classification.

    images -> ImageBatcher -> ResNet (res2 .. res5) -> PixelDecoder --------------------------> E [B, D, H/4, W/4]
                                                          | memory: stride 32 (MaskFormer)
                                                          |   or strides 32, 16, 8 in turn (Mask2Former)
              Q learned queries -> QueryDecoder (L layers: self-attention among the queries,
                                   cross-attention to the memory, feed-forward) -> per query q:
                                        class logits [K + 1] ("no object" last), mask embedding e_q [D]
    mask logits m_q = <e_q, E> at every pixel  (one dot product per pixel and query)
    class and mask logits -> :func:`~panopticlab.postprocess.mask_former.mask_former_panoptic` -> panoptic

No branch predicts "stuff" and another "things", and nothing fuses two maps: every segment,
a car or the sky, is one query with one class and one mask, and the panoptic result is
read off the queries. Training matches the Q predictions to the N ground-truth segments
one to one (the Hungarian algorithm on a class + mask cost) and scores the matched pairs
(:mod:`.set_matching`); unmatched queries learn to say "no object".

Parts:

* :class:`PixelDecoder`: an FPN from ``res5`` down to stride 4 (lateral 1x1 convs, nearest
  upsampling, 3x3 convs, GroupNorm), ``res5`` first projected to ``conv_dim`` and passed
  through ``encoder_layers`` transformer encoder layers (MaskFormer's
  ``TransformerEncoderPixelDecoder``; none: its ``BasePixelDecoder``). Its outputs: the
  per-pixel embeddings E (a 3x3 conv to ``mask_dim`` at stride 4), the encoder's output
  (stride 32) and the FPN's outputs at strides 32, 16 and 8.
* :class:`QueryDecoder`: ``num_queries`` learned query positions and ``decoder_layers`` post-norm
  transformer decoder layers; after each layer a LayerNorm, the class head (a linear layer)
  and the mask head (a 3-layer MLP to ``mask_dim``), shared by all layers (deep supervision:
  every layer's prediction is matched and scored). Keys carry DETR's sine positions.

  - ``masked_attention=False`` (MaskFormer): the queries start at zero; each layer runs
    self-attention, then cross-attention to the encoder's output (stride 32), then the
    feed-forward network; a prediction after each layer.
  - ``masked_attention=True`` (Mask2Former's decoder, as published with it): the queries start
    from learned features and are predicted once before the first layer; each layer runs
    cross-attention first, to the FPN's stride-32, 16 and 8 outputs in turn (a learned
    level embedding added), then self-attention, then the feed-forward network. The
    cross-attention is *masked*: a query attends only to the pixels where its previous
    mask prediction is above 0.5 (resized bilinearly to the level), everywhere when that
    mask is empty.

Tensor shapes, for a batch float [B, 3, H, W] padded to H', W' (multiples of 32):

* backbone ``res2`` .. ``res5``: [B, C_i, H'/4 .. H'/32, W'/4 .. W'/32] (ResNet-50: 256, 512,
  1024, 2048; the tiny body: 32, 64, 128, 256);
* pixel decoder: E [B, mask_dim, H'/4, W'/4], memory [B, conv_dim, H'/32, W'/32], levels
  [B, conv_dim, H'/32 | H'/16 | H'/8, ...];
* each prediction: class logits [B, Q, K + 1], mask logits [B, Q, H'/4, W'/4].

Published settings (:meth:`MaskFormerConfig.full`), each with the file it is read from:

* ``variant="maskformer"`` (the default), MaskFormer R50 for COCO panoptic,
  ``facebookresearch/MaskFormer`` ``configs/coco-panoptic/maskformer_panoptic_R50_bs64_554k.yaml``:
  100 queries (``NUM_OBJECT_QUERIES``), 6 decoder layers (``DEC_LAYERS``), hidden 256
  (``HIDDEN_DIM``), 8 heads (``NHEADS``), feed-forward 2048 (``DIM_FEEDFORWARD``), dropout 0.1
  (``DROPOUT``), pixel decoder 256 channels (``CONVS_DIM``), GroupNorm (``NORM: "GN"``), mask
  embedding 256 (``MASK_DIM``), 6 encoder layers on ``res5`` (``TRANSFORMER_ENC_LAYERS``),
  deep supervision (``DEEP_SUPERVISION``); the losses of :class:`~.set_matching.SetLossConfig`
  (class 1, focal 20, Dice 1, no object 0.1, every pixel) and the inference of
  :meth:`~panopticlab.postprocess.mask_former.MaskInferenceConfig.maskformer` (score 0.7,
  overlap 0.8). GroupNorm of 32 groups is detectron2's ``get_norm("GN")``.
* ``variant="mask2former"``, Mask2Former R50 for COCO panoptic, ``facebookresearch/Mask2Former``
  ``configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml``: 100 queries, 9
  decoder layers (``DEC_LAYERS: 10``, "9 decoder layers, add one for the loss on learnable
  query"), hidden 256, 8 heads, feed-forward 2048, dropout 0, mask embedding 256, masked
  attention (``MultiScaleMaskedTransformerDecoder``); the losses of
  :meth:`~.set_matching.SetLossConfig.mask2former` (class 2, BCE 5, Dice 5, no object 0.1,
  12544 points) and its inference (score 0.8, overlap 0.8). Not built: its pixel decoder,
  six multi-scale *deformable* attention encoder layers (``MSDeformAttnPixelDecoder``); the FPN
  pixel decoder above without encoder layers (Mask2Former's ``pixel_decoder/fpn.py``
  ``BasePixelDecoder``) stands in for it, so this variant is not the published network.

The published runs start from an ImageNet ResNet-50 (``R-50.pkl``) whose BatchNorms are frozen
(detectron2's default ``RESNETS.NORM: "FrozenBN"``, which Mask2Former's
``Base-COCO-PanopticSegmentation.yaml`` keeps) and whose every stage trains (``FREEZE_AT: 0``);
here the body is built with trainable BatchNorm, as the book's other full models, and the
recipe decides the start and what to freeze (:mod:`~.starts`). Images are resized to a short
side of 800 px, long side at most 1333 (detectron2's ``INPUT.MIN_SIZE_TEST`` and
``MAX_SIZE_TEST`` defaults, which the COCO configurations keep; Cityscapes: the whole 1024 x
2048 image, Mask2Former's ``Base-Cityscapes-PanopticSegmentation.yaml`` ``MIN_SIZE_TEST: 1024``,
``MAX_SIZE_TEST: 2048``). The training schedule is the recipe's (Mask2Former's
``Base-COCO-PanopticSegmentation.yaml``: AdamW, ``BASE_LR: 0.0001``, ``WEIGHT_DECAY: 0.05``,
``BACKBONE_MULTIPLIER: 0.1``, the whole model's gradient norm clipped at ``CLIP_VALUE: 0.01``,
large-scale jitter crops of ``IMAGE_SIZE: 1024``).

* ``full``: for COCO (133 categories) 45,065,158 parameters: the ResNet-50 body 23,508,032, the
  pixel decoder 11,826,688 (7,890,432 of them its six encoder layers), the query decoder
  9,730,438; the ``mask2former`` variant has 41,937,350 (pixel decoder 3,936,256, query
  decoder 14,493,062).
* ``tiny`` (:meth:`MaskFormerConfig.tiny`): 1,659,818 parameters for the 9 categories of the
  built-in dataset, 1,226,208 of them the body.

Interface, for images float [B, 3, H, W] in [0, 1]:

* train mode: ``model(images, targets)`` with the collated batch dict holding ``semantic``
  (int64 [B, H, W] train ids, void 255) and ``instances`` (B detection targets, labels 1..T in
  ``categories.thing_ids`` order): the targets of Panoptic FPN. The segments to predict are
  rebuilt from them (:meth:`MaskFormer.segment_targets`): each non-crowd thing instance, and
  each stuff category of the semantic map as one segment; crowd regions and void are no
  segment, as in the published data mappers. Returns the weighted ``loss_ce``, ``loss_mask``,
  ``loss_dice`` of the last layer and ``loss_ce_aux``, ``loss_mask_aux``, ``loss_dice_aux`` of
  the earlier ones (:func:`~.set_matching.set_criterion`); their sum is the objective;
* eval mode: ``model(images)`` -> ``{"class_logits": float [B, Q, K + 1], "mask_logits": float
  [B, Q, H, W]}`` (the last layer's; masks upsampled bilinearly to the input size);
* ``model.inference(images)`` -> B :class:`~.common.PanopticPrediction`: the panoptic result,
  ``semantic`` MaskFormer's semantic segmentation of the same outputs (category ids),
  ``merge`` the inference's steps (:class:`~panopticlab.postprocess.mask_former.MaskFormerPanoptic`),
  ``outputs`` ``class_logits`` [Q, K + 1] and ``mask_logits`` [Q, H, W] (CPU tensors).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.categories import VOID_LABEL, CategorySet
from ..postprocess.mask_former import MaskInferenceConfig, mask_former_panoptic, semantic_inference
from .backbones import BackboneConfig, dilated_features, stage_channels, tiny_backbone
from .common import ImageBatcher, PanopticModel, PanopticPrediction, as_image_list, config_for_size, \
    map_train_ids, semantic_targets, stack_if_one_size
from .mask_rcnn import published_input_size, relabelled_instances
from .set_matching import SetLossConfig, hungarian_matching, image_cost, set_criterion

__all__ = ["VARIANTS", "MaskFormerConfig", "MaskFormer", "QueryMatching", "PixelDecoder", "QueryDecoder",
           "PixelFeatures", "sine_position_embedding", "for_categories"]

VARIANTS = ("maskformer", "mask2former")
#: Backbone stage -> feature name (detectron2's): strides 4, 8, 16, 32.
FEATURES = {"layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}
#: Mask2Former's decoder attends to this many pixel-decoder levels in turn (strides 32, 16, 8).
NUM_LEVELS = 3


@dataclass
class MaskFormerConfig:
    """Every choice of MaskFormer / Mask2Former; defaults are MaskFormer R50's (see the module docstring).

    Attributes:
        num_classes: K, every category (things and stuff); the class head has K + 1 outputs.
        backbone: the ResNet body.
        conv_dim: channels of the pixel decoder's FPN (256).
        mask_dim: channels of the per-pixel and query mask embeddings (256).
        norm_groups: GroupNorm groups of the pixel decoder (32).
        encoder_layers: transformer encoder layers on ``res5`` in the pixel decoder (6).
        hidden_dim: width of the queries and of the transformer (256).
        num_queries: Q (100).
        num_heads: attention heads (8).
        feedforward_dim: hidden width of each transformer feed-forward network (2048).
        decoder_layers: transformer decoder layers (6).
        dropout: in the transformer (0.1).
        masked_attention: Mask2Former's decoder (see the module docstring).
        deep_supervision: score every layer's prediction, not only the last.
        loss: the matching cost and the set loss (:class:`~.set_matching.SetLossConfig`).
        inference: the panoptic inference rule
            (:class:`~panopticlab.postprocess.mask_former.MaskInferenceConfig`).
        min_size, max_size: images resized to a short side of ``min_size``, long side at most
            ``max_size``; ``min_size=None`` keeps the input size (the data pipeline's).
        input_scale: with ``min_size=None``, resize every image by this factor inside (the
            mask logits come back at the input size); ``None``: as given.
        ignore_index: the void label of the semantic targets.
    """

    num_classes: int = 133
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig("resnet50", norm="batch"))
    conv_dim: int = 256
    mask_dim: int = 256
    norm_groups: int = 32
    encoder_layers: int = 6
    hidden_dim: int = 256
    num_queries: int = 100
    num_heads: int = 8
    feedforward_dim: int = 2048
    decoder_layers: int = 6
    dropout: float = 0.1
    masked_attention: bool = False
    deep_supervision: bool = True
    loss: SetLossConfig = field(default_factory=SetLossConfig)
    inference: MaskInferenceConfig = field(default_factory=MaskInferenceConfig.maskformer)
    min_size: int | None = 800
    max_size: int = 1333
    input_scale: float | None = None
    ignore_index: int = VOID_LABEL

    @classmethod
    def full(cls, num_classes: int = 133, dataset: str = "coco", variant: str = "maskformer",
             **overrides) -> "MaskFormerConfig":
        """The published R50 network for ``dataset`` (``"coco"``, or ``"cityscapes"``: only the
        input size changes): ``variant="maskformer"`` (MaskFormer) or ``"mask2former"``
        (Mask2Former's decoder, losses and inference on the FPN pixel decoder)."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        config = cls(num_classes=num_classes, **published_input_size(dataset))
        if variant == "mask2former":
            config = replace(config, encoder_layers=0, decoder_layers=9, dropout=0.0, masked_attention=True,
                             loss=SetLossConfig.mask2former(), inference=MaskInferenceConfig())
        return replace(config, **overrides)

    @classmethod
    def tiny(cls, num_classes: int, **overrides) -> "MaskFormerConfig":
        """A narrow Mask2Former-style network for 128 px images on a CPU in minutes.

        * ``backbone``: the body every tiny model starts from (:func:`~.backbones.tiny_backbone`,
          widths 32-256, pretrained, stem and ``layer1`` frozen).
        * ``conv_dim=64``, ``mask_dim=64``, ``hidden_dim=64``: a quarter of the published 256,
          as the tiny Panoptic-DeepLab's decoders; ``feedforward_dim=256``: four times the
          width (the published ratio is eight); ``num_heads=4``: 16 channels each.
        * ``num_queries=30``: a 128 px synthetic scene has at most 20 segments (12.5 on average
          over 200 training scenes).
        * ``decoder_layers=3``, ``encoder_layers=0``: one pass over the three levels (strides
          32, 16, 8); no encoder on ``res5``, a 4 x 4 map at 128 px.
        * ``masked_attention=True`` with Mask2Former's losses (class 2, BCE 5, Dice 5) and
          inference (overlap 0.8), ``dropout=0``, as published with it; but a query is kept
          above a class probability of 0.4, not 0.8: a network trained for minutes is rarely
          that sure of a small thing. After 600 steps (images enlarged twice), on the 50
          validation scenes: PQ_th 10.4, 13.6 and 14.6 with the score thresholds 0.8, 0.6
          and 0.4, stuff unchanged (95.6).
        * ``loss.num_points=None``: the mask losses on every pixel; 12544 sampled points would
          be three quarters of the 16384 pixels of a 128 x 128 image.
        * ``min_size=None``: the data pipeline decides the image size (no resize inside); not
          enlarged inside as the other tiny models (``input_scale``): twice the size gives
          every convolution and every mask logit four times the pixels, and lifted PQ_th
          after 600 steps only from 7.8 to 10.4 (score threshold 0.8).

        Measured with the laptop recipe (600 steps of 8 images, AdamW 2e-3, gradient clipping
        10; seed 0; the 50 validation scenes at 128 px), one run each: PQ 53.8 (things 7.8,
        stuff 90.6); with MaskFormer's decoder instead (``masked_attention=False``) 45.4 (1.6,
        80.5); with 100 queries 51.9; with 12544 sampled points 54.2; 800 steps 52.8. Things
        are its weakness (the other tiny models' shipped runs: things 21.5 to 33.9), small
        ones most (PQ 5.4 on small things, 26.2 on medium ones); at stride 4 a 16-pixel
        object is one pixel of the mask logits.
        """
        config = cls(num_classes=num_classes, backbone=tiny_backbone(), conv_dim=64, mask_dim=64, encoder_layers=0,
                     hidden_dim=64, num_queries=30, num_heads=4, feedforward_dim=256, decoder_layers=3, dropout=0.0,
                     masked_attention=True, loss=SetLossConfig.mask2former(num_points=None),
                     inference=MaskInferenceConfig(score_threshold=0.4), min_size=None)
        return replace(config, **overrides)


# --- transformer parts -------------------------------------------------------------------------
def sine_position_embedding(height: int, width: int, channels: int, device=None,
                            temperature: float = 10000.0) -> torch.Tensor:
    """DETR's normalised sine positions of an (height x width) grid: float [channels, height, width].

    The first half of the channels encode the row, the second the column; each coordinate
    ``(i + 1) / n * 2 pi`` feeds sines and cosines (interleaved) of frequencies
    ``temperature ** (-2 floor(j / 2) / (channels / 2))`` (``PositionEmbeddingSine(normalize=True)``,
    no padding mask).
    """
    half = channels // 2
    frequencies = temperature ** (2 * torch.div(torch.arange(half, device=device), 2, rounding_mode="floor") / half)

    def encode(n: int) -> torch.Tensor:
        position = torch.arange(1, n + 1, dtype=torch.float32, device=device) / (n + 1e-6) * 2 * math.pi
        angles = position[:, None] / frequencies
        return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)  # [n, half]

    rows = encode(height)[:, None, :].expand(height, width, half)
    cols = encode(width)[None, :, :].expand(height, width, half)
    return torch.cat([rows, cols], dim=2).permute(2, 0, 1)


class AttentionBlock(nn.Module):
    """Multi-head attention, dropout, residual, LayerNorm (post-norm, as DETR's layers).

    ``x`` [B, L, C] attends to ``memory`` [B, S, C]; positions are added to the queries and
    the keys, never to the values. ``attn_mask``: bool [B * heads, L, S], ``True`` where
    attention is not allowed.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, x_pos: torch.Tensor | None = None,
                memory_pos: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        query = x if x_pos is None else x + x_pos
        key = memory if memory_pos is None else memory + memory_pos
        out = self.attention(query, key, memory, attn_mask=attn_mask, need_weights=False)[0]
        return self.norm(x + self.dropout(out))


class FeedForward(nn.Module):
    """Linear, ReLU, dropout, linear, dropout, residual, LayerNorm: [B, L, C] -> [B, L, C]."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class EncoderLayer(nn.Module):
    """A transformer encoder layer: self-attention among the pixels, then the feed-forward network."""

    def __init__(self, dim: int, heads: int, feedforward_dim: int, dropout: float):
        super().__init__()
        self.self_attention = AttentionBlock(dim, heads, dropout)
        self.feedforward = FeedForward(dim, feedforward_dim, dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.feedforward(self.self_attention(x, x, pos, pos))


class DecoderLayer(nn.Module):
    """A transformer decoder layer over the queries: self-attention among them, cross-attention to
    the pixels, feed-forward; ``cross_first`` (Mask2Former) swaps the two attentions."""

    def __init__(self, dim: int, heads: int, feedforward_dim: int, dropout: float, cross_first: bool = False):
        super().__init__()
        self.cross_first = cross_first
        self.self_attention = AttentionBlock(dim, heads, dropout)
        self.cross_attention = AttentionBlock(dim, heads, dropout)
        self.feedforward = FeedForward(dim, feedforward_dim, dropout)

    def forward(self, queries: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """queries [B, Q, C], query_pos [1, Q, C], memory [B, S, C], memory_pos [1, S, C] -> [B, Q, C]."""
        if not self.cross_first:
            queries = self.self_attention(queries, queries, query_pos, query_pos)
        queries = self.cross_attention(queries, memory, query_pos, memory_pos, attn_mask)
        if self.cross_first:
            queries = self.self_attention(queries, queries, query_pos, query_pos)
        return self.feedforward(queries)


def _xavier_init(module: nn.Module) -> None:
    """DETR's and Mask2Former's transformer initialisation: Xavier-uniform for every matrix."""
    for parameter in module.parameters():
        if parameter.dim() > 1:
            nn.init.xavier_uniform_(parameter)


def _c2_xavier_fill(conv: nn.Conv2d) -> nn.Conv2d:
    """detectron2's ``c2_xavier_fill``: Kaiming-uniform with a = 1, zero bias."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


# --- pixel decoder ---------------------------------------------------------------------------------
class PixelFeatures(NamedTuple):
    """The pixel decoder's outputs.

    Attributes:
        mask_features: E, float [B, mask_dim, H/4, W/4]: the per-pixel embeddings.
        memory: float [B, conv_dim, H/32, W/32]: ``res5`` projected (and encoded).
        levels: the FPN's outputs at strides 32, 16, 8, each float [B, conv_dim, ., .].
    """

    mask_features: torch.Tensor
    memory: torch.Tensor
    levels: list[torch.Tensor]


class PixelDecoder(nn.Module):
    """MaskFormer's pixel decoder: ``res5`` projected and encoded, then an FPN down to stride 4.

    ``res5`` goes through a 1x1 conv to ``conv_dim``, the transformer encoder layers (each
    token with its sine position; none: MaskFormer's ``BasePixelDecoder``) and a 3x3 conv; the
    finer levels join top-down (lateral 1x1 conv and GroupNorm, nearest upsampling, sum, 3x3
    conv, GroupNorm, ReLU); a 3x3 conv of the stride-4 level gives the mask features E.

    Args:
        in_channels: channels of ``res2`` .. ``res5``.
        conv_dim: channels of every level; mask_dim: channels of the mask features.
        norm_groups: GroupNorm groups.
        encoder_layers, heads, feedforward_dim, dropout: the transformer encoder on ``res5``.

    ``forward(features)``: the four feature maps, finest first -> :class:`PixelFeatures`.
    """

    def __init__(self, in_channels: Sequence[int], conv_dim: int, mask_dim: int, norm_groups: int = 32,
                 encoder_layers: int = 0, heads: int = 8, feedforward_dim: int = 2048, dropout: float = 0.1):
        super().__init__()

        def conv3x3() -> nn.Sequential:
            return nn.Sequential(_c2_xavier_fill(nn.Conv2d(conv_dim, conv_dim, 3, padding=1, bias=False)),
                                 nn.GroupNorm(norm_groups, conv_dim), nn.ReLU(inplace=True))

        self.input_proj = _c2_xavier_fill(nn.Conv2d(in_channels[-1], conv_dim, 1))
        self.encoder = nn.ModuleList(EncoderLayer(conv_dim, heads, feedforward_dim, dropout)
                                     for _ in range(encoder_layers))
        _xavier_init(self.encoder)
        self.top = conv3x3()
        # res4, res3, res2: coarse to fine, the order of the top-down pass
        self.lateral = nn.ModuleList(
            nn.Sequential(_c2_xavier_fill(nn.Conv2d(channels, conv_dim, 1, bias=False)),
                          nn.GroupNorm(norm_groups, conv_dim))
            for channels in reversed(list(in_channels[:-1])))
        self.output = nn.ModuleList(conv3x3() for _ in in_channels[:-1])
        self.mask_features = _c2_xavier_fill(nn.Conv2d(conv_dim, mask_dim, 3, padding=1))

    def forward(self, features: Sequence[torch.Tensor]) -> PixelFeatures:
        memory = self.input_proj(features[-1])
        if len(self.encoder):
            batch, channels, height, width = memory.shape
            pos = sine_position_embedding(height, width, channels, memory.device).flatten(1).T[None]
            tokens = memory.flatten(2).transpose(1, 2)  # [B, hw, C]
            for layer in self.encoder:
                tokens = layer(tokens, pos.to(tokens.dtype))
            memory = tokens.transpose(1, 2).reshape(batch, channels, height, width)
        y = self.top(memory)
        levels = [y]
        for feature, lateral, output in zip(reversed(features[:-1]), self.lateral, self.output):
            lateral_feature = lateral(feature)
            y = output(lateral_feature + F.interpolate(y, size=lateral_feature.shape[-2:], mode="nearest"))
            levels.append(y)
        return PixelFeatures(self.mask_features(y), memory, levels[:NUM_LEVELS])


# --- query decoder ---------------------------------------------------------------------------------
class MLP(nn.Sequential):
    """Linear layers with ReLU between them: DETR's prediction MLP."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for index, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if index < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def attention_mask(mask_logits: torch.Tensor, size: Sequence[int], heads: int) -> torch.Tensor:
    """Mask2Former's masked attention: where each query may look at the next level.

    Args:
        mask_logits: float [B, Q, h, w], the previous prediction.
        size: (h', w') of the level the next layer attends to.
        heads: attention heads.

    Returns:
        bool [B * heads, Q, h' w'], ``True`` (not allowed) where the mask, resized bilinearly,
        is below 0.5; a query whose resized mask is empty everywhere may attend everywhere.
    """
    resized = F.interpolate(mask_logits.detach(), size=tuple(size), mode="bilinear", align_corners=False)
    blocked = resized.sigmoid().flatten(2) < 0.5
    blocked[blocked.all(dim=-1)] = False
    return blocked.repeat_interleave(heads, dim=0)


class QueryDecoder(nn.Module):
    """The learned queries, the transformer decoder and the two heads; see the module docstring.

    Args:
        in_channels: channels of the pixel decoder's memory and levels.
        num_classes: K (the class head has K + 1 outputs).
        hidden_dim, num_queries, heads, feedforward_dim, layers, dropout: the transformer.
        mask_dim: channels of the mask embeddings.
        masked_attention: Mask2Former's decoder.

    ``forward(pixels)``: :class:`PixelFeatures` -> the supervised predictions, in order, each
    ``(class_logits [B, Q, K + 1], mask_logits [B, Q, H/4, W/4])``: one per layer, plus one of
    the learned queries before the first layer with ``masked_attention``.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden_dim: int, num_queries: int, heads: int,
                 feedforward_dim: int, layers: int, dropout: float, mask_dim: int, masked_attention: bool):
        super().__init__()
        self.heads = heads
        self.masked_attention = masked_attention
        num_levels = NUM_LEVELS if masked_attention else 1
        self.input_proj = nn.ModuleList(
            _c2_xavier_fill(nn.Conv2d(in_channels, hidden_dim, 1)) if in_channels != hidden_dim else nn.Identity()
            for _ in range(num_levels))
        self.level_embed = nn.Embedding(num_levels, hidden_dim) if masked_attention else None
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # the queries' positions
        self.query_feat = nn.Embedding(num_queries, hidden_dim) if masked_attention else None
        self.layers = nn.ModuleList(DecoderLayer(hidden_dim, heads, feedforward_dim, dropout, masked_attention)
                                    for _ in range(layers))
        _xavier_init(self.layers)
        self.norm = nn.LayerNorm(hidden_dim)
        self.class_head = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_head = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    def predict(self, queries: torch.Tensor, mask_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Heads on queries [B, Q, C]: class logits [B, Q, K + 1] and the mask logits
        ``<e_q, E>`` [B, Q, h, w] of the mask features E [B, D, h, w]."""
        queries = self.norm(queries)
        embeddings = self.mask_head(queries)
        return self.class_head(queries), torch.einsum("bqc,bchw->bqhw", embeddings, mask_features)

    def forward(self, pixels: PixelFeatures) -> list[tuple[torch.Tensor, torch.Tensor]]:
        sources = pixels.levels if self.masked_attention else [pixels.memory]
        memories, positions, sizes = [], [], []
        for index, (source, projection) in enumerate(zip(sources, self.input_proj)):
            height, width = source.shape[-2:]
            memory = projection(source).flatten(2).transpose(1, 2)  # [B, hw, C]
            if self.level_embed is not None:
                memory = memory + self.level_embed.weight[index]
            memories.append(memory)
            positions.append(sine_position_embedding(height, width, memory.shape[-1], memory.device)
                             .flatten(1).T[None].to(memory.dtype))
            sizes.append((height, width))
        batch = pixels.mask_features.shape[0]
        query_pos = self.query_embed.weight[None]
        predictions = []
        if self.masked_attention:
            queries = self.query_feat.weight[None].expand(batch, -1, -1)
            predictions.append(self.predict(queries, pixels.mask_features))
        else:
            queries = torch.zeros(batch, *self.query_embed.weight.shape, device=query_pos.device,
                                  dtype=query_pos.dtype)
        for index, layer in enumerate(self.layers):
            level = index % len(memories)
            mask = None
            if self.masked_attention:
                mask = attention_mask(predictions[-1][1], sizes[level], self.heads)
            queries = layer(queries, query_pos, memories[level], positions[level], mask)
            predictions.append(self.predict(queries, pixels.mask_features))
        return predictions


# --- the model -------------------------------------------------------------------------------------
class QueryMatching(NamedTuple):
    """One image's matching of queries to ground-truth segments (:meth:`MaskFormer.explain_matching`).

    ``cost`` float [Q, N]; ``queries``, ``targets`` int64 [min(Q, N)] the matched pairs;
    ``labels`` int64 [N] the segments' classes (train ids); ``masks`` bool [N, H', W'];
    ``class_logits`` float [Q, K + 1]; ``mask_logits`` float [Q, H', W'] (upsampled from stride 4).
    """

    cost: torch.Tensor
    queries: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    class_logits: torch.Tensor
    mask_logits: torch.Tensor


class MaskFormer(PanopticModel):
    """MaskFormer / Mask2Former from a :class:`MaskFormerConfig`; see the module docstring.

    Args:
        config: the architecture, the losses and the inference rule.
        categories: the dataset's categories; class ``k`` is ``categories.ids[k]`` (train-id order).
    """

    def __init__(self, config: MaskFormerConfig, categories: CategorySet):
        super().__init__()
        if config.num_classes != len(categories):
            raise ValueError(f"the categories have {len(categories)} classes, the config {config.num_classes}")
        self.config = config
        self.categories = categories
        self.transform = ImageBatcher(config.min_size, config.max_size, size_divisible=32, scale=config.input_scale)
        body = config.backbone.build()
        self.backbone = dilated_features(body, FEATURES)
        self.pixel_decoder = PixelDecoder(stage_channels(body), config.conv_dim, config.mask_dim, config.norm_groups,
                                          config.encoder_layers, config.num_heads, config.feedforward_dim,
                                          config.dropout)
        self.decoder = QueryDecoder(config.conv_dim, config.num_classes, config.hidden_dim, config.num_queries,
                                    config.num_heads, config.feedforward_dim, config.decoder_layers, config.dropout,
                                    config.mask_dim, config.masked_attention)
        self.register_buffer("train_ids", torch.arange(len(categories)), persistent=False)
        # class k of the head -> its dataset category (the K classes in train-id order; K: no object)
        self.register_buffer("train_id_to_category", torch.tensor(list(categories.ids)).long(), persistent=False)
        self.register_buffer("stuff_class", torch.tensor([not c.isthing for c in categories.categories]),
                             persistent=False)
        # dataset instance label (1..T, categories.thing_ids order) -> class (train id); 0 unused
        to_class = [0] + [categories.train_id(c) for c in categories.thing_ids]
        self.register_buffer("instance_to_class", torch.tensor(to_class, dtype=torch.int64), persistent=False)

    def predict(self, tensors: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The supervised predictions of a normalised, padded batch [B, 3, H', W'] (see :class:`QueryDecoder`)."""
        return self.decoder(self.pixel_decoder(list(self.backbone(tensors).values())))

    def segment_targets(self, semantic: torch.Tensor, instances: Sequence[dict]) -> list[dict[str, torch.Tensor]]:
        """The segments to predict, per image of a batch.

        Args:
            semantic: int64 [B, H', W'] train ids of the padded batch, void (and padding) ``ignore_index``.
            instances: B detection targets whose ``labels`` are classes (train ids) and ``masks``
                uint8 [N, h, w] at each image's size inside the padding.

        Returns:
            B dicts: ``labels`` int64 [N + S] (train ids) and ``masks`` bool [N + S, H', W']: the
            N instances, then one segment per stuff category of the semantic map (S of them).
        """
        targets = []
        for labels, instance in zip(semantic, instances):
            masks = torch.zeros((len(instance["masks"]), *labels.shape), dtype=torch.bool, device=labels.device)
            height, width = instance["masks"].shape[-2:]
            masks[:, :height, :width] = instance["masks"].bool()
            present = labels.unique()
            present = present[present != self.config.ignore_index]
            stuff = present[self.stuff_class[present]]
            targets.append({"labels": torch.cat([instance["labels"].to(labels.device), stuff]),
                            "masks": torch.cat([masks, labels[None] == stuff[:, None, None]])})
        return targets

    def _segments(self, images, image_list, targets: dict):
        semantic = map_train_ids(semantic_targets(targets, images), self.train_ids, self.config.ignore_index)
        instances = relabelled_instances(targets, len(image_list), self.instance_to_class)
        batch = self.transform.batch(image_list, instances, semantic)
        return batch, self.segment_targets(batch.semantic, batch.instances)

    @torch.no_grad()
    def explain_matching(self, images, targets: dict) -> list[QueryMatching]:
        """The matching training makes for each image, with its cost matrix, for a figure.

        Args:
            images: float [B, 3, H, W] (one size), or a list of [3, H, W] of one size.
            targets: the collated target dict of :meth:`forward`'s training call.

        Returns:
            B :class:`QueryMatching`, the last layer's predictions matched as training matches
            them (:func:`~.set_matching.image_cost`: every pixel of the stride-4 mask logits, or
            the configuration's random points); the masks at the padded batch's size.
        """
        image_list = as_image_list(images)
        batch, segments = self._segments(images, image_list, targets)
        class_logits, mask_logits = self.predict(batch.images.tensors)[-1]
        matchings = []
        for logits, masks_q, segment in zip(class_logits, mask_logits, segments):
            cost = image_cost(logits, masks_q, segment["labels"], segment["masks"], self.config.loss)
            queries, matched = hungarian_matching(cost)
            full = F.interpolate(masks_q[None], size=segment["masks"].shape[-2:], mode="bilinear",
                                 align_corners=False)[0]
            matchings.append(QueryMatching(cost.cpu(), queries, matched, segment["labels"].cpu(),
                                           segment["masks"].cpu(), logits.cpu(), full.cpu()))
        return matchings

    def forward(self, images, targets: dict | None = None):
        """See the module docstring."""
        image_list = as_image_list(images)
        if self.training:
            if not isinstance(targets, dict) or "instances" not in targets:
                raise ValueError("training MaskFormer needs the collated target dict with 'semantic' and 'instances' "
                                 "(PanopticDataset(..., targets=('semantic', 'instances')))")
            batch, segments = self._segments(images, image_list, targets)
        else:
            batch = self.transform.batch(image_list)
        predictions = self.predict(batch.images.tensors)
        if self.training:
            supervised = predictions if self.config.deep_supervision else predictions[-1:]
            return set_criterion(supervised, segments, self.config.loss)
        class_logits, mask_logits = predictions[-1]
        return {"class_logits": class_logits,
                "mask_logits": stack_if_one_size(self.transform.to_input_size(mask_logits, batch))}

    def postprocess(self, outputs: dict) -> list[PanopticPrediction]:
        """The eval-mode outputs to panoptic results, image by image (no network runs here)."""
        predictions = []
        for index, (class_logits, mask_logits) in enumerate(zip(outputs["class_logits"], outputs["mask_logits"])):
            source = f"image {index} of the batch"
            result = mask_former_panoptic(class_logits, mask_logits, self.categories, self.config.inference, source)
            semantic = semantic_inference(class_logits, mask_logits, self.categories, source)
            predictions.append(PanopticPrediction(
                result.panoptic, semantic=semantic, merge=result,
                outputs={"class_logits": class_logits.float().cpu(), "mask_logits": mask_logits.float().cpu()}))
        return predictions


def for_categories(categories: CategorySet, size: str = "tiny", dataset: str | None = None,
                   **overrides) -> MaskFormer:
    """A ``tiny`` or ``full`` MaskFormer with one class per category; ``dataset`` selects the full
    model's published input size (default COCO's). ``variant="mask2former"`` among the overrides
    gives the full model Mask2Former's decoder, losses and inference."""
    config = config_for_size(size, MaskFormerConfig.tiny, MaskFormerConfig.full, len(categories), dataset=dataset,
                             **overrides)
    return MaskFormer(config, categories)
