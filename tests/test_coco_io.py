"""COCO panoptic files: round trips, the reference readers (panopticapi, hotcoco), the PNG decoders, bad input,
interrupted writes."""
import json
import struct
import zlib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conftest import random_panoptic
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticSegmentation, Sample, id_to_rgb
from panopticlab.data import png as png_module
from panopticlab.data.coco import (
    CocoPanoptic,
    checked_with_statistics,
    coco_panoptic_paths,
    decode_panoptic_png,
    panoptic_from_annotation,
    png_decoder,
    read_image,
    read_panoptic_png,
    write_coco_panoptic,
    write_panoptic_png,
    write_predictions,
)

# ---------------------------------------------------------------------------------------
# test data, built by hand with numpy
# ---------------------------------------------------------------------------------------
SKY, ROAD, GRASS, DISC, BOX, TRIANGLE = 11, 12, 13, 1, 2, 3


def street_scene(height=30, width=40) -> PanopticSegmentation:
    """Sky over grass over road; two touching discs, a box, a crowd of triangles, void seams.

    Ids are spread over all three RGB channels (up to 2^23), as COCO's are.
    """
    yy, xx = np.mgrid[:height, :width]
    id_map = np.zeros((height, width), np.int32)
    sky, grass, road = 7_340_032 + 5, 65_536 + 300, 258
    disc_a, disc_b, box, crowd = 1, 2, 70_000, 4_000_000
    id_map[: height // 3] = sky
    id_map[height // 3: 2 * height // 3] = grass
    id_map[2 * height // 3:] = road
    id_map[height // 3 - 1] = 0                      # a void seam between sky and grass
    r = height // 6
    id_map[(yy - height // 2) ** 2 + (xx - r - 1) ** 2 <= r * r] = disc_a
    id_map[(yy - height // 2) ** 2 + (xx - 3 * r - 2) ** 2 <= r * r] = disc_b  # touches disc_a
    id_map[2:6, width - 8: width - 2] = box
    id_map[height - 5:, width // 2: width - 3] = crowd
    categories = {sky: SKY, grass: GRASS, road: ROAD, disc_a: DISC, disc_b: DISC, box: BOX, crowd: TRIANGLE}
    return PanopticSegmentation.from_id_map(id_map, categories, iscrowd={crowd: 1})


def make_samples(count=3, extension=".png"):
    rng = np.random.default_rng(1)
    samples = []
    for index in range(count):
        panoptic = street_scene() if index == 0 else random_panoptic(rng, shape=(20 + 4 * index, 28 + index))
        image = rng.integers(0, 256, size=(*panoptic.shape, 3), dtype=np.uint8)
        samples.append(Sample(image=image, panoptic=panoptic, image_id=100 + index,
                              file_name=f"{index:012d}{extension}"))
    return samples


@pytest.fixture
def written(tmp_path):
    samples = make_samples()
    paths = write_coco_panoptic(tmp_path / "coco", "val", samples, CATS)
    return samples, paths


def edit_json(json_path, edit):
    data = json.loads(json_path.read_text())
    edit(data)
    json_path.write_text(json.dumps(data))


def all_files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------
def test_png_round_trip_covers_all_three_channels(tmp_path):
    ids = np.array([[0, 1, 255, 256], [65_535, 65_536, 2**24 - 2, 2**24 - 1]], dtype=np.int64)
    write_panoptic_png(tmp_path / "x.png", ids)
    read = read_panoptic_png(tmp_path / "x.png")
    assert read.dtype == np.int32
    np.testing.assert_array_equal(read, ids)


def test_png_refuses_ids_beyond_rgb(tmp_path):
    with pytest.raises(PanopticFormatError, match="256|16777215"):
        write_panoptic_png(tmp_path / "x.png", np.full((2, 2), 2**24))
    assert not (tmp_path / "x.png").exists()


def test_written_set_reads_back_identically(written):
    samples, paths = written
    dataset = CocoPanoptic(**paths)
    assert len(dataset) == len(samples)
    assert dataset.categories == CATS
    assert dataset.image_ids == [s.image_id for s in samples]
    for index, sample in enumerate(samples):
        assert dataset.index_of(sample.image_id) == index
        read = dataset[index]
        assert read.image_id == sample.image_id and read.file_name == sample.file_name
        np.testing.assert_array_equal(read.image, sample.image)
        assert read.image.dtype == np.uint8
        # ids, categories, crowd flags, areas and bboxes, all unchanged
        assert read.panoptic.equals(sample.panoptic)
        assert dataset.panoptic(index).equals(sample.panoptic)
    assert dataset[-1].image_id == samples[-1].image_id
    with pytest.raises(IndexError):
        dataset[len(samples)]
    with pytest.raises(KeyError, match="12345"):
        dataset.index_of(12345)


def test_json_has_coco_fields_and_segment_statistics(written):
    samples, paths = written
    data = json.loads(paths["json_path"].read_text())
    assert set(data) >= {"images", "annotations", "categories"}
    assert data["categories"][0].keys() >= {"id", "name", "supercategory", "isthing", "color"}
    for sample, image, annotation in zip(samples, data["images"], data["annotations"]):
        height, width = sample.panoptic.shape
        assert image == {"id": sample.image_id, "file_name": sample.file_name, "height": height, "width": width}
        assert annotation["image_id"] == sample.image_id
        assert (paths["png_folder"] / annotation["file_name"]).is_file()
        for record in annotation["segments_info"]:
            mask = sample.panoptic.id_map == record["id"]
            rows, cols = np.nonzero(mask)
            assert record["area"] == mask.sum()
            assert record["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1,
                                      rows.max() - rows.min() + 1]


def test_default_folders_follow_coco_layout(written):
    samples, paths = written
    dataset = CocoPanoptic(paths["json_path"])
    assert dataset.png_folder == paths["png_folder"]
    assert dataset.image_folder == paths["image_folder"]
    np.testing.assert_array_equal(dataset[1].image, samples[1].image)


def test_jpeg_images(tmp_path):
    samples = make_samples(count=2, extension=".jpg")
    paths = write_coco_panoptic(tmp_path, "val", samples, CATS)
    with Image.open(paths["image_folder"] / samples[0].file_name) as image:
        assert image.format == "JPEG"
    read = CocoPanoptic(**paths)[0]
    assert read.image.shape == samples[0].image.shape
    assert read.panoptic.equals(samples[0].panoptic)  # the PNG stays lossless
    assert json.loads(paths["json_path"].read_text())["annotations"][0]["file_name"] == "000000000000.png"


@pytest.mark.parametrize("orientation, upright", [(1, lambda a: a), (3, lambda a: a[::-1, ::-1]),
                                                  (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a))])
def test_an_image_is_read_upright_as_its_exif_orientation_says(tmp_path, orientation, upright):
    stored = np.random.default_rng(orientation).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: the camera was turned a quarter clockwise, the viewer turns it back
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    np.testing.assert_array_equal(read_image(tmp_path / "photo.png"), upright(stored))


def test_progress_bar(tmp_path, capsys):
    write_coco_panoptic(tmp_path, "val", make_samples(count=2), CATS, progress=True)
    assert "writing val" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# PNG decoding: Wuffs and Pillow against panopticapi's reader, on every layout a PNG can take
# ---------------------------------------------------------------------------------------
DECODERS = list(png_module.DECODERS.values())  # both installed with the test dependencies


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def handmade_png(pixels: np.ndarray, bit_depth=8, interlaced=False, idat_pieces=1, colour_type=2,
                 before_idat=b"", after_idat=b"") -> bytes:
    """A PNG built from the specification alone: filter type 0 on every row, optionally Adam7-interlaced.

    ``before_idat``, ``after_idat``: whole chunks (:func:`png_chunk`) to put around the pixels.
    """
    height, width = pixels.shape[:2]
    big_endian = pixels.astype(">u2" if bit_depth == 16 else np.uint8)
    # Adam7: the 7 passes as (first row, first column, row step, column step)
    passes = ([(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
              if interlaced else [(0, 0, 1, 1)])
    raw = b""
    for row0, col0, row_step, col_step in passes:
        sub = big_endian[row0::row_step, col0::col_step]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    stream = zlib.compress(raw)
    cut = np.linspace(0, len(stream), idat_pieces + 1).astype(int)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, int(interlaced))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + before_idat
            + b"".join(png_chunk(b"IDAT", stream[a:b]) for a, b in zip(cut[:-1], cut[1:]))
            + after_idat + png_chunk(b"IEND", b""))


def pillow_png(id_map: np.ndarray, **options) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(id_to_rgb(id_map)).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def panopticapi_ids(data: bytes) -> np.ndarray:
    from io import BytesIO

    from panopticapi.utils import rgb2id

    return rgb2id(np.array(Image.open(BytesIO(data)), dtype=np.uint32))


def png_layouts():
    """(name, PNG bytes, the ids they hold)."""
    rng = np.random.default_rng(5)
    scene = street_scene(37, 29).id_map  # odd sizes: Adam7 passes of unequal lengths
    noise = rng.integers(0, 2**24, size=(13, 11))  # every byte value, no runs
    layouts = [
        ("Pillow default", pillow_png(scene), scene),
        ("Pillow level 0, stored blocks", pillow_png(scene, compress_level=0), scene),
        ("Pillow level 9", pillow_png(noise, compress_level=9), noise),
        ("Pillow with a text chunk", pillow_png(scene, pnginfo=text_chunk()), scene),
        ("one pixel", pillow_png(np.array([[2**24 - 1]])), np.array([[2**24 - 1]])),
        ("one row", pillow_png(noise[:1]), noise[:1]),
        ("one column", pillow_png(noise[:, :1]), noise[:, :1]),
        ("handmade", handmade_png(id_to_rgb(scene)), scene),
        ("handmade, 5 IDAT chunks", handmade_png(id_to_rgb(noise), idat_pieces=5), noise),
        ("handmade, Adam7-interlaced", handmade_png(id_to_rgb(scene), interlaced=True), scene),
        ("handmade, Adam7, 1x1", handmade_png(id_to_rgb(noise[:1, :1]), interlaced=True), noise[:1, :1]),
        # tRNS marks one colour transparent; a panoptic reader must still give that colour's id
        ("Pillow with tRNS on a segment's colour", pillow_png(scene, transparency=rgb_of(scene[20, 10])), scene),
        ("Pillow with tRNS on void's colour", pillow_png(scene, transparency=(0, 0, 0)), scene),
        ("handmade, tRNS, Adam7, 5 IDAT chunks", handmade_png(id_to_rgb(scene), interlaced=True, idat_pieces=5,
                                                               before_idat=trns_chunk(scene[0, 0])), scene),
        ("handmade, tRNS after the pixels", handmade_png(id_to_rgb(scene), after_idat=trns_chunk(scene[0, 0])), scene),
    ]
    return layouts


def rgb_of(segment_id: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in id_to_rgb(np.array([[segment_id]]))[0, 0])


def trns_chunk(segment_id: int) -> bytes:
    """A tRNS chunk of an RGB PNG marking the colour of ``segment_id`` transparent (three 16-bit samples)."""
    return png_chunk(b"tRNS", struct.pack(">HHH", *rgb_of(segment_id)))


def text_chunk():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "a test")
    return info


@pytest.mark.parametrize("name, data, ids", png_layouts(), ids=[layout[0] for layout in png_layouts()])
def test_decoders_give_panopticapis_ids_on_every_layout(name, data, ids):
    np.testing.assert_array_equal(panopticapi_ids(data), ids)  # the layout is a valid RGB PNG of these ids
    for decoder in DECODERS:
        decoded = decoder(data)
        assert decoded.dtype == np.uint32 and decoded.shape == ids.shape
        np.testing.assert_array_equal(decoded, ids, err_msg=decoder.__name__)
    np.testing.assert_array_equal(decode_panoptic_png(data, "x.png"), ids)


def test_the_fastest_decoder_is_in_use():
    assert png_decoder() is png_module._decode_with_wuffs  # pywuffs is installed with the test dependencies


def test_decoders_agree_at_cityscapes_size():
    rng = np.random.default_rng(0)
    ids = np.kron(rng.integers(0, 2**24, size=(16, 32)), np.ones((64, 64), np.int64))  # 1024 x 2048, flat blocks
    data = pillow_png(ids)
    for decoder in DECODERS:
        np.testing.assert_array_equal(decoder(data), ids, err_msg=decoder.__name__)


def test_decoding_in_threads_gives_each_thread_its_own_ids():
    """Wuffs decoders hold state while decoding: each call must get its own."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    maps = [np.kron(rng.integers(0, 2**24, size=(6, 8)), np.ones((20, 20), np.int64)) for _ in range(8)]
    blobs = [pillow_png(m) for m in maps]
    with ThreadPoolExecutor(max_workers=4) as pool:
        decoded = list(pool.map(lambda data: decode_panoptic_png(data, "x.png"), blobs * 4))
    for k, ids in enumerate(decoded):
        np.testing.assert_array_equal(ids, maps[k % len(maps)])


def damaged(data: bytes, how: str) -> bytes:
    """A copy of a one-IDAT PNG with one defect."""
    position = 8
    while data[position + 4:position + 8] != b"IDAT":
        position += 12 + int.from_bytes(data[position:position + 4], "big")
    length = int.from_bytes(data[position:position + 4], "big")
    start, end = position + 8, position + 8 + length
    payload = bytearray(data[start:end])
    if how == "pixel byte changed":  # in a stored block, CRC not updated: still inflates, to other pixels
        payload[len(payload) // 2] ^= 0x01
        return data[:start] + bytes(payload) + data[end:]
    if how == "bad deflate stream, CRC made to match":
        payload[2:6] = b"\xff\xff\xff\xff"
        return data[:position] + png_chunk(b"IDAT", bytes(payload)) + data[end + 4:]
    if how == "cut inside a chunk":
        return data[:start + length // 2]
    if how == "IDAT before IHDR":
        return data[:8] + data[position:end + 4] + data[8:position] + data[end + 4:]
    if how == "header claims 60000 x 60000 pixels":  # a few bytes that would inflate to 10 GB of pixels
        header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
        return data[:8] + png_chunk(b"IHDR", header) + data[8 + 25:]
    if how == "header claims 0 pixels":
        header = struct.pack(">IIBBBBB", 0, 7, 8, 2, 0, 0, 0)
        return data[:8] + png_chunk(b"IHDR", header) + data[8 + 25:]
    raise AssertionError(how)


@pytest.mark.parametrize("how, pattern", [
    ("pixel byte changed", r"cannot decode the panoptic PNG; the file is truncated or corrupt \(.*checksum"),
    ("bad deflate stream, CRC made to match", r"cannot decode the panoptic PNG; the file is truncated or corrupt"),
    ("cut inside a chunk", r"cannot decode the panoptic PNG; the file is truncated or corrupt"),
    ("IDAT before IHDR", r"it does not start with a 13-byte IHDR chunk"),
    ("header claims 60000 x 60000 pixels", r"its header claims 60000 x 60000 pixels \(W x H\), more than the \d+ "
                                           r"that PIL.Image.MAX_IMAGE_PIXELS allows"),
    ("header claims 0 pixels", r"cannot decode the panoptic PNG; the file is truncated or corrupt"),
])
@pytest.mark.parametrize("decoder", DECODERS)
def test_damaged_png_is_refused_whichever_decoder_runs(monkeypatch, how, pattern, decoder):
    scene = street_scene().id_map
    data = damaged(pillow_png(scene, compress_level=0), how)
    monkeypatch.setattr(png_module, "png_decoder", lambda: decoder)
    with pytest.raises(PanopticFormatError, match=rf"^broken\.png: .*{pattern}"):
        decode_panoptic_png(data, "broken.png")


@pytest.mark.parametrize("decoder", DECODERS)
def test_every_flipped_bit_in_compressed_pixels_is_refused(monkeypatch, decoder):
    """Pillow's decoder alone misreads some of these (it stops before the zlib checksum): its verify() must run."""
    data = pillow_png(street_scene().id_map)
    start = data.index(b"IDAT") + 4
    end = start + int.from_bytes(data[start - 8:start - 4], "big")
    monkeypatch.setattr(png_module, "png_decoder", lambda: decoder)
    for position in range(start, end, max(1, (end - start) // 60)):
        flipped = bytearray(data)
        flipped[position] ^= 0x10
        with pytest.raises(PanopticFormatError, match=r"^broken\.png: cannot decode"):
            decode_panoptic_png(bytes(flipped), "broken.png")


@pytest.mark.parametrize("bit_depth, colour_type, pil_mode", [(16, 2, "RGB"), (16, 0, "I;16"), (8, 4, "LA"),
                                                              (1, 0, "1")])
def test_other_bit_depths_and_colour_types_are_refused(tmp_path, bit_depth, colour_type, pil_mode):
    channels = {0: 1, 2: 3, 4: 2}[colour_type]
    pixels = np.ones((4, 8 if bit_depth == 1 else 5, channels))[..., 0 if channels == 1 else slice(None)]
    if bit_depth == 1:  # eight 1-bit pixels per byte
        pixels = np.zeros((4, 1), np.uint8)
    data = handmade_png(pixels, bit_depth=bit_depth, colour_type=colour_type)
    (tmp_path / "x.png").write_bytes(data)
    with pytest.raises(PanopticFormatError, match=rf"x\.png: a panoptic PNG must be 8-bit RGB .*bit depth "
                                                  rf"{bit_depth}, colour type {colour_type}, PIL mode '{pil_mode}'"):
        read_panoptic_png(tmp_path / "x.png")


def test_written_pngs_use_the_fast_zlib_level(written):
    samples, paths = written
    for png in [paths["png_folder"] / "000000000000.png", paths["image_folder"] / samples[0].file_name]:
        data = png.read_bytes()
        position = 8
        while data[position + 4:position + 8] != b"IDAT":
            position += 12 + int.from_bytes(data[position:position + 4], "big")
        assert data[position + 9] >> 6 == 0  # zlib FLEVEL 0: compressed at level 0 or 1


@pytest.mark.parametrize("id_map, pattern", [
    (np.zeros((2, 3, 1), np.int32), r"\(H, W\) integer array, got shape \(2, 3, 1\)"),
    (np.zeros((2, 3), np.float64), r"dtype float64"),
    (np.zeros((0, 3), np.int32), r"got shape \(0, 3\)"),
    (np.full((2, 3), -1), r"\[-1, -1\]"),
])
def test_write_panoptic_png_refuses_bad_maps(tmp_path, id_map, pattern):
    with pytest.raises(PanopticFormatError, match=rf"x\.png: .*{pattern}"):
        write_panoptic_png(tmp_path / "x.png", id_map)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# checked_with_statistics: validate() and with_statistics() in one pass, the same verdicts
# ---------------------------------------------------------------------------------------
def bad_segmentations():
    """(name, segmentation) pairs that validate() refuses, one defect each."""
    good = street_scene()
    first, second = good.segments[0], good.segments[1]
    return [
        ("3-D map", PanopticSegmentation(good.id_map[..., None], good.segments)),
        ("float map", PanopticSegmentation(good.id_map.astype(float), good.segments)),
        ("negative id", PanopticSegmentation(np.where(good.id_map == first.id, -3, good.id_map), good.segments)),
        ("duplicate id", PanopticSegmentation(good.id_map, [*good.segments, first])),
        ("zero id", PanopticSegmentation(good.id_map, [*good.segments, replace(first, id=0)])),
        ("unknown category", PanopticSegmentation(good.id_map, [replace(first, category_id=99), *good.segments[1:]])),
        ("unlisted id", PanopticSegmentation(good.id_map, good.segments[1:])),
        ("absent segment", PanopticSegmentation(good.id_map, [*good.segments, replace(second, id=5)])),
    ]


@pytest.mark.parametrize("name, pan", bad_segmentations(), ids=[b[0] for b in bad_segmentations()])
def test_checked_with_statistics_refuses_what_validate_refuses_with_the_same_message(name, pan):
    with pytest.raises(PanopticFormatError) as expected:
        pan.validate(CATS, source="sample 7")
    with pytest.raises(PanopticFormatError) as ours:
        checked_with_statistics(pan, CATS, "sample 7")
    assert str(ours.value) == str(expected.value)


def test_checked_with_statistics_measures_like_with_statistics(rng):
    for _ in range(5):
        pan = random_panoptic(rng, shape=(30, 41))
        blank = PanopticSegmentation(pan.id_map, [replace(s, area=0, bbox=(0, 0, 0, 0)) for s in pan.segments])
        measured = checked_with_statistics(blank, CATS, "x")
        assert measured.equals(pan) and measured.equals(blank.with_statistics())


# ---------------------------------------------------------------------------------------
# independent readers: panopticapi and hotcoco
# ---------------------------------------------------------------------------------------
def test_panopticapi_decodes_our_pngs(written):
    from panopticapi.utils import rgb2id

    samples, paths = written
    data = json.loads(paths["json_path"].read_text())
    for sample, annotation in zip(samples, data["annotations"]):
        rgb = np.array(Image.open(paths["png_folder"] / annotation["file_name"]), dtype=np.uint32)
        np.testing.assert_array_equal(rgb2id(rgb), sample.panoptic.id_map)


def per_category_counts(samples):
    """Non-crowd segments per category, over all samples."""
    counts = {}
    for sample in samples:
        for s in sample.panoptic.segments:
            if not s.iscrowd:
                counts[s.category_id] = counts.get(s.category_id, 0) + 1
    return counts


def drop_one_segment(panoptic, segment_id):
    id_map = np.where(panoptic.id_map == segment_id, 0, panoptic.id_map)
    return PanopticSegmentation(id_map, [s for s in panoptic.segments if s.id != segment_id]).with_statistics()


def test_panopticapi_scores_ground_truth_against_itself(written, tmp_path):
    from panopticapi.evaluation import pq_compute

    samples, paths = written
    pred_json = tmp_path / "pred" / "predictions.json"
    write_predictions(pred_json, None, [(s.image_id, s.file_name, s.panoptic) for s in samples], CATS)
    results = pq_compute(str(paths["json_path"]), str(pred_json), str(paths["png_folder"]))
    counts = per_category_counts(samples)
    for category in CATS:
        expected = 1.0 if category.id in counts else 0.0  # crowd-only and absent categories are not scored
        assert results["per_class"][category.id]["pq"] == pytest.approx(expected)
    assert results["All"]["n"] == len(counts)
    assert results["All"]["pq"] == pytest.approx(1.0)


def test_panopticapi_and_hotcoco_agree_on_a_missed_segment(written, tmp_path):
    """One ground-truth disc left out of the prediction: a false negative, PQ_c = (n-1) / (n-1 + 1/2)."""
    from hotcoco.panoptic import PanopticEval
    from panopticapi.evaluation import pq_compute

    samples, paths = written
    missed = next(s for s in samples[0].panoptic.segments if s.category_id == DISC)
    predictions = [(s.image_id, s.file_name, drop_one_segment(s.panoptic, missed.id) if i == 0 else s.panoptic)
                   for i, s in enumerate(samples)]
    pred_json = tmp_path / "predictions.json"
    write_predictions(pred_json, None, predictions, CATS)

    n = per_category_counts(samples)[DISC]
    expected_disc_pq = (n - 1) / (n - 1 + 0.5)
    reference = pq_compute(str(paths["json_path"]), str(pred_json), str(paths["png_folder"]))
    assert reference["per_class"][DISC]["pq"] == pytest.approx(expected_disc_pq)

    evaluation = PanopticEval(str(paths["json_path"]), str(pred_json),
                              gt_folder=str(paths["png_folder"]), pred_folder=str(tmp_path / "predictions"))
    evaluation.evaluate()
    ours = evaluation.results()
    assert ours["per_class"][DISC]["fn"] == 1
    assert ours["per_class"][DISC]["pq"] == pytest.approx(expected_disc_pq)
    for group in ("All", "Things", "Stuff"):
        assert ours[group]["pq"] == pytest.approx(reference[group]["pq"])
        assert ours[group]["n"] == reference[group]["n"]


def test_hotcoco_reads_our_ground_truth(written):
    from hotcoco.panoptic import PanopticEval

    samples, paths = written
    evaluation = PanopticEval(str(paths["json_path"]), str(paths["json_path"]),
                              gt_folder=str(paths["png_folder"]), pred_folder=str(paths["png_folder"]))
    evaluation.evaluate()
    results = evaluation.results()
    assert results["All"]["pq"] == pytest.approx(1.0)
    assert results["All"]["n"] == len(per_category_counts(samples))


def test_predictions_keep_scores_and_read_back(tmp_path):
    panoptic = street_scene()
    scored = PanopticSegmentation(panoptic.id_map, [replace(s, score=0.5 + 0.01 * i)
                                                    for i, s in enumerate(panoptic.segments)])
    pred_json = write_predictions(tmp_path / "p.json", tmp_path / "pngs", [(7, "a.jpg", scored)], CATS)
    annotation = json.loads(pred_json.read_text())["annotations"][0]
    assert annotation["file_name"] == "a.png"
    read = panoptic_from_annotation(annotation, tmp_path / "pngs", CATS)
    assert read.equals(scored)


# ---------------------------------------------------------------------------------------
# bad input: one PanopticFormatError naming the file and the segment or category
# ---------------------------------------------------------------------------------------
def first_png(paths):
    return paths["png_folder"] / "000000000000.png"


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_non_rgb_png_is_refused(written, mode):
    _, paths = written
    png = first_png(paths)
    rgb = Image.open(png).convert("RGB")
    (rgb.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(rgb)[..., 0].astype(np.uint16))).save(png)
    with pytest.raises(PanopticFormatError, match=f"000000000000.png.*mode '{mode}'"):
        CocoPanoptic(**paths)[0]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "jpeg", "missing"])
def test_unreadable_png_is_refused(written, damage):
    _, paths = written
    png = first_png(paths)
    if damage == "truncate":
        png.write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    elif damage == "garbage":
        png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif damage == "jpeg":
        Image.open(png).convert("RGB").save(png, format="JPEG")
    else:
        png.unlink()
    with pytest.raises(PanopticFormatError, match="000000000000.png"):
        read_panoptic_png(png)
    with pytest.raises(PanopticFormatError, match="000000000000.png"):
        CocoPanoptic(**paths).panoptic(0)


def segment_edits():
    """(description, edit of the first annotation's segments_info, expected message pattern)."""
    def drop_disc(segments):
        segments[:] = [s for s in segments if s["id"] != 2]

    def add_ghost(segments):
        segments.append({"id": 424242, "category_id": BOX, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]})

    def unknown_category(segments):
        segments[0]["category_id"] = 77

    def duplicate(segments):
        segments.append(dict(segments[0]))

    def wrong_area(segments):
        segments[1]["area"] += 1

    def wrong_bbox(segments):
        segments[1]["bbox"][2] += 1

    first_id = street_scene().segments[0].id
    second_id = street_scene().segments[1].id
    return [
        ("id in PNG without segment", drop_disc, r"\[2\].*no segment"),
        ("segment absent from PNG", add_ghost, r"424242.*no pixel"),
        ("unknown category", unknown_category, rf"segment {first_id}.*unknown category id 77"),
        ("duplicate segment id", duplicate, rf"segment id {first_id} appears twice"),
        ("area disagrees", wrong_area, rf"segment {second_id} has area"),
        ("bbox disagrees", wrong_bbox, rf"segment {second_id} has bbox"),
    ]


@pytest.mark.parametrize("name, edit, pattern", segment_edits(), ids=[e[0] for e in segment_edits()])
def test_segments_info_must_match_png(written, name, edit, pattern):
    _, paths = written
    edit_json(paths["json_path"], lambda data: edit(data["annotations"][0]["segments_info"]))
    with pytest.raises(PanopticFormatError, match=rf"000000000000\.png \(image 100\): .*{pattern}"):
        CocoPanoptic(**paths)[0]
    CocoPanoptic(**paths)[1]  # the other images are unaffected


def test_png_size_must_match_image_record(written):
    _, paths = written
    edit_json(paths["json_path"], lambda data: data["images"][0].update(height=31))
    with pytest.raises(PanopticFormatError, match=r"000000000000\.png.*30x40.*31x40"):
        CocoPanoptic(**paths).panoptic(0)


def test_image_size_must_match_png(written):
    samples, paths = written
    image_path = paths["image_folder"] / samples[0].file_name
    Image.fromarray(samples[0].image[:-1]).save(image_path)
    with pytest.raises(PanopticFormatError, match=r"val/000000000000\.png.*annotations/panoptic_val/000000000000\.png"):
        CocoPanoptic(**paths)[0]


def test_missing_image_is_named(written):
    samples, paths = written
    (paths["image_folder"] / samples[2].file_name).unlink()
    with pytest.raises(PanopticFormatError, match="000000000002.png: image not found"):
        CocoPanoptic(**paths)[2]


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d["images"].pop(1), r"annotation for image id 101 but no image record"),
    (lambda d: d["annotations"].pop(2), r"image id 102 has no annotation"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"image id 100 appears twice"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), r"image id 100 has more than one annotation"),
    (lambda d: d.pop("categories"), r"'categories' is missing"),
    (lambda d: d["categories"].append(dict(d["categories"][0])), r"category id 1 appears twice"),
])
def test_json_inconsistencies_name_the_image(written, edit, pattern):
    _, paths = written
    edit_json(paths["json_path"], edit)
    with pytest.raises(PanopticFormatError, match=rf"panoptic_val\.json: .*{pattern}"):
        CocoPanoptic(**paths)


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d["images"][1].update(id=[101]), r"images\[1\]: id \[101\] is neither an integer nor a string"),
    (lambda d: d["images"][0].update(id=2**70), r"images\[0\]: id 1180591620717411303424 is out of range"),
    (lambda d: d["images"][2].update(file_name=None),
     r"images\[2\] \(image 102\): file_name must be a non-empty string, got None"),
    (lambda d: d["annotations"][0].update(image_id={"id": 100}),
     r"annotations\[0\]: image_id \{'id': 100\} is neither an integer nor a string \(a dict\)"),
    (lambda d: d["annotations"][1].update(file_name=3),
     r"annotations\[1\] \(image 101\): file_name must be a non-empty string, got 3"),
    (lambda d: d["categories"][0].update(isthing=2), r"categories\[0\] \(id 1\): isthing must be 0, 1, true or false"),
])
def test_hostile_json_values_name_the_file_and_the_field(written, edit, pattern):
    _, paths = written
    edit_json(paths["json_path"], edit)
    with pytest.raises(PanopticFormatError, match=rf"panoptic_val\.json: {pattern}"):
        CocoPanoptic(**paths)


def test_a_record_read_alone_names_a_bad_file_name_or_segment_id(written):
    _, paths = written
    annotation = json.loads(paths["json_path"].read_text())["annotations"][0]
    with pytest.raises(PanopticFormatError, match=r"annotation of image 100: file_name must be a non-empty string"):
        panoptic_from_annotation({**annotation, "file_name": None}, paths["png_folder"], CATS)
    records = [dict(annotation["segments_info"][0], id=2**70), *annotation["segments_info"][1:]]
    with pytest.raises(PanopticFormatError, match=r"segments_info\[0\]: segment id 1180591620717411303424 is out of "
                                                  r"range \(it must fit in a signed 64-bit integer\)"):
        panoptic_from_annotation({**annotation, "segments_info": records}, paths["png_folder"], CATS)


def test_broken_or_missing_json(written):
    _, paths = written
    with pytest.raises(PanopticFormatError, match="nope.json: annotation file not found"):
        CocoPanoptic(paths["json_path"].with_name("nope.json"))
    paths["json_path"].write_text('{"images": [')
    with pytest.raises(PanopticFormatError, match="panoptic_val.json: not valid JSON"):
        CocoPanoptic(**paths)
    paths["json_path"].write_text("[" * 100_000 + "]" * 100_000)  # valid, but deeper than json's parser goes
    with pytest.raises(PanopticFormatError, match="panoptic_val.json: cannot read the JSON, .* nested too deeply"):
        CocoPanoptic(**paths)
    paths["json_path"].write_text("[]")
    with pytest.raises(PanopticFormatError, match=r"panoptic_val.json: expected a JSON object with the fields"):
        CocoPanoptic(**paths)


# ---------------------------------------------------------------------------------------
# writing: bad samples and interruptions leave the disk as it was
# ---------------------------------------------------------------------------------------
def failing_after(samples, count):
    yield from samples[:count]
    raise RuntimeError("generator failed")


def test_interrupted_write_leaves_nothing(tmp_path):
    root = tmp_path / "coco"
    with pytest.raises(RuntimeError, match="generator failed"):
        write_coco_panoptic(root, "val", failing_after(make_samples(), 2), CATS)
    assert not root.exists() or all_files(root) == []
    assert not coco_panoptic_paths(root, "val")["json_path"].exists()


def test_interrupted_rewrite_keeps_the_old_set(written):
    samples, paths = written
    before = {name: (paths["json_path"].parent.parent / name).read_bytes()
              for name in all_files(paths["json_path"].parent.parent)}
    replacement = [replace(s, image=255 - s.image) for s in samples]
    with pytest.raises(RuntimeError, match="generator failed"):
        write_coco_panoptic(paths["json_path"].parent.parent, "val", failing_after(replacement, 2), CATS)
    root = paths["json_path"].parent.parent
    assert {name: (root / name).read_bytes() for name in all_files(root)} == before
    dataset = CocoPanoptic(**paths)
    np.testing.assert_array_equal(dataset[0].image, samples[0].image)


def test_bad_sample_is_named_and_nothing_is_written(tmp_path):
    samples = make_samples()
    bad = samples[1].panoptic
    bad = PanopticSegmentation(bad.id_map, [replace(bad.segments[0], category_id=99), *bad.segments[1:]])
    samples[1] = replace(samples[1], panoptic=bad)
    with pytest.raises(PanopticFormatError, match=r"sample 101 .*unknown category id 99"):
        write_coco_panoptic(tmp_path, "val", samples, CATS)
    assert all_files(tmp_path) == []


@pytest.mark.parametrize("change, pattern", [
    (lambda s: replace(s, image_id=100), "image id 100 appears twice"),
    (lambda s: replace(s, file_name="000000000000.jpg"), "would overwrite that of image 100"),
    (lambda s: replace(s, file_name="sub/x.png"), "bare file name"),
    (lambda s: replace(s, file_name="x.bmp"), "bare file name"),
    (lambda s: replace(s, image=s.image[:-1]), "image is"),
    (lambda s: replace(s, image=s.image.astype(np.float32)), r"\(H, W, 3\) uint8"),
])
def test_inconsistent_samples_are_refused(tmp_path, change, pattern):
    samples = make_samples()
    samples[1] = change(samples[1])
    with pytest.raises(PanopticFormatError, match=pattern):
        write_coco_panoptic(tmp_path, "val", samples, CATS)
    assert all_files(tmp_path) == []


def test_records_without_area_and_bbox_are_measured(tmp_path):
    """Prediction files may leave area and bbox out; they are measured on the PNG."""
    panoptic = street_scene()
    write_panoptic_png(tmp_path / "a.png", panoptic.id_map)
    records = [{"id": s.id, "category_id": s.category_id, "iscrowd": s.iscrowd} for s in panoptic.segments]
    read = panoptic_from_annotation({"image_id": 1, "file_name": "a.png", "segments_info": records}, tmp_path, CATS)
    assert read.equals(panoptic)
