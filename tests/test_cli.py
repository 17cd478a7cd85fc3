"""The command line: each subcommand does what its help says."""
import json
import subprocess
import sys

import pytest

from panopticlab.cli import main
from panopticlab.data.coco import CocoPanoptic
from panopticlab.data.synthetic import render_scene


def test_data_synth_writes_a_coco_panoptic_split(tmp_path):
    assert main(["data", "synth", str(tmp_path), "--split", "val", "--num", "3", "--size", "40", "56",
                 "--seed", "5", "--quiet"]) == 0
    dataset = CocoPanoptic(tmp_path / "annotations" / "panoptic_val.json")
    assert len(dataset) == 3
    sample = dataset[2]
    expected = render_scene(2, size=(40, 56), seed=5, split="val")
    assert sample.image.shape == (40, 56, 3)
    assert sample.panoptic.equals(expected.panoptic)
    assert (tmp_path / "val" / sample.file_name).exists()


def test_data_synth_rejects_three_sizes(tmp_path):
    with pytest.raises(SystemExit, match="--size takes one side or a height and a width"):
        main(["data", "synth", str(tmp_path), "--size", "1", "2", "3"])


def test_book_student_edition(tmp_path):
    assert main(["book", "student", str(tmp_path)]) == 0
    notebooks = sorted(tmp_path.glob("*.ipynb"))
    assert notebooks, "no student notebooks written"
    text = notebooks[0].read_text()
    assert "BEGIN SOLUTION" not in text and "NotImplementedError" in text
    json.loads(text)


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "panopticlab.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "data" in out.stdout and "evaluate" in out.stdout and "book" in out.stdout


def test_data_check_accepts_a_good_set_and_names_the_bad_file(tmp_path, capsys):
    main(["data", "synth", str(tmp_path), "--num", "2", "--size", "32", "--quiet"])
    json_path = str(tmp_path / "annotations" / "panoptic_val.json")
    assert main(["data", "check", json_path, "--quiet"]) == 0
    assert "ok: 2 images" in capsys.readouterr().out
    png = tmp_path / "annotations" / "panoptic_val" / "000000000001.png"
    png.write_bytes(png.read_bytes()[:50])  # truncate one PNG
    assert main(["data", "check", json_path, "--quiet"]) == 1
    assert "000000000001.png" in capsys.readouterr().err
