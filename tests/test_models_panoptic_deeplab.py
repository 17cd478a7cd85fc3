"""Panoptic-DeepLab: the published architecture and its stated size, the three losses by hand,
offsets in input pixels, inference as the chapter's post-processing of the model's outputs, bad input."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.models.segmentation.deeplabv3 import ASPPConv, ASPPPooling

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
    center_loss,
    for_categories,
    hard_pixel_mining_loss,
    offset_loss,
)
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

    total = count(model)
    body = count(model.backbone)
    semantic = count(model.semantic_decoder, model.semantic_head)
    instance = count(model.instance_decoder, model.center_head, model.offset_head)
    torchvision_body = sum(p.numel() for n, p in resnet50(weights=None).named_parameters() if not n.startswith("fc."))
    stated = stated_numbers(panoptic_deeplab.__doc__)
    assert total == body + semantic + instance
    assert stated[:7] == [total, body, torchvision_body, body - torchvision_body, semantic, instance,
                          count(model.semantic_decoder.aspp)]
    tiny = for_categories(CATS, "tiny")
    assert stated[7:9] == [count(tiny), count(tiny.backbone)]


def test_published_settings_for_coco_and_the_schedules():
    coco = PanopticDeepLabConfig.full(133, dataset="coco")
    assert (coco.num_classes, coco.top_k_percent, coco.nms_kernel, coco.stuff_area) == (133, 1.0, 41, 4096)
    with pytest.raises(ValueError, match="unknown dataset"):
        PanopticDeepLabConfig.full(19, dataset="ade20k")
    cityscapes, coco_run = PUBLISHED_SCHEDULES["cityscapes"], PUBLISHED_SCHEDULES["coco"]
    assert (cityscapes.optimizer, cityscapes.poly_power, cityscapes.weight_decay) == ("adam", 0.9, 0.0)
    assert (cityscapes.batch_size, cityscapes.crop_size, cityscapes.iterations, cityscapes.lr) == \
        (32, (512, 1024), 90_000, 0.001)
    assert (coco_run.batch_size, coco_run.crop_size, coco_run.iterations, coco_run.lr) == \
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
def test_offsets_are_predicted_at_stride_4_upsampled_and_scaled_by_4(model, batch):
    images, _ = batch
    model.eval()
    seen = {}
    model.offset_head.register_forward_hook(lambda module, inputs, output: seen.update(offsets=output))
    with torch.no_grad():
        outputs = model(images)
    assert seen["offsets"].shape == (4, 2, 16, 16)
    expected = 4 * F.interpolate(seen["offsets"], size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(outputs["offsets"], expected)
    # a constructed case: a head that says (dy, dx) = (1, -2) grid cells everywhere means 4 and -8 pixels
    with torch.no_grad():
        model.offset_head.predictor.weight.zero_()
        model.offset_head.predictor.bias.copy_(torch.tensor([1.0, -2.0]))
        offsets = model(images)["offsets"]
    assert torch.all(offsets[:, 0] == 4) and torch.all(offsets[:, 1] == -8)
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
