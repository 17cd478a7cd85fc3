"""Set prediction: the Hungarian matching of queries to segments, and the loss on the matched pairs.

A mask-classification model (:mod:`.mask_former`) predicts, for each of Q queries, a class
(K categories plus "no object", index K) and a mask. The ground truth of an image is a set
of N segments, things and stuff alike, each a class and a binary mask. Training pairs them
one to one (Carion et al., DETR; Cheng et al., MaskFormer and Mask2Former):

1. **matching cost** (:func:`matching_cost`), for every query ``q`` and segment ``n``::

       C[q, n] = - w_class * p_q(c_n) + w_mask * mask_cost(m_q, t_n) + w_dice * dice(m_q, t_n)

   ``p_q`` the softmax over the K + 1 classes, ``c_n`` the segment's class, ``mask_cost`` the
   mean per-pixel sigmoid focal loss (MaskFormer) or binary cross-entropy (Mask2Former) of
   the mask logits ``m_q`` against the binary mask ``t_n``, and
   ``dice = 1 - (2 sum s t + 1) / (sum s + sum t + 1)`` with ``s = sigmoid(m_q)``. The class
   term is the probability, not its log, as the published matchers take it;
2. **assignment** (:func:`hungarian_matching`): ``scipy.optimize.linear_sum_assignment`` picks
   the ``min(Q, N)`` pairs of least total cost; every other query is matched to nothing;
3. **loss** (:func:`set_losses`): cross-entropy of every query's class, the target "no
   object" for unmatched queries, that class weighted ``no_object_weight`` (0.1) so that the
   many empty queries do not drown the few matched ones; the mask loss and the Dice loss of
   each matched pair, summed and divided by the number of segments of the batch.

Where the mask terms are computed (:attr:`SetLossConfig.num_points`):

* ``None`` (MaskFormer): on every pixel. The matching compares the mask logits at their own
  resolution (stride 4) with the targets downsampled to it (nearest); the loss upsamples
  the matched logits bilinearly to the targets' resolution (the padded image).
* ``P`` points (Mask2Former, 12544 = 112 x 112): the matching samples P uniformly random
  points, the same for every mask of an image; the loss samples, for each matched mask,
  ``oversample_ratio * P`` random points and keeps the ``importance_sample_ratio * P`` whose
  logits are nearest 0 (the most uncertain) plus the rest at random (PointRend's sampling).
  Values at points are read bilinearly (:func:`point_sample`), from the logits and from the
  targets alike.

Published settings (:class:`SetLossConfig`; the matcher takes the loss weights as its cost
weights in both codes):

* MaskFormer (the defaults): class 1, focal 20 (alpha 0.25, gamma 2), Dice 1, no object 0.1,
  every pixel. ``facebookresearch/MaskFormer``: ``mask_former/mask_former_model.py``
  (``cost_class=1``, ``"loss_ce": 1``), ``configs/coco-panoptic/maskformer_panoptic_R50_bs64_554k.yaml``
  (``MASK_WEIGHT: 20.0``, ``DICE_WEIGHT: 1.0``, ``NO_OBJECT_WEIGHT: 0.1``),
  ``mask_former/modeling/criterion.py`` and ``matcher.py`` (alpha 0.25, gamma 2; the matcher
  compares at the predictions' resolution).
* Mask2Former (:meth:`SetLossConfig.mask2former`): class 2, cross-entropy 5, Dice 5, no
  object 0.1, 12544 points, oversampling 3, importance 0.75.
  ``facebookresearch/Mask2Former``: ``configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml``
  (``CLASS_WEIGHT: 2.0``, ``MASK_WEIGHT: 5.0``, ``DICE_WEIGHT: 5.0``, ``NO_OBJECT_WEIGHT: 0.1``,
  ``TRAIN_NUM_POINTS: 12544``, ``OVERSAMPLE_RATIO: 3.0``, ``IMPORTANCE_SAMPLE_RATIO: 0.75``),
  ``mask2former/modeling/matcher.py`` and ``criterion.py``.

The published criteria divide by the number of segments averaged over all processes (an
all-reduce); here each process divides by its own, as the detection losses of the other
models do, so that a data-parallel step is the mean of its shards' steps.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

__all__ = ["MASK_LOSSES", "SetLossConfig", "dice_cost", "sigmoid_ce_cost", "sigmoid_focal_cost", "matching_cost",
           "hungarian_matching", "image_cost", "match", "dice_loss", "sigmoid_ce_loss", "sigmoid_focal_loss",
           "point_sample", "uncertain_point_coords", "set_losses", "set_criterion"]

MASK_LOSSES = ("focal", "bce")


@dataclass(frozen=True)
class SetLossConfig:
    """The matching cost and the set loss; defaults are MaskFormer's (see the module docstring).

    Attributes:
        class_weight: weight of the class term, in the cost and in the loss (1).
        mask_weight: weight of the per-pixel mask loss (focal: 20).
        dice_weight: weight of the Dice loss (1).
        no_object_weight: cross-entropy weight of the "no object" class (0.1).
        mask_loss: ``"focal"`` (MaskFormer) or ``"bce"`` (Mask2Former).
        focal_alpha, focal_gamma: of the focal loss (0.25, 2).
        num_points: ``None``: every pixel; otherwise the points sampled per mask.
        oversample_ratio, importance_sample_ratio: the loss's point sampling (3, 0.75).
    """

    class_weight: float = 1.0
    mask_weight: float = 20.0
    dice_weight: float = 1.0
    no_object_weight: float = 0.1
    mask_loss: str = "focal"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    num_points: int | None = None
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75

    def __post_init__(self):
        if self.mask_loss not in MASK_LOSSES:
            raise ValueError(f"mask_loss must be one of {MASK_LOSSES}, got {self.mask_loss!r}")
        if self.num_points is not None and not (isinstance(self.num_points, int) and self.num_points > 0):
            raise ValueError(f"num_points must be a positive int or None, got {self.num_points!r}")
        if not 0.0 <= self.importance_sample_ratio <= 1.0 or self.oversample_ratio < 1.0:
            raise ValueError(f"need oversample_ratio >= 1 and importance_sample_ratio in [0, 1], got "
                             f"{self.oversample_ratio} and {self.importance_sample_ratio}")

    @classmethod
    def mask2former(cls, **overrides) -> "SetLossConfig":
        """Mask2Former's: class 2, binary cross-entropy 5, Dice 5, 12544 sampled points."""
        return replace(cls(class_weight=2.0, mask_weight=5.0, dice_weight=5.0, mask_loss="bce", num_points=112 * 112),
                       **overrides)


# --- pairwise costs: Q predictions x N targets ---------------------------------------------------
def dice_cost(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dice loss of every prediction against every target: [Q, P] logits, [N, P] targets -> [Q, N].

    ``1 - (2 sum s t + 1) / (sum s + sum t + 1)`` over the P pixels or points, ``s = sigmoid``.
    """
    probs = logits.sigmoid()
    numerator = 2 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def sigmoid_ce_cost(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel binary cross-entropy of every pair: [Q, P], [N, P] -> [Q, N].

    The loss at a pixel is ``softplus(-x)`` where the target is 1 and ``softplus(x)`` where it
    is 0 (targets in between, from bilinear sampling, mix the two linearly), so the [Q, N]
    table is two matrix products.
    """
    positive = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    negative = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (positive @ targets.T + negative @ (1 - targets).T) / logits.shape[-1]


def sigmoid_focal_cost(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Mean per-pixel sigmoid focal loss of every pair: [Q, P], [N, P] -> [Q, N] (MaskFormer's cost)."""
    probs = logits.sigmoid()
    positive = (1 - probs) ** gamma * F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits),
                                                                        reduction="none")
    negative = probs ** gamma * F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    if alpha >= 0:
        positive, negative = alpha * positive, (1 - alpha) * negative
    return (positive @ targets.T + negative @ (1 - targets).T) / logits.shape[-1]


def matching_cost(class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
                  masks: torch.Tensor, config: SetLossConfig = SetLossConfig()) -> torch.Tensor:
    """The cost of assigning each query to each target segment of one image.

    Args:
        class_logits: float [Q, K + 1].
        mask_logits: float [Q, P] at P pixels or points.
        labels: int64 [N] target classes in 0..K-1.
        masks: float [N, P] target masks (0 / 1, or in between where sampled bilinearly).

    Returns:
        float [Q, N]: ``-class_weight * p_q(label_n) + mask_weight * mask_cost + dice_weight * dice``.
    """
    probs = class_logits.float().softmax(-1)
    logits, masks = mask_logits.float(), masks.float()
    if config.mask_loss == "focal":
        mask_cost = sigmoid_focal_cost(logits, masks, config.focal_alpha, config.focal_gamma)
    else:
        mask_cost = sigmoid_ce_cost(logits, masks)
    return (-config.class_weight * probs[:, labels] + config.mask_weight * mask_cost
            + config.dice_weight * dice_cost(logits, masks))


def hungarian_matching(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The one-to-one assignment of least total cost: [Q, N] -> (query indices, target indices).

    Each is int64 [min(Q, N)], the pairs in increasing query order. Ties between assignments
    of equal total cost are broken by scipy.
    """
    # imported here: scipy.optimize loads scipy.spatial, which importing the models must not
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost.detach().float().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def point_sample(inputs: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear values of maps at points: [M, C, H, W] and [M, P, 2] ``(x, y)`` in [0, 1] -> [M, C, P].

    Coordinates are fractions of the map's width and height with pixel centres at
    ``(i + 0.5) / size`` (``grid_sample`` with ``align_corners=False``, detectron2's ``point_sample``);
    points outside the outer pixel centres read zero padding blended in.
    """
    return F.grid_sample(inputs, 2 * coords[:, :, None] - 1, mode="bilinear", align_corners=False)[..., 0]


def uncertain_point_coords(logits: torch.Tensor, num_points: int, oversample_ratio: float,
                           importance_sample_ratio: float) -> torch.Tensor:
    """PointRend's training points: [M, 1, H, W] mask logits -> [M, num_points, 2] in [0, 1].

    ``oversample_ratio * num_points`` uniform random points per mask; of these, the
    ``importance_sample_ratio * num_points`` whose logits are nearest 0 (the most uncertain,
    ``-|logit|``), then uniform random points for the rest.
    """
    count = logits.shape[0]
    candidates = torch.rand(count, int(num_points * oversample_ratio), 2, device=logits.device)
    uncertainty = -point_sample(logits, candidates)[:, 0].abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    chosen = uncertainty.topk(num_uncertain, dim=1).indices
    points = torch.gather(candidates, 1, chosen[..., None].expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        points = torch.cat([points, torch.rand(count, num_random, 2, device=logits.device)], dim=1)
    return points


@torch.no_grad()
def image_cost(class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
               config: SetLossConfig = SetLossConfig()) -> torch.Tensor:
    """The matching cost of one image, its masks compared where ``config`` says.

    Args:
        class_logits: float [Q, K + 1].
        mask_logits: float [Q, h, w] (stride 4 of the padded batch).
        labels: int64 [N] target classes; masks: [N, H, W] at the padded batch's size.
        config: the cost weights and where masks are compared (see the module docstring).

    Returns:
        float [Q, N] (:func:`matching_cost`).
    """
    masks = masks.to(mask_logits.device, torch.float32)
    if config.num_points is None:
        # MaskFormer: compare at the predictions' resolution, the targets downsampled (nearest)
        masks = F.interpolate(masks[:, None], size=mask_logits.shape[-2:], mode="nearest")[:, 0].flatten(1)
        predicted = mask_logits.flatten(1)
    else:
        # Mask2Former: the same random points for every mask of the image
        points = torch.rand(1, config.num_points, 2, device=mask_logits.device)
        masks = point_sample(masks[:, None], points.expand(len(masks), -1, -1))[:, 0]
        predicted = point_sample(mask_logits[:, None].float(), points.expand(len(mask_logits), -1, -1))[:, 0]
    return matching_cost(class_logits, predicted, labels, masks, config)


@torch.no_grad()
def match(class_logits: torch.Tensor, mask_logits: torch.Tensor, targets: Sequence[Mapping[str, torch.Tensor]],
          config: SetLossConfig = SetLossConfig()) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Hungarian matching of a batch, image by image (:func:`image_cost`, :func:`hungarian_matching`).

    Args:
        class_logits: float [B, Q, K + 1].
        mask_logits: float [B, Q, h, w] (stride 4 of the padded batch).
        targets: B dicts with ``labels`` int64 [N] and ``masks`` [N, H, W] (the padded batch's size).
        config: the cost weights and where masks are compared (see the module docstring).

    Returns:
        B pairs ``(query indices, target indices)``, int64 [min(Q, N)] each.
    """
    matches = []
    for logits, masks_q, target in zip(class_logits, mask_logits, targets):
        if len(target["labels"]) == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            matches.append((empty, empty))
            continue
        matches.append(hungarian_matching(image_cost(logits, masks_q, target["labels"], target["masks"], config)))
    return matches


# --- losses of the matched pairs: M predictions against M targets --------------------------------
def dice_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Sum over the M pairs of ``1 - (2 sum s t + 1) / (sum s + sum t + 1)``, divided by ``num_masks``
    ([M, P] logits and targets)."""
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def sigmoid_ce_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Per-pixel binary cross-entropy, averaged over each mask's P pixels, summed over the pairs,
    divided by ``num_masks``."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1).sum() / num_masks


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.): ``alpha_t (1 - p_t)^gamma CE``, averaged per mask, summed
    over the pairs, divided by ``num_masks``."""
    probs = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probs * targets + (1 - probs) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_masks


def set_losses(class_logits: torch.Tensor, mask_logits: torch.Tensor, targets: Sequence[Mapping[str, torch.Tensor]],
               matches: Sequence[tuple[torch.Tensor, torch.Tensor]], config: SetLossConfig = SetLossConfig(),
               num_masks: float | None = None) -> dict[str, torch.Tensor]:
    """The unweighted set losses of one prediction of a batch, given its matching.

    Args:
        class_logits: float [B, Q, K + 1]; mask_logits: float [B, Q, h, w].
        targets, matches: as :func:`match` takes and returns them.
        num_masks: the divisor of the mask losses; default: the batch's segments (at least 1).

    Returns:
        ``loss_ce``: cross-entropy over all B x Q queries, "no object" (index K) the target of
        unmatched ones, class weights 1 and ``no_object_weight`` (a weighted mean, as
        ``F.cross_entropy`` takes it); ``loss_mask`` (focal or BCE) and ``loss_dice``: over the
        matched pairs, divided by ``num_masks``.
    """
    batch, queries, num_classes = class_logits.shape
    device = class_logits.device
    if num_masks is None:
        num_masks = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
    target_classes = torch.full((batch, queries), num_classes - 1, dtype=torch.int64, device=device)
    for index, ((rows, cols), target) in enumerate(zip(matches, targets)):
        target_classes[index, rows.to(device)] = target["labels"].to(device)[cols.to(device)]
    weights = torch.ones(num_classes, device=device)
    weights[-1] = config.no_object_weight
    loss_ce = F.cross_entropy(class_logits.float().transpose(1, 2), target_classes, weights)

    image = torch.cat([torch.full_like(rows, index) for index, (rows, _) in enumerate(matches)]).to(device)
    predicted = mask_logits[image, torch.cat([rows for rows, _ in matches]).to(device)].float()  # [M, h, w]
    if len(predicted) == 0:
        zero = mask_logits.sum() * 0.0  # in the graph: every parameter still gets a (zero) gradient
        return {"loss_ce": loss_ce, "loss_mask": zero, "loss_dice": zero}
    wanted = torch.cat([t["masks"].to(device)[cols.to(device)] for t, (_, cols) in zip(targets, matches)]).float()
    if config.num_points is None:
        predicted = F.interpolate(predicted[:, None], size=wanted.shape[-2:], mode="bilinear",
                                  align_corners=False)[:, 0].flatten(1)
        wanted = wanted.flatten(1)
    else:
        with torch.no_grad():
            points = uncertain_point_coords(predicted[:, None], config.num_points, config.oversample_ratio,
                                            config.importance_sample_ratio)
            wanted = point_sample(wanted[:, None], points)[:, 0]
        predicted = point_sample(predicted[:, None], points)[:, 0]
    if config.mask_loss == "focal":
        loss_mask = sigmoid_focal_loss(predicted, wanted, num_masks, config.focal_alpha, config.focal_gamma)
    else:
        loss_mask = sigmoid_ce_loss(predicted, wanted, num_masks)
    return {"loss_ce": loss_ce, "loss_mask": loss_mask, "loss_dice": dice_loss(predicted, wanted, num_masks)}


def set_criterion(predictions: Sequence[tuple[torch.Tensor, torch.Tensor]],
                  targets: Sequence[Mapping[str, torch.Tensor]],
                  config: SetLossConfig = SetLossConfig()) -> dict[str, torch.Tensor]:
    """The weighted objective of a decoder's predictions, each matched on its own.

    Args:
        predictions: ``(class_logits [B, Q, K + 1], mask_logits [B, Q, h, w])`` per supervised
            decoder output, the final one last (deep supervision: one per layer).
        targets: B dicts with ``labels`` int64 [N] and ``masks`` [N, H, W].

    Returns:
        ``loss_ce``, ``loss_mask``, ``loss_dice`` of the final prediction, times
        ``class_weight``, ``mask_weight``, ``dice_weight``; with more than one prediction also
        ``loss_ce_aux``, ``loss_mask_aux``, ``loss_dice_aux``: the same for the others, summed.
        The published code logs each layer's losses on their own (``loss_ce_0``, ...); their
        sum, the objective, is the same.
    """
    weights = {"loss_ce": config.class_weight, "loss_mask": config.mask_weight, "loss_dice": config.dice_weight}
    num_masks = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
    totals: dict[str, torch.Tensor] = {}
    for depth, (class_logits, mask_logits) in enumerate(reversed(predictions)):
        matches = match(class_logits, mask_logits, targets, config)
        suffix = "" if depth == 0 else "_aux"
        for name, value in set_losses(class_logits, mask_logits, targets, matches, config, num_masks).items():
            key = name + suffix
            totals[key] = totals.get(key, 0.0) + weights[name] * value
    return totals
