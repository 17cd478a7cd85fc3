"""UPSNet's figures: every channel of the head is drawn, the argmax colours follow the
channels, and the deformable taps land where the offsets say."""

import numpy as np
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.postprocess.upsnet import semantic_layout, unified_panoptic
from panopticlab.viz import (
    panoptic_channels,
    show_deformable_offsets,
    show_panoptic_logits,
    tap_positions,
)
from panopticlab.viz.colors import category_color
from panopticlab.viz.upsnet import INSTANCE_PALETTE, UNKNOWN_COLOR, _argmax_colors


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
    assert names[len(CATS.stuff_ids)].startswith("instance 0: disc") and names[-1] == "unknown"
    np.testing.assert_allclose(channels[len(CATS.stuff_ids) + 1][1], result.x_mask[1] + result.y_mask[1])
    without, _ = head_result(unknown=False)
    assert [t for t, _ in panoptic_channels(without, stuff, CATS)][-1] != "unknown"


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
    assert len(fig.axes[0].collections) == 4  # two grids and two sample sets


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
