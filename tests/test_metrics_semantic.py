"""Semantic segmentation quality: the pixel confusion matrix and mIoU, against torchmetrics."""
import numpy as np
import pytest
import torch

from panopticlab.metrics.semantic import confusion_matrix, mean_iou


def test_mean_iou_matches_torchmetrics(rng):
    from torchmetrics.classification import MulticlassJaccardIndex

    target = rng.integers(0, 6, size=(5, 20, 30))
    target[rng.random(target.shape) < 0.1] = 255
    predicted = np.where(rng.random(target.shape) < 0.6, np.where(target == 255, 0, target),
                         rng.integers(0, 6, size=target.shape))
    predicted[predicted == 4] = 0  # class 4 predicted nowhere
    target[target == 5] = 0
    predicted[predicted == 5] = 0  # class 5 nowhere at all: left out of the mean
    confusion = confusion_matrix(predicted, target, 6)
    assert confusion.sum() == (target != 255).sum()
    reference = MulticlassJaccardIndex(6, average="macro", ignore_index=255)
    expected = reference(torch.from_numpy(predicted), torch.from_numpy(target)).item()
    assert mean_iou(confusion) == pytest.approx(expected, abs=1e-6)


def test_abstaining_predictions_count_as_misses_only():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    predicted = np.array([[0, 255, 1, 0], [2, 255, 1, 255]])
    confusion = confusion_matrix(predicted, target, 3, void_prediction=255)
    assert confusion.shape == (3, 4) and confusion[:, 3].tolist() == [1, 1, 1]
    # by hand: class 0 TP 1, FP 1, FN 1; class 1 TP 1, FN 2; class 2 TP 1, FN 1
    assert mean_iou(confusion) == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)


def test_mean_iou_over_chosen_classes_keeps_their_errors():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    predicted = np.array([[0, 255, 1, 0], [2, 255, 1, 255]])
    confusion = confusion_matrix(predicted, target, 3, void_prediction=255)
    # by hand, as above; classes 0 and 2 only (class 1's pixel predicted as 0 stays a false positive of 0)
    assert mean_iou(confusion, classes=[0, 2]) == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert mean_iou(confusion, classes=[0, 1, 2]) == mean_iou(confusion)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 3)
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix(np.full((2, 2), 3), np.zeros((2, 2), int), 3)
