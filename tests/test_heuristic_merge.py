"""The heuristic merge against panopticapi's combine script, and on hand-built cases."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation, rgb_to_id
from panopticlab.postprocess.heuristic import (
    COCO_REFERENCE_AREA,
    COVERED,
    CUT,
    EMPTY,
    KEPT,
    OVERLAP,
    TOO_SMALL,
    heuristic_merge,
    scaled_stuff_area,
)

combine = pytest.importorskip("panopticapi.combine_semantic_and_instance_predictions")
mask_util = pytest.importorskip("pycocotools.mask")

DISC, BOX, TRIANGLE = 1, 2, 3
SKY, ROAD, GRASS = 11, 12, 13
VOID = 255


# ---------------------------------------------------------------------------------------
# random cases and panopticapi's script run on them
# ---------------------------------------------------------------------------------------
def random_case(rng: np.random.Generator):
    """A semantic map (stuff, things and void rectangles) and instance masks built to hit
    the rule's corners: empty masks, repeated and nested masks, tied scores and scores
    equal to the thresholds."""
    h, w = rng.integers(6, 40, size=2)
    semantic = np.full((h, w), rng.choice(CATS.stuff_ids))
    for _ in range(rng.integers(0, 7)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        value = rng.choice([*CATS.ids, VOID])
        semantic[y:y + rng.integers(1, h + 1), x:x + rng.integers(1, w + 1)] = value

    masks = []
    for _ in range(rng.integers(0, 9)):
        kind = rng.integers(0, 5)
        mask = np.zeros((h, w), bool)
        if kind == 0 and masks:  # a copy or a part of an earlier mask
            mask = masks[rng.integers(len(masks))].copy()
            if rng.random() < 0.5:
                mask &= rng.random((h, w)) < 0.7
        elif kind == 1:  # empty
            pass
        elif kind == 2:  # speckle
            mask = rng.random((h, w)) < rng.uniform(0.05, 0.5)
        else:  # a rectangle
            y, x = rng.integers(0, h), rng.integers(0, w)
            mask[y:y + rng.integers(1, h), x:x + rng.integers(1, w)] = True
        masks.append(mask)
    masks = np.array(masks, dtype=bool).reshape(-1, h, w)
    scores = rng.choice([0.3, 0.5, 0.5, 0.6, 0.8, 0.8, 0.9, rng.random()], size=len(masks))
    labels = rng.choice(CATS.thing_ids, size=len(masks))
    return semantic, masks, scores, labels


def rle(mask: np.ndarray) -> dict:
    encoded = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("ascii")
    return encoded


def panopticapi_combine(cases, tmp_path, confidence_thr, overlap_thr, stuff_area_limit):
    """Run panopticapi's ``combine_predictions`` on files written for ``cases``.

    Returns, per case, the id map of its PNG and its ``segments_info`` list.
    """
    images, semantic_json, instance_json = [], [], []
    for image_id, (semantic, masks, scores, labels) in enumerate(cases):
        h, w = semantic.shape
        images.append({"id": image_id, "width": int(w), "height": int(h), "file_name": f"{image_id}.jpg"})
        # every category, things too (the script must skip those), in categories order
        for category_id in CATS.ids:
            present = semantic == category_id
            if present.any():
                semantic_json.append({"image_id": image_id, "category_id": category_id, "segmentation": rle(present)})
        for mask, score, label in zip(masks, scores, labels):
            instance_json.append({"image_id": image_id, "category_id": int(label), "score": float(score),
                                  "segmentation": rle(mask)})
    files = {name: tmp_path / f"{name}.json" for name in ("semantic", "instances", "images", "categories", "out")}
    files["semantic"].write_text(json.dumps(semantic_json))
    files["instances"].write_text(json.dumps(instance_json))
    files["images"].write_text(json.dumps({"images": images}))
    files["categories"].write_text(json.dumps(CATS.to_coco()))
    folder = tmp_path / "png"
    combine.combine_predictions(str(files["semantic"]), str(files["instances"]), str(files["images"]),
                                str(files["categories"]), str(folder), str(files["out"]),
                                confidence_thr, overlap_thr, stuff_area_limit)
    annotations = {a["image_id"]: a for a in json.loads(files["out"].read_text())["annotations"]}
    results = []
    for image_id in range(len(cases)):
        annotation = annotations[image_id]
        id_map = rgb_to_id(np.array(Image.open(folder / annotation["file_name"])))
        results.append((id_map, annotation["segments_info"]))
    return results


@pytest.mark.parametrize("score_thr, overlap_thr, stuff_limit", [
    (0.5, 0.5, 20),     # the published rule, with a limit that matters at this size
    (0.0, 0.3, 0),      # keep every score; a limit of 0 keeps all stuff
    (0.6, 1.0, 7.5),    # never drop for overlap: fully covered instances appear
    (0.5, 0.0, 50),     # any overlap drops
])
def test_identical_to_panopticapi_on_random_cases(tmp_path, score_thr, overlap_thr, stuff_limit):
    rng = np.random.default_rng([7, int(score_thr * 10), int(overlap_thr * 10), int(stuff_limit)])
    cases = [random_case(rng) for _ in range(60)]
    reference = panopticapi_combine(cases, tmp_path, score_thr, overlap_thr, stuff_limit)

    outcomes_seen = set()
    for case_index, (case, (their_map, their_segments)) in enumerate(zip(cases, reference)):
        semantic, masks, scores, labels = case
        ours = heuristic_merge(semantic, masks, scores, labels, CATS, score_threshold=score_thr,
                               overlap_threshold=overlap_thr, stuff_area_limit=stuff_limit, void_label=VOID)
        outcomes_seen |= {s.outcome for s in ours.steps.instances} | {s.outcome for s in ours.steps.stuff}
        # panopticapi lists segments without pixels in two corner cases (see the module doc)
        present = [s for s in their_segments if (their_map == s["id"]).any()]
        assert len(their_segments) - len(present) == sum(
            s.outcome == COVERED for s in [*ours.steps.instances, *ours.steps.stuff]), case_index
        # same segments, in the same order, with the same pixels and categories
        assert [s.category_id for s in ours.panoptic.segments] == [s["category_id"] for s in present], case_index
        for mine, theirs in zip(ours.panoptic.segments, present):
            np.testing.assert_array_equal(ours.panoptic.id_map == mine.id, their_map == theirs["id"],
                                          err_msg=f"case {case_index}")
        np.testing.assert_array_equal(ours.panoptic.id_map == 0, their_map == 0, err_msg=f"case {case_index}")
    # the random cases reach the corners they are meant to test
    assert {KEPT, EMPTY} <= outcomes_seen
    assert (CUT in outcomes_seen) == (overlap_thr > 0)
    assert (OVERLAP in outcomes_seen) == (overlap_thr < 1)
    assert (COVERED in outcomes_seen) == (overlap_thr == 1 or stuff_limit == 0)
    assert (TOO_SMALL in outcomes_seen) == (stuff_limit > 0)


# ---------------------------------------------------------------------------------------
# hand-built cases
# ---------------------------------------------------------------------------------------
def two_instances(second_rows: slice, scores=(0.9, 0.8), shape=(4, 5)):
    """Instance 0 on rows 0-1 (10 px); instance 1 on ``second_rows`` (5 px per row)."""
    masks = np.zeros((2, *shape), bool)
    masks[0, 0:2] = True
    masks[1, second_rows] = True
    return masks, np.array(scores), np.array([DISC, BOX])


def test_overlap_exactly_at_the_threshold_is_kept_and_cut():
    masks, scores, labels = two_instances(slice(1, 3))  # 5 of its 10 px are taken: ratio 0.5
    result = heuristic_merge(None, masks, scores, labels, CATS)
    first, second = result.steps.instances
    assert (first.outcome, second.outcome) == (KEPT, CUT)
    assert (second.area, second.overlap, second.overlap_fraction, second.kept_area) == (10, 5, 0.5, 5)
    expected = np.zeros((4, 5), np.int32)
    expected[0:2], expected[2] = 1, 2
    np.testing.assert_array_equal(result.panoptic.id_map, expected)
    assert [(s.category_id, s.area, s.score) for s in result.panoptic.segments] == [(DISC, 10, 0.9), (BOX, 5, 0.8)]


def test_overlap_just_above_the_threshold_is_dropped():
    masks, scores, labels = two_instances(slice(1, 3))
    result = heuristic_merge(None, masks, scores, labels, CATS, overlap_threshold=0.5 - 1e-9)
    assert [s.outcome for s in result.steps.instances] == [KEPT, OVERLAP]
    assert result.steps.outcomes() == {"below_score": [], KEPT: [0], OVERLAP: [1]}
    # 6 of 11 taken (0.545...) is above 0.5
    masks = np.zeros((2, 4, 5), bool)
    masks[0, 0:2] = True
    masks[1, 1:3] = True
    masks[1, 0, 0] = True
    result = heuristic_merge(None, masks, [0.9, 0.8], [DISC, BOX], CATS)
    assert result.steps.instances[1].overlap_fraction == pytest.approx(6 / 11)
    assert result.steps.instances[1].outcome == OVERLAP
    assert result.panoptic.id_map.max() == 1 and len(result.panoptic.segments) == 1


def test_score_threshold_keeps_equal_scores_and_drops_lower_ones():
    masks = np.zeros((3, 3, 3), bool)
    masks[0, 0], masks[1, 1], masks[2, 2] = True, True, True
    result = heuristic_merge(None, masks, [0.5, np.nextafter(0.5, 0), 0.7], [DISC, BOX, TRIANGLE], CATS)
    assert result.steps.order.tolist() == [2, 0]  # most confident first
    assert result.steps.below_score.tolist() == [1]
    assert [s.category_id for s in result.panoptic.segments] == [TRIANGLE, DISC]
    np.testing.assert_array_equal(result.panoptic.id_map, [[2, 2, 2], [0, 0, 0], [1, 1, 1]])


def test_equal_scores_keep_input_order():
    masks = np.ones((3, 2, 2), bool)  # identical masks: the first processed takes everything
    for labels in ([DISC, BOX, TRIANGLE], [TRIANGLE, DISC, BOX]):
        result = heuristic_merge(None, masks, [0.7, 0.7, 0.7], labels, CATS)
        assert result.steps.order.tolist() == [0, 1, 2]
        assert [s.category_id for s in result.panoptic.segments] == [labels[0]]


def test_empty_mask_is_skipped_and_takes_nothing():
    masks = np.zeros((2, 3, 3), bool)
    masks[1, :2] = True
    result = heuristic_merge(None, masks, [0.9, 0.8], [DISC, BOX], CATS)
    assert [(s.index, s.outcome, s.area) for s in result.steps.instances] == [(0, EMPTY, 0), (1, KEPT, 6)]
    assert [s.category_id for s in result.panoptic.segments] == [BOX]


def test_small_stuff_becomes_void_after_things_take_their_pixels():
    semantic = np.full((6, 6), SKY)
    semantic[4:] = ROAD          # road: 12 px
    semantic[5, :3] = GRASS      # grass: 3 px, road now 9
    masks = np.zeros((1, 6, 6), bool)
    masks[0, 4, :4] = True       # a box takes 4 of the road's 9 px: 5 are left
    result = heuristic_merge(semantic, masks, [0.9], [BOX], CATS, stuff_area_limit=6)
    by_category = {s.category_id: s for s in result.steps.stuff}
    assert (by_category[SKY].outcome, by_category[SKY].free_area) == (KEPT, 24)
    assert (by_category[ROAD].outcome, by_category[ROAD].area, by_category[ROAD].free_area) == (TOO_SMALL, 9, 5)
    assert (by_category[GRASS].outcome, by_category[GRASS].free_area) == (TOO_SMALL, 3)
    expected_void = np.zeros((6, 6), bool)
    expected_void[4, 4:], expected_void[5] = True, True
    np.testing.assert_array_equal(result.panoptic.id_map == 0, expected_void)
    np.testing.assert_array_equal(result.steps.small_stuff, expected_void)
    # 5 free road pixels reach a limit of exactly 5: kept (the rule drops area < limit)
    kept = heuristic_merge(semantic, masks, [0.9], [BOX], CATS, stuff_area_limit=5)
    assert {s.category_id: s.outcome for s in kept.steps.stuff}[ROAD] == KEPT


def test_things_beat_stuff_and_semantic_things_without_instances_are_void():
    semantic = np.full((5, 5), SKY)
    semantic[0, :] = DISC        # the semantic model sees a disc no detector found
    semantic[4, 4] = VOID
    masks = np.zeros((1, 5, 5), bool)
    masks[0, 2:4, 1:3] = True    # a box over sky pixels
    result = heuristic_merge(semantic, masks, [0.95], [BOX], CATS, stuff_area_limit=0)
    pan = result.panoptic
    assert [(s.category_id, s.area, s.bbox) for s in pan.segments] == [(BOX, 4, (1, 2, 2, 2)), (SKY, 15, (0, 1, 5, 4))]
    np.testing.assert_array_equal(result.steps.things_over_stuff, masks[0])
    np.testing.assert_array_equal(result.steps.unclaimed_things, semantic == DISC)
    np.testing.assert_array_equal(pan.id_map == 0, (semantic == DISC) | (semantic == VOID))
    np.testing.assert_array_equal(result.steps.owner, np.where(masks[0], 0, -1))


def test_probability_masks_are_binarised_at_the_mask_threshold(rng):
    semantic, masks, scores, labels = random_case(rng)
    while len(masks) < 3:
        semantic, masks, scores, labels = random_case(rng)
    probabilities = np.where(masks, rng.uniform(0.5, 1, masks.shape), rng.uniform(0, 0.5, masks.shape))
    probabilities[masks.nonzero()[0][:1], masks.nonzero()[1][:1], masks.nonzero()[2][:1]] = 0.5  # >= counts
    binary = heuristic_merge(semantic, masks, scores, labels, CATS, stuff_area_limit=10)
    soft = heuristic_merge(semantic, probabilities[:, None].astype(np.float32), scores, labels, CATS,
                           stuff_area_limit=10)  # torchvision's (N, 1, H, W)
    assert soft.panoptic.equals(binary.panoptic)


def test_result_is_a_valid_panoptic_segmentation_with_correct_statistics(rng):
    for _ in range(20):
        semantic, masks, scores, labels = random_case(rng)
        result = heuristic_merge(semantic, masks, scores, labels, CATS, stuff_area_limit=5)
        pan = result.panoptic
        pan.validate(CATS)
        recomputed = PanopticSegmentation.from_id_map(pan.id_map, {s.id: s.category_id for s in pan.segments})
        assert [(s.area, s.bbox) for s in pan.segments] == [(s.area, s.bbox) for s in recomputed.segments]
        assert [s.id for s in pan.segments] == list(range(1, len(pan.segments) + 1))
        # the owner map and the thing segments tell the same story
        kept = {s.segment_id: s.index for s in result.steps.instances if s.segment_id}
        expected_owner = np.full(pan.shape, -1)
        for segment_id, index in kept.items():
            expected_owner[pan.id_map == segment_id] = index
        np.testing.assert_array_equal(result.steps.owner, expected_owner)
        assert all(s.kept_area == pan.segment(s.segment_id).area for s in result.steps.instances if s.segment_id)


def test_without_a_semantic_map_only_instances_remain():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 1:3, 1:3] = True
    result = heuristic_merge(None, masks, [0.9], [DISC], CATS)
    np.testing.assert_array_equal(result.panoptic.id_map, masks[0].astype(int))
    assert result.steps.stuff == []
    empty = heuristic_merge(np.full((3, 4), SKY), np.zeros((0, 3, 4), bool), [], [], CATS, stuff_area_limit=0)
    assert [(s.category_id, s.area) for s in empty.panoptic.segments] == [(SKY, 12)]


@pytest.mark.parametrize("change, message", [
    (dict(labels=[SKY]), "stuff, not a thing"),
    (dict(labels=[99]), "unknown category id 99"),
    (dict(scores=[np.nan]), "non-finite score"),
    (dict(semantic=np.full((3, 3), 7)), r"values \[7\]"),
    (dict(semantic=np.full((2, 3), SKY)), "does not match"),
    (dict(semantic=np.full((3, 3), 11.0)), "integer"),
    (dict(overlap_threshold=1.5), "overlap_threshold"),
    (dict(void_label=SKY), "also a category id"),
    (dict(masks=np.ones((3, 3), bool)), r"\(N, H, W\)"),
    (dict(scores=[0.9, 0.8]), "must be as many"),
])
def test_bad_input_gets_one_clear_error(change, message):
    arguments = dict(semantic=np.full((3, 3), SKY), masks=np.ones((1, 3, 3), bool), scores=[0.9], labels=[DISC])
    options = {k: change.pop(k) for k in list(change) if k not in arguments}
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        heuristic_merge(arguments["semantic"], arguments["masks"], arguments["scores"], arguments["labels"],
                        CATS, **options)


def test_scaled_stuff_area():
    assert scaled_stuff_area(4096, COCO_REFERENCE_AREA) == 4096
    assert scaled_stuff_area(4096, 128 * 128) == pytest.approx(4096 * 128 * 128 / (640 * 480))
    assert scaled_stuff_area(2048, 512 * 1024, reference_area=1024 * 2048) == 512
    with pytest.raises(ValueError, match="positive"):
        scaled_stuff_area(4096, 0)


def test_merge_config_holds_the_published_settings_and_resolves_the_stuff_limit():
    from panopticlab.postprocess import MergeConfig

    config = MergeConfig()
    assert (config.score_threshold, config.overlap_threshold, config.mask_threshold) == (0.5, 0.5, 0.5)
    # the published limit is 4096 px of the image as evaluated, whatever its size (detectron2, panopticapi)
    for area in (640 * 427, 640 * 480, 1024 * 2048, 128 * 128):
        assert config.stuff_limit(area) == 4096
    assert MergeConfig.for_size("full") == config
    # the tiny models scale it, by a named choice: the same share of a 640 x 480 image
    tiny = MergeConfig.tiny()
    assert MergeConfig.for_size("tiny") == tiny and tiny.stuff_area_reference == COCO_REFERENCE_AREA
    assert tiny.stuff_limit(640 * 480) == 4096
    assert tiny.stuff_limit(128 * 128) == pytest.approx(4096 * 128 * 128 / (640 * 480))
    assert dataclasses.replace(config, stuff_area_limit=10).stuff_limit(123) == 10.0
    with pytest.raises(ValueError, match="overlap_threshold"):
        MergeConfig(overlap_threshold=1.5)
    with pytest.raises(ValueError, match="stuff_area_limit"):
        MergeConfig(stuff_area_limit=-1)
    with pytest.raises(ValueError, match="set stuff_area_reference"):
        MergeConfig(stuff_area_limit=None)
    with pytest.raises(ValueError, match="unknown size"):
        MergeConfig.for_size("huge")


def detectron2_combine(semantic, masks, scores, labels, overlap_threshold=0.5, stuff_area_thresh=4096,
                       instances_score_thresh=0.5):
    """detectron2's ``combine_semantic_and_instance_outputs`` (``modeling/meta_arch/panoptic_fpn.py``),
    written again from its code as an independent reference, with its defaults from
    ``config/defaults.py`` (``MODEL.PANOPTIC_FPN.COMBINE``: 0.5, 4096, 0.5). ``semantic`` holds
    detectron2's contiguous labels: 0 for "things" (and here void), stuff from 1.

    Returns:
        (panoptic map, segments as dicts with id, isthing, category_id).
    """
    import torch

    semantic = torch.as_tensor(semantic)
    scores = torch.as_tensor(scores, dtype=torch.float32)
    instance_masks = torch.as_tensor(masks, dtype=torch.bool)
    panoptic = torch.zeros_like(semantic, dtype=torch.int32)
    segments, current = [], 0
    for index in torch.argsort(-scores):
        score = scores[index].item()
        if score < instances_score_thresh:
            break
        mask = instance_masks[index]
        area = mask.sum().item()
        if area == 0:
            continue
        intersect = (mask & (panoptic > 0)).sum().item()
        if intersect / area > overlap_threshold:
            continue
        if intersect > 0:
            mask = mask & (panoptic == 0)
        current += 1
        panoptic[mask] = current
        segments.append({"id": current, "isthing": True, "category_id": int(labels[index])})
    for label in torch.unique(semantic).tolist():
        if label == 0:
            continue
        mask = (semantic == label) & (panoptic == 0)
        if mask.sum().item() < stuff_area_thresh:
            continue
        current += 1
        panoptic[mask] = current
        segments.append({"id": current, "isthing": False, "category_id": label})
    return panoptic.numpy(), segments


def dataset_sized_case(rng, height, width):
    """A semantic map of stuff regions around the 4096 px limit, some void and thing pixels,
    and instance rectangles with distinct scores."""
    semantic = np.full((height, width), CATS.stuff_ids[0])
    for stuff, side in zip(CATS.stuff_ids[1:], rng.permutation([50, 62, 66, 200])):  # both sides of 4096 px
        side = int(side)
        y, x = rng.integers(0, height - side), rng.integers(0, width - side)
        semantic[y:y + side, x:x + side] = stuff
    semantic[rng.integers(0, height):, :rng.integers(1, 30)] = VOID
    masks = np.zeros((12, height, width), bool)
    for mask in masks:
        h, w = rng.integers(20, 160, size=2)
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        mask[y:y + h, x:x + w] = True
    semantic[masks[:4].any(0)] = rng.choice(CATS.thing_ids)  # the semantic branch sees some things
    scores = rng.permutation(np.linspace(0.2, 0.95, len(masks)))
    labels = rng.choice(CATS.thing_ids, size=len(masks))
    return semantic, masks, scores, labels


@pytest.mark.parametrize("height, width", [(427, 640), (480, 640), (1024, 2048)])
def test_published_merge_is_detectron2s_on_dataset_sized_images(height, width):
    """MergeConfig() on COCO- and Cityscapes-sized images: the same segments as detectron2's
    combine rule with its defaults (a limit scaled by image area would disagree on every size
    but 640 x 480)."""
    from panopticlab.postprocess import MergeConfig

    rng = np.random.default_rng([height, width])
    stuff_index = {c: k + 1 for k, c in enumerate(CATS.stuff_ids)}  # detectron2's contiguous stuff labels
    for case_index in range(3):
        semantic, masks, scores, labels = dataset_sized_case(rng, height, width)
        ours = MergeConfig().merge(semantic, masks, scores, labels, CATS).panoptic
        contiguous = np.vectorize(lambda c: stuff_index.get(int(c), 0))(semantic)
        their_map, their_segments = detectron2_combine(contiguous, masks, scores, labels)
        stuff_of = {v: k for k, v in stuff_index.items()}
        theirs = [(s["category_id"] if s["isthing"] else stuff_of[s["category_id"]], their_map == s["id"])
                  for s in their_segments]
        assert [s.category_id for s in ours.segments] == [category for category, _ in theirs], case_index
        for mine, (_, pixels) in zip(ours.segments, theirs):
            np.testing.assert_array_equal(ours.id_map == mine.id, pixels, err_msg=f"case {case_index}")
        assert sum(not s["isthing"] for s in their_segments) < len(CATS.stuff_ids), "the limit dropped some stuff"


def test_merge_config_merges_as_heuristic_merge_with_its_settings(rng):
    from panopticlab.postprocess import MergeConfig

    semantic, masks, scores, labels = random_case(rng)
    config = MergeConfig(score_threshold=0.3, overlap_threshold=0.7)
    expected = heuristic_merge(semantic, masks, scores, labels, CATS, score_threshold=0.3, overlap_threshold=0.7,
                               stuff_area_limit=config.stuff_limit(semantic.size))
    assert config.merge(semantic, masks, scores, labels, CATS).panoptic.equals(expected.panoptic)


def test_ablations_take_one_network_away(rng):
    from panopticlab.postprocess import ablation_merge, connected_component_instances

    semantic, masks, scores, labels = random_case(rng)
    detections = {"masks": masks, "scores": scores, "category_ids": labels}
    baseline = ablation_merge("baseline", semantic, detections, CATS).panoptic
    instance_only = ablation_merge("instance_only", semantic, detections, CATS).panoptic
    semantic_only = ablation_merge("semantic_only", semantic, None, CATS).panoptic
    assert instance_only.equals(heuristic_merge(None, masks, scores, labels, CATS).panoptic)
    assert all(CATS.isthing(s.category_id) for s in instance_only.segments)
    regions = connected_component_instances(semantic, CATS)
    assert semantic_only.equals(ablation_merge("baseline", semantic, dict(zip(("masks", "scores", "category_ids"),
                                                                              regions)), CATS).panoptic)
    assert {s.category_id for s in baseline.segments if not CATS.isthing(s.category_id)} == \
        {s.category_id for s in semantic_only.segments if not CATS.isthing(s.category_id)}
    with pytest.raises(ValueError, match="unknown ablation 'both'"):
        ablation_merge("both", semantic, detections, CATS)
    with pytest.raises(ValueError, match="needs detections"):
        ablation_merge("baseline", semantic, None, CATS)
