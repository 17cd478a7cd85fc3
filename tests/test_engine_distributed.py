"""Data-parallel training on two CPU processes (gloo) against one process on the same global batch."""
import numpy as np
import pytest
import torch
from test_engine_support import CATS, dataset, parameters_of, tiny_model

from panopticlab.engine import OptimConfig, Trainer, evaluate, init_distributed, make_eval_loader, \
    make_train_loader, spawn
from panopticlab.engine.checkpoint import load_checkpoint

CONFIG = OptimConfig(lr=0.2, momentum=0.9, warmup_steps=1)
STEPS = 4
GLOBAL_BATCH = 4
WORLD_SIZE = 2


def run_training(batch_size, checkpoint_dir=None):
    # No dropout: two processes draw different masks than one process would.
    model = tiny_model(seed=7)
    loader = make_train_loader(dataset(10), batch_size=batch_size, seed=3)
    trainer = Trainer(model, loader, CONFIG, STEPS, "cpu", checkpoint_dir=checkpoint_dir, checkpoint_every=2,
                      grad_clip=10.0, seed=3, progress=False)
    history = trainer.fit()
    results = evaluate(model, make_eval_loader(dataset(5, "val", augment=False), batch_size=2), CATS,
                       progress=False).results
    return model, history, results


def worker(folder):
    """One rank: joins the group from torchrun's variables, trains, evaluates, saves what it ended with."""
    torch.set_num_threads(1)
    context = init_distributed()
    assert context.world_size == WORLD_SIZE and context.backend == "gloo"
    model, history, results = run_training(GLOBAL_BATCH // WORLD_SIZE, checkpoint_dir=f"{folder}/run")
    torch.save({"parameters": parameters_of(model), "history": history.state_dict(), "pq": results["All"],
                "per_class": results["per_class"], "num_images": results["num_images"]},
               f"{folder}/rank{context.rank}.pt")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    spawn(worker, WORLD_SIZE, str(folder))
    return folder, [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def test_both_ranks_end_with_identical_parameters(ranks):
    _, (rank0, rank1) = ranks
    for name, value in rank0["parameters"].items():
        assert torch.equal(value, rank1["parameters"][name]), name
    assert rank0["history"] == rank1["history"]  # logged losses are averaged over the ranks


@pytest.fixture(scope="module")
def single_process():
    return run_training(GLOBAL_BATCH)


def test_two_processes_match_one_process_on_the_same_global_batch(ranks, single_process):
    _, (rank0, _) = ranks
    model, history, _ = single_process
    for name, value in parameters_of(model).items():
        torch.testing.assert_close(rank0["parameters"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    start = tiny_model(seed=7)
    for (name, value), initial in zip(model.named_parameters(), start.parameters()):
        assert not torch.equal(value, initial), name  # training moved it, so the comparison means something
    for name in ("loss", "loss_sem", "loss_logits", "grad_norm", "lr"):
        np.testing.assert_allclose(rank0["history"][name]["values"], history.values(name), rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def test_sharded_evaluation_counts_every_image_once(ranks, single_process):
    _, (rank0, rank1) = ranks
    assert rank0["num_images"] == rank1["num_images"] == 5  # 3 + 2 images, none padded twice
    assert rank0["per_class"] == rank1["per_class"]
    _, _, results = single_process
    for category_id, scores in results["per_class"].items():
        ours = rank0["per_class"][category_id]
        assert (ours["tp"], ours["fp"], ours["fn"]) == (scores["tp"], scores["fp"], scores["fn"]), category_id


def test_rank_zero_writes_one_checkpoint_with_every_rank_generators(ranks):
    folder, _ = ranks
    payload = load_checkpoint(folder / "run" / "last.pt")
    assert payload["step"] == STEPS and payload["run"]["world_size"] == WORLD_SIZE
    assert len(payload["rng"]) == WORLD_SIZE
    # ranks are seeded with seed + rank, so their torch generators differ
    assert not torch.equal(payload["rng"][0]["torch"], payload["rng"][1]["torch"])
    assert sorted(p.name for p in (folder / "run").iterdir()) == ["last.pt"]


def test_a_rank_without_its_peers_stops_with_one_line(monkeypatch, capsys):
    """WORLD_SIZE=2 with the second process never started: a clear error after the wait, not a hang."""
    import socket

    from panopticlab.commands import main
    from panopticlab.engine.distributed import init_distributed

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setenv("PANOPTICLAB_RENDEZVOUS_SECONDS", "2")
    with pytest.raises(ValueError, match=r"rank 0 of WORLD_SIZE=2 found no group at 127.0.0.1:\d+ within 2 s"):
        init_distributed(device="cpu")
    assert main(["train", "--model", "pspnet-tiny", "--steps", "1", "--device", "cpu"]) == 1
    assert "torchrun --nproc-per-node 2" in capsys.readouterr().err
