"""Checkpoint files: interrupted writes, random generator states, safe loading, clear errors."""
import io
import random

import numpy as np
import pytest
import torch
from test_engine_support import dataset, parameters_of, tiny_model

from panopticlab.engine import OptimConfig, Trainer, load_checkpoint, load_model_weights, make_train_loader, \
    save_checkpoint
from panopticlab.engine.checkpoint import capture_rng_state, restore_rng_state

CONFIG = OptimConfig(lr=0.05, warmup_steps=1)


def trainer_for(folder, steps=4, every=2):
    loader = make_train_loader(dataset(8), batch_size=2, seed=0)
    return Trainer(tiny_model(dropout=0.1), loader, CONFIG, steps, "cpu", checkpoint_dir=folder,
                   checkpoint_every=every, progress=False)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    real_save = torch.save
    calls = []

    def dies_halfway(obj, file):
        calls.append(1)
        if len(calls) == 1:
            return real_save(obj, file)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise KeyboardInterrupt  # Ctrl-C (or a kill) in the middle of the write

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        trainer_for(tmp_path).fit()
    assert len(calls) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2

    monkeypatch.setattr(torch, "save", real_save)
    resumed = trainer_for(tmp_path)
    resumed.fit()
    uninterrupted = trainer_for(tmp_path / "fresh")
    uninterrupted.fit()
    for name, value in parameters_of(uninterrupted.module).items():
        assert torch.equal(parameters_of(resumed.module)[name], value), name
    assert resumed.history == uninterrupted.history


def test_checkpoint_loads_with_weights_only_and_holds_the_run(tmp_path):
    trainer = trainer_for(tmp_path, steps=3, every=3)
    trainer.fit()
    payload = torch.load(tmp_path / "last.pt", weights_only=True)  # no arbitrary code in the file
    assert payload["step"] == 3 and payload["run"]["steps"] == 3
    assert payload["run"]["config"] == CONFIG.to_dict()
    assert payload["history"]["loss"]["steps"] == [1, 2, 3]
    assert len(payload["rng"]) == 1  # one generator state per process
    for name, value in trainer.module.state_dict().items():
        assert torch.equal(payload["model"][name], value)


def test_rng_state_round_trip_restores_every_generator():
    state = capture_rng_state()
    first = (random.random(), np.random.rand(3).tolist(), np.random.normal(), torch.rand(3).tolist())
    random.random(), np.random.rand(7), torch.rand(5)  # move on
    restore_rng_state(state)
    second = (random.random(), np.random.rand(3).tolist(), np.random.normal(), torch.rand(3).tolist())
    assert first == second


def test_garbage_or_truncated_file_is_a_clear_error(tmp_path):
    trainer = trainer_for(tmp_path, steps=2, every=2)
    trainer.fit()
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="last.pt: not a readable checkpoint"):
        trainer_for(tmp_path, steps=2, every=2).fit()

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="other.pt: not a panopticlab checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_newer_version_and_missing_keys_are_refused(tmp_path):
    save_checkpoint(tmp_path / "future.pt", {"version": 99, "model": {}})
    with pytest.raises(ValueError, match="version 99"):
        load_checkpoint(tmp_path / "future.pt")
    save_checkpoint(tmp_path / "partial.pt", {"step": 3})
    with pytest.raises(ValueError, match=r"partial.pt: checkpoint lacks \['model'\]"):
        load_checkpoint(tmp_path / "partial.pt", required=("model",))


def test_model_weights_load_into_a_new_model_and_mismatch_is_named(tmp_path):
    trainer = trainer_for(tmp_path, steps=2, every=2)
    trainer.fit()
    fresh = tiny_model(seed=99)
    payload = load_model_weights(tmp_path / "last.pt", fresh)
    assert payload["step"] == 2
    for name, value in parameters_of(trainer.module).items():
        assert torch.equal(parameters_of(fresh)[name], value)
    with pytest.raises(ValueError, match="last.pt: the weights do not fit TinyPanopticNet"):
        load_model_weights(tmp_path / "last.pt", tiny_model(width=4))


def test_weights_of_another_model_are_summed_up_in_one_line(tmp_path):
    """A checkpoint of another network: counts and a few names of the keys, not thousands of them."""
    from panopticlab.data import SYNTHETIC_CATEGORIES
    from panopticlab.models import zoo

    path = save_checkpoint(tmp_path / "other.pt", {"model": zoo.build_model("maskrcnn-tiny", SYNTHETIC_CATEGORIES)
                                                   .state_dict()})
    with pytest.raises(ValueError) as error:
        load_model_weights(path, zoo.build_model("pspnet-tiny", SYNTHETIC_CATEGORIES))
    message = str(error.value)
    assert message.startswith(f"{path}: the weights do not fit PSPNet: ") and "tensors missing (e.g. " in message
    assert "unexpected (e.g. " in message and len(message) < 600 and "\n" not in message
    path = save_checkpoint(tmp_path / "str.pt", {"model": "str"})
    with pytest.raises(ValueError, match="its 'model' entry is a str, not a state dict"):
        load_model_weights(path, zoo.build_model("pspnet-tiny", SYNTHETIC_CATEGORIES))
