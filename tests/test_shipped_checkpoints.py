"""The trained checkpoints shipped with the package: they load, say how they were made, and
still reach the numbers they state on the fixed evaluation set."""
import json

import pytest
import torch

from panopticlab.commands import main
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.categories import Category, CategorySet
from panopticlab.engine import pretrained as checkpoints
from panopticlab.engine import recipes
from panopticlab.engine.checkpoint import load_model_weights, save_checkpoint
from panopticlab.engine.evaluator import summary_metrics
from panopticlab.models import HeuristicBaseline, zoo
from panopticlab.profiles import get_profile

NAMES = list(checkpoints.SHIPPED)
PAIR = list(zoo.spec("baseline-tiny").components)  # shipped as a pair: they state the baseline's numbers
ALONE = [name for name in NAMES if name not in PAIR]  # panoptic models by themselves
HEADLINE = ("pq", "sq", "rq", "pq_th", "pq_st")
TOLERANCE = 0.05  # PQ points: CPU float differences between machines are the only slack


def test_the_baseline_pair_and_every_panoptic_model_are_shipped():
    assert set(PAIR) <= set(NAMES) and {"panoptic-fpn-tiny", "upsnet-tiny", "panoptic-deeplab-tiny"} <= set(ALONE)
    assert all(zoo.spec(name).shipped == f"{name}.pt" for name in NAMES)
    for name in NAMES:
        shipped = checkpoints.SHIPPED[name]
        assert shipped.exists, f"{shipped.file} is missing: run scripts/train_checkpoints.py"
        assert shipped.file.stat().st_size < 8e6, "a shipped checkpoint should stay a few MB"


@pytest.mark.parametrize("name", NAMES)
def test_metadata_says_how_the_weights_were_made(name):
    info = checkpoints.SHIPPED[name].metadata
    assert info["name"] == name
    recipe = recipes.TrainRecipe.from_dict(info["recipe"])
    laptop = recipes.recipe(name, get_profile("laptop"))
    assert recipe.model == name and recipe.steps == info["steps"] >= laptop.steps  # laptop recipe or longer
    assert info["steps"] == zoo.spec(name).shipped_steps  # what scripts/train_checkpoints.py trains by default
    assert recipe.replace(steps=laptop.steps, optim=laptop.optim) == laptop  # otherwise the laptop recipe
    assert info["image_size"] == recipe.image_size
    assert info["training_seconds"] > 0 and isinstance(info["seed"], int)
    assert info["torch_version"] and info["dtype"] == "float16"
    assert info["categories"] == CATS.to_coco()
    evaluation = info["evaluation"]
    assert evaluation["dataset"] == "SyntheticPanoptic(50, size=128, seed=0, split='val')"
    assert evaluation["merge"] == checkpoints.EVAL_MERGE
    expected = HEADLINE + (("miou",) if name != "maskrcnn-tiny" else ())
    assert all(0 <= info[key] <= 100 for key in expected)
    if name in PAIR:
        assert info["alone"]["variant"] == {"pspnet-tiny": "semantic_only", "maskrcnn-tiny": "instance_only"}[name]
    else:
        assert set(info["ablations"]) == set(zoo.spec(name).ablations)


def test_both_files_of_the_pair_state_the_same_baseline():
    semantic, instance = (checkpoints.SHIPPED[name].metadata for name in PAIR)
    assert {key: semantic[key] for key in HEADLINE} == {key: instance[key] for key in HEADLINE}


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_stored_as_float16_and_load_as_float32(name):
    stored = checkpoints.read_pretrained(checkpoints.SHIPPED[name].file)["model"]
    model, info = checkpoints.load_pretrained(name)
    assert isinstance(model, zoo.spec(name).module)
    assert not model.training and info == checkpoints.SHIPPED[name].metadata
    state = model.state_dict()
    assert state.keys() == stored.keys()
    for key, value in stored.items():
        if value.is_floating_point():
            assert value.dtype == torch.float16 and state[key].dtype == torch.float32
        assert torch.equal(state[key], value.to(state[key].dtype)), key


def evaluate_shipped(model_name, folder):
    """``panopticlab evaluate --model NAME --pretrained`` on the fixed evaluation set."""
    results_json = folder / "results.json"
    evaluation = checkpoints.EVAL_SET
    assert main(["evaluate", "--model", model_name, "--pretrained", "--num-images", str(evaluation["num_images"]),
                 "--image-size", str(evaluation["size"]), "--val-seed", str(evaluation["seed"]),
                 "--results-json", str(results_json), "--no-progress", "--device", "cpu"]) == 0
    return json.loads(results_json.read_text())


@pytest.fixture(scope="module")
def recomputed(tmp_path_factory):
    """The shipped baseline pair, evaluated again from the command line."""
    return evaluate_shipped("baseline-tiny", tmp_path_factory.mktemp("eval"))


def percent(results):
    return {key: 100 * value for key, value in summary_metrics(results).items()}


@pytest.mark.parametrize("name", ALONE)
def test_models_shipped_alone_reach_their_stated_numbers(name, tmp_path):
    info = checkpoints.SHIPPED[name].metadata
    recomputed = evaluate_shipped(name, tmp_path)
    numbers = percent(recomputed["results"])
    for key in HEADLINE:
        assert numbers[key] == pytest.approx(info[key], abs=TOLERANCE), key
    for variant, stated in info["ablations"].items():
        ablation = percent(recomputed["ablations"][variant])
        assert all(ablation[key] == pytest.approx(stated[key], abs=TOLERANCE) for key in HEADLINE), variant
    assert 100 * recomputed["miou"] == pytest.approx(info["miou"], abs=TOLERANCE)


@pytest.mark.parametrize("name", PAIR)
def test_shipped_checkpoints_reach_their_stated_numbers(name, recomputed):
    info = checkpoints.SHIPPED[name].metadata
    baseline = percent(recomputed["results"])
    for key in HEADLINE:
        assert baseline[key] == pytest.approx(info[key], abs=TOLERANCE), key
    alone = percent(recomputed["ablations"][info["alone"]["variant"]])
    for key in HEADLINE:
        assert alone[key] == pytest.approx(info["alone"][key], abs=TOLERANCE), key
    if name == "pspnet-tiny":
        assert 100 * recomputed["miou"] == pytest.approx(info["miou"], abs=TOLERANCE)


def test_the_shipped_baseline_works():
    # the aim for the tiny baseline on the built-in validation split
    baseline, info = checkpoints.load_pretrained("baseline-tiny")
    assert isinstance(baseline, HeuristicBaseline) and not baseline.training
    assert info["pq"] >= 50
    assert set(info["components"]) == set(PAIR)
    # merged, it is better than either network alone, and it has learned things and stuff
    alone = {name: checkpoints.SHIPPED[name].metadata["alone"]["pq"] for name in PAIR}
    assert info["pq"] > max(alone.values())
    assert info["pq_th"] > 0 and info["pq_st"] > 50


def test_shipped_files_load_as_engine_checkpoints():
    model = zoo.build_model("pspnet-tiny", CATS)
    payload = load_model_weights(checkpoints.SHIPPED["pspnet-tiny"].file, model)
    assert payload["metadata"]["name"] == "pspnet-tiny"


def test_load_pretrained_explains_bad_requests(tmp_path):
    with pytest.raises(ValueError, match="no shipped weights"):
        checkpoints.load_pretrained("pspnet-full")
    other = CategorySet([Category(1, "cat", True, (1, 2, 3)), Category(2, "floor", False, (4, 5, 6))])
    with pytest.raises(ValueError, match="trained for the categories"):
        checkpoints.load_pretrained("pspnet-tiny", other)
    with pytest.raises(ValueError, match="maskrcnn-tiny"):  # a file of the other network
        checkpoints.load_pretrained("pspnet-tiny", path=checkpoints.SHIPPED["maskrcnn-tiny"].file)
    training = save_checkpoint(tmp_path / "last.pt", {"model": {}, "step": 3})
    with pytest.raises(ValueError, match="training checkpoint"):
        checkpoints.load_pretrained("pspnet-tiny", path=training)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoints.SHIPPED["pspnet-tiny"].file.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.pt"):
        checkpoints.load_pretrained("pspnet-tiny", path=truncated)
    with pytest.raises(FileNotFoundError):
        checkpoints.load_pretrained("pspnet-tiny", path=tmp_path / "missing.pt")


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    model = zoo.build_model("pspnet-tiny", CATS)
    path = checkpoints.save_pretrained(tmp_path / "w.pt", model, {"name": "pspnet-tiny", "note": (1, 2)})
    loaded, info = checkpoints.load_pretrained("pspnet-tiny", path=path)
    assert info == {"name": "pspnet-tiny", "note": [1, 2]}
    for key, value in model.state_dict().items():
        expected = value.half().to(value.dtype) if value.is_floating_point() else value
        assert torch.equal(loaded.state_dict()[key], expected), key
    assert isinstance(info["note"], list)
    with pytest.raises(ValueError, match="unknown model"):
        checkpoints.save_pretrained(tmp_path / "x.pt", model, {"name": "mystery"})
    with pytest.raises(ValueError, match="plain JSON"):
        checkpoints.save_pretrained(tmp_path / "x.pt", model, {"name": "pspnet-tiny", "ids": {1, 2}})
    assert not (tmp_path / "x.pt").exists()
    # str subclasses such as torch.__version__ are stored as plain strings
    path = checkpoints.save_pretrained(path, model, {"name": "pspnet-tiny", "torch": torch.__version__})
    assert type(checkpoints.read_pretrained(path)["metadata"]["torch"]) is str


def test_the_shipped_centre_head_finds_about_one_centre_per_thing():
    """Chapter 6 prints how many centres the shipped Panoptic-DeepLab finds against the number
    of ground-truth things; on its validation images that is within a factor of two."""
    from panopticlab.engine.evaluator import evaluate

    model, info = checkpoints.load_pretrained("panoptic-deeplab-tiny")
    val_set = recipes.val_data(size=info["image_size"], num=16, seed=0)
    kept = evaluate(model, val_set, CATS, keep_predictions=True, progress=False).predictions
    things = sum(CATS.isthing(s.category_id) for record, _ in kept for s in record["panoptic"].segments)
    found = sum(len(prediction.merge.centers) for _, prediction in kept)
    assert things > 0 and 0.5 * things <= found <= 2 * things, (found, things)
