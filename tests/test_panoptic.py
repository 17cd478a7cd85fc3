"""The panoptic representation and its encodings: round trips and errors."""
import numpy as np
import pytest

from conftest import random_panoptic
from panopticlab.data import (
    SYNTHETIC_CATEGORIES as CATS,
    PanopticFormatError,
    PanopticSegmentation,
    Segment,
    from_label_divisor,
    from_semantic_and_instances,
    id_to_rgb,
    rgb_to_id,
    segment_statistics,
    to_label_divisor,
    to_semantic_and_instances,
)


def hand_built():
    #      sky (id 5) on top, road (id 7) below, two touching discs, one crowd box
    id_map = np.zeros((6, 8), np.int32)
    id_map[:3] = 5
    id_map[3:] = 7
    id_map[1:3, 1:3] = 9     # disc A
    id_map[1:3, 3:5] = 12    # disc B, touching A
    id_map[4:6, 6:8] = 13    # crowd box
    id_map[0, 7] = 0         # a void pixel
    return PanopticSegmentation.from_id_map(id_map, {5: 11, 7: 12, 9: 1, 12: 1, 13: 2}, {13: 1})


def test_statistics_by_hand():
    pan = hand_built()
    by_id = {s.id: s for s in pan.segments}
    assert by_id[9].area == 4 and by_id[9].bbox == (1, 1, 2, 2)
    assert by_id[12].bbox == (3, 1, 2, 2)
    assert by_id[5].area == 24 - 8 - 1 and by_id[5].bbox == (0, 0, 8, 3)
    assert by_id[13].iscrowd == 1 and by_id[13].bbox == (6, 4, 2, 2)
    assert sum(s.area for s in pan.segments) == (pan.id_map != 0).sum()


def test_statistics_match_a_direct_computation(rng):
    for _ in range(20):
        pan = random_panoptic(rng)
        for seg_id, (area, (x, y, w, h)) in segment_statistics(pan.id_map).items():
            ys, xs = np.nonzero(pan.id_map == seg_id)
            assert area == len(ys)
            assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


@pytest.mark.parametrize("seed", range(10))
def test_rgb_round_trip(seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 256**3, size=(7, 9)).astype(np.int32)
    rgb = id_to_rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (7, 9, 3)
    assert np.array_equal(rgb_to_id(rgb), ids)
    # the COCO definition, written out: id = R + 256 G + 256^2 B
    assert rgb_to_id(rgb)[0, 0] == rgb[0, 0, 0] + 256 * int(rgb[0, 0, 1]) + 65536 * int(rgb[0, 0, 2])


def test_rgb_rejects_ids_that_do_not_fit():
    with pytest.raises(PanopticFormatError, match="fit an RGB PNG"):
        id_to_rgb(np.array([[256**3]]))
    with pytest.raises(PanopticFormatError, match=r"\(H, W, 3\)"):
        rgb_to_id(np.zeros((4, 4, 4), np.uint8))


@pytest.mark.parametrize("seed", range(15))
def test_label_divisor_round_trip(seed):
    rng = np.random.default_rng(seed)
    pan = random_panoptic(rng)
    labels = to_label_divisor(pan, CATS, label_divisor=1000)
    back = from_label_divisor(labels, CATS, label_divisor=1000)
    assert back.equals(pan, ignore_ids=True)
    # the encoding itself: category = value // divisor, crowd and stuff have k = 0
    for s in pan.segments:
        values = np.unique(labels[pan.id_map == s.id])
        assert len(values) == 1 and values[0] // 1000 == s.category_id
        assert (values[0] % 1000 == 0) == (s.iscrowd == 1 or not CATS.isthing(s.category_id))
    assert (labels[pan.id_map == 0] == -1).all()


def test_label_divisor_numbers_instances_in_raster_order():
    labels = to_label_divisor(hand_built(), CATS)
    assert labels[1, 1] == 1001 and labels[1, 3] == 1002 and labels[4, 6] == 2000 and labels[0, 7] == -1


def test_label_divisor_errors():
    with pytest.raises(PanopticFormatError, match="unknown category 7"):
        from_label_divisor(np.array([[7001, -1]]), CATS)
    ids = np.arange(1, 6, dtype=np.int32).reshape(1, 5)
    pan = PanopticSegmentation.from_id_map(ids, {i: 1 for i in range(1, 6)})
    with pytest.raises(PanopticFormatError, match="more than"):
        to_label_divisor(pan, CATS, label_divisor=4)


@pytest.mark.parametrize("seed", range(15))
def test_semantic_and_instances_round_trip(seed):
    rng = np.random.default_rng(seed)
    pan = random_panoptic(rng)
    # one stuff segment per category, as the COCO format expects
    semantic, masks, labels, iscrowd = to_semantic_and_instances(pan, CATS)
    assert masks.dtype == bool and masks.shape[1:] == pan.shape
    assert (masks.sum(0) <= 1).all()
    back = from_semantic_and_instances(semantic, masks, labels, CATS, iscrowd)
    assert back.equals(pan, ignore_ids=True)


def test_semantic_and_instances_by_hand():
    semantic, masks, labels, iscrowd = to_semantic_and_instances(hand_built(), CATS)
    assert semantic[0, 0] == 11 and semantic[5, 0] == 12 and semantic[1, 1] == 1 and semantic[0, 7] == 255
    assert labels.tolist() == [1, 1, 2] and iscrowd.tolist() == [0, 0, 1]
    # semantic segmentation alone sees one blob where there are two touching discs
    from scipy import ndimage
    assert ndimage.label(semantic == 1)[1] == 1 and len(masks[labels == 1]) == 2


def test_semantic_and_instances_errors():
    semantic = np.full((4, 4), 11)
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = masks[1, 1:3, 1:3] = True
    with pytest.raises(PanopticFormatError, match=r"instances \[0, 1\] overlap at pixel \(y=1, x=1\)"):
        from_semantic_and_instances(semantic, masks, [1, 2], CATS)
    with pytest.raises(PanopticFormatError, match="instance 0 has category 11, which is not a thing"):
        from_semantic_and_instances(semantic, masks[:1], [11], CATS)
    with pytest.raises(PanopticFormatError, match=r"unknown category ids \[99\]"):
        from_semantic_and_instances(np.full((4, 4), 99), masks[:0], [], CATS)
    with pytest.raises(PanopticFormatError, match="do not match"):
        from_semantic_and_instances(semantic, np.zeros((1, 3, 3), bool), [1], CATS)


def test_uncovered_thing_pixels_become_void():
    semantic = np.full((4, 4), 11)
    semantic[:2] = 1
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, :2] = True
    pan = from_semantic_and_instances(semantic, mask, [1], CATS)
    assert (pan.id_map[1] == 0).all() and (pan.id_map[0, 2:] == 0).all() and pan.id_map[0, 0] > 0


def test_validate_names_the_problem():
    pan = hand_built()
    pan.validate(CATS)
    missing = PanopticSegmentation(pan.id_map, [s for s in pan.segments if s.id != 9])
    with pytest.raises(PanopticFormatError, match=r"scene\.png: ids \[9\] occur in the id map but have no segment"):
        missing.validate(CATS, source="scene.png")
    extra = PanopticSegmentation(pan.id_map, pan.segments + [Segment(id=77, category_id=1)])
    with pytest.raises(PanopticFormatError, match=r"segments \[77\] are listed but have no pixel"):
        extra.validate(CATS)
    unknown = PanopticSegmentation(pan.id_map, [Segment(s.id, 42 if s.id == 9 else s.category_id) for s in pan.segments])
    with pytest.raises(PanopticFormatError, match="segment 9 has unknown category id 42"):
        unknown.validate(CATS)
    twice = PanopticSegmentation(pan.id_map, pan.segments + [pan.segments[0]])
    with pytest.raises(PanopticFormatError, match="appears twice"):
        twice.validate(CATS)
    with pytest.raises(PanopticFormatError, match="must hold integers"):
        PanopticSegmentation(pan.id_map.astype(float), pan.segments).validate()
    wrong_area = PanopticSegmentation(pan.id_map, [s if s.id != 9 else Segment(9, 1, area=5, bbox=s.bbox)
                                                   for s in pan.segments])
    wrong_area.validate(CATS)
    with pytest.raises(PanopticFormatError, match=r"segment 9 says area 5, bbox \[1, 1, 2, 2\] but its pixels give area 4"):
        wrong_area.validate(CATS, check_statistics=True)
    with pytest.raises(PanopticFormatError, match=r"ids \[9\] have no category"):
        PanopticSegmentation.from_id_map(pan.id_map, {5: 11, 7: 12, 12: 1, 13: 2})


def test_relabeled_and_equals():
    pan = hand_built()
    shuffled = PanopticSegmentation.from_id_map(np.where(pan.id_map > 0, pan.id_map * 3 + 1, 0),
                                                {s.id * 3 + 1: s.category_id for s in pan.segments},
                                                {s.id * 3 + 1: s.iscrowd for s in pan.segments})
    assert not shuffled.equals(pan)
    assert shuffled.equals(pan, ignore_ids=True)
    assert [s.id for s in pan.relabeled().segments] == [1, 2, 3, 4, 5]
    other = pan.id_map.copy()
    other[2, 2] = 12
    assert not PanopticSegmentation.from_id_map(other, {5: 11, 7: 12, 9: 1, 12: 1, 13: 2}, {13: 1}).equals(
        pan, ignore_ids=True)


def test_category_map():
    cm = hand_built().category_map(void=255)
    assert cm.dtype == np.int64 and cm[0, 7] == 255 and cm[4, 6] == 2 and cm[0, 0] == 11


def test_coco_records_round_trip():
    for s in hand_built().segments:
        assert Segment.from_coco(s.to_coco()) == s
    with pytest.raises(PanopticFormatError, match="malformed segment record"):
        Segment.from_coco({"id": 3}, where="a.png")
