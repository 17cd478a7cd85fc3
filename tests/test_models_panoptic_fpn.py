"""Panoptic FPN: the semantic branch as published, one backbone pass for both branches, the
merge of chapter 3, torchvision's COCO detector loading into the full model, bad input."""
import re

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.detection import maskrcnn_resnet50_fpn

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.categories import VOID_LABEL
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.models import panoptic_fpn
from panopticlab.models.panoptic_fpn import PanopticFPN, PanopticFPNConfig, for_categories, semantic_class_names
from panopticlab.models.semantic_fpn import SemanticFPNHead, upsampling_stages
from panopticlab.postprocess.heuristic import MergeConfig, heuristic_merge

from model_cases import COCO_THING_IDS, coco_like_categories

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DETECTION_LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}


@pytest.fixture(scope="module")
def batch():
    dataset = PanopticDataset(SyntheticPanoptic(4, 64, split="train"), CATS, targets=("semantic", "instances"))
    return collate_panoptic([dataset[i] for i in range(4)])


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return for_categories(CATS, "tiny")


def test_semantic_branch_has_the_published_stages_per_level():
    head = SemanticFPNHead(256, 54, SemanticFPNHead.strides_of(["p2", "p3", "p4", "p5"]), 128, 32)
    assert [upsampling_stages(s) for s in (4, 8, 16, 32)] == [0, 1, 2, 3]
    for name, convs in (("p2", 1), ("p3", 1), ("p4", 2), ("p5", 3)):
        layers = list(head.scale_heads[name])
        assert sum(isinstance(m, nn.Conv2d) for m in head.scale_heads[name].modules()) == convs
        assert sum(isinstance(m, nn.Upsample) for m in layers) == upsampling_stages(head.level_strides[name])
        norms = [m for m in head.scale_heads[name].modules() if isinstance(m, nn.GroupNorm)]
        assert len(norms) == convs and all((n.num_groups, n.num_channels) == (32, 128) for n in norms)
    features = {f"p{k}": torch.randn(2, 256, 64 // 2 ** k, 96 // 2 ** k) for k in (2, 3, 4, 5)}
    levels = head.level_outputs(features)
    assert all(x.shape == (2, 128, 16, 24) for x in levels.values())  # every level at stride 4
    logits = head(features)
    assert logits.shape == (2, 54, 16, 24)
    # the four maps are summed, then one 1 x 1 conv
    torch.testing.assert_close(logits, head.predictor(sum(levels.values())))
    with pytest.raises(ValueError, match="p5"):
        head({k: v for k, v in features.items() if k != "p5"})
    with pytest.raises(ValueError, match="stride 6"):
        upsampling_stages(6)


def test_semantic_targets_become_stuff_and_one_things_class(model):
    train_ids = torch.tensor([[CATS.train_id(c.id) for c in CATS.categories] + [VOID_LABEL]])
    labels = model.semantic_labels(train_ids)[0].tolist()
    expected = [model.config.num_stuff if c.isthing else CATS.stuff_ids.index(c.id) for c in CATS.categories]
    assert labels == expected + [VOID_LABEL]
    assert semantic_class_names(CATS)[-1] == "things" and len(semantic_class_names(CATS)) == len(CATS.stuff_ids) + 1
    with pytest.raises(ValueError, match="train ids \\[99\\]"):
        model.semantic_labels(torch.tensor([[0, 99]]))


def test_training_step_reports_six_named_losses_from_one_backbone_pass(model, batch):
    images, targets = batch
    calls = []
    model.backbone.register_forward_hook(lambda *args: calls.append(1))
    model.train()
    losses = model(images, targets)
    assert set(losses) == DETECTION_LOSSES | {"loss_semantic"}
    assert all(torch.isfinite(v) for v in losses.values()) and len(calls) == 1
    sum(losses.values()).backward()
    for part in ("backbone", "rpn", "roi_heads", "semantic_head"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), part
    # the semantic loss carries its weight (0.5 published); the branch's cross-entropy does not
    # depend on the detector's random RoI sampling, so it can be compared across calls
    model.config.semantic_loss_weight = 1.0
    doubled = model(images, targets)["loss_semantic"]
    torch.testing.assert_close(doubled, 2 * losses["loss_semantic"].detach(), rtol=1e-5, atol=1e-6)


def test_inference_merges_the_branches_with_the_heuristic(model, batch):
    images, _ = batch
    model.eval()
    calls = []
    model.backbone.register_forward_hook(lambda *args: calls.append(1))
    predictions = model.inference(images)
    assert len(calls) == 1 and not model.training  # eval mode left as it was
    stuff = set(CATS.stuff_ids)
    for prediction in predictions:
        assert set(np.unique(prediction.semantic)) <= stuff | {VOID_LABEL}
        logits = prediction.outputs["semantic_logits"]
        assert logits.shape == (len(CATS.stuff_ids) + 1, 64, 64)
        expected = np.array([*CATS.stuff_ids, VOID_LABEL])[logits.argmax(0).numpy()]
        np.testing.assert_array_equal(prediction.semantic, expected)
        d = prediction.detections
        merged = heuristic_merge(prediction.semantic, d["masks"], d["scores"], d["category_ids"], CATS,
                                 **{k: v for k, v in MergeConfig.tiny().to_dict().items()
                                    if k not in ("stuff_area_limit", "stuff_area_reference")},
                                 stuff_area_limit=MergeConfig.tiny().stuff_limit(64 * 64))
        np.testing.assert_array_equal(prediction.panoptic.id_map, merged.panoptic.id_map)
        assert prediction.panoptic.segments == merged.panoptic.segments


def test_an_image_without_things_trains_and_predicts(model):
    dataset = PanopticDataset(SyntheticPanoptic(2, 64, split="train"), CATS, targets=("semantic", "instances"))
    images, targets = collate_panoptic([dataset[0], dataset[1]])
    stuff_only = torch.tensor(CATS.train_id(CATS.stuff_ids[0]))
    targets["semantic"][0] = stuff_only
    targets["instances"][0] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
                               "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)}
    model.train()
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert len(model.inference(images[:1])) == 1


def test_bad_input_is_named(model, batch):
    images, targets = batch
    model.train()
    with pytest.raises(ValueError, match="uint8"):
        model((images * 255).to(torch.uint8), targets)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(images[:, :1], targets)
    with pytest.raises(ValueError, match="'semantic'"):
        model(images, {"instances": targets["instances"]})
    with pytest.raises(ValueError, match="target dict"):
        model(images, targets["instances"])
    unknown = [{**t, "labels": torch.full_like(t["labels"], 7)} for t in targets["instances"]]
    with pytest.raises(ValueError, match="labels \\[7\\]"):
        model(images, {**targets, "instances": unknown})
    with pytest.raises(ValueError, match="stuff classes"):
        PanopticFPN(PanopticFPNConfig.tiny(len(CATS.thing_ids) + 1, num_stuff=3), CATS)


def test_full_model_structure_and_stated_parameter_count():
    categories = coco_like_categories()
    model = for_categories(categories, "full", thing_labels=COCO_THING_IDS)
    config = model.config
    assert (config.semantic_channels, config.semantic_norm_groups, config.semantic_loss_weight) == (128, 32, 0.5)
    assert model.backbone.out_channels == 256 and list(model.semantic_head.level_strides) == ["p2", "p3", "p4", "p5"]
    assert model.semantic_head.predictor.out_channels == 54  # 53 stuff + things
    assert config.detector.num_classes == 91
    total = sum(p.numel() for p in model.parameters())
    semantic = sum(p.numel() for p in model.semantic_head.parameters())
    stated = [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", panoptic_fpn.__doc__)]
    assert stated[:3] == [total, total - semantic, semantic]


def test_full_model_takes_torchvisions_coco_detector_whole():
    categories = coco_like_categories()
    model = for_categories(categories, "full", thing_labels=COCO_THING_IDS)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    result = model.load_state_dict(reference.state_dict(), strict=False)
    assert result.unexpected_keys == []
    expected_missing = sorted(f"semantic_head.{key}" for key in model.semantic_head.state_dict())
    assert sorted(result.missing_keys) == expected_missing
    assert len(expected_missing) == 23  # 7 convs, 7 GroupNorms (weight, bias), the predictor's weight and bias
    # detections name dataset categories through torchvision's label numbering
    assert model.detector_label_to_category[COCO_THING_IDS].tolist() == list(categories.thing_ids)
    assert int(model.detector_label_to_category[12]) == 0  # an unused COCO label


def test_published_schedules_agree_with_the_full_recipe():
    from panopticlab.models import zoo

    coco = panoptic_fpn.PUBLISHED_SCHEDULES["coco"]
    assert (coco.batch_size, coco.optim.lr, coco.iterations, coco.optim.weight_decay) == (16, 0.02, 90_000, 1e-4)
    # the table's full recipe is the same 1x schedule, laid over any number of steps
    optim = zoo.sgd_1x(coco.iterations)
    assert optim == coco.optim
    assert all(schedule.source.startswith("detectron2 ") for schedule in panoptic_fpn.PUBLISHED_SCHEDULES.values())
    from panopticlab.profiles import _PROFILES, Profile

    gpu = Profile(name="gpu", device="cuda", **_PROFILES["gpu"])  # the profile's sizes, on a machine without CUDA
    assert zoo.spec("panoptic-fpn-full").recipe(gpu).optim.lr == coco.optim.lr
