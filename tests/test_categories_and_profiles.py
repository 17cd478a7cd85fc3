import numpy as np
import pytest

from panopticlab import get_profile, seed_everything
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS, Category, CategorySet, PanopticFormatError
from panopticlab.profiles import ProfileError


def test_category_lookups():
    assert CATS.thing_ids == [1, 2, 3, 4] and CATS.stuff_ids == [11, 12, 13, 14, 15]
    assert CATS.name(13) == "grass" and CATS.isthing(4) and not CATS.isthing(15)
    assert [CATS.train_id(i) for i in CATS.ids] == list(range(len(CATS)))
    lut = CATS.id_to_train_id_lut()
    assert lut[11] == 4 and lut[5] == 255
    with pytest.raises(PanopticFormatError, match="unknown category id 7"):
        CATS[7]
    with pytest.raises(PanopticFormatError, match="appears twice"):
        CategorySet([Category(1, "a", True), Category(1, "b", False)])


def test_categories_coco_round_trip():
    assert CategorySet.from_coco(CATS.to_coco()) == CATS
    with pytest.raises(PanopticFormatError, match="lacks the field 'isthing'"):
        CategorySet.from_coco([{"id": 1, "name": "x"}])


GOOD_RECORD = {"id": 3, "name": "ring", "isthing": 1, "color": [1, 2, 3]}
BAD_RECORDS = [
    ({"isthing": 2}, r"categories\[1\] \(id 3\): isthing must be 0, 1, true or false, got 2"),
    ({"isthing": "yes"}, r"categories\[1\] \(id 3\): isthing must be 0, 1, true or false, got 'yes'"),
    ({"isthing": None}, r"isthing must be 0, 1, true or false, got None"),
    ({"id": 9.7}, r"categories\[1\]: category id 9\.7 is not an integer \(a float\)"),  # int() read 9
    ({"id": "1"}, r"categories\[1\]: category id '1' is not an integer \(a str\)"),
    ({"id": True}, r"categories\[1\]: category id True is not an integer \(a bool\)"),  # int() read 1
    ({"id": None}, r"categories\[1\]: category id None is not an integer"),
    ({"id": 2**70}, r"categories\[1\]: category id 1180591620717411303424 is out of range .*\[0, 65535\]"),
    ({"id": -1}, r"category id -1 is out of range"),
    ({"name": None}, r"categories\[1\] \(id 3\): name must be a string, got None"),
    ({"color": 7}, r"categories\[1\] \(id 3\): color must be three integers from 0 to 255, got 7"),
    ({"color": [1, 2, 300]}, r"color must be three integers from 0 to 255, got \[1, 2, 300\]"),
    ({"color": [1, 2]}, r"color must be three integers"),
]


@pytest.mark.parametrize("change, pattern", BAD_RECORDS, ids=[repr(c) for c, _ in BAD_RECORDS])
def test_category_records_with_bad_values_are_refused_by_name(change, pattern):
    records = [CATS.to_coco()[0], {**GOOD_RECORD, **change}]
    with pytest.raises(PanopticFormatError, match=pattern):
        CategorySet.from_coco(records)


def test_category_records_accept_json_flags_and_integral_floats():
    read = CategorySet.from_coco([{**GOOD_RECORD, "isthing": True}, {**GOOD_RECORD, "id": 4.0, "isthing": 0.0},
                                  {"id": 5, "name": "sky", "isthing": False}])
    assert read.ids == [3, 4, 5] and read.thing_ids == [3] and read[5].color == (128, 128, 128)
    assert all(type(c.id) is int and type(c.isthing) is bool for c in read)
    with pytest.raises(PanopticFormatError, match=r"categories\[0\] is not a JSON object: 3"):
        CategorySet.from_coco([3])


def test_profiles(monkeypatch):
    monkeypatch.delenv("PANOPTICLAB_PROFILE", raising=False)
    assert get_profile().name == "laptop"
    monkeypatch.setenv("PANOPTICLAB_PROFILE", "ci")
    ci = get_profile()
    assert ci.name == "ci" and ci.device == "cpu" and ci.pick(ci=1, laptop=2) == 1
    assert get_profile("laptop").pick(ci=1, laptop=2, gpu=3) == 2
    assert ci.image_size < get_profile("laptop").image_size
    with pytest.raises(ProfileError, match="unknown profile 'fast'"):
        get_profile("fast")


def test_gpu_profile_without_cuda_says_so(monkeypatch):
    monkeypatch.setattr("panopticlab.profiles.cuda_available", lambda: False)
    with pytest.raises(ProfileError, match="needs a CUDA device"):
        get_profile("gpu")
    monkeypatch.setattr("panopticlab.profiles.cuda_available", lambda: True)
    assert get_profile("gpu").device == "cuda"


def test_work_dir_is_outside_the_book(monkeypatch, tmp_path):
    from panopticlab import work_dir

    monkeypatch.setenv("PANOPTICLAB_WORK_DIR", str(tmp_path / "run"))
    assert work_dir("synthetic") == tmp_path / "run" / "synthetic" and (tmp_path / "run" / "synthetic").is_dir()
    monkeypatch.delenv("PANOPTICLAB_WORK_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert work_dir("pq_data") == tmp_path / "cache" / "panopticlab" / "pq_data"


def test_seed_everything_repeats():
    import torch

    seed_everything(3)
    a = (np.random.rand(), torch.rand(2))
    seed_everything(3)
    b = (np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and torch.equal(a[1], b[1])
