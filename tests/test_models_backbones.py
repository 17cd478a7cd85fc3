"""Backbones: torchvision's blocks and FPN as references, and the exact a-trous identity of dilation."""
import pytest
import torch
from torch import nn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.resnet import BasicBlock as TorchvisionBasicBlock

from panopticlab.models.backbones import (
    BackboneConfig,
    BasicBlock,
    TinyResNet,
    dilated_backbone,
    dilated_features,
    fpn_backbone,
    make_norm_layer,
    resnet_fpn,
    stage_channels,
    stage_strides,
    tiny_backbone,
    weights_path,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stage_outputs(body: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    x = body.stem(images) if hasattr(body, "stem") else body.maxpool(body.relu(body.bn1(body.conv1(images))))
    outputs = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = getattr(body, name)(x)
        outputs.append(x)
    return outputs


def randomise_norm_statistics(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm parameters and running statistics, so eval mode is a real affine map."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)


@pytest.mark.parametrize("stride", [1, 2])
def test_basic_block_matches_torchvision(stride):
    torch.manual_seed(0)
    reference = TorchvisionBasicBlock(8, 16, stride, downsample=nn.Sequential(
        nn.Conv2d(8, 16, 1, stride=stride, bias=False), nn.BatchNorm2d(16)))
    ours = BasicBlock(8, 16, stride)
    ours.load_state_dict(reference.state_dict())  # same parameter names and shapes
    randomise_norm_statistics(reference)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 12, 12)
    for mode in (True, False):
        reference.train(mode), ours.train(mode)
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_tiny_resnet_strides_and_channels():
    body = TinyResNet(widths=(8, 16, 24, 32), blocks=(1, 2, 1, 1))
    outputs = stage_outputs(body, torch.rand(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outputs] == [(2, 8, 16, 24), (2, 16, 8, 12), (2, 24, 4, 6), (2, 32, 2, 3)]
    assert stage_channels(body) == (8, 16, 24, 32)
    assert len(body.layer2) == 2
    assert body(torch.rand(1, 3, 64, 64)).shape == (1, 32, 2, 2)


def test_dilation_is_the_a_trous_version_of_the_strided_network():
    """Replacing a stride s by dilation gives the strided network's values on every s-th pixel
    (eval mode, even sizes): dilated[..., ::s, ::s] == strided. This checks that each dilated
    stage starts with the previous dilation and that every later conv is dilated."""
    torch.manual_seed(0)
    config = BackboneConfig("tiny", widths=(8, 16, 24, 32), blocks=(2, 1, 2, 1))
    strided = config.build()
    dilated = config.build(replace_stride_with_dilation=(False, True, True))
    dilated.load_state_dict(strided.state_dict())
    randomise_norm_statistics(strided)
    dilated.load_state_dict(strided.state_dict())
    # float64: the two networks sum the same products in different orders
    strided.double().eval(), dilated.double().eval()
    images = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        plain, atrous = stage_outputs(strided, images), stage_outputs(dilated, images)
    assert atrous[3].shape[-2:] == (8, 8) and plain[3].shape[-2:] == (2, 2)  # output stride 8 vs 32
    torch.testing.assert_close(atrous[1], plain[1])
    torch.testing.assert_close(atrous[2][..., ::2, ::2], plain[2])
    torch.testing.assert_close(atrous[3][..., ::4, ::4], plain[3])
    assert not torch.allclose(atrous[3][..., 1::4, 1::4], plain[3])  # the other pixels are new


def test_dilated_features_returns_layer3_and_layer4():
    body = TinyResNet(widths=(8, 16, 24, 32), replace_stride_with_dilation=(False, True, True))
    features = dilated_features(body)(torch.rand(2, 3, 64, 64))
    assert list(features) == ["aux", "out"]
    assert features["aux"].shape == (2, 24, 8, 8) and features["out"].shape == (2, 32, 8, 8)


@pytest.mark.parametrize("output_stride, strides", [(8, (4, 8, 8, 8)), (16, (4, 8, 16, 16)), (32, (4, 8, 16, 32))])
def test_dilated_backbone_returns_any_stages_at_any_output_stride(output_stride, strides):
    config = BackboneConfig("tiny", widths=(8, 16, 24, 32))
    # Panoptic-DeepLab's three inputs at output stride 16: strides 4, 8 and 16
    names = {"layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}
    features = dilated_backbone(config, output_stride, names)(torch.rand(1, 3, 64, 96))
    assert list(features) == ["res2", "res3", "res4", "res5"]
    for (name, feature), stride, width in zip(features.items(), strides, config.widths):
        assert feature.shape == (1, width, 64 // stride, 96 // stride), name
    assert stage_strides(output_stride) == dict(zip(["layer1", "layer2", "layer3", "layer4"], strides))
    with pytest.raises(ValueError, match="output_stride"):
        dilated_backbone(config, 4)
    with pytest.raises(ValueError, match="return_layers"):
        dilated_backbone(config, 16, {"stem": "x"})


def test_resnet50_fpn_matches_torchvision_resnet_fpn_backbone():
    torch.manual_seed(0)
    reference = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=nn.BatchNorm2d,
                                    trainable_layers=5)
    ours = fpn_backbone(BackboneConfig("resnet50").build(), 256)
    assert ours.out_channels == 256
    ours.load_state_dict(reference.state_dict())  # strict: the same modules with the same names
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    ours.eval(), reference.eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = reference(images), ours(images)
    # the same maps; ours are named for their pyramid level
    assert list(expected) == ["0", "1", "2", "3", "pool"] and list(got) == ["p2", "p3", "p4", "p5", "p6"]
    for ours_key, key in zip(got, expected):
        torch.testing.assert_close(got[ours_key], expected[key])


def test_tiny_fpn_levels():
    fpn = fpn_backbone(TinyResNet(widths=(8, 16, 24, 32)), out_channels=16, returned_layers=(2, 3, 4))
    levels = fpn(torch.rand(2, 3, 128, 64))
    assert {k: tuple(v.shape) for k, v in levels.items()} == {
        "p3": (2, 16, 16, 8), "p4": (2, 16, 8, 4), "p5": (2, 16, 4, 2), "p6": (2, 16, 2, 1)}
    with pytest.raises(ValueError, match="returned_layers"):
        fpn_backbone(TinyResNet(), 16, returned_layers=(0, 1))


def test_norm_layers():
    assert isinstance(make_norm_layer("batch")(16), nn.BatchNorm2d)
    group = make_norm_layer("group")(24)
    assert isinstance(group, nn.GroupNorm) and group.num_groups == 8 and group.num_channels == 24
    assert make_norm_layer("group")(12).num_groups == 4  # a divisor of narrow widths
    body = TinyResNet(norm="group")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    assert body(torch.rand(1, 3, 32, 32)).shape == (1, 128, 1, 1)  # batch 1 trains with GroupNorm
    with pytest.raises(ValueError, match="unknown normalisation"):
        make_norm_layer("instance")
    with pytest.raises(ValueError, match="unknown backbone"):
        BackboneConfig("vgg").build()


# --- the shipped pretrained tiny backbone -----------------------------------------------------
def shipped_backbone():
    from panopticlab.engine.checkpoint import load_checkpoint

    return load_checkpoint(weights_path("tiny-resnet-fpn"))


def test_shipped_backbone_says_how_it_was_made():
    payload = shipped_backbone()
    info = payload["metadata"]
    assert info["name"] == "tiny-resnet-fpn" and info["dtype"] == "float16"
    assert tuple(info["backbone"]["widths"]) == tiny_backbone().widths
    assert info["steps"] >= 1000 and info["training_seconds"] > 0
    assert 50 < info["val_miou"] <= 100  # the semantic head learned the classes
    assert all(v.dtype == torch.float16 for v in payload["model"].values() if v.is_floating_point())
    assert {key.split(".")[0] for key in payload["model"]} == {"body", "fpn"}  # the backbone only, no heads
    assert weights_path("tiny-resnet-fpn").stat().st_size < 4e6


def test_tiny_models_start_from_the_shipped_backbone_with_the_first_stages_frozen():
    state = shipped_backbone()["model"]
    fpn = resnet_fpn(tiny_backbone(), 64)
    for key, value in fpn.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, state[key].to(value.dtype)), key
    # the same weights serve a dilated body (PSPNet's): dilation changes no weight
    dilated = dilated_backbone(tiny_backbone(), 8)
    for key, value in dilated.state_dict().items():
        assert torch.equal(value, state[f"body.{key}"].to(value.dtype)), key
    body = fpn.body
    frozen = [p for name in ("stem", "layer1") for p in getattr(body, name).parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for name in ("layer2", "layer3", "layer4") for p in getattr(body, name).parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [*body.stem.modules(), *body.layer1.modules()])
    # a training step changes neither the frozen weights nor their normalisation statistics
    before = {k: v.clone() for k, v in body.stem.state_dict().items()}
    fpn.train()
    optimizer = torch.optim.SGD([p for p in fpn.parameters() if p.requires_grad], lr=0.1)
    sum(level.mean() for level in fpn(torch.rand(2, 3, 64, 64)).values()).backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in body.stem.state_dict().items())
    assert not torch.equal(state["body.layer4.0.conv1.weight"].float(), body.layer4[0].conv1.weight.detach())


def test_training_from_scratch_is_one_option_away():
    scratch = resnet_fpn(tiny_backbone(pretrained=False), 64)
    assert all(p.requires_grad for p in scratch.parameters())
    state = shipped_backbone()["model"]
    assert not torch.equal(scratch.body.layer1[0].conv1.weight.detach(), state["body.layer1.0.conv1.weight"].float())


def test_weights_of_other_widths_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"tiny-resnet-fpn.pt: the weights do not fit .*other shapes"):
        BackboneConfig("tiny", widths=(16, 32, 64, 128), weights="tiny-resnet-fpn").build()
    with pytest.raises(FileNotFoundError, match="no weights 'nowhere.pt'"):
        BackboneConfig("tiny", weights="nowhere.pt").build()
    with pytest.raises(ValueError, match="frozen_stages"):
        BackboneConfig("tiny", frozen_stages=6).build()
