"""Training targets: hand-worked cases, torchvision cross-checks, a per-segment reference."""
import inspect

import numpy as np
import pytest
import torch
import torchvision
from conftest import random_panoptic
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticSegmentation, Segment
from panopticlab.data.targets import (
    GAUSSIAN_SIGMA,
    SMALL_INSTANCE_AREA,
    SMALL_INSTANCE_WEIGHT,
    deeplab_targets,
    instance_target,
    num_semantic_classes,
    segment_index_map,
    semantic_target,
    small_instance_limit,
)

SKY, ROAD, DISC, BOX = 11, 12, 1, 2


def single_instance(shape=(7, 7), block=(slice(2, 5), slice(1, 4))):
    """Sky everywhere, one disc (segment 2) on ``block``."""
    id_map = np.ones(shape, dtype=np.int32)
    id_map[block] = 2
    return PanopticSegmentation.from_id_map(id_map, {1: SKY, 2: DISC})


# ---------------------------------------------------------------------------------------
# Panoptic-DeepLab: hand-worked cases
# ---------------------------------------------------------------------------------------
def test_single_3x3_instance_by_hand():
    pan = single_instance()  # disc on rows 2..4, columns 1..3: centre (y, x) = (3, 2)
    t = deeplab_targets(pan, CATS, sigma=2)

    assert t["center_points"] == [(3.0, 2.0)]
    expected_dy = np.zeros((7, 7), np.float32)
    expected_dx = np.zeros((7, 7), np.float32)
    expected_dy[2:5, 1:4] = [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]
    expected_dx[2:5, 1:4] = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]
    np.testing.assert_array_equal(t["offset"][0].numpy(), expected_dy)
    np.testing.assert_array_equal(t["offset"][1].numpy(), expected_dx)

    block = np.zeros((7, 7), np.float32)
    block[2:5, 1:4] = 1
    np.testing.assert_array_equal(t["offset_weights"].numpy(), block)
    np.testing.assert_array_equal(t["center_weights"].numpy(), np.ones((7, 7)))  # stuff included
    np.testing.assert_array_equal(t["semantic_weights"].numpy(), 1 + 2 * block)  # area 9 < 4096
    expected_semantic = np.where(block > 0, CATS.train_id(DISC), CATS.train_id(SKY))
    np.testing.assert_array_equal(t["semantic"].numpy(), expected_semantic)

    # sigma 2: the window reaches 3 sigma + 1 = 7 pixels, which covers this whole image
    center = t["center"].numpy()
    assert center.shape == (1, 7, 7) and center.dtype == np.float32
    assert center[0, 3, 2] == 1.0 and center.max() == 1.0
    assert center[0, 3, 4] == pytest.approx(np.exp(-4 / 8))  # d = 2
    assert center[0, 0, 6] == pytest.approx(np.exp(-(9 + 16) / 8))  # d^2 = 3^2 + 4^2
    ys, xs = np.indices((7, 7))
    np.testing.assert_allclose(center[0], np.exp(-((ys - 3) ** 2 + (xs - 2) ** 2) / 8), rtol=1e-6)


def test_gaussian_window_is_6_sigma_plus_3_wide():
    # centre (5, 5) of an 11 x 11 image; sigma 1 gives a 9 x 9 window: |dy|, |dx| <= 4
    pan = single_instance((11, 11), (slice(4, 7), slice(4, 7)))
    center = deeplab_targets(pan, CATS, sigma=1)["center"][0].numpy()
    assert center[5, 9] == pytest.approx(np.exp(-16 / 2))
    assert center[9, 9] == pytest.approx(np.exp(-32 / 2))
    assert center[5, 10] == 0 and center[10, 5] == 0 and center[0, 0] == 0
    assert np.count_nonzero(center) == 81


def test_overlapping_gaussians_combine_by_max():
    id_map = np.ones((9, 16), dtype=np.int32)
    id_map[3:6, 2:5] = 2  # centre (4, 3)
    id_map[3:6, 8:11] = 3  # centre (4, 9)
    pan = PanopticSegmentation.from_id_map(id_map, {1: ROAD, 2: DISC, 3: BOX})
    sigma = 2
    t = deeplab_targets(pan, CATS, sigma=sigma)
    assert t["center_points"] == [(4.0, 3.0), (4.0, 9.0)]
    ys, xs = np.indices(id_map.shape)
    first = np.exp(-((ys - 4) ** 2 + (xs - 3) ** 2) / (2 * sigma**2))
    second = np.exp(-((ys - 4) ** 2 + (xs - 9) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(t["center"][0].numpy(), np.maximum(first, second), rtol=1e-6)
    # midway both are exp(-9/8): the max keeps that value, a sum would double it
    assert t["center"][0, 4, 6].item() == pytest.approx(np.exp(-9 / 8))


def test_fractional_centre_rounds_half_to_even_for_the_heatmap_only():
    # a 2 x 2 disc on rows 2..3 and columns 4..5: mass centre (2.5, 4.5)
    pan = single_instance((8, 8), (slice(2, 4), slice(4, 6)))
    t = deeplab_targets(pan, CATS, sigma=1)
    assert t["center_points"] == [(2.5, 4.5)]
    center = t["center"][0].numpy()
    assert np.unravel_index(center.argmax(), center.shape) == (2, 4)  # round(2.5) = 2, round(4.5) = 4
    np.testing.assert_array_equal(t["offset"][0, 2:4, 4:6].numpy(), [[0.5, 0.5], [-0.5, -0.5]])
    np.testing.assert_array_equal(t["offset"][1, 2:4, 4:6].numpy(), [[0.5, -0.5], [0.5, -0.5]])


def test_crowd_and_void_handling():
    id_map = np.ones((10, 10), dtype=np.int32)
    id_map[1:4, 1:4] = 2  # disc instance
    id_map[5:9, 5:9] = 3  # crowd of boxes
    id_map[0, :] = 0  # void row
    pan = PanopticSegmentation.from_id_map(id_map, {1: SKY, 2: DISC, 3: BOX}, iscrowd={3: 1})
    crowd, void = id_map == 3, id_map == 0

    t = deeplab_targets(pan, CATS, sigma=1)
    assert t["center_points"] == [(2.0, 2.0)]  # no centre for the crowd
    assert t["center"][0, 7, 7].item() == 0  # rows/cols 7 are 5 pixels from (2, 2): outside the window
    assert np.all(t["semantic"].numpy()[crowd] == CATS.train_id(BOX))  # detectron2 keeps crowd labelled
    assert np.all(t["semantic"].numpy()[void] == 255)
    assert np.all(t["center_weights"].numpy()[crowd | void] == 0)
    assert np.all(t["center_weights"].numpy()[~(crowd | void)] == 1)
    np.testing.assert_array_equal(t["offset_weights"].numpy(), (id_map == 2).astype(np.float32))
    assert np.all(t["offset"].numpy()[:, crowd] == 0)
    assert np.all(t["semantic_weights"].numpy()[crowd] == 3)  # small thing, crowd included (detectron2)
    assert np.all(t["semantic_weights"].numpy()[void] == 1)

    ignored = deeplab_targets(pan, CATS, sigma=1, ignore_crowd_in_semantic=True, ignore_index=-1)
    assert np.all(ignored["semantic"].numpy()[crowd] == -1)
    assert np.all(ignored["semantic"].numpy()[void] == -1)


def test_small_instance_threshold_is_strict():
    pan = single_instance((8, 8), (slice(0, 3), slice(0, 3)))  # area 9
    assert deeplab_targets(pan, CATS, small_instance_area=9)["semantic_weights"][0, 0] == 1
    assert deeplab_targets(pan, CATS, small_instance_area=10, small_instance_weight=5)["semantic_weights"][0, 0] == 5


def test_published_defaults_and_the_small_instance_limit_scaled_to_the_image():
    assert (GAUSSIAN_SIGMA, SMALL_INSTANCE_AREA, SMALL_INSTANCE_WEIGHT) == (8, 4096, 3)
    parameters = inspect.signature(deeplab_targets).parameters
    assert parameters["sigma"].default == 8 and parameters["small_instance_area"].default == 4096
    assert parameters["small_instance_weight"].default == 3
    assert parameters["small_instance_reference_area"].default is None
    # 4096 px of a 128 x 128 reference are a quarter of it: 1024 px of a 64 x 64 image
    assert small_instance_limit(64 * 64, 4096, 128 * 128) == 1024
    assert small_instance_limit(64 * 64) == 4096  # no reference: the published pixels
    assert small_instance_limit(128 * 128, reference_area=640 * 480) == pytest.approx(218.45, abs=0.01)
    with pytest.raises(ValueError, match="positive"):
        small_instance_limit(64 * 64, 4096, 0)

    def weight(side):  # a side x side thing in a 64 x 64 image
        pan = single_instance((64, 64), (slice(0, side), slice(0, side)))
        return deeplab_targets(pan, CATS, small_instance_reference_area=128 * 128)["semantic_weights"][0, 0].item()

    assert weight(31) == 3 and weight(32) == 1  # 961 < 1024 <= 1024: the limit is strict
    published = deeplab_targets(single_instance((64, 64), (slice(0, 32), slice(0, 32))), CATS)
    assert published["semantic_weights"][0, 0] == 3  # 1024 < 4096 px unscaled


def reference_deeplab_targets(pan, categories, sigma, small_area, small_weight, ignore_index=255):
    """Segment by segment with boolean masks and a precomputed (6 sigma + 3)^2 kernel,
    the way detectron2's PanopticDeepLabTargetGenerator is written (integer sigma)."""
    h, w = pan.shape
    semantic = np.full((h, w), ignore_index, np.int64)
    semantic_weights = np.ones((h, w), np.float32)
    center = np.zeros((h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    center_weights = np.zeros((h, w), np.float32)
    offset_weights = np.zeros((h, w), np.float32)
    points = []
    size = 6 * sigma + 3
    grid = np.arange(size, dtype=float)
    kernel = np.exp(-((grid[None] - 3 * sigma - 1) ** 2 + (grid[:, None] - 3 * sigma - 1) ** 2) / (2 * sigma**2))
    padded = np.zeros((h + 2 * size, w + 2 * size), np.float32)  # room for kernels at the border
    for seg in pan.segments:
        mask = pan.id_map == seg.id
        semantic[mask] = categories.train_id(seg.category_id)
        if not seg.iscrowd:
            center_weights[mask] = 1
        if not categories.isthing(seg.category_id):
            continue
        if mask.sum() < small_area:
            semantic_weights[mask] = small_weight
        if seg.iscrowd:
            continue
        offset_weights[mask] = 1
        yy, xx = np.nonzero(mask)
        cy, cx = yy.mean(), xx.mean()
        points.append((cy, cx))
        offset[0][mask] = cy - yy
        offset[1][mask] = cx - xx
        y, x = int(round(cy)), int(round(cx))
        top, left = y - 3 * sigma - 1 + size, x - 3 * sigma - 1 + size
        window = padded[top:top + size, left:left + size]
        np.maximum(window, kernel, out=window)
    center[:] = padded[size:size + h, size:size + w]
    return dict(semantic=semantic, semantic_weights=semantic_weights, center=center[None], offset=offset,
                center_weights=center_weights, offset_weights=offset_weights, center_points=points)


@pytest.mark.parametrize("seed,sigma", [(0, 1), (1, 2), (2, 3), (3, 8)])
def test_deeplab_targets_match_per_segment_reference(seed, sigma):
    rng = np.random.default_rng(seed)
    pan = random_panoptic(rng, shape=(40, 56), num_things=8, crowd_probability=0.3)
    ours = deeplab_targets(pan, CATS, sigma=sigma, small_instance_area=60, small_instance_weight=3)
    ref = reference_deeplab_targets(pan, CATS, sigma, 60, 3)
    assert len(ours["center_points"]) == len(ref["center_points"]) > 0
    np.testing.assert_allclose(ours["center_points"], ref["center_points"], rtol=0, atol=1e-9)
    for key in ("semantic", "semantic_weights", "offset", "center_weights", "offset_weights"):
        np.testing.assert_allclose(ours[key].numpy(), ref[key], rtol=0, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(ours["center"].numpy(), ref["center"], rtol=1e-6, atol=1e-7)
    assert ours["semantic"].dtype == torch.int64
    for key in ("semantic_weights", "center", "offset", "center_weights", "offset_weights"):
        assert ours[key].dtype == torch.float32, key


# ---------------------------------------------------------------------------------------
# semantic target
# ---------------------------------------------------------------------------------------
def test_semantic_target_train_ids_and_things_as_one_layout(rng):
    pan = random_panoptic(rng, shape=(30, 40))
    plain = semantic_target(pan, CATS).numpy()
    merged = semantic_target(pan, CATS, things_as_one=True).numpy()
    assert num_semantic_classes(CATS) == 9 and num_semantic_classes(CATS, things_as_one=True) == 6
    void = pan.id_map == 0
    assert np.all(plain[void] == 255) and np.all(merged[void] == 255)
    for seg in pan.segments:
        mask = pan.mask(seg.id)
        assert np.all(plain[mask] == CATS.ids.index(seg.category_id))
        # detectron2's Panoptic FPN layout: things -> 0, stuff 11..15 -> 1..5
        expected = 0 if seg.category_id <= 4 else seg.category_id - 10
        assert np.all(merged[mask] == expected)


def test_semantic_target_crowd_option_and_errors(rng):
    pan = random_panoptic(rng, crowd_probability=1.0)
    crowd = np.isin(pan.id_map, [s.id for s in pan.segments if s.iscrowd])
    assert crowd.any()
    assert np.all(semantic_target(pan, CATS).numpy()[crowd] != 255)
    assert np.all(semantic_target(pan, CATS, ignore_crowd=True).numpy()[crowd] == 255)
    with pytest.raises(ValueError, match="ignore_index=3"):
        semantic_target(pan, CATS, ignore_index=3)

    broken = PanopticSegmentation(pan.id_map, [*pan.segments[:-1], Segment(pan.segments[-1].id, 99)])
    with pytest.raises(PanopticFormatError, match=f"image 7: segment {pan.segments[-1].id} has unknown category id 99"):
        semantic_target(broken, CATS, source="image 7")
    missing = PanopticSegmentation(pan.id_map, pan.segments[1:])
    with pytest.raises(PanopticFormatError, match=rf"image 7: ids \[{pan.segments[0].id}\] .* no segment"):
        segment_index_map(missing, source="image 7")


# ---------------------------------------------------------------------------------------
# instance target
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_instance_target_against_masks_to_boxes(seed):
    pan = random_panoptic(np.random.default_rng(seed), shape=(30, 44), num_things=8, crowd_probability=0.3)
    t = instance_target(pan, CATS)
    things = [s for s in pan.segments if s.category_id in CATS.thing_ids and not s.iscrowd]
    assert t["segment_ids"].tolist() == [s.id for s in things]
    assert t["labels"].tolist() == [CATS.thing_ids.index(s.category_id) + 1 for s in things]
    expected_masks = np.stack([pan.id_map == s.id for s in things])
    np.testing.assert_array_equal(t["masks"].numpy(), expected_masks.astype(np.uint8))
    # masks_to_boxes gives the last pixel's index; pixel-edge boxes end one further
    np.testing.assert_array_equal(t["boxes"], torchvision.ops.masks_to_boxes(t["masks"]) + torch.tensor([0, 0, 1, 1]))
    np.testing.assert_array_equal(t["area"], expected_masks.sum(axis=(1, 2)))
    assert t["iscrowd"].tolist() == [0] * len(things)
    assert (t["boxes"].dtype, t["labels"].dtype, t["masks"].dtype) == (torch.float32, torch.int64, torch.uint8)


def test_instance_target_crowd_is_optional():
    pan = random_panoptic(np.random.default_rng(5), crowd_probability=1.0)
    crowd_ids = {s.id for s in pan.segments if s.iscrowd}
    assert crowd_ids
    default = instance_target(pan, CATS)
    assert not crowd_ids & set(default["segment_ids"].tolist())
    with_crowd = instance_target(pan, CATS, include_crowd=True)
    flags = dict(zip(with_crowd["segment_ids"].tolist(), with_crowd["iscrowd"].tolist()))
    assert {k for k, v in flags.items() if v} == crowd_ids


def test_empty_image_gives_empty_targets():
    pan = PanopticSegmentation(np.zeros((6, 9), np.int32), [])
    inst = instance_target(pan, CATS)
    assert inst["boxes"].shape == (0, 4) and inst["labels"].shape == (0,) and inst["masks"].shape == (0, 6, 9)
    assert inst["area"].shape == inst["iscrowd"].shape == inst["segment_ids"].shape == (0,)
    assert inst["boxes"].dtype == torch.float32 and inst["labels"].dtype == torch.int64
    deeplab = deeplab_targets(pan, CATS)
    assert deeplab["center_points"] == []
    assert deeplab["center"].shape == (1, 6, 9) and deeplab["offset"].shape == (2, 6, 9)
    assert not deeplab["center"].any() and not deeplab["center_weights"].any() and not deeplab["offset"].any()
    assert torch.all(deeplab["semantic"] == 255) and torch.all(semantic_target(pan, CATS) == 255)


def tiny_mask_rcnn(num_classes):
    """torchvision's Mask R-CNN on a one-level, 8-channel backbone: small enough to run in a test."""
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4, padding=1), torch.nn.ReLU())
    backbone.out_channels = 8
    return MaskRCNN(backbone, num_classes=num_classes, min_size=48, max_size=64,
                    rpn_anchor_generator=AnchorGenerator(((8, 16),), ((1.0,),)),
                    box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2))


def test_torchvision_mask_rcnn_trains_on_instance_targets():
    torch.manual_seed(0)
    model = tiny_mask_rcnn(num_classes=len(CATS.thing_ids) + 1).train()
    pan = random_panoptic(np.random.default_rng(3), shape=(48, 64))
    empty = PanopticSegmentation(np.zeros((48, 64), np.int32), [])
    targets = [instance_target(pan, CATS), instance_target(empty, CATS)]
    assert len(targets[0]["boxes"]) > 0
    losses = model([torch.rand(3, 48, 64), torch.rand(3, 48, 64)], targets)
    assert {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"] > 0
