"""UPSNet's figures: every channel of the head is drawn, the argmax colours follow the
channels, and the deformable taps land where the offsets say."""

import matplotlib.colors as mcolors
import numpy as np
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.models.upsnet_head import unified_panoptic
from panopticlab.postprocess.upsnet import semantic_layout
from panopticlab.viz import (
    panoptic_channels,
    show_deformable_offsets,
    show_panoptic_logits,
    tap_positions,
)
from panopticlab.viz.colors import INSTANCE_PALETTE, category_color
from panopticlab.viz.upsnet import UNKNOWN_COLOR, UNKNOWN_FRAME, _argmax_colors, instance_windows


def head_result(unknown=True):
    """Two instances (a disc and a box) on stuff, 32 x 32, with a thing area no box covers."""
    layout = semantic_layout(CATS)
    logits = torch.zeros(len(layout), 32, 32)
    logits[0] = 1.0                                    # the first stuff class everywhere
    logits[layout.index(1), 2:12, 2:12] = 5.0          # a disc
    logits[layout.index(2), 16:28, 16:28] = 5.0        # a box
    logits[layout.index(1), 26:31, 0:6] = 6.0          # a disc no detection explains -> unknown
    boxes = torch.tensor([[2.0, 2.0, 12.0, 12.0], [16.0, 16.0, 28.0, 28.0]])
    mask_logits = torch.full((2, 14, 14), 3.0)
    result = unified_panoptic(logits, boxes, torch.tensor([0.9, 0.8]), torch.tensor([1, 2]), mask_logits, CATS,
                              unknown=unknown)
    return result, logits[:len(CATS.stuff_ids)].numpy()


def test_every_channel_in_order():
    result, stuff = head_result()
    channels = panoptic_channels(result, stuff, CATS, instance_categories=[1, 2])
    names = [title for title, _ in channels]
    assert len(channels) == len(CATS.stuff_ids) + 2 + 1
    assert names[0] == f"channel 0: stuff {CATS.name(CATS.stuff_ids[0])}"
    assert names[len(CATS.stuff_ids)].startswith(f"channel {len(CATS.stuff_ids)}: instance 0: disc")
    assert names[-1] == f"channel {len(channels) - 1}: unknown"
    np.testing.assert_allclose(channels[len(CATS.stuff_ids) + 1][1], result.x_mask[1] + result.y_mask[1])
    without, _ = head_result(unknown=False)
    assert not [t for t, _ in panoptic_channels(without, stuff, CATS)][-1].endswith("unknown")


def test_argmax_colours_follow_the_channels():
    result, _ = head_result()
    colors = _argmax_colors(result, CATS, INSTANCE_PALETTE)
    assert tuple(colors[5, 5]) == INSTANCE_PALETTE[0]                  # the disc's channel
    assert tuple(colors[20, 20]) == INSTANCE_PALETTE[1]                # the box's channel
    assert tuple(colors[28, 2]) == UNKNOWN_COLOR                       # the unexplained disc
    assert tuple(colors[14, 30]) == category_color(CATS, CATS.stuff_ids[0])


def test_figures_draw_and_reject_bad_input():
    result, stuff = head_result()
    image = np.zeros((32, 32, 3), np.uint8)
    fig = show_panoptic_logits(image, result, stuff, CATS, instance_categories=[1, 2])
    assert len([ax for ax in fig.axes if ax.images]) == 1 + len(stuff) + 2 + 1 + 1
    with pytest.raises(ValueError, match="stuff logits"):
        show_panoptic_logits(image, result, stuff[:2], CATS)
    with pytest.raises(ValueError, match="instance categories"):
        panoptic_channels(result, stuff, CATS, instance_categories=[1])
    offsets = np.zeros((18, 8, 8))
    fig = show_deformable_offsets(image, offsets, [(2, 2), (5, 5)], stride=4)
    assert [c.get_gid() for c in fig.axes[0].collections] == ["plain-halo", "plain", "samples"] * 2


def test_tap_positions():
    offsets = np.zeros((18, 6, 6))
    regular, sampled = tap_positions(offsets, (2, 3))
    np.testing.assert_array_equal(regular, sampled)                    # zero offsets: the plain grid
    assert regular[0].tolist() == [1, 2] and regular[4].tolist() == [2, 3] and regular[8].tolist() == [3, 4]
    offsets[2, 2, 3], offsets[3, 2, 3] = 0.5, -1.5                     # tap 1 (top middle): dy, dx
    _, sampled = tap_positions(offsets, (2, 3))
    assert sampled[1].tolist() == [1.5, 1.5]
    np.testing.assert_array_equal(np.delete(sampled, 1, 0), np.delete(regular, 1, 0))
    assert tap_positions(offsets, (2, 3), dilation=2)[0][0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="18"):
        tap_positions(np.zeros((9, 6, 6)), (0, 0))
    with pytest.raises(ValueError, match="outside"):
        tap_positions(offsets, (6, 0))


def small_instances_result():
    """A 96 x 96 image whose two instances are small (a 6 x 6 disc, a 5 x 4 box in a corner)."""
    layout = semantic_layout(CATS)
    logits = torch.zeros(len(layout), 96, 96)
    logits[0] = 1.0
    logits[layout.index(1), 40:46, 50:56] = 6.0
    logits[layout.index(2), 90:95, 0:4] = 6.0
    boxes = torch.tensor([[50.0, 40.0, 56.0, 46.0], [0.0, 90.0, 4.0, 95.0]])
    result = unified_panoptic(logits, boxes, torch.tensor([0.9, 0.7]), torch.tensor([1, 2]),
                              torch.full((2, 14, 14), 3.0), CATS)
    return result, logits[:len(CATS.stuff_ids)].numpy()


def _visible(ax, array):
    """The part of a (H, W) array inside the axis' limits (imshow's pixel centres)."""
    (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
    return array[int(np.ceil(y0)):int(np.floor(y1)) + 1, int(np.ceil(x0)):int(np.floor(x1)) + 1]


def test_logit_panels_name_their_channel_and_show_the_instance():
    """Each panel says which channel it is, is framed in that channel's argmax colour, and a
    small instance fills a visible share of its panel instead of a few pixels on a blank one."""
    result, stuff = small_instances_result()
    fig = show_panoptic_logits(np.zeros((96, 96, 3), np.uint8), result, stuff, CATS, instance_categories=[1, 2])
    channels = panoptic_channels(result, stuff, CATS, instance_categories=[1, 2])
    panels = fig.axes[1:1 + len(channels)]
    bound = max(image.norm.vmax for ax in panels for image in ax.images)
    palette = np.array([CATS[c].color for c in result.layout[:result.num_stuff]] + list(INSTANCE_PALETTE[:2]))
    for k, (ax, (title, logits)) in enumerate(zip(panels, channels)):
        shown = ax.get_title()
        assert shown.startswith(f"channel {k}") and title.split(": ", 1)[1] in shown.replace("\n", ": ")
        frame = np.array(mcolors.to_rgb(ax.spines["top"].get_edgecolor())) * 255
        expected = palette[k] if k < len(palette) else UNKNOWN_FRAME
        np.testing.assert_allclose(frame, expected, atol=1)
        assert ax.spines["top"].get_linewidth() >= 2
    for i, category in enumerate(("disc", "box")):
        ax = panels[result.num_stuff + i]
        assert f"instance {i}" in ax.get_title() and category in ax.get_title() and "crop" in ax.get_title()
        visible = _visible(ax, result.x_mask[i] + result.y_mask[i])
        strong = np.abs(visible) > 0.1 * bound
        assert strong.mean() > 0.1, f"instance {i}: {strong.mean():.1%} of its panel shows it"
        assert strong.sum() == (np.abs(result.x_mask[i] + result.y_mask[i]) > 0.1 * bound).sum(), "all of it"
    whole = show_panoptic_logits(np.zeros((96, 96, 3), np.uint8), result, stuff, CATS, crop=False)
    ax = whole.axes[1 + result.num_stuff]
    assert "crop" not in ax.get_title() and "class not given" in ax.get_title()
    assert (np.abs(_visible(ax, result.x_mask[0] + result.y_mask[0])) > 0.1 * bound).mean() < 0.01, \
        "uncropped, the instance is a speck: the case the crop is for"


def test_instance_windows_hold_the_box():
    result, _ = small_instances_result()
    (disc, box) = instance_windows(result)
    assert disc[0] <= 40 and disc[1] >= 46 and disc[2] <= 50 and disc[3] >= 56
    assert disc[1] - disc[0] == disc[3] - disc[2] == 12                     # square, at least min_size
    assert box == (84, 96, 0, 12)                                            # moved inside the image
    assert instance_windows(result, min_size=96)[0] == (0, 96, 0, 96)


def _luminance(rgb):
    r, g, b = np.asarray(rgb, float)[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("grey", [20, 128, 235])
def test_deformable_taps_show_on_any_image(grey):
    """The plain taps stand out from dark, mid and light pixels (one of their two rings contrasts
    by at least 0.35 in luminance), the samples have an edge that does too, and the panel is large."""
    image = np.full((64, 64, 3), grey, np.uint8)
    fig = show_deformable_offsets(image, np.ones((18, 8, 8)), [(3, 3)], stride=8)
    assert fig.get_figwidth() >= 6
    background = grey / 255
    by_gid = {c.get_gid(): c for c in fig.axes[0].collections}
    rings = [_luminance(c.get_edgecolor()[0]) for c in (by_gid["plain-halo"], by_gid["plain"])]
    assert max(abs(r - background) for r in rings) >= 0.35, rings
    assert by_gid["plain"].get_linewidths()[0] >= 1.5 and by_gid["plain"].get_sizes()[0] >= 40
    samples = by_gid["samples"]
    contrast = [abs(_luminance(c) - background) for c in (samples.get_facecolor()[0], samples.get_edgecolor()[0])]
    assert max(contrast) >= 0.35
