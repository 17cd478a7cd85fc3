"""Data-parallel training of every model of the table, through ``panopticlab train``.

Two CPU processes (gloo, as torchrun would start them) train each tiny model for a few
steps with the CLI. Their weights are checked against one process that plays both ranks
in turn on the same global batch: each rank's shard of the batch, with that rank's
random stream (the detectors sample anchors and RoIs at random, Panoptic-DeepLab draws
dropout) and the gradients of the two shards averaged, then one optimiser step.

That is the step data-parallel training takes. It is not exactly the step of one
process on the whole batch at once: the models' BatchNorms take each shard's statistics
(torch has no synchronised BatchNorm on the CPU) and the detection losses are averaged
over each shard's sampled anchors and RoIs; the test measures how far that single-batch
run lies, to show the comparison above is the sharper one.
"""
import itertools

import pytest
import torch

from panopticlab.commands import main
from panopticlab.data.dataset import collate_panoptic
from panopticlab.data.synthetic import SYNTHETIC_CATEGORIES as CATS
from panopticlab.engine import recipes, spawn
from panopticlab.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from panopticlab.engine.distributed import get_rank, init_distributed
from panopticlab.engine.optim import build_optimizer, build_scheduler
from panopticlab.engine.sampling import ResumableSampler
from panopticlab.models import zoo
from panopticlab.profiles import get_profile, seed_everything

# one intra-op thread, as in the ranks: sums taken in another order move AdamW's first steps
# on weights whose gradient is near zero
pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORLD_SIZE = 2
STEPS = 3  # the ci profile's 16 images make 2 steps of 4 per process and epoch: step 3 starts epoch 1
SEED = get_profile("ci").seed
TINY = [row for row in zoo.MODELS.values() if row.size == "tiny"]
PARTS = {name for row in TINY for name in row.components}
TRAINED = [row.name for row in TINY if row.name not in PARTS]  # what `train --model` is given: the panoptic models
NETWORKS = [row.name for row in TINY if row.recipe_factory is not None]  # what trains: each with its own recipe


def network_folder(folder, network):
    for model in TRAINED:
        components = zoo.spec(model).components
        if network in components:
            return folder / model / network
        if network == model:
            return folder / model
    raise KeyError(network)


def worker(folder):
    """One rank: trains every model of the table with the CLI; saves its own final weights too."""
    torch.set_num_threads(1)
    init_distributed()  # one process group for all the runs: `train` leaves a group it did not start alone
    fit = recipes.fit

    def fit_and_keep(model, recipe, *args, **kwargs):
        history = fit(model, recipe, *args, **kwargs)
        torch.save(model.state_dict(), f"{folder}/{recipe.model}.rank{get_rank()}.pt")
        return history

    recipes.fit = fit_and_keep  # the CLI calls recipes.fit; rank 1 writes no run folder of its own
    for model in TRAINED:
        assert main(["train", "--model", model, "--profile", "ci", "--steps", str(STEPS), "--num-val", "2",
                     "--output", f"{folder}/{model}", "--device", "cpu", "--no-progress"]) == 0


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp_models")
    spawn(worker, WORLD_SIZE, folder)
    return folder


def shard_batches(dataset, batch_size, rank):
    """This rank's batches, epoch after epoch, as the trainer's resumable sampler deals them."""
    sampler = ResumableSampler(dataset, num_replicas=WORLD_SIZE, rank=rank, seed=SEED)
    for epoch in itertools.count():
        sampler.set_position(epoch)
        indices = list(sampler)
        for start in range(0, len(indices) - batch_size + 1, batch_size):
            yield epoch, indices[start:start + batch_size]


def one_process_playing_both_ranks(network, per_rank=True):
    """The weights after STEPS steps, from one process; ``per_rank=False``: the whole batch at once."""
    recipe = recipes.recipe(network, "ci", steps=STEPS)
    seed_everything(SEED)
    model = zoo.build_model(network, CATS)
    dataset = recipes.train_data(recipe, CATS, SEED)
    optimizer = build_optimizer(model, recipe.optim)
    scheduler = build_scheduler(optimizer, recipe.optim, STEPS)
    streams = []
    for rank in range(WORLD_SIZE):
        seed_everything(SEED + rank)
        streams.append(capture_rng_state())
    model.train()
    shards = zip(*(shard_batches(dataset, recipe.batch_size, rank) for rank in range(WORLD_SIZE)))
    for _, batches in zip(range(STEPS), shards):
        optimizer.zero_grad()
        groups = [indices for _, indices in batches] if per_rank else [[i for _, shard in batches for i in shard]]
        for rank, indices in enumerate(groups):
            dataset.set_epoch(batches[rank][0])
            restore_rng_state(streams[rank])
            images, targets = collate_panoptic([dataset[i] for i in indices])
            losses = model(images, targets)
            (sum(losses.values()) / len(groups)).backward()
            streams[rank] = capture_rng_state()
        if recipe.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        scheduler.step()
    return {name: value.detach() for name, value in model.named_parameters()}


def distance(a, b):
    return sum((a[name] - b[name]).double().pow(2).sum() for name in b).sqrt().item()


@pytest.mark.parametrize("network", NETWORKS)
def test_two_processes_take_the_data_parallel_step_of_the_global_batch(ddp_runs, network):
    checkpoint = load_checkpoint(network_folder(ddp_runs, network) / "last.pt", required=("model",))["model"]
    expected = one_process_playing_both_ranks(network)
    for name, value in expected.items():
        torch.testing.assert_close(checkpoint[name], value, rtol=1e-4, atol=1e-5, msg=f"{network}: {name}")
    seed_everything(SEED)
    start = dict(zoo.build_model(network, CATS).named_parameters())
    moved = distance(expected, start)
    assert moved > 0  # training moved the weights, so agreeing means something
    # one process on the whole batch lies measurably further away than the tolerance above
    assert distance(one_process_playing_both_ranks(network, per_rank=False), expected) > 1e-3 * moved


@pytest.mark.parametrize("network", NETWORKS)
def test_every_process_ends_with_the_weights_and_statistics_of_the_checkpoint(ddp_runs, network):
    checkpoint = load_checkpoint(network_folder(ddp_runs, network) / "last.pt", required=("model",))["model"]
    for rank in range(WORLD_SIZE):
        state = torch.load(ddp_runs / f"{network}.rank{rank}.pt", weights_only=True)
        assert state.keys() == checkpoint.keys()
        for name, value in checkpoint.items():
            assert torch.equal(state[name], value), f"rank {rank}: {name}"  # BatchNorm statistics included


@pytest.mark.parametrize("model", TRAINED)
def test_rank_zero_writes_one_run_record(ddp_runs, model):
    from panopticlab.engine.runs import read_run

    record = read_run(ddp_runs / model)
    assert record.model == model and record.results["num_images"] == 2  # both shards scored, none twice
    assert record.steps == STEPS * len(record.recipes)
