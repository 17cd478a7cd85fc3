"""benchmarks/full_models_gpu.py, the script a GPU run starts from, runs end to end on the CPU.

The full networks are the same code at other sizes (their training steps are tested by the
full-size path tests); here a tiny one goes through the script's every step quickly.
"""
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "full_models_gpu.py"


@pytest.fixture
def script():
    spec = importlib.util.spec_from_file_location("full_models_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_full_network_of_the_table_has_a_setup(script):
    from panopticlab.models import zoo

    trainable_full = {name for name, row in zoo.MODELS.items() if name.endswith("-full") and not row.components}
    assert set(script.SETUPS) == trainable_full


def test_the_script_times_training_and_inference(script, monkeypatch, capsys, one_torch_thread):
    # the published run's network and solver, on small images so that a CPU takes seconds
    monkeypatch.setitem(script.SETUPS, "panoptic-deeplab-full", ("cityscapes", (64, 96), (96, 128), "none"))
    [row] = script.main(["--device", "cpu", "--steps", "1", "--batch", "2", "--models", "panoptic-deeplab-full"])
    assert row["train"]["size"] == (64, 96) and row["inference"]["size"] == (96, 128)
    assert row["train"]["s_per_iter"] > 0 and row["inference"]["network"] > 0 and row["inference"]["postprocess"] > 0
    assert row["train"]["peak_gb"] is None  # no GPU memory to report on the CPU
    recipe = row["train"]["recipe"]
    assert (recipe.dataset, recipe.batch_size, recipe.optim.lr) == ("cityscapes", 2, 0.001 * 2 / 32)
    out = capsys.readouterr().out
    assert "panoptic-deeplab-full" in out and "s/iter" in out and "published: none" in out
    assert "ran: the cityscapes configuration, adam lr 6.25e-05 at batch 2" in out
