"""Chapter 8's checkers accept the reference solutions and name the typical wrong answers."""
import itertools

import numpy as np
import pytest
import torch

from panopticlab.exercises import ExerciseError, ch08


# --- 8.1: the matching cost -----------------------------------------------------------------------------
def matching_cost(class_probs, mask_probs, gt_labels, gt_masks, w_class, w_mask, w_dice, sign=-1.0, log=False,
                  one_minus=True, smooth=1.0, two=2.0, bce="mean", transpose=False):
    """The reference solution written pair by pair, and its typical mistakes."""
    cost = np.zeros((len(class_probs), len(gt_labels)))
    for q, g in itertools.product(range(len(class_probs)), range(len(gt_labels))):
        p, t = mask_probs[q], gt_masks[g]
        prob = class_probs[q, gt_labels[g]]
        pixel_ce = -(t * np.log(p) + (0 if bce == "positive" else (1 - t) * np.log(1 - p)))
        ce = pixel_ce.sum() if bce == "sum" else pixel_ce.mean()
        dice = (two * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)
        cost[q, g] = (sign * w_class * (np.log(prob) if log else prob) + w_mask * ce
                      + w_dice * (1 - dice if one_minus else dice))
    return cost.T if transpose else cost


def test_matching_cost_accepts_the_solution_and_torch():
    assert ch08.check_matching_cost(matching_cost)

    def vectorised(class_probs, mask_probs, gt_labels, gt_masks, w_class, w_mask, w_dice):
        p, t = torch.tensor(mask_probs), torch.tensor(gt_masks)
        ce = torch.nn.functional.binary_cross_entropy(p[:, None].expand(-1, len(t), -1),
                                                      t[None].expand(len(p), -1, -1), reduction="none").mean(-1)
        dice = (2 * p @ t.T + 1) / (p.sum(1)[:, None] + t.sum(1)[None] + 1)
        return -w_class * torch.tensor(class_probs)[:, gt_labels] + w_mask * ce + w_dice * (1 - dice)

    assert ch08.check_matching_cost(vectorised)


@pytest.mark.parametrize("mistake, hint", [
    (dict(sign=1.0), r"the class term is subtracted \(- w_class \* p\)"),
    (dict(log=True), "not its log"),
    (dict(one_minus=False), "1 - Dice"),
    (dict(smooth=0.0), r"smoothed: \(2 sum\(p t\) \+ 1\)"),
    (dict(two=1.0), "twice the overlap"),
    (dict(bce="sum"), "the mean over the P pixels, not their sum"),
    (dict(bce="positive"), "the pixels outside the segment count too"),
    (dict(transpose=True), r"\(G, Q\) = \(3, 5\) with rows and columns swapped"),
])
def test_matching_cost_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_matching_cost(lambda *args: matching_cost(*args, **mistake))


@pytest.mark.parametrize("order, hint", [((0, 2, 1), "w_mask .* and w_dice .*: you swapped them"),
                                         ((1, 0, 2), "w_class .* and w_mask .*: you swapped them")])
def test_matching_cost_names_swapped_weights(order, hint):
    def swapped(*args):
        weights = args[4:]
        return matching_cost(*args[:4], *(weights[i] for i in order))

    with pytest.raises(ExerciseError, match=hint):
        ch08.check_matching_cost(swapped)


def test_matching_cost_case_separates_the_mistakes():
    """On the case, with the second weights, every misreading is its own answer, far from the right one."""
    class_probs, mask_probs, labels, masks = ch08.matching_case()
    weights = ch08.COST_WEIGHTS[1]
    right = ch08.package_cost(weights)
    np.testing.assert_allclose(matching_cost(class_probs, mask_probs, labels, masks, *weights), right, atol=1e-5)
    answers = [ch08._cost_variant(class_probs, mask_probs, labels, masks, *weights, **variant)
               for variant in ch08.COST_MISTAKES.values()]
    for i, wrong in enumerate(answers):
        assert np.abs(wrong - right).max() > 0.05
        assert all(np.abs(wrong - other).max() > 0.05 for other in answers[i + 1:])
    assert ch08.COST_WEIGHTS[0] == (2.0, 5.0, 5.0)  # Mask2Former's published weights


def test_matching_cost_explains_the_format_and_unfinished_work():
    with pytest.raises(ExerciseError, match=r"return the cost as a \(Q, G\) array of floats"):
        ch08.check_matching_cost(lambda *args: "cost")
    with pytest.raises(ExerciseError, match=r"return the \(Q, G\) = \(5, 3\) cost, got shape \(5,\)"):
        ch08.check_matching_cost(lambda *args: matching_cost(*args).sum(1))
    with pytest.raises(ExerciseError, match="not implemented"):
        ch08.check_matching_cost(lambda *args: (_ for _ in ()).throw(NotImplementedError))


def test_matching_cost_refuses_the_package():
    from panopticlab.models import set_matching

    def package(class_probs, mask_probs, gt_labels, gt_masks, w_class, w_mask, w_dice):
        config = set_matching.SetLossConfig(class_weight=w_class, mask_weight=w_mask, dice_weight=w_dice,
                                            mask_loss="bce")
        return set_matching.matching_cost(torch.tensor(class_probs).log(), torch.tensor(mask_probs).logit(),
                                          torch.tensor(gt_labels), torch.tensor(gt_masks), config)

    def with_dice(class_probs, mask_probs, gt_labels, gt_masks, w_class, w_mask, w_dice):
        dice = set_matching.dice_cost(torch.tensor(mask_probs).logit(), torch.tensor(gt_masks)).numpy()
        return matching_cost(class_probs, mask_probs, gt_labels, gt_masks, w_class, w_mask, 0.0) + w_dice * dice

    for answer, name in ((package, "models.set_matching.matching_cost"),
                         (with_dice, "models.set_matching.dice_cost"),
                         (lambda *args: ch08.package_cost(args[4:]), "ch08.package_cost")):
        with pytest.raises(ExerciseError, match=f"without {name}"):
            ch08.check_matching_cost(answer)
    assert package(*ch08.matching_case(), 2.0, 5.0, 5.0).shape == (5, 3)  # put back afterwards


# --- 8.2: the inference rule ----------------------------------------------------------------------------
def panoptic_inference(class_probs, mask_probs, is_thing, score_threshold, overlap_threshold, keep_no_object=False,
                       at_threshold=False, mask_only=False, all_queries=False, overlap=True, overlap_equal=False,
                       overlap_within=False, every_won=False, merge_stuff=True, merge_things=False,
                       mask_above=False):
    """The reference solution, and its typical mistakes (a kept "no object" looks up is_thing[K])."""
    num_classes = class_probs.shape[1] - 1
    scores, classes = class_probs.max(1), class_probs.argmax(1)
    passes = scores >= score_threshold if at_threshold else scores > score_threshold
    kept = np.flatnonzero(passes & ((classes != num_classes) | keep_no_object))
    id_map, segment_classes, by_class = np.zeros(mask_probs.shape[1:], np.int64), {}, {}
    competing = np.arange(len(scores)) if all_queries else kept
    if len(competing) == 0:
        return id_map, segment_classes
    weighted = mask_probs[competing] if mask_only else scores[competing, None, None] * mask_probs[competing]
    owner = competing[np.argmax(weighted, axis=0)]
    for q in kept:
        won, mask = owner == q, (mask_probs[q] > 0.5 if mask_above else mask_probs[q] >= 0.5)
        pixels = won if every_won else won & mask
        if mask.sum() == 0 or pixels.sum() == 0:
            continue
        ratio = (won & mask).sum() / mask.sum() if overlap_within else won.sum() / mask.sum()
        if overlap and (ratio <= overlap_threshold if overlap_equal else ratio < overlap_threshold):
            continue
        c = int(classes[q])
        thing = is_thing[c]
        if ((not thing and merge_stuff) or (thing and merge_things)) and c in by_class:
            segment = by_class[c]
        else:
            segment = by_class[c] = len(segment_classes) + 1
            segment_classes[segment] = c
        id_map[pixels] = segment
    return id_map, segment_classes


def test_inference_accepts_the_solution_with_any_ids():
    assert ch08.check_panoptic_inference(panoptic_inference)

    def renumbered(*args):
        id_map, classes = panoptic_inference(*args)
        return torch.tensor(np.where(id_map > 0, 100 - id_map, 0)), {100 - k: v for k, v in classes.items()}

    assert ch08.check_panoptic_inference(renumbered)


@pytest.mark.parametrize("mistake, hint", [
    (dict(at_threshold=True), r"the score threshold is strict: .* \(use >, not >=\)"),
    (dict(mask_only=True), "not of highest mask probability"),
    (dict(all_queries=True), "only the kept queries compete"),
    (dict(overlap=False), "won less than overlap_threshold of its mask"),
    (dict(overlap_equal=True), r"exactly the threshold is kept \(use <, not <=\)"),
    (dict(overlap_within=True), "not only the won pixels inside its mask"),
    (dict(every_won=True), "only the won pixels inside its own mask"),
    (dict(merge_stuff=False), "stuff queries of one class make one segment"),
    (dict(merge_things=True), "each thing query is a segment of its own"),
    (dict(mask_above=True), r"0.5 included \(use >=, not >\)"),
])
def test_inference_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_panoptic_inference(lambda *args: panoptic_inference(*args, **mistake))


def test_inference_explains_a_kept_no_object_query():
    with pytest.raises(ExerciseError, match=r"IndexError .* 'no object' \(index K\): such a query is dropped"):
        ch08.check_panoptic_inference(lambda *args: panoptic_inference(*args, keep_no_object=True))

    def thing_list(class_probs, mask_probs, is_thing, score_threshold, overlap_threshold):
        # is_thing extended so that "no object" looks like stuff: no crash, a segment of class K
        return panoptic_inference(class_probs, mask_probs, np.append(is_thing, False), score_threshold,
                                  overlap_threshold, keep_no_object=True)

    with pytest.raises(ExerciseError, match="'no object' .* is dropped, whatever its score"):
        ch08.check_panoptic_inference(thing_list)


def test_inference_cases_separate_the_mistakes():
    """Every misreading fails on the first case but the strict score threshold (the low case's); on the
    first case each gives its own answer, and that case's answer is the hand-worked one."""
    case = ch08.inference_case()
    right = ch08.package_inference(ch08._CASE, ch08.CASE_THRESHOLDS)
    assert right == ch08._segments(*panoptic_inference(*case))
    assert [(c, len(p)) for c, p in right] == [(0, 7), (0, 4), (1, 4), (2, 41)]  # sorted by (class, pixels)
    answers = [str(ch08._inference_variant(*case, **variant)) for variant in ch08.INFERENCE_MISTAKES.values()
               if variant != dict(at_threshold=True)]
    assert str(right) not in answers and len(set(answers)) == len(answers)
    low = ch08.inference_case_low()
    assert low[0][1].max() == low[3] == 0.5  # the thing's score is exactly the threshold
    assert ch08._inference_variant(*low, at_threshold=True) != ch08.package_inference(ch08._CASE_LOW,
                                                                                     ch08.CASE_LOW_THRESHOLDS)


def test_inference_cases_have_no_near_ties():
    """The student works in float64 on the package's float32 probabilities: no pixel's best two kept
    queries may be nearly equal, nor a score or an area ratio nearly a threshold unless exactly so."""
    for class_probs, mask_probs, _, score_threshold, _ in (ch08.inference_case(), ch08.inference_case_low()):
        scores = class_probs.max(1)
        assert np.all((np.abs(scores - score_threshold) > 1e-3) | (scores == score_threshold))
        kept = (class_probs.argmax(1) < class_probs.shape[1] - 1) & (scores > score_threshold)
        weighted = np.sort(scores[kept, None, None] * mask_probs[kept], axis=0)
        assert len(weighted) < 2 or (weighted[-1] - weighted[-2]).min() > 5e-4
        assert np.all((np.abs(mask_probs - 0.5) > 1e-3) | (mask_probs == 0.5))


def test_inference_explains_the_format_and_unfinished_work():
    for answer in (lambda *args: panoptic_inference(*args)[0],  # the id map alone
                   lambda *args: (panoptic_inference(*args)[0].astype(float), panoptic_inference(*args)[1]),
                   lambda *args: (panoptic_inference(*args)[0][:, :-1], panoptic_inference(*args)[1]),
                   lambda *args: (panoptic_inference(*args)[0], [0, 0, 1, 2])):
        with pytest.raises(ExerciseError, match=r"return \(id_map, segment_classes\): an \(H, W\) = \(6, 10\) integer"):
            ch08.check_panoptic_inference(answer)
    with pytest.raises(ExerciseError, match=r"the ids \[4\] are on the map but not in segment_classes"):
        ch08.check_panoptic_inference(lambda *args: (panoptic_inference(*args)[0],
                                                     {k: v for k, v in panoptic_inference(*args)[1].items() if k < 4}))
    with pytest.raises(ExerciseError, match="not implemented"):
        ch08.check_panoptic_inference(lambda *args: (_ for _ in ()).throw(NotImplementedError))


def test_inference_refuses_the_package():
    from panopticlab import postprocess
    from panopticlab.data import Category, CategorySet

    def package(class_probs, mask_probs, is_thing, score_threshold, overlap_threshold):
        categories = CategorySet([Category(k + 1, str(k), bool(t)) for k, t in enumerate(is_thing)])
        config = postprocess.MaskInferenceConfig(score_threshold, overlap_threshold)
        result = postprocess.mask_former_panoptic(np.log(class_probs), np.log(mask_probs / (1 - mask_probs)),
                                                  categories, config)
        return result.panoptic.id_map, {s.id: s.category_id - 1 for s in result.panoptic.segments}

    for answer, name in ((package, "postprocess.mask_former_panoptic"),
                         (lambda *args: ch08.package_inference(ch08._CASE, args[3:]), "ch08.package_inference"),
                         (lambda *args: ch08._inference_variant(*args), "ch08._inference_variant")):
        with pytest.raises(ExerciseError, match=f"without {name}"):
            ch08.check_panoptic_inference(answer)
    assert len(package(*ch08.inference_case())[1]) == 4  # put back afterwards


# --- 8.3: the assignment --------------------------------------------------------------------------------
def assign(cost, how="least"):
    """The reference solution (brute force), and its typical mistakes."""
    num_queries, num_segments = cost.shape
    if how in ("least", "most", "first", "swapped"):
        pick = max if how == "most" else min
        queries = range(num_segments) if how == "first" else range(num_queries)
        best = pick(itertools.permutations(queries, num_segments),
                    key=lambda p: cost[list(p), range(num_segments)].sum())
        rows, cols = np.array(best), np.arange(num_segments)
        return (cols, rows) if how == "swapped" else (rows, cols)
    if how == "row_argmin":
        return np.arange(num_queries), cost.argmin(1)
    if how == "column_argmin":
        return cost.argmin(0), np.arange(num_segments)
    rows, cols = [], []
    if how == "greedy_rows":
        for q in range(num_queries):
            free = [g for g in range(num_segments) if g not in cols]
            if free:
                rows.append(q)
                cols.append(min(free, key=lambda g: cost[q, g]))
    else:  # the smallest entry first
        for index in np.argsort(cost, axis=None):
            q, g = np.unravel_index(index, cost.shape)
            if q not in rows and g not in cols:
                rows.append(int(q))
                cols.append(int(g))
    return np.array(rows), np.array(cols)


def test_assignment_accepts_the_solution_in_any_order():
    assert ch08.check_assignment(assign)
    assert ch08.check_assignment(lambda cost: tuple(v[::-1].tolist() for v in assign(cost)))
    assert ch08.check_assignment(lambda cost: tuple(torch.tensor(v) for v in assign(cost)))


@pytest.mark.parametrize("how, hint", [
    ("row_argmin", "gives a segment to several queries"),
    ("column_argmin", "can give a query two segments"),
    ("greedy_rows", "greedy, query by query"),
    ("greedy_smallest", "greedy, the smallest entry first"),
    ("most", "you maximised it"),
    ("first", r"not only the first G"),
    ("swapped", r"\(queries, segments\), not \(segments, queries\)"),
])
def test_assignment_names_the_mistake(how, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch08.check_assignment(lambda cost: assign(cost, how))


def test_assignment_case_is_the_hand_worked_answer():
    """The optimum is unique, uses query 3 (past the first G) and differs from every misreading."""
    cost = ch08.assignment_case()
    totals = sorted(cost[list(p), range(3)].sum() for p in itertools.permutations(range(4), 3))
    assert totals[0] == 11.0 and totals[1] > 11.0
    rows, cols = ch08.hungarian_matching(torch.tensor(cost))
    assert set(zip(rows.tolist(), cols.tolist())) == {(1, 1), (2, 0), (3, 2)}
    answers = [frozenset(zip(*(v.tolist() for v in assign(cost, how)))) for how in
               ("least", "most", "first", "row_argmin", "column_argmin", "greedy_rows", "greedy_smallest")]
    assert len(set(answers)) == len(answers)
    assert [sum(cost[q, g] for q, g in answers[i]) for i in (5, 6)] == [20.0, 16.0]


def test_assignment_explains_the_format_and_errors():
    with pytest.raises(ExerciseError, match=r"return \(rows, cols\), two 1-D integer arrays"):
        ch08.check_assignment(lambda cost: 11.0)
    with pytest.raises(ExerciseError, match=r"return \(rows, cols\)"):
        ch08.check_assignment(lambda cost: tuple(v.astype(float) for v in assign(cost)))
    with pytest.raises(ExerciseError, match="every one of the G = 3 segments"):
        ch08.check_assignment(lambda cost: tuple(v[:2] for v in assign(cost)))
    with pytest.raises(ExerciseError, match="not implemented"):
        ch08.check_assignment(lambda cost: (_ for _ in ()).throw(NotImplementedError))


def test_assignment_refuses_scipy_and_the_package():
    import scipy.optimize

    from panopticlab.models import set_matching

    def imported_inside(cost):
        from scipy.optimize import linear_sum_assignment

        return linear_sum_assignment(cost)

    for answer, name in ((lambda cost: scipy.optimize.linear_sum_assignment(cost),
                          "scipy.optimize.linear_sum_assignment"),
                         (imported_inside, "scipy.optimize.linear_sum_assignment"),
                         (lambda cost: set_matching.hungarian_matching(torch.tensor(cost)),
                          "models.set_matching.hungarian_matching")):
        with pytest.raises(ExerciseError, match=f"without {name}"):
            ch08.check_assignment(answer)
    assert imported_inside(ch08.assignment_case())[1].tolist() == [1, 0, 2]  # put back afterwards
