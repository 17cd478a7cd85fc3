"""Chapter 6's checkers accept the reference solutions and name the typical wrong answers."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from panopticlab.exercises import ExerciseError, ch06


def find_centers(heatmap, threshold, kernel, above=True, size=None, swap=False, nms=True, order="raster"):
    """The reference solution (torch max-pool), and its typical mistakes."""
    tensor = torch.from_numpy(heatmap)[None, None]
    size = kernel if size is None else size
    pooled = F.max_pool2d(tensor, size, stride=1, padding=size // 2)[0, 0].numpy()
    passes = heatmap > threshold if above else heatmap >= threshold
    points = np.argwhere(passes & (heatmap == pooled) if nms else passes)
    if order == "score":
        points = points[np.argsort(-heatmap[tuple(points.T)], kind="stable")]
    return points[:, ::-1] if swap else points


def test_find_centers_accepts_the_solution_and_scipy():
    assert ch06.check_find_centers(find_centers)
    assert ch06.check_find_centers(lambda h, t, k: np.argwhere(
        (h > t) & (h == ndimage.maximum_filter(h, size=k, mode="constant", cval=-np.inf))))


@pytest.mark.parametrize("mistake, hint", [
    (dict(above=False), "use >, not >="),
    (dict(size=15), "not its radius"),
    (dict(swap=True), r"\(y, x\) = \(row, column\)"),
    (dict(nms=False), "NMS step"),
    (dict(order="score"), "raster order"),
])
def test_find_centers_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_find_centers(lambda h, t, k: find_centers(h, t, k, **mistake))


def test_center_case_separates_the_mistakes():
    """Each mistake gives a different answer on the case, so each hint can be told apart."""
    heatmap, threshold, kernel = ch06.center_case()
    answers = [find_centers(heatmap, threshold, kernel, **m).tolist() for m in
               ({}, dict(above=False), dict(size=2 * kernel + 1), dict(swap=True), dict(nms=False))]
    assert len({str(a) for a in answers}) == len(answers)
    assert len(answers[0]) == 3  # the peak equal to the threshold is not a centre


def assign_pixels(centers, offsets, mask, sign=1, swap=False, l1=False, base=1, masked=True):
    height, width = mask.shape
    ys, xs = np.mgrid[:height, :width]
    dy, dx = (offsets[1], offsets[0]) if swap else (offsets[0], offsets[1])
    votes = np.stack([ys + sign * dy, xs + sign * dx], axis=-1).astype(np.float64)  # (H, W, 2)
    difference = votes[:, :, None, :] - centers[None, None].astype(np.float64)  # (H, W, K, 2)
    distance = np.abs(difference).sum(-1) if l1 else (difference**2).sum(-1)
    nearest = distance.argmin(-1) + base
    return np.where(mask, nearest, 0) if masked else nearest


def test_assign_pixels_accepts_the_solution():
    assert ch06.check_assign_pixels(assign_pixels)


@pytest.mark.parametrize("mistake, hint", [
    (dict(sign=-1), "wrong sign|subtracted"),
    (dict(swap=True), "swapped them"),
    (dict(l1=True), "not the L1"),
    (dict(base=0), "off by one"),
    (dict(masked=False), "outside the thing mask"),
])
def test_assign_pixels_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_assign_pixels(lambda c, o, m: assign_pixels(c, o, m, **mistake))


def test_assign_pixels_explains_shape_and_unfinished_work():
    with pytest.raises(ExerciseError, match="instance map"):
        ch06.check_assign_pixels(lambda c, o, m: assign_pixels(c, o, m)[:, :-1])
    with pytest.raises(ExerciseError, match="not implemented"):
        ch06.check_assign_pixels(lambda *args: (_ for _ in ()).throw(NotImplementedError))


def test_grouping_case_separates_the_mistakes():
    centers, offsets, mask = ch06.grouping_case()
    answers = [assign_pixels(centers, offsets, mask, **m) for m in
               ({}, dict(sign=-1), dict(swap=True), dict(l1=True))]
    for wrong in answers[1:]:
        assert (wrong != answers[0]).sum() >= 3


def majority_vote(semantic, instances, thing_ids, stuff_votes=False, ties_high=False, first=False, with_zero=False):
    votes = {}
    for k in np.unique(instances):
        if k == 0 and not with_zero:
            continue
        labels = semantic[instances == k]
        if not stuff_votes and k > 0:
            labels = labels[np.isin(labels, thing_ids)]
        if first:
            votes[int(k)] = int(labels[0])
            continue
        counts = np.bincount(labels)
        votes[int(k)] = int(len(counts) - 1 - np.argmax(counts[::-1]) if ties_high else np.argmax(counts))
    return votes


def test_majority_vote_accepts_the_solution():
    assert ch06.check_majority_vote(majority_vote)


def test_majority_vote_reference_is_the_hand_worked_answer():
    semantic, instances, _ = ch06.vote_case()
    assert ch06.package_votes(semantic, instances) == {1: 2, 2: 3, 3: 4}


@pytest.mark.parametrize("mistake, hint", [
    (dict(ties_high=True), "smallest category id"),
    (dict(stuff_votes=True), "only thing pixels vote"),
    (dict(first=True), "not only its first one"),
    (dict(with_zero=True), "0 is 'no instance'"),
])
def test_majority_vote_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_majority_vote(lambda s, i, t: majority_vote(s, i, t, **mistake))


def test_majority_vote_wants_a_dict():
    with pytest.raises(ExerciseError, match="return a dict"):
        ch06.check_majority_vote(lambda s, i, t: [2, 3, 4])
