"""The full-size path end to end for baseline, panoptic-fpn: see tests/full_size.py (the
COCO files come from the ``coco_root`` fixture of tests/conftest.py)."""
import pytest
from full_size import check_full_model_on_coco_files

from panopticlab.commands import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family", ["baseline", "panoptic-fpn"])
def test_train_and_evaluate_a_full_model_on_coco_files(family, coco_root, tmp_path):
    check_full_model_on_coco_files(family, coco_root, tmp_path)


def test_bad_data_options_are_named(coco_root, tmp_path, capsys):
    argv = ["train", "--model", "panoptic-fpn-full", "--profile", "ci", "--steps", "1", "--output", str(tmp_path / "r")]
    assert main(argv + ["--data", "coco", str(tmp_path / "nowhere")]) == 1
    assert "panoptic_train.json: no COCO panoptic 'train' split" in capsys.readouterr().err
    assert main(argv + ["--data", "kitti", str(coco_root)]) == 1
    assert "unknown dataset kind 'kitti'" in capsys.readouterr().err
    assert main(["train", "--model", "panoptic-fpn-full", "--config", "tiny", "--output", str(tmp_path / "r")]) == 1
    assert "already names its size" in capsys.readouterr().err
    assert not (tmp_path / "r" / "last.pt").exists()
    # no output may replace an input: the ground truth of the split it scores
    truth = coco_root / "annotations" / "panoptic_val.json"
    before = truth.read_bytes()
    assert main(["evaluate", "--model", "panoptic-fpn-tiny", "--pretrained", "--data", "coco", str(coco_root),
                 "--predictions", str(truth), "--no-progress"]) == 1
    assert "--predictions" in capsys.readouterr().err and truth.read_bytes() == before
    # the shipped weights predict the built-in categories, not these
    assert main(["evaluate", "--model", "panoptic-fpn-tiny", "--pretrained", "--data", "coco", str(coco_root),
                 "--no-progress"]) == 1
    assert "not the built-in dataset's" in capsys.readouterr().err
