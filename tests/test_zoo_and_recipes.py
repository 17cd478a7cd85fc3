"""The model table, the training recipes it states, and training with them."""
import json

import numpy as np
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.dataset import TARGET_BUILDERS, PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.data.targets import deeplab_targets, instance_target, semantic_target
from panopticlab.engine import recipes
from panopticlab.engine.checkpoint import load_checkpoint
from panopticlab.engine.recipes import TrainRecipe
from panopticlab.models import zoo
from panopticlab.models.common import PanopticPrediction
from panopticlab.postprocess.ablations import ABLATIONS
from panopticlab.profiles import get_profile, seed_everything

CI = get_profile("ci")


# --- the table ------------------------------------------------------------------------------
# The class counts a model's settings state for CATS, by the setting's last name(s): a detector
# has the things and background, a semantic output one class per category (stuff and things)
CLASS_COUNTS = {"detection.num_classes": len(CATS.thing_ids) + 1, "num_classes": len(CATS),
                "num_stuff": len(CATS.stuff_ids), "num_things": len(CATS.thing_ids)}


def stated_count(key):
    """The class count a setting ``key`` (``"semantic_model.config.num_classes"``) states, or ``None``."""
    for suffix, count in CLASS_COUNTS.items():  # "detection.num_classes" before "num_classes"
        if key == suffix or key.endswith("." + suffix):
            return count
    return None


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_every_row_builds_its_model_for_the_categories(name):
    row = zoo.spec(name)
    model = zoo.build_model(name, CATS)
    assert isinstance(model, row.module) and row.name == name and row.size in name
    assert model.categories is CATS
    networks = [module for module in model.modules() if hasattr(module, "categories")]
    assert all(network.categories is CATS for network in networks)
    # a model made of separately trained networks holds one of each of its components' rows
    assert sorted(type(n).__name__ for n in networks[1:]) == sorted(zoo.spec(c).module.__name__
                                                                    for c in row.components)
    settings = zoo.model_settings(model)
    bodies = {value for key, value in settings.items() if key.endswith("backbone.name")}
    assert bodies and all((body == "tiny") == (row.size == "tiny") for body in bodies), bodies
    counts = {key: value for key, value in settings.items() if stated_count(key) is not None}
    assert counts and all(value == stated_count(key) for key, value in counts.items()), counts
    # the tables from the outputs to the dataset's categories: each category at most once, in the
    # dataset's order among the things and among the stuff; background (0) and void (255) besides
    named = set()
    for key, table in model.named_buffers():
        if key.endswith("_to_category"):
            ids = [i for i in table.tolist() if i not in (0, 255)]
            assert len(ids) == len(set(ids)) and set(ids) <= set(CATS.ids), (key, ids)
            for kind in (CATS.thing_ids, CATS.stuff_ids):
                assert [i for i in ids if i in kind] == [i for i in kind if i in ids], (key, ids)
            named.update(ids)
    # every category is an output's: the things of a detector, every category of a semantic output
    semantic = bool({"semantic", "deeplab"} & set(row.targets))
    assert named == set(CATS.ids if semantic else CATS.thing_ids)


def test_rows_are_consistent():
    for row in zoo.MODELS.values():
        assert set(row.targets) <= set(TARGET_BUILDERS), row.name
        # every target option is an option of one of the row's targets
        PanopticDataset([], CATS, targets=row.targets, **row.target_options)
        assert set(row.ablations) <= set(ABLATIONS)
        # a row either has a recipe or is made of rows that have one, of its own size
        assert (row.recipe_factory is None) == bool(row.components) == (row.assemble is not None), row.name
        for component in row.components:
            assert zoo.spec(component).recipe_factory is not None and zoo.spec(component).size == row.size
        if row.components:
            assert set(row.targets) == {t for c in row.components for t in zoo.spec(c).targets}


def test_unknown_name_lists_the_known_ones():
    for call in (lambda: zoo.build_model("pspnet-huge", CATS), lambda: zoo.spec("unet"),
                 lambda: recipes.recipe("unet", CI)):
        with pytest.raises(ValueError) as error:
            call()
        assert all(name in str(error.value) for name in zoo.MODEL_NAMES)


@pytest.fixture(scope="module")
def tiny_batch():
    every_target = tuple(sorted({target for row in zoo.MODELS.values() for target in row.targets}))
    dataset = PanopticDataset(SyntheticPanoptic(2, 64, split="train"), CATS, targets=every_target)
    return collate_panoptic([dataset[i] for i in range(2)])


@pytest.mark.parametrize("name", [name for name in zoo.MODEL_NAMES if name.endswith("-tiny")])
def test_every_tiny_model_takes_a_training_step_and_infers(name, tiny_batch, one_torch_thread):
    images, targets = tiny_batch
    torch.manual_seed(0)
    model = zoo.build_model(name, CATS).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    losses = model(images, targets)
    assert losses and all(key.startswith("loss_") and torch.isfinite(v) for key, v in losses.items())
    sum(losses.values()).backward()
    optimizer.step()
    predictions = model.inference(images)
    assert len(predictions) == 2 and model.training  # inference leaves the mode as it was
    for prediction in predictions:
        assert isinstance(prediction, PanopticPrediction) and prediction.panoptic.shape == (64, 64)
        prediction.panoptic.validate(CATS)


# --- recipes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pspnet-tiny", "maskrcnn-tiny", "panoptic-deeplab-tiny", "pspnet-full",
                                  "maskrcnn-full", "panoptic-deeplab-full"])
def test_recipes_grow_with_the_profile(name):
    ci, laptop = recipes.recipe(name, "ci"), recipes.recipe(name, get_profile("laptop"))
    assert ci.model == laptop.model == name
    assert ci.steps < laptop.steps
    assert ci.image_size <= laptop.image_size
    if name.endswith("-tiny"):
        assert (ci.image_size, ci.num_train, ci.batch_size) == (CI.image_size, CI.num_train, CI.batch_size)
        assert ci.steps <= 10  # seconds, not minutes


def test_recipe_steps_override_lays_the_schedule_over_them():
    base = recipes.recipe("maskrcnn-tiny", "laptop")
    longer = recipes.recipe("maskrcnn-tiny", "laptop", steps=3 * base.steps)
    assert longer.steps == 3 * base.steps
    assert longer.optim.warmup_steps == 3 * base.optim.warmup_steps
    assert longer.replace(steps=base.steps, optim=base.optim) == base
    with pytest.raises(ValueError, match="steps"):
        recipes.recipe("maskrcnn-tiny", "laptop", steps=0)


def test_baseline_recipe_points_to_its_networks():  # no recipe of its own: it is trained as its components
    with pytest.raises(ValueError) as error:
        recipes.recipe("baseline-tiny", CI)
    assert "pspnet-tiny" in str(error.value) and "maskrcnn-tiny" in str(error.value)


def test_recipe_dict_round_trip_and_json():
    original = recipes.recipe("maskrcnn-tiny", "laptop")
    values = json.loads(json.dumps(original.to_dict()))
    assert TrainRecipe.from_dict(values) == original


@pytest.mark.parametrize("changes, word", [({"steps": 0}, "steps"), ({"batch_size": 64}, "num_train"),
                                          ({"augment_scale": (1.5, 1.0)}, "augment_scale"),
                                          ({"grad_clip": -1.0}, "grad_clip"), ({"model": ""}, "model name")])
def test_bad_recipes_are_refused_by_name(changes, word):
    with pytest.raises(ValueError, match=word):
        recipes.recipe("pspnet-tiny", CI).replace(**changes)


def test_train_data_has_the_targets_and_size_of_the_recipe():
    recipe = recipes.recipe("maskrcnn-tiny", CI).replace(augment_scale=(0.5, 2.0))
    data = recipes.train_data(recipe, CATS, seed=3)
    assert len(data) == recipe.num_train and data.targets == ("instances",)
    image, target = data[1]
    assert image.shape == (3, recipe.image_size, recipe.image_size) and image.dtype == torch.float32
    # the targets describe the augmented annotation that comes with the image
    expected = instance_target(target["panoptic"], CATS)
    assert torch.equal(target["instances"]["masks"], expected["masks"])
    again_image, _ = data[1]
    assert torch.equal(image, again_image)  # augmentation is a function of (seed, epoch, index)
    data.set_epoch(1)
    assert not torch.equal(image, data[1][0])
    semantic_data = recipes.train_data(recipes.recipe("pspnet-tiny", CI), CATS)
    image, target = semantic_data[0]
    assert semantic_data.targets == ("semantic",)
    assert torch.equal(target["semantic"], semantic_target(target["panoptic"], CATS))


def test_train_data_builds_the_targets_with_the_rows_options():
    recipe = recipes.recipe("panoptic-deeplab-tiny", CI)
    data = recipes.train_data(recipe, CATS)
    assert data.targets == ("deeplab",)
    assert data.target_options["deeplab"] == {"small_instance_reference_area": 640 * 480}
    _, target = data[0]
    expected = deeplab_targets(target["panoptic"], CATS, small_instance_reference_area=640 * 480)
    assert torch.equal(target["deeplab"]["semantic_weights"], expected["semantic_weights"])


def test_val_data_is_the_synthetic_val_split():
    samples = recipes.val_data(size=48, num=3, seed=1)
    assert len(samples) == 3 and samples[2].image.shape == (48, 48, 3)
    assert np.array_equal(samples[0].image, recipes.val_data(size=48, num=1, seed=1)[0].image)
    assert not np.array_equal(samples[0].image, recipes.val_data(size=48, num=1, seed=2)[0].image)


# --- training -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pspnet-tiny", "maskrcnn-tiny", "panoptic-deeplab-tiny"])
def test_ci_recipe_trains_with_finite_losses(name):
    recipe = recipes.recipe(name, CI)
    seed_everything(0)
    model = zoo.build_model(name, CATS)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = recipes.fit(model, recipe, CATS, progress=False)
    losses = history.values("loss")
    assert len(losses) == recipe.steps and np.isfinite(losses).all()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    expected_losses = {"pspnet-tiny": {"loss_semantic", "loss_aux"},
                       "maskrcnn-tiny": {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness",
                                         "loss_rpn_box_reg"},
                       "panoptic-deeplab-tiny": {"loss_semantic", "loss_center", "loss_offset"}}[name]
    assert expected_losses <= set(history.names)


class Interrupt(Exception):
    pass


def interrupt_after(step):
    def callback(trainer):
        if trainer.step == step:
            raise Interrupt

    return callback


def _pspnet_run(recipe, checkpoint_dir=None, callback=None):
    seed_everything(0)
    model = zoo.build_model("pspnet-tiny", CATS)
    history = recipes.fit(model, recipe, CATS, seed=5, checkpoint_dir=checkpoint_dir, progress=False,
                          checkpoint_every=2, callback=callback)
    return model, history


def test_fit_with_a_checkpoint_dir_resumes_exactly(tmp_path):
    # 6 steps over 16 images in batches of 4: the interruption falls inside the second epoch
    recipe = recipes.recipe("pspnet-tiny", CI, steps=6).replace(augment_scale=(0.75, 1.25))
    straight, straight_history = _pspnet_run(recipe)
    with pytest.raises(Interrupt):
        _pspnet_run(recipe, tmp_path, interrupt_after(5))  # killed after step 5; the checkpoint holds step 4
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 4
    resumed, resumed_history = _pspnet_run(recipe, tmp_path)
    assert resumed_history == straight_history
    assert list(resumed_history.steps("loss")) == list(range(1, 7))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_fit_refuses_a_model_of_another_kind():
    with pytest.raises(ValueError, match="PSPNet"):
        recipes.fit(zoo.build_model("maskrcnn-tiny", CATS), recipes.recipe("pspnet-tiny", CI), CATS)
    with pytest.raises(ValueError, match="unknown model 'unet'"):
        recipes.fit(zoo.build_model("maskrcnn-tiny", CATS), recipes.recipe("pspnet-tiny", CI).replace(model="unet"))


# The published settings each data set selects, with where they are published. The values
# were read from the files named; the test builds every full model for each data set.
PUBLISHED_SETTINGS = {
    ("maskrcnn-full", "coco"): ("detectron2 configs/Base-RCNN-FPN.yaml; torchvision maskrcnn_resnet50_fpn",
                                {"config.min_size": 800, "config.max_size": 1333}),
    ("maskrcnn-full", "cityscapes"): ("detectron2 configs/Cityscapes/mask_rcnn_R_50_FPN.yaml (MIN/MAX_SIZE_TEST)",
                                      {"config.min_size": 1024, "config.max_size": 2048}),
    ("panoptic-fpn-full", "coco"): ("detectron2 config/defaults.py MODEL.PANOPTIC_FPN.COMBINE",
                                    {"config.detector.min_size": 800, "merge_config.stuff_area_limit": 4096,
                                     "merge_config.stuff_area_reference": None,
                                     "merge_config.overlap_threshold": 0.5, "merge_config.score_threshold": 0.5}),
    ("panoptic-fpn-full", "cityscapes"): ("detectron2 configs/Cityscapes/mask_rcnn_R_50_FPN.yaml (its detector)",
                                          {"config.detector.min_size": 1024, "config.detector.max_size": 2048}),
    ("upsnet-full", "coco"): ("uber-research/UPSNet upsnet/experiments/upsnet_resnet50_coco_16gpu.yaml",
                              {"config.detector.min_size": 800, "config.detector.max_size": 1333,
                               "config.semantic_loss_weight": 0.2, "config.semantic_roi_loss": True,
                               "config.panoptic_loss_weight": 0.1, "config.box_keep_fraction": 0.7,
                               "head_config.stuff_area_limit": 4096, "head_config.stuff_area_reference": None}),
    ("upsnet-full", "cityscapes"): ("uber-research/UPSNet upsnet/experiments/upsnet_resnet50_cityscapes.yaml",
                                    {"config.detector.min_size": 1024, "config.detector.max_size": 2048,
                                     "config.semantic_layers": 2, "config.semantic_loss_weight": 1.0,
                                     "config.semantic_roi_loss": False, "config.panoptic_loss_weight": 0.5,
                                     "config.box_keep_fraction": 0.7, "head_config.stuff_area_limit": 2048}),
    ("panoptic-deeplab-full", "coco"): (
        "detectron2 projects/Panoptic-DeepLab/configs/COCO-PanopticSegmentation/"
        "panoptic_deeplab_R_52_os16_mg124_poly_200k_bs64_crop_640_640_coco_dsconv.yaml",
        {"config.top_k_percent": 1.0, "config.nms_kernel": 41, "config.stuff_area": 4096}),
}


@pytest.mark.parametrize("name, dataset", sorted(PUBLISHED_SETTINGS))
def test_a_data_set_selects_its_published_configuration(name, dataset):
    from panopticlab.data.cityscapes import CITYSCAPES_TRAIN_ID_CATEGORIES

    source, expected = PUBLISHED_SETTINGS[name, dataset]
    categories = CITYSCAPES_TRAIN_ID_CATEGORIES if dataset == "cityscapes" else CATS
    with torch.device("meta"):
        settings = zoo.model_settings(zoo.build_model(name, categories, dataset))
    differing = {key: (settings.get(key, "missing"), value) for key, value in expected.items()
                 if settings.get(key, "missing") != value}
    assert not differing, f"{name} on {dataset} differs from {source}: {differing}"


def test_train_and_evaluate_build_the_data_sets_configuration(tmp_path):
    """The recipe carries the data set (recipe.json), so a run is rebuilt as it was trained."""
    from panopticlab.commands.trained import recorded_recipe
    from panopticlab.recipe import TrainRecipe

    recipe = zoo.spec("upsnet-full").recipe("ci").replace(dataset="cityscapes")
    (tmp_path / "recipe.json").write_text(json.dumps(recipe.to_dict()))
    assert recorded_recipe(tmp_path) == recipe and TrainRecipe.from_dict(recipe.to_dict()).dataset == "cityscapes"
    with pytest.raises(ValueError, match="unknown dataset 'kitti'"):
        zoo.build_model("upsnet-full", CATS, "kitti")


def test_models_command_shows_what_a_data_set_changes(capsys):
    from panopticlab.commands import main

    assert main(["models", "--config", "full", "--data", "cityscapes"]) == 0
    out = capsys.readouterr().out
    assert "head_config.stuff_area_limit: 4096 -> 2048" in out and "config.min_size: 800 -> 1024" in out
    assert all(line.split()[0].endswith("-full") for line in out.splitlines() if not line.startswith(" "))
