"""Chapter 6's checkers accept the reference solutions and name the typical wrong answers."""
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from panopticlab.exercises import ExerciseError, ch06


def find_centers(heatmap, threshold, kernel, above=True, size=None, swap=False, nms=True, order="raster",
                 plateau=True, wrap=False, fixed_kernel=None, fixed_threshold=None):
    """The reference solution (torch max-pool), and its typical mistakes."""
    size = (fixed_kernel or kernel) if size is None else size
    threshold = threshold if fixed_threshold is None else fixed_threshold
    if wrap:  # the window's maximum by shifting with np.roll: it wraps around the border
        pooled = heatmap.copy()
        for dy in range(-(size // 2), size // 2 + 1):
            for dx in range(-(size // 2), size // 2 + 1):
                pooled = np.maximum(pooled, np.roll(heatmap, (dy, dx), axis=(0, 1)))
    else:
        tensor = torch.from_numpy(heatmap)[None, None]
        pooled = F.max_pool2d(tensor, size, stride=1, padding=size // 2)[0, 0].numpy()
    passes = heatmap > threshold if above else heatmap >= threshold
    peaks = passes & (heatmap == pooled) if nms else passes
    if not plateau:  # a strict local maximum: no other pixel of the window as high
        footprint = np.ones((size, size), bool)
        footprint[size // 2, size // 2] = False
        peaks &= heatmap > ndimage.maximum_filter(heatmap, footprint=footprint, mode="constant", cval=-np.inf)
    points = np.argwhere(peaks)
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
    (dict(plateau=False), "plateau gives several centres"),
    (dict(wrap=True), "does not wrap around"),
    (dict(fixed_kernel=7), r"use the `kernel` argument \(5 here\), not the package's default 7"),
    # on the centre case a threshold of 0.1 and >= give the same centres: the message names both
    (dict(fixed_threshold=0.1), r"use >, not >=\); or use the `threshold` argument \(0.25 here\), not the package's "
                                r"default 0.1"),
])
def test_find_centers_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_find_centers(lambda h, t, k: find_centers(h, t, k, **mistake))


def test_find_centers_explains_a_pooled_map_of_another_size():
    """F.max_pool2d's stride defaults to its kernel: the pooled map shrinks and the comparison fails."""
    def default_stride(heatmap, threshold, kernel):
        tensor = torch.from_numpy(heatmap)
        pooled = F.max_pool2d(tensor[None, None], kernel, padding=kernel // 2)[0, 0]
        return torch.nonzero((tensor > threshold) & (tensor == pooled))

    def default_stride_numpy(heatmap, threshold, kernel):
        pooled = F.max_pool2d(torch.from_numpy(heatmap)[None, None], kernel, padding=kernel // 2)[0, 0].numpy()
        return np.argwhere((heatmap > threshold) & (heatmap == pooled))

    for answer in (default_stride, default_stride_numpy):
        with pytest.raises(ExerciseError, match="pass stride=1"):
            ch06.check_find_centers(answer)


def test_find_centers_refuses_the_package():
    from panopticlab import postprocess

    with pytest.raises(ExerciseError, match="without postprocess.find_instance_centers"):
        ch06.check_find_centers(lambda h, t, k: postprocess.find_instance_centers(h, t, k, top_k=None)[0])
    with pytest.raises(ExerciseError, match="without ch06._centers_variant"):
        ch06.check_find_centers(lambda h, t, k: ch06._centers_variant(h, t, k))
    assert len(postprocess.find_instance_centers(*ch06.center_case())[0]) == 3  # put back afterwards


def test_center_case_separates_the_mistakes():
    """Each mistake gives a different answer on the case, so each hint can be told apart."""
    heatmap, threshold, kernel = ch06.center_case()
    answers = [find_centers(heatmap, threshold, kernel, **m).tolist() for m in
               ({}, dict(above=False), dict(size=2 * kernel + 1), dict(swap=True), dict(nms=False))]
    assert len({str(a) for a in answers}) == len(answers)
    assert len(answers[0]) == 3  # the peak equal to the threshold is not a centre


def assign_pixels(centers, offsets, mask, sign=1, swap=False, l1=False, base=1, masked=True, ties_high=False,
                  rounded=False, centers_xy=False, own_position=False):
    height, width = mask.shape
    ys, xs = np.mgrid[:height, :width]
    dy, dx = (offsets[1], offsets[0]) if swap else (offsets[0], offsets[1])
    votes = np.stack([ys + sign * dy, xs + sign * dx], axis=-1).astype(np.float64)  # (H, W, 2)
    if own_position:
        votes = np.stack([ys, xs], axis=-1).astype(np.float64)
    if rounded:
        votes = np.round(votes)
    centers = centers[:, ::-1] if centers_xy else centers
    difference = votes[:, :, None, :] - centers[None, None].astype(np.float64)  # (H, W, K, 2)
    distance = np.abs(difference).sum(-1) if l1 else (difference**2).sum(-1)
    if ties_high:  # a running minimum updated on <=: a tie goes to the later centre
        best, nearest = np.full(mask.shape, np.inf), np.zeros(mask.shape, np.int64)
        for k in range(len(centers)):
            closer = distance[..., k] <= best
            best[closer], nearest[closer] = distance[..., k][closer], k
        nearest = nearest + base
    else:
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
    (dict(ties_high=True), "joins the first"),
    (dict(rounded=True), "do not round it"),
    (dict(centers_xy=True), r"read them as \(x, y\)"),
    (dict(own_position=True), "not through its own position"),
])
def test_assign_pixels_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_assign_pixels(lambda c, o, m: assign_pixels(c, o, m, **mistake))


def test_assign_pixels_explains_shape_and_unfinished_work():
    with pytest.raises(ExerciseError, match="instance map"):
        ch06.check_assign_pixels(lambda c, o, m: assign_pixels(c, o, m)[:, :-1])
    with pytest.raises(ExerciseError, match="not implemented"):
        ch06.check_assign_pixels(lambda *args: (_ for _ in ()).throw(NotImplementedError))


def test_assign_pixels_refuses_the_package():
    from panopticlab import postprocess

    def grouped(centers, offsets, mask):
        return postprocess.group_pixels(torch.from_numpy(centers), torch.from_numpy(offsets),
                                        torch.from_numpy(mask)).numpy()

    def nearest(centers, offsets, mask):
        votes = postprocess.vote_map(torch.from_numpy(offsets)).reshape(2, -1).T
        found = postprocess.nearest_center(votes, torch.from_numpy(centers)).reshape(mask.shape).numpy()
        return np.where(mask, found + 1, 0)

    for answer, name in ((grouped, "postprocess.group_pixels"), (nearest, "postprocess.nearest_center"),
                         (lambda c, o, m: ch06._assign_variant(c, o, m), "ch06._assign_variant")):
        with pytest.raises(ExerciseError, match=f"without {name}"):
            ch06.check_assign_pixels(answer)
    assert grouped(*ch06.tie_case()).max() == 3  # put back afterwards


def test_tie_case_separates_the_mistakes():
    """Every misreading the tie case is drawn for changes its answer."""
    centers, offsets, mask = ch06.tie_case()
    right = assign_pixels(centers, offsets, mask)
    assert right[0].tolist() == [1] * 8 and right[1].tolist() == [2] * 8  # the tie to centre 0, 1.25 to centre 1
    for mistake in (dict(ties_high=True), dict(rounded=True), dict(own_position=True)):
        assert (assign_pixels(centers, offsets, mask, **mistake) != right).sum() >= 3, mistake


def test_grouping_case_separates_the_mistakes():
    centers, offsets, mask = ch06.grouping_case()
    answers = [assign_pixels(centers, offsets, mask, **m) for m in
               ({}, dict(sign=-1), dict(swap=True), dict(l1=True))]
    for wrong in answers[1:]:
        assert (wrong != answers[0]).sum() >= 3


def majority_vote(semantic, instances, thing_ids, stuff_votes=False, ties_high=False, first=False, with_zero=False,
                  first_seen=False, fixed_things=None, contiguous=False):
    thing_ids = thing_ids if fixed_things is None else fixed_things
    ids = range(1, int(instances.max()) + 1) if contiguous else np.unique(instances)
    votes = {}
    for k in ids:
        if k == 0 and not with_zero:
            continue
        labels = semantic[instances == k]
        if not stuff_votes and k > 0:
            labels = labels[np.isin(labels, thing_ids)]
        if first:
            votes[int(k)] = int(labels[0])
            continue
        if first_seen:
            votes[int(k)] = int(Counter(labels.tolist()).most_common(1)[0][0])
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
    (dict(first_seen=True), r"not to the one met first \(Counter.most_common"),
    (dict(fixed_things=[1, 2, 3, 4]), "not the synthetic dataset's"),
    (dict(contiguous=True), r"instance ids the map holds \(np.unique, not 1..K\)"),
])
def test_majority_vote_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_majority_vote(lambda s, i, t: majority_vote(s, i, t, **mistake))


def test_majority_vote_wants_a_dict():
    with pytest.raises(ExerciseError, match="return a dict"):
        ch06.check_majority_vote(lambda s, i, t: [2, 3, 4])


def test_the_sparse_vote_case_is_the_hand_worked_answer():
    semantic, instances, thing_ids = ch06.vote_case_sparse()
    assert ch06.package_votes(semantic, instances, thing_ids) == {1: 3, 2: 2, 5: 7}
    assert majority_vote(semantic, instances, thing_ids, stuff_votes=True)[2] == 255  # void outnumbers each category


def test_majority_vote_refuses_the_package():
    for answer, name in ((lambda s, i, t: ch06.package_votes(s, i, t), "ch06.package_votes"),
                         (lambda s, i, t: ch06._vote_variant(s, i, t), "ch06._vote_variant")):
        with pytest.raises(ExerciseError, match=f"without {name}"):
            ch06.check_majority_vote(answer)

    def merged(semantic, instances, thing_ids):
        from panopticlab.postprocess import merge_semantic_and_instances

        return merge_semantic_and_instances(semantic, instances, None)

    with pytest.raises(ExerciseError, match="without postprocess.merge_semantic_and_instances"):
        ch06.check_majority_vote(merged)


def test_plateau_case_separates_the_mistakes():
    """On the second case each misreading it is drawn for gives its own answer."""
    heatmap, threshold, kernel = ch06.plateau_case()
    answers = [find_centers(heatmap, threshold, kernel, **m).tolist() for m in
               ({}, dict(plateau=False), dict(wrap=True), dict(fixed_kernel=7), dict(fixed_threshold=0.1))]
    assert len({str(a) for a in answers}) == len(answers)
    assert [3, 6] in answers[0] and [3, 7] in answers[0]  # both pixels of the flat top


# --- 6.4: the smallest kernel that merges two peaks ---------------------------------------------
def merging_kernel(h1, h2, dy, dx, threshold, distance="chebyshev", side=None, ties=True, strict=True,
                   use_threshold=True):
    """The reference solution (measured with torch's max-pool), and its typical mistakes (from a formula)."""
    if distance == "chebyshev" and side is None and ties and strict and use_threshold:
        heatmap = torch.zeros(1, 1, 41, 41)
        heatmap[0, 0, 20, 20], heatmap[0, 0, 20 + dy, 20 + dx] = h1, h2
        for kernel in range(1, 41, 2):
            pooled = F.max_pool2d(heatmap, kernel, stride=1, padding=kernel // 2)
            weaker, top = heatmap[0, 0, 20 + dy, 20 + dx], pooled[0, 0, 20 + dy, 20 + dx]
            if not (weaker > threshold and weaker == top):
                return kernel
        return None
    if use_threshold and (h2 <= threshold if strict else h2 < threshold):
        return 1
    if ties and h1 == h2:
        return None
    d = {"chebyshev": max(abs(dy), abs(dx)), "euclidean": int(np.ceil(np.hypot(dy, dx))),
         "l1": abs(dy) + abs(dx), "signed": max(dy, dx)}[distance]
    return (side or (lambda d: 2 * d + 1))(d)


def test_merging_kernel_accepts_the_measurement_and_the_formula(capsys):
    assert ch06.check_merging_kernel(merging_kernel, 9)
    assert "You predicted 9: as measured." in capsys.readouterr().out

    def formula(h1, h2, dy, dx, threshold):
        if h2 <= threshold:
            return 1
        return None if h1 == h2 else 2 * max(abs(dy), abs(dx)) + 1

    assert ch06.check_merging_kernel(formula, np.int64(9))


def test_merging_kernel_reports_a_wrong_prediction(capsys):
    for prediction in (11, None):  # the Euclidean reading, and "no kernel merges them"
        assert ch06.check_merging_kernel(merging_kernel, prediction)
        assert f"You predicted {prediction}; measured 9 - see the answer key." in capsys.readouterr().out


@pytest.mark.parametrize("mistake, hint", [
    (dict(distance="euclidean"), r"\(the Chebyshev distance\), not when the Euclidean distance sqrt\(dy² \+ dx²\) "
                                 r"is\.$"),
    (dict(distance="l1"), r"not \|dy\| \+ \|dx\| \(L1\)"),
    (dict(side=lambda d: 2 * d - 1), "not 2d - 1"),
    (dict(side=lambda d: 2 * d), "the kernel is odd"),
    (dict(side=lambda d: d), "not its radius"),
    (dict(distance="signed"), "an offset may be negative"),
    (dict(ties=False), "a tie"),
    (dict(use_threshold=False), "the threshold was forgotten"),
    (dict(strict=False), r"the threshold is strict: a peak equal to it is no centre \(>, not >=\)"),
])
def test_merging_kernel_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch06.check_merging_kernel(lambda *args: merging_kernel(*args, **mistake), 9)


def test_merging_kernel_cases_separate_the_mistakes():
    """Every misreading fails on some case; the reference is the package's own centre finding."""
    for readings in ch06.KERNEL_MISTAKES.values():
        for variant in readings:
            assert any(ch06._kernel_variant(*case, **variant) != ch06.package_merging_kernel(*case)
                       for case in ch06.KERNEL_CASES), variant
    assert [ch06.package_merging_kernel(*case) for case in ch06.KERNEL_CASES] == [9, 13, None, 1, 1, 3, 11]
    assert ch06.package_merging_kernel(0.875, 0.625, 0, 5, 0.1) == 11  # chapter 6's question 1: 5 px along a row


def test_merging_kernel_wants_a_prediction_and_an_int():
    with pytest.raises(ExerciseError, match="not implemented"):
        ch06.check_merging_kernel(merging_kernel, ...)
    with pytest.raises(ExerciseError, match="as a kernel size"):
        ch06.check_merging_kernel(merging_kernel, "9")
    with pytest.raises(ExerciseError, match="return the kernel as an int"):
        ch06.check_merging_kernel(lambda *args: float(merging_kernel(*args) or 0), 9)


def test_merging_kernel_refuses_the_package():
    from panopticlab import postprocess
    from panopticlab.postprocess import centers

    def with_centers(h1, h2, dy, dx, threshold):
        heatmap, weaker = ch06.two_peaks(h1, h2, dy, dx)
        for kernel in range(1, 41, 2):
            if list(weaker) not in postprocess.find_instance_centers(heatmap, threshold, kernel)[0].tolist():
                return kernel
        return None

    def with_pool(h1, h2, dy, dx, threshold):
        heatmap, (y, x) = ch06.two_peaks(h1, h2, dy, dx)
        return next((k for k in range(1, 41, 2) if not (heatmap[y, x] > threshold and heatmap[y, x] ==
                     centers.square_max_pool(torch.from_numpy(heatmap), k)[y, x])), None)

    for answer, name in ((with_centers, "postprocess.find_instance_centers"),
                         (with_pool, "postprocess.centers.square_max_pool"),
                         (lambda *args: ch06.package_merging_kernel(*args), "ch06.package_merging_kernel")):
        with pytest.raises(ExerciseError, match=f"without {name}"):
            ch06.check_merging_kernel(answer, 9)
    assert with_centers(*ch06.PREDICTION_CASE) == 9  # put back afterwards
