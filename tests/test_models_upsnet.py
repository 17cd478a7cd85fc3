"""UPSNet: the deformable semantic head, the parameter-free panoptic head checked by hand (training
logits and targets, each inference step), the eight losses, inference, torchvision's COCO detector
loading into the full model, bad input."""
import dataclasses
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import maskrcnn_resnet50_fpn
from torchvision.ops import DeformConv2d, deform_conv2d

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.categories import VOID_LABEL, Category, CategorySet
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.models import upsnet
from panopticlab.models.common import PanopticPrediction
from panopticlab.models.deformable import DeformableConv2d, DeformableSemanticHead, grid_deform_conv2d, layer_widths
from panopticlab.models.detection import box_candidates
from panopticlab.models.upsnet import (LOSS_WEIGHTS, PUBLISHED_SCHEDULES, UPSNet, UPSNetConfig, for_categories,
                                       keep_instances, panoptic_targets, semantic_class_names, semantic_roi_targets)
from panopticlab.postprocess.heuristic import EMPTY, KEPT, OVERLAP, TOO_SMALL
from panopticlab.models.upsnet_head import (box_cells, crop_to_boxes, panoptic_logits, paste_mask_logits,
                                            unified_panoptic, unknown_logits)
from panopticlab.postprocess.upsnet import (AGREES, DISAGREES, TO_STUFF, UPSNetHeadConfig, UPSNetPanoptic,
                                            majority_relabel, panoptic_argmax, remove_duplicate_masks,
                                            remove_small_stuff, select_detections, semantic_layout)

from model_cases import COCO_THING_IDS, coco_like_categories

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EIGHT_LOSSES = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask",
                "loss_semantic", "loss_semantic_roi", "loss_panoptic"}


@pytest.fixture(scope="module")
def batch():
    dataset = PanopticDataset(SyntheticPanoptic(4, 64, split="train"), CATS, targets=("semantic", "instances"))
    return collate_panoptic([dataset[i] for i in range(4)])


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return for_categories(CATS, "tiny")


@pytest.fixture(scope="module")
def full_model():
    return for_categories(coco_like_categories(), "full", thing_labels=COCO_THING_IDS)


# --- the deformable semantic head -------------------------------------------------------------
def test_deformable_layer_with_zero_offsets_is_a_plain_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 11)
    for grid in (False, True):
        layer = DeformableConv2d(6, 5, grid_sampling=grid)
        assert not layer.offset.weight.any() and not layer.offset.bias.any()
        assert layer.offset.out_channels == 18 and isinstance(layer.conv, DeformConv2d)
        nn_bias = torch.randn(5)
        layer.conv.bias.data.copy_(nn_bias)
        torch.testing.assert_close(layer(x), F.conv2d(x, layer.conv.weight, nn_bias, padding=1), rtol=1e-5,
                                   atol=1e-5)


def test_grid_sampling_computes_torchvisions_deformable_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 10, requires_grad=True)
    offset = (3 * torch.randn(2, 18, 7, 10)).requires_grad_()  # far outside the image too
    weight = torch.randn(3, 4, 3, 3, requires_grad=True)
    bias = torch.randn(3, requires_grad=True)
    for dilation in (1, 2):
        ours = grid_deform_conv2d(x, offset, weight, bias, padding=dilation, dilation=dilation)
        theirs = deform_conv2d(x, offset, weight, bias, padding=dilation, dilation=dilation)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        grads = torch.autograd.grad(ours.square().sum(), (x, offset, weight, bias))
        expected = torch.autograd.grad(theirs.square().sum(), (x, offset, weight, bias))
        for g, e in zip(grads, expected):
            torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="padding"):
        grid_deform_conv2d(x, offset, weight, padding=0)


def test_semantic_head_shares_its_layers_and_concatenates_the_levels():
    assert layer_widths(256, 128, 3) == [(256, 256), (256, 128), (128, 128)]  # COCO
    assert layer_widths(256, 128, 2) == [(256, 128), (128, 128)]  # Cityscapes
    torch.manual_seed(0)
    strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
    head = DeformableSemanticHead(16, 7, strides, channels=8, num_layers=3)
    for layer in head.subnet:  # some offsets, so the layers are not plain convs
        if isinstance(layer, DeformableConv2d):
            layer.offset.weight.data.normal_(std=0.1)
    features = {f"p{k}": torch.randn(2, 16, 64 // 2 ** k, 96 // 2 ** k) for k in (2, 3, 4, 5)}
    levels = head.level_outputs(features)
    assert all(x.shape == (2, 8, 16, 24) for x in levels.values())
    for name in ("p2", "p4"):  # one sub-network for every level, then bilinear to stride 4
        expected = head.subnet(features[name])
        if name != "p2":
            expected = F.interpolate(expected, size=(16, 24), mode="bilinear", align_corners=False)
        torch.testing.assert_close(levels[name], expected)
    logits = head(features)
    assert logits.shape == (2, 7, 16, 24) and head.predictor.in_channels == 4 * 8
    torch.testing.assert_close(logits, head.predictor(torch.cat(list(levels.values()), dim=1)))
    with pytest.raises(ValueError, match="p5"):
        head({k: v for k, v in features.items() if k != "p5"})
    boxes = [torch.tensor([[0.0, 0.0, 32.0, 32.0], [3.5, 7.0, 50.0, 20.0]]), torch.tensor([[60.0, 2.0, 96.0, 64.0]])]
    feature = head.features(features)
    roi = head.roi_logits(feature, boxes, 5)
    assert roi.shape == (3, 7, 5, 5)
    # the grid-sampling head: the same weights, the same numbers
    grid = DeformableSemanticHead(16, 7, strides, channels=8, num_layers=3, grid_sampling=True)
    grid.load_state_dict(head.state_dict())
    torch.testing.assert_close(grid(features), logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grid.roi_logits(feature, boxes, 5), roi, rtol=1e-4, atol=1e-5)


def test_full_model_structure_and_stated_parameter_count(full_model):
    model, config = full_model, full_model.config
    layers = [m for m in model.semantic_head.subnet if isinstance(m, DeformableConv2d)]
    assert [(m.conv.in_channels, m.conv.out_channels) for m in layers] == [(256, 256), (256, 128), (128, 128)]
    assert all(not m.offset.weight.any() and not m.offset.bias.any() and not m.grid_sampling for m in layers)
    assert model.semantic_head.predictor.in_channels == 512 and model.semantic_head.predictor.out_channels == 133
    assert list(model.semantic_head.level_strides) == ["p2", "p3", "p4", "p5"] and model.backbone.out_channels == 256
    # stuff first, then things
    categories = model.categories
    assert model.label_to_category.tolist() == [*categories.stuff_ids, *categories.thing_ids]
    assert semantic_layout(categories) == (*categories.stuff_ids, *categories.thing_ids)
    assert model.detector_label_to_channel[COCO_THING_IDS].tolist() == list(range(53, 133))
    assert int(model.detector_label_to_channel[12]) == -1  # an unused COCO label
    assert (config.semantic_loss_weight, config.semantic_roi_loss, config.semantic_roi_loss_weight,
            config.panoptic_loss_weight, config.box_keep_fraction) == (0.2, True, pytest.approx(0.04), 0.1, 0.7)
    assert config.detector.num_classes == 91 and config.semantic_roi_size == 28
    total = sum(p.numel() for p in model.parameters())
    semantic = sum(p.numel() for p in model.semantic_head.parameters())
    predictor = sum(p.numel() for p in model.semantic_head.predictor.parameters())
    stated = [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", upsnet.__doc__)]
    assert stated[:5] == [total, total - semantic, semantic, semantic - predictor, predictor]
    # the published Cityscapes variant and the schedules
    city = UPSNetConfig.cityscapes()
    assert (city.semantic_layers, city.semantic_loss_weight, city.semantic_roi_loss, city.panoptic_loss_weight) == \
        (2, 1.0, False, 0.5) and (city.num_stuff, city.num_things) == (11, 8)
    assert LOSS_WEIGHTS["cityscapes"]["semantic_roi"] is None
    assert PUBLISHED_SCHEDULES["coco"].optim.milestones == (60_000, 80_000) and PUBLISHED_SCHEDULES["coco"].optim.lr == 0.02
    assert PUBLISHED_SCHEDULES["cityscapes"].iterations == 12_000
    assert UPSNetHeadConfig() == UPSNetHeadConfig(0.6, 0.5, 100, 0.3, 0.0, 0.5, 4096, None)
    # stuff limits in pixels of the evaluated image: COCO 4096, Cityscapes 2048; the tiny head scales 4096
    assert UPSNetHeadConfig().stuff_limit(1024 * 2048) == 4096
    assert UPSNetHeadConfig.cityscapes().stuff_limit(1024 * 2048) == 2048
    assert UPSNetHeadConfig.tiny().stuff_limit(128 * 128) == pytest.approx(4096 * 128 * 128 / (640 * 480))


def test_full_model_takes_torchvisions_coco_detector_whole(full_model):
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    result = full_model.load_state_dict(reference.state_dict(), strict=False)
    assert result.unexpected_keys == []
    expected_missing = sorted(f"semantic_head.{key}" for key in full_model.semantic_head.state_dict())
    assert sorted(result.missing_keys) == expected_missing
    assert len(expected_missing) == 14  # 3 x (offset conv, deformable conv) x (weight, bias) + the classifier's 2


# --- the panoptic head, by hand ----------------------------------------------------------------
def hand_case():
    """A 32 x 32 image seen at stride 4 (8 x 8): stuff channels 0-1, thing channels 2-3, constant logits."""
    logits = torch.empty(4, 8, 8)
    logits[0], logits[1], logits[2], logits[3] = 1.0, 0.0, 3.0, -2.0
    boxes = torch.tensor([[4.0, 4.0, 16.0, 12.0],     # A: cells cols 1-3, rows 1-2
                          [16.0, 16.0, 27.0, 25.0]])  # B: cols 4-6, rows 4-6 (edges rounded outwards)
    channels = torch.tensor([2, 3])
    mask_logits = torch.stack([torch.full((1, 1), 2.0), torch.full((1, 1), 5.0)])  # 1 x 1: pasted exactly
    a, b = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    a[1:3, 1:4], b[4:7, 4:7] = True, True
    return logits, boxes, channels, mask_logits, torch.from_numpy(a), torch.from_numpy(b)


def test_panoptic_head_logits_by_hand():
    logits, boxes, channels, masks, a, b = hand_case()
    assert box_cells(boxes, 0.25).tolist() == [[1, 1, 4, 3], [4, 4, 7, 7]]
    x_mask = crop_to_boxes(logits, channels, boxes, 0.25)
    torch.testing.assert_close(x_mask[0], 3.0 * a)  # X of A's class inside its box, 0 outside
    torch.testing.assert_close(x_mask[1], -2.0 * b)
    y_mask = paste_mask_logits(masks, boxes, (8, 8), 0.25)
    torch.testing.assert_close(y_mask[0], 2.0 * a)  # the mask logits pasted into the box, 0 outside
    torch.testing.assert_close(y_mask[1], 5.0 * b)
    # max(X_thing) - max_i(X_mask_i): 3 - 3 inside A; 3 - max(0, -2) inside B (A's channel is 0 there); 3 outside
    unknown = unknown_logits(logits[2:], x_mask)
    torch.testing.assert_close(unknown, torch.where(a, 0.0, 3.0))
    torch.testing.assert_close(unknown_logits(logits[2:], x_mask[:0]), torch.full((8, 8), 3.0))  # no instance
    head = panoptic_logits(logits, 2, x_mask, y_mask)
    expected = torch.stack([logits[0], logits[1], 5.0 * a, 3.0 * b, unknown])
    torch.testing.assert_close(head, expected)
    assert panoptic_logits(logits, 2, x_mask, y_mask, unknown=False).shape == (4, 8, 8)
    # argmax: A wins its box, B ties the unknown channel in its box and wins (lower channel), unknown elsewhere
    labels = panoptic_argmax(logits[:2], x_mask + y_mask, unknown)
    assert torch.equal(labels, head.argmax(dim=0))
    assert torch.equal(labels, torch.where(a, 2, torch.where(b, 3, 4)))
    # a mask logit map that is not constant is resized bilinearly to the box's cells
    ramp = torch.arange(4.0).view(2, 2)
    pasted = paste_mask_logits(ramp[None], boxes[:1], (8, 8), 0.25)[0]
    resized = F.interpolate(ramp[None, None], size=(2, 3), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(pasted[1:3, 1:4], resized)
    assert not pasted[~a].any()
    # a box partly outside the map is cut off
    assert paste_mask_logits(masks[:1], torch.tensor([[-8.0, 24.0, 8.0, 40.0]]), (8, 8), 0.25)[0].sum() == 2.0 * 4


def test_kept_boxes_are_a_seeded_random_seventy_percent():
    drawn = keep_instances(10, 0.7, torch.Generator().manual_seed(3))
    assert torch.equal(drawn, torch.randperm(10, generator=torch.Generator().manual_seed(3))[:7])
    assert len(set(drawn.tolist())) == 7
    assert len(keep_instances(3, 0.7)) == 2 and len(keep_instances(1, 0.7)) == 1  # at least one
    assert len(keep_instances(0, 0.7)) == 0
    assert keep_instances(4, 1.0).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="keep fraction"):
        keep_instances(4, 0.0)


def test_dropped_instances_supervise_the_unknown_channel():
    # stuff 0 on the top row, void on the last, three instances of things (labels 2, 3) between
    semantic = torch.full((4, 6), 2)
    semantic[0], semantic[3] = 0, VOID_LABEL
    masks = torch.zeros(3, 4, 6, dtype=torch.bool)
    masks[0, 1, :2], masks[1, 1, 2:4], masks[2, 1:3, 4:] = True, True, True
    semantic[2, 4:] = 3
    keep = torch.tensor([2, 0])  # instance 1 dropped; its channels in this order
    target = panoptic_targets(semantic, masks[keep], num_stuff=2)
    expected = torch.full((4, 6), 2 + 2)  # unknown = N_st + N_kept
    expected[0], expected[3] = 0, VOID_LABEL
    expected[1, :2] = 2 + 1  # instance 0 is channel 1
    expected[1:3, 4:] = 2 + 0  # instance 2 is channel 0
    assert torch.equal(target, expected)  # instance 1's pixels and the uncovered thing pixels: unknown
    without = panoptic_targets(semantic, masks[keep], num_stuff=2, unknown=False)
    assert torch.equal(without, torch.where(expected == 4, VOID_LABEL, expected))
    overlapping = masks[[0, 0]]
    assert (panoptic_targets(semantic, overlapping, 2)[1, :2] == 3).all()  # the later instance wins
    assert torch.equal(panoptic_targets(semantic, masks[:0], 2), torch.where(semantic == 0, 0, torch.where(
        semantic == VOID_LABEL, VOID_LABEL, 2)))  # no instance: every thing pixel is unknown


def test_semantic_roi_targets_are_box_crops_resized_nearest():
    semantic = torch.arange(64).view(8, 8)
    targets = semantic_roi_targets(semantic, torch.tensor([[2.0, 4.0, 6.0, 8.0], [3.2, 3.4, 3.3, 3.5]]), 2)
    assert targets[0].tolist() == [[34, 36], [50, 52]]
    assert targets[1].tolist() == [[27, 27], [27, 27]]  # a box thinner than a pixel: one pixel


# --- inference steps on constructed inputs -----------------------------------------------------
def test_detections_score_above_threshold_class_agnostic_nms_and_a_limit():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40], [50, 50, 60, 60], [70, 0, 80, 10],
                          [90, 0, 99, 9]])
    scores = torch.tensor([0.8, 0.9, 0.6, 0.7, 0.65, 0.61])
    selection = select_detections(boxes, scores)
    # 0 overlaps 1 (IoU 0.82) and is suppressed whatever the class; 2 scores exactly 0.6: not above it
    assert selection.keep.tolist() == [1, 3, 4, 5]
    assert selection.below_score.tolist() == [2] and selection.suppressed.tolist() == [0]
    limited = select_detections(boxes, scores, max_detections=2)
    assert limited.keep.tolist() == [1, 3] and limited.over_limit.tolist() == [4, 5]
    assert select_detections(boxes, scores, nms_threshold=0.9).keep.tolist() == [1, 0, 3, 4, 5]
    assert select_detections(boxes[:0], scores[:0]).keep.tolist() == []


def test_mask_removal_drops_same_class_masks_more_than_thirty_percent_covered():
    y = torch.full((5, 10, 10), -1.0)
    y[0, :, :5] = 1.0        # A, class 1: 50 px
    y[1, :, 3:8] = 1.0       # B, class 1: 20 of its 50 px on A, 40 % -> dropped
    y[2, :, :5] = 2.0        # C, class 2: all on A, but another class -> kept
    y[3, :, 7:] = 0.5        # D, class 1: 30 px off A ...
    y[3, :3, 3:5] = 0.5      # ... and 6 on A: 6 / 36 <= 30 % -> kept (dropped B does not count)
    scores = [0.9, 0.8, 0.7, 0.6, 0.95]  # E (index 4) has no positive logit: empty, visited first
    removal = remove_duplicate_masks(y, [1, 1, 2, 1, 1], scores)
    assert removal.kept.tolist() == [0, 2, 3]
    assert [(s.index, s.outcome) for s in removal.steps] == [(4, EMPTY), (0, KEPT), (1, OVERLAP), (2, KEPT),
                                                             (3, KEPT)]
    assert removal.steps[2].overlap_fraction == pytest.approx(0.4)
    assert removal.steps[3].overlap == 0 and removal.steps[4].overlap == 6  # only the same class counts
    # exactly 30 % stays (strictly more is dropped)
    z = torch.full((2, 10, 10), -1.0)
    z[0, :, :3] = 1.0
    z[1, :, :10] = 1.0
    assert remove_duplicate_masks(z, [1, 1], [0.9, 0.8]).kept.tolist() == [0, 1]
    assert remove_duplicate_masks(z, [1, 1], [0.9, 0.8], overlap_threshold=0.29).kept.tolist() == [0]


def test_stacked_and_grouped_argmax_agree_ties_included():
    torch.manual_seed(0)
    stuff, instances, unknown = torch.randint(0, 3, (3, 6, 7)).float(), torch.randint(0, 3, (4, 6, 7)).float(), \
        torch.randint(0, 3, (6, 7)).float()
    assert torch.equal(panoptic_argmax(stuff, instances, unknown),
                       torch.cat([stuff, instances, unknown[None]]).argmax(dim=0))
    assert torch.equal(panoptic_argmax(stuff, instances[:0], None), stuff.argmax(dim=0))


def test_majority_relabelling_turns_stuff_looking_instances_into_stuff():
    num_stuff = 2  # channels 0, 1 stuff; 2, 3 things
    labels = torch.tensor([[2, 2, 2, 2, 3, 3, 3, 3, 4, 4],
                           [0, 0, 1, 1, 5, 5, 255, 255, 0, 0]])
    semantic = torch.tensor([[2, 2, 2, 1, 1, 1, 1, 3, 0, 2],
                             [0, 0, 1, 1, 3, 3, 0, 0, 0, 0]])
    # instance 0 (class 2): 3 of 4 its class -> agrees; instance 1 (class 3): 3 of 4 stuff 1 -> to stuff 1;
    # instance 2 (class 3): half stuff 0, half class 2 -> tie to the lower label, stuff 0 at 50 % -> to stuff 0;
    # instance 3 (class 2): all class 3, not stuff -> kept
    out, steps = majority_relabel(labels, semantic, [2, 3, 3, 2], num_stuff)
    assert [(s.instance, s.outcome, s.majority_channel) for s in steps] == [
        (0, AGREES, 2), (1, TO_STUFF, 1), (2, TO_STUFF, 0), (3, DISAGREES, 3)]
    assert steps[1].majority_share == 0.75 and steps[2].area == 2
    expected = labels.clone()
    expected[0, 4:8], expected[0, 8:10] = 1, 0
    assert torch.equal(out, expected)
    stricter, steps = majority_relabel(labels, semantic, [2, 3, 3, 2], num_stuff, majority_fraction=0.8)
    assert [s.outcome for s in steps] == [AGREES, DISAGREES, DISAGREES, DISAGREES] and torch.equal(stricter, labels)


def test_stuff_below_the_area_limit_becomes_void():
    labels = torch.tensor([[0, 0, 0, 1, 1, 2, 255]])
    out, steps = remove_small_stuff(labels, 2, 3, stuff_category_ids=[7, 9])
    assert out.tolist() == [[0, 0, 0, 255, 255, 2, 255]]
    assert [(s.category_id, s.area, s.outcome) for s in steps] == [(7, 3, KEPT), (9, 2, TOO_SMALL)]


def test_unified_panoptic_runs_the_steps_on_a_constructed_image():
    categories = CategorySet([Category(1, "sky", False), Category(2, "road", False), Category(3, "car", True),
                              Category(4, "person", True)])
    logits, boxes, channels, masks, a, b = hand_case()
    logits = logits.clone()
    logits[0, 6:] = -5.0  # road (channel 1) beats sky on the two bottom rows
    boxes = torch.cat([boxes * 0.25, torch.tensor([[1.0, 1.0, 3.0, 2.0]])])  # at the map's resolution
    masks = torch.cat([masks, torch.full((1, 1, 1), 9.0)])  # C: a car on A, higher score, swallows half of it
    result = unified_panoptic(logits, boxes, torch.tensor([0.9, 0.8, 0.95]), torch.tensor([3, 4, 3]), masks,
                              categories, UPSNetHeadConfig(stuff_area_limit=20))
    assert isinstance(result, UPSNetPanoptic)
    assert [s.outcome for s in result.removal.steps] == [KEPT, OVERLAP, KEPT]  # A: 2 of 6 px on C > 30 %
    assert result.kept.tolist() == [2, 1] and result.num_instances == 2
    c = np.zeros((8, 8), bool)
    c[1, 1:3] = True
    np.testing.assert_array_equal(result.instance_logits[0], np.where(c, 12.0, 0.0))  # X 3 + Y 9
    np.testing.assert_array_equal(result.unknown_logits, np.where(c, 0.0, 3.0))
    # argmax: C on its box, B ties unknown on its box and wins, unknown (3) beats sky and road elsewhere: void
    np.testing.assert_array_equal(result.argmax, np.where(c, 2, np.where(b.numpy(), 3, 4)))
    assert result.unknown_pixels.sum() == 64 - 2 - 9
    assert [s.outcome for s in result.majority] == [AGREES, DISAGREES]  # B's region: semantic says "car"
    assert result.stuff == []
    pan = result.panoptic
    assert [(s.id, s.category_id, s.area, s.score) for s in pan.segments] == [(1, 3, 2, pytest.approx(0.95)),
                                                                               (2, 4, 9, pytest.approx(0.8))]
    assert (pan.id_map == 0).sum() == 64 - 11
    pan.validate(categories)
    assert "unknown" in result.report(categories)
    # without the unknown channel stuff fills the rest: sky 40 px, road 13 px (below 20: void)
    plain = unified_panoptic(logits, boxes, torch.tensor([0.9, 0.8, 0.95]), torch.tensor([3, 4, 3]), masks,
                             categories, UPSNetHeadConfig(stuff_area_limit=20), unknown=False)
    assert plain.unknown_logits is None and not plain.unknown_pixels.any()
    assert [(s.category_id, s.area, s.outcome) for s in plain.stuff] == [(1, 40, KEPT), (2, 13, TOO_SMALL)]
    assert [s.category_id for s in plain.panoptic.segments] == [3, 4, 1]
    with pytest.raises(ValueError, match="not a thing"):
        unified_panoptic(logits, boxes, torch.ones(3), torch.tensor([3, 1, 3]), masks, categories)
    with pytest.raises(ValueError, match="one channel per category"):
        unified_panoptic(logits[:3], boxes, torch.ones(3), torch.tensor([3, 4, 3]), masks, categories)


# --- the model ---------------------------------------------------------------------------------
def test_semantic_targets_follow_the_stuff_first_layout(model):
    train_ids = torch.tensor([[CATS.train_id(c.id) for c in CATS.categories] + [VOID_LABEL]])
    labels = model.semantic_labels(train_ids)[0].tolist()
    layout = semantic_layout(CATS)
    assert labels == [layout.index(c.id) for c in CATS.categories] + [VOID_LABEL]
    assert semantic_class_names(CATS) == [CATS[c].name for c in (*CATS.stuff_ids, *CATS.thing_ids)]
    with pytest.raises(ValueError, match="train ids \\[99\\]"):
        model.semantic_labels(torch.tensor([[0, 99]]))


def test_loss_table_names_the_models_losses_and_their_published_weights():
    """Chapter 5's table of the eight losses: the keys the model returns, in order, and the
    weights the published configurations use (the full COCO and Cityscapes configs)."""
    assert {t.name for t in upsnet.LOSSES} == EIGHT_LOSSES
    assert [t.head for t in upsnet.LOSSES] == ["RPN"] * 2 + ["instance"] * 3 + ["semantic"] * 2 + ["panoptic"]
    weights = {t.name: t.weights for t in upsnet.LOSSES}
    for dataset, config in (("coco", UPSNetConfig.full(4, 3)), ("cityscapes", UPSNetConfig.cityscapes())):
        assert weights["loss_semantic"][dataset] == config.semantic_loss_weight
        assert weights["loss_panoptic"][dataset] == config.panoptic_loss_weight
        roi = weights["loss_semantic_roi"][dataset]
        assert (roi is not None) == config.semantic_roi_loss and (roi is None or roi == config.semantic_roi_loss_weight)
        assert all(weights[name][dataset] == 1.0 for name in ("loss_objectness", "loss_rpn_box_reg", "loss_classifier",
                                                               "loss_box_reg", "loss_mask"))


def test_training_step_reports_the_eight_losses_with_gradients_everywhere(model, batch):
    images, targets = batch
    calls = []
    model.backbone.register_forward_hook(lambda *args: calls.append(1))
    model.train()
    losses = model(images, targets)
    assert set(losses) == EIGHT_LOSSES and len(calls) == 1
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for part in ("backbone", "rpn", "roi_heads", "semantic_head"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), part
    offsets = [m.offset.weight.grad for m in model.semantic_head.subnet if isinstance(m, DeformableConv2d)]
    assert all(g.abs().sum() > 0 for g in offsets)  # zero offsets still learn
    # the weights: the semantic cross-entropy does not depend on the detector's random sampling
    model.zero_grad()
    model.config = dataclasses.replace(model.config, semantic_loss_weight=1.0, semantic_roi_loss=False)
    again = model(images, targets)
    assert set(again) == EIGHT_LOSSES - {"loss_semantic_roi"}
    torch.testing.assert_close(again["loss_semantic"], 5 * losses["loss_semantic"].detach(), rtol=1e-5, atol=1e-6)


def test_the_eight_losses_fall_when_overfitting_one_batch(model, batch):
    """Each loss, not only their sum, learns: on one fixed batch every one ends below where it began."""
    images, targets = batch
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for _ in range(60):
        losses = model(images, targets)
        assert set(losses) == EIGHT_LOSSES and all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    for name in EIGHT_LOSSES:  # means of ten steps: the detector's RoI sampling is random per step
        first = np.mean([h[name] for h in history[:10]])
        last = np.mean([h[name] for h in history[-10:]])
        assert last < first, f"{name}: {first:.4f} -> {last:.4f}"


def test_box_candidates_hold_torchvisions_detections(model, batch):
    images, _ = batch
    model.eval()
    with torch.no_grad():
        image_batch = model.transform.batch(images[:1])
        features = model.backbone(image_batch.images.tensors)
        proposals, _ = model.rpn(image_batch.images, features)
        boxes, scores = box_candidates(model.roi_heads, features, proposals, image_batch.images.image_sizes)[0]
        detections, _ = model.roi_heads(features, proposals, image_batch.images.image_sizes)
    assert boxes.shape == (len(proposals[0]), model.config.detector.num_classes, 4)
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(len(scores)))
    for box, label, score in zip(detections[0]["boxes"], detections[0]["labels"], detections[0]["scores"]):
        match = torch.nonzero((scores[:, label] - score).abs() < 1e-6).flatten()
        assert len(match) and any(torch.allclose(boxes[p, label], box) for p in match)


def test_inference_returns_the_heads_result_with_its_steps(model, batch):
    images, _ = batch
    model.eval()
    # an untrained detector scores below 0.6: lower the threshold so the instance channels are exercised
    model.head_config = UPSNetHeadConfig(score_threshold=0.0, max_detections=8)
    calls = []
    model.backbone.register_forward_hook(lambda *args: calls.append(1))
    predictions = model.inference(images)
    assert len(calls) == 1 and not model.training and len(predictions) == 4
    layout = np.array(semantic_layout(CATS))
    for prediction in predictions:
        assert isinstance(prediction, PanopticPrediction) and prediction.panoptic.shape == (64, 64)
        prediction.panoptic.validate(CATS)
        logits = prediction.outputs["semantic_logits"]
        assert logits.shape == (len(CATS), 64, 64)
        np.testing.assert_array_equal(prediction.semantic, layout[logits.argmax(0).numpy()])
        d = prediction.detections
        assert len(d["scores"]) == 8 and d["masks"].shape == (8, 64, 64) and d["boxes"].shape == (8, 4)
        assert set(d["category_ids"]) <= set(CATS.thing_ids)
        assert (np.diff(d["scores"]) <= 0).all()  # most confident first
        result = prediction.merge
        assert isinstance(result, UPSNetPanoptic) and result.selection.keep.shape == (8,)
        again = unified_panoptic(logits, torch.from_numpy(d["boxes"]), torch.from_numpy(d["scores"]),
                                 torch.from_numpy(d["category_ids"]), prediction.outputs["mask_logits"], CATS,
                                 model.head_config)
        np.testing.assert_array_equal(again.panoptic.id_map, prediction.panoptic.id_map)
        assert (prediction.panoptic.id_map[result.unknown_pixels] == 0).all()


def test_an_image_without_things_trains_and_predicts(model):
    dataset = PanopticDataset(SyntheticPanoptic(2, 64, split="train"), CATS, targets=("semantic", "instances"))
    stuff_only = torch.tensor(CATS.train_id(CATS.stuff_ids[0]))
    nothing = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
               "masks": torch.zeros(0, 64, 64, dtype=torch.uint8)}
    model.train()
    for empty in ([0], [0, 1]):  # one image without a thing, then a batch without any
        images, targets = collate_panoptic([dataset[0], dataset[1]])
        for index in empty:
            targets["semantic"][index] = stuff_only
            targets["instances"][index] = nothing
        losses = model(images, targets)
        assert set(losses) == EIGHT_LOSSES and all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
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
    with pytest.raises(ValueError, match="train ids \\[99\\]"):
        model(images, {**targets, "semantic": torch.full_like(targets["semantic"], 99)})
    with pytest.raises(ValueError, match="stuff and"):
        UPSNet(UPSNetConfig.tiny(len(CATS.thing_ids) + 1, num_stuff=3), CATS)
    with pytest.raises(ValueError, match="box_keep_fraction"):
        UPSNetConfig.tiny(len(CATS.thing_ids) + 1, len(CATS.stuff_ids), box_keep_fraction=0.0)
    model.eval()
    with pytest.raises(ValueError, match="uint8"):
        model.inference((images * 255).to(torch.uint8))


def test_non_finite_offsets_are_an_error_not_a_crash():
    """torchvision's deform_conv2d reads out of bounds at NaN positions on the CPU (a segfault)."""
    from panopticlab.models.deformable import DeformableConv2d

    layer = DeformableConv2d(4, 4)
    features = torch.rand(1, 4, 8, 8)
    features[0, 0, 3, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite sampling offsets"):
        layer(features)
