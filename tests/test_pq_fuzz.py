"""Random valid COCO panoptic result sets, scored here and by panopticapi: every number must agree.

Each seed writes one set of images of three kinds (grids of up to 900 rectangles a side,
split or jittered in the prediction; simulated scenes; 1-3 pixel cells, which take the
per-pixel counting path) as PNG layouts panopticapi reads: RGB at every zlib level, and
RGB with a tRNS chunk on a segment's colour, on void's, or on an unused colour. The JSON
records are varied within what panopticapi accepts: shuffled order, ``iscrowd`` written as
``true``, ``1.0``, 2, -1 or ``"1"``, ids and category ids written as integral floats.
Odd seeds count the pairs sparsely (as for images of thousands of segments), even seeds
densely. RGBA and palette PNGs, which the evaluator refuses by contract, are checked apart.
"""
import io
import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticSegmentation, id_to_rgb
from panopticlab.data import png as png_module
from panopticlab.data.panoptic import crowd_flag
from panopticlab.metrics import evaluate_folders, evaluate_pairs
from panopticlab.metrics import overlap as overlap_module
from panopticlab.metrics.simulate import random_pair

from panoptic_cases import assert_same_as_panopticapi, many_segment_pair, panopticapi_results, rgb_png, write_set

SEEDS = list(range(10))


def random_image_pair(rng, many: bool = False):
    """One (ground truth, prediction) pair of a random kind; ``many``: over 255 segments a side."""
    kind = "grid" if many else rng.choice(["grid", "scene", "tiny cells"])
    if kind == "scene":
        size = (int(rng.integers(40, 140)), int(rng.integers(40, 180)))
        return random_pair(rng, size, scene_options={"crowd_probability": float(rng.uniform(0, 0.4)),
                                                     "one_crowd_region_per_category": bool(rng.random() < 0.5),
                                                     "unique_stuff": bool(rng.random() < 0.5)},
                           prediction_options={"void_fraction": float(rng.uniform(0, 0.3))})
    if kind == "tiny cells":
        rows, cols = int(rng.integers(6, 20)), int(rng.integers(6, 30))
        size = (rows * int(rng.integers(1, 4)), cols * int(rng.integers(1, 4)))
        gt_grid = (rows, cols)
    else:
        gt_grid = (int(rng.integers(16, 31)), int(rng.integers(17, 31))) if many else \
            (int(rng.integers(2, 16)), int(rng.integers(2, 20)))
        cell = (3, 8) if many else (4, 13)  # range of the mean rectangle side, in pixels
        size = (gt_grid[0] * int(rng.integers(*cell)), gt_grid[1] * int(rng.integers(*cell)))
    split = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) if rng.random() < 0.3 else (1, 1)
    return many_segment_pair(rng, size, gt_grid, split, jitter=int(rng.integers(0, 3)), swap=float(rng.uniform(0, 0.3)),
                             crowd_fraction=float(rng.uniform(0, 0.3)), void_labels=float(rng.uniform(0, 0.1)),
                             void_pixels=float(rng.uniform(0, 0.02)), pred_void_labels=float(rng.uniform(0, 0.1)))


LAYOUTS = ("RGB", "tRNS on a segment", "tRNS on void", "tRNS on an unused colour")


def random_png_writer(rng, layouts: list):
    """An ``encode`` for :func:`write_set`: RGB at a random zlib level, often with a tRNS colour.

    The first four files take the four layouts in a random order, later ones one at random;
    ``layouts`` receives the layout of each file written.
    """
    first = list(rng.permutation(LAYOUTS))

    def encode(id_map: np.ndarray) -> bytes:
        options = {"compress_level": int(rng.integers(0, 10))}
        layout = first.pop() if first else LAYOUTS[int(rng.integers(len(LAYOUTS)))]
        if layout == "tRNS on a segment":
            ids = id_map[id_map > 0]
            colour_id = int(rng.choice(ids)) if ids.size else 0
        elif layout == "tRNS on void":
            colour_id = 0
        else:
            colour_id = int(rng.integers(1, 2**24))
            while (id_map == colour_id).any():
                colour_id = int(rng.integers(1, 2**24))
        if layout != "RGB":
            options["transparency"] = tuple(int(v) for v in id_to_rgb(np.array([[colour_id]]))[0, 0])
        layouts.append(str(layout))
        return rgb_png(id_map, **options)
    return encode


def vary_records(rng, json_path, side: str) -> None:
    """Rewrite the records in forms panopticapi reads the same way: order, crowd values, integral floats."""
    data = json.loads(json_path.read_text())
    for annotation in data["annotations"]:
        records = annotation["segments_info"]
        rng.shuffle(records)
        for record in records:
            if side == "gt":  # panopticapi: crowd exactly when iscrowd == 1
                if record["iscrowd"] == 1 and rng.random() < 0.5:
                    record["iscrowd"] = [True, 1.0][int(rng.integers(2))]
                elif record["iscrowd"] == 0 and rng.random() < 0.2:
                    record["iscrowd"] = [2, -1, "1"][int(rng.integers(3))]
            if rng.random() < 0.05:
                record["id"] = float(record["id"])
            if rng.random() < 0.05:
                record["category_id"] = float(record["category_id"])
    json_path.write_text(json.dumps(data))


def panopticapi_ids(data: bytes) -> np.ndarray:
    from panopticapi.utils import rgb2id

    return rgb2id(np.array(Image.open(io.BytesIO(data)), dtype=np.uint32))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_result_sets_score_as_panopticapi(tmp_path, monkeypatch, seed):
    if seed % 2:  # count every image's pairs sparsely, as images of thousands of segments are
        monkeypatch.setattr(overlap_module, "DENSE_LIMIT", 0)
    rng = np.random.default_rng([2024, seed])
    pairs = [random_image_pair(rng, many=True)] + [random_image_pair(rng) for _ in range(5)]
    assert max(len(gt.segments) for gt, _ in pairs) > 255 and max(len(p.segments) for _, p in pairs) > 255
    layouts = []
    paths = write_set(tmp_path, pairs, random_png_writer(rng, layouts))
    assert set(layouts) == set(LAYOUTS)
    for side in ("gt", "pred"):
        vary_records(rng, paths[f"{side}_json"], side)

    # every decoder reads every file as panopticapi does
    for png in sorted(paths["gt_folder"].glob("*.png")) + sorted(paths["pred_folder"].glob("*.png")):
        data = png.read_bytes()
        expected = panopticapi_ids(data)
        for decoder in png_module.DECODERS.values():
            np.testing.assert_array_equal(decoder(data), expected, err_msg=f"{decoder.__name__} on {png}")

    ours = evaluate_folders(**paths, progress=False)
    assert_same_as_panopticapi(ours, panopticapi_results(paths))
    assert ours["num_images"] == len(pairs)
    # the in-memory path on the same segments: in the JSON's order (a category's crowd region
    # is its last crowd segment listed) and with the crowd flags the varied records say
    in_memory = evaluate_pairs([(as_listed(gt, paths, k), pred) for k, (gt, pred) in enumerate(pairs)], CATS)
    assert_same_as_panopticapi(in_memory, ours, tolerance=1e-12)


def as_listed(gt, paths, image_id):
    """``gt`` with its segments in the order and with the crowd flags of its (varied) JSON records."""
    records = json.loads(paths["gt_json"].read_text())["annotations"][image_id]["segments_info"]
    by_id = {s.id: s for s in gt.segments}
    return PanopticSegmentation(gt.id_map, [replace(by_id[int(r["id"])], iscrowd=crowd_flag(r["iscrowd"]))
                                            for r in records])


@pytest.mark.parametrize("mode", ["RGBA", "P"])
def test_rgba_and_palette_pngs_are_refused_naming_the_file(tmp_path, mode):
    """The panoptic PNG contract is 8-bit RGB. panopticapi reads RGBA by ignoring alpha, and fails on
    palette files (its rgb2id gets (H, W) indices); the evaluator refuses both, naming the file."""
    rng = np.random.default_rng(5)
    gt, pred = many_segment_pair(rng, (40, 60), (4, 5))  # under 256 colours: a palette can hold them

    def encode(id_map):
        rgb = id_to_rgb(id_map)
        if mode == "RGBA":
            image = Image.fromarray(np.dstack([rgb, rng.integers(0, 256, size=id_map.shape, dtype=np.uint8)]))
        else:
            colours, index = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
            image = Image.fromarray(index.reshape(id_map.shape).astype(np.uint8), "P")
            image.putpalette(colours[:256].reshape(-1).tolist())
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    paths = write_set(tmp_path, [(gt, pred)], encode)
    colour_type = {"RGBA": 6, "P": 3}[mode]
    with pytest.raises(PanopticFormatError, match=rf"gt/000000\.png: a panoptic PNG must be 8-bit RGB .*"
                                                  rf"colour type {colour_type}, PIL mode '{mode}'"):
        evaluate_folders(**paths, progress=False)
    data = (paths["gt_folder"] / "000000.png").read_bytes()
    if mode == "RGBA":  # what panopticapi makes of it: the ids, alpha ignored
        np.testing.assert_array_equal(panopticapi_ids(data), gt.id_map)
    else:
        with pytest.raises(TypeError):
            panopticapi_ids(data)

