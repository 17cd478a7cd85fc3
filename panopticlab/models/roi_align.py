"""RoIAlign as bilinear sampling: torchvision's numbers, a faster backward pass on a CPU.

``RoIAlign(aligned=False)`` with a fixed ``sampling_ratio`` s averages, in each of the
H_out x W_out bins of a box, the bilinear interpolation of the feature map at s x s
regularly spaced points. Those points are a grid, so the whole operation is one
``F.grid_sample`` per image (``align_corners=True`` puts pixel centres at integer
coordinates, ``padding_mode="border"`` clamps as RoIAlign does inside [-1, size]) and an
average over each s x s block; points beyond [-1, size] count zero, as in RoIAlign.

Why: on a CPU, torchvision's RoIAlign backward runs one thread over every sample of
every RoI and took 17 % of a tiny Mask R-CNN step; ``grid_sample``'s vectorised
backward does the same work about twice as fast (``benchmarks/train_step.py``). The
values equal ``torchvision.ops.roi_align`` to float rounding, forward and backward
(``tests/test_models_roi_align.py``). :class:`GridRoIAlign` is a drop-in
``MultiScaleRoIAlign`` (same level assignment, same scales); the tiny detection
configuration uses it, the full one keeps torchvision's kernel (the published model and
its GPU path unchanged).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.poolers import LevelMapper

__all__ = ["grid_roi_align", "GridRoIAlign"]


def grid_roi_align(features: Tensor, boxes: list[Tensor], output_size: tuple[int, int], spatial_scale: float,
                   sampling_ratio: int) -> Tensor:
    """RoIAlign (``aligned=False``) of per-image boxes on one feature map.

    Args:
        features: float [B, C, H, W].
        boxes: B tensors [N_b, 4] (x1, y1, x2, y2) in image coordinates.
        output_size: (H_out, W_out) bins.
        spatial_scale: feature pixels per image pixel (1/4 for P2).
        sampling_ratio: s >= 1 bilinear samples per bin along each axis.

    Returns:
        [sum N_b, C, H_out, W_out], boxes in the order given (image 0 first).
    """
    if sampling_ratio < 1:
        raise ValueError(f"grid_roi_align needs a fixed sampling_ratio >= 1, got {sampling_ratio}")
    if len(boxes) != features.shape[0]:
        raise ValueError(f"{len(boxes)} box tensors for a batch of {features.shape[0]} feature maps")
    out_h, out_w = output_size
    channels, height, width = features.shape[1:]
    s = sampling_ratio
    # sample positions inside a box, as fractions of its extent: bin i, sample j at (i + (j + 0.5) / s) / out
    fy = (torch.arange(out_h * s, device=features.device, dtype=features.dtype) + 0.5) / (out_h * s)
    fx = (torch.arange(out_w * s, device=features.device, dtype=features.dtype) + 0.5) / (out_w * s)
    pooled = []
    for image, image_boxes in enumerate(boxes):
        n = image_boxes.shape[0]
        if n == 0:
            pooled.append(features.new_zeros((0, channels, out_h, out_w)))
            continue
        scaled = image_boxes.to(features.dtype) * spatial_scale
        x1, y1 = scaled[:, 0:1], scaled[:, 1:2]
        box_w = (scaled[:, 2:3] - x1).clamp(min=1.0)  # RoIAlign's minimum extent of one feature pixel
        box_h = (scaled[:, 3:4] - y1).clamp(min=1.0)
        ys = y1 + fy * box_h  # [n, out_h * s] feature-pixel coordinates
        xs = x1 + fx * box_w  # [n, out_w * s]
        grid = torch.stack(torch.broadcast_tensors(_normalised(xs, width)[:, None, :],
                                                   _normalised(ys, height)[:, :, None]), dim=-1)
        sampled = F.grid_sample(features[image:image + 1], grid.reshape(1, n * out_h * s, out_w * s, 2),
                                mode="bilinear", padding_mode="border", align_corners=True)
        sampled = sampled.reshape(channels, n, out_h * s, out_w * s).transpose(0, 1)
        inside = (((ys >= -1) & (ys <= height))[:, :, None] & ((xs >= -1) & (xs <= width))[:, None, :])
        if not bool(inside.all()):  # RoIAlign counts samples beyond [-1, size] as zero
            sampled = sampled * inside[:, None].to(sampled.dtype)
        pooled.append(F.avg_pool2d(sampled, s) if s > 1 else sampled)
    return torch.cat(pooled)


def _normalised(coordinates: Tensor, size: int) -> Tensor:
    # align_corners=True: -1 and +1 are the centres of the first and last pixel
    return coordinates * (2.0 / (size - 1)) - 1.0 if size > 1 else torch.zeros_like(coordinates)


class GridRoIAlign(MultiScaleRoIAlign):
    """``MultiScaleRoIAlign`` computed with :func:`grid_roi_align` (a fixed ``sampling_ratio`` >= 1).

    Same arguments, same level of each box (torchvision's ``LevelMapper``: level
    floor(4 + log2(sqrt(area) / 224)) clamped to the pyramid), same output.
    """

    def __init__(self, featmap_names: list[str], output_size: int | tuple[int, int], sampling_ratio: int, **kwargs):
        if sampling_ratio < 1:
            raise ValueError(f"GridRoIAlign needs a fixed sampling_ratio >= 1, got {sampling_ratio}")
        super().__init__(featmap_names, output_size, sampling_ratio, **kwargs)

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        features = [x[name] for name in self.featmap_names]
        padded_h = max(shape[0] for shape in image_shapes)
        scales = [2.0 ** round(math.log2(f.shape[-2] / padded_h)) for f in features]
        mapper = LevelMapper(round(-math.log2(scales[0])), round(-math.log2(scales[-1])),
                             self.canonical_scale, self.canonical_level)
        if len(features) == 1:
            return grid_roi_align(features[0], boxes, self.output_size, scales[0], self.sampling_ratio)
        levels = mapper(boxes)
        image_of_box = torch.cat([torch.full((len(b),), i, device=levels.device) for i, b in enumerate(boxes)])
        all_boxes = torch.cat(boxes)
        result = features[0].new_zeros((len(all_boxes), features[0].shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, scales)):
            index = torch.where(levels == level)[0]
            if len(index) == 0:
                continue
            # boxes of this level, per image, in order: their index is sorted, so images stay contiguous
            per_image = [all_boxes[index[image_of_box[index] == image]] for image in range(feature.shape[0])]
            result[index] = grid_roi_align(feature, per_image, self.output_size, scale, self.sampling_ratio
                                           ).to(result.dtype)
        return result


class HalfPixelRoIAlign(MultiScaleRoIAlign):
    """``MultiScaleRoIAlign`` with ``aligned=True``: detectron2's ``ROIAlignV2``.

    torchvision's pooler (``aligned=False``, what its detectors were trained with) samples a
    box scaled to the feature map as it is; the aligned one first shifts it by half a
    feature pixel, so a box's corners fall on pixel corners rather than pixel centres (the
    misalignment the RoIAlign paper set out to remove, kept in torchvision for its weights).
    The levels are assigned as torchvision assigns them (detectron2's rule is the same:
    ``floor(4 + log2(sqrt(area) / 224))``, clamped to the pyramid).
    """

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor], image_shapes: list[tuple[int, int]]) -> Tensor:
        from torchvision.ops import roi_align
        from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

        features = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(features, image_shapes, self.canonical_scale,
                                                         self.canonical_level)
        rois = _convert_to_roi_format(boxes)

        def pool(feature, level_rois, scale):
            return roi_align(feature, level_rois, self.output_size, spatial_scale=scale,
                             sampling_ratio=self.sampling_ratio, aligned=True)

        if len(features) == 1:
            return pool(features[0], rois, self.scales[0])
        levels = self.map_levels(boxes)
        result = features[0].new_zeros((len(rois), features[0].shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            index = torch.where(levels == level)[0]
            result[index] = pool(feature, rois[index], scale).to(result.dtype)
        return result
