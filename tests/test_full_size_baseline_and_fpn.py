"""The full-size path end to end for baseline, panoptic-fpn: see tests/full_size.py (the
COCO files come from the ``coco_root`` fixture of tests/conftest.py)."""
import shutil

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


def test_resume_refuses_other_data_than_the_runs(coco_root, tmp_path, capsys):
    """A run trained with --data, resumed without it (or on another root): refused before any
    step, its categories.json left as it was."""
    run = tmp_path / "run"
    argv = ["train", "--model", "pspnet-tiny", "--profile", "ci", "--steps", "1", "--output", str(run), "--no-progress",
            "--device", "cpu", "--num-val", "1"]
    assert main([*argv, "--data", "coco", str(coco_root)]) == 0
    categories = (run / "categories.json").read_text()
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 1
    assert "was trained on --data coco" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(coco_root, other)  # another dataset of the same size and categories
    assert main([*argv, "--resume", "--data", "coco", str(other)]) == 1
    assert f"not on --data coco {other.resolve()}" in capsys.readouterr().err
    assert (run / "categories.json").read_text() == categories
    assert main([*argv, "--resume", "--data", "coco", str(coco_root)]) == 0  # the same data: it continues


def test_a_broken_validation_split_fails_before_training(coco_root, tmp_path, capsys):
    """A missing validation PNG is found before the first step, not after the training."""
    broken = tmp_path / "broken"
    shutil.copytree(coco_root, broken)
    png = sorted((broken / "annotations" / "panoptic_val").glob("*.png"))[-1]
    png.unlink()
    run = tmp_path / "run"
    assert main(["train", "--model", "pspnet-tiny", "--profile", "ci", "--steps", "1", "--data", "coco", str(broken),
                 "--output", str(run), "--no-progress", "--device", "cpu"]) == 1
    assert png.name in capsys.readouterr().err
    assert not (run / "last.pt").exists()
