"""Chapter 3's checkers accept the reference solutions and explain wrong answers."""
import numpy as np
import pytest

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.exercises import ExerciseError, ch03
from panopticlab.postprocess import heuristic_merge
from panopticlab.postprocess.ablations import connected_component_instances


def claim(masks, scores, score_threshold, overlap_threshold, order=None):
    owner = np.full(masks.shape[1:], -1)
    order = np.argsort(-scores, kind="stable") if order is None else order
    for i in order:
        if scores[i] < score_threshold or masks[i].sum() == 0:
            continue
        if ((owner >= 0) & masks[i]).sum() / masks[i].sum() > overlap_threshold:
            continue
        owner[masks[i] & (owner < 0)] = i
    return owner


def fill(owner, semantic, categories, limit, count_taken=False):
    out = np.full(owner.shape, 255)
    for c in categories.stuff_ids:
        free = (semantic == c) & (owner < 0)
        area = (semantic == c).sum() if count_taken else free.sum()
        if free.any() and area >= limit:
            out[free] = c
    return out


def test_claim_checker():
    assert ch03.check_claim_pixels(claim)
    with pytest.raises(ExerciseError, match="more confident one claims first"):
        ch03.check_claim_pixels(lambda m, s, st, ot: claim(m, s, st, ot, order=np.argsort(s, kind="stable")))
    with pytest.raises(ExerciseError, match="should have been dropped"):
        ch03.check_claim_pixels(lambda m, s, st, ot: claim(m, s, st, 1.0))
    with pytest.raises(ExerciseError, match="below the score threshold"):
        ch03.check_claim_pixels(lambda m, s, st, ot: claim(m, s, 0.0, ot))
    with pytest.raises(ExerciseError, match="score threshold 0.3.*passes the threshold 0.3"):
        ch03.check_claim_pixels(lambda m, s, st, ot: claim(m, s, 0.5, ot))  # the threshold hard-coded
    with pytest.raises(ExerciseError, match="with tied scores.*the one listed first claims first"):
        # ties broken against input order; distinct scores still in the right order
        ch03.check_claim_pixels(lambda m, s, st, ot: claim(m, s, st, ot, order=np.lexsort((-np.arange(len(s)), -s))))


def test_fill_checker():
    assert ch03.check_fill_stuff(fill)
    with pytest.raises(ExerciseError, match="Count only the"):
        ch03.check_fill_stuff(lambda o, s, c, limit: fill(o, s, c, limit, count_taken=True))
    with pytest.raises(ExerciseError, match="things win over stuff"):
        ch03.check_fill_stuff(lambda o, s, c, limit: np.where(o >= 0, s, fill(o, s, c, limit)))


def test_connected_component_instances_merge_touching_objects():
    semantic = np.full((6, 8), 11)
    semantic[1:3, 1:3] = 1
    semantic[1:3, 3:5] = 1   # touches the first disc: one component
    semantic[4:6, 6:8] = 2
    masks, scores, category_ids = connected_component_instances(semantic, CATS)
    assert masks.shape == (2, 6, 8) and category_ids.tolist() == [1, 2] and (scores == 1).all()
    assert masks[0].sum() == 8
    merged = heuristic_merge(semantic, masks, scores, category_ids, CATS, stuff_area_limit=0).panoptic
    assert len(merged.segments) == 3
    empty = connected_component_instances(np.full((3, 3), 11), CATS)
    assert empty[0].shape == (0, 3, 3)


def test_best_threshold_checker():
    def fake_score(score_threshold):  # PQ peaks at 0.3
        return {"All": {"pq": 0.6 - (score_threshold - 0.3) ** 2}}

    assert ch03.check_best_threshold(0.3, fake_score)
    assert ch03.check_best_threshold(np.float64(0.30000000000000004), fake_score)
    with pytest.raises(ExerciseError, match="threshold 0.5 gives PQ 56.00, but 0.3 gives 60.00"):
        ch03.check_best_threshold(0.5, fake_score)
    with pytest.raises(ExerciseError, match="not one of the candidates"):
        ch03.check_best_threshold(0.35, fake_score)


def test_claim_checker_rejects_each_boundary_misreading():
    def claim_with(score_ok=lambda s, t: s >= t, drop=lambda f, t: f > t, count_dropped=False):
        def fn(masks, scores, score_threshold, overlap_threshold):
            owner = np.full(masks.shape[1:], -1)
            seen = np.zeros(masks.shape[1:], bool)
            for i in np.argsort(-scores, kind="stable"):
                area = masks[i].sum()
                if not score_ok(scores[i], score_threshold) or area == 0:
                    continue
                taken = seen if count_dropped else owner >= 0
                fraction = (masks[i] & taken).sum() / area
                seen |= masks[i]  # every visited mask, kept or not: the misreading
                if drop(fraction, overlap_threshold):
                    continue
                owner[masks[i] & (owner < 0)] = i
            return owner
        return fn

    assert ch03.check_claim_pixels(claim_with())
    with pytest.raises(ExerciseError, match="score equal to the threshold.*only scores \\*below\\* it are dropped"):
        ch03.check_claim_pixels(claim_with(score_ok=lambda s, t: s > t))
    with pytest.raises(ExerciseError, match="exactly half.*only \\*more\\* than the overlap threshold"):
        ch03.check_claim_pixels(claim_with(drop=lambda f, t: f >= t))
    with pytest.raises(ExerciseError, match="after a dropped instance.*took no pixels"):
        ch03.check_claim_pixels(claim_with(count_dropped=True))

    def one_based(masks, scores, st, ot):
        owner = claim(masks, scores, st, ot)
        return np.where(owner >= 0, owner + 1, 0)

    with pytest.raises(ExerciseError, match="input indices from 0, and -1"):
        ch03.check_claim_pixels(one_based)

    def python_division(masks, scores, st, ot):
        for m in masks:
            _ = int((m & m).sum()) / int(m.sum())
        return claim(masks, scores, st, ot)

    with pytest.raises(ExerciseError, match="division by zero. An empty mask"):
        ch03.check_claim_pixels(python_division)


def test_fill_checker_rejects_each_boundary_misreading():
    from scipy import ndimage

    def strictly_more(o, s, c, limit):
        out = np.full(o.shape, 255)
        for k in c.stuff_ids:
            free = (s == k) & (o < 0)
            if free.any() and free.sum() > limit:
                out[free] = k
        return out

    def per_region(o, s, c, limit):
        out = np.full(o.shape, 255)
        for k in c.stuff_ids:
            regions, n = ndimage.label((s == k) & (o < 0))
            for r in range(1, n + 1):
                if (regions == r).sum() >= limit:
                    out[regions == r] = k
        return out

    with pytest.raises(ExerciseError, match="area equal to the limit.*\\*fewer\\* than the limit"):
        ch03.check_fill_stuff(strictly_more)
    with pytest.raises(ExerciseError, match="two regions.*per category over the whole image"):
        ch03.check_fill_stuff(per_region)
    with pytest.raises(ExerciseError, match="half covered by an instance.*Count only the free pixels"):
        ch03.check_fill_stuff(lambda o, s, c, limit: fill(o, s, c, limit, count_taken=True))


def test_best_threshold_checker_accepts_every_tied_best_and_names_misreadings():
    def tied_score(score_threshold):  # 0.3 and 0.4 tie for the best PQ; Things peak at 0.7
        pq = {0.3: 0.62, 0.4: 0.62}.get(score_threshold, 0.5 - abs(score_threshold - 0.35))
        return {"All": {"pq": pq}, "Things": {"pq": 1 - abs(score_threshold - 0.7)}, "Stuff": {"pq": 0.9}}

    assert ch03.check_best_threshold(0.3, tied_score)
    assert ch03.check_best_threshold(0.4, tied_score)
    with pytest.raises(ExerciseError, match="maximises PQ of Things; .*All categories"):
        ch03.check_best_threshold(0.7, tied_score)
    with pytest.raises(ExerciseError, match="That is a PQ"):
        ch03.check_best_threshold(0.62, tied_score)
    with pytest.raises(ExerciseError, match="position in the list.*0.3 at that position"):
        ch03.check_best_threshold(2, tied_score)

    def plain(score_threshold):
        return {"All": {"pq": 0.6 - (score_threshold - 0.3) ** 2}}

    with pytest.raises(ExerciseError, match="lowest PQ"):
        ch03.check_best_threshold(0.9, plain)
