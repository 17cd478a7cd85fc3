"""Semantic segmentation quality: the confusion matrix of pixels and the mean IoU.

A semantic map is scored per pixel: :func:`confusion_matrix` counts (target class,
predicted class) pairs, :func:`mean_iou` averages ``TP / (TP + FP + FN)`` over the
classes present, as torchmetrics and mmsegmentation do (the tests compare with
torchmetrics). A semantic map that abstains (the void label) counts as a miss of the
target class and as a false positive of none.
"""
from __future__ import annotations

import numpy as np

from ..data.categories import VOID_LABEL

__all__ = ["confusion_matrix", "mean_iou"]


def confusion_matrix(predicted: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = VOID_LABEL,
                     void_prediction: int | None = None) -> np.ndarray:
    """Pixel counts of (target class, predicted class).

    Args:
        predicted, target: integer class indices ``0..K-1`` of the same shape; target
            pixels equal to ``ignore_index`` are not counted.
        num_classes: K.
        void_prediction: a predicted value meaning "no class" (a semantic map that
            abstains); such pixels are counted in an extra last column: misses of their
            target class, false positives of none.

    Returns:
        (K, K) int64, or (K, K + 1) with ``void_prediction``: row = target, column = prediction.

    Raises:
        ValueError: the shapes differ, or a counted pixel is outside ``0..K-1``.
    """
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape:
        raise ValueError(f"prediction of shape {predicted.shape} for a target of shape {target.shape}")
    counted = target != ignore_index
    predicted, target = predicted[counted].astype(np.int64), target[counted].astype(np.int64)
    columns = num_classes
    if void_prediction is not None:
        predicted = np.where(predicted == void_prediction, num_classes, predicted)
        columns += 1
    outside = (predicted < 0) | (predicted >= columns) | (target < 0) | (target >= num_classes)
    if outside.any():
        raise ValueError(f"class indices must lie in 0..{num_classes - 1} (or be {ignore_index} in the target)")
    return np.bincount(target * columns + predicted, minlength=num_classes * columns).reshape(num_classes, columns)


def mean_iou(confusion: np.ndarray, classes: np.ndarray | list[int] | None = None) -> float:
    """Mean over classes of ``TP / (TP + FP + FN)`` from a :func:`confusion_matrix`.

    Classes absent from both target and prediction are left out (torchmetrics' and
    mmsegmentation's convention); an extra column of abstentions counts as misses only.
    ``classes``: average over these class indices only (a map that can only name some
    classes, e.g. Panoptic FPN's stuff; pixels of the others still count as their false
    positives and misses).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    square = confusion[:, :confusion.shape[0]]
    true_positive = np.diag(square)
    union = confusion.sum(1) + square.sum(0) - true_positive
    present = union > 0
    if classes is not None:
        chosen = np.zeros_like(present)
        chosen[np.asarray(classes, dtype=np.int64)] = True
        present &= chosen
    return float(np.mean(true_positive[present] / union[present])) if present.any() else float("nan")
