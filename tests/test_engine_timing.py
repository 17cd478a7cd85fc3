"""Timing helpers: they run what they time and refuse what they cannot time."""
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.engine import inference_seconds, recipes, seconds_per_image, seconds_per_step
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


@pytest.mark.parametrize("name", [row.name for row in zoo.MODELS.values() if row.size == "tiny"])
def test_inference_is_the_network_then_its_postprocess(name):
    """The split that inference_seconds times: model(images) in eval mode, then model.postprocess."""
    torch.manual_seed(0)
    model = zoo.build_model(name, CATS).eval()
    images = torch.rand(2, 3, 64, 64)
    whole = model.inference(images)
    with torch.no_grad():
        split = model.postprocess(model(images))
    assert len(whole) == len(split) == 2
    for a, b in zip(whole, split):
        assert (a.panoptic.id_map == b.panoptic.id_map).all() and a.panoptic.segments == b.panoptic.segments


def test_inference_seconds_times_both_steps_on_the_same_outputs():
    model = zoo.build_model("panoptic-fpn-tiny", CATS).train()
    seen = []
    real = model.postprocess
    model.postprocess = lambda outputs: seen.append(outputs) or real(outputs)
    times = inference_seconds(model, torch.rand(3, 3, 32, 32), batch_size=2, device="cpu")
    assert times["network"] > 0 and times["postprocess"] > 0 and model.training
    assert times["total"] == pytest.approx(times["network"] + times["postprocess"])
    assert len(seen) == 1 + 2 and all(len(outputs["detections"]) in (1, 2) for outputs in seen)
    with pytest.raises(TypeError, match="no postprocess"):
        inference_seconds(torch.nn.Conv2d(3, 3, 1), torch.rand(1, 3, 8, 8))
