"""The values of a ``segments_info`` record: integer ids and category ids, and panopticapi's crowd rule.

Both readers are covered: the evaluator's (:func:`evaluate_folders`, which reads the JSON
records into segment tables) and the dataset reader's (:class:`CocoPanoptic`, which
builds :class:`Segment` objects).
"""
import json

import numpy as np
import pytest

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticSegmentation, Segment
from panopticlab.data.coco import panoptic_from_annotation
from panopticlab.metrics import evaluate_folders
from panopticlab.metrics.overlap import SegmentTable

from panoptic_cases import assert_same_as_panopticapi, panopticapi_results, write_set

DISC, BOX, SKY, ROAD = 1, 2, 11, 12


def small_pair():
    """Sky over road, two discs and a box: the prediction equals the ground truth (PQ 1)."""
    id_map = np.full((12, 16), 20)
    id_map[6:] = 30
    id_map[1:4, 1:4], id_map[7:10, 2:6], id_map[2:5, 9:14] = 9, 10, 11
    gt = PanopticSegmentation.from_id_map(id_map, {20: SKY, 30: ROAD, 9: DISC, 10: DISC, 11: BOX})
    return gt, PanopticSegmentation(gt.id_map.copy(), list(gt.segments))


def edit(json_path, position, **changes):
    data = json.loads(json_path.read_text())
    data["annotations"][0]["segments_info"][position].update(changes)
    json_path.write_text(json.dumps(data))


def position_of(segments, segment_id):
    return next(k for k, s in enumerate(segments) if s.id == segment_id)


# --- ids and category ids must be integers ---------------------------------------------------
BAD_VALUES = [
    ("id", 9.7, r"segment id 9\.7 is not an integer \(a float\)"),   # int() would read it as 9: PQ 100
    ("id", "9", r"segment id '9' is not an integer \(a str\)"),       # panopticapi finds no segment 9 either
    ("id", True, r"segment id True is not an integer \(a bool\)"),
    ("id", None, r"segment id None is not an integer"),
    ("category_id", 1.5, r"segment 9: category_id 1\.5 is not an integer \(a float\)"),
    ("category_id", "1", r"segment 9: category_id '1' is not an integer \(a str\)"),
    ("category_id", False, r"segment 9: category_id False is not an integer \(a bool\)"),
]


@pytest.mark.parametrize("side", ["gt", "pred"])
@pytest.mark.parametrize("field, value, pattern", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_non_integer_ids_are_refused_by_the_evaluator(tmp_path, side, field, value, pattern):
    gt, pred = small_pair()
    paths = write_set(tmp_path, [(gt, pred)])
    position = position_of(gt.segments, 9)
    edit(paths[f"{side}_json"], position, **{field: value})
    what = "ground truth" if side == "gt" else "prediction"
    json_name = f"{side}.json"
    with pytest.raises(PanopticFormatError, match=rf"image 0 \(.*\), {what} JSON .*{json_name}: "
                                                  rf"segments_info\[{position}\]: {pattern}"):
        evaluate_folders(**paths, progress=False)


@pytest.mark.parametrize("field, value, pattern", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_non_integer_ids_are_refused_by_the_dataset_reader(tmp_path, field, value, pattern):
    gt, _ = small_pair()
    paths = write_set(tmp_path, [(gt, gt)])
    position = position_of(gt.segments, 9)
    edit(paths["gt_json"], position, **{field: value})
    annotation = json.loads(paths["gt_json"].read_text())["annotations"][0]
    with pytest.raises(PanopticFormatError, match=rf"gt/000000\.png \(image 0\), segments_info\[{position}\]: "
                                                  rf"{pattern}"):
        panoptic_from_annotation(annotation, paths["gt_folder"], CATS)


def test_a_string_id_is_refused_by_panopticapi_too(tmp_path):
    gt, pred = small_pair()
    paths = write_set(tmp_path, [(gt, pred)])
    edit(paths["pred_json"], position_of(pred.segments, 9), id="9")
    with pytest.raises(KeyError, match="presented in PNG and not presented in JSON"):
        panopticapi_results(paths)


def test_integral_floats_are_integers(tmp_path):
    """JSON has one number type: 9.0 is the integer 9 to panopticapi, and here."""
    gt, pred = small_pair()
    paths = write_set(tmp_path, [(gt, pred)])
    edit(paths["pred_json"], position_of(pred.segments, 9), id=9.0, category_id=float(DISC))
    ours = evaluate_folders(**paths, progress=False)
    assert_same_as_panopticapi(ours, panopticapi_results(paths))
    assert ours["All"]["pq"] == 1.0
    assert Segment.from_coco({"id": 9.0, "category_id": 1.0}) == Segment(9, 1)


def test_segment_and_segment_table_refuse_the_same_values():
    for field, value, pattern in BAD_VALUES:
        record = {"id": 9, "category_id": DISC, field: value}
        with pytest.raises(PanopticFormatError, match=rf"^x\.png: {pattern}"):
            Segment.from_coco(record, where="x.png")
        with pytest.raises(PanopticFormatError, match=rf"^image 3: segments_info\[0\]: {pattern}"):
            SegmentTable.from_records([record], "image 3")


# --- crowd: only iscrowd == 1, as panopticapi ---------------------------------------------------
CROWD_VALUES = [(1, 1), (True, 1), (1.0, 1), (0, 0), (2, 0), (-1, 0), (0.5, 0), ("1", 0), (None, 0)]


@pytest.mark.parametrize("value, flag", CROWD_VALUES, ids=[repr(v) for v, _ in CROWD_VALUES])
def test_only_iscrowd_equal_to_1_is_crowd(value, flag):
    record = {"id": 9, "category_id": DISC, "iscrowd": value}
    segment = Segment.from_coco(record)
    assert segment.iscrowd == flag and type(segment.iscrowd) is int  # so that sums count crowd segments
    assert SegmentTable.from_records([record], "image").iscrowd.tolist() == [bool(flag)]
    assert Segment(9, DISC, iscrowd=value).iscrowd == flag


@pytest.mark.parametrize("value", [2, True, 1.0, "1"])
def test_crowd_values_score_as_panopticapi(tmp_path, value):
    """A disc marked iscrowd 2 is an ordinary segment to panopticapi: missed, it is a false negative."""
    gt, pred = small_pair()
    pred = PanopticSegmentation(np.where(pred.id_map == 9, 20, pred.id_map),
                                [s for s in pred.segments if s.id != 9])  # the prediction misses disc 9
    paths = write_set(tmp_path, [(gt, pred)])
    edit(paths["gt_json"], position_of(gt.segments, 9), iscrowd=value)
    ours = evaluate_folders(**paths, progress=False)
    assert_same_as_panopticapi(ours, panopticapi_results(paths))
    crowd = Segment.from_coco({"id": 9, "category_id": DISC, "iscrowd": value}).iscrowd
    assert ours["per_class"][DISC]["fn"] == 1 - crowd


def test_crowd_flags_read_from_files_sum_to_the_number_of_crowd_segments(tmp_path):
    gt, _ = small_pair()
    paths = write_set(tmp_path, [(gt, gt)])
    for position, value in enumerate([2, 1, 0, True, 7]):
        edit(paths["gt_json"], position, iscrowd=value)
    annotation = json.loads(paths["gt_json"].read_text())["annotations"][0]
    segments = panoptic_from_annotation(annotation, paths["gt_folder"], CATS).segments
    assert sum(s.iscrowd for s in segments) == 2
    assert [s.to_coco()["iscrowd"] for s in segments] == [0, 1, 0, 1, 0]
