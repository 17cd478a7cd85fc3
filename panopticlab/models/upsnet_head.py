"""UPSNet's parameter-free panoptic head: the logits it builds from the semantic and mask heads.

UPSNet (Xiong et al., CVPR 2019) replaces the heuristic merge by a per-pixel softmax over
one channel per stuff class, one channel per instance and one *unknown* channel, built
without any weight from what the semantic head and the mask head predict. With ``X`` the
semantic logits over every category (the ``N_st`` stuff classes first, then the things:
:func:`~panopticlab.postprocess.upsnet.semantic_layout`) and N instances with boxes ``B_i``,
classes ``c_i`` and M x M mask logits of their class:

* stuff channels: ``X[:N_st]``;
* ``X_mask_i`` = ``X[c_i]`` inside ``B_i``, 0 outside (:func:`crop_to_boxes`);
* ``Y_mask_i`` = the mask logits resized (bilinear) to ``B_i`` and pasted, 0 outside
  (:func:`paste_mask_logits`);
* instance channel ``i``: ``X_mask_i + Y_mask_i``;
* unknown: ``max over thing channels of X - max_i X_mask_i`` (:func:`unknown_logits`):
  high where the semantic head sees a thing that no instance's box explains.

:func:`panoptic_logits` stacks them: float [N_st + N + 1, H, W], differentiable in both
heads' logits. Training builds them at stride 4 for ground-truth boxes
(:mod:`panopticlab.models.upsnet`'s panoptic loss), inference at the image's resolution for
detections: :func:`unified_panoptic` builds them and hands them to the inference steps,
pure functions from these logits to a panoptic segmentation
(:mod:`panopticlab.postprocess.upsnet`, where the steps are numbered).

Published code: uber-research/UPSNet ``upsnet/models/resnet_upsnet.py`` (the channels
stacked, the unknown channel) and ``upsnet/operators/modules/unary_logits.py``
(``SegTerm``: ``X_mask``; ``MaskTerm``: ``Y_mask``). Where this module differs from it, on
purpose:

* boxes are in pixel-edge coordinates (``x2`` = last column + 1, as the package's targets
  and torchvision's detections); at scale ``s`` a box covers the cells
  ``floor(x1 s) .. ceil(x2 s) - 1`` (at least one), for ``X_mask`` and ``Y_mask`` alike
  (the published code rounds the two crops differently, at most a cell apart);
* an image without instances has ``max_i X_mask_i = 0`` (the value outside every box),
  so unknown = ``max X_thing``; the published code inserts a dummy instance channel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.categories import VOID_LABEL, CategorySet
from ..postprocess.upsnet import (DetectionSelection, UPSNetHeadConfig, UPSNetPanoptic, panoptic_from_logits,
                                  remove_duplicate_masks, semantic_layout)

__all__ = ["box_cells", "box_masks", "paste_mask_logits", "crop_to_boxes", "unknown_logits", "panoptic_logits",
           "unified_panoptic"]


def box_cells(boxes: Tensor, scale: float = 1.0) -> Tensor:
    """The cells a box covers on a map at ``scale`` pixels per image pixel.

    Args:
        boxes: float [N, 4] (x1, y1, x2, y2) in pixel-edge image coordinates.
        scale: 1 for a map at the image's resolution, 1/4 at stride 4.

    Returns:
        int64 [N, 4] ``(c0, r0, c1, r1)``: columns ``c0 .. c1 - 1`` and rows ``r0 .. r1 - 1``
        (``floor(x1 s)`` .. ``ceil(x2 s)``, at least one cell), not clipped to the map.
    """
    boxes = boxes.detach().to(torch.float64).reshape(-1, 4) * scale
    start = boxes[:, :2].floor()
    stop = torch.maximum(boxes[:, 2:].ceil(), start + 1)
    return torch.cat([start, stop], dim=1).long()


def box_masks(boxes: Tensor, size: tuple[int, int], scale: float = 1.0) -> Tensor:
    """bool [N, H, W]: the cells of each box (:func:`box_cells`) on a map of ``size``."""
    cells = box_cells(boxes, scale).to(boxes.device)
    rows = torch.arange(size[0], device=boxes.device)
    cols = torch.arange(size[1], device=boxes.device)
    inside_rows = (rows[None] >= cells[:, 1:2]) & (rows[None] < cells[:, 3:4])
    inside_cols = (cols[None] >= cells[:, 0:1]) & (cols[None] < cells[:, 2:3])
    return inside_rows[:, :, None] & inside_cols[:, None, :]


def paste_mask_logits(mask_logits: Tensor, boxes: Tensor, size: tuple[int, int], scale: float = 1.0) -> Tensor:
    """``Y_mask``: each M x M logit map resized (bilinear) to its box's cells and pasted, 0 outside.

    Differentiable in ``mask_logits`` (training pastes at stride 4, ``scale=1/4``).

    Args:
        mask_logits: float [N, M, M], the logits of each box's class.
        boxes: float [N, 4] in image pixels.
        size: (H, W) of the map pasted into.

    Returns:
        float [N, H, W]; parts of a box outside the map are cut off.
    """
    if mask_logits.dim() != 3 or len(mask_logits) != len(boxes):
        raise ValueError(f"mask logits {tuple(mask_logits.shape)} for {len(boxes)} boxes; expected [N, M, M]")
    height, width = size
    pasted = []
    for logits, (c0, r0, c1, r1) in zip(mask_logits, box_cells(boxes, scale).tolist()):
        y0, y1, x0, x1 = max(r0, 0), min(r1, height), max(c0, 0), min(c1, width)
        if y0 >= y1 or x0 >= x1:
            pasted.append(mask_logits.new_zeros(height, width))
            continue
        resized = F.interpolate(logits[None, None], size=(r1 - r0, c1 - c0), mode="bilinear", align_corners=False)
        crop = resized[0, 0, y0 - r0:y1 - r0, x0 - c0:x1 - c0]
        pasted.append(F.pad(crop, (x0, width - x1, y0, height - y1)))
    return torch.stack(pasted) if pasted else mask_logits.new_zeros(0, height, width)


def crop_to_boxes(semantic_logits: Tensor, channels: Tensor, boxes: Tensor, scale: float = 1.0) -> Tensor:
    """``X_mask``: channel ``channels[i]`` of the semantic logits inside box ``i``, 0 outside.

    Args:
        semantic_logits: float [C, H, W].
        channels: int64 [N], each instance's class channel.
        boxes: float [N, 4] in image pixels.

    Returns:
        float [N, H, W].
    """
    size = tuple(semantic_logits.shape[-2:])
    inside = box_masks(boxes.to(semantic_logits.device), size, scale)
    return semantic_logits[channels.to(semantic_logits.device)] * inside


def unknown_logits(thing_logits: Tensor, x_mask: Tensor) -> Tensor:
    """The unknown channel: ``max over thing channels of X - max_i X_mask_i``, per pixel.

    ``X_mask`` is 0 outside its box, so outside every box the second term is 0 (and it is
    0 everywhere without instances). float [T, H, W], [N, H, W] -> [H, W].
    """
    thing_max = thing_logits.max(dim=0).values
    if len(x_mask) == 0:
        return thing_max
    return thing_max - x_mask.max(dim=0).values


def panoptic_logits(semantic_logits: Tensor, num_stuff: int, x_mask: Tensor, y_mask: Tensor,
                    unknown: bool = True) -> Tensor:
    """The head's logits: [stuff ``X[:N_st]``, ``X_mask_i + Y_mask_i`` per instance, unknown].

    Args:
        semantic_logits: float [C, H, W], stuff channels first.
        num_stuff: ``N_st``.
        x_mask, y_mask: float [N, H, W] (:func:`crop_to_boxes`, :func:`paste_mask_logits`).
        unknown: append the unknown channel (UPSNet trained with a box keep fraction < 1).

    Returns:
        float [N_st + N (+ 1), H, W].
    """
    parts = [semantic_logits[:num_stuff], x_mask + y_mask]
    if unknown:
        parts.append(unknown_logits(semantic_logits[num_stuff:], x_mask)[None])
    return torch.cat(parts, dim=0)


def unified_panoptic(semantic_logits: Tensor, boxes: Tensor, scores: Tensor, category_ids: Tensor,
                     mask_logits: Tensor, categories: CategorySet, config: UPSNetHeadConfig = UPSNetHeadConfig(), *,
                     unknown: bool = True, selection: DetectionSelection | None = None,
                     void_label: int = VOID_LABEL) -> UPSNetPanoptic:
    """Steps 2-7 of the head's inference (:mod:`panopticlab.postprocess.upsnet`): the panoptic
    segmentation of one image.

    ``Y_mask`` of every detection (step 2), the duplicate removal on it (step 3), then
    ``X_mask`` and the unknown channel of the kept ones, and
    :func:`~panopticlab.postprocess.upsnet.panoptic_from_logits` (steps 4-7).

    Args:
        semantic_logits: float [C, H, W] at the output resolution, one channel per category
            in :func:`~panopticlab.postprocess.upsnet.semantic_layout` order.
        boxes: float [N, 4] (x1, y1, x2, y2) in the logits' pixels, the detections of step 1.
        scores: float [N]; category_ids: int [N] thing categories.
        mask_logits: float [N, M, M], each detection's logits of its class.
        categories: the dataset's categories.
        config: the thresholds (the NMS and score ones belong to step 1).
        unknown: the model has an unknown channel (trained with a box keep fraction < 1).
        selection: step 1's record, kept in the result.

    Raises:
        ValueError: shapes disagree, or a category is unknown or not a thing.
    """
    layout = semantic_layout(categories)
    num_stuff = len(categories.stuff_ids)
    if semantic_logits.dim() != 3 or semantic_logits.shape[0] != len(layout):
        raise ValueError(f"semantic logits {tuple(semantic_logits.shape)}: expected [{len(layout)}, H, W], one "
                         f"channel per category")
    device = semantic_logits.device
    boxes, scores = boxes.to(device).reshape(-1, 4), scores.to(device).reshape(-1)
    category_ids = torch.as_tensor(category_ids).reshape(-1).tolist()
    if not len(boxes) == len(scores) == len(category_ids) == len(mask_logits):
        raise ValueError(f"{len(boxes)} boxes, {len(scores)} scores, {len(category_ids)} category ids and "
                         f"{len(mask_logits)} mask logits must be as many")
    channel_of = {c: k for k, c in enumerate(layout)}
    for index, c in enumerate(category_ids):
        if c not in channel_of or not categories.isthing(c):
            raise ValueError(f"detection {index} has category {c}, which is not a thing category of {categories.ids}")
    logits = semantic_logits.detach().float()

    y_all = paste_mask_logits(mask_logits.to(device).float(), boxes, tuple(logits.shape[-2:]))     # step 2
    removal = remove_duplicate_masks(y_all, category_ids, scores, overlap_threshold=config.overlap_threshold,
                                     mask_logit_threshold=config.mask_logit_threshold)             # step 3
    kept = torch.as_tensor(removal.kept, dtype=torch.long, device=device)
    channels = torch.tensor([channel_of[category_ids[i]] for i in removal.kept.tolist()], dtype=torch.long,
                            device=device)
    x_mask = crop_to_boxes(logits, channels, boxes[kept])
    unknown_map = unknown_logits(logits[num_stuff:], x_mask) if unknown else None
    return panoptic_from_logits(logits, x_mask, y_all[kept], unknown_map, removal, channels.tolist(), scores[kept],
                                categories, config, selection=selection, void_label=void_label)  # steps 4-7
