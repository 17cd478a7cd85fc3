"""GridRoIAlign against torchvision's RoIAlign: same values and gradients, any boxes."""
from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from panopticlab.models.roi_align import GridRoIAlign, grid_roi_align


def _boxes(generator, count, size, beyond=0.0):
    """``count`` random boxes in a ``size`` px image, reaching ``beyond`` of the size outside it."""
    corner = torch.rand(count, 2, generator=generator) * size * (1 + 2 * beyond) - size * beyond
    extent = torch.rand(count, 2, generator=generator) * size / 2 + 0.1
    return torch.cat([corner, corner + extent], dim=1)


@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
@pytest.mark.parametrize("beyond", [0.0, 0.3])
def test_one_level_equals_roi_align_forward_and_backward(sampling_ratio, beyond):
    generator = torch.Generator().manual_seed(sampling_ratio)
    features = torch.randn(3, 5, 16, 20, generator=generator, dtype=torch.float64, requires_grad=True)
    boxes = [_boxes(generator, n, 64, beyond).double() for n in (7, 0, 4)]
    rois = torch.cat([torch.cat([torch.full((len(b), 1), i, dtype=b.dtype), b], 1) for i, b in enumerate(boxes)])
    expected = roi_align(features, rois, (7, 6), 0.25, sampling_ratio, aligned=False)
    got = grid_roi_align(features, boxes, (7, 6), 0.25, sampling_ratio)
    torch.testing.assert_close(got, expected)
    weights = torch.randn(expected.shape, generator=generator, dtype=torch.float64)
    expected_grad, = torch.autograd.grad((expected * weights).sum(), features)
    got_grad, = torch.autograd.grad((got * weights).sum(), features)
    torch.testing.assert_close(got_grad, expected_grad)


def test_pyramid_equals_multiscale_roi_align():
    generator = torch.Generator().manual_seed(0)
    sizes = {"p2": 128, "p3": 64, "p4": 32, "p5": 16}
    features = OrderedDict((name, torch.randn(2, 2, s, s, generator=generator, dtype=torch.float64, requires_grad=True))
                           for name, s in sizes.items())
    # boxes of every size, so that every level gets some (level 4 + log2(sqrt(area) / 224))
    boxes = [torch.cat([_boxes(generator, 30, 512), _boxes(generator, 3, 64), torch.tensor([[0.0, 0.0, 511.0, 480.0]])]
                       ).double() for _ in range(2)]
    boxes[1][:5] *= 3  # some beyond the image
    image_sizes = [(512, 512), (480, 512)]
    reference = MultiScaleRoIAlign(list(sizes), 7, 1)
    ours = GridRoIAlign(list(sizes), 7, 1)
    expected = reference(features, boxes, image_sizes)
    got = ours(features, boxes, image_sizes)
    torch.testing.assert_close(got, expected)
    expected_grads = torch.autograd.grad(expected.square().sum(), list(features.values()))
    got_grads = torch.autograd.grad(got.square().sum(), list(features.values()))
    for name, e, g in zip(sizes, expected_grads, got_grads):
        torch.testing.assert_close(g, e, msg=f"gradient of {name}")
    levels = reference.map_levels(boxes)
    assert set(levels.tolist()) == {0, 1, 2, 3}  # the test reached several levels


def test_adaptive_sampling_is_refused():
    with pytest.raises(ValueError, match="sampling_ratio"):
        GridRoIAlign(["p2"], 7, 0)
    with pytest.raises(ValueError, match="box tensors"):
        grid_roi_align(torch.zeros(2, 1, 4, 4), [torch.zeros(0, 4)], (2, 2), 1.0, 1)


def test_the_tiny_detector_pools_with_it_the_full_one_with_torchvision():
    from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
    from panopticlab.models import mask_rcnn

    tiny = mask_rcnn.for_categories(CATS, "tiny")
    assert isinstance(tiny.roi_heads.box_roi_pool, GridRoIAlign)
    assert isinstance(tiny.roi_heads.mask_roi_pool, GridRoIAlign)
    full = mask_rcnn.MaskRCNNConfig.full(3).detection
    assert not full.grid_roi_align  # the published model keeps torchvision's kernel (and its GPU path)


def test_half_pixel_pooling_is_torchvisions_aligned_roi_align_per_level():
    """detectron2's ROIAlignV2: torchvision's roi_align(aligned=True) on the level torchvision
    assigns each box; aligned=False it is torchvision's own MultiScaleRoIAlign exactly."""
    from panopticlab.models.roi_align import HalfPixelRoIAlign

    torch.manual_seed(0)
    features = OrderedDict(p2=torch.rand(2, 3, 32, 32), p3=torch.rand(2, 3, 16, 16))
    boxes = [torch.tensor([[2.0, 3.0, 20.0, 30.0], [40.0, 40.0, 120.0, 110.0]]), torch.tensor([[5.0, 5.0, 9.0, 9.0]])]
    shapes = [(128, 128), (128, 128)]
    ours = HalfPixelRoIAlign(["p2", "p3"], 7, 0)(features, boxes, shapes)
    plain = MultiScaleRoIAlign(["p2", "p3"], 7, 0)
    torchvision_unaligned = plain(features, boxes, shapes)
    levels = plain.map_levels(boxes)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    for k, level in enumerate(levels.tolist()):
        name, scale = ("p2", 0.25) if level == 0 else ("p3", 0.125)
        expected = roi_align(features[name], rois[k:k + 1], 7, spatial_scale=scale, sampling_ratio=0, aligned=True)
        torch.testing.assert_close(ours[k:k + 1], expected)
    assert not torch.allclose(ours, torchvision_unaligned)  # the half pixel changes what a box pools


def test_detectron2_settings_where_they_differ_from_torchvisions():
    from panopticlab.models.detection import DetectionConfig, build_roi_heads
    from panopticlab.models.roi_align import HalfPixelRoIAlign

    config = DetectionConfig.detectron2(9)
    assert (config.rpn_post_nms_top_n_train, config.roi_aligned, config.roi_sampling_ratio) == (1000, True, 0)
    assert (DetectionConfig().rpn_post_nms_top_n_train, DetectionConfig().roi_aligned) == (2000, False)
    heads = build_roi_heads(config, 8, ["p2", "p3", "p4", "p5"])
    assert isinstance(heads.box_roi_pool, HalfPixelRoIAlign) and isinstance(heads.mask_roi_pool, HalfPixelRoIAlign)
    with pytest.raises(ValueError, match="cannot be roi_aligned"):
        build_roi_heads(DetectionConfig.tiny(9, roi_aligned=True), 8, ["p2", "p3", "p4", "p5"])
