"""PanopticDataset and collate_panoptic: determinism across workers, targets, batching."""
import numpy as np
import pytest
import torch
from conftest import random_panoptic
from torch.utils.data import DataLoader

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import Sample
from panopticlab.data.coco import CocoPanoptic, write_coco_panoptic
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.data.targets import deeplab_targets, instance_target, semantic_target
from panopticlab.data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomScale


def tiny_source(num_images=6, shape=(24, 32)):
    """A list of random samples: any map-style collection of Samples is a source."""
    samples = []
    for index in range(num_images):
        rng = np.random.default_rng(1000 + index)
        pan = random_panoptic(rng, shape=shape)
        image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        samples.append(Sample(image, pan, image_id=index, file_name=f"{index:03d}.png"))
    return samples


AUGMENT = Compose([RandomScale(0.75, 1.5), RandomCrop((20, 28)), RandomHorizontalFlip()])


def assert_batches_equal(a, b):
    images_a, targets_a = a
    images_b, targets_b = b
    assert torch.equal(images_a, images_b)
    assert targets_a["image_id"] == targets_b["image_id"]
    assert torch.equal(targets_a["semantic"], targets_b["semantic"])
    for key, value in targets_a["deeplab"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, targets_b["deeplab"][key]), key
        else:
            assert value == targets_b["deeplab"][key], key
    for inst_a, inst_b in zip(targets_a["instances"], targets_b["instances"]):
        assert inst_a.keys() == inst_b.keys()
        assert all(torch.equal(inst_a[k], inst_b[k]) for k in inst_a)
    assert all(p.equals(q) for p, q in zip(targets_a["panoptic"], targets_b["panoptic"]))


def test_worker_count_does_not_change_batches():
    dataset = PanopticDataset(tiny_source(), CATS, transforms=AUGMENT, seed=3)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        runs = [list(DataLoader(dataset, batch_size=2, num_workers=workers, collate_fn=collate_panoptic))
                for workers in (0, 2)]
        assert len(runs[0]) == len(runs[1]) == 3
        for a, b in zip(*runs):
            assert_batches_equal(a, b)


def test_augmentation_depends_on_seed_and_epoch_only():
    source = tiny_source()
    dataset = PanopticDataset(source, CATS, transforms=AUGMENT, seed=3)
    first = [dataset[i][1]["panoptic"].id_map for i in range(len(source))]
    again = [dataset[i][1]["panoptic"].id_map for i in reversed(range(len(source)))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # access order is irrelevant
    dataset.set_epoch(1)
    later = [dataset[i][1]["panoptic"].id_map for i in range(len(source))]
    assert not all(np.array_equal(a, b) for a, b in zip(first, later))
    other_seed = PanopticDataset(source, CATS, transforms=AUGMENT, seed=4)
    assert not all(np.array_equal(a, other_seed[i][1]["panoptic"].id_map) for i, a in enumerate(first))
    dataset.set_epoch(0)
    assert all(np.array_equal(a, dataset[i][1]["panoptic"].id_map) for i, a in enumerate(first))


def test_targets_agree_with_the_target_functions():
    source = tiny_source(3)
    dataset = PanopticDataset(source, CATS, sigma=2, things_as_one=True, include_crowd=True, ignore_index=254)
    for index, sample in enumerate(source):
        image, target = dataset[index]
        assert image.dtype == torch.float32 and image.shape == (3, 24, 32)
        np.testing.assert_allclose(image.permute(1, 2, 0).numpy() * 255, sample.image, atol=1e-4)
        assert target["image_id"] == sample.image_id and target["panoptic"].equals(sample.panoptic)
        pan = sample.panoptic
        assert torch.equal(target["semantic"], semantic_target(pan, CATS, ignore_index=254, things_as_one=True))
        expected_instances = instance_target(pan, CATS, include_crowd=True)
        assert all(torch.equal(target["instances"][k], v) for k, v in expected_instances.items())
        expected_deeplab = deeplab_targets(pan, CATS, sigma=2, ignore_index=254)
        assert target["deeplab"]["center_points"] == expected_deeplab["center_points"]
        for key in ("semantic", "semantic_weights", "center", "offset", "center_weights", "offset_weights"):
            assert torch.equal(target["deeplab"][key], expected_deeplab[key]), key


def test_augmented_targets_are_built_from_the_augmented_annotation():
    dataset = PanopticDataset(tiny_source(2), CATS, transforms=AUGMENT, targets=("deeplab",), seed=1)
    image, target = dataset[1]
    assert set(target) == {"panoptic", "image_id", "file_name", "deeplab"}
    assert image.shape[1:] == target["panoptic"].shape == (20, 28)
    expected = deeplab_targets(target["panoptic"], CATS)
    assert torch.equal(target["deeplab"]["offset"], expected["offset"])
    target["panoptic"].validate(CATS)


def test_collate_stacks_dense_targets_and_lists_the_rest():
    dataset = PanopticDataset(tiny_source(3), CATS)
    images, targets = collate_panoptic([dataset[i] for i in range(3)])
    assert images.shape == (3, 3, 24, 32)
    assert targets["semantic"].shape == (3, 24, 32)
    deeplab = targets["deeplab"]
    assert deeplab["center"].shape == (3, 1, 24, 32) and deeplab["offset"].shape == (3, 2, 24, 32)
    assert deeplab["center_weights"].shape == deeplab["semantic_weights"].shape == (3, 24, 32)
    assert isinstance(deeplab["center_points"], list) and len(deeplab["center_points"]) == 3
    assert isinstance(targets["instances"], list) and len(targets["instances"]) == 3
    assert targets["instances"][2]["masks"].shape[1:] == (24, 32)
    assert targets["image_id"] == [0, 1, 2] and len(targets["panoptic"]) == 3
    assert torch.equal(targets["semantic"][1], dataset[1][1]["semantic"])


def test_collate_rejects_mixed_sizes_naming_them():
    small = PanopticDataset(tiny_source(1, shape=(16, 20)), CATS, targets=())
    large = PanopticDataset(tiny_source(1, shape=(24, 32)), CATS, targets=())
    with pytest.raises(ValueError, match="16x20.*24x32"):
        collate_panoptic([small[0], large[0]])
    with pytest.raises(ValueError, match="empty"):
        collate_panoptic([])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown targets \\['depth'\\]"):
        PanopticDataset(tiny_source(1), CATS, targets=("semantic", "depth"))
    with pytest.raises(ValueError, match="\\['sigma'\\]"):
        PanopticDataset(tiny_source(1), CATS, targets=("semantic",), sigma=3)
    with pytest.raises(ValueError, match="seed"):
        PanopticDataset(tiny_source(1), CATS, seed=-1)
    dataset = PanopticDataset(tiny_source(2), CATS)
    with pytest.raises(IndexError):
        dataset[2]
    assert dataset[-1][1]["image_id"] == 1


def test_reads_a_coco_panoptic_split_from_disk(tmp_path):
    source = tiny_source(4)
    paths = write_coco_panoptic(tmp_path, "train", source, CATS)
    from_disk = PanopticDataset(CocoPanoptic(**paths), CATS, transforms=AUGMENT, seed=5)
    in_memory = PanopticDataset(source, CATS, transforms=AUGMENT, seed=5)
    loaders = [DataLoader(d, batch_size=2, collate_fn=collate_panoptic) for d in (from_disk, in_memory)]
    for a, b in zip(*loaders):
        assert_batches_equal(a, b)


def test_synthetic_dataset_through_two_workers():
    source = SyntheticPanoptic(4, size=64, seed=2)
    dataset = PanopticDataset(source, CATS, transforms=Compose([RandomScale(0.5, 1.5), RandomCrop(48),
                                                                RandomHorizontalFlip()]), seed=7)
    dataset.set_epoch(2)
    runs = [list(DataLoader(dataset, batch_size=2, num_workers=workers, collate_fn=collate_panoptic))
            for workers in (0, 2)]
    for a, b in zip(*runs):
        assert_batches_equal(a, b)
    images, targets = runs[0][0]
    assert images.shape == (2, 3, 48, 48) and 0 <= images.min() and images.max() <= 1
    for pan, inst, points in zip(targets["panoptic"], targets["instances"], targets["deeplab"]["center_points"]):
        pan.validate(CATS)
        instances = [s for s in pan.segments if CATS.isthing(s.category_id) and not s.iscrowd]
        assert len(points) == len(inst["labels"]) == len(instances)
