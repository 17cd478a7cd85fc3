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


def test_seed_everything_repeats():
    import torch

    seed_everything(3)
    a = (np.random.rand(), torch.rand(2))
    seed_everything(3)
    b = (np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and torch.equal(a[1], b[1])
