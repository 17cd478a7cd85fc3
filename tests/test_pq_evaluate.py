"""Folder evaluation: file path vs in-memory path, workers vs one process, the CLI, the JSON
output, the printed table, and one clear error for every kind of bad input."""
import contextlib
import io
import json
import math
import platform
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticWarning, id_to_rgb
from panopticlab.data import png as png_module
from panopticlab.data.coco import (
    png_decoder,
    read_panoptic_png,
    write_predictions,
)
from panopticlab.metrics import PQAccumulator, evaluate_folders, evaluate_pairs, format_table, pq_compute, save_results
from panopticlab.commands import main as panopticlab_main
from panopticlab.metrics.files import read_id_png
from panopticlab.metrics.simulate import random_pair, write_result_set

NUM_IMAGES = 12


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(21)
    return [random_pair(rng, (40 + 8 * (k % 3), 56), scene_options={"crowd_probability": 0.3},
                        prediction_options={"void_fraction": 0.2, "split": 0.2, "merge": 0.2})
            for k in range(NUM_IMAGES)]


@pytest.fixture()
def result_set(pairs, tmp_path):
    return write_result_set(tmp_path / "set", pairs, CATS)


def numbers_close(a, b, tolerance):
    """Recursive comparison: equal keys, equal ints and strings, floats within tolerance (NaN == NaN)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(numbers_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tolerance
    return a == b


def test_folder_and_in_memory_paths_agree_exactly(pairs, result_set):
    from_files = evaluate_folders(**result_set, progress=False)
    in_memory = evaluate_pairs(pairs, CATS)
    assert numbers_close(from_files, in_memory, 0.0)
    assert from_files["num_images"] == NUM_IMAGES and from_files["All"]["n"] > 0


def test_workers_and_merging_give_the_single_process_results(pairs, result_set):
    import torch

    torch.ones(10**6).sum()  # use torch's thread pool before forking: the workers must not hang
    single = evaluate_folders(**result_set, progress=False)
    parallel = evaluate_folders(**result_set, workers=3, progress=False)
    assert numbers_close(single, parallel, 1e-12)  # counts exact, sums up to rounding order
    halves = [PQAccumulator(CATS), PQAccumulator(CATS)]
    for index, (gt, pred) in enumerate(pairs):
        halves[index % 2].update(gt, pred)
    merged = halves[0].merge(halves[1]).results()
    assert numbers_close(single, merged, 1e-12)
    assert merged["num_images"] == NUM_IMAGES


def test_workers_started_by_spawn_get_the_jobs_too(result_set, monkeypatch):
    """macOS and Windows start workers by spawn: they inherit nothing, the initializer ships the jobs."""
    import multiprocessing

    from panopticlab.metrics import evaluate

    monkeypatch.setattr(evaluate, "_pool_context", lambda: multiprocessing.get_context("spawn"))
    single = evaluate_folders(**result_set, progress=False)
    assert numbers_close(single, evaluate_folders(**result_set, workers=2, progress=False), 1e-12)


def test_a_set_written_by_panopticlab_evaluates_as_panopticapi_evaluates_it(pairs, tmp_path):
    """write_predictions' PNGs (zlib level 1, written from uint32 words) for both sides, read by both evaluators."""
    from panopticapi.evaluation import pq_compute as reference

    gt_json, pred_json = tmp_path / "gt.json", tmp_path / "pred.json"
    write_predictions(gt_json, None, [(k, f"{k:06d}.jpg", gt) for k, (gt, _) in enumerate(pairs)], CATS)
    write_predictions(pred_json, None, [(k, f"{k:06d}.jpg", pred) for k, (_, pred) in enumerate(pairs)], CATS)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = reference(str(gt_json), str(pred_json), str(tmp_path / "gt"), str(tmp_path / "pred"))
    ours = evaluate_folders(gt_json, pred_json, progress=False)
    assert numbers_close(ours, evaluate_pairs(pairs, CATS), 0.0)
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == theirs[group]["n"] > 0
        for key in ("pq", "sq", "rq"):
            assert abs(ours[group][key] - theirs[group][key]) <= 1e-9
    for category_id, scores in theirs["per_class"].items():
        assert abs(ours["per_class"][category_id]["pq"] - scores["pq"]) <= 1e-9


def test_pq_compute_prints_panopticapis_table(result_set):
    from panopticapi.evaluation import pq_compute as reference

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        theirs = reference(*(str(result_set[k]) for k in ("gt_json", "pred_json", "gt_folder", "pred_folder")))
    with contextlib.redirect_stdout(io.StringIO()) as ours_printed:
        ours = pq_compute(result_set["gt_json"], result_set["pred_json"], result_set["gt_folder"],
                          result_set["pred_folder"])
    table = format_table(ours)
    assert table in printed.getvalue()  # the same five lines, character for character
    assert ours_printed.getvalue() == table + "\n"
    assert ours["All"]["pq"] == pytest.approx(theirs["All"]["pq"], abs=1e-12)


def test_cli_prints_and_writes_json(result_set, tmp_path, capsys):
    output = tmp_path / "out" / "results.json"
    argv = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--gt-folder", str(result_set["gt_folder"]),
            "--pred-json", str(result_set["pred_json"]), "--pred-folder", str(result_set["pred_folder"]),
            "--workers", "2", "--output", str(output), "--per-class", "--breakdown", "--no-progress"]
    assert panopticlab_main(argv) == 0
    printed = capsys.readouterr().out
    assert "All" in printed and "ring (4, thing)" in printed and "PQ-dagger" in printed and "medium" in printed
    written = json.loads(output.read_text())
    expected = evaluate_folders(**result_set, progress=False)
    assert set(written) >= {"All", "Things", "Stuff", "per_class", "by_size", "pq_dagger"}
    assert written["All"] == pytest.approx(expected["All"], abs=1e-12)
    assert written["per_class"]["11"]["pq"] == pytest.approx(expected["per_class"][11]["pq"], abs=1e-12)
    assert written["by_size"]["small"]["Stuff"]["n"] == expected["by_size"]["small"]["Stuff"]["n"]


def test_cli_uses_every_available_cpu_unless_told(result_set, monkeypatch, capsys):
    from panopticlab.metrics import evaluate as module

    used = []
    real = module.evaluate_folders
    monkeypatch.setattr(module, "evaluate_folders",
                        lambda *a, workers, **k: used.append(workers) or real(*a, workers=workers, **k))
    monkeypatch.setattr(module, "available_cpus", lambda: 3)
    paths = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--pred-json", str(result_set["pred_json"]),
             "--no-progress"]
    assert panopticlab_main(paths) == 0
    assert panopticlab_main(paths + ["--workers", "1"]) == 0
    with pytest.raises(SystemExit) as stop:  # refused by the parser, before any work
        panopticlab_main(paths + ["--workers", "0"])
    assert stop.value.code == 2
    assert used == [3, 1]
    assert "must be at least 1, got 0" in capsys.readouterr().err


def test_cli_reports_bad_input_and_keeps_the_previous_output(result_set, tmp_path, capsys):
    output = tmp_path / "results.json"
    output.write_text('{"previous": true}')
    argv = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--pred-json", str(tmp_path / "nope.json"),
            "--output", str(output), "--no-progress"]
    assert panopticlab_main(argv) == 1
    assert "nope.json: JSON file not found" in capsys.readouterr().err
    assert output.read_text() == '{"previous": true}'


def test_save_results_is_strict_json_and_atomic(tmp_path):
    path = tmp_path / "r.json"
    save_results({"All": {"pq": math.nan, "n": 0}, "per_class": {3: {"pq": 0.5}}}, path)
    assert json.loads(path.read_text()) == {"All": {"pq": None, "n": 0}, "per_class": {"3": {"pq": 0.5}}}
    with pytest.raises(TypeError):
        save_results({"All": object()}, path)
    assert json.loads(path.read_text())["per_class"] == {"3": {"pq": 0.5}}  # the old file is intact


def test_png_reading_agrees_with_the_coco_reader_pillow_and_panopticapi(result_set):
    from panopticapi.utils import rgb2id

    assert png_decoder() is png_module._decode_with_wuffs  # pywuffs is installed with the test dependencies
    for png in sorted(result_set["gt_folder"].glob("*.png"))[:4]:
        ids = read_id_png(png)
        assert ids.dtype == np.uint32 and np.array_equal(ids, read_panoptic_png(png))
        data = png.read_bytes()
        for decoder in png_module.DECODERS.values():
            assert np.array_equal(decoder(data), ids), decoder.__name__
        with Image.open(png) as image:
            assert np.array_equal(ids, rgb2id(np.array(image, dtype=np.uint32)))


def test_the_slower_decoder_gives_the_same_evaluation(result_set, monkeypatch):
    """Where Wuffs has no wheel (macOS, Windows) the evaluator falls back to Pillow; its numbers must not move."""
    expected = evaluate_folders(**result_set, progress=False)
    monkeypatch.setattr(png_module, "png_decoder", lambda: png_module.DECODERS["pillow"])
    assert numbers_close(expected, evaluate_folders(**result_set, progress=False), 0.0)


# --- errors ------------------------------------------------------------------------------
def edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def first_segments(data):
    return data["annotations"][0]["segments_info"]


def write_ids(path, id_map):
    Image.fromarray(id_to_rgb(id_map)).save(path)


def break_set(paths, how):
    """Apply one defect to a good set; returns the error message expected (a regex)."""
    gt_json, pred_json = paths["gt_json"], paths["pred_json"]
    first_gt_png = paths["gt_folder"] / "000000.png"
    first_pred_png = paths["pred_folder"] / "000000.png"
    if how == "image missing from predictions":
        edit_json(pred_json, lambda d: d["annotations"].pop(3))
        return r"pred\.json: no prediction for the ground-truth images 3"
    if how == "image missing from ground truth":
        edit_json(pred_json, lambda d: d["annotations"].append({**d["annotations"][0], "image_id": 99}))
        return r"pred\.json: predictions for images 99 that .*gt\.json does not have"
    if how == "different sizes":
        write_ids(first_pred_png, np.pad(read_id_png(first_pred_png), ((0, 0), (0, 1))))
        return r"image 0 \(ground truth .*000000\.png.*\): ground truth is \(56, 40\) .* prediction is \(57, 40\)"
    if how == "PNG id without segment":
        edit_json(pred_json, lambda d: first_segments(d).pop(0))
        return r"image 0 .*: prediction ids \[\d+\] occur in the id map but no segment lists them"
    if how == "segment without pixels":
        edit_json(gt_json, lambda d: first_segments(d).append({"id": 424242, "category_id": 1, "iscrowd": 0}))
        return r"image 0 .*: ground truth segments \[424242\] are listed but have no pixel"
    if how == "unknown ground-truth category":
        edit_json(gt_json, lambda d: first_segments(d)[0].update(category_id=99))
        return r"image 0 .*: ground truth segment \d+ has category id 99, which is not among the categories"
    if how == "prediction category that does not exist":
        edit_json(pred_json, lambda d: first_segments(d)[1].update(category_id=77))
        return r"image 0 .*: prediction segment \d+ has category id 77"
    if how == "duplicate segment id":
        edit_json(pred_json, lambda d: first_segments(d).append(dict(first_segments(d)[0])))
        return r"image 0 .*, prediction: segment id \d+ is listed more than once"
    if how == "malformed segment record":
        edit_json(gt_json, lambda d: first_segments(d)[0].pop("category_id"))
        return (r"image 0 .*ground truth JSON .*gt\.json: segments_info\[0\]: malformed segment record "
                r".*lacks 'category_id'")
    if how == "missing PNG":
        first_pred_png.unlink()
        return r"pred/000000\.png: panoptic PNG not found"
    if how == "grey PNG":
        Image.fromarray(np.zeros((40, 56), np.uint8)).save(first_gt_png)
        return r"gt/000000\.png: a panoptic PNG must be 8-bit RGB .* colour type 0"
    if how == "truncated PNG":
        first_gt_png.write_bytes(first_gt_png.read_bytes()[:60])
        return r"gt/000000\.png: cannot decode the panoptic PNG; the file is truncated or corrupt"
    if how == "corrupt PNG data":
        write_damaged_idat(first_gt_png)
        return r"gt/000000\.png: cannot decode the panoptic PNG; the file is truncated or corrupt"
    if how == "PNG with a bad CRC":
        data = bytearray(first_pred_png.read_bytes())
        data[-20] ^= 0x01  # inside the IDAT chunk (12-byte IEND, 4-byte CRC, then IDAT data)
        first_pred_png.write_bytes(bytes(data))
        return r"pred/000000\.png: cannot decode the panoptic PNG; the file is truncated or corrupt \(.*checksum"
    if how == "not a PNG":
        first_gt_png.write_bytes(b"GIF89a" + bytes(40))
        return r"gt/000000\.png: not a PNG file"
    if how == "invalid JSON":
        gt_json.write_text("{")
        return r"gt\.json: not valid JSON"
    if how == "missing field":
        edit_json(gt_json, lambda d: d.pop("categories"))
        return r"gt\.json: the field 'categories' is missing or not a list"
    if how == "missing folder":
        paths["pred_folder"] = paths["pred_folder"].with_name("elsewhere")
        return r"elsewhere: prediction PNG folder not found"
    if how == "two annotations of one image":
        edit_json(gt_json, lambda d: d["annotations"].append(d["annotations"][0]))
        return r"gt\.json: image 0 has more than one annotation"
    if how == "annotation without segments_info":
        edit_json(pred_json, lambda d: d["annotations"][2].pop("segments_info"))
        return r"pred\.json: the annotation of image 2 lacks 'segments_info'"
    if how == "file_name null":
        edit_json(gt_json, lambda d: d["annotations"][0].update(file_name=None))
        return r"gt\.json: the annotation of image 0: file_name must be a non-empty string, got None"
    if how == "file_name a number":
        edit_json(pred_json, lambda d: d["annotations"][1].update(file_name=7))
        return r"pred\.json: the annotation of image 1: file_name must be a non-empty string, got 7"
    if how == "image_id a list":
        edit_json(gt_json, lambda d: d["annotations"][2].update(image_id=[2]))
        return r"gt\.json: annotations\[2\]: image_id \[2\] is neither an integer nor a string \(a list\)"
    if how == "image_id a dict":
        edit_json(pred_json, lambda d: d["annotations"][0].update(image_id={"id": 0}))
        return r"pred\.json: annotations\[0\]: image_id \{'id': 0\} is neither an integer nor a string \(a dict\)"
    if how == "image_id beyond 64 bits":
        edit_json(gt_json, lambda d: d["annotations"][0].update(image_id=2**70))
        return r"gt\.json: annotations\[0\]: image_id 1180591620717411303424 is out of range"
    if how == "segment id beyond 64 bits":
        edit_json(pred_json, lambda d: first_segments(d)[0].update(id=2**70))
        return (r"image 0 .*prediction JSON .*pred\.json: segments_info\[0\]: segment id 1180591620717411303424 "
                r"is out of range \(it must fit in a signed 64-bit integer\)")
    if how == "category_id beyond 64 bits":
        edit_json(gt_json, lambda d: first_segments(d)[1].update(category_id=-2**70))
        return (r"image 0 .*ground truth JSON .*gt\.json: segments_info\[1\]: segment \d+: category_id -\d+ "
                r"is out of range")
    if how == "category id beyond 64 bits":
        edit_json(gt_json, lambda d: d["categories"][0].update(id=2**70))
        return r"gt\.json: categories\[0\]: category id 1180591620717411303424 is out of range"
    if how == "isthing yes":
        edit_json(gt_json, lambda d: d["categories"][2].update(isthing="yes"))
        return r"gt\.json: categories\[2\] \(id 3\): isthing must be 0, 1, true or false, got 'yes'"
    if how == "deeply nested JSON":
        pred_json.write_text('{"annotations": ' + "[" * 100_000 + "]" * 100_000 + "}")
        return r"pred\.json: cannot read the JSON, its arrays or objects are nested too deeply"
    if how == "a list, not an object":
        gt_json.write_text("[]")
        return r"gt\.json: expected a JSON object with the fields \['annotations', 'categories'\]"
    if how == "annotations not a list":
        edit_json(pred_json, lambda d: d.update(annotations={"0": d["annotations"][0]}))
        return r"pred\.json: the field 'annotations' is missing or not a list"
    if how == "no ground-truth annotations":
        edit_json(gt_json, lambda d: d.update(annotations=[]))
        return r"gt\.json: 'annotations' is empty: there is no ground-truth image to evaluate on"
    if how == "no prediction annotations":
        edit_json(pred_json, lambda d: d.update(annotations=[]))
        return r"pred\.json: 'annotations' is empty: there is no prediction for any of the 12 ground-truth images"
    raise AssertionError(how)


def write_damaged_idat(png):
    """Spoil the deflate stream of a PNG's IDAT chunk and fix up its CRC, so that only decoding can tell.

    (torchvision's decode_png crashes the process on such a file.)
    """
    data = png.read_bytes()
    position = 8
    while data[position + 4:position + 8] != b"IDAT":
        position += 12 + int.from_bytes(data[position:position + 4], "big")
    length = int.from_bytes(data[position:position + 4], "big")
    payload = bytearray(data[position + 8:position + 8 + length])
    payload[2:6] = b"\xff\xff\xff\xff"
    chunk = b"IDAT" + bytes(payload)
    png.write_bytes(data[:position + 4] + chunk + zlib.crc32(chunk).to_bytes(4, "big") + data[position + 12 + length:])


DEFECTS = ["image missing from predictions", "image missing from ground truth", "different sizes",
           "PNG id without segment", "segment without pixels", "unknown ground-truth category",
           "prediction category that does not exist", "duplicate segment id", "malformed segment record",
           "missing PNG", "grey PNG", "truncated PNG", "corrupt PNG data", "PNG with a bad CRC", "not a PNG",
           "invalid JSON", "missing field", "missing folder", "two annotations of one image",
           "annotation without segments_info"] + (HOSTILE_JSON := [
               "file_name null", "file_name a number", "image_id a list", "image_id a dict", "image_id beyond 64 bits",
               "segment id beyond 64 bits", "category_id beyond 64 bits", "category id beyond 64 bits", "isthing yes",
               "deeply nested JSON", "a list, not an object", "annotations not a list",
               "no ground-truth annotations", "no prediction annotations"])


@pytest.mark.parametrize("defect", DEFECTS)
def test_bad_input_gives_one_clear_error(result_set, defect):
    message = break_set(result_set, defect)
    with pytest.raises(PanopticFormatError, match=message):
        evaluate_folders(**result_set, progress=False)


@pytest.mark.parametrize("defect", HOSTILE_JSON)
def test_hostile_json_gets_one_line_from_the_command_line(result_set, defect, capsys):
    """Values JSON allows and COCO does not: one line naming the file and the field, exit status 1."""
    message = break_set(result_set, defect)
    argv = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--gt-folder", str(result_set["gt_folder"]),
            "--pred-json", str(result_set["pred_json"]), "--pred-folder", str(result_set["pred_folder"]),
            "--workers", "1", "--no-progress"]
    assert panopticlab_main(argv) == 1
    printed = capsys.readouterr().err
    assert printed.count("\n") == 1 and re.match(rf"error: .*{message}", printed), printed


def test_predictions_without_a_segment_score_as_panopticapi_with_a_warning(result_set, capsys):
    """Every prediction void: the results are panopticapi's (all missed), and one line says so."""
    from panopticapi.evaluation import pq_compute as reference

    edit_json(result_set["pred_json"], lambda d: [a.update(segments_info=[]) for a in d["annotations"]])
    for png in result_set["pred_folder"].glob("*.png"):
        write_ids(png, np.zeros_like(read_id_png(png)))
    message = r"pred\.json: the predictions list no segment in any of the 12 images; every ground-truth segment " \
              r"counts as missed"
    with pytest.warns(PanopticWarning, match=message):
        ours = evaluate_folders(**result_set, progress=False)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = reference(*(str(result_set[k]) for k in ("gt_json", "pred_json", "gt_folder", "pred_folder")))
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["n"] == theirs[group]["n"] > 0 and ours[group]["pq"] == theirs[group]["pq"] == 0.0
    assert {k: v["pq"] for k, v in ours["per_class"].items()} == {k: v["pq"] for k, v in theirs["per_class"].items()}
    argv = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--pred-json", str(result_set["pred_json"]),
            "--workers", "1", "--no-progress"]
    assert panopticlab_main(argv) == 0
    printed = capsys.readouterr()
    assert re.fullmatch(rf"warning: .*{message}\n", printed.err) and format_table(ours) in printed.out


@pytest.mark.parametrize("defect", ["prediction category that does not exist", "truncated PNG", "corrupt PNG data"])
def test_errors_in_worker_processes_reach_the_caller(result_set, defect):
    message = break_set(result_set, defect)
    with pytest.raises(PanopticFormatError, match=message):
        evaluate_folders(**result_set, workers=2, progress=False)


def test_argument_errors(result_set):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        evaluate_folders(**result_set, workers=0, progress=False)


ALLOCATOR_PROBE = """
import ctypes
import numpy as np
from panopticlab.metrics.files import reuse_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

def mapped_blocks_of_a_4mib_array():
    before = libc.mallinfo2().hblks
    block = np.empty(4 << 20, np.uint8)
    return libc.mallinfo2().hblks - before

print(mapped_blocks_of_a_4mib_array(), end=" ")
reuse_freed_memory()
print(mapped_blocks_of_a_4mib_array())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator thresholds; a no-op elsewhere")
def test_freed_arrays_are_kept_for_reuse_after_the_first_image():
    """A fresh process maps a 4 MiB array with mmap (so freeing it unmaps it); afterwards it comes from the heap."""
    done = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "0"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_worker_that_dies_ends_the_run_with_an_error_naming_it(result_set, monkeypatch, capsys):
    """A worker killed by a signal (the out-of-memory killer sends SIGKILL) must not leave the run waiting."""
    import multiprocessing
    import os
    import signal
    import threading

    from panopticlab.metrics import WorkerDiedError, evaluate

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the monkeypatched worker reaches the workers by fork only")
    real = evaluate.evaluate_jobs
    doomed = evaluate.load_result_set(**result_set)[1][5].image_id  # the sixth image kills its worker

    def dies_on_the_sixth_image(jobs, *args, **kwargs):
        if multiprocessing.parent_process() is not None and any(job.image_id == doomed for job in jobs):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(jobs, *args, **kwargs)

    monkeypatch.setattr(evaluate, "_pool_context", lambda: multiprocessing.get_context("fork"))
    monkeypatch.setattr(evaluate, "evaluate_jobs", dies_on_the_sixth_image)
    outcome = []

    def run():
        try:
            evaluate_folders(**result_set, workers=2, progress=False)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert outcome, "evaluate_folders is still waiting for a worker that died"
    error = outcome[0]
    assert isinstance(error, WorkerDiedError), error
    assert re.search(r"worker process \d+ died \(killed by signal 9, SIGKILL\) while evaluating images \d+\.\.\d+",
                     str(error)), str(error)
    first, last = map(int, re.search(r"images (\d+)\.\.(\d+)", str(error)).groups())
    assert first <= 5 <= last
    # the command line prints it as one line and fails
    capsys.readouterr()
    argv = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--pred-json", str(result_set["pred_json"]),
            "--workers", "2", "--no-progress"]
    assert panopticlab_main(argv) == 1
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 1 and re.match(r"error: worker process \d+ died \(killed by signal 9", printed[0]), printed


def test_cli_output_onto_a_link_a_device_or_below_a_file(result_set, tmp_path, capsys):
    """--output follows a link to its file, writes through to a device, and refuses a path below a file."""
    import os
    import stat

    argv = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--pred-json", str(result_set["pred_json"]),
            "--workers", "1", "--no-progress", "--output"]
    real = tmp_path / "results.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    null = tmp_path / "null.json"
    null.symlink_to(os.devnull)
    assert panopticlab_main(argv + [str(link)]) == 0
    assert link.is_symlink() and "All" in json.loads(real.read_text())
    assert panopticlab_main(argv + [str(null)]) == 0
    assert null.is_symlink() and stat.S_ISCHR(os.stat(null).st_mode)
    capsys.readouterr()
    assert panopticlab_main(argv + [str(real / "results.json")]) == 1
    printed = capsys.readouterr().err.strip().splitlines()
    below = real / "results.json"
    assert printed == [f"error: --output {below}: cannot write a file there, {real} is a file, not a folder"]


@pytest.mark.parametrize("where", ["in a folder to create in a read-only one", "in a read-only folder", "below a file",
                                   "an existing folder"])
def test_cli_refuses_an_output_it_could_not_write_before_evaluating(result_set, tmp_path, read_only, monkeypatch,
                                                                     capsys, where):
    from panopticlab.metrics import evaluate as module

    monkeypatch.setattr(module, "evaluate_folders", lambda *a, **k: pytest.fail("the evaluation started"))
    locked, plain = tmp_path / "locked", tmp_path / "f"
    locked.mkdir()
    read_only(locked)
    plain.write_text("x")
    not_writable = f"cannot write a file there, the folder {locked} is not writable"
    output, reason = {
        "in a folder to create in a read-only one": (locked / "new" / "r.json",
                                                     f"{not_writable} (so {locked / 'new'} cannot be created)"),
        "in a read-only folder": (locked / "r.json", not_writable),
        "below a file": (plain / "r.json", f"cannot write a file there, {plain} is a file, not a folder"),
        "an existing folder": (tmp_path, "cannot write a file there, it is a folder"),
    }[where]
    argv = ["evaluate", "--gt-json", str(result_set["gt_json"]), "--pred-json", str(result_set["pred_json"]),
            "--no-progress", "--output", str(output)]
    assert panopticlab_main(argv) == 1
    assert capsys.readouterr().err == f"error: --output {output}: {reason}\n"
