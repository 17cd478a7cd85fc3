"""`train --schedule published`: each full network's published training run, per data set.

The schedules are compared with a table of the published values written here from the
configuration files (named in it); the linear scaling rule, the shortest-edge resize
(detectron2's formula, worked by hand) and training on whole images of mixed sizes are
checked, and the command runs a published schedule end to end on COCO-format files.
"""
import json

import numpy as np
import pytest
import torch

from panopticlab.commands import main
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.data.transforms import RandomShortestEdge, resize_sample
from panopticlab.engine import recipes, timing
from panopticlab.engine.runs import train_network
from panopticlab.models import zoo
from panopticlab.models.common import ImageBatcher
from panopticlab.recipe import OptimConfig, PublishedSchedule, TrainRecipe

D2_1X = "detectron2 configs/Base-RCNN-FPN.yaml (SOLVER, INPUT.MIN_SIZE_TRAIN) + defaults.py (WARMUP_ITERS)"
# (network, data set): (source, total batch, iterations, lr, milestones, warmup, crop, short sides, max size)
PUBLISHED = {
    ("maskrcnn-full", "coco"): (D2_1X, 16, 90_000, 0.02, (60_000, 80_000), 1000, None,
                                (640, 672, 704, 736, 768, 800), 1333),
    ("maskrcnn-full", "cityscapes"): ("detectron2 configs/Cityscapes/mask_rcnn_R_50_FPN.yaml", 8, 24_000, 0.01,
                                      (18_000,), 1000, None, (800, 832, 864, 896, 928, 960, 992, 1024), 2048),
    ("panoptic-fpn-full", "coco"): ("detectron2 Base-Panoptic-FPN.yaml on Base-RCNN-FPN.yaml", 16, 90_000, 0.02,
                                    (60_000, 80_000), 1000, None, (640, 672, 704, 736, 768, 800), 1333),
    ("upsnet-full", "coco"): ("UPSNet upsnet_resnet50_coco_16gpu.yaml", 16, 90_000, 0.02, (60_000, 80_000), 1500,
                              None, (800,), 1333),
    ("upsnet-full", "cityscapes"): ("UPSNet upsnet_resnet50_cityscapes.yaml", 16, 12_000, 0.02, (9_000,), 1500, None,
                                    (800, 832, 864, 896, 928, 960, 992, 1024), 2048),
    ("panoptic-deeplab-full", "cityscapes"): ("detectron2 panoptic_deeplab_R_52_os16_mg124_poly_90k_bs32_crop_512_"
                                              "1024.yaml", 32, 90_000, 0.001, (), 1000, (512, 1024), (), None),
    ("panoptic-deeplab-full", "coco"): ("detectron2 panoptic_deeplab_..._200k_bs64_crop_640_640_coco_dsconv.yaml",
                                        64, 200_000, 0.0005, (), 1000, (640, 640),
                                        (320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960), 640),
    ("pspnet-full", "cityscapes"): ("mmsegmentation pspnet_r50-d8_4xb2-80k_cityscapes-512x1024.py", 8, 80_000,
                                    0.01, (), 0, (512, 1024), (), None),
    ("pspnet-full", "coco"): ("mmsegmentation pspnet_r50-d8_4xb4-80k_coco-stuff164k-512x512.py", 16, 80_000, 0.01,
                              (), 0, (512, 512), (512,), None),
}


def test_every_full_network_offers_exactly_the_published_runs_of_the_table():
    offered = {(row.name, dataset) for row in zoo.MODELS.values() for dataset in row.published}
    assert offered == set(PUBLISHED)
    assert all(not row.published for row in zoo.MODELS.values() if row.size == "tiny")


@pytest.mark.parametrize("name, dataset", sorted(PUBLISHED))
def test_a_published_schedule_states_the_published_values(name, dataset):
    source, batch, iterations, lr, milestones, warmup, crop, short_sides, max_size = PUBLISHED[name, dataset]
    schedule = zoo.spec(name).published[dataset]
    assert (schedule.dataset, schedule.batch_size, schedule.iterations) == (dataset, batch, iterations), source
    assert (schedule.optim.lr, schedule.optim.milestones, schedule.optim.warmup_steps) == (lr, milestones, warmup)
    assert (schedule.crop_size, schedule.short_sides, schedule.max_size) == (crop, short_sides, max_size), source
    assert schedule.source and schedule.inputs
    recipe, changes = zoo.spec(name).published_recipe(dataset)
    assert changes == []  # one process at the published batch: the run as published
    assert (recipe.steps, recipe.batch_size, recipe.optim, recipe.dataset) == (iterations, batch, schedule.optim, dataset)
    assert recipe.whole_images == (crop is None) and recipe.crop_size == crop
    # the start and frozen parts are the row's own (ImageNet and FrozenBN for the detectors)
    assert (recipe.start, recipe.freeze_at) == (zoo.spec(name).recipe("ci").start, zoo.spec(name).recipe("ci").freeze_at)


def test_the_solvers_are_the_published_ones():
    detectron2 = zoo.spec("panoptic-fpn-full").published["coco"].optim
    assert (detectron2.optimizer, detectron2.momentum, detectron2.weight_decay, detectron2.warmup_factor,
            detectron2.schedule, detectron2.gamma) == ("sgd", 0.9, 1e-4, 0.001, "step", 0.1)
    deeplab = zoo.spec("panoptic-deeplab-full").published["cityscapes"].optim
    assert (deeplab.optimizer, deeplab.weight_decay, deeplab.schedule, deeplab.poly_power) == ("adam", 0.0, "poly", 0.9)
    mmseg = zoo.spec("pspnet-full").published["cityscapes"].optim
    assert (mmseg.optimizer, mmseg.momentum, mmseg.weight_decay, mmseg.poly_power) == ("sgd", 0.9, 5e-4, 0.9)
    assert zoo.spec("upsnet-full").published["coco"].optim.warmup_factor == 0.1


def _schedule(**changes):
    values = dict(dataset="coco", batch_size=16, iterations=90_000,
                  optim=OptimConfig(lr=0.02, schedule="step", milestones=(60_000, 80_000), warmup_steps=1000),
                  crop_size=None, test_size=800, inputs="", source="test", short_sides=(640, 800), max_size=1333)
    return PublishedSchedule(**{**values, **changes})


def test_the_linear_scaling_rule():
    scaled, notes = _schedule().scaled(batch_size=4)
    # a quarter of the batch: a quarter of the learning rate, four times the iterations
    assert (scaled.batch_size, scaled.optim.lr, scaled.iterations) == (4, pytest.approx(0.005), 360_000)
    assert (scaled.optim.milestones, scaled.optim.warmup_steps) == ((240_000, 320_000), 4000)
    assert scaled.batch_size * scaled.iterations == 16 * 90_000  # the same images seen
    assert len(notes) == 1 and "linear scaling rule" in notes[0] and "0.005" in notes[0]
    larger, _ = _schedule().scaled(batch_size=64)
    assert (larger.optim.lr, larger.iterations, larger.optim.milestones) == (pytest.approx(0.08), 22_500, (15_000, 20_000))
    same, notes = _schedule().scaled(batch_size=16)
    assert same == _schedule() and notes == []


def test_a_shorter_run_keeps_the_milestones_in_their_places_and_sizes_scale_together():
    short, notes = _schedule().scaled(iterations=900)
    assert (short.iterations, short.optim.milestones, short.optim.warmup_steps, short.optim.lr) == (900, (600, 800), 10, 0.02)
    tiny, _ = _schedule().scaled(iterations=2)  # too short for two milestones: they stay strictly inside the run
    assert tiny.iterations == 2 and all(0 < m < 2 for m in tiny.optim.milestones)
    small, notes = _schedule(crop_size=(512, 1024)).scaled(test_size=400)
    assert (small.crop_size, small.short_sides, small.max_size) == ((256, 512), (320, 400), 666)
    assert "scaled by 0.5" in notes[0]


def test_the_batch_is_shared_out_over_the_processes_or_refused():
    base = zoo.spec("maskrcnn-full").recipe("ci")
    assert _schedule().train_recipe(base, world_size=8).batch_size == 2
    with pytest.raises(ValueError, match="does not share out over 3 processes"):
        _schedule().train_recipe(base, world_size=3)
    recipe, changes = zoo.spec("maskrcnn-full").published_recipe("coco", world_size=4, batch_size=1)
    assert (recipe.batch_size, recipe.optim.lr, recipe.steps) == (1, pytest.approx(0.005), 360_000) and changes


def test_a_network_without_a_published_run_says_which_it_has():
    with pytest.raises(ValueError, match=r"panoptic-fpn-full has no published training run on 'cityscapes' "
                                         r"\(published: coco\)"):
        zoo.spec("panoptic-fpn-full").published_recipe("cityscapes")
    with pytest.raises(ValueError, match="no published training run on 'coco' \\(published: none\\)"):
        zoo.spec("upsnet-tiny").published_recipe("coco")
    with pytest.raises(ValueError, match="trained as its networks"):
        zoo.spec("baseline-full").published_recipe("coco")


@pytest.mark.parametrize("size, short, max_size, expected", [
    ((480, 640), 800, 1333, (800, 1067)),     # COCO landscape: 640 * 800 / 480 = 1066.7
    ((640, 427), 800, 1333, (1199, 800)),     # portrait: 640 * 800 / 427 = 1199.1
    ((300, 1000), 800, 1333, (400, 1333)),    # the long side caps the scale at 1333 / 1000
    ((1024, 2048), 1024, 2048, (1024, 2048)),  # Cityscapes at its test size: unchanged
    ((480, 640), 320, 640, (320, 427)),       # Panoptic-DeepLab COCO, the smallest short side
    ((480, 640), 960, 640, (480, 640)),       # ... the largest, capped by MAX_SIZE_TRAIN 640
])
def test_shortest_edge_resize_follows_detectron2(size, short, max_size, expected):
    # detectron2's ResizeShortestEdge.get_output_shape, worked by hand for each case
    transform = RandomShortestEdge((short,), max_size)
    assert transform.size_for(*size, short) == expected
    sample = resize_sample(SyntheticPanoptic(1, size=64, seed=0)[0], size)
    out = transform(sample, np.random.default_rng(0))
    assert out.image.shape[:2] == expected == np.asarray(out.panoptic.id_map).shape
    with pytest.raises(ValueError, match="short_sides"):
        RandomShortestEdge(())


def test_a_recipe_checks_its_crop_and_resize():
    base = dict(model="maskrcnn-full", steps=1, batch_size=1, image_size=64, num_train=1)
    with pytest.raises(ValueError, match="whole_images trains on uncropped images"):
        TrainRecipe(**base, crop_size=(32, 32), whole_images=True)
    with pytest.raises(ValueError, match="crop_size must be"):
        TrainRecipe(**base, crop_size=(32,))
    with pytest.raises(ValueError, match="short_sides must be positive"):
        TrainRecipe(**base, short_sides=(0,))
    recipe = TrainRecipe(**base, whole_images=True, short_sides=(48, 64), max_size=100)
    assert TrainRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def _mixed_sizes(num=6):
    return [resize_sample(s, (64 + 8 * (i % 3), 64 + 16 * (i % 2)))
            for i, s in enumerate(SyntheticPanoptic(num, size=64, seed=1, split="train"))]


@pytest.mark.parametrize("name", ["maskrcnn-tiny", "panoptic-fpn-tiny", "upsnet-tiny"])
def test_detectors_train_on_whole_images_of_mixed_sizes(name):
    recipe = recipes.recipe(name, "ci", steps=2).replace(num_train=6, batch_size=3, whole_images=True)
    model, trained = train_network(recipe, seed=0, source=_mixed_sizes(), progress=False, device="cpu")
    assert len(trained.history.steps("loss")) == 2 and np.isfinite(trained.history.values("loss")).all()


def test_a_detector_keeps_the_data_pipelines_size_in_training_and_resizes_in_evaluation():
    from panopticlab.models.common import keep_data_size_in_training, set_input_size

    model = zoo.build_model("maskrcnn-full", recipes.SYNTHETIC_CATEGORIES)
    set_input_size(model, 96)
    assert keep_data_size_in_training(model) == 1
    batcher = next(m for m in model.modules() if isinstance(m, ImageBatcher))
    image = torch.rand(3, 50, 70)
    batcher.train()
    assert tuple(batcher.batch([image]).images.image_sizes[0]) == (50, 70)  # resized by the data pipeline already
    batcher.eval()
    assert tuple(batcher.batch([image]).images.image_sizes[0]) == (96, 134)  # the test size


def test_pspnet_refuses_whole_images_of_mixed_sizes_by_name():
    model = zoo.build_model("pspnet-tiny", recipes.SYNTHETIC_CATEGORIES).train()
    with pytest.raises(ValueError, match="PSPNet takes one .* batch of images of one size"):
        model([torch.rand(3, 32, 32), torch.rand(3, 40, 32)], torch.zeros(2, 32, 32, dtype=torch.long))


def test_train_runs_a_published_schedule_and_records_it(coco_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "maskrcnn", "--config", "full", "--schedule", "published", "--data", "coco",
                 str(coco_root), "--steps", "2", "--batch-size", "2", "--input-size", "64", "--weights", "random",
                 "--output", str(run), "--no-progress", "--device", "cpu", "--num-val", "1"]) == 0
    printed = capsys.readouterr().out
    assert "the published run on coco (detectron2 configs/Base-RCNN-FPN.yaml" in printed
    assert "0.02 x 2/16 = 0.0025" in printed and "whole images" in printed
    recipe = json.loads((run / "recipe.json").read_text())
    assert (recipe["steps"], recipe["batch_size"], recipe["optim"]["lr"], recipe["dataset"]) == (2, 2, 0.0025, "coco")
    assert recipe["whole_images"] and recipe["short_sides"] == [51, 54, 56, 59, 61, 64] and recipe["max_size"] == 107


def test_train_refuses_a_published_schedule_it_cannot_run(coco_root, tmp_path, capsys):
    common = ["--schedule", "published", "--output", str(tmp_path / "run"), "--no-progress", "--device", "cpu"]
    assert main(["train", "--model", "panoptic-fpn-full", *common]) == 1
    assert "give --data coco ROOT or --data cityscapes ROOT" in capsys.readouterr().err
    assert main(["train", "--model", "upsnet-tiny", "--data", "coco", str(coco_root), *common]) == 1
    assert "no published training run on 'coco'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_models_lists_each_published_run_with_its_source(capsys):
    assert main(["models", "--config", "full", "--data", "cityscapes"]) == 0
    printed = capsys.readouterr().out
    assert "--schedule published: 24000 iterations of 8 images, sgd lr 0.01, warmup 1000, steps at 18000" in printed
    assert "from: detectron2 configs/Cityscapes/mask_rcnn_R_50_FPN.yaml" in printed
    assert "--schedule published: no published run on cityscapes" in printed  # Panoptic FPN's
    networks = [row for row in zoo.MODELS.values() if row.size == "full" and not row.components]
    assert printed.count("--schedule published:") == len(networks)  # one per full network


def test_a_time_budget_is_shared_as_the_recipes_share_their_time(monkeypatch):
    step_seconds = {"pspnet-tiny": 0.1, "maskrcnn-tiny": 0.2}
    monkeypatch.setattr(timing, "seconds_per_step", lambda model, recipe, *args: step_seconds[recipe.model])
    recipes_ = {name: recipes.recipe(name, "laptop", steps=steps) for name, steps in (("pspnet-tiny", 300),
                                                                                     ("maskrcnn-tiny", 1000))}
    planned = timing.steps_for_budget(recipes_, 115.0)  # half of the recipes' 300 x 0.1 + 1000 x 0.2 = 230 s
    assert planned == {"pspnet-tiny": (150, 0.1), "maskrcnn-tiny": (500, 0.2)}
    monkeypatch.setattr(timing, "seconds_per_step", lambda *args: pytest.fail("timed again"))
    assert timing.steps_for_budget(recipes_, 115.0, step_seconds=step_seconds) == planned  # times given: no timing
    with pytest.raises(ValueError, match="positive number of seconds"):
        timing.steps_for_budget(recipes_, 0)


def test_train_fits_its_steps_to_a_time_budget(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "panoptic-deeplab-tiny", "--profile", "ci", "--budget", "2", "--output", str(run),
                 "--no-progress", "--device", "cpu", "--num-val", "2"]) == 0
    printed = capsys.readouterr().out
    steps = json.loads((run / "recipe.json").read_text())["steps"]
    assert f"{steps} steps for the 2 s budget" in printed and steps >= 1
    assert main(["train", "--model", "panoptic-deeplab-tiny", "--profile", "ci", "--budget", "2", "--steps", "3",
                 "--output", str(tmp_path / "other"), "--no-progress"]) == 1
    assert "--budget sets the steps from a time" in capsys.readouterr().err

    # a second run takes each step's time from the first's whole run instead of timing again
    record = json.loads((run / "run.json").read_text())
    realised = record["training_seconds"]["panoptic-deeplab-tiny"] / steps
    again = tmp_path / "seed1"
    assert main(["train", "--model", "panoptic-deeplab-tiny", "--profile", "ci", "--budget", "2", "--step-times-from",
                 str(run), "--seed", "1", "--output", str(again), "--no-progress", "--device", "cpu",
                 "--num-val", "2"]) == 0
    ci_recipe = recipes.recipe("panoptic-deeplab-tiny", "ci")
    expected = timing.steps_for_budget({"panoptic-deeplab-tiny": ci_recipe}, 2.0,
                                       step_seconds={"panoptic-deeplab-tiny": realised})["panoptic-deeplab-tiny"][0]
    assert f"a step takes {realised:.3f} s in {run}: {expected} steps for the 2 s budget" in capsys.readouterr().out
    assert json.loads((again / "recipe.json").read_text())["steps"] == expected
    assert json.loads((again / "run.json").read_text())["budget_seconds"] == 2
    for arguments, refusal in ((["--model", "pspnet-tiny", "--budget", "2"], "a run of panoptic-deeplab-tiny, not of "
                                                                              "pspnet-tiny"),
                               (["--model", "panoptic-deeplab-tiny", "--budget", "2", "--batch-size", "3"],
                                "a step of the one does not time the other"),
                               (["--model", "panoptic-deeplab-tiny"], "give --budget SECONDS too"),
                               (["--model", "panoptic-deeplab-tiny", "--budget", "2", "--step-times-from",
                                 str(tmp_path)], "no run record")):
        assert main(["train", "--profile", "ci", "--output", str(tmp_path / "refused"), "--no-progress",
                     "--step-times-from", str(run), *arguments]) == 1
        assert refusal in capsys.readouterr().err
