"""Chapter 7's checker accepts the reference solution and names the typical wrong answers."""
import numpy as np
import pytest

from panopticlab import metrics
from panopticlab.exercises import ExerciseError, ch07


def find_merges(gt, pred, at_least_half=False, share_of="object", minimum=2, void_prediction=False):
    """The reference solution, and its typical misreadings."""
    merges = []
    for p in np.unique(pred if void_prediction else pred[pred > 0]):
        inside = []
        for g in np.unique(gt[gt > 0]):
            shared = np.sum((gt == g) & (pred == p))
            whole = {"object": np.sum(gt == g), "prediction": np.sum(pred == p),
                     "union": np.sum((gt == g) | (pred == p))}[share_of]
            if (shared >= whole / 2) if at_least_half else (shared > whole / 2):
                inside.append(int(g))
        if len(inside) >= minimum:
            merges.append((int(p), tuple(inside)))
    return merges


def test_accepts_the_solution_in_any_order():
    assert ch07.check_find_merges(find_merges)
    shuffled = lambda gt, pred: [(p, tuple(reversed(gs))) for p, gs in reversed(find_merges(gt, pred))]  # noqa: E731
    assert ch07.check_find_merges(shuffled)


@pytest.mark.parametrize("mistake, hint", [
    (dict(at_least_half=True), r"use >, not >="),
    (dict(share_of="prediction"), "not of the prediction's"),
    (dict(share_of="union"), "not the IoU"),
    (dict(minimum=1), "a prediction over one object is no merge"),
    (dict(minimum=3), "'two or more' is >= 2, not > 2"),
    (dict(void_prediction=True), "0 in the prediction is void"),
])
def test_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch07.check_find_merges(lambda gt, pred: find_merges(gt, pred, **mistake))


def test_the_cases_are_the_hand_worked_answers():
    for case, merges in ((ch07.merge_case(), [(7, (1, 2))]), (ch07.merge_case_more(), [(7, (1, 2, 3)), (8, (6, 7))])):
        gt, pred = case
        assert find_merges(gt, pred) == merges
        matching = metrics.match_segments(ch07._segmentation(gt), ch07._segmentation(pred))
        assert metrics.error_analysis(matching).merges == merges


def test_refuses_the_package():
    def analysed(gt, pred):
        matching = metrics.match_segments(ch07._segmentation(gt), ch07._segmentation(pred))
        return metrics.error_analysis(matching).merges

    with pytest.raises(ExerciseError, match="without metrics.error_analysis"):
        ch07.check_find_merges(analysed)
    with pytest.raises(ExerciseError, match="without ch07._merges_variant"):
        ch07.check_find_merges(lambda gt, pred: ch07._merges_variant(gt, pred))
    assert analysed(*ch07.merge_case()) == [(7, (1, 2))]  # put back afterwards


def test_explains_the_format_and_unfinished_work():
    with pytest.raises(ExerciseError, match=r"list of \(predicted id"):
        ch07.check_find_merges(lambda gt, pred: 7)
    with pytest.raises(ExerciseError, match="not implemented"):
        ch07.check_find_merges(lambda *args: (_ for _ in ()).throw(NotImplementedError))
