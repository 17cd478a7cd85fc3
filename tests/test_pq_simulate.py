"""The simulated scenes and predictions that the PQ tests, the benchmark and chapter 2 use."""
import numpy as np
import pytest

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.metrics import evaluate_pairs, evaluate_thresholds, match_segments
from panopticlab.metrics.simulate import Scene, Shape, perturb_scene, random_pair, random_scene, render


def test_rendered_scenes_are_valid_and_deterministic():
    for seed in range(4):
        gt, pred = random_pair(np.random.default_rng(seed), (60, 80), scene_options={"crowd_probability": 0.5})
        again, _ = random_pair(np.random.default_rng(seed), (60, 80), scene_options={"crowd_probability": 0.5})
        for segmentation in (gt, pred):
            segmentation.validate(CATS)
            assert segmentation.equals(segmentation.with_statistics())  # areas and boxes are right
        assert gt.equals(again)
        assert not any(s.iscrowd for s in pred.segments)


def test_one_crowd_region_per_category_by_default():
    rng = np.random.default_rng(1)
    for _ in range(5):
        gt = render(random_scene(rng, (60, 80), crowd_probability=0.8))
        crowd_categories = [s.category_id for s in gt.segments if s.iscrowd]
        assert len(crowd_categories) == len(set(crowd_categories))


def test_an_unperturbed_prediction_is_perfect_and_perturbations_cost():
    rng = np.random.default_rng(2)
    scene = random_scene(rng, (64, 64), void_fraction=0.0)
    identity = perturb_scene(scene, rng, shift=0, scale=0, drop=0, swap=0, merge=0, split=0, false_positives=0,
                             stuff_jitter=0, stuff_swap=0)
    gt, pred = render(scene), render(identity)
    matching = match_segments(gt, pred)
    assert matching.counts()["fp"] == matching.counts()["fn"] == 0
    assert np.all(matching.matched_iou == 1.0)
    noisy = [random_pair(rng, (64, 64)) for _ in range(6)]
    assert evaluate_pairs(noisy, CATS)["All"]["pq"] < 0.95


def test_threshold_sweep_equals_separate_evaluations():
    rng = np.random.default_rng(3)
    pairs = [random_pair(rng, (48, 64)) for _ in range(5)]
    sweep = evaluate_thresholds(pairs, CATS, [0.3, 0.5, 0.8])
    for threshold, results in sweep.items():
        alone = evaluate_pairs(pairs, CATS, iou_threshold=threshold)
        assert results["per_class"] == alone["per_class"]
    assert sweep[0.3]["All"]["rq"] >= sweep[0.5]["All"]["rq"] >= sweep[0.8]["All"]["rq"]



def test_unknown_shape_kind():
    with pytest.raises(ValueError, match="unknown shape kind 'star'"):
        render(Scene((8, 8), np.zeros((0, 2)), (), (Shape("star", 1, (4, 4), 2),)))
