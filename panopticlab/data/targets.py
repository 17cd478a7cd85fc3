"""Training targets built from one panoptic ground truth.

Each panoptic method trains on a different view of the same annotation:

* :func:`semantic_target` - a per-pixel class map for a semantic head (PSPNet-style,
  Panoptic FPN's "stuff + one things class", UPSNet);
* :func:`instance_target` - boxes, labels and masks in torchvision's detection target
  format, for Mask R-CNN;
* :func:`deeplab_targets` - Panoptic-DeepLab's semantic map, pixel weights, centre
  heatmap and offsets, as detectron2's ``PanopticDeepLabTargetGenerator`` builds them.

All three take a :class:`~panopticlab.data.panoptic.PanopticSegmentation` (numpy) and
return torch tensors on the CPU. The per-pixel work is vectorised: each pixel is mapped
once to the index of its segment (:func:`segment_index_map`) and every per-segment
quantity is then a table lookup.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from .categories import VOID_LABEL, CategorySet
from .errors import PanopticFormatError
from .panoptic import VOID, PanopticSegmentation

__all__ = [
    "segment_index_map",
    "num_semantic_classes",
    "semantic_target",
    "instance_target",
    "deeplab_targets",
    "small_instance_limit",
    "GAUSSIAN_SIGMA",
    "SMALL_INSTANCE_AREA",
    "SMALL_INSTANCE_WEIGHT",
]

# Panoptic-DeepLab's published target settings (the paper; detectron2's COCO config)
GAUSSIAN_SIGMA = 8             # std of the centre Gaussians, pixels (detectron2's config default is 10)
SMALL_INSTANCE_AREA = 64 * 64  # things smaller than this (pixels) ...
SMALL_INSTANCE_WEIGHT = 3      # ... weigh this much in the semantic loss


# ---------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------
def segment_index_map(pan: PanopticSegmentation, source: str = "panoptic segmentation") -> np.ndarray:
    """Position of each pixel's segment in ``pan.segments``.

    Returns:
        (H, W) int64 array: ``i`` where the pixel belongs to ``pan.segments[i]``, -1 on void.

    Raises:
        PanopticFormatError: a non-zero id of the map has no segment, or a segment id is
            repeated or not positive.
    """
    id_map = np.asarray(pan.id_map)
    if id_map.ndim != 2 or not np.issubdtype(id_map.dtype, np.integer):
        raise PanopticFormatError(f"{source}: id map must be a 2-D integer array, "
                                  f"got shape {id_map.shape} and dtype {id_map.dtype}")
    ids = np.array([s.id for s in pan.segments], dtype=np.int64)
    if (ids <= VOID).any():
        raise PanopticFormatError(f"{source}: segment id {int(ids[ids <= VOID][0])} is not positive (0 is void)")
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    if repeated.size:
        raise PanopticFormatError(f"{source}: segment id {int(repeated[0])} appears twice")

    flat = id_map.ravel().astype(np.int64, copy=False)
    if ids.size == 0:
        found = np.zeros(flat.shape, dtype=bool)
        index = np.full(flat.shape, -1, dtype=np.int64)
    else:
        position = np.minimum(np.searchsorted(sorted_ids, flat), ids.size - 1)
        found = sorted_ids[position] == flat
        index = np.where(found, order[position], -1)
    unknown = ~found & (flat != VOID)
    if unknown.any():
        missing = np.unique(flat[unknown])[:10].tolist()
        raise PanopticFormatError(f"{source}: ids {missing} occur in the id map but have no segment")
    return index.reshape(id_map.shape)


def _lookup(per_segment: np.ndarray, index: np.ndarray, void_value) -> np.ndarray:
    """Paint ``per_segment[i]`` on the pixels of segment ``i`` and ``void_value`` on void.

    ``index`` is :func:`segment_index_map`'s output; its -1 entries pick the appended
    void value, which also makes an image without segments work.
    """
    table = np.append(per_segment, np.asarray(void_value, dtype=per_segment.dtype))
    return table[index]


def _check_categories(pan: PanopticSegmentation, categories: CategorySet, source: str) -> None:
    for s in pan.segments:
        if s.category_id not in categories:
            raise PanopticFormatError(f"{source}: segment {s.id} has unknown category id {s.category_id}; "
                                      f"known ids: {categories.ids}")


def _segment_flags(pan: PanopticSegmentation, categories: CategorySet) -> tuple[np.ndarray, np.ndarray]:
    """(isthing, iscrowd) as (N,) bool arrays in segment order."""
    isthing = np.array([categories.isthing(s.category_id) for s in pan.segments], dtype=bool)
    iscrowd = np.array([bool(s.iscrowd) for s in pan.segments], dtype=bool)
    return isthing, iscrowd


def _segment_areas(index: np.ndarray, num_segments: int) -> np.ndarray:
    """(N,) int64 pixel count of each segment, counted from the map (not from ``Segment.area``)."""
    return np.bincount(index.ravel() + 1, minlength=num_segments + 1)[1:]


def num_semantic_classes(categories: CategorySet, things_as_one: bool = False) -> int:
    """Output channels of a semantic head trained on :func:`semantic_target`."""
    return len(categories.stuff_ids) + 1 if things_as_one else len(categories)


# ---------------------------------------------------------------------------------------
# semantic segmentation
# ---------------------------------------------------------------------------------------
def semantic_target(pan: PanopticSegmentation, categories: CategorySet, ignore_index: int = VOID_LABEL,
                    things_as_one: bool = False, ignore_crowd: bool = False,
                    source: str = "panoptic segmentation") -> torch.Tensor:
    """Per-pixel class target for a semantic head.

    Two layouts:

    * ``things_as_one=False``: the contiguous train id of each category
      (``categories.train_id``, i.e. its position in ``categories``), ``0..C-1``.
    * ``things_as_one=True``: Panoptic FPN's "stuff + 1" layout, as detectron2's
      ``prepare_panoptic_fpn.py`` writes it: every thing category becomes class **0**
      and the stuff categories are **1..S** in ``categories.stuff_ids`` order, so the
      head has ``S + 1`` outputs (:func:`num_semantic_classes`).

    Void pixels get ``ignore_index``. Crowd pixels keep their category (detectron2's
    default) unless ``ignore_crowd=True``, which sets them to ``ignore_index``.

    Args:
        pan: the ground truth, id map (H, W).
        categories: the dataset's categories; fixes the class order.
        ignore_index: label of ignored pixels; must not be a valid class index.
        things_as_one: use the Panoptic FPN layout.
        ignore_crowd: ignore crowd regions instead of labelling them.
        source: names the image in error messages.

    Returns:
        (H, W) int64 tensor.
    """
    _check_categories(pan, categories, source)
    classes = _segment_classes(pan, categories, ignore_index, things_as_one, ignore_crowd)
    return torch.from_numpy(_lookup(classes, segment_index_map(pan, source), ignore_index))


def _segment_classes(pan: PanopticSegmentation, categories: CategorySet, ignore_index: int,
                     things_as_one: bool, ignore_crowd: bool) -> np.ndarray:
    """(N,) int64 semantic class of each segment, in the layout :func:`semantic_target` documents."""
    num_classes = num_semantic_classes(categories, things_as_one)
    if 0 <= ignore_index < num_classes:
        raise ValueError(f"ignore_index={ignore_index} collides with a class index (0..{num_classes - 1})")
    if things_as_one:
        stuff_class = {cid: k for k, cid in enumerate(categories.stuff_ids, start=1)}
        classes = [0 if categories.isthing(s.category_id) else stuff_class[s.category_id] for s in pan.segments]
    else:
        train_ids = categories.id_to_train_id_lut()
        classes = [train_ids[s.category_id] for s in pan.segments]
    classes = np.array(classes, dtype=np.int64)
    if ignore_crowd:
        _, iscrowd = _segment_flags(pan, categories)
        classes[iscrowd] = ignore_index
    return classes


# ---------------------------------------------------------------------------------------
# instance segmentation (torchvision's detection target format)
# ---------------------------------------------------------------------------------------
def instance_target(pan: PanopticSegmentation, categories: CategorySet, include_crowd: bool = False,
                    source: str = "panoptic segmentation") -> dict[str, torch.Tensor]:
    """Thing segments as the target dict torchvision's Mask R-CNN trains on.

    Labels are ``1..K`` for the K thing categories in ``categories.thing_ids`` order
    (label ``l`` is category ``categories.thing_ids[l - 1]``); 0 is torchvision's
    background. Boxes use pixel-edge coordinates: a segment covering columns
    ``x .. x + w - 1`` has ``x1 = x`` and ``x2 = x + w`` (the COCO box ``(x, y, w, h)``
    converted to corners). ``torchvision.ops.masks_to_boxes`` instead returns the index
    of the last pixel, one less: ``x2 = x + w - 1``.

    Crowd segments are left out unless ``include_crowd=True``: torchvision's Mask R-CNN
    has no way to ignore them, so by default they would become false "positives" to
    learn. Segments without pixels are skipped.

    Returns:
        dict with (N instances, image H x W)
          ``boxes`` float32 [N, 4] (x1, y1, x2, y2); ``labels`` int64 [N];
          ``masks`` uint8 [N, H, W]; ``iscrowd`` int64 [N]; ``area`` float32 [N] (pixels);
          ``segment_ids`` int64 [N] (ids in ``pan.id_map``).
        An image without instances gives the same keys with N = 0.
    """
    _check_categories(pan, categories, source)
    index = segment_index_map(pan, source)
    isthing, iscrowd = _segment_flags(pan, categories)
    areas = _segment_areas(index, len(pan.segments))
    keep = np.flatnonzero(isthing & (areas > 0) & (include_crowd | ~iscrowd))

    # find_objects gives the bounding slices of labels 1..N in one pass over the map
    slices = ndimage.find_objects(index + 1, max_label=len(pan.segments))
    boxes = np.array([[slices[i][1].start, slices[i][0].start, slices[i][1].stop, slices[i][0].stop]
                      for i in keep], dtype=np.float32).reshape(-1, 4)
    thing_label = {cid: label for label, cid in enumerate(categories.thing_ids, start=1)}
    labels = np.array([thing_label[pan.segments[i].category_id] for i in keep], dtype=np.int64)
    masks = index[None] == keep[:, None, None]
    return {
        "boxes": torch.from_numpy(boxes),
        "labels": torch.from_numpy(labels),
        "masks": torch.from_numpy(masks.astype(np.uint8)),
        "iscrowd": torch.from_numpy(iscrowd[keep].astype(np.int64)),
        "area": torch.from_numpy(areas[keep].astype(np.float32)),
        "segment_ids": torch.tensor([pan.segments[i].id for i in keep], dtype=torch.int64),
    }


# ---------------------------------------------------------------------------------------
# Panoptic-DeepLab
# ---------------------------------------------------------------------------------------
def _draw_gaussian(heatmap: np.ndarray, center_y: int, center_x: int, sigma: float, radius: int) -> None:
    """Max a Gaussian of std ``sigma`` into ``heatmap`` on the (2 radius + 1)^2 window
    around the integer pixel (center_y, center_x), clipped to the image, in place."""
    height, width = heatmap.shape
    y0, y1 = max(0, center_y - radius), min(height, center_y + radius + 1)
    x0, x1 = max(0, center_x - radius), min(width, center_x + radius + 1)
    if y0 >= y1 or x0 >= x1:
        return
    gy = np.exp(-((np.arange(y0, y1) - center_y) ** 2) / (2 * sigma**2))
    gx = np.exp(-((np.arange(x0, x1) - center_x) ** 2) / (2 * sigma**2))
    window = heatmap[y0:y1, x0:x1]
    np.maximum(window, np.outer(gy, gx).astype(heatmap.dtype), out=window)


def small_instance_limit(image_area: float, small_instance_area: float = SMALL_INSTANCE_AREA,
                         reference_area: float | None = None) -> float:
    """The area below which a thing's pixels get the small-instance weight, for one image.

    ``reference_area`` ``None``: ``small_instance_area`` as it is (pixels of the image the
    targets are built for, as published). Otherwise the limit covers the same fraction of
    the image that ``small_instance_area`` covers of an image of ``reference_area`` pixels:
    ``small_instance_area * image_area / reference_area``. For images drawn at several
    sizes from one scene (the built-in dataset), that keeps the same objects "small" at
    every size; 4096 px of a 640 x 480 image are 218.5 px of a 128 x 128 one.
    """
    if not small_instance_area >= 0:
        raise ValueError(f"small_instance_area must be non-negative, got {small_instance_area}")
    if reference_area is None:
        return float(small_instance_area)
    if not reference_area > 0 or not image_area > 0:
        raise ValueError(f"areas must be positive, got image_area={image_area}, reference_area={reference_area}")
    return float(small_instance_area) * float(image_area) / float(reference_area)


def deeplab_targets(pan: PanopticSegmentation, categories: CategorySet, sigma: float = GAUSSIAN_SIGMA,
                    small_instance_area: float = SMALL_INSTANCE_AREA,
                    small_instance_weight: float = SMALL_INSTANCE_WEIGHT,
                    small_instance_reference_area: float | None = None,
                    ignore_crowd_in_semantic: bool = False, ignore_index: int = VOID_LABEL,
                    source: str = "panoptic segmentation") -> dict:
    """Panoptic-DeepLab's training targets (detectron2's ``PanopticDeepLabTargetGenerator``).

    An *instance* here is a non-crowd thing segment with at least one pixel.

    * ``semantic``: (H, W) int64 train ids, ``ignore_index`` on void (and on crowd if
      ``ignore_crowd_in_semantic``; detectron2 keeps crowd labelled, the original
      TensorFlow code ignores it). See :func:`semantic_target`.
    * ``semantic_weights``: (H, W) float32, ``small_instance_weight`` on the pixels of
      thing segments with area < ``small_instance_area`` (crowd included, as in
      detectron2), 1 elsewhere (void too: its loss is already zero).
    * ``center``: (1, H, W) float32 heatmap. Each instance's mass centre (the mean of its
      pixel coordinates) is rounded to the nearest pixel (numpy rounding, half to even,
      as detectron2) and a Gaussian ``exp(-d^2 / (2 sigma^2))`` is drawn on the
      ``(6 sigma + 3)^2`` window around it, i.e. within ``3 sigma + 1`` pixels of the peak
      (for non-integer sigma the half-width is ``floor(3 sigma + 1)``). The peak value is
      1. Overlapping Gaussians are combined by max.
    * ``center_points``: list of the instances' mass centres ``(y, x)`` (floats, not
      rounded), in segment order.
    * ``offset``: (2, H, W) float32, ``(center_y - y, center_x - x)`` from each instance
      pixel to its unrounded mass centre (it points *to* the centre); 0 elsewhere.
    * ``center_weights``: (H, W) float32, 1 on every labelled non-crowd pixel, stuff
      included (the model learns "no centre here"), 0 on void and crowd.
    * ``offset_weights``: (H, W) float32, 1 on instance pixels only, 0 elsewhere.

    Crowd regions get neither a Gaussian nor offsets. detectron2 draws them both but
    gives crowd pixels zero weight; leaving them out also keeps crowd centres from
    leaking into the heatmap of neighbouring labelled pixels.

    Args:
        sigma: Gaussian std in pixels; 8 in the paper and detectron2's COCO config
            (detectron2's config default is 10).
        small_instance_area: area (pixels) below which a thing gets the larger weight
            (64 x 64 = 4096, published).
        small_instance_weight: semantic loss weight of small things' pixels (3, published).
        small_instance_reference_area: ``None`` (published): ``small_instance_area`` is in
            pixels of this image. Otherwise it is scaled to this image's area from an image
            of that many pixels (:func:`small_instance_limit`): for small images of scenes
            that have no native resolution, such as the built-in dataset's.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    _check_categories(pan, categories, source)
    index = segment_index_map(pan, source)
    classes = _segment_classes(pan, categories, ignore_index, things_as_one=False,
                               ignore_crowd=ignore_crowd_in_semantic)
    semantic = _lookup(classes, index, ignore_index)
    height, width = index.shape
    num_segments = len(pan.segments)
    isthing, iscrowd = _segment_flags(pan, categories)
    areas = _segment_areas(index, num_segments)
    is_instance = isthing & ~iscrowd & (areas > 0)

    limit = small_instance_limit(height * width, small_instance_area, small_instance_reference_area)
    small = isthing & (areas < limit)
    segment_weight = np.where(small, float(small_instance_weight), 1.0).astype(np.float32)
    semantic_weights = _lookup(segment_weight, index, 1.0)

    # mass centres of all segments at once: per-segment sums of pixel coordinates
    ys, xs = np.indices((height, width), dtype=np.float64)
    labels = index.ravel() + 1
    sum_y = np.bincount(labels, weights=ys.ravel(), minlength=num_segments + 1)[1:]
    sum_x = np.bincount(labels, weights=xs.ravel(), minlength=num_segments + 1)[1:]
    safe_area = np.maximum(areas, 1)
    center_y, center_x = sum_y / safe_area, sum_x / safe_area

    instance_pixels = _lookup(is_instance, index, False)
    offset = np.zeros((2, height, width), dtype=np.float32)
    offset[0] = np.where(instance_pixels, _lookup(center_y, index, 0.0) - ys, 0.0)
    offset[1] = np.where(instance_pixels, _lookup(center_x, index, 0.0) - xs, 0.0)

    heatmap = np.zeros((height, width), dtype=np.float32)
    radius = int(np.floor(3 * sigma + 1))
    center_points = []
    for i in np.flatnonzero(is_instance):
        center_points.append((float(center_y[i]), float(center_x[i])))
        _draw_gaussian(heatmap, int(np.round(center_y[i])), int(np.round(center_x[i])), sigma, radius)

    center_weights = _lookup(~iscrowd, index, False)
    return {
        "semantic": torch.from_numpy(semantic),
        "semantic_weights": torch.from_numpy(semantic_weights),
        "center": torch.from_numpy(heatmap[None]),
        "center_points": center_points,
        "offset": torch.from_numpy(offset),
        "center_weights": torch.from_numpy(center_weights.astype(np.float32)),
        "offset_weights": torch.from_numpy(instance_pixels.astype(np.float32)),
    }
