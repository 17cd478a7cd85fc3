"""The built-in synthetic dataset: determinism, valid annotations, the promised content,
the second annotator, and the COCO writer.

Checks use independent references: scipy.ndimage for adjacency, connectivity and holes,
``segment_statistics`` for areas and boxes, PIL and json for the files on disk.
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from panopticlab.data import SYNTHETIC_CATEGORIES, VOID, rgb_to_id
from panopticlab.data.synthetic import (
    MIN_VISIBLE_AREA,
    AnnotatorNoise,
    SyntheticPanoptic,
    image_shape,
    render_scene,
    second_annotation,
    write_synthetic_coco,
)

CATS = SYNTHETIC_CATEGORIES
NUM_SCENES = 50
SIDE = 96
SEED = 3
NO_NOISE = dict(jitter=0.0, p_miss=0.0, p_merge=0.0, p_split=0.0, p_crowd_split=0.0, p_void_band=0.0)
SKY, ROAD, GRASS, WALL, WATER = 11, 12, 13, 14, 15


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(i, size=SIDE, seed=SEED) for i in range(NUM_SCENES)]


@pytest.fixture(scope="module")
def second_annotations():
    return [second_annotation(i, size=SIDE, seed=SEED) for i in range(NUM_SCENES)]


# ---------------------------------------------------------------------------------------
# helpers, written independently of the generator
# ---------------------------------------------------------------------------------------
def digest(image, pan) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(image).tobytes())
    h.update(np.ascontiguousarray(pan.id_map, dtype=np.int64).tobytes())
    h.update(repr(sorted((s.id, s.category_id, s.iscrowd, s.area, s.bbox) for s in pan.segments)).encode())
    return h.hexdigest()


def instances(pan):
    """Non-crowd thing segments."""
    return [s for s in pan.segments if CATS.isthing(s.category_id) and not s.iscrowd]


def touching_same_class(pan) -> list[tuple[int, int]]:
    """Pairs of non-crowd same-class instances whose masks are 4-neighbours somewhere."""
    segs = instances(pan)
    pairs = []
    for i, a in enumerate(segs):
        grown = ndimage.binary_dilation(pan.id_map == a.id)  # default structure: 4-neighbourhood
        for b in segs[i + 1:]:
            if a.category_id == b.category_id and (grown & (pan.id_map == b.id)).any():
                pairs.append((a.id, b.id))
    return pairs


def best_iou(pan_a, pan_b) -> list[float]:
    """For each segment of ``pan_a``: the best IoU with a same-category segment of ``pan_b``."""
    out = []
    for a in pan_a.segments:
        mask_a = pan_a.id_map == a.id
        best = 0.0
        for b in pan_b.segments:
            if b.category_id == a.category_id:
                mask_b = pan_b.id_map == b.id
                best = max(best, (mask_a & mask_b).sum() / (mask_a | mask_b).sum())
        out.append(best)
    return out


def colour_only_accuracy(samples, first, second, quantum=8) -> float:
    """Accuracy of the best colour lookup table telling two categories apart, on these pixels."""
    levels = 256 // quantum
    counts = np.zeros((2, levels**3))
    for sample in samples:
        semantic = sample.panoptic.category_map()
        q = (sample.image // quantum).astype(np.int64)
        code = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
        for row, category in enumerate((first, second)):
            counts[row] += np.bincount(code[semantic == category], minlength=levels**3)
    return counts.max(axis=0).sum() / counts.sum()


# ---------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [64, (40, 72)])
def test_same_arguments_give_identical_bytes(size):
    a, b = render_scene(7, size=size, seed=1, split="val"), render_scene(7, size=size, seed=1, split="val")
    assert digest(a.image, a.panoptic) == digest(b.image, b.panoptic)
    second_a = second_annotation(7, size=size, seed=1, split="val")
    second_b = second_annotation(7, size=size, seed=1, split="val")
    assert digest(a.image, second_a) == digest(a.image, second_b)


def test_seed_split_and_index_each_change_the_scene():
    base = render_scene(5, size=64, seed=0, split="train")
    for other in (render_scene(5, size=64, seed=1, split="train"), render_scene(5, size=64, seed=0, split="val"),
                  render_scene(5, size=64, seed=0, split="test"), render_scene(6, size=64, seed=0, split="train")):
        assert not np.array_equal(base.image, other.image)
        assert not base.panoptic.equals(other.panoptic, ignore_ids=True)
    # the three splits never coincide
    for index in range(5):
        digests = {digest(s.image, s.panoptic) for s in (render_scene(index, 48, split=split)
                                                          for split in ("train", "val", "test"))}
        assert len(digests) == 3


def test_no_global_random_state_is_used():
    expected = render_scene(3, size=48, seed=2)
    np.random.seed(12345)
    import random

    random.seed(999)
    again = render_scene(3, size=48, seed=2)
    assert digest(expected.image, expected.panoptic) == digest(again.image, again.panoptic)


def test_bytes_are_the_same_in_a_fresh_process():
    code = ("import hashlib, numpy as np; from panopticlab.data.synthetic import render_scene, second_annotation; "
            "s = render_scene(11, size=(40, 56), seed=4, split='test'); "
            "p = second_annotation(11, size=(40, 56), seed=4, split='test'); "
            "print(hashlib.sha256(s.image.tobytes() + s.panoptic.id_map.astype(np.int64).tobytes() "
            "+ p.id_map.astype(np.int64).tobytes()).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED="4321")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    s = render_scene(11, size=(40, 56), seed=4, split="test")
    p = second_annotation(11, size=(40, 56), seed=4, split="test")
    here = hashlib.sha256(s.image.tobytes() + s.panoptic.id_map.astype(np.int64).tobytes()
                          + p.id_map.astype(np.int64).tobytes()).hexdigest()
    assert out.stdout.strip() == here


def test_one_index_gives_the_same_layout_at_every_size():
    agreement = []
    for index in range(10):
        large = render_scene(index, size=256).panoptic.category_map()[2::4, 2::4]  # pixel centres of the 64 grid
        small = render_scene(index, size=64).panoptic.category_map()
        labelled = (large != 255) & (small != 255)
        agreement.append((large == small)[labelled].mean())
    assert np.mean(agreement) > 0.85


# ---------------------------------------------------------------------------------------
# valid annotations
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 37, 64, (48, 100), (130, 50)])
def test_annotations_validate_at_many_sizes(size):
    height, width = image_shape(size)
    for index in range(8):
        sample = render_scene(index, size=size, seed=SEED, split="val")
        assert sample.image.shape == (height, width, 3) and sample.image.dtype == np.uint8
        assert sample.image_id == index and sample.file_name == f"{index:012d}.png"
        for pan in (sample.panoptic, second_annotation(index, size=size, seed=SEED, split="val")):
            assert pan.shape == (height, width)
            pan.validate(CATS, source=f"scene {index}")
            # areas and boxes agree with the reference measurement
            assert pan.with_statistics().segments == pan.segments


def test_segment_rules(scenes, second_annotations):
    for pan in [s.panoptic for s in scenes] + second_annotations:
        stuff = [s.category_id for s in pan.segments if not CATS.isthing(s.category_id)]
        assert len(stuff) == len(set(stuff)), "one segment per stuff class"
        assert all(s.iscrowd == 0 for s in pan.segments if not CATS.isthing(s.category_id))
        assert all(s.area >= MIN_VISIBLE_AREA for s in pan.segments if CATS.isthing(s.category_id))
        crowd = [s.category_id for s in pan.segments if s.iscrowd]
        assert len(crowd) == len(set(crowd)), "at most one crowd region per category"


# ---------------------------------------------------------------------------------------
# the promised content, over many scenes
# ---------------------------------------------------------------------------------------
def test_every_category_appears_in_many_scenes(scenes):
    for category in CATS.ids:
        present = sum(any(s.category_id == category for s in scene.panoptic.segments) for scene in scenes)
        assert present >= NUM_SCENES // 10, f"{CATS.name(category)} appears in only {present} scenes"


def test_most_scenes_have_touching_or_overlapping_same_class_instances(scenes):
    with_pairs = sum(bool(touching_same_class(scene.panoptic)) for scene in scenes)
    assert with_pairs > NUM_SCENES * 0.6


def test_things_come_in_many_sizes(scenes):
    segs = [s for scene in scenes for s in instances(scene.panoptic)]
    areas = np.array([s.area for s in segs])
    extents = np.array([max(s.bbox[2:]) for s in segs])
    assert (areas < 32**2).mean() > 0.5
    assert extents.min() <= 8, "tiny things"
    assert areas.max() >= SIDE * SIDE / 8, "things up to about a quarter of the image"
    per_scene_small = sum(any(s.area < 32**2 for s in instances(scene.panoptic)) for scene in scenes)
    assert per_scene_small > NUM_SCENES * 0.9


def test_crowds_in_some_scenes_but_not_all(scenes):
    with_crowd = [any(s.iscrowd for s in scene.panoptic.segments) for scene in scenes]
    assert 0 < sum(with_crowd) < NUM_SCENES
    crowds = [s for scene in scenes for s in scene.panoptic.segments if s.iscrowd]
    assert all(CATS.isthing(s.category_id) for s in crowds)
    # a cluster of objects at most 9 px across: most crowds cover more than one member could
    assert np.median([s.area for s in crowds]) > 100


def test_void_bands_along_boundaries_and_void_regions(scenes):
    along_things = 0
    thick_void = 0
    for scene in scenes:
        pan = scene.panoptic
        void = pan.id_map == VOID
        thing_ids = [s.id for s in pan.segments if CATS.isthing(s.category_id)]
        near_things = ndimage.binary_dilation(np.isin(pan.id_map, thing_ids))
        along_things += bool((void & near_things).any())
        # a void region, not a band: survives an opening by a 3x3 square
        thick_void += bool(ndimage.binary_opening(void, structure=np.ones((3, 3), bool)).any())
    assert along_things > NUM_SCENES * 0.8
    assert 0 < thick_void < NUM_SCENES


def test_sky_lies_above_the_ground(scenes):
    checked = 0
    for scene in scenes:
        semantic = scene.panoptic.category_map()
        rows = np.arange(SIDE)[:, None].repeat(SIDE, axis=1)
        if not (semantic == SKY).any():
            continue
        sky_row = rows[semantic == SKY].mean()
        for ground in (ROAD, GRASS, WATER):
            if (semantic == ground).any():
                assert sky_row < rows[semantic == ground].mean()
                checked += 1
    assert checked > NUM_SCENES


def test_colour_alone_cannot_separate_the_paired_stuff_classes(scenes):
    # sky/water and road/wall share palettes; sky/grass is the control that colour can separate
    assert colour_only_accuracy(scenes, SKY, WATER) < 0.95
    assert colour_only_accuracy(scenes, ROAD, WALL) < 0.95
    assert colour_only_accuracy(scenes, SKY, GRASS) > 0.99


def test_rings_show_what_is_behind_their_hole(scenes):
    def centre_labels(category):
        """Label at the bbox centre of every large instance of the category, and the instance's id."""
        out = []
        for scene in scenes:
            pan = scene.panoptic
            for s in instances(pan):
                if s.category_id == category and s.area >= 150:
                    x, y, w, h = s.bbox
                    out.append((pan.id_map[y + h // 2, x + w // 2], s.id))
        assert len(out) >= 5
        return out

    rings = centre_labels(4)
    in_hole = [label for label, own in rings if label != own]
    assert len(in_hole) > 0.7 * len(rings)
    assert np.mean([label != VOID for label in in_hole]) > 0.8, "the hole is annotated as what shows through"
    discs = centre_labels(1)
    assert np.mean([label == own for label, own in discs]) > 0.8


# ---------------------------------------------------------------------------------------
# the second annotator
# ---------------------------------------------------------------------------------------
def test_second_annotation_differs_but_mostly_agrees(scenes, second_annotations):
    ious = []
    for scene, other in zip(scenes, second_annotations):
        assert not scene.panoptic.equals(other, ignore_ids=True)
        ious += best_iou(scene.panoptic, other)
    matched = np.mean(np.array(ious) > 0.5)
    assert 0.6 < matched < 1.0


def test_second_annotation_without_noise_traces_the_same_scene(scenes):
    for index, scene in enumerate(scenes[:15]):
        first = scene.panoptic
        other = second_annotation(index, size=SIDE, seed=SEED, **NO_NOISE)
        # no void band: its void is a subset of the first annotation's (clutter and specks)
        assert not (other.id_map == VOID)[first.id_map != VOID].any()
        labelled = first.id_map != VOID
        pairs = np.unique(np.stack([first.id_map[labelled], other.id_map[labelled]]), axis=1)
        # a one-to-one correspondence of segments, with equal categories
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
        category_a = {s.id: s.category_id for s in first.segments}
        category_b = {s.id: s.category_id for s in other.segments}
        assert all(category_a[a] == category_b[b] for a, b in pairs.T.tolist())


def test_jitter_moves_boundaries_by_a_few_pixels():
    changed_fraction = {}
    for jitter in (1.0, 3.0):
        fractions = []
        for index in range(15):
            first = render_scene(index, size=SIDE, seed=SEED).panoptic.id_map
            other = second_annotation(index, size=SIDE, seed=SEED, **{**NO_NOISE, "jitter": jitter}).id_map
            edges = np.zeros(first.shape, bool)
            edges[:, 1:] |= first[:, 1:] != first[:, :-1]
            edges[1:] |= first[1:] != first[:-1]
            distance = ndimage.distance_transform_edt(~edges)
            changed = (first != other) & (first != VOID)  # void bands of the first annotation aside
            if changed.any():
                assert distance[changed].max() <= 4 * jitter + 1
            fractions.append(changed.mean())
        changed_fraction[jitter] = np.mean(fractions)
    assert 0 < changed_fraction[1.0] < changed_fraction[3.0]


def test_missing_every_tiny_instance():
    for index in range(10):
        pan = second_annotation(index, size=SIDE, seed=SEED, **{**NO_NOISE, "p_miss": 1.0, "miss_area": 10**9})
        assert instances(pan) == []


def test_merging_every_touching_pair(scenes):
    before = after = 0
    for index, scene in enumerate(scenes[:20]):
        pan = second_annotation(index, size=SIDE, seed=SEED, **{**NO_NOISE, "p_merge": 1.0, "merge_area": 10**9})
        before += len(touching_same_class(scene.panoptic))
        after += len(touching_same_class(pan))
    assert before > 0 and after == 0


def test_splitting_every_cut_instance(scenes):
    def pieces(pan):
        return [ndimage.label(pan.id_map == s.id)[1] for s in instances(pan)]

    cut_before = sum(n > 1 for scene in scenes[:25] for n in pieces(scene.panoptic))
    assert cut_before > 0
    for index in range(25):
        pan = second_annotation(index, size=SIDE, seed=SEED, **{**NO_NOISE, "p_split": 1.0})
        assert all(n == 1 for n in pieces(pan))


def test_splitting_every_crowd(scenes):
    crowded = [i for i, scene in enumerate(scenes) if any(s.iscrowd for s in scene.panoptic.segments)]
    assert crowded
    for index in crowded[:5]:
        pan = second_annotation(index, size=SIDE, seed=SEED, **{**NO_NOISE, "p_crowd_split": 1.0})
        assert not any(s.iscrowd for s in pan.segments)
        assert len(instances(pan)) > len(instances(scenes[index].panoptic))


def test_wider_void_bands_leave_more_void():
    void = {}
    for width in (1, 3):
        void[width] = sum((second_annotation(i, size=SIDE, seed=SEED, **{**NO_NOISE, "p_void_band": 1.0,
                                                                           "void_band": width}).id_map == VOID).sum()
                          for i in range(10))
    assert void[1] < void[3]


# ---------------------------------------------------------------------------------------
# the dataset class and bad input
# ---------------------------------------------------------------------------------------
def test_dataset_serves_the_scenes():
    dataset = SyntheticPanoptic(4, size=(32, 48), seed=2, split="val")
    assert len(dataset) == 4 and dataset.categories is CATS
    for index, sample in enumerate(dataset):
        expected = render_scene(index, size=(32, 48), seed=2, split="val")
        assert digest(sample.image, sample.panoptic) == digest(expected.image, expected.panoptic)
    assert dataset.second_annotation(1).equals(second_annotation(1, size=(32, 48), seed=2, split="val"))
    for bad in (-1, 4, 10):
        with pytest.raises(IndexError, match="out of range"):
            dataset[bad]
    with pytest.raises(IndexError):
        dataset.second_annotation(4)


def test_cached_dataset_draws_each_scene_once_and_the_same():
    cached, plain = SyntheticPanoptic(3, size=40, seed=1, cache=True), SyntheticPanoptic(3, size=40, seed=1)
    first = cached[2]
    assert cached[2] is first  # kept, not drawn again
    assert digest(first.image, first.panoptic) == digest(plain[2].image, plain[2].panoptic)
    with pytest.raises(IndexError, match="out of range"):
        cached[3]


@pytest.mark.parametrize("call, message", [
    (lambda: render_scene(0, size=8), "too small"),
    (lambda: render_scene(0, size=(64, 10)), "too small"),
    (lambda: render_scene(0, size=(64, 100_000)), "too large: both sides must be at most 4096"),
    (lambda: render_scene(0, size="big"), "size"),
    (lambda: render_scene(0, size=(1, 2, 3)), "size"),
    (lambda: render_scene(-1), "non-negative"),
    (lambda: render_scene(0, seed=-2), "seed"),
    (lambda: render_scene(0, split="validation"), "split"),
    (lambda: second_annotation(0, jiter=2.0), "jiter"),
    (lambda: second_annotation(0, p_miss=1.5), "p_miss"),
    (lambda: AnnotatorNoise(void_band=-1), "void_band"),
    (lambda: SyntheticPanoptic(-3), "num_images"),
    (lambda: SyntheticPanoptic(3, split="dev"), "split"),
])
def test_bad_input_is_refused_with_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------------------------
# writing to disk in COCO panoptic format
# ---------------------------------------------------------------------------------------
def test_coco_round_trip(tmp_path):
    from panopticlab.data.coco import CocoPanoptic

    paths = write_synthetic_coco(tmp_path, split="val", num=3, size=(40, 56), seed=2, progress=False)
    annotations = tmp_path / "annotations"
    record = json.loads((annotations / "panoptic_val.json").read_text())
    assert json.loads((annotations / "panoptic_categories.json").read_text()) == CATS.to_coco()
    assert [image["id"] for image in record["images"]] == [0, 1, 2]
    for image_record, annotation in zip(record["images"], record["annotations"]):
        expected = render_scene(image_record["id"], size=(40, 56), seed=2, split="val")
        image = np.asarray(Image.open(tmp_path / "val" / image_record["file_name"]).convert("RGB"))
        assert np.array_equal(image, expected.image)
        ids = rgb_to_id(np.asarray(Image.open(annotations / "panoptic_val" / annotation["file_name"])))
        assert np.array_equal(ids, expected.panoptic.id_map)
        written = sorted((s["id"], s["category_id"], s["iscrowd"], s["area"], tuple(s["bbox"]))
                         for s in annotation["segments_info"])
        assert written == sorted((s.id, s.category_id, s.iscrowd, s.area, s.bbox) for s in expected.panoptic.segments)
    read_back = CocoPanoptic(**paths)
    assert read_back[1].panoptic.equals(render_scene(1, size=(40, 56), seed=2, split="val").panoptic)


def test_coco_writer_refuses_bad_arguments_before_writing(tmp_path):
    with pytest.raises(ValueError, match="split"):
        write_synthetic_coco(tmp_path / "out", split="dev", num=2, size=32, progress=False)
    assert not (tmp_path / "out").exists()
