"""OptimConfig, optimisers, learning-rate schedules (against their closed forms), History, training curves."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from panopticlab.engine import History, OptimConfig, build_optimizer, build_scheduler, lr_curve
from panopticlab.viz.curves import moving_average, plot_history


# --- closed forms, written independently of torch's schedulers ---------------------------
def warmup_poly(step, lr, total, warmup, factor, power):
    if step < warmup:
        return lr * (factor + (1 - factor) * step / warmup)
    return lr * (1 - (step - warmup) / (total - warmup)) ** power


def warmup_step(step, lr, warmup, factor, milestones, gamma):
    if step < warmup:
        return lr * (factor + (1 - factor) * step / warmup)
    return lr * gamma ** sum(step >= m for m in milestones)


@pytest.mark.parametrize("warmup, power", [(0, 0.9), (5, 0.9), (10, 2.0), (3, 1.0)])
def test_poly_schedule_matches_closed_form(warmup, power):
    config = OptimConfig(lr=0.02, warmup_steps=warmup, warmup_factor=0.01, poly_power=power)
    total = 40
    curve = lr_curve(config, total)
    expected = [warmup_poly(s, 0.02, total, warmup, 0.01, power) for s in range(total)]
    np.testing.assert_allclose(curve, expected, rtol=1e-12, atol=1e-15)
    assert curve[min(warmup, total - 1)] == pytest.approx(0.02)  # the warmup ends at the base rate


@pytest.mark.parametrize("warmup", [0, 4])
def test_step_schedule_matches_closed_form(warmup):
    config = OptimConfig(lr=0.5, schedule="step", milestones=(12, 20), gamma=0.1, warmup_steps=warmup,
                         warmup_factor=0.2)
    curve = lr_curve(config, 30)
    expected = [warmup_step(s, 0.5, warmup, 0.2, (12, 20), 0.1) for s in range(30)]
    np.testing.assert_allclose(curve, expected, rtol=1e-12)
    assert curve[11] == pytest.approx(0.5) and curve[12] == pytest.approx(0.05) and curve[29] == pytest.approx(0.005)


def test_constant_schedule_with_warmup():
    curve = lr_curve(OptimConfig(lr=0.1, schedule="constant", warmup_steps=4, warmup_factor=0.5), 10)
    np.testing.assert_allclose(curve, [0.05, 0.0625, 0.075, 0.0875] + [0.1] * 6)


def test_scheduler_state_round_trip_continues_the_same_curve():
    """A scheduler rebuilt from its state dict continues exactly where the original was."""
    config = OptimConfig(lr=0.1, warmup_steps=3, poly_power=0.9)
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([parameter], config)
    scheduler = build_scheduler(optimizer, config, 20)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    parameter2 = nn.Parameter(torch.zeros(1))
    optimizer2 = build_optimizer([parameter2], config)
    scheduler2 = build_scheduler(optimizer2, config, 20)
    optimizer2.load_state_dict(optimizer.state_dict())
    scheduler2.load_state_dict(scheduler.state_dict())
    full = lr_curve(config, 20)
    for step in range(7, 20):
        assert optimizer2.param_groups[0]["lr"] == full[step]
        optimizer2.step()
        scheduler2.step()


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                       ("adamw", torch.optim.AdamW)])
def test_build_optimizer_skips_frozen_parameters(name, cls):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    config = OptimConfig(optimizer=name, lr=0.3, weight_decay=0.01, betas=(0.8, 0.99))
    optimizer = build_optimizer(model, config)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.3 and group["weight_decay"] == 0.01
    assert len(group["params"]) == 3 and all(p is not model[0].weight for p in group["params"])
    if name != "sgd":
        assert group["betas"] == (0.8, 0.99)


def test_adamw_applies_decoupled_weight_decay():
    """Decoupled decay: with a zero gradient, AdamW still shrinks a weight by the factor (1 - lr * wd)."""
    parameter = nn.Parameter(torch.ones(1))
    optimizer = build_optimizer([parameter], OptimConfig(optimizer="adamw", lr=0.1, weight_decay=0.5))
    parameter.grad = torch.zeros(1)
    optimizer.step()
    assert parameter.item() == pytest.approx(1 - 0.1 * 0.5)


@pytest.mark.parametrize("options, message", [
    (dict(optimizer="rmsprop"), "optimizer"),
    (dict(schedule="cosine"), "schedule"),
    (dict(lr=0), "lr"),
    (dict(schedule="step"), "milestones"),
    (dict(schedule="step", milestones=(5, 3)), "increasing"),
    (dict(schedule="step", milestones=(5,), warmup_steps=5), "after the warmup"),
    (dict(warmup_factor=0), "warmup_factor"),
    (dict(optimizer="adam", nesterov=True), "nesterov"),
])
def test_invalid_config_is_one_clear_error(options, message):
    with pytest.raises(ValueError, match=message):
        OptimConfig(**options)


def test_config_dict_round_trip_and_unknown_keys():
    config = OptimConfig(optimizer="adamw", schedule="step", milestones=(10, 20), warmup_steps=2)
    assert OptimConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="learning_rate"):
        OptimConfig.from_dict({"learning_rate": 0.1})


def test_scheduler_rejects_warmup_longer_than_run():
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], OptimConfig(warmup_steps=10))
    with pytest.raises(ValueError, match="warmup"):
        build_scheduler(optimizer, OptimConfig(warmup_steps=10), 10)


# --- History ---------------------------------------------------------------------------
def test_history_series_state_and_equality():
    history = History()
    for step in range(1, 6):
        history.log(step, loss=1.0 / step, lr=0.1)
    history.log(5, {"val/pq": 0.25, "val/sq": math.nan})
    steps, values = history.series("loss")
    np.testing.assert_array_equal(steps, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(values, [1.0 / s for s in range(1, 6)])
    assert history.names == ["loss", "lr", "val/pq", "val/sq"]
    assert history.last("val/pq") == 0.25 and math.isnan(history.last("missing"))
    assert history.running_mean("loss", window=2) == pytest.approx((1 / 4 + 1 / 5) / 2)
    assert history.last_step == 5

    copy = History.from_state_dict(history.state_dict())
    assert copy == history  # NaN compares equal to NaN
    copy.log(6, loss=0.1)
    assert copy != history


def test_history_rejects_steps_that_do_not_increase():
    history = History()
    history.log(3, loss=1.0)
    with pytest.raises(ValueError, match="'loss'.*step 3"):
        history.log(3, loss=0.5)
    with pytest.raises(KeyError, match="nothing"):
        history.values("nothing")


# --- training curves ---------------------------------------------------------------------
def test_moving_average_matches_a_direct_loop():
    values = np.random.default_rng(0).random(25)
    expected = [values[max(0, i - 4):i + 1].mean() for i in range(25)]
    np.testing.assert_allclose(moving_average(values, 5), expected)


def test_plot_history_groups_series_into_named_panels():
    """Chapter 5 draws UPSNet's eight losses head by head: one panel per group, in order."""
    history = History()
    for step in range(1, 6):
        history.log(step, loss_a=1.0 / step, loss_b=2.0 / step, loss_c=3.0 / step, lr=0.1)
    figure = plot_history(history, groups={"first head": ["loss_b", "loss_a"], "second head": ["loss_c"], "empty": []})
    assert [ax.get_title() for ax in figure.axes] == ["first head", "second head"]
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["loss_b", "loss_a"]
    assert all(ax.get_yscale() == "log" for ax in figure.axes)
    with pytest.raises(KeyError, match="loss_z"):
        plot_history(history, groups={"head": ["loss_z"]})


def test_a_run_records_losses_read_back_as_a_history():
    from panopticlab.engine.runs import shipped_run

    run = shipped_run("upsnet-tiny")
    history = run.loss_history()
    assert history.names == list(run.losses)
    steps, values = history.series("loss_panoptic")
    assert [[int(s), v] for s, v in zip(steps, values)] == run.losses["loss_panoptic"]


def test_plot_history_draws_every_series_in_its_panel():
    history = History()
    for step in range(1, 11):
        history.log(step, loss=2.0 / step, loss_sem=1.5 / step, lr=0.01 * step)
        if step % 5 == 0:
            history.log(step, {"val/pq": 0.1 * step, "val/sq": 0.05 * step})
    figure = plot_history(history)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["losses", "lr", "val"]
    for ax in figure.axes:
        for line in ax.get_lines():
            steps, values = history.series(line.get_label())
            np.testing.assert_array_equal(line.get_xdata(), steps)
            np.testing.assert_allclose(line.get_ydata(), values)
    assert figure.axes[0].get_yscale() == "log"

    smoothed = plot_history(history, ["loss"], smooth=3)
    labelled = [line for line in smoothed.axes[0].get_lines() if line.get_label() == "loss"]
    np.testing.assert_allclose(labelled[0].get_ydata(), moving_average(history.values("loss"), 3))
    with pytest.raises(KeyError, match="nope"):
        plot_history(history, ["nope"])
