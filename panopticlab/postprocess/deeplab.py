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

:func:`panoptic_deeplab_postprocess` runs all three, as numpy operations on the host:
on views of CPU tensors' memory, on a host copy of CUDA tensors (``_arrays`` says why);
the package's panoptic representation holds numpy arrays anyway.

The per-image work is a fixed number of passes, whatever the number of categories or
instances: the semantic map is read through one lookup table (one histogram gives every
category's area, one lookup the stuff segments), only thing pixels are grouped, and the
majority vote is one histogram of (instance, category) pairs over the thing pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from ..data import LABEL_DIVISOR, CategorySet, PanopticFormatError, PanopticSegmentation, Segment
from ._arrays import as_numpy
from .centers import NMS_KERNEL, THRESHOLD, TOP_K, _find_centers, _in_dtype, check_nms_kernel
from .grouping import _group, _vote_map
from .heuristic import CITYSCAPES_STUFF_AREA, COCO_STUFF_AREA

# label maps whose category ids (and void label) lie in [0, DIRECT_LOOKUP) index the
# lookup tables directly; others are shifted by their smallest id first
DIRECT_LOOKUP = 1 << 16

#: The published parameters (detectron2's Panoptic-DeepLab configs); pass as ``**CITYSCAPES``.
CITYSCAPES = MappingProxyType(dict(threshold=THRESHOLD, nms_kernel=NMS_KERNEL, top_k=TOP_K,
                                   stuff_area=CITYSCAPES_STUFF_AREA, label_divisor=LABEL_DIVISOR))
COCO = MappingProxyType(dict(threshold=THRESHOLD, nms_kernel=41, top_k=TOP_K,
                             stuff_area=COCO_STUFF_AREA, label_divisor=LABEL_DIVISOR))


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
        return _vote_map(self.offsets)

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
                                 top_k: int | None = TOP_K, stuff_area: int = CITYSCAPES_STUFF_AREA,
                                 label_divisor: int = LABEL_DIVISOR, void_label: int | None = None,
                                 source: str = "Panoptic-DeepLab output"
                                 ) -> DeepLabPanoptic:
    """Turn Panoptic-DeepLab's three predictions into a panoptic segmentation.

    Inputs are torch tensors (CPU or CUDA, all on one device) or numpy arrays; CUDA
    tensors are copied to the host.

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
    threshold = _in_dtype(threshold, center_heatmap.dtype)  # before bfloat16 widens to float32
    heatmap, offsets = as_numpy(center_heatmap), as_numpy(offsets)
    _check_finite(heatmap, "center heatmap", source)
    _check_finite(offsets, "offsets", source)
    if semantic.ndim == 3:
        # channel i is categories.ids[i]: the channel is the code; argmax ties to the lower channel
        logits = as_numpy(semantic)
        _check_finite(logits, "semantic logits", source)
        labels = _Labels(logits.argmax(axis=0), list(categories.ids), categories)
    else:
        labels = _label_codes(as_numpy(semantic), categories, void_label, source)

    flat_centers, scores = _find_centers(heatmap, threshold, nms_kernel, top_k)
    width = semantic.shape[-1]
    centers = np.stack([flat_centers // width, flat_centers % width], axis=1).astype(np.int64)
    thing_pixels, nearest = None, None
    if len(centers):
        # only thing pixels are grouped; with no centre they all stay void and none is looked at
        thing_pixels = np.flatnonzero(labels.is_thing[labels.codes])
        nearest = _group(centers, offsets, thing_pixels)
    score_list = scores.tolist()
    panoptic, center_segment = _merge(labels, thing_pixels, nearest, len(score_list), score_list, stuff_area)

    instance_map = np.zeros(tuple(semantic.shape[-2:]), np.int32)
    if nearest is not None:
        instance_map.reshape(-1)[thing_pixels] = nearest + 1
    return DeepLabPanoptic(
        panoptic=panoptic,
        centers=centers,
        center_scores=_float_array(scores),
        center_segment=center_segment,
        instance_map=instance_map,
        offsets=_float_array(offsets),
        categories=categories,
        label_divisor=int(label_divisor),
    )


def merge_semantic_and_instances(semantic, instance_map, categories: CategorySet, center_scores=None,
                                 stuff_area: int = CITYSCAPES_STUFF_AREA, void_label: int | None = None,
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
    instance_map = _as_tensor(instance_map)
    if semantic.ndim != 2 or instance_map.shape != semantic.shape:
        raise ValueError(f"{source}: semantic {tuple(semantic.shape)} and instance map "
                         f"{tuple(instance_map.shape)} must both be (H, W)")
    if instance_map.is_floating_point() or instance_map.dtype == torch.bool:
        raise ValueError(f"{source}: the instance map must hold integers, got dtype {instance_map.dtype}")
    labels = _label_codes(as_numpy(semantic), categories, void_label, source)
    instances = as_numpy(instance_map)
    low, high = (int(instances.min()), int(instances.max())) if instances.size else (0, 0)
    if low < 0:
        raise ValueError(f"{source}: instance map holds negative ids")
    thing_pixels = np.flatnonzero(instances > 0)
    nearest = instances.reshape(-1)[thing_pixels].astype(np.int64) - 1
    if not labels.is_thing[labels.codes.reshape(-1)[thing_pixels]].all():
        raise ValueError(f"{source}: instance map covers pixels whose semantic label is not a thing category")
    if center_scores is not None and len(center_scores) < high:
        raise ValueError(f"{source}: instance map refers to centre {high} but only "
                         f"{len(center_scores)} centre scores were given")
    num_centers = int(high) if center_scores is None else len(center_scores)
    scores = None if center_scores is None else [float(v) for v in center_scores]
    return _merge(labels, thing_pixels, nearest, num_centers, scores, stuff_area)


# ---------------------------------------------------------------------------------------
def _float_array(array: np.ndarray) -> np.ndarray:
    """float32 or float64 as it is; float16 widens (losslessly) to float32."""
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)


def _as_tensor(array) -> torch.Tensor:
    """A tensor sharing memory with ``array`` where it can (numpy arrays with negative
    strides, e.g. from a flip, are copied: torch cannot view them)."""
    if isinstance(array, np.ndarray) and any(stride < 0 for stride in array.strides):
        array = np.ascontiguousarray(array)
    return torch.as_tensor(array)


class _Labels:
    """The semantic map as integer codes, and what each code means.

    ``codes`` (H, W) integers in ``[0, n)``; ``category`` (n,) Python list, the category id
    of each code or None (the void label, or a code no pixel has); ``area`` (n,) int64
    pixel count of each code (one histogram); ``is_thing`` (n,) bool and ``thing_rank``
    (n,) int64, the position of a thing category in ``thing_ids`` (sorted), as arrays for
    lookups.
    """

    def __init__(self, codes: np.ndarray, category: list, categories: CategorySet):
        self.codes, self.category = codes, category
        self.area = np.bincount(codes.reshape(-1), minlength=len(category))
        self.thing_ids = sorted(categories.thing_ids)
        is_thing = [c is not None and categories.isthing(c) for c in category]
        self.is_thing = np.array(is_thing, bool)
        self.thing_rank = np.array([self.thing_ids.index(c) if t else 0 for c, t in zip(category, is_thing)],
                                   np.int64)


def _label_codes(semantic: np.ndarray, categories: CategorySet, void_label: int | None, source: str) -> _Labels:
    """(H, W) integer dataset category ids (``void_label`` allowed) -> :class:`_Labels`."""
    category_ids = sorted(categories.ids)
    if void_label is not None and void_label in category_ids:
        raise ValueError(f"{source}: void_label {void_label} is also a category id; pick another")
    known = category_ids + ([] if void_label is None else [int(void_label)])
    low, high = min(known), max(known)
    base = 0 if low >= 0 and high < DIRECT_LOOKUP else low
    found_low, found_high = (int(semantic.min()), int(semantic.max())) if semantic.size else (low, high)
    if found_low < low or found_high > high:
        known = set(known)
        _unknown_labels([v for v in np.unique(semantic).tolist() if v not in known], category_ids, source)
    if base != 0:
        semantic = semantic.astype(np.int64) - base
    elif semantic.dtype == np.uint64:
        semantic = semantic.astype(np.int64)  # bincount refuses uint64 (the range check says the values fit)
    category = [None] * (high - base + 1)
    for c in category_ids:
        category[c - base] = c
    labels = _Labels(semantic, category, categories)
    present = labels.area > 0
    unknown = [code + base for code in np.flatnonzero(present).tolist()
               if category[code] is None and code + base != void_label]
    if unknown:
        _unknown_labels(unknown, category_ids, source)
    return labels


def _unknown_labels(labels: list, category_ids: list, source: str):
    raise PanopticFormatError(f"{source}: the semantic map holds category ids {sorted(labels)[:10]} that the "
                              f"metadata does not know (known: {category_ids})")


def _merge(labels: _Labels, thing_pixels, nearest, num_centers: int, center_scores: list[float] | None,
           stuff_area: int) -> tuple[PanopticSegmentation, np.ndarray]:
    """Majority vote, stuff areas, id map and segments.

    ``thing_pixels`` (M,) int64 raster indices of the grouped pixels and ``nearest`` (M,)
    int64 the centre ``< num_centers`` each joined; both None when nothing was grouped.
    """
    num_things = max(len(labels.thing_ids), 1)
    if nearest is not None and len(nearest):
        # (K, T) pixel counts per instance and thing category, one histogram of the pairs; thing
        # categories are ranked by id, so argmax (first maximum) ties to the smallest id
        rank = labels.thing_rank[labels.codes.reshape(-1)[thing_pixels]]
        counts = np.bincount(nearest * num_things + rank, minlength=num_centers * num_things)
        counts = counts.reshape(num_centers, num_things)
        instance_area = counts.sum(1).tolist()
        majority = counts.argmax(axis=1).tolist()
    else:
        instance_area, majority = [0] * num_centers, [0] * num_centers
    kept_centers = [k for k in range(num_centers) if instance_area[k] > 0]
    center_segment = np.zeros(num_centers, np.int32)
    center_segment[kept_centers] = np.arange(1, len(kept_centers) + 1)

    # stuff pixels are never grouped, so a stuff category's area is its pixel count
    is_thing = labels.is_thing.tolist()
    area = labels.area.tolist()
    kept_stuff = sorted((category, code) for code, category in enumerate(labels.category)
                        if category is not None and not is_thing[code] and area[code] > 0 and area[code] >= stuff_area)
    stuff_segment = np.zeros(len(labels.category), np.int32)
    for segment_id, (_, code) in enumerate(kept_stuff, start=len(kept_centers) + 1):
        stuff_segment[code] = segment_id

    # every pixel its stuff segment (0, void, for thing categories, small stuff and void
    # labels), then the grouped pixels their instance's segment
    id_map = stuff_segment[labels.codes]
    if nearest is not None and len(nearest):
        id_map.reshape(-1)[thing_pixels] = center_segment[nearest]

    segments = []
    for segment_id, k in enumerate(kept_centers, start=1):
        segments.append((segment_id, labels.thing_ids[majority[k]], instance_area[k],
                         None if center_scores is None else center_scores[k]))
    for segment_id, (category, code) in enumerate(kept_stuff, start=len(kept_centers) + 1):
        segments.append((segment_id, category, area[code], None))
    return PanopticSegmentation(id_map, _with_boxes(id_map, segments)), center_segment


def _with_boxes(id_map: np.ndarray, segments: list) -> list[Segment]:
    """(id, category, area, score) in id order -> Segments with their COCO boxes, one pass."""
    from scipy import ndimage

    slices = ndimage.find_objects(id_map, max_label=len(segments))
    out = []
    for (segment_id, category, area, score), (rows, cols) in zip(segments, slices):
        out.append(Segment(id=segment_id, category_id=int(category), area=int(area),
                           bbox=(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start),
                           score=score))
    return out


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
    """Check shapes, dtypes and devices; return tensors (semantic, heatmap (H, W), offsets)."""
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
    return semantic, center_heatmap, offsets


def _check_finite(array: np.ndarray, name: str, source: str) -> None:
    # min and max propagate NaN and reach +-inf, without a full-size temporary
    if math.isfinite(array.min()) and math.isfinite(array.max()):
        return
    where = tuple(np.argwhere(~np.isfinite(array))[0].tolist())
    raise ValueError(f"{source}: non-finite value {array[where].item()} in the {name} at index {where}")
