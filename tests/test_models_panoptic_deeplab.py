"""Panoptic-DeepLab: the published architectures (Cityscapes' regular convs, COCO's depthwise-separable
ones) and their stated sizes against detectron2's layers counted by hand, the ASPP's image pooling window,
the three losses by hand, offsets in input pixels, inference as the chapter's post-processing of the
model's outputs, bad input."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.models.segmentation.deeplabv3 import ASPPConv, ASPPPooling
from torchvision.ops.misc import Conv2dNormActivation

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation
from panopticlab.data.categories import VOID_LABEL, Category, CategorySet
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.data.targets import deeplab_targets
from panopticlab.models import panoptic_deeplab, zoo
from panopticlab.models.backbones import BackboneConfig, set_multi_grid
from panopticlab.models.common import PanopticPrediction
from panopticlab.models.panoptic_deeplab import (
    DEEPLAB_TARGET_KEYS,
    PUBLISHED_SCHEDULES,
    PanopticDeepLab,
    PanopticDeepLabConfig,
    PoolingWindow,
    SeparableASPPConv,
    center_loss,
    for_categories,
    hard_pixel_mining_loss,
    offset_loss,
)
from panopticlab.models.separable import DepthwiseSeparableConv2d
from panopticlab.postprocess.deeplab import panoptic_deeplab_postprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOSSES = {"loss_semantic", "loss_center", "loss_offset"}
SKY, ROAD = 11, 12


def cityscapes_like_categories() -> CategorySet:
    return CategorySet([Category(24 + i, f"thing{i}", True) for i in range(8)]
                       + [Category(7 + i, f"stuff{i}", False) for i in range(11)])


@pytest.fixture(scope="module")
def batch():
    dataset = PanopticDataset(SyntheticPanoptic(4, 64, split="train"), CATS, targets=("deeplab",))
    return collate_panoptic([dataset[i] for i in range(4)])


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return for_categories(CATS, "tiny")


def stated_numbers(text):
    return [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", text)]


def count(*modules):
    return sum(p.numel() for module in modules for p in module.parameters())


def coco_like_categories(num_classes=133) -> CategorySet:
    return CategorySet([Category(i + 1, f"c{i}", i < 80) for i in range(num_classes)])


# --- detectron2's Panoptic-DeepLab, layer by layer ------------------------------------------------
# Written from its code: projects/DeepLab/deeplab/semantic_seg.py (DeepLabV3PlusHead),
# projects/Panoptic-DeepLab/panoptic_deeplab/panoptic_seg.py (the two heads), detectron2/layers/
# aspp.py and blocks.py (DepthwiseSeparableConv2d), with Base-PanopticDeepLab-OS16.yaml's widths.
# Norm "SyncBN": a weight and a bias per channel, and the convs it follows have no bias.
def d2_conv(cin, cout, k, groups=1, bias=False):
    return cin // groups * cout * k * k + (cout if bias else 0)


def d2_norm(channels):
    return 2 * channels


def d2_separable(cin, cout, k):  # depthwise k x k + norm, pointwise 1 x 1 + norm
    return d2_conv(cin, cin, k, groups=cin) + d2_norm(cin) + d2_conv(cin, cout, 1) + d2_norm(cout)


def d2_r52():  # build_resnet_deeplab_backbone: DeepLabStem (3x3 convs 64, 64, 128), ResNet-50's stages
    total, channels = 0, 3
    for width in (64, 64, 128):
        total += d2_conv(channels, width, 3) + d2_norm(width)
        channels = width
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            total += (d2_conv(channels, width, 1) + d2_norm(width) + d2_conv(width, width, 3) + d2_norm(width)
                      + d2_conv(width, 4 * width, 1) + d2_norm(4 * width))
            if block == 0:  # the projection shortcut
                total += d2_conv(channels, 4 * width, 1) + d2_norm(4 * width)
            channels = 4 * width
    return total


def d2_aspp(dsconv, cin=2048, width=256):
    atrous = d2_separable(cin, width, 3) if dsconv else d2_conv(cin, width, 3) + d2_norm(width)
    pooling = d2_conv(cin, width, 1, bias=True)  # no norm after the pooled 1x1 map there
    return (d2_conv(cin, width, 1) + d2_norm(width) + 3 * atrous + pooling
            + d2_conv(5 * width, width, 1) + d2_norm(width))


def d2_decoder(width, dsconv):  # ASPP, then res3 (project 64) and res2 (project 32) stages
    total, previous = d2_aspp(dsconv), 256
    for cin, projected in ((512, 64), (256, 32)):
        total += d2_conv(cin, projected, 1) + d2_norm(projected)
        if dsconv:  # one separable 5x5 for the two 3x3 convs
            total += d2_separable(projected + previous, width, 5)
        else:
            total += (d2_conv(projected + previous, width, 3) + d2_norm(width)
                      + d2_conv(width, width, 3) + d2_norm(width))
        previous = width
    return total


def d2_head(cin, channels, outputs, dsconv):
    convs = (d2_separable(cin, channels, 5) if dsconv
             else d2_conv(cin, cin, 3) + d2_norm(cin) + d2_conv(cin, channels, 3) + d2_norm(channels))
    return convs + d2_conv(channels, outputs, 1, bias=True)


def d2_panoptic_deeplab(num_classes, dsconv):
    """(body, semantic branch, instance branch); the centre head keeps its 3x3 convs with dsconv."""
    semantic = d2_decoder(256, dsconv) + d2_head(256, 256, num_classes, dsconv)
    instance = d2_decoder(128, dsconv) + d2_head(128, 32, 1, False) + d2_head(128, 32, 2, dsconv)
    return d2_r52(), semantic, instance


# torchvision's ASPPPooling: a 1x1 conv without bias and a BatchNorm (512) for detectron2's conv with bias (256)
POOLING_NORM = 2 * 256 - 256


# --- the published architecture -----------------------------------------------------------------
def test_full_model_structure_and_stated_parameter_count():
    categories = cityscapes_like_categories()
    model = for_categories(categories, "full")
    config = model.config
    assert config.backbone == BackboneConfig("resnet52", norm="batch") and config.output_stride == 16
    # the features used are at strides 4, 8 and 16 (res5 dilated, not strided)
    with torch.no_grad():
        features = model.backbone.eval()(torch.zeros(1, 3, 64, 96))
    assert {name: (f.shape[1], 64 // f.shape[2], 96 // f.shape[3]) for name, f in features.items()} == \
        {"res2": (256, 4, 4), "res3": (512, 8, 8), "res5": (2048, 16, 16)}
    # DeepLab's stem (3x3 convs 64, 64, 128) and multi-grid (1, 2, 4) on dilation 2
    stem = [m for m in model.backbone.conv1 if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in stem] == [(64, (3, 3), (2, 2)), (64, (3, 3), (1, 1)),
                                                                         (128, (3, 3), (1, 1))]
    assert [block.conv2.dilation for block in model.backbone.layer4] == [(2, 2), (4, 4), (8, 8)]
    assert [block.conv2.padding for block in model.backbone.layer4] == [(2, 2), (4, 4), (8, 8)]

    for decoder, width in ((model.semantic_decoder, 256), (model.instance_decoder, 128)):
        branches = decoder.aspp.convs
        assert [b[0].dilation[0] for b in branches if isinstance(b, ASPPConv)] == [6, 12, 18]
        assert isinstance(branches[-1], ASPPPooling) and branches[0][0].kernel_size == (1, 1)
        assert all(b[0].out_channels == 256 for b in branches if not isinstance(b, ASPPPooling))
        assert [m.p for m in decoder.aspp.project if isinstance(m, nn.Dropout)] == [0.1]
        # image pooling over the 512 x 1024 crop's stride-16 map (detectron2's pool_kernel_size)
        assert isinstance(branches[-1][0], PoolingWindow) and branches[-1][0].window == (32, 64)
        assert {n: p[0].out_channels for n, p in decoder.project.items()} == {"res3": 64, "res2": 32}
        assert [f[0][0].in_channels for f in decoder.fuse.values()] == [64 + 256, 32 + width]
        assert all(conv[0].out_channels == width for f in decoder.fuse.values() for conv in f)

    def widths(head):
        return [layer[0].out_channels for layer in list(head)[:-1]] + [head.predictor.out_channels]

    assert widths(model.semantic_head) == [256, 256, 19] and model.semantic_head[0][0].in_channels == 256
    assert widths(model.center_head) == [128, 32, 1] and model.center_head[0][0].in_channels == 128
    assert widths(model.offset_head) == [128, 32, 2]
    for head in (model.semantic_head, model.center_head, model.offset_head):
        assert head.predictor.weight.std().item() == pytest.approx(0.001, rel=0.5)
        assert not head.predictor.bias.any()
    assert model.semantic_head.predictor.weight.std().item() == pytest.approx(0.001, rel=0.05)  # 4864 draws
    assert (config.top_k_percent, config.center_loss_weight, config.offset_loss_weight) == (0.2, 200.0, 0.01)
    assert (config.center_threshold, config.nms_kernel, config.top_k, config.stuff_area) == (0.1, 7, 200, 2048)
    assert not config.depthwise_separable and config.aspp_pooling_crop == (512, 1024)

    total = count(model)
    body = count(model.backbone)
    semantic = count(model.semantic_decoder, model.semantic_head)
    instance = count(model.instance_decoder, model.center_head, model.offset_head)
    torchvision_body = sum(p.numel() for n, p in resnet50(weights=None).named_parameters() if not n.startswith("fc."))
    stated = stated_numbers(panoptic_deeplab.__doc__)
    assert total == body + semantic + instance
    assert stated[:7] == [total, body, torchvision_body, body - torchvision_body, semantic, instance,
                          count(model.semantic_decoder.aspp)]
    # against detectron2's layers: the same body and heads, one BatchNorm more in each ASPP's pooling
    reference = d2_panoptic_deeplab(19, dsconv=False)
    assert (body, semantic, instance) == (reference[0], reference[1] + POOLING_NORM, reference[2] + POOLING_NORM)
    assert count(model.semantic_decoder.aspp) == d2_aspp(dsconv=False) + POOLING_NORM
    coco = coco_full_on_meta()
    assert stated[7:11] == [count(coco), count(coco.semantic_decoder, coco.semantic_head),
                            count(coco.instance_decoder, coco.center_head, coco.offset_head),
                            count(coco.semantic_decoder.aspp)]
    assert stated[11:13] == [sum(reference), sum(d2_panoptic_deeplab(133, dsconv=True))] == [59_770_166, 30_300_648]
    assert total - stated[11] == count(coco) - stated[12] == 2 * POOLING_NORM == 512
    tiny = for_categories(CATS, "tiny")
    assert stated[13:15] == [count(tiny), count(tiny.backbone)]
    assert isinstance(tiny.semantic_decoder.aspp.convs[-1][0], nn.AdaptiveAvgPool2d)  # global pooling


def coco_full_on_meta(categories=None):
    """The COCO full model, its parameters on the meta device: shapes without memory or initialisation."""
    with torch.device("meta"):
        return for_categories(categories or coco_like_categories(), "full", dataset="coco")


def test_coco_full_model_is_detectron2s_depthwise_separable_one():
    model = coco_full_on_meta()
    config = model.config
    assert config.depthwise_separable and config.aspp_pooling_crop == (640, 640) and config.num_classes == 133

    def separable(block, cin, cout, kernel, dilation=1):
        depthwise, norm1, relu1, pointwise, norm2, relu2 = block
        assert (depthwise.in_channels, depthwise.out_channels, depthwise.groups) == (cin, cin, cin)
        assert (depthwise.kernel_size, depthwise.dilation) == ((kernel, kernel), (dilation, dilation))
        assert depthwise.padding == (dilation * (kernel - 1) // 2,) * 2 and depthwise.bias is None
        assert (pointwise.in_channels, pointwise.out_channels, pointwise.kernel_size) == (cin, cout, (1, 1))
        assert pointwise.bias is None
        assert isinstance(norm1, nn.BatchNorm2d) and norm1.num_features == cin
        assert isinstance(norm2, nn.BatchNorm2d) and norm2.num_features == cout
        assert isinstance(relu1, nn.ReLU) and isinstance(relu2, nn.ReLU)

    for decoder, width in ((model.semantic_decoder, 256), (model.instance_decoder, 128)):
        branches = decoder.aspp.convs
        # the 1x1 branch and the projection stay regular; the atrous branches are separable 3x3 at the rates
        assert isinstance(branches[0], nn.Sequential) and branches[0][0].kernel_size == (1, 1)
        assert [type(b) for b in branches[1:4]] == [SeparableASPPConv] * 3
        for branch, rate in zip(branches[1:4], (6, 12, 18)):
            assert isinstance(branch, ASPPConv)  # what reads torchvision's ASPP reads its rate
            separable(branch, 2048, 256, 3, rate)
        assert isinstance(branches[-1], ASPPPooling) and branches[-1][0].window == (40, 40)
        for name, previous in zip(("res3", "res2"), (256, width)):
            fuse = decoder.fuse[name]
            assert isinstance(fuse, DepthwiseSeparableConv2d)
            separable(fuse, decoder.project[name][0].out_channels + previous, width, 5)
    separable(model.semantic_head[0], 256, 256, 5)
    separable(model.offset_head[0], 128, 32, 5)
    assert len(model.semantic_head) == len(model.offset_head) == 2
    assert [m.predictor.out_channels for m in (model.semantic_head, model.offset_head)] == [133, 2]
    # detectron2 keeps the centre head's two 3x3 convs (PanopticDeepLabInsEmbedHead)
    assert [type(m) for m in model.center_head] == [Conv2dNormActivation, Conv2dNormActivation, nn.Conv2d]
    assert [m[0].kernel_size for m in list(model.center_head)[:2]] == [(3, 3), (3, 3)]
    assert [m[0].out_channels for m in list(model.center_head)[:2]] == [128, 32]

    body, semantic, instance = d2_panoptic_deeplab(133, dsconv=True)
    assert body + semantic + instance == 30_300_648  # issue 25's count of detectron2's COCO model
    assert count(model.backbone) == body
    assert count(model.semantic_decoder, model.semantic_head) == semantic + POOLING_NORM
    assert count(model.instance_decoder, model.center_head, model.offset_head) == instance + POOLING_NORM
    assert count(model) == 30_300_648 + 512 == 30_301_160
    # the regular-conv COCO model the issue measured: 59,799,976
    with torch.device("meta"):
        regular = for_categories(coco_like_categories(), "full", dataset="coco", depthwise_separable=False)
    assert count(regular) == sum(d2_panoptic_deeplab(133, dsconv=False)) + 512 == 59_799_976
    # Cityscapes' dsconv variant (detectron2's ..._crop_512_1024_dsconv.yaml)
    with torch.device("meta"):
        cityscapes = for_categories(cityscapes_like_categories(), "full", depthwise_separable=True)
    assert count(cityscapes) == sum(d2_panoptic_deeplab(19, dsconv=True)) + 512


def test_separable_block_by_hand():
    block = DepthwiseSeparableConv2d(4, 6, 5, dilation=2)
    assert block.depthwise is block[0] and block.pointwise is block[3]
    assert count(block) == 4 * 25 + 2 * 4 + 4 * 6 + 2 * 6
    x = torch.randn(2, 4, 11, 13, generator=torch.Generator().manual_seed(0))
    block.eval()
    with torch.no_grad():
        y = block(x)
        # each channel filtered alone, then mixed by the 1x1 conv
        per_channel = torch.cat([F.conv2d(x[:, c:c + 1], block.depthwise.weight[c:c + 1], padding=4, dilation=2)
                                 for c in range(4)], dim=1)
        expected = F.relu(block[4](F.conv2d(F.relu(block[1](per_channel)), block.pointwise.weight)))
    assert y.shape == (2, 6, 11, 13)
    torch.testing.assert_close(y, expected)
    with pytest.raises(ValueError, match="odd"):
        DepthwiseSeparableConv2d(4, 6, 4)


# --- the ASPP's image pooling ---------------------------------------------------------------------
def test_pooling_window_averages_windows_at_stride_1_and_is_global_up_to_its_size():
    x = torch.randn(2, 3, 4, 8, generator=torch.Generator().manual_seed(0))
    pool = PoolingWindow((2, 4))
    windows = pool(x)
    assert windows.shape == (2, 3, 3, 5)
    torch.testing.assert_close(windows[:, :, 1, 2], x[:, :, 1:3, 2:6].mean(dim=(-2, -1)))
    # the map of a training crop is the window: the global average; a smaller map is clipped to itself
    global_mean = x.mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(PoolingWindow((4, 8))(x), global_mean)
    torch.testing.assert_close(PoolingWindow((32, 64))(x), global_mean)
    torch.testing.assert_close(PoolingWindow((2, 64))(x), F.avg_pool2d(x, (2, 8), stride=1))
    with pytest.raises(ValueError, match="each at least 1"):
        PoolingWindow((0, 4))


def test_aspp_pools_the_training_crops_window_and_upsamples_the_averages():
    torch.manual_seed(0)
    # at the data's size (input_scale=None), so that the maps have the sizes worked out below
    windowed = PanopticDeepLab(PanopticDeepLabConfig.tiny(len(CATS), aspp_pooling_crop=(64, 64), input_scale=None),
                               CATS).eval()
    global_ = PanopticDeepLab(PanopticDeepLabConfig.tiny(len(CATS), input_scale=None), CATS).eval()
    global_.load_state_dict(windowed.state_dict())  # the window has no parameters
    pooling = windowed.semantic_decoder.aspp.convs[-1]
    assert pooling[0].window == (4, 4)  # 64 px / output stride 16
    seen = {}
    pooling.register_forward_hook(lambda module, inputs, output: seen.update(x=inputs[0], y=output))
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # a crop-sized image: a 4 x 4 map, the window: the same as global pooling
        same = windowed(images), global_(images)
        assert seen["x"].shape[-2:] == (4, 4)
        # a larger image (8 x 8 map): 5 x 5 window averages, each through the branch, resized to 8 x 8
        large = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
        other = windowed(large), global_(large)
        x = seen["x"]
        branch = F.avg_pool2d(x, 4, stride=1)
        for layer in list(pooling)[1:]:
            branch = layer(branch)
        torch.testing.assert_close(seen["y"], F.interpolate(branch, size=(8, 8), mode="bilinear",
                                                            align_corners=False))
    for key in ("logits", "center_heatmap", "offsets"):
        torch.testing.assert_close(same[0][key], same[1][key])
    assert not torch.allclose(other[0]["logits"], other[1]["logits"])
    with pytest.raises(ValueError, match="multiples of the output stride"):
        PanopticDeepLab(PanopticDeepLabConfig.tiny(len(CATS), aspp_pooling_crop=(500, 1024)), CATS)


def test_published_settings_for_coco_and_the_schedules():
    coco = PanopticDeepLabConfig.full(133, dataset="coco")
    assert (coco.num_classes, coco.top_k_percent, coco.nms_kernel, coco.stuff_area) == (133, 1.0, 41, 4096)
    assert coco.depthwise_separable and coco.aspp_pooling_crop == (640, 640) == PUBLISHED_SCHEDULES["coco"].crop_size
    cityscapes = PanopticDeepLabConfig.full(19)
    assert not cityscapes.depthwise_separable
    assert cityscapes.aspp_pooling_crop == (512, 1024) == PUBLISHED_SCHEDULES["cityscapes"].crop_size
    with pytest.raises(ValueError, match="unknown dataset"):
        PanopticDeepLabConfig.full(19, dataset="ade20k")
    cityscapes, coco_run = PUBLISHED_SCHEDULES["cityscapes"], PUBLISHED_SCHEDULES["coco"]
    assert (cityscapes.optim.optimizer, cityscapes.optim.poly_power, cityscapes.optim.weight_decay) == ("adam", 0.9, 0.0)
    assert (cityscapes.batch_size, cityscapes.crop_size, cityscapes.iterations, cityscapes.optim.lr) == \
        (32, (512, 1024), 90_000, 0.001)
    assert (coco_run.batch_size, coco_run.crop_size, coco_run.iterations, coco_run.optim.lr) == \
        (64, (640, 640), 200_000, 5e-4)
    optim = zoo.spec("panoptic-deeplab-full").recipe("laptop").optim
    assert (optim.optimizer, optim.lr, optim.weight_decay, optim.schedule, optim.poly_power) == \
        ("adam", 0.001, 0.0, "poly", 0.9)


# --- training -------------------------------------------------------------------------------------
def test_training_step_reports_three_named_losses_and_every_part_learns(model, batch):
    images, targets = batch
    assert targets["deeplab"]["offset_weights"].sum() > 0  # the batch has things
    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSSES and all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    for part in ("backbone", "semantic_decoder", "semantic_head", "instance_decoder", "center_head", "offset_head"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), part
        assert any(g.abs().sum() > 0 for g in grads), part
    # the frozen stem and layer1 of the pretrained tiny body stay out of training
    assert not any(p.requires_grad for p in model.backbone.stem.parameters())


def test_the_full_coco_model_trains_and_predicts_on_small_images(batch):
    """The depthwise-separable layers in the graph: every parameter gets a gradient; 64 px
    images give a 4 x 4 map, smaller than the 40 x 40 pooling window: pooled globally."""
    images, targets = batch
    torch.manual_seed(0)
    model = for_categories(CATS, "full", dataset="coco")
    assert model.config.depthwise_separable
    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSSES and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    model.eval()
    with torch.no_grad():
        outputs = model(images[:1])
    assert outputs["logits"].shape == (1, len(CATS), 64, 64) and outputs["offsets"].shape == (1, 2, 64, 64)


def test_losses_are_the_published_functions_of_the_outputs(model, batch):
    images, targets = batch
    model.train()
    captured = {}
    original = model.losses
    model.losses = lambda outputs, checked: captured.update(outputs=outputs, targets=checked) or original(outputs,
                                                                                                         checked)
    losses = model(images, targets)
    outputs, t = captured["outputs"], captured["targets"]
    assert outputs["logits"].shape == (4, len(CATS), 64, 64) and outputs["offsets"].shape == (4, 2, 64, 64)
    torch.testing.assert_close(losses["loss_semantic"], hard_pixel_mining_loss(
        outputs["logits"], t["semantic"], t["semantic_weights"], 0.2))
    torch.testing.assert_close(losses["loss_center"], 200 * center_loss(outputs["center_heatmap"], t["center"],
                                                                        t["center_weights"]))
    torch.testing.assert_close(losses["loss_offset"], 0.01 * offset_loss(outputs["offsets"], t["offset"],
                                                                         t["offset_weights"]))


def test_hard_pixel_mining_by_hand():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 2, 5, generator=generator)
    labels = torch.randint(0, 3, (2, 2, 5), generator=generator)
    labels[0, 0, :2] = VOID_LABEL
    weights = torch.rand(2, 2, 5, generator=generator) * 3
    # by hand: -log softmax of the label, 0 on void, times the weight
    z = logits.numpy().astype(np.float64)
    log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    ce = np.zeros(labels.shape)
    for b, y, x in np.ndindex(*labels.shape):
        if labels[b, y, x] != VOID_LABEL:
            ce[b, y, x] = -log_softmax[b, labels[b, y, x], y, x]
    weighted = np.sort((ce * weights.numpy()).ravel())[::-1]
    assert hard_pixel_mining_loss(logits, labels, weights, 0.2).item() == pytest.approx(weighted[:4].mean(), rel=1e-5)
    assert hard_pixel_mining_loss(logits, labels, weights, 0.5).item() == pytest.approx(weighted[:10].mean(), rel=1e-5)
    # all pixels: the plain mean, void counted as 0 (detectron2's DeepLabCE)
    assert hard_pixel_mining_loss(logits, labels, weights, 1.0).item() == pytest.approx(weighted.mean(), rel=1e-5)
    assert hard_pixel_mining_loss(logits, labels, None, 1.0).item() == pytest.approx(ce.mean(), rel=1e-5)
    assert hard_pixel_mining_loss(logits, labels, weights, 0.01).item() == pytest.approx(weighted[0], rel=1e-5)


def test_center_and_offset_losses_are_normalised_by_their_weights():
    prediction = torch.tensor([[[[0.5, 1.0, 0.0]]]], requires_grad=True)
    target = torch.tensor([[[[1.0, 0.0, 0.5]]]])
    weights = torch.tensor([[[1.0, 0.0, 1.0]]])
    assert center_loss(prediction, target, weights).item() == pytest.approx((0.25 + 0.25) / 2)
    offsets = torch.tensor([[[[1.0, 2.0, -3.0]], [[0.0, 1.0, 0.0]]]])
    assert offset_loss(offsets, torch.zeros_like(offsets), weights).item() == pytest.approx((1 + 3) / 2)
    assert offset_loss(offsets, torch.zeros_like(offsets), torch.tensor([[[0.0, 0.5, 0.0]]])).item() == \
        pytest.approx((2 + 1) * 0.5 / 0.5)
    # no weighted pixel (an image without things): 0, and still a loss to backpropagate
    empty = center_loss(prediction, target, torch.zeros_like(weights))
    assert empty.item() == 0
    empty.backward()
    assert torch.equal(prediction.grad, torch.zeros_like(prediction))


def test_model_weights_its_losses(model):
    outputs = {"logits": torch.zeros(2, len(CATS), 1, 3), "center_heatmap": torch.full((2, 1, 1, 3), 0.5),
               "offsets": torch.ones(2, 2, 1, 3)}
    targets = {"semantic": torch.zeros(2, 1, 3, dtype=torch.long), "semantic_weights": torch.ones(2, 1, 3),
               "center": torch.zeros(2, 1, 1, 3), "center_weights": torch.ones(2, 1, 3),
               "offset": torch.zeros(2, 2, 1, 3), "offset_weights": torch.ones(2, 1, 3)}
    losses = model.losses(outputs, targets)
    assert losses["loss_semantic"].item() == pytest.approx(np.log(len(CATS)))  # uniform logits
    assert losses["loss_center"].item() == pytest.approx(200 * 0.25)
    assert losses["loss_offset"].item() == pytest.approx(0.01 * 2)


# --- outputs and inference ------------------------------------------------------------------------
def test_offsets_are_predicted_at_stride_4_upsampled_and_scaled_into_input_pixels(model, batch):
    images, _ = batch
    model.eval()
    scale = model.config.input_scale  # the tiny model sees its images enlarged twice
    assert scale == 2.0
    seen = {}
    model.offset_head.register_forward_hook(lambda module, inputs, output: seen.update(offsets=output))
    with torch.no_grad():
        outputs = model(images)
    assert seen["offsets"].shape == (4, 2, 32, 32)  # stride 4 of the 128 px enlarged images
    expected = (4 / scale) * F.interpolate(seen["offsets"], size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(outputs["offsets"], expected)
    # a constructed case: (dy, dx) = (1, -2) grid cells of the enlarged image everywhere: 2 and -4 input pixels
    with torch.no_grad():
        model.offset_head.predictor.weight.zero_()
        model.offset_head.predictor.bias.copy_(torch.tensor([1.0, -2.0]))
        offsets = model(images)["offsets"]
    assert torch.all(offsets[:, 0] == 2) and torch.all(offsets[:, 1] == -4)
    assert outputs["logits"].shape == (4, len(CATS), 64, 64) and outputs["center_heatmap"].shape == (4, 1, 64, 64)


def test_inference_is_the_postprocess_of_the_outputs(model, batch):
    images, _ = batch
    torch.manual_seed(1)
    with torch.no_grad():  # a heatmap with peaks above the threshold, so that there are centres to group
        nn.init.normal_(model.center_head.predictor.weight, 0.0, 0.3)
        model.center_head.predictor.bias.fill_(0.3)
        nn.init.normal_(model.offset_head.predictor.weight, 0.0, 0.5)
    model.train()
    predictions = model.inference(images)
    assert model.training  # the mode is left as it was
    model.eval()
    with torch.no_grad():
        outputs = model(images)
    assert model.config.postprocess_options(64 * 64)["stuff_area"] == 55  # 4096 px of 640 x 480, rounded up
    found = 0
    for index, prediction in enumerate(predictions):
        assert isinstance(prediction, PanopticPrediction) and prediction.panoptic.shape == (64, 64)
        prediction.panoptic.validate(CATS)
        expected = panoptic_deeplab_postprocess(outputs["semantic"][index], outputs["center_heatmap"][index],
                                                outputs["offsets"][index], CATS,
                                                **model.config.postprocess_options(64 * 64))
        np.testing.assert_array_equal(prediction.panoptic.id_map, expected.panoptic.id_map)
        assert prediction.panoptic.segments == expected.panoptic.segments
        np.testing.assert_array_equal(prediction.semantic, outputs["semantic"][index].numpy())
        np.testing.assert_array_equal(prediction.semantic,
                                      np.array(CATS.ids)[outputs["logits"][index].argmax(0).numpy()])
        out = prediction.outputs
        torch.testing.assert_close(out["semantic_logits"], outputs["logits"][index])
        torch.testing.assert_close(out["center_heatmap"], outputs["center_heatmap"][index])
        torch.testing.assert_close(out["offsets"], outputs["offsets"][index])
        for key in ("centers", "center_scores", "instance_map", "votes"):
            np.testing.assert_array_equal(out[key], getattr(expected, key))
        assert prediction.merge.centers is not None and prediction.detections is None
        found += len(out["centers"])
    assert found > 0


def without_things(size=64):
    id_map = np.ones((size, size), np.int32)
    id_map[size // 2:] = 2
    return PanopticSegmentation.from_id_map(id_map, {1: SKY, 2: ROAD})


def test_an_image_without_things_trains_and_predicts(model):
    items = [deeplab_targets(without_things(), CATS) for _ in range(2)]
    targets = {"deeplab": {key: torch.stack([t[key] for t in items]) for key in DEEPLAB_TARGET_KEYS}}
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    model.train()
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_offset"].item() == 0
    sum(losses.values()).backward()
    prediction = model.inference(images[:1])[0]
    prediction.panoptic.validate(CATS)
    assert all(not CATS.isthing(s.category_id) for s in prediction.panoptic.segments)


def test_bad_input_is_named(model, batch):
    images, targets = batch
    model.train()
    with pytest.raises(ValueError, match="uint8"):
        model((images * 255).to(torch.uint8), targets)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(images[:, :1], targets)
    with pytest.raises(ValueError, match="'deeplab'"):
        model(images, None)
    with pytest.raises(ValueError, match="'deeplab'"):
        model(images, {"semantic": targets["deeplab"]["semantic"]})
    partial = {k: v for k, v in targets["deeplab"].items() if k != "offset_weights"}
    with pytest.raises(ValueError, match="lack \\['offset_weights'\\]"):
        model(images, {"deeplab": partial})
    with pytest.raises(ValueError, match="'center'.*\\(4, 1, 64, 64\\)"):
        model(images, {"deeplab": {**targets["deeplab"], "center": targets["deeplab"]["center"][:, 0]}})
    with pytest.raises(ValueError, match="semantic targets of shape"):
        model(images[:, :, :32], targets)
    unknown = targets["deeplab"]["semantic"].clone()
    unknown[0, 0, 0] = 42
    with pytest.raises(ValueError, match="train ids \\[42\\]"):
        model(images, {"deeplab": {**targets["deeplab"], "semantic": unknown}})
    with pytest.raises(ValueError, match="at least 2 images"):
        model(images[:1], {"deeplab": {k: v[:1] for k, v in targets["deeplab"].items() if torch.is_tensor(v)}})
    with pytest.raises(ValueError, match="classes"):
        PanopticDeepLab(PanopticDeepLabConfig.tiny(len(CATS) + 1), CATS)
    with pytest.raises(ValueError, match="top_k_percent"):
        PanopticDeepLab(PanopticDeepLabConfig.tiny(len(CATS), top_k_percent=0.0), CATS)
    with pytest.raises(ValueError, match="unknown size"):
        for_categories(CATS, "huge")
    with pytest.raises(ValueError, match="one rate per block"):
        set_multi_grid(BackboneConfig("resnet50").build().layer4, 2, (1, 2))
    model.eval()
    with pytest.raises(ValueError, match="uint8"):
        model.inference((images * 255).to(torch.uint8))
