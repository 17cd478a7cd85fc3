"""Merges, splits, misses and false alarms, on hand-built images whose answer is known."""
import numpy as np
import pytest

from panopticlab.data.panoptic import PanopticSegmentation
from panopticlab.metrics import error_analysis, match_segments

DISC, ROAD = 1, 12  # a thing and a stuff category of the built-in data


def segmentation(id_map, categories, crowd=None):
    return PanopticSegmentation.from_id_map(np.asarray(id_map), categories, iscrowd=crowd)


def test_one_prediction_over_two_objects_is_a_merge():
    gt = np.zeros((4, 8), int)
    gt[:, :4], gt[:, 4:] = 1, 2  # two discs side by side
    pred = np.full((4, 8), 7)  # one disc over both
    errors = error_analysis(match_segments(segmentation(gt, {1: DISC, 2: DISC}), segmentation(pred, {7: DISC})))
    assert errors.merges == [(7, (1, 2))] and errors.splits == []
    assert sorted(errors.false_negatives) == [1, 2] and list(errors.false_positives) == [7]  # IoU 0.5: no match


def test_one_object_cut_in_three_is_a_split():
    gt = np.full((4, 9), 3)
    pred = np.repeat([[4, 4, 4, 5, 5, 5, 6, 6, 6]], 4, axis=0)
    errors = error_analysis(match_segments(segmentation(gt, {3: DISC}), segmentation(pred, {4: DISC, 5: DISC, 6: DISC})))
    assert errors.splits == [(3, (4, 5, 6))] and errors.merges == []
    assert errors.counts() == {"fn": 1, "fp": 3, "merges": 0, "splits": 1}


def test_a_matched_pair_other_categories_and_crowd_are_no_merge_or_split():
    gt = np.zeros((4, 8), int)
    gt[:, :4], gt[:, 4:] = 1, 2
    pred = np.full((4, 8), 7)
    # the second object is road: one disc prediction over a disc and a road region is not a merge
    errors = error_analysis(match_segments(segmentation(gt, {1: DISC, 2: ROAD}), segmentation(pred, {7: DISC})))
    assert errors.merges == []
    # with the second disc a crowd region, the prediction covers one object: no merge either
    errors = error_analysis(match_segments(segmentation(gt, {1: DISC, 2: DISC}, crowd={2: 1}),
                                           segmentation(pred, {7: DISC})))
    assert errors.merges == [] and list(errors.false_negatives) == [1]
    perfect = error_analysis(match_segments(segmentation(gt, {1: DISC, 2: DISC}), segmentation(gt, {1: DISC, 2: DISC})))
    assert perfect.counts() == {"fn": 0, "fp": 0, "merges": 0, "splits": 0}


def test_share_below_one_half_is_refused():
    gt = segmentation(np.ones((2, 2), int), {1: DISC})
    with pytest.raises(ValueError, match=r"share must be in \[0.5, 1\)"):
        error_analysis(match_segments(gt, gt), share=0.3)
