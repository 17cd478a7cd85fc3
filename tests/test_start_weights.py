"""Where full training starts: torchvision's ImageNet ResNet-50 (downloaded once into torch's
cache), a state-dict file, or random weights; the published freezing of the detectors' bodies."""
import json
import urllib.error

import pytest
import torch
from torchvision.models import ResNet50_Weights, resnet50
from torchvision.ops import FrozenBatchNorm2d

from panopticlab.commands import main
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.models import zoo
from panopticlab.models.starts import IMAGENET, StartWeightsError, load_start


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A ResNet-50 state dict saved as torchvision saves one (the ImageNet file's form)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(resnet50(weights=None).state_dict(), path)
    return path


def test_a_plain_torchvision_state_dict_starts_every_body(resnet_file):
    reference = torch.load(resnet_file, weights_only=True)
    baseline = zoo.build_model("baseline-full", CATS)
    bodies = load_start(baseline, resnet_file, progress=False)
    assert bodies == ["semantic_model.backbone", "instance_model.backbone.body"]
    state = baseline.state_dict()
    for prefix in bodies:
        for key in ("conv1.weight", "layer4.2.conv3.weight", "layer2.0.bn1.running_var"):
            torch.testing.assert_close(state[f"{prefix}.{key}"], reference[key])


def test_the_published_freezing_is_one_setting_away():
    """detectron2's FrozenBN and FREEZE_AT 2 (torchvision's trainable_backbone_layers=3), for a
    pretrained start: the full configs keep trainable norms, which a random start needs."""
    from panopticlab.models.backbones import BackboneConfig
    from panopticlab.models.mask_rcnn import MaskRCNN, MaskRCNNConfig

    config = MaskRCNNConfig.full(len(CATS.thing_ids) + 1)
    config.backbone = BackboneConfig("resnet50", norm="frozen_batch", frozen_stages=2)
    body = MaskRCNN(config, CATS).backbone.body
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in body.modules()) == 53
    frozen = {name.split(".")[0] for name, p in body.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "layer1"}  # the stem and res2


def test_weights_that_do_not_fit_are_named(resnet_file):
    with pytest.raises(StartWeightsError, match="do not fit the body backbone"):  # R-52's deep stem
        load_start(zoo.build_model("panoptic-deeplab-full", CATS), resnet_file, progress=False)
    with pytest.raises(StartWeightsError, match="no such file"):
        load_start(zoo.build_model("pspnet-full", CATS), resnet_file.with_name("missing.pth"), progress=False)
    not_weights = resnet_file.with_name("notes.pth")
    torch.save({"lr": 0.02}, not_weights)
    with pytest.raises(StartWeightsError, match="not a state dict"):
        load_start(zoo.build_model("pspnet-full", CATS), not_weights, progress=False)


def test_without_a_network_the_imagenet_start_says_which_file_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(StartWeightsError) as error:
        load_start(zoo.build_model("maskrcnn-full", CATS), IMAGENET, progress=False)
    message = str(error.value)
    assert ResNet50_Weights.IMAGENET1K_V1.url in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "--weights FILE" in message


def test_the_full_recipes_start_from_imagenet_and_train_can_say_otherwise(resnet_file, tmp_path, capsys):
    assert zoo.spec("panoptic-fpn-full").recipe("ci").start == IMAGENET
    assert zoo.spec("pspnet-full").recipe("ci").start == IMAGENET
    assert zoo.spec("panoptic-deeplab-full").recipe("ci").start is None  # no torchvision weights
    assert zoo.spec("panoptic-fpn-tiny").recipe("ci").start is None  # the shipped tiny body instead
    missing = tmp_path / "nothing.pth"
    assert main(["train", "--model", "pspnet-full", "--weights", str(missing), "--output", str(tmp_path / "run"),
                 "--profile", "ci", "--no-progress"]) == 1
    assert f"--weights {missing}: no such file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_started_from_weights_is_frozen_as_published_and_evaluates(resnet_file, tmp_path, capsys):
    """The detector's recipe freezes its body's norms and first stages after the start is loaded;
    the run folder records it and evaluate rebuilds the same frozen body."""
    from panopticlab.models.starts import freeze_bodies

    run = tmp_path / "run"
    assert main(["train", "--model", "maskrcnn-full", "--profile", "ci", "--steps", "1", "--input-size", "64",
                 "--weights", str(resnet_file), "--num-val", "1", "--output", str(run), "--no-progress",
                 "--device", "cpu"]) == 0
    recipe = json.loads((run / "recipe.json").read_text())
    assert (recipe["start"], recipe["freeze_norms"], recipe["freeze_at"]) == (str(resnet_file), True, 2)
    saved = torch.load(run / "last.pt", weights_only=True)["model"]
    assert not any(key.startswith("backbone.body.") and key.endswith("num_batches_tracked") for key in saved)
    torch.testing.assert_close(saved["backbone.body.conv1.weight"],  # the fixed stem kept the start's weights
                               torch.load(resnet_file, weights_only=True)["conv1.weight"])
    capsys.readouterr()
    assert main(["evaluate", "--model", "maskrcnn-full", "--checkpoint", str(run), "--num-images", "1",
                 "--image-size", "64", "--device", "cpu"]) == 0
    # a random start freezes nothing: the norms train, as torchvision builds an untrained detector
    model = zoo.build_model("maskrcnn-full", CATS)
    assert freeze_bodies(model, False, 0) == ["backbone.body"]
    assert all(p.requires_grad for p in model.parameters())
