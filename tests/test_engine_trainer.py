"""The training loop: exact resumption, the arithmetic of one step, the data order, bad input."""
import math

import numpy as np
import pytest
import torch
from test_engine_support import dataset, parameters_of, tiny_model
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from panopticlab.data.dataset import collate_panoptic
from panopticlab.engine import OptimConfig, ResumableSampler, Trainer, lr_curve, make_train_loader, train
from panopticlab.engine.checkpoint import load_checkpoint

RESUME_CONFIG = OptimConfig(optimizer="adamw", lr=0.01, weight_decay=0.01, warmup_steps=2, schedule="poly")
TOTAL_STEPS = 9  # 10 images, batch 3, drop_last: 3 batches per epoch, so 3 epochs


class Interrupted(Exception):
    pass


def kill_at(step):
    def callback(trainer):
        if trainer.step == step:
            raise Interrupted  # the run dies before this step's work reaches a checkpoint
    return callback


def run(checkpoint_dir=None, seed=0, **options):
    """A fresh process's view: model, data and trainer built from scratch."""
    model = tiny_model(seed=123, dropout=0.2)
    loader = make_train_loader(dataset(10), batch_size=3, seed=seed)
    trainer = Trainer(model, loader, RESUME_CONFIG, TOTAL_STEPS, "cpu", checkpoint_dir=checkpoint_dir,
                      seed=seed, progress=False, grad_clip=5.0, **options)
    history = trainer.fit()
    return model, history


def assert_same_parameters(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture(scope="module")
def uninterrupted():
    model, history = run()
    return parameters_of(model), history


@pytest.mark.parametrize("saved_at", [3, 5])  # 3: an epoch boundary; 5: two batches into the second epoch
def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path, uninterrupted, saved_at):
    expected_parameters, expected_history = uninterrupted
    with pytest.raises(Interrupted):
        run(tmp_path, checkpoint_every=saved_at, callback=kill_at(saved_at + 1))
    assert load_checkpoint(tmp_path / "last.pt")["step"] == saved_at

    # A new process would start from other generator states: disturb them all.
    torch.manual_seed(987)
    np.random.seed(987)
    torch.rand(100)
    model, history = run(tmp_path, checkpoint_every=saved_at)

    assert_same_parameters(parameters_of(model), expected_parameters)
    assert history == expected_history
    assert history.steps("loss").tolist() == list(range(1, TOTAL_STEPS + 1))


def test_resume_test_is_sensitive_to_the_seed(uninterrupted):
    """Control: the random parts (dropout, order, flips) change the result, so the test above can fail."""
    model, history = run(seed=1)
    assert not torch.equal(parameters_of(model)["net.0.weight"], uninterrupted[0]["net.0.weight"])
    assert not np.array_equal(history.values("loss"), uninterrupted[1].values("loss"))


def test_finished_run_resumes_to_the_same_result(tmp_path):
    model, history = run(tmp_path, checkpoint_every=4)
    again, history_again = run(tmp_path, checkpoint_every=4)  # nothing left to do: loads and returns
    assert_same_parameters(parameters_of(again), parameters_of(model))
    assert history_again == history


def test_resuming_with_other_settings_is_refused(tmp_path):
    run(tmp_path, checkpoint_every=TOTAL_STEPS)
    trainer = Trainer(tiny_model(), make_train_loader(dataset(10), batch_size=2), RESUME_CONFIG, TOTAL_STEPS,
                      "cpu", checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="batch_size: checkpoint 3, this run 2"):
        trainer.fit()


def test_one_step_equals_a_hand_written_sgd_step():
    """Weighted loss, gradient and plain SGD update computed by hand on the same batch."""
    model = tiny_model(seed=5)
    reference = tiny_model(seed=5)
    loader = make_train_loader(dataset(6, augment=False), batch_size=3, shuffle=False)
    config = OptimConfig(lr=0.5, momentum=0.0, weight_decay=0.0, schedule="constant")
    weights = {"loss_logits": 10.0}
    history = train(model, loader, config, 1, "cpu", loss_weights=weights, progress=False)

    images, targets = next(iter(loader))
    losses = reference(images, targets)
    total = losses["loss_sem"] + 10.0 * losses["loss_logits"]
    total.backward()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter -= 0.5 * parameter.grad
    assert history.values("loss")[0] == pytest.approx(total.item(), rel=1e-6)
    assert history.values("loss_sem")[0] == pytest.approx(losses["loss_sem"].item(), rel=1e-6)
    assert history.values("lr")[0] == 0.5
    for (name, ours), theirs in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)


def test_gradient_clipping_bounds_the_update_and_logs_the_norm():
    model = tiny_model(seed=2)
    before = [p.detach().clone() for p in model.parameters()]
    loader = make_train_loader(dataset(6, augment=False), batch_size=3, shuffle=False)
    config = OptimConfig(lr=1.0, momentum=0.0, weight_decay=0.0, schedule="constant")
    history = train(model, loader, config, 1, "cpu", grad_clip=1e-3, progress=False)

    reference = tiny_model(seed=2)
    images, targets = next(iter(loader))
    sum(reference(images, targets).values()).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in reference.parameters()]))
    assert history.values("grad_norm")[0] == pytest.approx(norm.item(), rel=1e-5)
    assert norm.item() > 1e-3  # the clip is active
    update = torch.linalg.vector_norm(torch.stack([(p - b).norm() for p, b in zip(model.parameters(), before)]))
    assert update.item() == pytest.approx(1e-3, rel=1e-4)  # lr * max_norm


def test_logged_learning_rate_follows_the_schedule():
    config = OptimConfig(lr=0.05, warmup_steps=3, poly_power=0.9)
    history = train(tiny_model(), make_train_loader(dataset(6), batch_size=2), config, 8, "cpu", progress=False)
    np.testing.assert_array_equal(history.values("lr"), lr_curve(config, 8))


def test_training_lowers_the_loss():
    history = train(tiny_model(), make_train_loader(dataset(8), batch_size=4), OptimConfig(lr=0.3, warmup_steps=0),
                    40, "cpu", progress=False)
    losses = history.values("loss_sem")
    assert losses[-5:].mean() < 0.8 * losses[:5].mean()


# --- data order ------------------------------------------------------------------------
def test_sampler_order_is_a_function_of_seed_and_epoch():
    data = list(range(11))
    sampler = ResumableSampler(data, num_replicas=1, rank=0, seed=4)
    sampler.set_position(2)
    first = list(sampler)
    generator = torch.Generator().manual_seed(4 + 2)
    assert first == torch.randperm(11, generator=generator).tolist()  # DistributedSampler's documented order
    assert list(ResumableSampler(data, num_replicas=1, rank=0, seed=4).__iter__()) != first  # epoch 0 differs
    sampler.set_position(2, start=7)
    assert list(sampler) == first[7:] and len(sampler) == 4
    with pytest.raises(ValueError, match="outside the epoch"):
        sampler.set_position(2, start=12)


def test_sampler_shards_match_torch_distributed_sampler():
    data = list(range(10))
    for rank in range(3):
        ours = ResumableSampler(data, num_replicas=3, rank=rank, seed=1)
        theirs = DistributedSampler(data, num_replicas=3, rank=rank, seed=1)
        ours.set_position(5, start=1)
        theirs.set_epoch(5)
        assert list(ours) == list(theirs)[1:]


# --- bad input ---------------------------------------------------------------------------
class ReturnsWhat(nn.Module):
    def __init__(self, output):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.output = output

    def forward(self, images, targets):
        return self.output(self.weight)


@pytest.mark.parametrize("output, error, message", [
    (lambda w: w.sum(), TypeError, "dict of named scalar losses"),
    (lambda w: {"loss_a": w.repeat(3)}, TypeError, "'loss_a' must be a scalar tensor"),
    (lambda w: {"lr": w.sum()}, ValueError, "clashes"),
    (lambda w: {"loss_a": w.sum() * math.nan}, FloatingPointError, "loss_a"),
])
def test_bad_model_output_is_one_clear_error_and_leaves_weights_alone(output, error, message):
    model = ReturnsWhat(output)
    with pytest.raises(error, match=message):
        train(model, make_train_loader(dataset(4), batch_size=2), OptimConfig(), 2, "cpu", progress=False)
    assert model.weight.item() == 1.0


def test_unknown_loss_weight_names_the_model_losses():
    with pytest.raises(ValueError, match=r"\['loss_typo'\].*\['loss_logits', 'loss_sem'\]"):
        train(tiny_model(), make_train_loader(dataset(4), batch_size=2), OptimConfig(), 2, "cpu",
              loss_weights={"loss_typo": 2.0}, progress=False)


def test_checkpoints_need_a_resumable_loader(tmp_path):
    plain = DataLoader(dataset(4), batch_size=2, shuffle=True, collate_fn=collate_panoptic)
    with pytest.raises(ValueError, match="make_train_loader"):
        Trainer(tiny_model(), plain, OptimConfig(), 2, "cpu", checkpoint_dir=tmp_path)
    history = train(tiny_model(), plain, OptimConfig(), 3, "cpu", progress=False)  # fine without checkpoints
    assert len(history.values("loss")) == 3


@pytest.mark.parametrize("where", ["last.pt a folder", "a file in place of the folder", "a read-only folder"])
def test_an_unwritable_checkpoint_folder_is_refused_before_the_first_step(tmp_path, read_only, where):
    folder = tmp_path / "run"
    if where == "a file in place of the folder":
        folder.write_text("x")
        error, message = NotADirectoryError, f"{folder} is a file, not a folder"
    elif where == "last.pt a folder":
        (folder / "last.pt").mkdir(parents=True)
        error = IsADirectoryError
        message = f"checkpoint {folder / 'last.pt'}: cannot write a file there, it is a folder"
    else:
        folder.mkdir()
        read_only(folder)
        error, message = PermissionError, f"the folder {folder} is not writable"
    model = tiny_model()
    before = parameters_of(model)
    with pytest.raises(error, match=message):
        Trainer(model, make_train_loader(dataset(4), batch_size=2), OptimConfig(), 2, "cpu", checkpoint_dir=folder,
                progress=False)
    assert_same_parameters(parameters_of(model), before)


def test_mixed_precision_needs_cuda():
    with pytest.raises(ValueError, match="CUDA"):
        Trainer(tiny_model(), make_train_loader(dataset(4), batch_size=2), OptimConfig(), 2, "cpu", amp=True)


def test_an_empty_loader_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="no batch"):
        train(tiny_model(), [], OptimConfig(), 2, "cpu", progress=False)
