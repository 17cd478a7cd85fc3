"""The command line: each sub-command does what its help says, and bad input gets one line."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from panopticlab.commands import main
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.coco import CocoPanoptic, write_coco_panoptic
from panopticlab.data.synthetic import render_scene
from panopticlab.engine import History, recipes
from panopticlab.engine.checkpoint import load_checkpoint
from panopticlab.engine.recipes import TrainRecipe
from panopticlab.engine.runs import read_run
from panopticlab.models import zoo


# --- panopticlab data ---------------------------------------------------------------------
def test_data_synth_refuses_a_huge_size_before_writing(tmp_path, capsys):
    """--size 100000 would fill the memory (about 20 GB) before failing: refused at once."""
    assert main(["data", "synth", str(tmp_path / "out"), "--size", "100000", "--num", "1", "--quiet"]) == 1
    assert "too large: both sides must be at most 4096" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


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


def test_data_synth_rejects_bad_sizes_in_one_line(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path), "--size", "1", "2", "3"]) == 1
    assert capsys.readouterr().err == "error: --size takes one side or a height and a width, got [1, 2, 3]\n"
    for bad in (["--size", "0"], ["--num", "-1"]):
        with pytest.raises(SystemExit) as stop:
            main(["data", "synth", str(tmp_path), *bad])
        assert stop.value.code == 2 and "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["data", "synth", "{out}", "--num", "1"], ["book", "run", "--output", "{out}"]])
def test_output_folders_below_or_onto_a_file_are_refused_at_once(tmp_path, capsys, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    for out, word in ((blocker, "it is a file"), (blocker / "sub", "a_file is a file")):
        assert main([part.format(out=out) for part in command]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and word in err
    assert blocker.read_text() == "keep me"


def test_data_check_accepts_a_good_set_and_names_the_bad_file(tmp_path, capsys):
    main(["data", "synth", str(tmp_path), "--num", "2", "--size", "32", "--quiet"])
    json_path = str(tmp_path / "annotations" / "panoptic_val.json")
    assert main(["data", "check", json_path, "--quiet"]) == 0
    assert "ok: 2 images" in capsys.readouterr().out
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**json.loads(Path(json_path).read_text()), "images": [], "annotations": []}))
    assert main(["data", "check", str(empty), "--quiet"]) == 1
    assert "no images" in capsys.readouterr().err
    png = tmp_path / "annotations" / "panoptic_val" / "000000000001.png"
    png.write_bytes(png.read_bytes()[:50])  # truncate one PNG
    assert main(["data", "check", json_path, "--quiet"]) == 1
    assert "000000000001.png" in capsys.readouterr().err


# --- panopticlab book ---------------------------------------------------------------------
def test_book_student_edition(tmp_path):
    assert main(["book", "student", str(tmp_path)]) == 0
    notebooks = sorted(tmp_path.glob("*.ipynb"))
    assert notebooks, "no student notebooks written"
    text = notebooks[0].read_text()
    assert "BEGIN SOLUTION" not in text and "NotImplementedError" in text
    json.loads(text)


def test_book_commands_say_where_the_chapters_are(tmp_path, capsys):
    assert main(["book", "student", str(tmp_path / "out"), "--book", str(tmp_path / "nowhere")]) == 1
    error = capsys.readouterr().err
    assert "nowhere" in error and "--book" in error and error.count("\n") == 1


# --- the entry point ----------------------------------------------------------------------
def test_console_script_is_installed():
    script = Path(sys.executable).with_name("panopticlab")  # the console script beside the interpreter
    for command in ([sys.executable, "-m", "panopticlab", "--help"], [str(script), "--help"]):
        out = subprocess.run(command, capture_output=True, text=True)
        assert out.returncode == 0 and all(word in out.stdout for word in ("data", "evaluate", "book", "models"))


def test_parser_and_the_light_commands_import_no_torch():
    code = ("import sys\nfrom panopticlab.commands import build_parser\nbuild_parser().parse_args(['data', 'synth', "
            "'x'])\nimport panopticlab.commands.evaluate as e\nassert 'torch' not in sys.modules, 'torch imported'\n"
            "from panopticlab.metrics.evaluate import evaluate_folders\nfrom panopticlab.data.synthetic import "
            "write_synthetic_coco\nassert 'torch' not in sys.modules, 'torch imported by the evaluator or data'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_models_lists_the_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.MODEL_NAMES) and "pspnet-tiny + maskrcnn-tiny" in out


# --- panopticlab train / evaluate --model -------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """``panopticlab train --model baseline-tiny --profile ci``: both networks, a few steps each."""
    output = tmp_path_factory.mktemp("run")
    assert main(["train", "--model", "baseline-tiny", "--profile", "ci", "--steps", "3", "--output", str(output),
                 "--no-progress", "--num-val", "4", "--device", "cpu"]) == 0
    return output


def test_train_command_writes_the_run(trained_run):
    for name in zoo.spec("baseline-tiny").components:
        folder = trained_run / name
        assert load_checkpoint(folder / "last.pt")["step"] == 3
        history = History.from_state_dict(json.loads((folder / "history.json").read_text()))
        assert list(history.steps("loss")) == [1, 2, 3] and np.isfinite(history.values("loss")).all()
        assert TrainRecipe.from_dict(json.loads((folder / "recipe.json").read_text())).steps == 3
    results = json.loads((trained_run / "results.json").read_text())
    assert results["model"] == "baseline-tiny" and set(results["ablations"]) == {"semantic_only", "instance_only"}
    assert 0 <= results["results"]["All"]["pq"] <= 1 and 0 <= results["miou"] <= 1
    run = read_run(trained_run)  # the record chapter 7 compares, beside the files above
    assert run.model == "baseline-tiny" and run.profile == "ci" and run.steps == 6
    assert set(run.recipes) == set(run.training_seconds) == set(zoo.spec("baseline-tiny").components)
    assert run.results["All"] == pytest.approx(results["results"]["All"]) and run.ablations.keys() == {
        "semantic_only", "instance_only"}
    assert run.inference["network"] > 0 and run.inference["postprocess"] > 0 and run.inference["images"] == 4
    assert run.parameters == sum(p.numel() for p in zoo.build_model("baseline-tiny", CATS).parameters())
    assert [step for step, _ in run.losses["maskrcnn-tiny/loss"]] == [1, 2, 3]


def test_train_command_resumes_only_when_asked(trained_run, capsys):
    before = (trained_run / "pspnet-tiny" / "history.json").read_text()
    argv = ["train", "--model", "baseline-tiny", "--profile", "ci", "--steps", "3", "--output", str(trained_run),
            "--no-progress", "--num-val", "4"]
    assert main(argv) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(argv + ["--resume"]) == 0
    assert (trained_run / "pspnet-tiny" / "history.json").read_text() == before  # finished: nothing more to do
    assert "PQ" in capsys.readouterr().out


def test_evaluate_command_scores_a_checkpoint_like_panopticapi(trained_run, tmp_path, capsys):
    from panopticapi.evaluation import pq_compute

    samples = list(recipes.val_data(size=64, num=4, seed=0))
    ground_truth = write_coco_panoptic(tmp_path / "gt", "val", samples, CATS)
    predictions = tmp_path / "pred.json"
    results_json = tmp_path / "results.json"
    assert main(["evaluate", "--model", "maskrcnn-tiny", "--checkpoint", str(trained_run / "maskrcnn-tiny" / "last.pt"),
                 "--num-images", "4", "--image-size", "64", "--predictions", str(predictions),
                 "--results-json", str(results_json), "--no-progress"]) == 0
    results = json.loads(results_json.read_text())
    assert results["model"] == "maskrcnn-tiny" and results["miou"] is None and results["ablations"] == {}
    reference = pq_compute(str(ground_truth["json_path"]), str(predictions), str(ground_truth["png_folder"]))
    assert results["results"]["All"]["pq"] == pytest.approx(reference["All"]["pq"], abs=1e-12)
    assert "instance network" in capsys.readouterr().out


def test_evaluate_command_reads_a_baseline_run_folder(trained_run, tmp_path, capsys):
    results_json = tmp_path / "results.json"
    assert main(["evaluate", "--model", "baseline-tiny", "--checkpoint", str(trained_run), "--num-images", "4",
                 "--image-size", "64", "--results-json", str(results_json), "--no-progress", "--per-class"]) == 0
    assert json.loads(results_json.read_text())["model"] == "baseline-tiny"
    out = capsys.readouterr().out
    assert "mIoU" in out and "sky" in out and "instance network only" in out  # per class, and the ablations


def test_evaluate_never_writes_over_its_inputs(tmp_path, capsys):
    """--output naming the ground truth (or a file in a PNG folder it reads) is refused, and
    the input is left as it was."""
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text("{}")
    for output in (gt, pred, tmp_path / "gt" / "results.json"):
        assert main(["evaluate", "--gt-json", str(gt), "--pred-json", str(pred), "--output", str(output)]) == 1
        assert f"--output {output}: this would overwrite" in capsys.readouterr().err
    assert gt.read_text() == "{}"


@pytest.mark.parametrize("argv, message", [
    (["--model", "pspnet-tiny"], "--checkpoint"),
    (["--model", "pspnet-tiny", "--checkpoint", "no/such/file.pt"], "no/such/file.pt"),
    (["--model", "pspnet-full", "--pretrained"], "no shipped weights"),
    (["--model", "baseline-tiny", "--checkpoint", __file__], "run folder"),
    (["--model", "unet", "--pretrained"], "pspnet-tiny, maskrcnn-tiny"),
    (["--model", "pspnet-tiny", "--pretrained", "--device", "tpu9"], "unknown device 'tpu9'"),
    (["--model", "pspnet-tiny", "--gt-json", "g.json"], "cannot be combined with --gt-json"),
    (["--model", "pspnet-tiny", "--pretrained", "--output", "r.json", "--workers", "2"],
     "cannot be combined with --output, --workers"),
    (["--model", "pspnet-tiny", "--pretrained", "--iou-threshold", "0.6", "--breakdown"],
     "cannot be combined with --iou-threshold, --breakdown"),
    ([], "--gt-json"),
])
def test_evaluate_command_explains_bad_input_in_one_line(argv, message, capsys):
    assert main(["evaluate", *argv, "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert message in error and error.startswith("error: ") and error.count("\n") == 1


def test_evaluate_command_refuses_weights_of_another_model(trained_run, capsys):
    assert main(["evaluate", "--model", "pspnet-tiny", "--checkpoint", str(trained_run / "maskrcnn-tiny"),
                 "--no-progress"]) == 1
    assert "do not fit PSPNet" in capsys.readouterr().err


def test_train_command_refuses_a_model_without_a_recipe_before_training(tmp_path, capsys):
    assert main(["train", "--model", "unet", "--output", str(tmp_path)]) == 1
    assert "unknown model 'unet'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["a read-only folder", "a regular file", "last.pt a folder", "results.json a folder"])
def test_train_command_refuses_a_run_folder_it_could_not_write_before_training(tmp_path, read_only, monkeypatch,
                                                                             capsys, where):
    from panopticlab.commands import train

    monkeypatch.setattr(train, "_train_network", lambda *a, **k: pytest.fail("the training started"))
    output = tmp_path / "run"
    if where == "a regular file":
        output.write_text("x")
        reason = f"--output {output}: cannot write files into it, it is a file, not a folder"
    else:
        output.mkdir()
        if where == "a read-only folder":
            read_only(output)
            reason = f"--output {output}: cannot write files into it, the folder {output} is not writable"
        else:
            name = "last.pt" if where == "last.pt a folder" else "results.json"
            (output / name).mkdir()  # find_checkpoint sees no checkpoint there, the first save would fail
            reason = f"--output {output / name}: cannot write a file there, it is a folder"
    for resume in ([], ["--resume"]):
        assert main(["train", "--model", "pspnet-tiny", "--profile", "ci", "--steps", "2", "--output", str(output),
                     "--no-progress", "--device", "cpu", *resume]) == 1
        assert capsys.readouterr().err == f"error: {reason}\n"


@pytest.mark.parametrize("where", ["--predictions in a read-only folder", "--predictions below a file",
                                   "--predictions whose PNG folder is a file", "--predictions without .json",
                                   "--results-json an existing folder", "--results-json in a read-only folder"])
def test_evaluate_command_refuses_outputs_it_could_not_write_before_evaluating(tmp_path, read_only, monkeypatch,
                                                                             capsys, where):
    from panopticlab.commands import evaluate

    monkeypatch.setattr(evaluate, "trained_model", lambda *a, **k: pytest.fail("the evaluation started"))
    locked, plain = tmp_path / "locked", tmp_path / "plain"
    locked.mkdir()
    read_only(locked)
    plain.write_text("x")
    flag, path, reason = {
        "--predictions in a read-only folder": ("--predictions", locked / "p.json",
                                                f"cannot write a file there, the folder {locked} is not writable"),
        "--predictions below a file": ("--predictions", plain / "p.json",
                                       f"cannot write a file there, {plain} is a file, not a folder"),
        "--predictions whose PNG folder is a file": ("--predictions", tmp_path / "plain.json",
                                                     "cannot write files into it, it is a file, not a folder"),
        "--predictions without .json": ("--predictions", tmp_path / "preds",
                                        "the predictions JSON and its PNG folder would be the same path"),
        "--results-json an existing folder": ("--results-json", tmp_path, "cannot write a file there, it is a folder"),
        "--results-json in a read-only folder": ("--results-json", locked / "r.json",
                                                 f"cannot write a file there, the folder {locked} is not writable"),
    }[where]
    assert main(["evaluate", "--model", "pspnet-tiny", "--pretrained", "--no-progress", flag, str(path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and reason in error and error.count("\n") == 1
    shown = plain if where == "--predictions whose PNG folder is a file" else path
    assert str(shown) in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked", "plain"]  # nothing written


def test_a_bad_profile_is_named_with_where_it_came_from(tmp_path, monkeypatch, capsys):
    assert main(["train", "--model", "pspnet-tiny", "--profile", "bogus", "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: unknown profile 'bogus' (given); choose one of ci, laptop, gpu\n"
    monkeypatch.setenv("PANOPTICLAB_PROFILE", "fast")
    assert main(["book", "run", "--output", str(tmp_path / "book")]) == 1
    assert "unknown profile 'fast' (from PANOPTICLAB_PROFILE)" in capsys.readouterr().err
    assert not (tmp_path / "book").exists()  # refused before any chapter ran


def test_evaluate_reads_the_input_size_the_run_recorded(tmp_path):
    """`train --input-size` is written to recipe.json; evaluate rebuilds the network at that size."""
    from panopticlab.commands.common import CommandError
    from panopticlab.commands.trained import recorded_recipe

    assert recorded_recipe(tmp_path) is None  # no recipe: the model's own size
    recipe = TrainRecipe("panoptic-fpn-full", steps=2, batch_size=2, image_size=64, num_train=2, input_size=64)
    (tmp_path / "recipe.json").write_text(json.dumps(recipe.to_dict()))
    assert recorded_recipe(tmp_path).input_size == 64 == recorded_recipe(tmp_path / "last.pt").input_size
    (tmp_path / "recipe.json").write_text('{"steps": 2}')
    with pytest.raises(CommandError, match=r"recipe\.json: not a recipe written by `panopticlab train`"):
        recorded_recipe(tmp_path)
    with pytest.raises(ValueError, match="input_size must be a positive integer or None, got 0"):
        recipe.replace(input_size=0)


@pytest.mark.parametrize("content", ["null", "{not json", '{"categories": 3}'])
def test_a_broken_categories_file_is_named(tmp_path, content):
    """The categories a run recorded (what `evaluate --data` rebuilds the model with): a broken
    file is named, not a traceback."""
    from panopticlab.commands.common import CommandError
    from panopticlab.commands.trained import run_categories

    (tmp_path / "categories.json").write_text(content)
    with pytest.raises(CommandError, match=r"categories\.json: not the categories file `panopticlab train` writes"):
        run_categories(str(tmp_path))


def test_ctrl_c_in_train_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from panopticlab.engine import runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_network", interrupted)
    output = tmp_path / "run"
    assert main(["train", "--model", "pspnet-tiny", "--profile", "ci", "--output", str(output), "--no-progress"]) == 130
    error = capsys.readouterr().err
    assert error.startswith("interrupted:") and str(output) in error and "--resume" in error and error.count("\n") == 1


def test_two_trainings_into_one_run_folder_are_refused(tmp_path, capsys):
    """While one `train` writes a run folder, a second one into it stops before reading or writing anything."""
    from panopticlab.commands.common import exclusive_use

    output = tmp_path / "run"
    with exclusive_use(output, "--output"):
        assert main(["train", "--model", "pspnet-tiny", "--steps", "1", "--output", str(output),
                     "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert f"--output {output}: another command is writing it now (process " in error
    assert not output.exists() or not any(output.iterdir())
