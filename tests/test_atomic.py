"""Atomic file writing: complete files or none, old content kept on failure."""
import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

from panopticlab.data.atomic import atomic_write, staging_folder, write_json, write_png


class Boom(RuntimeError):
    pass


def leftovers(folder):
    """Hidden temporary or staging entries left in a folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_creates_parents_and_writes(tmp_path):
    target = tmp_path / "a" / "b" / "data.bin"
    with atomic_write(target) as file:
        file.write(b"\x00\x01payload")
    assert target.read_bytes() == b"\x00\x01payload"
    assert leftovers(target.parent) == []


def test_atomic_write_text_mode_is_utf8(tmp_path):
    target = tmp_path / "note.txt"
    with atomic_write(target, "w") as file:
        file.write("Zürich – straße")
    assert target.read_bytes() == "Zürich – straße".encode("utf-8")


def test_failed_write_keeps_old_content_and_removes_temporary(tmp_path):
    target = tmp_path / "data.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_write(target, "w") as file:
            file.write("new but incomplete")
            raise Boom()
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_failed_write_of_new_file_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.bin") as file:
            file.write(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_permissions_follow_umask_for_new_files_and_are_kept_for_old_ones(tmp_path):
    reference = tmp_path / "plain_open.txt"
    reference.write_text("x")  # what open() gives under the current umask
    new = tmp_path / "new.txt"
    with atomic_write(new, "w") as file:
        file.write("x")
    assert stat.S_IMODE(new.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)

    existing = tmp_path / "existing.txt"
    existing.write_text("x")
    os.chmod(existing, 0o640)
    with atomic_write(existing, "w") as file:
        file.write("y")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'ab'"):
        with atomic_write(tmp_path / "x", "ab"):
            pass


def test_write_json_converts_numpy_and_round_trips(tmp_path):
    obj = {"id": np.int64(7), "area": np.float32(0.5), "bbox": np.arange(4), "flag": np.bool_(True), "name": "x"}
    path = write_json(tmp_path / "sub" / "a.json", obj)
    assert json.loads(path.read_text()) == {"id": 7, "area": 0.5, "bbox": [0, 1, 2, 3], "flag": True, "name": "x"}


def test_write_json_unserialisable_leaves_old_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"old": 1}')
    with pytest.raises(TypeError, match="set"):
        write_json(path, {"bad": {1, 2}})
    assert json.loads(path.read_text()) == {"old": 1}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("array, mode", [
    (np.arange(12, dtype=np.uint8).reshape(3, 4), "L"),
    (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000, "I;16"),
    (np.arange(36, dtype=np.uint8).reshape(3, 4, 3), "RGB"),
    (np.arange(48, dtype=np.uint8).reshape(3, 4, 4), "RGBA"),
])
def test_write_png_is_lossless(tmp_path, array, mode):
    path = write_png(tmp_path / "x.png", array)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == mode
        np.testing.assert_array_equal(np.asarray(image), array)


@pytest.mark.parametrize("array", [np.zeros((3, 4), np.int32), np.zeros((3, 4, 2), np.uint8),
                                   np.zeros((3, 4, 3), np.float32), np.zeros((0, 4), np.uint8)])
def test_write_png_refuses_what_png_cannot_hold(tmp_path, array):
    with pytest.raises(ValueError, match="x.png"):
        write_png(tmp_path / "x.png", array)
    assert not (tmp_path / "x.png").exists()


def test_staging_folder_commits_on_success(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.txt").write_text("old a")
    (folder / "keep.txt").write_text("untouched")
    with staging_folder(folder) as stage:
        (stage / "a.txt").write_text("new a")
        (stage / "b.txt").write_text("new b")
        assert not (folder / "b.txt").exists()  # invisible until the block ends
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "a.txt": "new a", "b.txt": "new b", "keep.txt": "untouched"}


def test_staging_folder_discards_on_error(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.txt").write_text("old a")
    with pytest.raises(Boom):
        with staging_folder(folder) as stage:
            (stage / "a.txt").write_text("new a")
            raise Boom()
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"a.txt": "old a"}


def test_staging_folder_removes_the_folder_it_created_on_error(tmp_path):
    folder = tmp_path / "new" / "pngs"
    with pytest.raises(Boom):
        with staging_folder(folder) as stage:
            (stage / "a.txt").write_text("x")
            raise Boom()
    assert not folder.exists()
