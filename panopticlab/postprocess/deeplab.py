"""Panoptic-DeepLab post-processing: semantic + centre heatmap + offsets -> panoptic.

Panoptic-DeepLab (Cheng et al., CVPR 2020) predicts three maps per image: the semantic
category of each pixel, a heatmap of instance centres, and for each pixel an offset
``(dy, dx)`` pointing to the centre of its instance. Three pure steps, named as in the
published code, turn them into a panoptic segmentation:

1. :func:`~panopticlab.postprocess.centers.find_instance_centers`: threshold, max-pool
   NMS, top-k;
2. :func:`~panopticlab.postprocess.grouping.group_pixels`: each thing pixel joins the
   centre nearest to ``(y + dy, x + dx)``, exactly and in O(pixels) memory;
3. :func:`merge_semantic_and_instances`: each instance takes the majority category of its
   pixels; a stuff category keeps its pixels when it covers at least ``stuff_area`` of
   them; thing pixels that no centre claims become void.

:func:`panoptic_deeplab_postprocess` runs all three. Everything runs on the inputs'
device (CPU or CUDA); only the final maps are copied to the host, because the package's
panoptic representation holds numpy arrays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from ..data import CategorySet, PanopticFormatError, PanopticSegmentation
from .centers import NMS_KERNEL, THRESHOLD, TOP_K, check_nms_kernel, find_instance_centers
from .grouping import group_pixels, vote_map

STUFF_AREA = 2048      # Cityscapes; COCO uses 4096
LABEL_DIVISOR = 1000

#: The published parameters (detectron2's Panoptic-DeepLab configs); pass as ``**CITYSCAPES``.
CITYSCAPES = MappingProxyType(dict(threshold=THRESHOLD, nms_kernel=NMS_KERNEL, top_k=TOP_K,
                                   stuff_area=STUFF_AREA, label_divisor=LABEL_DIVISOR))
COCO = MappingProxyType(dict(threshold=THRESHOLD, nms_kernel=41, top_k=TOP_K,
                             stuff_area=4096, label_divisor=LABEL_DIVISOR))


@dataclass
class DeepLabPanoptic:
    """The result of Panoptic-DeepLab post-processing, with what a chapter draws.

    Attributes:
        panoptic: the segmentation. Thing segments come first, ids ``1..n`` in raster
            order of their centres, each with ``score`` = its centre's heatmap value;
            stuff segments follow in increasing category id, with no score.
        centers: (K, 2) int64 ``(y, x)`` of the centres, raster order.
        center_scores: (K,) heatmap values at the centres.
        center_segment: (K,) int32 segment id of each centre's instance, 0 when no thing
            pixel joined it.
        instance_map: (H, W) int32, 0 on pixels no centre claimed, ``k + 1`` where a thing
            pixel joined ``centers[k]`` (before the merge; read it with ``center_segment``).
        offsets: (2, H, W) the offsets ``(dy, dx)`` the grouping used.
        categories: the category metadata.
        label_divisor: the divisor of :meth:`label_divisor_map`.
    """

    panoptic: PanopticSegmentation
    centers: np.ndarray
    center_scores: np.ndarray
    center_segment: np.ndarray
    instance_map: np.ndarray
    offsets: np.ndarray
    categories: CategorySet
    label_divisor: int = LABEL_DIVISOR

    @property
    def votes(self) -> np.ndarray:
        """(2, H, W) float64 ``(y + dy, x + dx)``: where each pixel votes for its centre."""
        return vote_map(torch.from_numpy(self.offsets)).numpy()

    def label_divisor_map(self, void: int = -1) -> np.ndarray:
        """The label-divisor encoding of detectron2 and Cityscapes.

        Instances get ``category * label_divisor + k`` with ``k = 1, 2, ...`` per category
        in raster order of their centres; stuff gets ``category * label_divisor``; void
        pixels get ``void``. (:func:`panopticlab.data.to_label_divisor` numbers instances
        by their first pixel instead, which is a different order.)

        Returns:
            (H, W) int64.
        """
        next_k: dict[int, int] = {}
        lut = np.full(len(self.panoptic.segments) + 1, void, dtype=np.int64)
        # thing segment ids follow centre order, so counting in id order gives raster-of-centre k
        for segment in sorted(self.panoptic.segments, key=lambda s: s.id):
            k = 0
            if self.categories.isthing(segment.category_id):
                k = next_k.get(segment.category_id, 0) + 1
                next_k[segment.category_id] = k
                if k >= self.label_divisor:
                    raise PanopticFormatError(
                        f"category {segment.category_id} has {k} instances, more than "
                        f"label_divisor={self.label_divisor} - 1 can encode")
            lut[segment.id] = segment.category_id * self.label_divisor + k
        return lut[self.panoptic.id_map]


def panoptic_deeplab_postprocess(semantic, center_heatmap, offsets, categories: CategorySet, *,
                                 threshold: float = THRESHOLD, nms_kernel: int = NMS_KERNEL,
                                 top_k: int | None = TOP_K, stuff_area: int = STUFF_AREA,
                                 label_divisor: int = LABEL_DIVISOR, void_label: int | None = None,
                                 method: str = "auto", source: str = "Panoptic-DeepLab output"
                                 ) -> DeepLabPanoptic:
    """Turn Panoptic-DeepLab's three predictions into a panoptic segmentation.

    Inputs are torch tensors (CPU or CUDA, all on one device) or numpy arrays.

    Args:
        semantic: either (H, W) integer labels in *dataset category ids* (not train ids),
            or (C, H, W) floating logits whose channel ``i`` is category ``categories.ids[i]``
            (argmax, ties to the lower channel).
        center_heatmap: (H, W) or (1, H, W) floating centre heatmap.
        offsets: (2, H, W) floating ``(dy, dx)``, pointing from each pixel to its centre.
        categories: the metadata; thing categories are ``categories.thing_ids``.
        threshold, nms_kernel, top_k: centre extraction, see
            :func:`~panopticlab.postprocess.centers.find_instance_centers`.
        stuff_area: a stuff category keeps its pixels when it has at least this many,
            otherwise they become void.
        label_divisor: for :meth:`DeepLabPanoptic.label_divisor_map`.
        void_label: a label of ``semantic`` that means "no category" (its pixels stay
            void); ``None`` when every label must be a category.
        method: nearest-centre method of
            :func:`~panopticlab.postprocess.grouping.nearest_center`.
        source: names the image in error messages.

    Returns:
        :class:`DeepLabPanoptic`.

    Raises:
        ValueError: mismatched shapes, an offset map without exactly two channels, a bad
            parameter (even or non-positive kernel, ...), NaN or infinite values.
        PanopticFormatError: a label that is not a category of ``categories``.
    """
    _check_parameters(threshold, top_k, stuff_area, label_divisor, source)
    nms_kernel = check_nms_kernel(nms_kernel)
    semantic, center_heatmap, offsets = _as_tensors(semantic, center_heatmap, offsets, categories, source)

    category_ids = sorted(categories.ids)
    if semantic.ndim == 3:
        # channel i is categories.ids[i]; re-index it to the sorted list of ids
        position_of_channel = torch.tensor([category_ids.index(c) for c in categories.ids], device=semantic.device)
        positions = position_of_channel[semantic.argmax(dim=0)]
    else:
        positions = _category_positions(semantic, category_ids, void_label, source)
    is_thing = torch.tensor([categories.isthing(c) for c in category_ids] + [False], device=positions.device)

    centers, scores = find_instance_centers(center_heatmap, threshold, nms_kernel, top_k)
    instance_map = group_pixels(centers, offsets, is_thing[positions], method)
    panoptic, center_segment = _merge(positions, instance_map, len(centers), category_ids, is_thing,
                                      scores.tolist(), stuff_area, source)
    return DeepLabPanoptic(
        panoptic=panoptic,
        centers=centers.cpu().numpy(),
        center_scores=_float_array(scores),
        center_segment=center_segment,
        instance_map=instance_map.to(torch.int32).cpu().numpy(),
        offsets=_float_array(offsets),
        categories=categories,
        label_divisor=int(label_divisor),
    )


def merge_semantic_and_instances(semantic, instance_map, categories: CategorySet, center_scores=None,
                                 stuff_area: int = STUFF_AREA, void_label: int | None = None,
                                 source: str = "semantic + instances") -> tuple[PanopticSegmentation, np.ndarray]:
    """Merge a semantic map and a class-agnostic instance map (step 3).

    Each instance takes the majority category of its pixels (ties to the smallest
    category id); stuff categories with fewer than ``stuff_area`` pixels become void; thing
    pixels outside every instance are void.

    Args:
        semantic: (H, W) integer dataset category ids (``void_label`` allowed).
        instance_map: (H, W) integer, 0 = no instance, ``k + 1`` = the k-th centre; only
            thing pixels may carry an instance.
        categories: the metadata.
        center_scores: (K,) scores of the centres, given to the instances' segments.
        stuff_area: minimum area of a stuff segment.

    Returns:
        The panoptic segmentation (as in :class:`DeepLabPanoptic`) and the (K,) int32
        segment id of each centre (0 when its instance is empty).
    """
    _check_stuff_area(stuff_area, source)
    semantic = _as_tensor(semantic)
    instance_map = _as_tensor(instance_map).to(device=semantic.device, dtype=torch.int64)
    if semantic.ndim != 2 or instance_map.shape != semantic.shape:
        raise ValueError(f"{source}: semantic {tuple(semantic.shape)} and instance map "
                         f"{tuple(instance_map.shape)} must both be (H, W)")
    category_ids = sorted(categories.ids)
    positions = _category_positions(semantic, category_ids, void_label, source)
    is_thing = torch.tensor([categories.isthing(c) for c in category_ids] + [False], device=positions.device)
    num_centers = int(instance_map.max()) if instance_map.numel() else 0
    if instance_map.numel() and int(instance_map.min()) < 0:
        raise ValueError(f"{source}: instance map holds negative ids")
    if (instance_map > 0).logical_and(~is_thing[positions]).any():
        raise ValueError(f"{source}: instance map covers pixels whose semantic label is not a thing category")
    if center_scores is not None and len(center_scores) < num_centers:
        raise ValueError(f"{source}: instance map refers to centre {num_centers} but only "
                         f"{len(center_scores)} centre scores were given")
    num_centers = num_centers if center_scores is None else len(center_scores)
    scores = None if center_scores is None else [float(v) for v in center_scores]
    return _merge(positions, instance_map, num_centers, category_ids, is_thing, scores, stuff_area, source)


# ---------------------------------------------------------------------------------------
def _float_array(tensor: torch.Tensor) -> np.ndarray:
    """A host numpy copy; half precisions widen (losslessly) to float32, which numpy always has."""
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.to(torch.float32)
    return tensor.cpu().numpy()


def _as_tensor(array) -> torch.Tensor:
    """A tensor sharing memory with ``array`` where it can (numpy arrays with negative
    strides, e.g. from a flip, are copied: torch cannot view them)."""
    if isinstance(array, np.ndarray) and any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)
    return torch.as_tensor(array)


def _merge(positions: torch.Tensor, instance_map: torch.Tensor, num_centers: int, category_ids: list[int],
           is_thing: torch.Tensor, center_scores: list[float] | None, stuff_area: int, source: str
           ) -> tuple[PanopticSegmentation, np.ndarray]:
    """Vectorised merge.

    ``positions`` (H, W) int64 indexes ``category_ids`` (sorted), ``len(category_ids)`` for
    void; ``is_thing`` has one more entry (False) for that void slot. ``instance_map``
    (H, W) int64 holds 0 or ``k + 1`` for ``k < num_centers``.
    """
    num_categories = len(category_ids)
    device = positions.device
    instance = instance_map.flatten()
    position = positions.flatten()
    grouped = instance > 0

    # (K, C) pixel counts per instance and category; categories are sorted by id, so
    # argmax (first maximum) gives the majority with ties to the smallest id
    counts = torch.bincount((instance[grouped] - 1) * num_categories + position[grouped],
                            minlength=num_centers * num_categories).view(num_centers, num_categories)
    has_pixels = counts.sum(dim=1) > 0
    majority = counts.argmax(dim=1)
    kept_centers = has_pixels.nonzero()[:, 0]
    num_things = len(kept_centers)
    center_segment = torch.zeros(num_centers + 1, dtype=torch.int64, device=device)
    center_segment[kept_centers + 1] = torch.arange(1, num_things + 1, device=device)

    area = torch.bincount(position, minlength=num_categories + 1)[:num_categories]
    kept_stuff = (~is_thing[:num_categories] & (area > 0) & (area >= stuff_area)).nonzero()[:, 0]
    stuff_segment = torch.zeros(num_categories + 1, dtype=torch.int64, device=device)
    stuff_segment[kept_stuff] = torch.arange(num_things + 1, num_things + 1 + len(kept_stuff), device=device)

    # instance pixels take their instance's segment; every other pixel its stuff segment,
    # which is 0 (void) for thing categories, small stuff and void labels
    id_map = torch.where(instance_map > 0, center_segment[instance_map], stuff_segment[positions])

    category_of, scores = {}, {}
    for segment_id, (center, category) in enumerate(
            zip(kept_centers.tolist(), majority[kept_centers].tolist()), start=1):
        category_of[segment_id] = category_ids[category]
        if center_scores is not None:
            scores[segment_id] = center_scores[center]
    for segment_id, category in enumerate(kept_stuff.tolist(), start=num_things + 1):
        category_of[segment_id] = category_ids[category]
    panoptic = PanopticSegmentation.from_id_map(id_map.to(torch.int32).cpu().numpy(), category_of,
                                                scores=scores, source=source)
    return panoptic, center_segment[1:].to(torch.int32).cpu().numpy()


def _check_parameters(threshold, top_k, stuff_area, label_divisor, source: str) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not math.isfinite(threshold):
        raise ValueError(f"{source}: threshold must be a finite number, got {threshold!r}")
    if top_k is not None and not _is_integer(top_k, minimum=1):
        raise ValueError(f"{source}: top_k must be a positive integer or None, got {top_k!r}")
    _check_stuff_area(stuff_area, source)
    if not _is_integer(label_divisor, minimum=1):
        raise ValueError(f"{source}: label_divisor must be a positive integer, got {label_divisor!r}")


def _check_stuff_area(stuff_area, source: str) -> None:
    if not _is_integer(stuff_area, minimum=0):
        raise ValueError(f"{source}: stuff_area must be a non-negative integer, got {stuff_area!r}")


def _is_integer(value, minimum: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= minimum


def _as_tensors(semantic, center_heatmap, offsets, categories: CategorySet, source: str):
    """Check shapes, dtypes, devices and finiteness; return (semantic, heatmap (H, W), offsets)."""
    if not isinstance(categories, CategorySet) or len(categories) == 0:
        raise ValueError(f"{source}: categories must be a non-empty CategorySet")
    semantic, center_heatmap, offsets = map(_as_tensor, (semantic, center_heatmap, offsets))
    devices = {t.device for t in (semantic, center_heatmap, offsets)}
    if len(devices) > 1:
        raise ValueError(f"{source}: semantic, center heatmap and offsets are on different devices {devices}")

    if semantic.is_floating_point():
        if semantic.ndim != 3:
            raise ValueError(f"{source}: semantic logits must be (C, H, W), got shape {tuple(semantic.shape)}")
        if semantic.shape[0] != len(categories):
            raise ValueError(f"{source}: semantic logits have {semantic.shape[0]} channels but there are "
                             f"{len(categories)} categories")
    elif semantic.dtype == torch.bool or semantic.ndim != 2:
        raise ValueError(f"{source}: semantic must be (H, W) integer category ids or (C, H, W) floating logits, "
                         f"got shape {tuple(semantic.shape)} and dtype {semantic.dtype}")
    if center_heatmap.ndim == 3 and center_heatmap.shape[0] == 1:
        center_heatmap = center_heatmap[0]
    if center_heatmap.ndim != 2:
        raise ValueError(f"{source}: center heatmap must be (H, W) or (1, H, W), got shape "
                         f"{tuple(center_heatmap.shape)}")
    if offsets.ndim != 3 or offsets.shape[0] != 2:
        raise ValueError(f"{source}: offsets must be (2, H, W) with exactly two channels (dy, dx), got shape "
                         f"{tuple(offsets.shape)}")
    size = tuple(semantic.shape[-2:])
    if tuple(center_heatmap.shape) != size or tuple(offsets.shape[1:]) != size:
        raise ValueError(f"{source}: sizes differ: semantic {size}, center heatmap {tuple(center_heatmap.shape)}, "
                         f"offsets {tuple(offsets.shape[1:])}")
    if 0 in size:
        raise ValueError(f"{source}: the image is empty, size {size}")
    if not center_heatmap.is_floating_point() or not offsets.is_floating_point():
        raise ValueError(f"{source}: center heatmap and offsets must be floating point, got dtypes "
                         f"{center_heatmap.dtype} and {offsets.dtype}")
    for name, tensor in (("semantic logits", semantic), ("center heatmap", center_heatmap), ("offsets", offsets)):
        if tensor.is_floating_point():
            _check_finite(tensor, name, source)
    return semantic, center_heatmap, offsets


def _check_finite(tensor: torch.Tensor, name: str, source: str) -> None:
    # min and max propagate NaN and reach +-inf, without a full-size temporary
    low, high = torch.aminmax(tensor)
    if math.isfinite(low) and math.isfinite(high):
        return
    where = tuple((~torch.isfinite(tensor)).nonzero()[0].tolist())
    raise ValueError(f"{source}: non-finite value {tensor[where].item()} in the {name} at index {where}")


def _category_positions(semantic: torch.Tensor, category_ids: list[int], void_label: int | None,
                        source: str) -> torch.Tensor:
    """(H, W) integer category ids -> (H, W) int64 index into sorted ``category_ids``, C on void."""
    if void_label is not None and void_label in category_ids:
        raise ValueError(f"{source}: void_label {void_label} is also a category id; pick another")
    known = category_ids + ([] if void_label is None else [int(void_label)])
    low, high = min(known), max(known)
    lut = torch.full((high - low + 1,), -1, dtype=torch.int64, device=semantic.device)
    lut[torch.tensor(category_ids, device=semantic.device) - low] = torch.arange(len(category_ids),
                                                                                 device=semantic.device)
    if void_label is not None:
        lut[int(void_label) - low] = len(category_ids)
    semantic = semantic.to(torch.int64)
    inside = (semantic >= low) & (semantic <= high)
    positions = lut[(semantic - low).clamp_(0, high - low)]
    unknown = ~inside | (positions < 0)
    if unknown.any():
        labels = torch.unique(semantic[unknown]).tolist()
        raise PanopticFormatError(f"{source}: the semantic map holds category ids {labels[:10]} that the "
                                  f"metadata does not know (known: {category_ids})")
    return positions
