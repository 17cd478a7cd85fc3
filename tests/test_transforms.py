"""Augmentations: identities, image/annotation alignment, valid segments, reproducibility."""
import numpy as np
import pytest
import torch
from conftest import random_panoptic
from scipy import ndimage

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticSegmentation, Sample, segment_statistics
from panopticlab.data.transforms import (
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    crop_sample,
    hflip_sample,
    resize_sample,
)

PAD = (7, 8, 9)  # a colour no segment uses


def colour_table(pan):
    """segment id -> a distinct RGB colour, void (id 0) black."""
    rng = np.random.default_rng(123)
    table = np.zeros((int(pan.id_map.max()) + 1, 3), np.uint8)
    table[1:] = rng.integers(20, 236, (len(table) - 1, 3))
    return table


def coloured_sample(seed=0, shape=(36, 48)):
    """A scene whose image colour encodes the segment id of every pixel (void: black)."""
    pan = random_panoptic(np.random.default_rng(seed), shape=shape, num_things=7, void_probability=0.0)
    # a void block rather than scattered void pixels, which leave no interior after shrinking
    pan = PanopticSegmentation.from_id_map(np.where(np.indices(shape)[1] < 3, 0, pan.id_map),
                                           {s.id: s.category_id for s in pan.segments},
                                           {s.id: s.iscrowd for s in pan.segments})
    return Sample(colour_table(pan)[pan.id_map], pan, image_id=seed, file_name=f"{seed}.png"), colour_table(pan)


def assert_same(a: Sample, b: Sample):
    np.testing.assert_array_equal(a.image, b.image)
    assert a.panoptic.equals(b.panoptic)


def assert_valid(sample: Sample):
    sample.panoptic.validate(CATS, source="transformed sample")
    stats = segment_statistics(sample.panoptic.id_map)
    for s in sample.panoptic.segments:
        assert (s.area, s.bbox) == stats[s.id]
    assert sample.image.shape == (*sample.panoptic.shape, 3) and sample.image.dtype == np.uint8


def interior(id_map, width=5):
    """Pixels whose width x width neighbourhood holds a single id: far from any segment
    boundary and from the image border (beyond which a crop may have cut a neighbour)."""
    id_map = id_map.astype(np.int64)
    return (ndimage.maximum_filter(id_map, width, mode="constant", cval=-1)
            == ndimage.minimum_filter(id_map, width, mode="constant", cval=-1))


# ---------------------------------------------------------------------------------------
# identities
# ---------------------------------------------------------------------------------------
def test_flip_twice_is_identity_and_flip_mirrors_boxes():
    sample, _ = coloured_sample(1)
    once = hflip_sample(sample)
    np.testing.assert_array_equal(once.panoptic.id_map, sample.panoptic.id_map[:, ::-1])
    width = sample.panoptic.shape[1]
    for before in sample.panoptic.segments:
        x, y, w, h = before.bbox
        assert once.panoptic.segment(before.id).bbox == (width - x - w, y, w, h)
    assert_same(hflip_sample(once), sample)
    flip = RandomHorizontalFlip(p=1.0)
    assert_same(flip(flip(sample, np.random.default_rng(0)), np.random.default_rng(1)), sample)
    assert_same(RandomHorizontalFlip(p=0.0)(sample, np.random.default_rng(0)), sample)


def test_full_size_crop_is_identity():
    sample, _ = coloured_sample(2)
    h, w = sample.panoptic.shape
    assert_same(crop_sample(sample, 0, 0, h, w), sample)
    for seed in range(5):
        assert_same(RandomCrop((h, w))(sample, np.random.default_rng(seed)), sample)


def test_scale_one_is_identity():
    sample, _ = coloured_sample(3)
    assert_same(RandomScale(1.0, 1.0)(sample, np.random.default_rng(0)), sample)
    assert_same(resize_sample(sample, sample.panoptic.shape), sample)


# ---------------------------------------------------------------------------------------
# alignment of image and id map
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("transform", [hflip_sample,
                                       lambda s: crop_sample(s, 5, 9, 20, 25),
                                       lambda s: crop_sample(s, -4, 30, 50, 30, PAD)])
def test_flip_and_crop_keep_colour_and_id_aligned(transform):
    sample, table = coloured_sample(4)
    out = transform(sample)
    padded = np.all(out.image == PAD, axis=-1)
    np.testing.assert_array_equal(out.image[~padded], table[out.panoptic.id_map][~padded])
    assert np.all(out.panoptic.id_map[padded] == 0)  # padding is void
    assert_valid(out)


def test_padding_crop_places_the_whole_image_and_voids_the_rest():
    sample, _ = coloured_sample(5, shape=(20, 24))
    out = crop_sample(sample, -3, -5, 30, 40, PAD)
    np.testing.assert_array_equal(out.image[3:23, 5:29], sample.image)
    np.testing.assert_array_equal(out.panoptic.id_map[3:23, 5:29], sample.panoptic.id_map)
    outside = np.ones((30, 40), bool)
    outside[3:23, 5:29] = False
    assert np.all(out.panoptic.id_map[outside] == 0) and np.all(out.image[outside] == PAD)
    assert_valid(out)


@pytest.mark.parametrize("size", [(72, 96), (108, 144), (18, 24), (25, 61)])
def test_resize_keeps_colour_and_id_aligned(size):
    sample, table = coloured_sample(6)
    out = resize_sample(sample, size)
    assert out.panoptic.shape == size
    # nearest with half-pixel centres: output pixel i samples input pixel floor((i + 0.5) * in / out)
    (h, w), (new_h, new_w) = sample.panoptic.shape, size
    rows = np.floor((np.arange(new_h) + 0.5) * h / new_h).astype(int)
    cols = np.floor((np.arange(new_w) + 0.5) * w / new_w).astype(int)
    np.testing.assert_array_equal(out.panoptic.id_map, sample.panoptic.id_map[np.ix_(rows, cols)])
    # the bilinear (antialiased) image reaches about in/out input pixels around that one
    reach = int(np.ceil(max(h / new_h, w / new_w, 1)))
    inside = interior(sample.panoptic.id_map, 2 * reach + 3)[np.ix_(rows, cols)]
    assert inside.mean() > 0.2  # the check below looks at a good part of the image
    expected = table[out.panoptic.id_map].astype(int)
    assert np.abs(out.image.astype(int) - expected)[inside].max() <= 1
    assert_valid(out)


@pytest.mark.parametrize("scale", [3, 0.5])
def test_resized_image_and_mask_share_their_centre(scale):
    # a bright square on a dark background; bilinear image and nearest mask must agree on
    # where it lies after resizing (a half-pixel convention mismatch would move the mask)
    id_map = np.ones((40, 40), np.int32)
    id_map[10:22, 14:30] = 2
    pan = PanopticSegmentation.from_id_map(id_map, {1: 11, 2: 1})
    image = np.where(id_map[..., None] == 2, 255, 0).astype(np.uint8).repeat(3, axis=-1)
    out = resize_sample(Sample(image, pan, 0, "square.png"), (round(40 * scale), round(40 * scale)))
    mask_centre = np.argwhere(out.panoptic.id_map == 2).mean(axis=0)
    weight = out.image[..., 0].astype(float)
    image_centre = (np.indices(weight.shape) * weight).sum(axis=(1, 2)) / weight.sum()
    exact_centre = (np.array([15.5, 21.5]) + 0.5) * scale - 0.5  # pixel centres at half-integers
    np.testing.assert_allclose(image_centre, exact_centre, atol=0.05)
    np.testing.assert_allclose(mask_centre, exact_centre, atol=0.3)


def test_large_ids_survive_resizing():
    id_map = np.full((8, 8), 256**3 - 1, np.int32)
    id_map[:, :4] = 256**3 - 2
    pan = PanopticSegmentation.from_id_map(id_map, {256**3 - 1: 11, 256**3 - 2: 12})
    out = resize_sample(Sample(np.zeros((8, 8, 3), np.uint8), pan, 0, "x.png"), (13, 11))
    assert set(np.unique(out.panoptic.id_map).tolist()) == {256**3 - 1, 256**3 - 2}


# ---------------------------------------------------------------------------------------
# random transforms
# ---------------------------------------------------------------------------------------
PIPELINE = Compose([RandomScale(0.5, 2.0), RandomCrop((32, 40), pad_value_image=PAD), RandomHorizontalFlip()])


@pytest.mark.parametrize("seed", range(6))
def test_pipeline_keeps_segments_valid_and_aligned(seed):
    # enlarging only: shrinking can drop thin segments from the id map while their colour
    # still tints the image, which the interior check below cannot tell from misalignment
    # (test_resize_keeps_colour_and_id_aligned covers shrinking)
    pipeline = Compose([RandomScale(1.0, 2.0), *PIPELINE.transforms[1:]])
    sample, table = coloured_sample(seed)
    out = pipeline(sample, np.random.default_rng(seed))
    assert out.panoptic.shape == (32, 40)
    assert_valid(out)
    padded = np.all(out.image == PAD, axis=-1)
    inside = interior(out.panoptic.id_map) & ~ndimage.binary_dilation(padded, iterations=2)
    expected = table[out.panoptic.id_map].astype(int)
    assert np.abs(out.image.astype(int) - expected)[inside].max() <= 1
    assert np.all(out.panoptic.id_map[padded] == 0)
    assert_valid(PIPELINE(sample, np.random.default_rng(seed)))


def test_crop_drops_segments_it_cuts_away():
    sample, _ = coloured_sample(7)
    out = crop_sample(sample, 0, 0, 6, 6)
    present = set(np.unique(out.panoptic.id_map).tolist()) - {0}
    assert {s.id for s in out.panoptic.segments} == present
    assert len(present) < len(sample.panoptic.segments)


def test_same_generator_state_same_result_and_input_untouched():
    sample, _ = coloured_sample(8)
    before = (sample.image.copy(), sample.panoptic.id_map.copy(), list(sample.panoptic.segments))
    a = PIPELINE(sample, np.random.default_rng(42))
    b = PIPELINE(sample, np.random.default_rng(42))
    assert_same(a, b)
    c = PIPELINE(sample, torch.Generator().manual_seed(42))
    d = PIPELINE(sample, torch.Generator().manual_seed(42))
    assert_same(c, d)
    outputs = [PIPELINE(sample, np.random.default_rng(s)) for s in range(6)]
    assert len({o.panoptic.id_map.tobytes() for o in outputs}) > 1
    np.testing.assert_array_equal(sample.image, before[0])
    np.testing.assert_array_equal(sample.panoptic.id_map, before[1])
    assert sample.panoptic.segments == before[2]


def test_random_crop_pads_at_random_positions():
    sample, _ = coloured_sample(9, shape=(20, 24))
    crop = RandomCrop((26, 24), pad_value_image=PAD)
    tops = set()
    for seed in range(40):
        out = crop(sample, np.random.default_rng(seed))
        rows = np.flatnonzero(~np.all(out.image == PAD, axis=(1, 2)))
        tops.add(int(rows[0]))
        np.testing.assert_array_equal(out.image[rows[0]:rows[0] + 20], sample.image)
    assert tops == set(range(7))  # every placement of 20 rows in 26 occurs


def test_random_scale_draws_within_range_and_on_the_step_grid():
    rng = np.random.default_rng(0)
    free = [RandomScale(0.5, 2.0).sample_scale(rng) for _ in range(200)]
    assert 0.5 <= min(free) and max(free) <= 2.0 and max(free) - min(free) > 1.0
    stepped = {round(RandomScale(0.5, 2.0, step=0.25).sample_scale(rng), 9) for _ in range(300)}
    assert stepped == {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}


def test_bad_input_raises_clear_errors():
    sample, _ = coloured_sample(10)
    wrong = Sample(sample.image[:, :-1], sample.panoptic, image_id=17, file_name="17.jpg")
    with pytest.raises(PanopticFormatError, match="image 17 .*17.jpg.* does not match"):
        hflip_sample(wrong)
    with pytest.raises(TypeError, match="Generator"):
        RandomHorizontalFlip()(sample, 3)
    with pytest.raises(ValueError):
        RandomScale(2.0, 1.0)
    with pytest.raises(ValueError):
        RandomCrop(0)
