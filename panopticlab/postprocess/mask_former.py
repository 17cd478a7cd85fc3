"""Mask classification to panoptic: read the result off the queries, no hand-made fusion of two maps.

A mask-classification model (MaskFormer, Mask2Former) predicts, for each of Q queries, a
class among K categories plus "no object" and a mask. :func:`mask_former_panoptic` turns
them into a panoptic segmentation with the published rule (``panoptic_inference`` of
``facebookresearch/Mask2Former``'s ``mask2former/maskformer_model.py``, and of MaskFormer's
``mask_former/mask_former_model.py``):

1. **keep** the queries whose most probable class (softmax over the K + 1 classes) is not
   "no object" and whose probability exceeds ``score_threshold`` (strictly);
2. **assign** each pixel to the kept query of highest ``score x mask probability``
   (ties to the first query);
3. in query order, a kept query's **segment** is the pixels it won, and, with
   ``within_mask`` (Mask2Former), only those where its own mask probability is at least
   ``mask_threshold``. It is **dropped** when it won nothing, its binarised mask is empty,
   or the area it won is less than ``overlap_threshold`` of its binarised mask's area (most
   of it went to others: a duplicate or a fragment);
4. **stuff merges by class**: a stuff query whose class already has a segment adds its
   pixels to that segment; each thing query is its own segment.

Pixels no segment takes are void. There is no separate stuff-area filter and no
"things over stuff" rule: everything competes in step 2 on the same footing.

Published settings (:class:`MaskInferenceConfig`): Mask2Former's are the defaults, score
and overlap thresholds 0.8 (``configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml``:
``OBJECT_MASK_THRESHOLD: 0.8``, ``OVERLAP_THRESHOLD: 0.8``); MaskFormer's
(:meth:`MaskInferenceConfig.maskformer`) take score 0.7, overlap 0.8
(``configs/coco-panoptic/maskformer_panoptic_R50_bs64_554k.yaml`` of
``facebookresearch/MaskFormer``) and every won pixel (``within_mask=False``). The mask
threshold 0.5 is written into both codes.

:func:`semantic_inference` is MaskFormer's semantic segmentation of the same outputs:
``sum_q p_q(c) sigmoid(m_q)`` per class, arg-max per pixel.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..data import CategorySet, PanopticSegmentation

__all__ = ["QUERY_SCORE_THRESHOLD", "MIN_WON_FRACTION", "MASK_THRESHOLD", "NO_OBJECT", "LOW_SCORE", "EMPTY", "OVERLAP",
           "KEPT", "MERGED", "MaskInferenceConfig", "MaskFormerPanoptic", "mask_former_panoptic",
           "semantic_inference"]

QUERY_SCORE_THRESHOLD = 0.8  # OBJECT_MASK_THRESHOLD: a query whose class probability is not above it is dropped
MIN_WON_FRACTION = 0.8       # OVERLAP_THRESHOLD: a query that won less of its mask than this is dropped
MASK_THRESHOLD = 0.5

# what became of a query
NO_OBJECT = "no_object"  # its most probable class is "no object"
LOW_SCORE = "low_score"  # its class probability is not above the score threshold
EMPTY = "empty"          # kept, but it won no pixel (within its mask) or its mask is empty
OVERLAP = "overlap"      # kept, but it won less than overlap_threshold of its mask
KEPT = "kept"            # a segment of its own
MERGED = "merged"        # a stuff query whose pixels joined an earlier query's segment of its class


@dataclass(frozen=True)
class MaskInferenceConfig:
    """The inference rule's settings; defaults are Mask2Former's (see the module docstring).

    Attributes:
        score_threshold: a query is kept when its class probability is above this (0.8).
        overlap_threshold: a kept query is dropped when it won less than this fraction of
            its binarised mask (0.8).
        mask_threshold: mask probabilities at least this are the query's mask (0.5).
        within_mask: a segment keeps only the won pixels inside its own mask (Mask2Former),
            or every won pixel (MaskFormer, ``False``).
    """

    score_threshold: float = QUERY_SCORE_THRESHOLD
    overlap_threshold: float = MIN_WON_FRACTION
    mask_threshold: float = MASK_THRESHOLD
    within_mask: bool = True

    def __post_init__(self):
        for name in ("score_threshold", "overlap_threshold", "mask_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")

    @classmethod
    def maskformer(cls, **overrides) -> "MaskInferenceConfig":
        """MaskFormer's COCO panoptic rule: score above 0.7, overlap 0.8, every won pixel."""
        return replace(cls(score_threshold=0.7, within_mask=False), **overrides)


@dataclass
class MaskFormerPanoptic:
    """The result of :func:`mask_former_panoptic` with its steps, for drawing them.

    Attributes:
        panoptic: the segmentation; segment ids ``1..n`` in the order their queries were
            visited, each with its query's ``score`` (a merged stuff segment: the first one's).
        scores: (Q,) probability of each query's most probable class.
        classes: (Q,) int64 that class, ``K`` for "no object".
        category_ids: (Q,) int64 its dataset category id, 0 for "no object".
        kept: (Q,) bool, the queries step 1 kept.
        owner: (H, W) int64 the query (input index) of highest ``score x mask probability``
            among the kept ones at each pixel (step 2), -1 when none was kept.
        mask_area: (Q,) int64 pixels of each query's binarised mask (kept queries; 0 otherwise).
        won_area: (Q,) int64 pixels each kept query won in step 2 (0 otherwise).
        outcomes: (Q,) what became of each query: :data:`NO_OBJECT`, :data:`LOW_SCORE`,
            :data:`EMPTY`, :data:`OVERLAP`, :data:`KEPT` or :data:`MERGED`.
        query_segment: (Q,) int64 the segment id each query's pixels went to, 0 for none.
    """

    panoptic: PanopticSegmentation
    scores: np.ndarray
    classes: np.ndarray
    category_ids: np.ndarray
    kept: np.ndarray
    owner: np.ndarray
    mask_area: np.ndarray
    won_area: np.ndarray
    outcomes: list[str]
    query_segment: np.ndarray

    def report(self, categories: CategorySet) -> str:
        """What became of each query that named a class, one line each."""
        lines = [f"{'query':>5} {'class':<9} {'score':>5} {'mask':>5} {'won':>5}  outcome"]
        for index, outcome in enumerate(self.outcomes):
            if outcome == NO_OBJECT:
                continue
            name = categories.name(int(self.category_ids[index]))
            lines.append(f"{index:>5} {name:<9} {self.scores[index]:5.2f} {self.mask_area[index]:>5} "
                         f"{self.won_area[index]:>5}  {outcome}")
        return "\n".join(lines)


def _as_tensor(values, name: str, dims: int, source: str) -> torch.Tensor:
    tensor = torch.as_tensor(values)
    if tensor.dim() != dims or not tensor.is_floating_point():
        raise ValueError(f"{source}: {name} must be a floating {dims}-D array, got {tuple(tensor.shape)} "
                         f"{tensor.dtype}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{source}: {name} holds NaN or infinite values")
    return tensor.detach()


def _check(class_logits: torch.Tensor, mask_logits: torch.Tensor, categories: CategorySet, source: str) -> None:
    if class_logits.shape[-1] != len(categories) + 1:
        raise ValueError(f"{source}: class logits have {class_logits.shape[-1]} classes; the {len(categories)} "
                         f"categories and 'no object' make {len(categories) + 1}")
    if class_logits.shape[0] != mask_logits.shape[0]:
        raise ValueError(f"{source}: {class_logits.shape[0]} class predictions but {mask_logits.shape[0]} masks")


def mask_former_panoptic(class_logits, mask_logits, categories: CategorySet,
                         config: MaskInferenceConfig = MaskInferenceConfig(),
                         source: str = "mask classification output") -> MaskFormerPanoptic:
    """One image's queries to a panoptic segmentation (the module docstring's four steps).

    Args:
        class_logits: (Q, K + 1) floating class logits (torch tensor or numpy array); class
            ``k < K`` is category ``categories.ids[k]`` (train-id order), ``K`` is "no object".
        mask_logits: (Q, H, W) floating mask logits at the image's size.
        categories: the dataset's categories (which classes are things).
        config: the thresholds (:class:`MaskInferenceConfig`).
        source: names the image in error messages.

    Returns:
        :class:`MaskFormerPanoptic`. The work runs on the inputs' device; the returned
        arrays are numpy.

    Raises:
        ValueError: shapes that do not fit the categories or each other, NaN or infinite values.
    """
    class_logits = _as_tensor(class_logits, "class logits", 2, source)
    mask_logits = _as_tensor(mask_logits, "mask logits", 3, source).to(class_logits.device)
    _check(class_logits, mask_logits, categories, source)
    num_queries, num_classes = class_logits.shape[0], class_logits.shape[1] - 1
    height, width = mask_logits.shape[-2:]
    device = class_logits.device

    scores, classes = class_logits.float().softmax(-1).max(-1)
    kept = (classes != num_classes) & (scores > config.score_threshold)
    probs = mask_logits.float().sigmoid()
    owner = torch.full((height, width), -1, dtype=torch.int64, device=device)
    kept_index = kept.nonzero()[:, 0]
    if len(kept_index):
        owner = kept_index[(scores[kept_index, None, None] * probs[kept_index]).argmax(0)]

    category_lut = torch.tensor([*categories.ids, 0], dtype=torch.int64, device=device)
    isthing = torch.tensor([categories.isthing(c) for c in categories.ids] + [False], device=device)
    category_ids = category_lut[classes]
    id_map = torch.zeros((height, width), dtype=torch.int32, device=device)
    outcomes = [NO_OBJECT if c == num_classes else LOW_SCORE for c in classes.tolist()]
    query_segment = torch.zeros(num_queries, dtype=torch.int64)
    mask_area = torch.zeros(num_queries, dtype=torch.int64)
    won_area = torch.zeros(num_queries, dtype=torch.int64)
    stuff_segment: dict[int, int] = {}
    category_of: dict[int, int] = {}
    score_of: dict[int, float] = {}
    for query in kept_index.tolist():
        won = owner == query
        mask = probs[query] >= config.mask_threshold
        pixels = won & mask if config.within_mask else won
        won_area[query], mask_area[query] = int(won.sum()), int(mask.sum())
        if won_area[query] == 0 or mask_area[query] == 0 or not bool(pixels.any()):
            outcomes[query] = EMPTY
            continue
        if int(won_area[query]) / int(mask_area[query]) < config.overlap_threshold:
            outcomes[query] = OVERLAP
            continue
        class_index = int(classes[query])
        if not bool(isthing[class_index]) and class_index in stuff_segment:
            segment_id = stuff_segment[class_index]
            outcomes[query] = MERGED
        else:
            segment_id = len(category_of) + 1
            category_of[segment_id] = int(category_lut[class_index])
            score_of[segment_id] = float(scores[query])
            if not bool(isthing[class_index]):
                stuff_segment[class_index] = segment_id
            outcomes[query] = KEPT
        id_map[pixels] = segment_id
        query_segment[query] = segment_id
    # every pixel has one owner, so no segment takes another's pixels: each id made is on the map
    panoptic = PanopticSegmentation.from_id_map(id_map.cpu().numpy(), category_of, scores=score_of, source=source)
    return MaskFormerPanoptic(panoptic=panoptic, scores=scores.cpu().numpy(), classes=classes.cpu().numpy(),
                              category_ids=category_ids.cpu().numpy(), kept=kept.cpu().numpy(),
                              owner=owner.cpu().numpy(), mask_area=mask_area.numpy(), won_area=won_area.numpy(),
                              outcomes=outcomes, query_segment=query_segment.numpy())


def semantic_inference(class_logits, mask_logits, categories: CategorySet,
                       source: str = "mask classification output") -> np.ndarray:
    """MaskFormer's semantic segmentation: (Q, K + 1) and (Q, H, W) logits -> (H, W) int64 category ids.

    Per pixel, the category ``c`` of largest ``sum_q softmax(class_logits_q)[c] * sigmoid(mask_logits_q)``
    ("no object" left out; ties to the first category in train-id order).
    """
    class_logits = _as_tensor(class_logits, "class logits", 2, source)
    mask_logits = _as_tensor(mask_logits, "mask logits", 3, source).to(class_logits.device)
    _check(class_logits, mask_logits, categories, source)
    probs = class_logits.float().softmax(-1)[:, :-1]
    semantic = torch.einsum("qc,qhw->chw", probs, mask_logits.float().sigmoid()).argmax(0)
    lut = torch.tensor(list(categories.ids), dtype=torch.int64, device=semantic.device)
    return lut[semantic].cpu().numpy()
