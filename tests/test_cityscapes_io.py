"""Cityscapes panoptic: the label table and the instanceIds conversion, checked against cityscapesScripts."""
import json

import numpy as np
import pytest
from cityscapes_tree import (
    BICYCLE,
    CAR,
    CARAVAN,
    PARKING,
    PERSON,
    ROAD,
    SKY,
    UNLABELED,
    write_cityscapes_tree,
)

# The reference implementation (test dependency): cityscapesScripts from PyPI.
from cityscapesscripts.helpers import labels as cityscapes_labels
from PIL import Image

from panopticlab.data import PanopticFormatError, from_label_divisor, to_label_divisor
from panopticlab.data.cityscapes import (
    CITYSCAPES_CATEGORIES,
    CITYSCAPES_TRAIN_ID_CATEGORIES,
    TRAIN_ID_TO_LABEL_ID,
    CityscapesPanoptic,
    cityscapes_panoptic_paths,
    label_id_to_train_id,
    panoptic_from_instance_ids,
    predictions_with_label_ids,
)

FRAMES = {"val": {"frankfurt": ["000000_000294", "000001_005184"], "lindau": ["000000_000019", "000012_000019"]},
          "train": {"aachen": ["000000_000019"]}}


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    """A tiny Cityscapes tree, converted by cityscapesScripts in both label-id and train-id modes."""
    return write_cityscapes_tree(tmp_path_factory.mktemp("cityscapes"), FRAMES, seed=0)


def instance_ids_of(root, split, image_id):
    city = image_id.split("_")[0]
    return np.array(Image.open(root / "gtFine" / split / city / f"{image_id}_gtFine_instanceIds.png"))


def leftimg_of(root, split, image_id):
    city = image_id.split("_")[0]
    return np.array(Image.open(root / "leftImg8bit" / split / city / f"{image_id}_leftImg8bit.png"))


# ---------------------------------------------------------------------------------------
# the label table
# ---------------------------------------------------------------------------------------
def test_label_table_matches_cityscapesscripts():
    evaluated = [label for label in cityscapes_labels.labels if not label.ignoreInEval]
    assert [(c.id, c.name, c.isthing, c.color) for c in CITYSCAPES_CATEGORIES] == \
        [(label.id, label.name, label.hasInstances, label.color) for label in evaluated]
    assert [(c.id, c.name, c.isthing, c.color) for c in CITYSCAPES_TRAIN_ID_CATEGORIES] == \
        [(label.trainId, label.name, label.hasInstances, label.color) for label in evaluated]
    assert [c.name for c in CITYSCAPES_CATEGORIES if c.isthing] == \
        ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]


def test_label_id_to_train_id_matches_cityscapesscripts():
    expected = [255 if cityscapes_labels.id2label[i].ignoreInEval else cityscapes_labels.id2label[i].trainId
                for i in range(34)]
    assert label_id_to_train_id.tolist() == expected
    assert CITYSCAPES_TRAIN_ID_CATEGORIES.ids == list(range(19))


# ---------------------------------------------------------------------------------------
# the conversion
# ---------------------------------------------------------------------------------------
def test_conversion_by_hand():
    ids = np.array([[ROAD, CAR * 1000, CAR * 1000 + 1, PERSON],
                    [UNLABELED, CARAVAN * 1000, PARKING, SKY]], dtype=np.uint16)
    pan = panoptic_from_instance_ids(ids)
    np.testing.assert_array_equal(pan.id_map, [[7, 26000, 26001, 24], [0, 0, 0, 23]])
    records = {s.id: (s.category_id, s.iscrowd, s.area, s.bbox) for s in pan.segments}
    assert records == {7: (7, 0, 1, (0, 0, 1, 1)), 26000: (26, 0, 1, (1, 0, 1, 1)),
                       26001: (26, 0, 1, (2, 0, 1, 1)), 24: (24, 1, 1, (3, 0, 1, 1)), 23: (23, 0, 1, (3, 1, 1, 1))}
    train = panoptic_from_instance_ids(ids, use_train_id=True)
    np.testing.assert_array_equal(train.id_map, pan.id_map)  # the segment id stays the instanceIds value
    assert {s.id: (s.category_id, s.iscrowd) for s in train.segments} == \
        {7: (0, 0), 26000: (13, 0), 26001: (13, 0), 24: (11, 1), 23: (10, 0)}


def script_records(annotation):
    return sorted((r["id"], r["category_id"], r["iscrowd"], r["area"], tuple(r["bbox"]))
                  for r in annotation["segments_info"])


@pytest.mark.parametrize("use_train_id", [False, True], ids=["label_id", "train_id"])
def test_conversion_matches_create_panoptic_imgs(cityscapes_root, use_train_id):
    from panopticapi.utils import rgb2id

    paths = cityscapes_panoptic_paths(cityscapes_root, "val", use_train_id)
    data = json.loads(paths["json_path"].read_text())
    assert len(data["annotations"]) == 4
    for annotation in data["annotations"]:
        instance_ids = instance_ids_of(cityscapes_root, "val", annotation["image_id"])
        pan = panoptic_from_instance_ids(instance_ids, use_train_id=use_train_id)
        script_png = np.array(Image.open(paths["png_folder"] / annotation["file_name"]), dtype=np.uint32)
        np.testing.assert_array_equal(pan.id_map, rgb2id(script_png))
        ours = sorted((s.id, s.category_id, s.iscrowd, s.area, s.bbox) for s in pan.segments)
        assert ours == script_records(annotation)
        assert any(s.iscrowd for s in pan.segments)  # the scene exercises crowd regions


@pytest.mark.parametrize("use_train_id", [False, True], ids=["label_id", "train_id"])
def test_dataset_reads_the_script_output(cityscapes_root, use_train_id):
    dataset = CityscapesPanoptic(cityscapes_root, "val", use_train_id=use_train_id)
    assert dataset.categories == (CITYSCAPES_TRAIN_ID_CATEGORIES if use_train_id else CITYSCAPES_CATEGORIES)
    expected_ids = sorted(f"{city}_{frame}" for city, frames in FRAMES["val"].items() for frame in frames)
    assert sorted(dataset.image_ids) == expected_ids
    for sample in dataset:
        assert isinstance(sample.image_id, str)
        assert sample.file_name == f"{sample.image_id}_leftImg8bit.png"
        np.testing.assert_array_equal(sample.image, leftimg_of(cityscapes_root, "val", sample.image_id))
        instance_ids = instance_ids_of(cityscapes_root, "val", sample.image_id)
        assert sample.panoptic.equals(panoptic_from_instance_ids(instance_ids, use_train_id=use_train_id))
    assert len(CityscapesPanoptic(cityscapes_root, "train", use_train_id=use_train_id)) == 1


def test_dataset_checks_like_coco(cityscapes_root, tmp_path):
    """A damaged PNG in the converted split is reported with its file name."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(cityscapes_root, root)
    paths = cityscapes_panoptic_paths(root, "val")
    png = min(paths["png_folder"].iterdir())
    Image.open(png).convert("L").save(png)
    dataset = CityscapesPanoptic(root, "val")
    index = dataset.index_of(png.name.replace("_gtFine_panoptic.png", ""))
    with pytest.raises(PanopticFormatError, match=f"{png.name}.*mode 'L'"):
        dataset[index]


def test_label_divisor_round_trip(cityscapes_root):
    for image_id in (f"frankfurt_{f}" for f in FRAMES["val"]["frankfurt"]):
        instance_ids = instance_ids_of(cityscapes_root, "val", image_id).astype(np.int64)
        pan = panoptic_from_instance_ids(instance_ids)
        labels = to_label_divisor(pan, CITYSCAPES_CATEGORIES, label_divisor=1000)
        assert from_label_divisor(labels, CITYSCAPES_CATEGORIES, label_divisor=1000).equals(pan, ignore_ids=True)
        # the category part agrees with the instanceIds label ids on every evaluated pixel
        evaluated = pan.id_map != 0
        label_ids = np.where(instance_ids < 1000, instance_ids, instance_ids // 1000)
        np.testing.assert_array_equal(labels[evaluated] // 1000, label_ids[evaluated])
        np.testing.assert_array_equal(labels[~evaluated], -1)
        # crowd regions (< 1000 in instanceIds) get k = 0, objects k >= 1
        thing = np.isin(label_ids, CITYSCAPES_CATEGORIES.thing_ids) & evaluated
        np.testing.assert_array_equal(labels[thing] % 1000 == 0, instance_ids[thing] < 1000)


@pytest.mark.parametrize("bad, pattern", [
    (np.array([[7, 34]]), "value 34"),
    (np.array([[7, 34000]]), "value 34000"),
    (np.array([[7, -1]]), "value -1"),
    (np.zeros((2, 2, 3), np.uint16), "2-D integer"),
    (np.zeros((2, 2), np.float32), "2-D integer"),
])
def test_bad_instance_ids(bad, pattern):
    with pytest.raises(PanopticFormatError, match=rf"frankfurt_x.png: .*{pattern}"):
        panoptic_from_instance_ids(bad, source="frankfurt_x.png")


def test_predictions_get_label_ids_and_keep_their_segments(tmp_path):
    predictions = {"annotations": [{"image_id": "lindau_000000_000019", "file_name": "lindau_000000_000019.png",
                                    "segments_info": [{"id": 1, "category_id": 0}, {"id": 2, "category_id": 11},
                                                      {"id": 3, "category_id": 18, "score": 0.9}]}],
                   "categories": CITYSCAPES_TRAIN_ID_CATEGORIES.to_coco()}
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(predictions))
    predictions_with_label_ids(path)
    converted = json.loads(path.read_text())
    assert converted["annotations"][0]["segments_info"] == [{"id": 1, "category_id": ROAD},
                                                            {"id": 2, "category_id": PERSON},
                                                            {"id": 3, "category_id": BICYCLE, "score": 0.9}]
    assert converted["categories"] == CITYSCAPES_CATEGORIES.to_coco()
    for train_id, label_id in TRAIN_ID_TO_LABEL_ID.items():  # the table agrees with cityscapesScripts'
        assert cityscapes_labels.id2label[label_id].trainId == train_id
    before = path.read_text()
    with pytest.raises(PanopticFormatError, match="not Cityscapes' 19 train ids"):
        predictions_with_label_ids(path)  # converted already: refused, left as it was
    assert path.read_text() == before
