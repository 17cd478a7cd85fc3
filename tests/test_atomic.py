"""Atomic file writing: complete files or none, old content kept on failure."""
import json
import os
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panopticlab.data.atomic import (
    atomic_write,
    check_writable,
    staging_folder,
    write_image,
    write_json,
    write_png,
)


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


def zlib_level_flag(png: bytes) -> int:
    """FLEVEL of the zlib stream in the first IDAT chunk (RFC 1950): 0 for level 1, 2 for level 6, 3 for 9."""
    position = 8
    while png[position + 4:position + 8] != b"IDAT":
        position += 12 + int.from_bytes(png[position:position + 4], "big")
    return png[position + 9] >> 6


@pytest.mark.parametrize("level, flag", [(None, 2), (1, 0), (6, 2), (9, 3), (0, 0)])
def test_write_png_compress_level_reaches_zlib_and_stays_lossless(tmp_path, level, flag):
    array = np.random.default_rng(0).integers(0, 4, size=(40, 50, 3), dtype=np.uint8)
    path = write_png(tmp_path / "x.png", array, compress_level=level)
    assert zlib_level_flag(path.read_bytes()) == flag
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), array)


@pytest.mark.parametrize("level", [-1, 10, 1.5, True, "1"])
def test_write_png_refuses_a_bad_compress_level(tmp_path, level):
    (tmp_path / "x.png").write_bytes(b"old")
    with pytest.raises(ValueError, match=r"x\.png: compress_level must be an integer from 0 to 9"):
        write_png(tmp_path / "x.png", np.zeros((2, 2), np.uint8), compress_level=level)
    assert (tmp_path / "x.png").read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_write_image_saves_in_the_format_asked(tmp_path):
    image = Image.fromarray(np.full((8, 8, 3), 100, np.uint8))
    path = write_image(tmp_path / "photo.bin", image, "JPEG", quality=90)
    with Image.open(path) as read:
        assert read.format == "JPEG" and read.size == (8, 8)


def test_write_image_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.jpg"
    target.write_bytes(b"old")
    with pytest.raises(OSError):  # JPEG cannot hold an alpha channel
        write_image(target, Image.new("RGBA", (4, 4)), "JPEG")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_the_data_is_flushed_and_fsynced_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", os.fstat(fd).st_size)), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda *paths: (calls.append(("replace", Path(paths[1]))), real_replace(*paths)))
    write_json(tmp_path / "a.json", {"a": 1})
    assert calls == [("fsync", len('{"a": 1}')), ("replace", tmp_path / "a.json")]


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


def test_a_symbolic_link_stays_and_its_target_is_replaced(tmp_path):
    target = tmp_path / "real" / "results.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json(link, {"new": 1})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == {"new": 1}
    assert leftovers(tmp_path) == [] and leftovers(target.parent) == []
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "real" / "not_yet.json")
    write_json(dangling, [1])
    assert dangling.is_symlink() and json.loads((tmp_path / "real" / "not_yet.json").read_text()) == [1]


def null_device(folder, name="null"):
    """A character device like /dev/null (memory driver, minor 3) in ``folder``, or skip.

    A node of its own, not /dev/null: a writer that replaced device nodes must not break the machine
    running the tests (as root it could).
    """
    path = folder / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        path.open("wb").close()
    except (OSError, AttributeError) as error:
        pytest.skip(f"cannot make a device node here: {error}")
    return path


@pytest.mark.skipif(os.name != "posix", reason="device nodes and FIFOs are POSIX")
@pytest.mark.parametrize("kind", ["device", "link to a device", "link to /dev/null", "FIFO"])
def test_devices_and_fifos_are_written_through_never_replaced(tmp_path, kind):
    import threading

    if kind == "device":
        path = null_device(tmp_path)
    elif kind == "link to a device":
        path = tmp_path / "null.json"
        path.symlink_to(null_device(tmp_path))
    elif kind == "link to /dev/null":  # the link is all a writer that went wrong could replace
        path = tmp_path / "null.json"
        path.symlink_to("/dev/null")
    else:
        path = tmp_path / "fifo"
        os.mkfifo(path)
        received = []
        reader = threading.Thread(target=lambda: received.append(open(path, "rb").read()), daemon=True)
        reader.start()
    write_json(path, {"a": 1})
    if kind == "FIFO":
        reader.join(timeout=10)
        assert received == [b'{"a": 1}']
        assert stat.S_ISFIFO(os.stat(path).st_mode)
    else:
        assert stat.S_ISCHR(os.stat(path).st_mode)
        assert os.path.islink(path) == kind.startswith("link")
    assert leftovers(tmp_path) == []


def test_a_folder_or_a_path_below_a_file_is_refused_before_writing(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=f"{folder}: cannot write a file there, it is a folder"):
        write_json(folder, {"a": 1})
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        write_json(link, {"a": 1})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    for below in (plain / "results.json", plain / "deeper" / "results.json"):
        with pytest.raises(NotADirectoryError, match=f"{below}: cannot write a file there, {plain} is a file"):
            write_json(below, {"a": 1})
    assert plain.read_text() == "x" and list(folder.iterdir()) == []
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_a_socket_is_refused_not_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative name: socket paths are limited to about 100 characters
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock")
        with pytest.raises(OSError, match="sock: cannot write a file there, it is not a regular file"):
            write_json("sock", {"a": 1})
        assert stat.S_ISSOCK(os.stat("sock").st_mode) and leftovers(tmp_path) == []


def test_the_temporary_is_hidden_beside_the_destination_and_removed_on_failure(tmp_path):
    target = tmp_path / "data.bin"  # beside it: os.replace is atomic only within one file system
    with pytest.raises(Boom):
        with atomic_write(target) as file:
            seen = leftovers(tmp_path)
            assert len(seen) == 1 and seen[0].startswith(".data.bin.") and seen[0].endswith(".tmp")
            file.write(b"partial")
            raise Boom()
    assert leftovers(tmp_path) == [] and not target.exists()


def test_check_writable_refuses_up_front_what_a_write_would_refuse(tmp_path, read_only):
    folder, plain, locked = tmp_path / "folder", tmp_path / "plain.txt", tmp_path / "locked"
    folder.mkdir()
    locked.mkdir()
    plain.write_text("x")
    read_only(locked)
    refused = [
        (folder, IsADirectoryError, f"--output {folder}: cannot write a file there, it is a folder"),
        (plain / "r.json", NotADirectoryError,
         f"--output {plain / 'r.json'}: cannot write a file there, {plain} is a file, not a folder"),
        (locked / "r.json", PermissionError,
         f"--output {locked / 'r.json'}: cannot write a file there, the folder {locked} is not writable"),
        (locked / "new" / "r.json", PermissionError,
         f"the folder {locked} is not writable (so {locked / 'new'} cannot be created)"),
    ]
    for path, error, message in refused:
        with pytest.raises(error) as raised:
            check_writable(path, "--output")
        assert message in str(raised.value) and "\n" not in str(raised.value)
    for path in (plain, tmp_path / "new" / "deeper" / "r.json", tmp_path / "r.json", "/dev/null"):
        assert check_writable(path, "--output") == Path(path)  # a file to replace, folders to create, a device
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "locked", "plain.txt"]  # nothing written
    assert list(locked.iterdir()) == []


def test_check_writable_of_a_folder_of_files(tmp_path, read_only):
    plain = tmp_path / "plain"
    plain.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    with pytest.raises(NotADirectoryError, match=f"pngs {plain}: cannot write files into it, it is a file"):
        check_writable(plain, "pngs", folder=True)
    with pytest.raises(NotADirectoryError, match=f"cannot create that folder, {plain} is a file, not a folder"):
        check_writable(plain / "sub", "pngs", folder=True)
    with pytest.raises(PermissionError, match=f"{locked}: cannot write files into it, the folder {locked} is not"):
        check_writable(locked, folder=True)
    with pytest.raises(PermissionError, match=r"\(so .*locked/sub cannot be created\)"):
        check_writable(locked / "sub", folder=True)
    assert check_writable(tmp_path / "new" / "pngs", folder=True) == tmp_path / "new" / "pngs"
    assert not (tmp_path / "new").exists()
