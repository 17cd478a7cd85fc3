"""Panoptic-DeepLab post-processing against the dense K x (H*W) formulation and hand-worked cases."""
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage, stats
from scipy.spatial import cKDTree

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import Category, CategorySet, PanopticFormatError, from_label_divisor, to_label_divisor
from panopticlab.postprocess import (
    COCO,
    CITYSCAPES,
    find_instance_centers,
    group_pixels,
    merge_semantic_and_instances,
    nearest_center,
    panoptic_deeplab_postprocess,
    pixel_votes,
    square_max_pool,
    vote_map,
)
from panopticlab.postprocess import grouping as grouping_module

THINGS, STUFF = CATS.thing_ids, CATS.stuff_ids


# ---------------------------------------------------------------------------------------
# the dense reference: every pixel against every centre, then the published merge loop
# ---------------------------------------------------------------------------------------
def dense_reference(semantic, heatmap, offsets, categories, threshold=0.1, nms_kernel=7, top_k=200,
                    stuff_area=2048, label_divisor=1000):
    """Label-divisor map (void -1), centres and instance map, the straightforward way.

    Centres use scipy's maximum filter; grouping builds the full K x (H*W) matrix of float64
    squared distances and takes the first minimum; the merge is detectron2's loop, with
    scipy.stats.mode (smallest value on ties) for the majority vote.
    """
    height, width = heatmap.shape
    pooled = ndimage.maximum_filter(heatmap, size=nms_kernel, mode="constant", cval=-np.inf)
    centers = np.argwhere((heatmap > threshold) & (heatmap == pooled))
    scores = heatmap[tuple(centers.T)]
    if top_k is not None and len(centers) > top_k:
        keep = np.sort(np.lexsort((np.arange(len(centers)), -scores))[:top_k])
        centers, scores = centers[keep], scores[keep]

    thing = np.isin(semantic, categories.thing_ids)
    instance = np.zeros((height, width), np.int64)
    if len(centers):
        ys, xs = np.mgrid[:height, :width]
        vote_y = (ys.astype(np.float64) + offsets[0].astype(np.float64)).ravel()
        vote_x = (xs.astype(np.float64) + offsets[1].astype(np.float64)).ravel()
        c = centers.astype(np.float64)
        distance = (c[:, :1] - vote_y[None]) ** 2 + (c[:, 1:] - vote_x[None]) ** 2  # (K, H*W)
        instance = distance.argmin(axis=0).reshape(height, width) + 1
        instance[~thing] = 0

    panoptic = np.full((height, width), -1, np.int64)
    per_class = Counter()
    for k in range(1, len(centers) + 1):
        mask = instance == k
        if not mask.any():
            continue
        category = int(stats.mode(semantic[mask]).mode)
        per_class[category] += 1
        panoptic[mask] = category * label_divisor + per_class[category]
    for category in np.unique(semantic):
        if category in categories.thing_ids:
            continue
        mask = (semantic == category) & (instance == 0)
        if mask.sum() >= stuff_area:
            panoptic[mask] = category * label_divisor
    return panoptic, centers, scores, instance


# ---------------------------------------------------------------------------------------
# random network outputs, one generator per case the issue lists
# ---------------------------------------------------------------------------------------
CASES = ["random", "no_center", "one_center", "border", "plateau", "outside", "mixed", "ties",
         "all_stuff", "all_thing", "centers_on_stuff", "clustered"]


def random_outputs(rng, case, shape=(24, 32)):
    height, width = shape
    # semantic: coarse blocks of categories, things in about half of them
    choices, p = THINGS + STUFF, [0.125] * 4 + [0.1] * 5
    if case == "all_stuff":
        choices, p = STUFF, None
    elif case == "all_thing":
        choices, p = THINGS, None
    blocks = rng.choice(choices, size=(height // 4, width // 4), p=p)
    semantic = np.kron(blocks, np.ones((4, 4), np.int64))
    thing = np.isin(semantic, THINGS)
    if case == "mixed":
        # instances whose pixels carry several categories
        noisy = thing & (rng.random(shape) < 0.4)
        semantic[noisy] = rng.choice(THINGS, size=int(noisy.sum()))

    heatmap = ndimage.gaussian_filter(rng.random(shape), sigma=1.5)
    heatmap = ((heatmap - heatmap.min()) / (np.ptp(heatmap) + 1e-12)).astype(np.float32)
    if case == "no_center":
        heatmap = rng.uniform(0, 0.1, shape).astype(np.float32)
        heatmap[rng.random(shape) < 0.3] = 0.1  # equal to the threshold: still not a centre
    elif case == "one_center":
        heatmap = rng.uniform(0, 0.1, shape).astype(np.float32)
        heatmap[rng.integers(height), rng.integers(width)] = rng.uniform(0.2, 1)
    elif case == "border":
        heatmap *= 0.05
        border = np.zeros(shape, bool)
        border[[0, -1], :] = border[:, [0, -1]] = True
        picks = border & (rng.random(shape) < 0.3)
        heatmap[picks] = rng.uniform(0.2, 1, size=int(picks.sum()))
    elif case == "plateau":
        heatmap = np.round(heatmap * 3).astype(np.float32) / 3
    elif case == "centers_on_stuff":
        heatmap[thing] = 0  # every peak on a stuff pixel

    # offsets point to a few "true" centres, plus noise
    true_centers = rng.uniform(0, [height, width], size=(6, 2))
    ys, xs = np.mgrid[:height, :width]
    owner = rng.integers(0, len(true_centers), size=shape)
    offsets = np.stack([true_centers[owner, 0] - ys, true_centers[owner, 1] - xs]) + rng.normal(0, 2, (2, *shape))
    if case == "outside":
        offsets *= rng.uniform(3, 30)
    if case == "ties":
        # votes on the half-pixel grid: many exactly equidistant centres
        offsets = np.round(offsets * 2) / 2
    if case == "clustered":
        # what a trained network gives: votes within 1-2 px of the centres NMS will find
        centers = find_instance_centers(heatmap, nms_kernel=3, top_k=None)[0].numpy()
        if len(centers):
            owner = cKDTree(centers).query(np.stack([ys.ravel(), xs.ravel()], 1))[1].reshape(shape)
            offsets = (np.stack([centers[owner, 0] - ys, centers[owner, 1] - xs])
                       + rng.normal(0, rng.uniform(1, 2), (2, *shape)))
    return semantic, heatmap, offsets.astype(np.float32)


def random_parameters(rng, case):
    return dict(nms_kernel=int(rng.choice([1, 3, 7, 41] if case not in ("one_center", "clustered") else
                                          [7, 41] if case == "one_center" else [3])),
                top_k=int(rng.choice([3, 20, 200])), stuff_area=int(rng.choice([0, 16, 100])),
                label_divisor=int(rng.choice([1000, 256])), threshold=0.1)


@pytest.mark.parametrize("case", CASES)
def test_matches_dense_reference(case):
    for seed in range(25):
        rng = np.random.default_rng([seed, CASES.index(case)])
        semantic, heatmap, offsets = random_outputs(rng, case)
        params = random_parameters(rng, case)
        result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, **params)
        expected, centers, scores, instance = dense_reference(semantic, heatmap, offsets, CATS, **params)

        where = f"case {case}, seed {seed}, {params}"
        np.testing.assert_array_equal(result.centers, centers, err_msg=where)
        np.testing.assert_array_equal(result.center_scores, scores, err_msg=where)
        np.testing.assert_array_equal(result.instance_map, instance, err_msg=where)
        np.testing.assert_array_equal(result.label_divisor_map(), expected, err_msg=where)
        # areas and boxes as the id map gives them
        result.panoptic.validate(CATS, source=where, check_statistics=True)
        # the panoptic object and the label map describe the same partition and categories
        divisor = params["label_divisor"]
        decoded = from_label_divisor(expected, CATS, void=-1, label_divisor=divisor)
        np.testing.assert_array_equal(result.panoptic.relabeled().id_map, decoded.relabeled().id_map)
        np.testing.assert_array_equal(result.panoptic.category_map(void=-1),
                                      np.where(expected >= 0, expected // divisor, -1))
        # each centre's segment: its instance's, 0 for an empty one
        for k, segment_id in enumerate(result.center_segment):
            assert (segment_id == 0) == (not (instance == k + 1).any())
            if segment_id:
                assert (result.panoptic.id_map[instance == k + 1] == segment_id).all()
        if case == "no_center":
            assert len(result.centers) == 0 and not np.isin(result.panoptic.category_map(), THINGS).any()
        if case == "one_center":
            assert len(result.centers) == 1
        if case == "all_stuff":
            assert not result.center_segment.any() and not result.instance_map.any()
        if case == "centers_on_stuff":
            assert not np.isin(semantic[tuple(result.centers.T)], THINGS).any()


def test_every_case_is_exercised():
    """The random cases really contain what they are named for."""
    seen = Counter()
    for case in CASES:
        for seed in range(25):
            rng = np.random.default_rng([seed, CASES.index(case)])
            semantic, heatmap, offsets = random_outputs(rng, case)
            params = random_parameters(rng, case)
            result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, **params)
            h, w = heatmap.shape
            c = result.centers
            seen["border"] += int(((c[:, 0] == 0) | (c[:, 0] == h - 1) | (c[:, 1] == 0) | (c[:, 1] == w - 1)).any())
            seen["adjacent centres"] += int(len(c) > 1 and (np.abs(np.diff(c, axis=0)).sum(1) == 1).any())
            votes = result.votes
            seen["outside"] += int(((votes[0] < 0) | (votes[0] >= h) | (votes[1] < 0) | (votes[1] >= w)).mean() > 0.5)
            seen["top_k binds"] += int(len(c) == params["top_k"])
            for s in result.panoptic.segments:
                if s.category_id in THINGS:
                    labels = semantic[result.panoptic.mask(s.id)]
                    seen["mixed"] += int(len(np.unique(labels)) > 1)
            stuff_present, stuff_area = np.unique(semantic[np.isin(semantic, STUFF)], return_counts=True)
            seen["stuff below the area"] += int((stuff_area < params["stuff_area"]).any())
            seen["centre with no pixel"] += int(len(c) > 0 and (result.center_segment == 0).any())
            seen["no thing pixel"] += int(len(c) > 0 and not np.isin(semantic, THINGS).any())
            seen["no stuff pixel"] += int(not len(stuff_present))
    assert all(seen[key] >= 5 for key in ["border", "adjacent centres", "outside", "top_k binds", "mixed",
                                          "stuff below the area", "centre with no pixel", "no thing pixel",
                                          "no stuff pixel"]), seen


# ---------------------------------------------------------------------------------------
# detectron2's formulation, verbatim, where float32 arithmetic is exact
# ---------------------------------------------------------------------------------------
def detectron2_panoptic(sem_seg, center_heatmap, offsets, thing_ids, label_divisor, stuff_area, void_label,
                        threshold=0.1, nms_kernel=7, top_k=200):
    """detectron2's ``get_panoptic_segmentation`` (projects/Panoptic-DeepLab/post_processing.py)."""
    center_heatmap = F.threshold(center_heatmap, threshold, -1)
    pooled = F.max_pool2d(center_heatmap, kernel_size=nms_kernel, stride=1, padding=(nms_kernel - 1) // 2)
    center_heatmap[center_heatmap != pooled] = -1
    center_heatmap = center_heatmap.squeeze()
    top_k_scores, _ = torch.topk(torch.flatten(center_heatmap), top_k)
    center_points = torch.nonzero(center_heatmap > top_k_scores[-1].clamp_(min=0))
    thing_seg = torch.zeros_like(sem_seg)
    for thing_class in thing_ids:
        thing_seg[sem_seg == thing_class] = 1
    if center_points.size(0) == 0:
        ins_seg = torch.zeros_like(sem_seg)
    else:
        height, width = offsets.size()[1:]
        y_coord, x_coord = torch.meshgrid(torch.arange(height, dtype=offsets.dtype),
                                          torch.arange(width, dtype=offsets.dtype), indexing="ij")
        center_loc = (torch.stack([y_coord, x_coord]) + offsets).flatten(1).T.unsqueeze(0)
        distance = torch.norm(center_points.unsqueeze(1) - center_loc, dim=-1)
        ins_seg = thing_seg * (torch.argmin(distance, dim=0).reshape((1, height, width)) + 1)
    pan_seg = torch.zeros_like(sem_seg) + void_label
    is_thing = (ins_seg > 0) & (thing_seg > 0)
    tracker = Counter()
    for ins_id in torch.unique(ins_seg):
        if ins_id == 0:
            continue
        thing_mask = (ins_seg == ins_id) & is_thing
        if torch.nonzero(thing_mask).size(0) == 0:
            continue
        class_id, _ = torch.mode(sem_seg[thing_mask].view(-1))
        tracker[class_id.item()] += 1
        pan_seg[thing_mask] = class_id * label_divisor + tracker[class_id.item()]
    for class_id in torch.unique(sem_seg):
        if class_id.item() in thing_ids:
            continue
        stuff_mask = (sem_seg == class_id) & (ins_seg == 0)
        if stuff_mask.sum().item() >= stuff_area:
            pan_seg[stuff_mask] = class_id * label_divisor
    return pan_seg[0]


def test_matches_detectron2_verbatim_on_exact_grid():
    """Small images, votes on a quarter-pixel grid: float32 norms are exact and ordered like
    float64 squared distances, so detectron2's code is a reference for every pixel. One thing
    category keeps torch.mode away from ties."""
    categories = CategorySet([Category(1, "disc", True), Category(11, "sky", False), Category(12, "road", False)])
    for seed in range(30):
        rng = np.random.default_rng(seed)
        shape = (16, 20)
        semantic = np.kron(rng.choice([1, 1, 11, 12], size=(4, 5)), np.ones((4, 4), np.int64))
        heatmap = np.round(ndimage.gaussian_filter(rng.random(shape), 1.0) * 64).astype(np.float32) / 64
        heatmap = (heatmap - heatmap.min()) / (heatmap.max() - heatmap.min())
        offsets = (rng.integers(-24, 25, size=(2, *shape)) / 4).astype(np.float32)
        kernel = int(rng.choice([3, 5]))
        # top_k above the number of candidates: detectron2 then keeps every candidate too
        result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, categories, nms_kernel=kernel,
                                              top_k=200, stuff_area=10)
        assert len(result.centers) < 200
        expected = detectron2_panoptic(torch.from_numpy(semantic)[None], torch.from_numpy(heatmap)[None],
                                       torch.from_numpy(offsets), [1], 1000, 10, -1, nms_kernel=kernel)
        np.testing.assert_array_equal(result.label_divisor_map(), expected.numpy(), err_msg=f"seed {seed}")


# ---------------------------------------------------------------------------------------
# hand-worked examples
# ---------------------------------------------------------------------------------------
def hand_example():
    semantic = np.array([[11, 11, 11, 11, 11, 11],
                         [1, 1, 11, 11, 2, 2],
                         [1, 1, 11, 11, 2, 2],
                         [12, 12, 12, 12, 12, 12]])
    heatmap = np.zeros((4, 6), np.float32)
    heatmap[1, 0], heatmap[2, 5] = 0.9, 0.8
    ys, xs = np.mgrid[:4, :6]
    offsets = np.zeros((2, 4, 6), np.float32)
    left, right = semantic == 1, semantic == 2
    offsets[0][left], offsets[1][left] = (1 - ys)[left], (0 - xs)[left]
    offsets[0][right], offsets[1][right] = (2 - ys)[right], (5 - xs)[right]
    return semantic, heatmap, offsets


def test_hand_worked_example():
    semantic, heatmap, offsets = hand_example()
    result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, nms_kernel=3, stuff_area=6)
    assert result.centers.tolist() == [[1, 0], [2, 5]]
    np.testing.assert_allclose(result.center_scores, [0.9, 0.8])
    assert result.label_divisor_map().tolist() == [[11000] * 6,
                                                   [1001, 1001, 11000, 11000, 2001, 2001],
                                                   [1001, 1001, 11000, 11000, 2001, 2001],
                                                   [12000] * 6]
    segments = {s.id: s for s in result.panoptic.segments}
    assert [(i, s.category_id, s.area) for i, s in sorted(segments.items())] == [
        (1, 1, 4), (2, 2, 4), (3, 11, 10), (4, 12, 6)]
    assert segments[1].score == pytest.approx(0.9) and segments[2].score == pytest.approx(0.8)
    assert segments[3].score is None and segments[1].bbox == (0, 1, 2, 2)
    assert result.center_segment.tolist() == [1, 2]
    # road has 6 pixels: below a stuff area of 7 it becomes void
    small = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, nms_kernel=3, stuff_area=7)
    assert small.label_divisor_map()[3].tolist() == [-1] * 6
    assert {s.category_id for s in small.panoptic.segments} == {1, 2, 11}


def test_equidistant_vote_goes_to_first_center():
    votes = torch.tensor([[0.0, 2.0], [0.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    for centers in (torch.tensor([[0, 0], [0, 4]]), torch.tensor([[0, 4], [0, 0]])):
        # (0, 2) is 2 from both centres: index 0 wins, whichever centre that is
        assert nearest_center(votes, centers)[0] == 0
        assert grouping_module._scan(votes.numpy(), centers.double().numpy())[0] == 0
    assert nearest_center(votes, torch.tensor([[0, 4], [0, 0]]))[1:].tolist() == [1, 0]


def test_nearest_center_equals_dense_argmin_on_many_ties():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        centers = torch.from_numpy(rng.choice(40 * 40, size=int(rng.integers(2, 60)), replace=False))
        centers = torch.stack([centers // 40, centers % 40], 1)
        votes = torch.from_numpy(rng.integers(-20, 60, size=(5000, 2)) / rng.choice([1, 2, 3]))
        # the method and its fallback, the scan, against the dense argmin (first minimum)
        expected = ((centers[None].double() - votes[:, None]) ** 2).sum(-1).argmin(1)
        np.testing.assert_array_equal(nearest_center(votes, centers), expected)
        np.testing.assert_array_equal(grouping_module._scan(votes.numpy(), centers.double().numpy()), expected)


def _vote_sets(rng, centers, size):
    """Votes of several kinds around (K, 2) integer centres inside a size x size square."""
    picks = centers[rng.integers(0, len(centers), 4000)].astype(np.float64)
    return {
        "clustered": picks + rng.normal(0, 1.5, picks.shape),
        "uniform": rng.uniform(-10, size + 10, (4000, 2)),
        "half-pixel lattice": rng.integers(-5, 2 * size + 5, (4000, 2)) / 2,
        "integer lattice": rng.integers(-5, size + 5, (4000, 2)).astype(np.float64),
        "far away": rng.normal(0, 1, (4000, 2)) * 10.0 ** rng.integers(2, 9),
    }


def test_grid_equals_dense_argmin():
    """The pure-cell table against the dense argmin (first minimum), for votes near and far
    from the centres, on lattices where many are exactly equidistant, with duplicate centres."""
    for seed in range(60):
        rng = np.random.default_rng(seed)
        size = int(rng.choice([16, 64, 400]))
        centers = rng.integers(0, size, size=(int(rng.integers(2, 90)), 2))
        if seed % 3 == 0:
            centers = np.concatenate([centers, centers[:2]])  # duplicates: tie everywhere
        centers = centers[np.lexsort((centers[:, 1], centers[:, 0]))]
        centers_t = torch.from_numpy(centers)
        for kind, votes in _vote_sets(rng, centers, size).items():
            votes = torch.from_numpy(votes)
            expected = ((centers_t[None].double() - votes[:, None]) ** 2).sum(-1).argmin(1)
            np.testing.assert_array_equal(nearest_center(votes, centers_t), expected, err_msg=f"seed {seed}, {kind}")


def test_grid_decides_clustered_votes_itself(monkeypatch):
    """Votes 1-2 px from centres some 40 px apart almost never need the fallback: the
    table decides them. (Centres only a few pixels apart leave more to the fallback.)"""
    rng = np.random.default_rng(5)
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(15), indexing="ij"), -1).reshape(-1, 2)
    centers = np.floor((grid + 0.5 + rng.uniform(-0.25, 0.25, grid.shape)) * [50, 33])
    votes = centers[rng.integers(0, len(centers), 20000)] + rng.normal(0, 1.5, (20000, 2))
    left = []
    scan = grouping_module._scan

    def counting_scan(undecided, centers):
        left.append(len(undecided))
        return scan(undecided, centers)

    monkeypatch.setattr(grouping_module, "_scan", counting_scan)
    got = nearest_center(torch.from_numpy(votes), torch.from_numpy(centers)).numpy()
    expected = ((centers[None] - votes[:, None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(got, expected)
    assert sum(left) < 0.05 * len(votes), left


def test_group_pixels_matches_dense_argmin():
    rng = np.random.default_rng(2)
    semantic, heatmap, offsets = random_outputs(rng, "clustered")
    centers = find_instance_centers(heatmap, nms_kernel=3)[0]
    thing = torch.from_numpy(np.isin(semantic, THINGS))
    votes = vote_map(torch.from_numpy(offsets)).flatten(1).T
    expected = (((centers[None].double() - votes[:, None]) ** 2).sum(-1).argmin(1) + 1).reshape(thing.shape) * thing
    assert torch.equal(group_pixels(centers, torch.from_numpy(offsets), thing), expected)
    assert not group_pixels(centers[:0], torch.from_numpy(offsets), thing).any()


def test_pixel_votes_equal_vote_map():
    rng = np.random.default_rng(3)
    offsets = torch.from_numpy(rng.normal(0, 50, (2, 9, 13)).astype(np.float32))
    flat = torch.from_numpy(rng.choice(9 * 13, size=40, replace=False))
    full = vote_map(offsets).flatten(1).T
    assert torch.equal(pixel_votes(offsets, flat), full[flat])
    assert torch.equal(vote_map(offsets)[1, 4, 7], 7 + offsets[1, 4, 7].double())


@pytest.mark.parametrize("categories", [CATS, CategorySet(reversed(list(CATS)))], ids=["sorted", "reversed"])
def test_majority_vote_ties_to_smallest_category(categories):
    instance = np.ones((1, 4), np.int64)
    pan, _ = merge_semantic_and_instances(np.array([[3, 3, 1, 1]]), instance, categories, [0.5], stuff_area=0)
    assert [s.category_id for s in pan.segments] == [1]
    pan, _ = merge_semantic_and_instances(np.array([[3, 3, 3, 1]]), instance, categories, [0.5], stuff_area=0)
    assert [s.category_id for s in pan.segments] == [3] and pan.segments[0].area == 4


def test_square_max_pool_equals_max_pool2d():
    rng = np.random.default_rng(11)
    image = torch.from_numpy(np.round(rng.random((23, 37)) * 8).astype(np.float32))  # many equal values
    for kernel in (1, 3, 7, 41):
        expected = F.max_pool2d(image[None, None], kernel, stride=1, padding=kernel // 2)[0, 0]
        assert torch.equal(square_max_pool(image, kernel), expected)


def test_top_k_keeps_highest_and_breaks_ties_in_raster_order():
    heatmap = np.zeros((3, 15), np.float32)
    heatmap[1, ::3] = [0.5, 0.9, 0.5, 0.5, 0.7]  # isolated peaks at x = 0, 3, 6, 9, 12
    centers, scores = find_instance_centers(heatmap, nms_kernel=3, top_k=3)
    assert centers.tolist() == [[1, 0], [1, 3], [1, 12]]
    assert scores.tolist() == pytest.approx([0.5, 0.9, 0.7])
    assert len(find_instance_centers(heatmap, nms_kernel=3, top_k=None)[0]) == 5
    # a plateau: every pixel equal to its window maximum is a centre
    plateau = np.zeros((4, 4), np.float32)
    plateau[1:3, 1:3] = 0.6
    assert find_instance_centers(plateau, nms_kernel=3)[0].tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    # a value equal to the threshold is not above it
    assert len(find_instance_centers(np.full((4, 4), 0.1, np.float32), threshold=0.1)[0]) == 0


def test_label_divisor_numbers_by_center_order():
    """Instance A's centre comes after B's in raster order although A's first pixel comes first."""
    semantic = np.full((4, 6), 11)
    semantic[:, 0:2] = 1  # A: columns 0-1, centre (3, 0)
    semantic[1:, 3:5] = 1  # B: columns 3-4, centre (1, 3)
    heatmap = np.zeros((4, 6), np.float32)
    heatmap[3, 0], heatmap[1, 3] = 0.9, 0.8
    ys, xs = np.mgrid[:4, :6]
    offsets = np.zeros((2, 4, 6))
    a, b = xs < 2, (xs >= 3) & (semantic == 1)
    offsets[0][a], offsets[1][a] = (3 - ys)[a], (0 - xs)[a]
    offsets[0][b], offsets[1][b] = (1 - ys)[b], (3 - xs)[b]
    result = panoptic_deeplab_postprocess(semantic, heatmap, offsets.astype(np.float32), CATS, nms_kernel=3,
                                          stuff_area=0)
    labels = result.label_divisor_map()
    assert labels[0, 0] == 1002 and labels[1, 3] == 1001 and labels[0, 2] == 11000
    # the package's generic encoder numbers by first pixel: same partition, other numbering
    generic = to_label_divisor(result.panoptic, CATS)
    assert generic[0, 0] == 1001 and generic[1, 3] == 1002
    overflow = panoptic_deeplab_postprocess(semantic, heatmap, offsets.astype(np.float32), CATS, nms_kernel=3,
                                            stuff_area=0, label_divisor=2)
    with pytest.raises(PanopticFormatError, match="category 1 has 2 instances"):
        overflow.label_divisor_map()


# ---------------------------------------------------------------------------------------
# input forms
# ---------------------------------------------------------------------------------------
def test_logits_and_tensors_give_the_same_result():
    rng = np.random.default_rng(7)
    semantic, heatmap, offsets = random_outputs(rng, "mixed")
    # channel order is the category set's order, whatever the ids
    shuffled = CategorySet([CATS.categories[i] for i in rng.permutation(len(CATS))])
    logits = rng.normal(size=(len(CATS), *semantic.shape)).astype(np.float32)
    labels = np.array(shuffled.ids)[logits.argmax(0)]
    from_logits = panoptic_deeplab_postprocess(logits, heatmap, offsets, shuffled, stuff_area=10)
    from_labels = panoptic_deeplab_postprocess(labels, heatmap, offsets, CATS, stuff_area=10)
    from_tensors = panoptic_deeplab_postprocess(torch.from_numpy(labels), torch.from_numpy(heatmap)[None],
                                                torch.from_numpy(offsets), CATS, stuff_area=10)
    assert len(from_labels.centers) > 1
    assert from_logits.panoptic.equals(from_labels.panoptic)
    assert from_tensors.panoptic.equals(from_labels.panoptic)
    np.testing.assert_array_equal(from_logits.instance_map, from_labels.instance_map)
    # flipped (negative-stride) arrays equal their contiguous copies
    flipped = panoptic_deeplab_postprocess(labels[::-1], heatmap[::-1], offsets[:, ::-1], CATS, stuff_area=10)
    copied = panoptic_deeplab_postprocess(labels[::-1].copy(), heatmap[::-1].copy(), offsets[:, ::-1].copy(), CATS,
                                          stuff_area=10)
    assert flipped.panoptic.equals(copied.panoptic)
    # half-precision offsets widen exactly: the same votes as their float32 values
    half = offsets.astype(np.float16)
    from_half = panoptic_deeplab_postprocess(labels, heatmap, torch.from_numpy(half), CATS, stuff_area=10)
    from_widened = panoptic_deeplab_postprocess(labels, heatmap, half.astype(np.float32), CATS, stuff_area=10)
    assert from_half.panoptic.equals(from_widened.panoptic)
    np.testing.assert_array_equal(from_half.votes, from_widened.votes)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint64])
def test_semantic_dtypes_give_the_same_result(dtype):
    rng = np.random.default_rng(4)
    semantic, heatmap, offsets = random_outputs(rng, "random")
    expected = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, stuff_area=10)
    result = panoptic_deeplab_postprocess(semantic.astype(dtype), heatmap, offsets, CATS, stuff_area=10)
    assert result.panoptic.equals(expected.panoptic)
    np.testing.assert_array_equal(result.instance_map, expected.instance_map)


def test_ids_outside_the_direct_lookup():
    """Category ids beyond the direct lookup table, and a negative void label, are shifted
    to the table's range first; the result is the one with the usual ids."""
    shift = 100_000
    far = CategorySet([Category(c.id + shift, c.name, c.isthing) for c in CATS])
    for seed in range(10):
        rng = np.random.default_rng(seed)
        semantic, heatmap, offsets = random_outputs(rng, CASES[seed % len(CASES)])
        semantic = semantic.copy()
        semantic[rng.random(semantic.shape) < 0.05] = 0  # void
        usual = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, stuff_area=16, void_label=0)
        shifted = np.where(semantic == 0, -1, semantic + shift)
        result = panoptic_deeplab_postprocess(shifted, heatmap, offsets, far, stuff_area=16, void_label=-1)
        np.testing.assert_array_equal(result.panoptic.id_map, usual.panoptic.id_map)
        assert [s.category_id - shift for s in result.panoptic.segments] == \
            [s.category_id for s in usual.panoptic.segments]
        labels = usual.label_divisor_map()
        expected = dense_reference(np.where(semantic == 0, 13, semantic), heatmap, offsets, CATS, stuff_area=16)[0]
        np.testing.assert_array_equal(labels[semantic != 0], expected[semantic != 0])
    with pytest.raises(PanopticFormatError, match=r"category ids \[5, 100016\]"):
        bad = np.full((4, 6), shift + 11)
        bad[0, 0], bad[1, 1] = shift + 16, 5
        panoptic_deeplab_postprocess(bad, np.zeros((4, 6), np.float32), np.zeros((2, 4, 6), np.float32), far)


def test_tensor_inputs_match_dense_reference():
    for seed in range(2 * len(CASES)):
        rng = np.random.default_rng([seed, 99])
        case = CASES[seed % len(CASES)]
        semantic, heatmap, offsets = random_outputs(rng, case)
        params = random_parameters(rng, case)
        expected, centers, scores, instance = dense_reference(semantic, heatmap, offsets, CATS, **params)
        result = panoptic_deeplab_postprocess(torch.from_numpy(semantic), torch.from_numpy(heatmap),
                                              torch.from_numpy(offsets), CATS, **params)
        where = f"case {case}, seed {seed}"
        np.testing.assert_array_equal(result.centers, centers, err_msg=where)
        np.testing.assert_array_equal(result.instance_map, instance, err_msg=where)
        np.testing.assert_array_equal(result.label_divisor_map(), expected, err_msg=where)
        result.panoptic.validate(CATS, source=where, check_statistics=True)
    logits = np.random.default_rng(1).normal(size=(len(CATS), 24, 32)).astype(np.float32)
    result = panoptic_deeplab_postprocess(torch.from_numpy(logits), torch.from_numpy(heatmap),
                                          torch.from_numpy(offsets), CATS, stuff_area=10)
    labels = np.array(CATS.ids)[logits.argmax(0)]
    expected = dense_reference(labels, heatmap, offsets, CATS, stuff_area=10)[0]
    np.testing.assert_array_equal(result.label_divisor_map(), expected)
    pan, segment_of = merge_semantic_and_instances(torch.from_numpy(labels), torch.from_numpy(result.instance_map),
                                                   CATS, result.center_scores, stuff_area=10)
    assert pan.equals(result.panoptic) and segment_of.tolist() == result.center_segment.tolist()
    semantic, heatmap, offsets = hand_example()
    result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, nms_kernel=3, stuff_area=6)
    assert result.label_divisor_map()[1].tolist() == [1001, 1001, 11000, 11000, 2001, 2001]
    with pytest.raises(PanopticFormatError, match=r"category ids \[7\]"):
        semantic[0, 0] = 7
        panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_centres_in_every_floating_dtype(dtype):
    """Threshold and NMS in the heatmap's own dtype, as torch's max_pool2d and comparison do."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        heatmap = torch.from_numpy(ndimage.gaussian_filter(rng.random((20, 30)), 1.0)).to(dtype)
        heatmap = heatmap / heatmap.max()
        threshold = float(rng.uniform(0.3, 0.9))
        for kernel in (1, 3, 7):
            pooled = F.max_pool2d(heatmap[None, None], kernel, 1, kernel // 2)[0, 0]
            assert torch.equal(square_max_pool(heatmap, kernel), pooled)
            expected = ((heatmap > threshold) & (heatmap == pooled)).nonzero()
            centers, scores = find_instance_centers(heatmap, threshold, kernel, top_k=None)
            assert torch.equal(centers, expected) and scores.dtype == dtype
            assert torch.equal(scores, heatmap[tuple(expected.T)])


def test_void_label_pixels_stay_void():
    semantic, heatmap, offsets = hand_example()
    semantic = semantic.copy()
    semantic[0, :3] = 255
    semantic[1, 0] = 255  # a thing pixel turned void: not grouped
    result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, nms_kernel=3, stuff_area=0,
                                          void_label=255)
    labels = result.label_divisor_map()
    assert (labels[semantic == 255] == -1).all() and (result.instance_map[semantic == 255] == 0).all()
    assert labels[0, 3] == 11000 and labels[1, 1] == 1001


def test_presets_are_the_published_values():
    assert dict(CITYSCAPES) == dict(threshold=0.1, nms_kernel=7, top_k=200, stuff_area=2048, label_divisor=1000)
    assert COCO["nms_kernel"] == 41 and COCO["stuff_area"] == 4096
    semantic, heatmap, offsets = hand_example()
    # the 41 x 41 window suppresses the 0.8 peak: all 8 thing pixels join the 0.9 centre, a
    # 4:4 vote between disc (1) and box (2) that the smaller id wins; all stuff is below 4096
    result = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, **COCO)
    assert result.centers.tolist() == [[1, 0]]
    assert [(s.category_id, s.area) for s in result.panoptic.segments] == [(1, 8)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        semantic, heatmap, offsets = random_outputs(rng, CASES[seed % len(CASES)], shape=(96, 128))
        cpu = panoptic_deeplab_postprocess(semantic, heatmap, offsets, CATS, stuff_area=50)
        gpu = panoptic_deeplab_postprocess(*(torch.from_numpy(a).cuda() for a in (semantic, heatmap, offsets)),
                                           CATS, stuff_area=50)
        assert gpu.panoptic.equals(cpu.panoptic)
        np.testing.assert_array_equal(gpu.instance_map, cpu.instance_map)


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
def _bad(name):
    semantic, heatmap, offsets = hand_example()
    semantic, heatmap, offsets = semantic.copy(), heatmap.copy(), offsets.copy()
    kwargs = {}
    if name == "shape":
        heatmap = np.zeros((4, 5), np.float32)
    elif name == "three offset channels":
        offsets = np.zeros((3, 4, 6), np.float32)
    elif name == "even kernel":
        kwargs["nms_kernel"] = 4
    elif name == "zero kernel":
        kwargs["nms_kernel"] = 0
    elif name == "nan heatmap":
        heatmap[2, 3] = np.nan
    elif name == "inf offsets":
        offsets[1, 0, 2] = -np.inf
    elif name == "nan logits":
        semantic = np.zeros((len(CATS), 4, 6), np.float32)
        semantic[4, 1, 1] = np.nan
    elif name == "logit channels":
        semantic = np.zeros((3, 4, 6), np.float32)
    elif name == "unknown category":
        semantic[3, 4] = 7
    elif name == "negative top_k":
        kwargs["top_k"] = -1
    elif name == "float labels":
        semantic = semantic.astype(np.float32)
    elif name == "integer offsets":
        offsets = offsets.astype(np.int64)
    elif name == "empty image":
        semantic, heatmap, offsets = semantic[:0], heatmap[:0], offsets[:, :0]
    elif name == "void label is a category":
        kwargs["void_label"] = 11
    return (semantic, heatmap, offsets, CATS), kwargs


@pytest.mark.parametrize("name, error, words", [
    ("shape", ValueError, "sizes differ"),
    ("three offset channels", ValueError, "exactly two channels"),
    ("even kernel", ValueError, "positive odd"),
    ("zero kernel", ValueError, "positive odd"),
    ("nan heatmap", ValueError, r"nan in the center heatmap at index \(2, 3\)"),
    ("inf offsets", ValueError, r"-inf in the offsets at index \(1, 0, 2\)"),
    ("nan logits", ValueError, r"nan in the semantic logits at index \(4, 1, 1\)"),
    ("logit channels", ValueError, "3 channels but there are 9 categories"),
    ("unknown category", PanopticFormatError, r"image 17: .*category ids \[7\]"),
    ("negative top_k", ValueError, "top_k must be a positive integer"),
    ("float labels", ValueError, r"semantic logits must be \(C, H, W\)"),
    ("integer offsets", ValueError, "must be floating point"),
    ("empty image", ValueError, "empty"),
    ("void label is a category", ValueError, "void_label 11 is also a category"),
])
def test_bad_input_gets_one_clear_error(name, error, words):
    args, kwargs = _bad(name)
    with pytest.raises(error, match=words):
        panoptic_deeplab_postprocess(*args, source="image 17", **kwargs)


def test_merge_rejects_instances_on_stuff():
    with pytest.raises(ValueError, match="not a thing category"):
        merge_semantic_and_instances(np.array([[1, 11]]), np.array([[1, 1]]), CATS, [0.5])
