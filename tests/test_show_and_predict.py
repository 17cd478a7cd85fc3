"""`panopticlab predict` and `panopticlab show` end to end, on the built-in data written to disk.

predict: a shipped tiny model on images of three sizes (one a JPEG) gives COCO panoptic
files that the package's readers, `data check` and panopticapi all read, and a second run
skips what the first wrote. show: a PNG per image asked for, the worst images by their own
PQ, and each unmatched segment marked as `metrics.error_analysis` classes it.
"""
import contextlib
import dataclasses
import io
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

import panopticlab.commands as commands
from panopticlab.commands import predict as predict_command
from panopticlab.commands import show as show_command
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.coco import CocoPanoptic, write_coco_panoptic
from panopticlab.data.panoptic import PanopticSegmentation
from panopticlab.data.synthetic import render_scene
from panopticlab.engine.pretrained import FOLDER
from panopticlab.metrics import error_analysis, evaluate_folders, evaluate_pairs, match_segments
from panopticlab.metrics.simulate import write_result_set
from panopticlab.viz.review import FALSE_ALARM, MERGE, MISS, SPLIT, ResultFiles, review_image, show_prediction

MODEL = "panoptic-fpn-tiny"
SIZES = {0: (64, 80), 1: (48, 48), 2: (72, 56)}  # (height, width) of each image; image 1 is a JPEG


def main(argv):
    """``panopticlab ARGV``: ``show`` and ``predict`` are among its sub-commands."""
    assert show_command in commands.SUBCOMMANDS and predict_command in commands.SUBCOMMANDS
    return commands.main(argv)


def run(argv):
    """``(exit status, stdout, stderr)`` of ``main(argv)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A COCO panoptic split of three synthetic images of different sizes, one of them a JPEG."""
    root = tmp_path_factory.mktemp("data")
    samples = [render_scene(i, size=size, seed=3, split="val") for i, size in SIZES.items()]
    samples[1] = dataclasses.replace(samples[1], file_name="000000000001.jpg")
    return write_coco_panoptic(root, "val", samples, CATS)


@pytest.fixture(scope="module")
def predicted(dataset, tmp_path_factory):
    output = tmp_path_factory.mktemp("predicted") / "pred.json"
    status, out, err = run(["predict", str(dataset["image_folder"]), "--model", MODEL, "--pretrained",
                            "--output", str(output), "--no-progress"])
    assert status == 0, err
    assert out.startswith("predicted 3 images in ")
    return output


def test_predict_writes_what_the_readers_and_panopticapi_read(dataset, predicted):
    data = json.loads(predicted.read_text())
    assert [a["image_id"] for a in data["annotations"]] == [0, 1, 2]  # the file stems: the ground truth's ids
    assert data["model"] == {"name": MODEL, "weights": "pretrained"}
    assert data["categories"] == CATS.to_coco()
    assert not predicted.with_name("pred.json.partial").exists()
    split = CocoPanoptic(predicted, image_folder=dataset["image_folder"])  # what `data check` reads
    for index in range(len(split)):
        sample = split[index]
        assert sample.panoptic.shape == SIZES[sample.image_id] == sample.image.shape[:2]
    assert run(["data", "check", str(predicted), "--image-folder", str(dataset["image_folder"]), "--quiet"])[0] == 0

    from panopticapi.evaluation import pq_compute

    gt_json, gt_folder = str(dataset["json_path"]), str(dataset["png_folder"])
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = pq_compute(gt_json, str(predicted), gt_folder, str(predicted.with_suffix("")))
    ours = evaluate_folders(gt_json, predicted, gt_folder, progress=False)
    for group in ("All", "Things", "Stuff"):
        assert math.isclose(theirs[group]["pq"], ours[group]["pq"], abs_tol=1e-9)
    assert ours["All"]["n"] > 0


def test_predict_from_a_checkpoint_file_matches_the_shipped_weights(dataset, predicted, tmp_path):
    output = tmp_path / "again.json"
    status, _, err = run(["predict", str(dataset["image_folder"]), "--model", MODEL, "--checkpoint",
                          str(FOLDER / f"{MODEL}.pt"), "--output", str(output), "--no-progress"])
    assert status == 0, err
    for name in ("000000000000.png", "000000000001.png", "000000000002.png"):
        assert (output.with_suffix("") / name).read_bytes() == (predicted.with_suffix("") / name).read_bytes()
    # other weights into the same predictions are refused, not mixed in
    status, _, err = run(["predict", str(dataset["image_folder"]), "--model", MODEL, "--pretrained",
                          "--output", str(output), "--no-progress"])
    assert status == 1 and err.count("\n") == 1 and f"{output}: holds predictions of" in err


def test_a_second_run_skips_the_images_written(dataset, tmp_path):
    images = sorted(dataset["image_folder"].iterdir())
    output = tmp_path / "pred.json"
    base = ["--model", MODEL, "--pretrained", "--output", str(output), "--no-progress"]
    assert run(["predict", *map(str, images[:2]), *base])[0] == 0
    pngs = output.with_suffix("")
    first = {p.name: p.stat().st_mtime_ns for p in pngs.iterdir()}
    assert sorted(first) == ["000000000000.png", "000000000001.png"]

    status, out, _ = run(["predict", str(dataset["image_folder"]), *base])
    assert status == 0 and out.startswith("predicted 1 images (2 written before, skipped)")
    assert {name: (pngs / name).stat().st_mtime_ns for name in first} == first  # not written again
    assert [a["image_id"] for a in json.loads(output.read_text())["annotations"]] == [0, 1, 2]
    status, out, _ = run(["predict", str(dataset["image_folder"]), *base])
    assert out.startswith("predicted 0 images (3 written before, skipped)")


def test_an_interrupted_run_resumes_from_its_journal(dataset, tmp_path, monkeypatch):
    from panopticlab.engine import predict_images as engine
    from panopticlab.engine.pretrained import load_pretrained

    model = load_pretrained(MODEL)[0]
    output = tmp_path / "pred.json"
    real, calls = engine.predict, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine.predict_images(model, [dataset["image_folder"]], output, CATS, progress=False)
    journal = tmp_path / "pred.json.partial"
    assert not output.exists() and journal.is_file()  # no JSON before the end
    with open(journal, "a") as log:
        log.write('{"image": {"id": 1, "fi')  # the line a crash cut short
    monkeypatch.setattr(engine, "predict", real)
    done = engine.predict_images(model, [dataset["image_folder"]], output, CATS, progress=False)
    assert (done.skipped, done.predicted) == ([0], [1, 2])
    assert not journal.exists()
    assert [a["image_id"] for a in json.loads(output.read_text())["annotations"]] == [0, 1, 2]


def test_predict_show_draws_each_image(dataset, tmp_path):
    output = tmp_path / "pred.json"
    status, out, err = run(["predict", str(dataset["image_folder"]), "--model", MODEL, "--pretrained",
                            "--output", str(output), "--show", "--no-progress"])
    assert status == 0, err
    drawn = tmp_path / "pred-drawn"
    assert sorted(p.name for p in drawn.iterdir()) == ["000000000000.png", "000000000001.png", "000000000002.png"]
    assert Image.open(drawn / "000000000001.png").format == "PNG"


def test_grey_and_transparent_images_are_predicted_in_rgb(tmp_path):
    from panopticlab.engine.predict_images import predict_images
    from panopticlab.engine.pretrained import load_pretrained

    image = render_scene(0, size=(40, 52), seed=1, split="val").image
    Image.fromarray(image).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(image).convert("RGBA").save(tmp_path / "rgba.png")
    run = predict_images(load_pretrained(MODEL)[0], [tmp_path], tmp_path / "out" / "pred.json", CATS, progress=False)
    assert run.predicted == ["grey", "rgba"]  # stems that are not numbers stay strings
    split = CocoPanoptic(tmp_path / "out" / "pred.json", image_folder=tmp_path)
    assert [split.panoptic(i).shape for i in range(2)] == [(40, 52), (40, 52)]


@pytest.mark.parametrize("case, fault", [
    ("empty", "no JPEG or PNG images in this folder"),
    ("text.png", "not an image"),
    ("notes.txt", "not a JPEG or PNG image (its name ends in .txt"),
    ("missing.jpg", "no such image file or folder"),
])
def test_bad_images_get_one_line_naming_the_file(tmp_path, case, fault):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.png").write_text("not pixels")
    (tmp_path / "notes.txt").write_text("hello")
    output = tmp_path / "out" / "pred.json"
    status, _, err = run(["predict", str(tmp_path / case), "--model", MODEL, "--pretrained", "--output",
                          str(output), "--no-progress"])
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: {tmp_path / case}: {fault}")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_truncated_image_stops_the_run_keeping_what_was_written(dataset, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted(dataset["image_folder"].iterdir()):
        (folder / path.name).write_bytes(path.read_bytes())
    whole = (folder / "000000000002.png").read_bytes()
    (folder / "zz.png").write_bytes(whole[:len(whole) // 2])  # a valid header, the pixels cut short
    output = tmp_path / "pred.json"
    status, _, err = run(["predict", str(folder), "--model", MODEL, "--pretrained", "--output", str(output),
                          "--no-progress"])
    assert status == 1 and err.count("\n") == 1 and f"{folder / 'zz.png'}: cannot decode the image" in err
    assert len(list(output.with_suffix("").glob("*.png"))) == 3  # the images before it stay written
    (folder / "zz.png").unlink()
    status, out, _ = run(["predict", str(folder), "--model", MODEL, "--pretrained", "--output", str(output),
                          "--no-progress"])
    assert status == 0 and out.startswith("predicted 0 images (3 written before, skipped)")


@pytest.mark.parametrize("options, fault", [
    (["--model", "no-such-model", "--pretrained", "--output", "{tmp}/p.json"], "unknown model 'no-such-model'"),
    (["--model", MODEL, "--pretrained", "--output", "{tmp}/p"], "--output {tmp}/p: give the predictions JSON a name "
                                                                 "ending in .json"),
    (["--model", MODEL, "--pretrained", "--output", "{images}/p.json"], "--output {images}/p.json: this would "
                                                                        "overwrite"),
    (["--model", MODEL, "--pretrained", "--output", "{images}.json"], "--output {images}: this would overwrite"),
])
def test_bad_options_are_refused_in_one_line(dataset, tmp_path, options, fault):
    images = dataset["image_folder"]
    options = [o.format(tmp=tmp_path, images=images) for o in options]
    status, _, err = run(["predict", str(images), *options, "--no-progress"])
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith("error: " + fault.format(tmp=tmp_path, images=images)), err
    assert sorted(p.name for p in images.iterdir()) == ["000000000000.png", "000000000001.jpg", "000000000002.png"]


# --- show -------------------------------------------------------------------------------
def test_show_draws_one_image_and_the_worst(dataset, predicted, tmp_path):
    files = ["--gt-json", str(dataset["json_path"]), "--pred-json", str(predicted)]
    status, out, err = run(["show", *files, "--image-id", "1", "--output", str(tmp_path / "one.png")])
    assert status == 0, err
    assert Image.open(tmp_path / "one.png").format == "PNG"

    status, out, err = run(["show", *files, "--worst", "2", "--output", str(tmp_path / "worst"), "--no-progress"])
    assert status == 0, err
    # the worst two by each image's own PQ, computed here from the files by the evaluator
    gt, pred = CocoPanoptic(dataset["json_path"]), CocoPanoptic(predicted, image_folder=dataset["image_folder"])
    alone = {i: evaluate_pairs([(gt.panoptic(i), pred.panoptic(i))], CATS)["All"]["pq"] for i in range(3)}
    worst = sorted(alone, key=alone.get)[:2]
    assert sorted(p.name for p in (tmp_path / "worst").iterdir()) == [f"worst0{k + 1}_{i}.png"
                                                                       for k, i in enumerate(worst)]
    assert f"image {worst[0]}: PQ {100 * alone[worst[0]]:.1f}" in out


def test_show_refuses_what_it_cannot_do_in_one_line(dataset, predicted, tmp_path):
    gt = ["--gt-json", str(dataset["json_path"])]
    for argv, fault in (
            ([*gt, "--worst", "2", "--output", str(tmp_path)], "--worst ranks images by PQ: give both"),
            ([*gt, "--pred-json", str(predicted), "--worst", "2", "--output", str(tmp_path / "x.png")],
             "2 images are drawn; give a folder"),
            ([*gt, "--image-id", "7", "--output", str(tmp_path / "x.png")], "--image-id: no image '7'"),
            ([*gt, "--image-id", "1", "--output", str(dataset["png_folder"] / "x.png")], "this would overwrite")):
        status, _, err = run(["show", *argv])
        assert status == 1 and err.count("\n") == 1 and fault in err, err


def hand_made_case():
    """One miss, one false alarm, one merge and one split of discs on a road, each object 4 x 4 px."""
    DISC, ROAD = 1, 12
    gt = np.full((8, 40), 50)
    pred = np.full((8, 40), 60)
    gt[2:6, 1:5] = 1  # missed: the prediction is road there
    pred[2:6, 8:12] = 11  # a false alarm on the road
    gt[2:6, 15:19], gt[2:6, 19:23] = 2, 3  # two objects side by side ...
    pred[2:6, 15:23] = 12  # ... in one prediction: a merge
    gt[2:6, 28:36] = 4  # one object ...
    pred[2:6, 28:32], pred[2:6, 32:36] = 13, 14  # ... in two predictions: a split
    gt = PanopticSegmentation.from_id_map(gt, {50: ROAD, 1: DISC, 2: DISC, 3: DISC, 4: DISC})
    pred = PanopticSegmentation.from_id_map(pred, {60: ROAD, 11: DISC, 12: DISC, 13: DISC, 14: DISC})
    return gt, pred


def test_the_marks_are_those_of_error_analysis():
    gt, pred = hand_made_case()
    errors = error_analysis(match_segments(gt, pred))
    assert errors.merges == [(12, (2, 3))] and errors.splits == [(4, (13, 14))]
    review = review_image(gt, pred, CATS, image_id=0)
    assert review.gt_kinds == {1: MISS, 2: MERGE, 3: MERGE, 4: SPLIT}
    assert review.pred_kinds == {11: FALSE_ALARM, 12: MERGE, 13: SPLIT, 14: SPLIT}
    assert set(review.gt_kinds) == set(errors.false_negatives.tolist())
    assert set(review.pred_kinds) == set(errors.false_positives.tolist())
    assert review.counts() == {MISS: 1, FALSE_ALARM: 1, MERGE: 1, SPLIT: 1}

    figure = show_prediction(None, gt, pred, CATS, review=review, panel_size=3)
    gt_ax, pred_ax = figure.axes
    assert gt_ax.get_title() == "ground truth: 1 miss, 2 in merges, 1 in a split"
    assert pred_ax.get_title() == "prediction: 1 false alarm, 1 in a merge, 2 in splits"
    assert sorted(t.get_text() for t in gt_ax.texts) == ["disc: merge", "disc: merge", "disc: miss", "disc: split",
                                                         "road"]
    assert sorted(t.get_text() for t in pred_ax.texts) == ["disc: false alarm", "disc: merge", "disc: split",
                                                           "disc: split", "road"]


def test_the_same_marks_from_files_and_the_command(tmp_path):
    gt, pred = hand_made_case()
    paths = write_result_set(tmp_path / "set", [(gt, pred)], CATS)
    files = ResultFiles(paths["gt_json"], paths["pred_json"])
    assert files.image(0) is None  # no image on disk: the colours alone
    review = files.review(0)
    assert review.gt_kinds == review_image(gt, pred, CATS).gt_kinds
    assert review.pred_kinds == review_image(gt, pred, CATS).pred_kinds
    only_gt = ResultFiles(gt_json=paths["gt_json"])
    assert only_gt.panoptic(0, "pred") is None and only_gt.panoptic(0, "gt").equals(gt)
    status, out, err = run(["show", "--gt-json", str(paths["gt_json"]), "--pred-json", str(paths["pred_json"]),
                            "--image-id", "0", "--output", str(tmp_path / "case.png")])
    assert status == 0 and out == f"image 0: -> {tmp_path / 'case.png'}\n", err
    assert os.path.getsize(tmp_path / "case.png") > 0
