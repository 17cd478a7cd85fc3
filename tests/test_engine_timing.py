"""Timing helpers: they run what they time and refuse what they cannot time."""
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.engine import recipes, seconds_per_image, seconds_per_step
from panopticlab.models import zoo

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_seconds_per_step_trains_the_model_for_the_steps():
    model = zoo.build_model("pspnet-tiny", CATS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recipe = recipes.recipe("pspnet-tiny", "laptop").replace(batch_size=2, image_size=32)  # a warmup longer than 3 steps
    seconds = seconds_per_step(model, recipe, CATS, steps=3, device="cpu")
    assert 0 < seconds < 60
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # it trained
    with pytest.raises(ValueError, match="at least 3"):
        seconds_per_step(model, recipe, CATS, steps=2)


def test_seconds_per_image_runs_inference_and_leaves_the_mode():
    model = zoo.build_model("pspnet-tiny", CATS).train()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    seconds = seconds_per_image(model, torch.rand(3, 3, 32, 32), batch_size=2, device="cpu")
    assert seconds > 0 and len(calls) == 1 + 2 and model.training  # one warm-up batch, then two batches
    with pytest.raises(ValueError, match="non-empty"):
        seconds_per_image(model, torch.rand(0, 3, 32, 32))
