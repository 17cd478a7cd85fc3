"""PSPNet: losses recomputed by hand, an overfit run, eval outputs, the full configuration."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.categories import CategorySet
from panopticlab.data.cityscapes import CITYSCAPES_TRAIN_ID_CATEGORIES
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.postprocess import MergeConfig
from panopticlab.postprocess.ablations import ablation_merge
from panopticlab.models.backbones import BackboneConfig, stage_channels
from panopticlab.models.common import IMAGENET_MEAN, IMAGENET_STD, PanopticPrediction
from panopticlab.models.pspnet import (
    PSPNet,
    PSPNetConfig,
    PyramidPooling,
    for_categories,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch():
    dataset = PanopticDataset(SyntheticPanoptic(4, 64, split="train"), CATS, targets=("semantic",))
    return collate_panoptic([dataset[i] for i in range(4)])


def test_train_losses_are_the_weighted_cross_entropies(batch):
    images, targets = batch
    torch.manual_seed(0)
    model = for_categories(CATS, dropout=0.0).train()  # no dropout: the forward is repeatable
    losses = model(images, targets)
    assert set(losses) == {"loss_semantic", "loss_aux"}
    # the same losses by hand, from the model's parts
    normalised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    features = model.backbone(normalised)
    size = images.shape[-2:]
    logits = F.interpolate(model.head(features["out"]), size=size, mode="bilinear", align_corners=False)
    aux = F.interpolate(model.aux_head(features["aux"]), size=size, mode="bilinear", align_corners=False)
    target = targets["semantic"]
    assert (target == 255).any()  # the synthetic data has void pixels to ignore
    valid = target != 255
    expected_main = -torch.log_softmax(logits, 1).gather(1, target.clamp(max=8)[:, None])[:, 0][valid].mean()
    expected_aux = -torch.log_softmax(aux, 1).gather(1, target.clamp(max=8)[:, None])[:, 0][valid].mean()
    torch.testing.assert_close(losses["loss_semantic"], expected_main)
    torch.testing.assert_close(losses["loss_aux"], 0.4 * expected_aux)
    # a plain tensor target works as well as the collated dict
    torch.testing.assert_close(model(images, target)["loss_semantic"], losses["loss_semantic"])


def test_overfits_a_fixed_batch(batch):
    images, targets = batch
    torch.manual_seed(0)
    model = PSPNet(PSPNetConfig.tiny(len(CATS)), CATS).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(20):
        losses = model(images, targets)
        total = sum(losses.values())
        assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert sum(history[-3:]) / 3 < 0.6 * history[0], history


def test_eval_outputs_logits_and_category_ids(batch):
    images, _ = batch
    model = for_categories(CATS).eval()
    with torch.no_grad():
        out = model(images)
    assert out["logits"].shape == (4, len(CATS), 64, 64) and out["logits"].dtype == torch.float32
    assert out["semantic"].shape == (4, 64, 64) and out["semantic"].dtype == torch.int64
    expected = torch.tensor(CATS.ids)[out["logits"].argmax(1)]
    assert torch.equal(out["semantic"], expected)
    # the map holds the ids of the categories the model was built for: numbered by train id, the train ids
    by_train_id = CategorySet(replace(category, id=train_id) for train_id, category in enumerate(CATS))
    plain = PSPNet(PSPNetConfig.tiny(len(CATS)), by_train_id).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(plain(images)["semantic"], out["logits"].argmax(1))


def test_inference_is_the_semantic_only_ablation(batch):
    images, _ = batch
    torch.manual_seed(0)
    model = for_categories(CATS).train()  # inference switches to eval mode and back
    predictions = model.inference(images)
    assert model.training and len(predictions) == 4
    with torch.no_grad():
        semantic = model.eval()(images)["semantic"].numpy()
    for prediction, expected in zip(predictions, semantic):
        assert isinstance(prediction, PanopticPrediction)
        np.testing.assert_array_equal(prediction.semantic, expected)
        merged = ablation_merge("semantic_only", expected, None, CATS, MergeConfig.tiny())  # the tiny model's merge
        assert prediction.panoptic.equals(merged.panoptic)


def test_pyramid_pooling_branches():
    ppm = PyramidPooling(8, 4, bins=(1, 2, 3, 6)).eval()
    x = torch.rand(2, 8, 12, 12)
    with torch.no_grad():
        y = ppm(x)
    assert y.shape == (2, 8 + 4 * 4, 12, 12)
    assert torch.equal(y[:, :8], x)  # the input passes through
    global_branch = y[:, 8:12]  # bin 1: one value per channel, broadcast over the map
    assert torch.allclose(global_branch, global_branch[..., :1, :1].expand_as(global_branch))
    with torch.no_grad():
        expected = ppm.branches[0][1](x.mean(dim=(2, 3), keepdim=True))
    torch.testing.assert_close(global_branch[..., 0, 0], expected[..., 0, 0])


def test_full_config_is_pspnet_r50_d8():
    num_classes = 19
    model = PSPNet(PSPNetConfig.full(num_classes), CITYSCAPES_TRAIN_ID_CATEGORIES)
    config = model.config
    assert (config.bins, config.pool_channels, config.head_channels) == ((1, 2, 3, 6), 512, 512)
    assert config.aux_channels == 256
    assert (config.aux_weight, config.dropout, config.ignore_index) == (0.4, 0.1, 255)
    body = model.backbone
    assert stage_channels(body) == (256, 512, 1024, 2048)
    # the backbone is torchvision's ResNet-50 without its classifier
    reference = resnet50(weights=None)
    backbone_params = sum(p.numel() for p in reference.parameters()) - (2048 * 1000 + 1000)
    assert sum(p.numel() for p in body.parameters()) == backbone_params
    # head and auxiliary head counted by hand: convs without bias + norm (2 per channel)
    ppm = 4 * (2048 * 512 + 2 * 512)
    bottleneck = (2048 + 4 * 512) * 512 * 9 + 2 * 512
    classifier = 512 * num_classes + num_classes
    aux = 1024 * 256 * 9 + 2 * 256 + 256 * num_classes + num_classes
    assert sum(p.numel() for p in model.head.parameters()) == ppm + bottleneck + classifier
    assert sum(p.numel() for p in model.aux_head.parameters()) == aux
    # output stride 8, and a train and an eval pass at a small size on the CPU
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert body(images)["out"].shape == (2, 2048, 8, 8)
        model.eval()
        assert model(images)["logits"].shape == (2, num_classes, 64, 64)
        model.train()
        losses = model(images, torch.randint(0, num_classes, (2, 64, 64)))
    assert set(losses) == {"loss_semantic", "loss_aux"} and all(torch.isfinite(v) for v in losses.values())


def test_group_norm_trains_with_batch_one():
    model = for_categories(CATS, backbone=BackboneConfig("tiny", norm="group")).train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    losses = model(torch.rand(1, 3, 32, 32), torch.zeros(1, 32, 32, dtype=torch.long))
    assert torch.isfinite(sum(losses.values()))


def test_bad_input_gets_clear_errors(batch):
    images, targets = batch
    model = for_categories(CATS).train()
    with pytest.raises(ValueError, match="needs targets"):
        model(images)
    with pytest.raises(ValueError, match="shape"):
        model(images, targets["semantic"][:, :32])
    with pytest.raises(ValueError, match="no 'semantic' entry"):
        model(images, {"instances": []})
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(images[:, :1])
    with pytest.raises(ValueError, match="collides"):
        PSPNet(PSPNetConfig.tiny(9, ignore_index=3), CATS)
    with pytest.raises(ValueError, match="category ids"):
        PSPNet(PSPNetConfig.tiny(2), CATS)
    with pytest.raises(ValueError, match="unknown size"):
        for_categories(CATS, size="huge")
