"""panopticlab data convert: your own labels into COCO panoptic.

Each source format is tested by a round trip (the built-in scenes written in that format,
converted back, compared segment for segment), by panopticapi reading the output as its
evaluation does, and by ``data check``; each conflict by the rule that resolves it and the
line that names it; each kind of bad input by its one-line error and an untouched output.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from convert_sources import (
    VOID,
    save_png,
    scenes,
    semantic_and_instances,
    write_categories,
    write_coco_source,
    write_divisor_source,
    write_semantic_source,
)
from PIL import Image

from panopticlab.commands import main
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import Category, CategorySet, PanopticFormatError
from panopticlab.data import convert as cv
from panopticlab.data import convert_write
from panopticlab.data.coco import CocoPanoptic, write_coco_panoptic
from panopticlab.data.convert_coco import instance_mask, panoptic_from_coco_instances
from panopticlab.data.convert_merge import panoptic_from_divisor_map, panoptic_from_semantic_and_instance_maps

DISC, BOX, SKY, ROAD = 1, 2, 11, 12


@pytest.fixture(scope="module")
def samples():
    found = scenes(4)
    assert sum(s.iscrowd for sample in found for s in sample.panoptic.segments) >= 1  # crowd is exercised
    return found


def read_back(json_path, **folders):
    """The converted split as ``{image_id: panoptic}``, read with the package's checked reader."""
    dataset = CocoPanoptic(json_path, **folders)
    return {record["id"]: dataset.panoptic(i) for i, record in enumerate(dataset.images)}


def assert_same_segments(converted, original):
    """Same pixels, same segments (category, crowd, area, bbox), whatever the ids."""
    assert converted.equals(original.with_statistics(), ignore_ids=True)


def panopticapi_read(json_path, png_folder):
    """Read the output as panopticapi's evaluation.py does and check what it checks; ``{image_id: {id: segment}}``."""
    from panopticapi.utils import rgb2id

    data = json.loads(Path(json_path).read_text())
    categories = {c["id"]: c for c in data["categories"]}
    read = {}
    for annotation in data["annotations"]:
        ids = rgb2id(np.array(Image.open(Path(png_folder) / annotation["file_name"]), dtype=np.uint32))
        segments = {s["id"]: s for s in annotation["segments_info"]}
        labels, counts = np.unique(ids, return_counts=True)
        assert set(labels.tolist()) - {0} == set(segments)
        for label, count in zip(labels.tolist(), counts.tolist()):
            if label:
                segment = segments[label]
                assert segment["area"] == count and segment["category_id"] in categories
                ys, xs = np.nonzero(ids == label)
                assert segment["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert segment["iscrowd"] in (0, 1)
        read[annotation["image_id"]] = segments
    return read


def run(capsys, *argv):
    code = main(["data", "convert", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(capsys, argv, *words, out=None):
    """One line on stderr naming the fault (``words``), exit 1, and no output written."""
    code, _, err = run(capsys, *argv)
    assert code == 1, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert str(word) in err, err
    if out is not None:
        assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    return err


# ---------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("palette", [False, True], ids=["grey", "palette"])
def test_semantic_and_instance_pngs_round_trip(tmp_path, samples, palette, capsys):
    """Semantic PNGs (8-bit grey or palette indices) plus 16-bit instance PNGs give back the scenes."""
    source = write_semantic_source(tmp_path / "mine", samples, palette=palette)
    out = tmp_path / "out" / "panoptic.json"
    result = cv.convert_semantic_instances(source / "semantic", source / "instances", CATS, out,
                                           image_folder=source / "images")
    assert (result.images, result.json_path, result.png_folder) == (len(samples), out, out.with_suffix(""))
    converted = read_back(out, image_folder=source / "images")
    for sample in samples:
        assert_same_segments(converted[sample.image_id], sample.panoptic)
    # a crowd region is thing pixels without an instance id: named, as every disagreement is
    crowds = [s for sample in samples for s in sample.panoptic.segments if s.iscrowd]
    assert [c.kind for c in result.conflicts] == ["thing without instance"] * len(crowds)
    assert sorted(c.pixels for c in result.conflicts) == sorted(s.area for s in crowds)
    assert panopticapi_read(out, out.with_suffix("")).keys() == {s.image_id for s in samples}
    assert main(["data", "check", str(out), "--image-folder", str(source / "images"), "--quiet"]) == 0
    assert f"ok: {len(samples)} images" in capsys.readouterr().out


def test_label_divisor_maps_round_trip_in_cityscapes_layout(tmp_path, samples, capsys):
    """16-bit ``category * 1000 + k`` maps in per-city folders, with Cityscapes' file suffixes."""
    source = write_divisor_source(tmp_path / "cs", samples)
    out = tmp_path / "out" / "panoptic.json"
    result = cv.convert_label_divisor(source / "gtFine", CATS, out, image_folder=source / "leftImg8bit",
                                      label_suffix="_gtFine_instanceIds", image_suffix="_leftImg8bit")
    assert result.conflicts == [] and result.crowd == sum(s.iscrowd for x in samples for s in x.panoptic.segments)
    converted = read_back(out, image_folder=source / "leftImg8bit")
    for sample in samples:
        city = "aachen" if sample.image_id % 2 else "bremen"
        assert_same_segments(converted[f"{city}_000000_{sample.image_id:06d}"], sample.panoptic)
    assert len(panopticapi_read(out, out.with_suffix(""))) == len(samples)
    images = {record["id"]: record["file_name"] for record in json.loads(out.read_text())["images"]}
    assert images["aachen_000000_000001"] == "val/aachen/aachen_000000_000001_leftImg8bit.png"
    assert main(["data", "check", str(out), "--image-folder", str(source / "leftImg8bit"), "--quiet"]) == 0


@pytest.mark.parametrize("rle, placeholders", [("compressed", True), ("uncompressed", False)])
def test_coco_instances_and_stuff_maps_round_trip(tmp_path, samples, rle, placeholders, capsys):
    """COCO RLE annotations plus COCO-Stuff style maps; panopticapi's pq_compute scores the result
    against the scenes written by the package's own writer: PQ 1 for every class."""
    from panopticapi.evaluation import pq_compute

    pytest.importorskip("pycocotools")
    source = write_coco_source(tmp_path / "coco", samples, rle=rle, thing_placeholders=placeholders)
    out = tmp_path / "out" / "panoptic.json"
    result = cv.convert_coco_instances(source / "instances.json", out, categories=CATS,
                                       stuff_folder=source / "stuff")
    assert result.conflicts == []
    converted = read_back(out)
    for sample in samples:
        assert_same_segments(converted[sample.image_id], sample.panoptic)
    assert [r["file_name"] for r in json.loads(out.read_text())["images"]] == \
        [f"{s.image_id:012d}.jpg" for s in samples]
    panopticapi_read(out, out.with_suffix(""))
    gt = write_coco_panoptic(tmp_path / "gt", "val", samples, CATS)
    scores = pq_compute(str(gt["json_path"]), str(out), str(gt["png_folder"]), str(out.with_suffix("")))
    capsys.readouterr()
    assert scores["All"]["pq"] == pytest.approx(1.0)
    assert main(["data", "check", str(out), "--no-images", "--quiet"]) == 0


def test_divisor_on_a_cityscapes_tree_matches_create_panoptic_imgs(tmp_path):
    """``--categories cityscapes --unknown void`` on ``*_gtFine_instanceIds.png``: the same segments as
    cityscapesScripts' createPanopticImgs.py (the classes it does not evaluate become void, and named)."""
    from cityscapes_tree import write_cityscapes_tree

    from panopticlab.data.cityscapes import CityscapesPanoptic

    root = write_cityscapes_tree(tmp_path / "cityscapes", {"val": {"frankfurt": ["000000_000294"],
                                                                   "lindau": ["000000_000019"]}})
    out = tmp_path / "out" / "panoptic.json"
    result = cv.convert_label_divisor(root / "gtFine" / "val", cv.read_categories("cityscapes"), out,
                                      image_folder=root / "leftImg8bit" / "val", label_suffix="_gtFine_instanceIds",
                                      image_suffix="_leftImg8bit", rules=cv.ConvertRules(unknown="void"))
    assert result.images == 2 and {c.kind for c in result.conflicts} == {"unknown class"}
    reference = CityscapesPanoptic(root, "val")
    converted = read_back(out)
    for index, image_id in enumerate(reference.image_ids):
        assert converted[image_id].equals(reference.panoptic(index), ignore_ids=True)


# ---------------------------------------------------------------------------------------
# conflicts: named, resolved by the rule chosen
# ---------------------------------------------------------------------------------------
def spill_scene():
    """8 x 10: sky above road; disc instance 7 at rows 2-5, cols 2-5, whose instance map also
    claims 4 road pixels (row 6, cols 2-5) and 2 void pixels (row 1, cols 2-3)."""
    semantic = np.full((8, 10), SKY, np.uint8)
    semantic[4:] = ROAD
    semantic[2:6, 2:6] = DISC
    semantic[1, 2:4] = VOID
    instances = np.zeros((8, 10), np.uint8)
    instances[2:7, 2:6] = 7
    instances[1, 2:4] = 7
    return semantic, instances


def test_an_instance_on_stuff_goes_to_the_instance_or_stays_by_prefer():
    semantic, instances = spill_scene()
    pan, conflicts = panoptic_from_semantic_and_instance_maps(semantic, instances, CATS, semantic_source="s.png",
                                                              instance_source="i.png")
    disc = pan.mask(pan.id_map[3, 3])
    assert disc.sum() == 16 + 4 + 2 and disc[6, 2:6].all() and disc[1, 2:4].all()
    lines = sorted(str(c) for c in conflicts)
    assert lines == [
        "s.png + i.png: 2 pixels (box x=2, y=1, w=2, h=1): instance 7 ('disc') lies on void of the semantic map; "
        "they go to instance 7 (--prefer instances)",
        "s.png + i.png: 4 pixels (box x=2, y=6, w=4, h=1): instance 7 ('disc') lies on 'road' of the semantic "
        "map; they go to instance 7 (--prefer instances)"]
    pan, conflicts = panoptic_from_semantic_and_instance_maps(semantic, instances, CATS,
                                                              cv.ConvertRules(prefer="semantic"))
    assert pan.mask(pan.id_map[3, 3]).sum() == 16 and pan.id_map[1, 2] == 0
    assert pan.segment(int(pan.id_map[6, 2])).category_id == ROAD
    assert all(c.resolution.endswith("(--prefer semantic)") for c in conflicts) and len(conflicts) == 2


def test_an_instance_without_a_thing_pixel_leaves_the_semantic_map_as_it_is():
    semantic = np.full((4, 4), SKY, np.uint8)
    instances = np.zeros((4, 4), np.uint8)
    instances[1:3, 1:3] = 9
    pan, (conflict,) = panoptic_from_semantic_and_instance_maps(semantic, instances, CATS)
    assert [s.category_id for s in pan.segments] == [SKY] and pan.segments[0].id == pan.id_map[0, 0]
    assert (pan.id_map == pan.id_map[0, 0]).all()
    assert conflict.resolution == "they stay 'sky' (instance 9 has no pixel of a thing class)"


def test_a_coco_instance_on_stuff_takes_it_or_leaves_it_by_prefer():
    pytest.importorskip("pycocotools")
    stuff = np.full((10, 10), SKY, np.uint8)
    annotations = [("annotation 4", {"category_id": DISC, "segmentation": square(2, 2, 3)})]
    pan, (conflict,) = panoptic_from_coco_instances(annotations, 10, 10, CATS, stuff=stuff, source="i.json",
                                                    stuff_source="s.png")
    assert sorted((s.category_id, s.area) for s in pan.with_statistics().segments) == [(DISC, 9), (SKY, 91)]
    assert str(conflict) == ("i.json + s.png: 9 pixels (box x=2, y=2, w=3, h=3): annotation 4 ('disc') lies on "
                             "'sky' of the stuff map; they go to annotation 4 (--prefer instances)")
    pan, (conflict,) = panoptic_from_coco_instances(annotations, 10, 10, CATS, cv.ConvertRules(prefer="semantic"),
                                                    stuff=stuff)
    assert [s.category_id for s in pan.segments] == [SKY] and conflict.resolution.endswith("(--prefer semantic)")


def test_thing_pixels_without_an_instance_become_crowd_or_void():
    semantic = np.full((6, 6), ROAD, np.uint8)
    semantic[1:3, 1:3] = BOX
    semantic[4:6, 4:6] = BOX
    instances = np.zeros((6, 6), np.uint16)
    instances[1:3, 1:3] = 1000
    pan, (conflict,) = panoptic_from_semantic_and_instance_maps(semantic, instances, CATS)
    crowd = pan.segment(int(pan.id_map[5, 5]))
    assert (crowd.category_id, crowd.iscrowd, conflict.pixels, conflict.bbox) == (BOX, 1, 4, (4, 4, 2, 2))
    assert conflict.resolution == "they become a crowd region of 'box' (--unassigned crowd)"
    pan, (conflict,) = panoptic_from_semantic_and_instance_maps(semantic, instances, CATS,
                                                                cv.ConvertRules(unassigned="void"))
    assert pan.id_map[5, 5] == 0 and conflict.resolution == "they become void (--unassigned void)"


def test_instance_ids_numbered_per_class():
    semantic = np.full((4, 8), SKY, np.uint8)
    semantic[:, 1:3], semantic[:, 5:7] = DISC, BOX
    instances = np.zeros((4, 8), np.uint8)
    instances[:, 1:3] = instances[:, 5:7] = 1
    with pytest.raises(PanopticFormatError, match=r"inst.png: instance id 1 is reused across classes: it covers "
                                                  r"'disc' \(8 pixels\), 'box' \(8 pixels\)"):
        panoptic_from_semantic_and_instance_maps(semantic, instances, CATS, instance_source="inst.png")
    pan, conflicts = panoptic_from_semantic_and_instance_maps(semantic, instances, CATS,
                                                              cv.ConvertRules(instance_ids="class"))
    assert sorted(s.category_id for s in pan.segments) == [DISC, BOX, SKY] and conflicts == []


def test_divisor_stuff_with_an_instance_number_joins_its_stuff_segment():
    labels = np.full((4, 6), SKY, np.uint16)
    labels[2:, :] = ROAD * 1000 + 3
    labels[0, 0] = DISC * 1000 + 0  # k = 0 is an object, as in Cityscapes
    labels[3, 5] = DISC  # the bare thing class: a crowd region
    pan, (conflict,) = panoptic_from_divisor_map(labels, CATS, source="x_instanceIds.png")
    assert sorted((s.category_id, s.iscrowd) for s in pan.segments) == [(DISC, 0), (DISC, 1), (SKY, 0), (ROAD, 0)]
    assert str(conflict) == ("x_instanceIds.png: 11 pixels (box x=0, y=2, w=6, h=2): value 12003 gives the stuff "
                             "class 'road' instance 3; they join the one segment of 'road' (stuff has no instances)")


def test_unknown_classes_are_refused_or_made_void_and_named():
    semantic = np.full((4, 4), SKY, np.uint8)
    semantic[0, :2] = 40
    with pytest.raises(PanopticFormatError, match=r"s.png: unknown class id \[40\] in the semantic map \(2 pixels, "
                                                  r"the first at x=0, y=0\)"):
        panoptic_from_semantic_and_instance_maps(semantic, None, CATS, semantic_source="s.png")
    pan, (conflict,) = panoptic_from_semantic_and_instance_maps(semantic, None, CATS, cv.ConvertRules(unknown="void"))
    assert (pan.id_map[0, :2] == 0).all() and conflict.kind == "unknown class" and conflict.pixels == 2


def test_strict_refuses_any_conflict_and_writes_nothing(tmp_path, capsys):
    semantic, instances = spill_scene()
    save_png(tmp_path / "sem" / "a.png", semantic)
    save_png(tmp_path / "inst" / "a.png", instances)
    out = tmp_path / "out"
    err = assert_refused(capsys, ["semantic", tmp_path / "sem", tmp_path / "inst", "--categories", "synthetic",
                                  "--output", out / "p.json", "--strict", "--quiet"],
                         "instance 7 ('disc') lies on", "--strict refuses every conflict", out=out)
    assert "a.png" in err


def test_cli_names_conflicts_and_reports_them_all(tmp_path, capsys):
    semantic, instances = spill_scene()
    for k in range(6):
        save_png(tmp_path / "sem" / f"{k}.png", semantic)
        save_png(tmp_path / "inst" / f"{k}.png", instances)
    out, report = tmp_path / "out" / "p.json", tmp_path / "conflicts.json"
    code, stdout, err = run(capsys, "semantic", tmp_path / "sem", tmp_path / "inst", "--categories", "synthetic",
                            "--output", out, "--report", report, "--quiet")
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 11 and all(line.startswith("conflict: ") for line in lines)
    assert lines[-1] == f"conflict: ... and 2 more (all in {report})"
    assert "12 conflicts, each resolved by its rule: instance on void x6 (12 pixels); instance on stuff x6 " \
           "(24 pixels)" in stdout
    assert f"wrote 6 images (18 segments, 0 crowd) to {out}" in stdout
    written = json.loads(report.read_text())
    assert len(written) == 12 and written[0]["source"].endswith("0.png") and written[0]["bbox"] == [2, 1, 2, 1]


def coco_file(tmp_path, annotations, size=(10, 10)):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [{"id": 5, "file_name": "five.jpg", "height": size[0], "width": size[1]}],
                                "annotations": [{"id": k + 1, "image_id": 5, **a} for k, a in enumerate(annotations)],
                                "categories": [{"id": c.id, "name": c.name} for c in CATS if c.isthing]}))
    return path


def square(x, y, side):
    return [[x, y, x + side, y, x + side, y + side, x, y + side]]


@pytest.mark.parametrize("rule, keeper", [("smaller", 2), ("first", 1), ("last", 2), ("void", None)])
def test_overlapping_coco_masks_follow_the_overlap_rule(rule, keeper):
    pytest.importorskip("pycocotools")
    big, small = instance_mask(square(0, 0, 8), 10, 10, "a"), instance_mask(square(4, 4, 4), 10, 10, "b")
    annotations = [("annotation 1", {"category_id": DISC, "segmentation": square(0, 0, 8)}),
                   ("annotation 2", {"category_id": BOX, "segmentation": square(4, 4, 4)})]
    pan, (conflict,) = panoptic_from_coco_instances(annotations, 10, 10, CATS, cv.ConvertRules(overlap=rule),
                                                    source="inst.json")
    shared = big & small
    assert conflict.pixels == shared.sum() and conflict.what == "annotation 1 and annotation 2 overlap"
    owners = set(np.unique(pan.id_map[shared]).tolist())
    if keeper is None:
        assert owners == {0} and conflict.resolution == "they become void (--overlap void)"
    else:
        assert {pan.segment(i).category_id for i in owners} == {DISC if keeper == 1 else BOX}
        assert conflict.resolution.startswith(f"annotation {keeper}") and f"(--overlap {rule})" in conflict.resolution
    assert (pan.id_map[big & ~small] > 0).all() and (pan.id_map[small & ~big] > 0).all()


def test_crowd_annotations_of_one_class_become_one_crowd_segment(tmp_path):
    pytest.importorskip("pycocotools")
    annotations = [("annotation 1", {"category_id": DISC, "iscrowd": 1, "segmentation": square(0, 0, 3)}),
                   ("annotation 2", {"category_id": DISC, "iscrowd": 1, "segmentation": square(5, 5, 3)})]
    pan, (conflict,) = panoptic_from_coco_instances(annotations, 10, 10, CATS)
    assert [(s.category_id, s.iscrowd) for s in pan.segments] == [(DISC, 1)]
    assert conflict.kind == "crowd merged" and "annotation 1, annotation 2 are all crowd regions of 'disc'" in \
        conflict.what


def test_polygons_are_rasterised_by_pycocotools(tmp_path, capsys):
    mask_utils = pytest.importorskip("pycocotools.mask")
    polygon = [[1.5, 1.0, 7.0, 2.0, 4.0, 8.5]]
    source = coco_file(tmp_path, [{"category_id": DISC, "iscrowd": 0, "segmentation": polygon}])
    out = tmp_path / "out" / "p.json"
    code, stdout, _ = run(capsys, "coco", source, "--output", out, "--quiet")
    assert code == 0 and "wrote 1 images (1 segments, 0 crowd)" in stdout
    expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, 10, 10))).astype(bool)
    (pan,) = read_back(out, image_folder=tmp_path).values()
    assert np.array_equal(pan.id_map > 0, expected)


# ---------------------------------------------------------------------------------------
# bad input: one line naming the file and the fault, nothing written
# ---------------------------------------------------------------------------------------
@pytest.fixture
def mine(tmp_path, samples):
    """A good "label them separately" source (two scenes) whose files each test spoils one of."""
    root = write_semantic_source(tmp_path / "mine", samples[:2])
    write_categories(root / "categories.json")
    return root


def semantic_command(root, *extra, out="out"):
    return ["semantic", root / "semantic", root / "instances", "--categories", root / "categories.json",
            "--output", root.parent / out / "panoptic.json", "--images", root / "images", "--quiet", *extra]


def key(index):
    return f"{index:012d}"


def test_the_good_source_converts(mine, capsys):
    code, stdout, _ = run(capsys, *semantic_command(mine))
    assert code == 0 and "wrote 2 images" in stdout


def test_labels_of_the_wrong_size(mine, capsys):
    instance = mine / "instances" / f"{key(1)}.png"
    save_png(instance, np.zeros((30, 56), np.uint16))
    assert_refused(capsys, semantic_command(mine), instance, "labels of the wrong size: 30x56 (height x width)",
                   "40x56", out=mine.parent / "out")
    save_png(instance, np.zeros((40, 56), np.uint16))
    image = mine / "images" / f"{key(0)}.png"
    Image.new("RGB", (50, 40)).save(image)
    assert_refused(capsys, semantic_command(mine), f"{key(0)}.png", "labels of the wrong size", f"the image {image} "
                   "is 40x50", out=mine.parent / "out")


def test_unknown_class_ids(mine, capsys):
    semantic = np.asarray(Image.open(mine / "semantic" / f"{key(1)}.png")).copy()
    semantic[5:7, 5:7] = 77
    save_png(mine / "semantic" / f"{key(1)}.png", semantic)
    assert_refused(capsys, semantic_command(mine), f"{key(1)}.png: unknown class id [77] in the semantic map "
                   "(4 pixels, the first at x=5, y=5)", "--unknown void", out=mine.parent / "out")


def test_a_thing_class_with_no_instance_map(mine, capsys):
    (mine / "instances" / f"{key(1)}.png").unlink()
    assert_refused(capsys, semantic_command(mine), f"{key(1)}.png:", "pixels of the thing classes",
                   "but no instance map for this image", out=mine.parent / "out")


def test_instance_ids_reused_across_classes(mine, samples, capsys):
    semantic, instances = semantic_and_instances(samples[1])
    things = [s for s in samples[1].panoptic.segments if CATS.isthing(s.category_id) and not s.iscrowd]
    first, other = things[0], next(s for s in things if s.category_id != things[0].category_id)
    instances[samples[1].panoptic.id_map == other.id] = instances[samples[1].panoptic.id_map == first.id][0]
    save_png(mine / "instances" / f"{key(1)}.png", instances)
    assert_refused(capsys, semantic_command(mine), f"{key(1)}.png: instance id", "is reused across classes",
                   "--instance-ids class", out=mine.parent / "out")


def test_images_with_no_labels(mine, samples, capsys):
    Image.fromarray(samples[2].image).save(mine / "images" / "unlabelled.png")
    assert_refused(capsys, semantic_command(mine), "unlabelled.png: an image with no labels (no unlabelled.png in",
                   out=mine.parent / "out")
    code, stdout, _ = run(capsys, *semantic_command(mine, "--empty", "skip"))
    assert code == 0 and "wrote 2 images" in stdout and "1 skipped as empty" in stdout
    code, stdout, _ = run(capsys, *semantic_command(mine, "--empty", "keep"))
    assert code == 0 and "wrote 3 images" in stdout
    assert read_back(mine.parent / "out" / "panoptic.json", image_folder=mine / "images")["unlabelled"].segments == []
    (mine / "images" / "unlabelled.png").unlink()
    save_png(mine / "semantic" / f"{key(1)}.png", np.full((40, 56), VOID, np.uint8))
    (mine / "instances" / f"{key(1)}.png").unlink()
    assert_refused(capsys, semantic_command(mine, out="out2"),
                   f"{key(1)}.png: an image with no labels: every pixel is void", out=mine.parent / "out2")


@pytest.mark.parametrize("mode, kind", [("RGB", "an 8-bit RGB PNG"), ("LA", "an 8-bit grey + alpha PNG"),
                                        ("RGBA", "an 8-bit RGBA PNG")])
def test_colour_label_pngs_are_refused(mine, capsys, mode, kind):
    path = mine / "semantic" / f"{key(1)}.png"
    Image.open(path).convert(mode).save(path)
    assert_refused(capsys, semantic_command(mine), f"{path}: {kind}, but a label PNG must hold one channel of ids",
                   out=mine.parent / "out")


def test_sixteen_bit_and_palette_pngs_are_read_as_ids(tmp_path):
    """16-bit grey holds class ids above 255; a 4-bit palette PNG's indices are the ids, its colours ignored."""
    categories = CategorySet([Category(300, "plaza", False), Category(2, "kiosk", True), Category(7, "lawn", False)])
    semantic = np.full((6, 8), 300, np.uint16)
    semantic[:, 4:] = 7
    semantic[1:3, 1:3] = 2
    save_png(tmp_path / "sem" / "a.png", semantic)
    instances = Image.fromarray(np.where(semantic == 2, 5, 0).astype(np.uint8), "P")
    instances.putpalette([255, 0, 0] * 16)  # every index the same colour: only the indices can tell them apart
    (tmp_path / "inst").mkdir()
    instances.save(tmp_path / "inst" / "a.png", bits=4)
    assert Image.open(tmp_path / "inst" / "a.png").mode == "P"
    out = tmp_path / "out" / "p.json"
    cv.convert_semantic_instances(tmp_path / "sem", tmp_path / "inst", categories, out)
    (pan,) = read_back(out, image_folder=tmp_path).values()
    assert sorted((s.category_id, s.area) for s in pan.segments) == [(2, 4), (7, 24), (300, 20)]


@pytest.mark.parametrize("name", ["jpg", "png"])
def test_a_jpeg_where_a_label_png_was_expected(mine, capsys, name):
    path = mine / "semantic" / f"{key(1)}.png"
    jpeg = path.with_suffix(f".{name}")
    Image.open(path).convert("L").save(path.with_suffix(".tmp"), "JPEG")
    path.unlink()
    path.with_suffix(".tmp").rename(jpeg)
    assert_refused(capsys, semantic_command(mine), f"{jpeg}: a JPEG where a label PNG was expected",
                   out=mine.parent / "out")


def test_other_bad_label_sets(mine, capsys):
    out = mine.parent / "out"
    (mine / "semantic" / "city").mkdir()
    save_png(mine / "semantic" / "city" / f"{key(1)}.png", np.zeros((40, 56), np.uint8))
    assert_refused(capsys, semantic_command(mine), "two semantic files for image", out=out)
    (mine / "semantic" / "city" / f"{key(1)}.png").unlink()
    save_png(mine / "instances" / "stray.png", np.zeros((40, 56), np.uint8))
    assert_refused(capsys, semantic_command(mine), "stray.png: an instance map without a semantic map", out=out)
    (mine / "instances" / "stray.png").unlink()
    assert_refused(capsys, semantic_command(mine, "--void", DISC), f"--void {DISC}: {DISC} is also the id of the "
                   "category 'disc'", out=out)
    (mine / "categories.json").write_text('[{"id": 1, "name": "disc"}]')
    assert_refused(capsys, semantic_command(mine), "categories.json: categories[0]", "lacks the field 'isthing'",
                   out=out)


def test_outputs_inside_an_input_are_refused(mine, capsys):
    argv = semantic_command(mine)
    argv[argv.index("--output") + 1] = mine / "semantic" / "panoptic.json"
    assert_refused(capsys, argv, "--output", "an input of this command")
    assert not (mine / "semantic" / "panoptic.json").exists() and not (mine / "semantic" / "panoptic").exists()
    before = sorted((mine / "semantic").iterdir())
    with pytest.raises(ValueError, match="an input of the conversion"):  # the Python API refuses it too
        cv.convert_semantic_instances(mine / "semantic", mine / "instances", CATS, mine / "x.json",
                                      png_folder=mine / "semantic")
    assert sorted((mine / "semantic").iterdir()) == before


def test_bad_coco_sources(tmp_path, samples, capsys):
    pytest.importorskip("pycocotools")
    source = write_coco_source(tmp_path / "coco", samples[:2])
    out = tmp_path / "out"
    argv = ["coco", source / "instances.json", "--stuff", source / "stuff", "--categories", "synthetic",
            "--output", out / "p.json", "--quiet"]
    stuff = source / "stuff" / f"{key(1)}.png"
    good = stuff.read_bytes()
    save_png(stuff, np.zeros((20, 56), np.uint8))
    assert_refused(capsys, argv, f"{stuff}: labels of the wrong size: 20x56", out=out)
    stuff.unlink()
    assert_refused(capsys, argv, f"no stuff map {key(1)}.png for image 1", out=out)
    stuff.write_bytes(good)
    data = json.loads((source / "instances.json").read_text())
    data["annotations"][0]["category_id"] = SKY
    (source / "instances.json").write_text(json.dumps(data))
    assert_refused(capsys, argv, "annotation 1 has the category 11 ('sky'), a stuff class", out=out)
    data["annotations"][0]["category_id"] = 99
    (source / "instances.json").write_text(json.dumps(data))
    assert_refused(capsys, argv, "annotation 1 has the unknown category id 99", out=out)
    data["annotations"][0]["category_id"] = DISC
    data["annotations"][0]["segmentation"]["size"] = [41, 56]
    (source / "instances.json").write_text(json.dumps(data))
    assert_refused(capsys, argv, "annotation 1: its RLE is [41, 56] (height, width) but the image is [40, 56]",
                   out=out)
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1][1:]
    (source / "instances.json").write_text(json.dumps(data))
    assert_refused(capsys, argv[:2] + argv[4:], "image 1 (000000000001.jpg) has no labels", out=out)


# ---------------------------------------------------------------------------------------
# all or nothing
# ---------------------------------------------------------------------------------------
def test_an_interrupted_conversion_leaves_no_output(mine, monkeypatch):
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_write, "write_panoptic_png", interrupted)
    out = mine.parent / "out" / "deep" / "panoptic.json"
    with pytest.raises(KeyboardInterrupt):
        cv.convert_semantic_instances(mine / "semantic", mine / "instances", CATS, out, workers=2)
    assert calls and not (mine.parent / "out").exists()


def test_a_failed_conversion_keeps_the_previous_output(mine, capsys):
    assert run(capsys, *semantic_command(mine))[0] == 0
    out = mine.parent / "out"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    save_png(mine / "semantic" / f"{key(1)}.png", np.full((40, 56), 99, np.uint8))
    assert_refused(capsys, semantic_command(mine), "unknown class id [99]")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------------------
# the command line, and the Python API's small parts
# ---------------------------------------------------------------------------------------
def test_the_divisor_command_with_a_categories_file(tmp_path, samples, capsys):
    source = write_divisor_source(tmp_path / "cs", samples[:2])
    categories = write_categories(tmp_path / "panoptic_categories.json")
    out = tmp_path / "out" / "p.json"
    code, stdout, err = run(capsys, "divisor", source / "gtFine", "--categories", categories, "--output", out,
                            "--label-suffix", "_gtFine_instanceIds", "--quiet")
    assert code == 0 and err == "" and "wrote 2 images" in stdout
    assert [r["file_name"] for r in json.loads(out.read_text())["images"]] == \
        ["aachen_000000_000001.jpg", "bremen_000000_000000.jpg"]


def test_read_categories(tmp_path):
    assert cv.read_categories("synthetic") is CATS
    assert len(cv.read_categories("cityscapes")) == 19
    listed = write_categories(tmp_path / "list.json")
    (tmp_path / "panoptic.json").write_text(json.dumps({"images": [], "categories": CATS.to_coco()}))
    assert cv.read_categories(listed) == cv.read_categories(tmp_path / "panoptic.json") == CATS
    with pytest.raises(PanopticFormatError, match="nope.json: categories file not found"):
        cv.read_categories(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(PanopticFormatError, match="bad.json: expected a non-empty list"):
        cv.read_categories(tmp_path / "bad.json")


def test_rules_refuse_unknown_choices():
    with pytest.raises(ValueError, match=r"ConvertRules.overlap must be one of \['smaller', 'first', 'last', 'void'\]"):
        cv.ConvertRules(overlap="largest")


def test_readme_walkthrough(tmp_path, monkeypatch, capsys):
    """The steps of the README's "Your own data" section, as written there."""
    monkeypatch.chdir(tmp_path)
    from panopticlab.data.synthetic import SYNTHETIC_CATEGORIES as cats, render_scene  # noqa: I001

    for i in range(4):
        sample = render_scene(i, size=64)
        pan = sample.panoptic
        semantic = pan.category_map(void=255).astype(np.uint8)   # category id per pixel, 255 = void
        instances = np.zeros(pan.shape, np.uint16)                # instance id per pixel, 0 = none
        for s in pan.segments:
            if cats.isthing(s.category_id) and not s.iscrowd:
                instances[pan.id_map == s.id] = s.id
        for folder, array in (("images", sample.image), ("semantic", semantic), ("instances", instances)):
            Path("mine", folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(f"mine/{folder}/{i:04d}.png")
    assert main(["data", "convert", "semantic", "mine/semantic", "mine/instances", "--images", "mine/images",
                 "--categories", "synthetic", "--output", "mine/panoptic.json"]) == 0
    assert main(["data", "check", "mine/panoptic.json", "--image-folder", "mine/images"]) == 0
    assert "ok: 4 images" in capsys.readouterr().out
