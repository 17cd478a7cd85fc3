"""Panoptic-DeepLab (Cheng et al., CVPR 2020): bottom-up, box-free panoptic segmentation.

    images -> ImageBatcher -> dilated ResNet (output stride 16) --res2, res3, res5--+
        +-> semantic decoder (ASPP, stride 8, stride 4) -> semantic head  -> 4x up: logits
        +-> instance decoder (ASPP, stride 8, stride 4) -> centre head    -> 4x up: heatmap
                                                        +-> offset head   -> 4x up, x 4: (dy, dx)
    logits + heatmap + offsets -> chapter 6's post-processing (centres, grouping, majority vote) -> panoptic

One backbone pass feeds two *decoupled* DeepLabV3+ decoders (:class:`DeepLabV3PlusDecoder`):
each has its own ASPP (torchvision's ``ASPP``: a 1x1 branch, three atrous 3x3 branches and
image pooling) on the stride-16 features, then upsamples twice, each time joining a 1x1
projection of the backbone's stride-8 and then stride-4 features (concatenation, two 3x3
convs, or one depthwise-separable 5x5 conv). The semantic head predicts every category
(things and stuff, train-id order); the centre head a heatmap of instance centres; the
offset head, for every pixel, the vector ``(dy, dx)`` to the centre of its instance. All
three predict at stride 4 and are upsampled bilinearly to the input; the offsets are then
multiplied by 4, so that they are in input pixels (the head sees a grid 4 times coarser).
Post-processing is :func:`~panopticlab.postprocess.deeplab.panoptic_deeplab_postprocess`, unchanged.

Tensor shapes, for a batch float [B, 3, H, W] padded to H', W' (multiples of 16):

* features ``res2`` [B, C2, H'/4, W'/4], ``res3`` [B, C3, H'/8, W'/8], ``res5`` [B, C5, H'/16, W'/16]
  (ResNet-52: 256, 512, 2048; the tiny body: 32, 64, 256);
* each decoder -> [B, D, H'/4, W'/4] (D: 256 semantic, 128 instance);
* heads -> [B, K, H'/4, W'/4], [B, 1, ...], [B, 2, ...]; upsampled to [B, ., H', W'], cropped to H, W.

Published defaults (detectron2's ``projects/Panoptic-DeepLab``; :meth:`PanopticDeepLabConfig.full`
names the config file of each dataset): ResNet-52 (ResNet-50 with DeepLab's three-conv stem,
:func:`~.backbones.deeplab_stem`) at output stride 16, ``layer4`` dilated with multi-grid
(1, 2, 4) (dilations 2, 4, 8); ASPP of 256 channels, dilations (6, 12, 18), image pooling
over the window of the training crop (Cityscapes 512 x 1024 px, COCO 640 x 640:
:attr:`PanopticDeepLabConfig.aspp_pooling_crop`), dropout 0.1; projections of 64 (stride 8)
and 32 (stride 4) channels; decoders of 256 (semantic) and 128 (instance) channels; on
Cityscapes regular convs: semantic head 3x3 256 -> 3x3 256 -> 1x1, centre and offset heads
3x3 128 -> 3x3 32 -> 1x1. On COCO depthwise-separable convs (the paper's;
:class:`~.separable.DepthwiseSeparableConv2d`): the ASPP's atrous branches separable 3x3,
each decoder fusion one separable 5x5, semantic head separable 5x5 256 -> 1x1, offset head
separable 5x5 32 -> 1x1, the centre head as on Cityscapes. Predictors initialised
normal(0, 0.001), bias 0; BatchNorm everywhere (detectron2: SyncBN). Post-processing: centre
threshold 0.1, NMS kernel 7, top-k 200, stuff area 2048 (Cityscapes; COCO: 41 and 4096).

Losses (published; each by name, their sum is the objective):

* ``loss_semantic``: hard-pixel-mining cross-entropy (:func:`hard_pixel_mining_loss`): the
  per-pixel cross-entropy times the pixel weight (3 on things under 64 x 64 px), the top 20 %
  of all pixels of the batch averaged (COCO: 100 %, the plain mean), weight 1;
* ``loss_center``: 200 x the MSE of the heatmap (:func:`center_loss`), over every labelled
  non-crowd pixel, normalised by the sum of the weights;
* ``loss_offset``: 0.01 x the L1 distance of the offsets (:func:`offset_loss`), over
  non-crowd thing pixels, normalised by the sum of the weights.

* ``full``: the architecture above. For Cityscapes (19 classes, regular convs) 59,770,678
  parameters: the ResNet-52 body 23,631,808 (ResNet-50's 23,508,032 and the stem's 123,776
  more), the semantic branch (decoder and head) 19,344,339, the instance branch (decoder,
  centre and offset heads) 16,794,531; each ASPP alone has 15,535,104. For COCO (133
  classes, depthwise-separable convs) 30,301,160: the same body, the semantic branch
  3,341,157, the instance branch 3,328,195, each ASPP 3,019,776. detectron2 builds
  59,770,166 and 30,300,648 (its layers, counted one by one in the tests): 512 fewer, since
  each of its two ASPPs pools into a 1x1 conv with bias (256 parameters) where torchvision's
  ``ASPPPooling`` has a conv without bias and a BatchNorm (512). Randomly initialised (no
  ImageNet weights are downloaded).
* ``tiny``: the shipped pretrained tiny ResNet (:func:`~.backbones.tiny_backbone`) with
  narrow decoders, for 128 px images on a CPU (:meth:`PanopticDeepLabConfig.tiny`):
  2,571,852 parameters for the 9 categories of the built-in dataset, 1,226,208 of them the body.

Interface, for images float [B, 3, H, W] in [0, 1]:

* train mode: ``model(images, targets)`` with the collated batch dict holding the
  ``deeplab`` targets (:func:`~panopticlab.data.targets.deeplab_targets`: ``semantic``
  int64 [B, H, W] train ids (void 255), ``semantic_weights`` [B, H, W], ``center``
  [B, 1, H, W], ``center_weights`` [B, H, W], ``offset`` [B, 2, H, W], ``offset_weights``
  [B, H, W]) -> ``loss_semantic``, ``loss_center``, ``loss_offset`` (weighted);
* eval mode: ``model(images)`` -> ``{"logits": float [B, K, H, W], "semantic": int64
  [B, H, W] category ids, "center_heatmap": float [B, 1, H, W], "offsets": float [B, 2, H, W]}``;
* ``model.inference(images)`` -> B :class:`~.common.PanopticPrediction`: the panoptic
  result, the semantic map, ``merge`` the post-processing's
  :class:`~panopticlab.postprocess.deeplab.DeepLabPanoptic`, and ``outputs`` with
  ``semantic_logits`` [K, H, W], ``center_heatmap`` [1, H, W], ``offsets`` [2, H, W]
  (CPU tensors) and the post-processing's steps: ``centers`` (N, 2), ``center_scores``
  (N,), ``instance_map`` (H, W) and ``votes`` (2, H, W) (numpy).

Published training settings: :data:`PUBLISHED_SCHEDULES`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP, ASPPConv
from torchvision.ops.misc import Conv2dNormActivation

from ..data.categories import VOID_LABEL, CategorySet
from ..postprocess.centers import NMS_KERNEL, THRESHOLD, TOP_K
from ..postprocess.deeplab import COCO, LABEL_DIVISOR, panoptic_deeplab_postprocess
from ..postprocess.heuristic import CITYSCAPES_STUFF_AREA, COCO_STUFF_AREA, MergeConfig, scaled_stuff_area
from ..recipe import OptimConfig, PublishedSchedule
from .backbones import STAGE_STRIDES, BackboneConfig, dilated_features, dilation_for_stride, make_norm_layer, \
    set_multi_grid, stage_channels, tiny_backbone
from .common import ImageBatcher, PanopticModel, PanopticPrediction, as_image_list, config_for_size, \
    semantic_targets, stack_if_one_size
from .separable import DepthwiseSeparableConv2d, depthwise_separable_layers

__all__ = ["PanopticDeepLabConfig", "PanopticDeepLab", "DeepLabV3PlusDecoder", "PredictionHead",
           "SeparableASPPConv", "PoolingWindow",
           "PUBLISHED_SCHEDULES", "DEEPLAB_TARGET_KEYS", "hard_pixel_mining_loss",
           "center_loss", "offset_loss", "deeplab_batch_targets", "for_categories"]

#: The stride of the heads' outputs (``res2``): offsets predicted there are multiplied by it.
HEAD_STRIDE = STAGE_STRIDES["layer1"]
#: Backbone stage -> feature name (detectron2's): strides 4, 8 and 16 at output stride 16.
FEATURES = {"layer1": "res2", "layer2": "res3", "layer4": "res5"}
#: The entries of the collated ``deeplab`` targets the losses read.
DEEPLAB_TARGET_KEYS = ("semantic", "semantic_weights", "center", "center_weights", "offset", "offset_weights")


@dataclass
class PanopticDeepLabConfig:
    """Every choice of Panoptic-DeepLab; defaults are the published (``full``, Cityscapes) ones.

    Attributes:
        num_classes: semantic classes: every category, things and stuff (Cityscapes 19, COCO 133).
        backbone: the body (``"resnet52"``: ResNet-50 with DeepLab's stem).
        output_stride: of ``res5`` (16: ``layer4`` dilated).
        multi_grid: dilation multipliers of ``layer4``'s blocks ((1, 2, 4)); ``None``: torchvision's dilation.
        aspp_channels: output channels of each ASPP (256).
        aspp_dilations: rates of the three atrous branches ((6, 12, 18) at output stride 16).
        aspp_dropout: dropout after the ASPP projection (0.1; torchvision's ``ASPP`` has 0.5).
        aspp_pooling_crop: the training crop (H, W) in pixels that sets the window of each
            ASPP's image pooling: crop / ``output_stride`` cells, each side clipped to the map
            (:class:`PoolingWindow`); ``(512, 1024)``: a 32 x 64 window. It is the model's, not
            the recipe's: a run on other crops keeps it unless it is set. detectron2 does the
            same (``DeepLabV3PlusHead``: ``pool_kernel_size`` = ``INPUT.CROP.SIZE`` // the res5
            stride; ``ASPP``: ``AvgPool2d(pool_kernel_size, stride=1)``, the averages resized
            bilinearly to the map): a training crop's map is the window, so training pools
            globally; a 1024 x 2048 Cityscapes test image gives a 64 x 128 map, on which
            33 x 65 windows of 32 x 64 cells (the 512 x 1024 px the model learnt to pool over)
            are averaged and resized. Global pooling there would average four times the area
            it was trained on. Two departures: detectron2 raises an error on a map that is not
            a multiple of the window (a smaller image included), where the clipped window pools
            any size (globally, where the map is smaller than the window); and on COCO
            detectron2 pads every batch, in training and test, to 640 x 640
            (``SIZE_DIVISIBILITY: 640``), so its 40 x 40 window pools the padded canvas
            (padding is 0 after normalisation: the mean colour) with the image, where here the
            padding is to multiples of 16 and the pooling averages the image alone (a 640 x 427
            image: 40 x 27 cells rather than 40 x 40); the effect on PQ is not measured.
            ``None``: global average pooling at every size (torchvision's ``ASPP``).
        depthwise_separable: detectron2's ``USE_DEPTHWISE_SEPARABLE_CONV`` (the paper's heads;
            :class:`~.separable.DepthwiseSeparableConv2d`: depthwise conv, norm, ReLU, 1x1 conv,
            norm, ReLU): each ASPP's three atrous 3x3 convs become separable 3x3 convs at the
            same rates; each decoder fusion (two 3x3 convs) one separable 5x5 conv; the semantic
            and offset heads' two 3x3 convs one separable 5x5 conv. The centre head keeps its
            two 3x3 convs, as in detectron2's ``PanopticDeepLabInsEmbedHead``. ``False``:
            regular convs (Cityscapes' published config).
        low_level_channels: 1x1 projections of the stride-8 and stride-4 features ((64, 32)).
        semantic_decoder_channels: the semantic decoder's fusion convs (256).
        semantic_head_channels: the semantic head's convs (256).
        instance_decoder_channels: the instance decoder's fusion convs (128).
        instance_head_channels: the second conv of the centre and offset heads (32).
        predictor_std: std of the normal initialisation of the three 1x1 predictors (0.001).
        top_k_percent: fraction of the batch's pixels the semantic loss averages (0.2; 1.0: all).
        semantic_loss_weight, center_loss_weight, offset_loss_weight: 1, 200, 0.01.
        ignore_index: semantic target label without loss (void).
        center_threshold, nms_kernel, top_k: centre extraction (0.1, 7, 200).
        stuff_area: a stuff category with fewer pixels becomes void (2048); ``None``: the
            heuristic merge's published 4096 px scaled to each image's area
            (:func:`~panopticlab.postprocess.heuristic.scaled_stuff_area`), as every tiny model.
        input_scale: enlarge the images by this factor before the network, and bring its
            maps back to the input's size (the offsets into input pixels); ``None``: not.
    """

    num_classes: int = 19
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig("resnet52", norm="batch"))
    output_stride: int = 16
    multi_grid: tuple[int, ...] | None = (1, 2, 4)
    aspp_channels: int = 256
    aspp_dilations: tuple[int, ...] = (6, 12, 18)
    aspp_dropout: float = 0.1
    aspp_pooling_crop: tuple[int, int] | None = (512, 1024)
    depthwise_separable: bool = False
    low_level_channels: tuple[int, int] = (64, 32)
    semantic_decoder_channels: int = 256
    semantic_head_channels: int = 256
    instance_decoder_channels: int = 128
    instance_head_channels: int = 32
    predictor_std: float = 0.001
    top_k_percent: float = 0.2
    semantic_loss_weight: float = 1.0
    center_loss_weight: float = 200.0
    offset_loss_weight: float = 0.01
    ignore_index: int = VOID_LABEL
    center_threshold: float = THRESHOLD
    nms_kernel: int = NMS_KERNEL
    top_k: int | None = TOP_K
    stuff_area: int | None = CITYSCAPES_STUFF_AREA
    input_scale: float | None = None

    @classmethod
    def full(cls, num_classes: int = 19, dataset: str = "cityscapes", **overrides) -> "PanopticDeepLabConfig":
        """The published Panoptic-DeepLab R52-DC5 of detectron2's ``projects/Panoptic-DeepLab`` for ``dataset``.

        * ``"cityscapes"`` (the defaults):
          ``configs/Cityscapes-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024.yaml``
          on ``Base-PanopticDeepLab-OS16.yaml``: regular convs, the ASPP pooling window of the
          512 x 1024 crop. (The ``..._crop_512_1024_dsconv.yaml`` variant of the same model zoo
          is this with ``depthwise_separable=True``.)
        * ``"coco"``:
          ``configs/COCO-PanopticSegmentation/panoptic_deeplab_R_52_os16_mg124_poly_200k_bs64_crop_640_640_coco_dsconv.yaml``
          on the same base: depthwise-separable convs (``USE_DEPTHWISE_SEPARABLE_CONV: True``),
          the plain-mean semantic loss (``LOSS_TOP_K: 1.0``), NMS kernel 41, stuff area 4096,
          the pooling window of the 640 x 640 crop (its ``SIZE_DIVISIBILITY: 640`` padding is
          not copied: see ``aspp_pooling_crop``).
        """
        published = {"cityscapes": {},
                     "coco": dict(top_k_percent=1.0, nms_kernel=COCO["nms_kernel"], stuff_area=COCO["stuff_area"],
                                  depthwise_separable=True, aspp_pooling_crop=(640, 640))}
        if dataset not in published:
            raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(published)}")
        return replace(cls(num_classes=num_classes, **published[dataset]), **overrides)

    @classmethod
    def tiny(cls, num_classes: int, **overrides) -> "PanopticDeepLabConfig":
        """A narrow Panoptic-DeepLab that trains on ~128 px images on a CPU in minutes.

        * ``backbone``: the body every tiny model starts from (:func:`~.backbones.tiny_backbone`,
          widths 32-256, pretrained, stem and ``layer1`` frozen), dilated to output stride 16
          as published; ``multi_grid=None``: its ``layer4`` has a single block.
        * ``aspp_dilations=(2, 4, 6)``: a third of the published rates. A 128 px image gives an
          8 x 8 stride-16 map, where rates 12 and 18 would reach only padding beyond the centre
          tap; the largest published rate, 18, is over half the 32 rows of a 512 x 1024 crop's
          stride-16 map, 6 is three quarters of the 8 rows here.
        * ``aspp_channels=64``, ``semantic_decoder_channels=64``, ``semantic_head_channels=64``,
          ``instance_decoder_channels=32``: a quarter of the published widths (the body's widths
          are an eighth of ResNet-50's); ``instance_head_channels`` stays at the published 32.
        * ``low_level_channels=(32, 16)``: halved, as the original code's instance branch.
        * ``aspp_pooling_crop=None``: global image pooling; the tiny model trains on whole
          images, not on crops of larger ones.
        * ``stuff_area=None``: 2048 px would be an eighth of a 128 x 128 image; like every tiny
          model of the book it uses the heuristic merge's 4096 px scaled to the image (219 px at
          128 x 128), so the methods are compared with one stuff rule.
        * ``input_scale=2``: the images enlarged twice inside, as the tiny detectors'
          (:meth:`~.mask_rcnn.MaskRCNNConfig.tiny`): half the built-in data's things cover
          fewer than 64 px, too few cells of the stride-4 maps to place a centre and its
          offsets on.
        """
        config = cls(num_classes=num_classes, backbone=tiny_backbone(), multi_grid=None, aspp_channels=64,
                     aspp_dilations=(2, 4, 6), aspp_pooling_crop=None, low_level_channels=(32, 16),
                     semantic_decoder_channels=64, semantic_head_channels=64, instance_decoder_channels=32,
                     stuff_area=None, input_scale=2.0)
        return replace(config, **overrides)

    def stuff_area_for(self, image_area: int) -> int:
        """The stuff area of the post-processing in pixels for an image of ``image_area`` pixels.

        With ``stuff_area=None``: the heuristic merge's scaled limit rounded up, which keeps
        exactly the stuff the merge keeps (it drops a region of fewer pixels than the limit).
        """
        if self.stuff_area is None:
            return math.ceil(scaled_stuff_area(COCO_STUFF_AREA, image_area))
        return int(self.stuff_area)

    def postprocess_options(self, image_area: int) -> dict:
        """Keyword options of :func:`~panopticlab.postprocess.deeplab.panoptic_deeplab_postprocess`."""
        return dict(threshold=self.center_threshold, nms_kernel=self.nms_kernel, top_k=self.top_k,
                    stuff_area=self.stuff_area_for(image_area), label_divisor=LABEL_DIVISOR)


# Adam without weight decay, a linear warmup of 1000 iterations, poly decay (power 0.9)
_DEEPLAB_SOLVER = OptimConfig(optimizer="adam", lr=0.001, weight_decay=0.0, warmup_steps=1000, schedule="poly",
                              poly_power=0.9)
# detectron2 starts from its ImageNet R-52 (detectron2://DeepLab/R-52.pkl), which torchvision has not
_DEEPLAB_START = ("starts from random weights unless train --weights FILE gives that run's ImageNet R-52 in "
                  "torchvision's names; BatchNorm per process (SyncBN there)")
_DEEPLAB_BASE = ("detectron2 projects/Panoptic-DeepLab/configs/Cityscapes-PanopticSegmentation/"
                 "Base-PanopticDeepLab-OS16.yaml")
PUBLISHED_SCHEDULES = {
    "cityscapes": PublishedSchedule(
        "cityscapes", 32, 90_000, _DEEPLAB_SOLVER, crop_size=(512, 1024), test_size=1024, augment_scale=(0.5, 2.0),
        inputs="images rescaled 0.5-2.0 (short side 512-2048), 512 x 1024 crops, flip",
        source=_DEEPLAB_BASE + " + panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_1024.yaml "
                               "(the paper: 1025 x 2049 crops, 60k iterations)",
        differences="the rescaling factor is drawn uniformly from 0.5-2.0, where detectron2 draws the short "
                    "side from a list over the same range; " + _DEEPLAB_START),
    "coco": PublishedSchedule(
        "coco", 64, 200_000, _DEEPLAB_SOLVER.replace(lr=0.0005), crop_size=(640, 640), test_size=640,
        short_sides=tuple(int(x * 0.1 * 640) for x in range(5, 16)), max_size=640,
        inputs="short side drawn from 320-960 (steps of 64), then shrunk so that the long side is <= 640 "
               "(MAX_SIZE_TRAIN: detectron2's ResizeShortestEdge), 640 x 640 crops, flip",
        source="detectron2 projects/Panoptic-DeepLab/configs/COCO-PanopticSegmentation/panoptic_deeplab_R_52_os16_"
               "mg124_poly_200k_bs64_crop_640_640_coco_dsconv.yaml on the Cityscapes base (warmup and weight decay "
               "from there)",
        differences=_DEEPLAB_START),
}


class PredictionHead(nn.Sequential):
    """Two 3x3 conv + norm + ReLU (``in_channels`` -> ``in_channels`` -> ``channels``), a 1x1 predictor.

    [B, in_channels, h, w] -> [B, out_channels, h, w]. With ``separable``, one depthwise-separable
    5x5 conv (``in_channels`` -> ``channels``, :class:`~.separable.DepthwiseSeparableConv2d`)
    replaces the two 3x3 convs: the same receptive field (detectron2's heads with
    ``USE_DEPTHWISE_SEPARABLE_CONV``). The predictor (``self.predictor``) starts from
    normal(0, ``std``) weights and zero bias, so every head's first outputs are close to zero.
    """

    def __init__(self, in_channels: int, channels: int, out_channels: int, std: float = 0.001,
                 norm_layer=nn.BatchNorm2d, separable: bool = False):
        if separable:
            layers = [DepthwiseSeparableConv2d(in_channels, channels, 5, norm_layer=norm_layer)]
        else:
            layers = [Conv2dNormActivation(in_channels, in_channels, 3, norm_layer=norm_layer),
                      Conv2dNormActivation(in_channels, channels, 3, norm_layer=norm_layer)]
        super().__init__(*layers, nn.Conv2d(channels, out_channels, 1))
        nn.init.normal_(self.predictor.weight, 0.0, std)
        nn.init.zeros_(self.predictor.bias)

    @property
    def predictor(self) -> nn.Conv2d:
        return self[-1]


class SeparableASPPConv(ASPPConv):
    """An atrous branch of torchvision's ``ASPP`` as a depthwise-separable 3x3 conv at ``dilation``.

    [B, in_channels, h, w] -> [B, out_channels, h, w]: the layers of
    :func:`~.separable.depthwise_separable_layers` (``self[0]`` the dilated depthwise conv). An
    ``ASPPConv``, so that what reads an ``ASPP``'s branches (rates, widths) reads this one too.
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int, norm_layer=nn.BatchNorm2d):
        # ASPPConv.__init__ would build the regular conv: build the separable layers instead
        nn.Sequential.__init__(self, *depthwise_separable_layers(in_channels, out_channels, 3, dilation, norm_layer))


class PoolingWindow(nn.Module):
    """Average pooling over ``window`` (h, w) cells at stride 1, each side clipped to the map.

    [B, C, H, W] -> [B, C, H - h' + 1, W - w' + 1] with h' = min(h, H), w' = min(w, W): a map
    no larger than the window gives [B, C, 1, 1], the global average. In the image-pooling
    branch of an ``ASPP`` (``ASPPPooling``, which resizes its output bilinearly to the map)
    it is detectron2's ``AvgPool2d(pool_kernel_size, stride=1)``, extended to maps that are
    not multiples of the window (see :attr:`PanopticDeepLabConfig.aspp_pooling_crop`).
    """

    def __init__(self, window: tuple[int, int]):
        super().__init__()
        if len(window) != 2 or min(window) < 1:
            raise ValueError(f"the pooling window is (h, w) cells, each at least 1, got {tuple(window)}")
        self.window = (int(window[0]), int(window[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = (min(self.window[0], x.shape[-2]), min(self.window[1], x.shape[-1]))
        return F.avg_pool2d(x, kernel, stride=1)

    def extra_repr(self) -> str:
        return f"window={self.window}"


class DeepLabV3PlusDecoder(nn.Module):
    """ASPP on the stride-16 features, then two fusion stages at strides 8 and 4.

    ``aspp`` is torchvision's ``ASPP`` (``in_channels["res5"]`` -> ``aspp_channels``; its
    dropout set to ``dropout``): a 1x1 branch, one atrous 3x3 branch per rate, image pooling
    (global, or over ``pooling_window`` cells: :class:`PoolingWindow`), concatenated and
    projected by a 1x1 conv. Each stage ``name`` in ``("res3", "res2")`` projects
    ``features[name]`` with a 1x1 conv + norm + ReLU (``project[name]``), upsamples the
    running map bilinearly to its size, concatenates ``[projection, map]`` and fuses them
    with two 3x3 conv + norm + ReLU (``fuse[name]``, -> ``channels``).

    With ``separable`` (detectron2's ``USE_DEPTHWISE_SEPARABLE_CONV``), the atrous branches
    are :class:`SeparableASPPConv` and each fusion is one depthwise-separable 5x5 conv
    (:class:`~.separable.DepthwiseSeparableConv2d`).

    ``features`` (``res2`` / ``res3`` / ``res5``) -> [B, channels, h2, w2] at the size of ``res2``.
    """

    stages = ("res3", "res2")

    def __init__(self, in_channels: Mapping[str, int], aspp_channels: int, aspp_dilations: Sequence[int],
                 dropout: float, low_level_channels: Sequence[int], channels: int, norm_layer=nn.BatchNorm2d,
                 separable: bool = False, pooling_window: tuple[int, int] | None = None):
        super().__init__()
        if len(low_level_channels) != len(self.stages):
            raise ValueError(f"low_level_channels needs one width for each of {self.stages}, got "
                             f"{tuple(low_level_channels)}")
        self.aspp = ASPP(in_channels["res5"], list(aspp_dilations), aspp_channels)
        for module in self.aspp.project:
            if isinstance(module, nn.Dropout):
                module.p = dropout
        branches = self.aspp.convs
        if separable:  # torchvision's ASPP normalises every branch with BatchNorm2d: so do these
            for index, rate in enumerate(aspp_dilations, start=1):
                branches[index] = SeparableASPPConv(in_channels["res5"], aspp_channels, rate)
        if pooling_window is not None:  # ASPPPooling: AdaptiveAvgPool2d(1), conv, norm, ReLU, then resized to the map
            branches[-1][0] = PoolingWindow(pooling_window)
        self.project = nn.ModuleDict()
        self.fuse = nn.ModuleDict()
        previous = aspp_channels
        for name, projected in zip(self.stages, low_level_channels):
            self.project[name] = Conv2dNormActivation(in_channels[name], projected, 1, norm_layer=norm_layer)
            if separable:
                self.fuse[name] = DepthwiseSeparableConv2d(projected + previous, channels, 5, norm_layer=norm_layer)
            else:
                self.fuse[name] = nn.Sequential(
                    Conv2dNormActivation(projected + previous, channels, 3, norm_layer=norm_layer),
                    Conv2dNormActivation(channels, channels, 3, norm_layer=norm_layer))
            previous = channels

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        y = self.aspp(features["res5"])
        for name in self.stages:
            low = self.project[name](features[name])
            y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
            y = self.fuse[name](torch.cat([low, y], dim=1))
        return y


# --- losses -------------------------------------------------------------------------------------
def hard_pixel_mining_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
                           top_k_percent: float = 0.2, ignore_index: int = VOID_LABEL) -> torch.Tensor:
    """DeepLab's bootstrapped cross-entropy (detectron2's ``DeepLabCE``).

    Args:
        logits: float [B, K, H, W]. labels: int64 [B, H, W], ``ignore_index`` without loss.
        weights: float [B, H, W] per-pixel weights, or ``None`` (all 1).
        top_k_percent: the fraction of the B * H * W pixel losses that are averaged, the
            largest first; ignored pixels count (their loss is 0), as in detectron2. 1.0:
            the mean over all pixels.

    Returns:
        a scalar: the mean of the ``max(1, int(top_k_percent * B * H * W))`` largest
        weighted per-pixel cross-entropies.
    """
    pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    if weights is not None:
        pixel = pixel * weights
    pixel = pixel.flatten()
    if top_k_percent == 1.0:
        return pixel.mean()
    k = max(1, int(top_k_percent * pixel.numel()))
    return torch.topk(pixel, k, sorted=False).values.mean()


def _weighted_mean(loss: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(loss * weights) / sum(weights) for loss [B, C, H, W] and weights [B, H, W]; 0 without weight."""
    total = (loss * weights[:, None]).sum()
    # every term is 0 when the weights are: the sum stays 0 (and in the graph) whatever the divisor
    return total / weights.sum().clamp(min=torch.finfo(total.dtype).tiny)


def center_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted MSE of the centre heatmap: sum w (p - t)^2 / sum w ([B, 1, H, W] maps, weights [B, H, W])."""
    return _weighted_mean((prediction - target).square(), weights)


def offset_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted L1 of the offsets: sum w (|dy - dy*| + |dx - dx*|) / sum w ([B, 2, H, W], weights [B, H, W])."""
    return _weighted_mean((prediction - target).abs(), weights)


def deeplab_batch_targets(targets, images: torch.Tensor, num_classes: int,
                          ignore_index: int = VOID_LABEL) -> dict[str, torch.Tensor]:
    """The collated ``deeplab`` targets for ``images`` [B, 3, H, W], checked and on their device.

    Returns:
        :data:`DEEPLAB_TARGET_KEYS` -> tensors: ``semantic`` int64 [B, H, W], the maps float
        (the images' dtype): ``center`` [B, 1, H, W], ``offset`` [B, 2, H, W], the weights [B, H, W].

    Raises:
        ValueError: no ``deeplab`` entry, a missing key, a wrong shape or dtype, or train
            ids outside ``0..num_classes - 1`` and ``ignore_index``.
    """
    if not isinstance(targets, dict) or "deeplab" not in targets:
        raise ValueError("training Panoptic-DeepLab needs the collated target dict with 'deeplab' "
                         "(PanopticDataset(..., targets=('deeplab',)))")
    deeplab = targets["deeplab"]
    if not isinstance(deeplab, dict):
        raise ValueError(f"targets['deeplab'] must be the collated dict of deeplab_targets, "
                         f"got {type(deeplab).__name__}")
    missing = [key for key in DEEPLAB_TARGET_KEYS if key not in deeplab]
    if missing:
        raise ValueError(f"the 'deeplab' targets lack {missing} (keys: {sorted(deeplab)})")
    semantic = semantic_targets(deeplab, images)
    void = semantic == ignore_index
    known = (semantic >= 0) & (semantic < num_classes)
    if not bool((known | void).all()):
        bad = sorted(set(semantic[~(known | void)].unique().tolist()))[:10]
        raise ValueError(f"semantic targets hold train ids {bad}, outside 0..{num_classes - 1} and void "
                         f"{ignore_index} (categories unknown to the model)")
    batch, height, width = semantic.shape
    shapes = {"semantic_weights": (batch, height, width), "center": (batch, 1, height, width),
              "center_weights": (batch, height, width), "offset": (batch, 2, height, width),
              "offset_weights": (batch, height, width)}
    checked = {"semantic": semantic}
    for key, shape in shapes.items():
        value = deeplab[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape or not value.is_floating_point():
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"deeplab target {key!r} must be floating point of shape {shape} for images "
                             f"{tuple(images.shape)}, got {got}")
        checked[key] = value.to(device=images.device, dtype=images.dtype)
    return checked


# --- the model ----------------------------------------------------------------------------------
class PanopticDeepLab(PanopticModel):
    """Panoptic-DeepLab from a :class:`PanopticDeepLabConfig`; see the module docstring.

    Args:
        config: the architecture, the losses and the post-processing settings.
        categories: the dataset's categories; the semantic classes are all of them, in
            train-id order (``categories.ids``).
        merge: the heuristic merge's settings, for the ``semantic_only`` ablation the
            evaluator can score from this model's semantic map (its own result never uses them).
    """

    def __init__(self, config: PanopticDeepLabConfig, categories: CategorySet, merge: MergeConfig = MergeConfig()):
        super().__init__()
        if config.num_classes != len(categories):
            raise ValueError(f"the categories have {len(categories)} classes, the config {config.num_classes}")
        if 0 <= config.ignore_index < config.num_classes:
            raise ValueError(f"ignore_index={config.ignore_index} collides with a class (0..{config.num_classes - 1})")
        if not 0 < config.top_k_percent <= 1:
            raise ValueError(f"top_k_percent must lie in (0, 1], got {config.top_k_percent}")
        crop = config.aspp_pooling_crop
        if crop is not None and (len(crop) != 2 or any(side <= 0 or side % config.output_stride for side in crop)):
            raise ValueError(f"aspp_pooling_crop must be (H, W) in pixels, positive multiples of the output stride "
                             f"{config.output_stride} (the window is the crop's stride-{config.output_stride} map), "
                             f"got {crop}")
        self.config = config
        self.categories = categories
        self.merge_config = merge
        # padded to multiples of the output stride: every feature map and the 4x upsampling align
        self.transform = ImageBatcher(None, size_divisible=config.output_stride)
        body = config.backbone.build(replace_stride_with_dilation=dilation_for_stride(config.output_stride))
        if config.multi_grid is not None:
            set_multi_grid(body.layer4, STAGE_STRIDES["layer4"] // config.output_stride, config.multi_grid)
        channels = dict(zip(("res2", "res3", "res4", "res5"), stage_channels(body)))
        self.backbone = dilated_features(body, FEATURES)
        norm_layer = make_norm_layer(config.backbone.norm)

        window = None
        if config.aspp_pooling_crop is not None:  # the crop's size on the ASPP's map (detectron2's pool_kernel_size)
            window = tuple(side // config.output_stride for side in config.aspp_pooling_crop)
        separable = config.depthwise_separable

        def decoder(width: int) -> DeepLabV3PlusDecoder:
            return DeepLabV3PlusDecoder(channels, config.aspp_channels, config.aspp_dilations, config.aspp_dropout,
                                        config.low_level_channels, width, norm_layer, separable, window)

        self.semantic_decoder = decoder(config.semantic_decoder_channels)
        self.semantic_head = PredictionHead(config.semantic_decoder_channels, config.semantic_head_channels,
                                            config.num_classes, config.predictor_std, norm_layer, separable)
        self.instance_decoder = decoder(config.instance_decoder_channels)
        # detectron2 keeps the centre head's two 3x3 convs with USE_DEPTHWISE_SEPARABLE_CONV
        self.center_head = PredictionHead(config.instance_decoder_channels, config.instance_head_channels, 1,
                                          config.predictor_std, norm_layer)
        self.offset_head = PredictionHead(config.instance_decoder_channels, config.instance_head_channels, 2,
                                          config.predictor_std, norm_layer, separable)
        self.register_buffer("train_id_to_category", torch.tensor(list(categories.ids)).long(), persistent=False)

    def predict(self, tensors: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three maps of a normalised, padded batch [B, 3, H', W'], each at [B, ., H', W'].

        Returns:
            ``logits`` [B, K, H', W'], ``center_heatmap`` [B, 1, H', W'] and ``offsets``
            [B, 2, H', W']: the heads' stride-4 outputs upsampled bilinearly; the offsets
            then multiplied by 4 (:data:`HEAD_STRIDE`), into input pixels (divided by the
            config's ``input_scale`` when the network saw the images enlarged).
        """
        size, scale = tensors.shape[-2:], self.config.input_scale or 1.0
        if scale != 1:
            tensors = F.interpolate(tensors, scale_factor=scale, mode="bilinear", align_corners=False)
        features = self.backbone(tensors)
        instance = self.instance_decoder(features)
        outputs = {"logits": self.semantic_head(self.semantic_decoder(features)),
                   "center_heatmap": self.center_head(instance), "offsets": self.offset_head(instance)}
        outputs = {key: F.interpolate(value, size=size, mode="bilinear", align_corners=False)
                   for key, value in outputs.items()}
        outputs["offsets"] = outputs["offsets"] * (HEAD_STRIDE / scale)
        return outputs

    def losses(self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> dict:
        """The three weighted losses of outputs at the targets' size (:func:`deeplab_batch_targets`)."""
        config = self.config
        semantic = hard_pixel_mining_loss(outputs["logits"], targets["semantic"], targets["semantic_weights"],
                                          config.top_k_percent, config.ignore_index)
        center = center_loss(outputs["center_heatmap"], targets["center"], targets["center_weights"])
        offset = offset_loss(outputs["offsets"], targets["offset"], targets["offset_weights"])
        return {"loss_semantic": config.semantic_loss_weight * semantic,
                "loss_center": config.center_loss_weight * center,
                "loss_offset": config.offset_loss_weight * offset}

    def forward(self, images, targets: dict | None = None):
        """See the module docstring."""
        image_list = as_image_list(images)
        if self.training:
            if len(image_list) < 2:
                raise ValueError("training Panoptic-DeepLab needs at least 2 images per batch: the image-pooling "
                                 "branch of each ASPP normalises a 1 x 1 map over the batch")
            checked = deeplab_batch_targets(targets, images, self.config.num_classes, self.config.ignore_index)
        batch = self.transform.batch(image_list)
        outputs = self.predict(batch.images.tensors)
        if self.training:
            height, width = checked["semantic"].shape[-2:]  # the padding (bottom, right) has no target
            return self.losses({key: value[..., :height, :width] for key, value in outputs.items()}, checked)
        # no resizing (ImageBatcher(None)): this only crops the padding, so offsets keep their unit
        outputs = {key: self.transform.to_input_size(value, batch) for key, value in outputs.items()}
        outputs["semantic"] = [self.train_id_to_category[logits.argmax(dim=0)] for logits in outputs["logits"]]
        return {key: stack_if_one_size(value) for key, value in outputs.items()}

    def postprocess(self, outputs: dict) -> list[PanopticPrediction]:
        """Centres, grouping and majority vote on the eval-mode outputs, image by image (no network runs here)."""
        predictions = []
        for index, (logits, semantic, heatmap, offsets) in enumerate(
                zip(outputs["logits"], outputs["semantic"], outputs["center_heatmap"], outputs["offsets"])):
            result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, self.categories,
                                                  **self.config.postprocess_options(semantic.numel()),
                                                  source=f"image {index} of the batch")
            steps = {"centers": result.centers, "center_scores": result.center_scores,
                     "instance_map": result.instance_map, "votes": result.votes}
            predictions.append(PanopticPrediction(
                result.panoptic, semantic=semantic.cpu().numpy(), merge=result,
                outputs={"semantic_logits": logits.cpu(), "center_heatmap": heatmap.cpu(), "offsets": offsets.cpu(),
                         **steps}))
        return predictions


def for_categories(categories: CategorySet, size: str = "tiny", dataset: str | None = None,
                   **overrides) -> PanopticDeepLab:
    """A ``tiny`` or ``full`` Panoptic-DeepLab with one semantic class per category; ``dataset``
    selects the full model's published configuration (default Cityscapes', the paper's main one)."""
    config = config_for_size(size, PanopticDeepLabConfig.tiny, PanopticDeepLabConfig.full, len(categories),
                             dataset=dataset, **overrides)
    return PanopticDeepLab(config, categories, merge=MergeConfig.for_size(size))
