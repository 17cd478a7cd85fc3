"""Panoptic-DeepLab figures draw what they are given: arrows end at the votes, centres where found,
grid cells hold the PQ of their setting."""
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.quiver import Quiver
from test_deeplab_rescore import two_discs

from panopticlab import viz
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.engine.center_analysis import center_setting_grid, rescore_deeplab
from panopticlab.viz.deeplab import outvoted_pixels

BOX = 2


@pytest.fixture
def scene():
    truth, maps = two_discs()
    result = rescore_deeplab([(truth, maps)], CATS, stuff_area=0).merged[0]
    image = np.full((*maps.semantic.shape, 3), 128, np.uint8)
    return truth, maps, result, image


def test_offset_arrows_end_at_the_votes(scene):
    _, maps, result, _ = scene
    fig, ax = plt.subplots()
    mask = maps.semantic == 1
    drawn = viz.draw_offsets(ax, maps.offsets, mask, step=2)
    quiver = next(c for c in ax.collections if isinstance(c, Quiver))
    starts = quiver.get_offsets()
    assert drawn == len(starts) == mask[1::2, 1::2].sum()
    ends = starts + np.stack([quiver.U, quiver.V], axis=1)
    votes = result.votes  # (2, H, W) (y + dy, x + dx)
    rows, cols = starts[:, 1].astype(int), starts[:, 0].astype(int)
    np.testing.assert_allclose(ends[:, 0], votes[1][rows, cols], atol=1e-5)
    np.testing.assert_allclose(ends[:, 1], votes[0][rows, cols], atol=1e-5)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        viz.draw_offsets(ax, maps.offsets[:1], step=2)
    with pytest.raises(ValueError, match="step"):
        viz.draw_offsets(ax, maps.offsets, step=0)


def test_figures_show_the_centres_found(scene):
    _, maps, result, image = scene
    fig = viz.show_deeplab_outputs(image, maps.semantic, maps.center_heatmap, result, CATS, step=4)
    heatmap_axis = fig.axes[2]
    marks = heatmap_axis.collections[0].get_offsets()  # (x, y)
    np.testing.assert_array_equal(np.asarray(marks)[:, ::-1], result.centers)
    assert "2 centres" in heatmap_axis.get_title()
    steps = viz.show_grouping_steps(image, maps.semantic, result, CATS)
    assert [ax.get_title().split(".")[0] for ax in steps.axes[:4]] == ["1", "2", "3", "4"]
    assert "2 non-empty instances" in steps.axes[1].get_title()
    rescored = viz.show_rescored(image, maps.center_heatmap, result, CATS, title="t")
    assert rescored.axes[0].get_title() == "2 centres"


def test_top_down_panel_counts_the_detections_it_draws(scene):
    truth, maps, result, image = scene
    masks = np.stack([truth.id_map == 1, truth.id_map == 2]).astype(np.float32)
    detections = {"boxes": np.array([[4, 5, 15, 16], [15, 5, 26, 16]], float), "scores": np.array([0.9, 0.3]),
                  "category_ids": np.array([1, 1]), "masks": masks}
    top_down = type("Prediction", (), {"detections": detections, "panoptic": truth})()
    fig = viz.show_top_down_vs_bottom_up(image, top_down, result, CATS, maps.center_heatmap)
    assert "detect 1 boxes" in fig.axes[0].get_title()  # the 0.3 detection is below the merge's 0.5
    assert "2 centres" in fig.axes[2].get_title()


def test_grid_cells_hold_their_settings_pq(scene):
    truth, maps, _, _ = scene
    grid = center_setting_grid([(truth, maps)], CATS, [0.1, 0.7], [7, 23], stuff_area=0)
    fig = viz.plot_center_grid(grid, marked=(0.1, 7))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [f"{100 * grid[(t, k)]['All']['pq']:.1f}" for t in (0.1, 0.7) for k in (7, 23)]
    things = [float(t.get_text()) for t in fig.axes[1].texts]  # the colour bars come after the panels
    assert things == [100.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="empty"):
        viz.plot_center_grid({})


def test_vote_dots_are_visible(scene):
    """Each vote is an opaque dot at least a pixel and a half wide with a dark rim, over a light
    background, drawn above the image: a cloud of votes reads as a solid blob, not a haze."""
    _, maps, result, image = scene
    fig = viz.show_grouping_steps(image, maps.semantic, result, CATS)
    ax = fig.axes[0]
    votes = next(c for c in ax.collections if c.get_gid() == "votes")
    assert len(votes.get_offsets()) == int((result.instance_map > 0).sum())
    canvas = FigureCanvasAgg(fig)  # the figure is detached from pyplot: give it a canvas that renders
    canvas.draw()
    panel = ax.get_window_extent(canvas.get_renderer())
    points_per_pixel = panel.width / fig.dpi * 72 / image.shape[1]
    diameter = np.sqrt(votes.get_sizes()[0])  # points
    assert diameter >= 1.2 * points_per_pixel and diameter >= 2.5, (diameter, points_per_pixel)
    faces = votes.get_facecolor()
    assert faces[:, 3].min() >= 0.9 and (votes.get_alpha() is None or votes.get_alpha() >= 0.9)
    rim = votes.get_edgecolor()[0]
    assert votes.get_linewidths()[0] > 0 and 0.2126 * rim[0] + 0.7152 * rim[1] + 0.0722 * rim[2] < 0.3
    background = ax.images[0].get_array()
    assert np.asarray(background).min() >= 0.5 * np.asarray(background).max(), "the image is light under the votes"
    assert votes.get_zorder() > ax.images[0].get_zorder()


def _mislabelled(scene):
    """The two-disc scene with a semantic map that is wrong on 9 pixels of disc A (a minority)
    and on 77 of the 121 pixels of disc B (a majority): both are called "box"."""
    truth, maps = two_discs()
    semantic = maps.semantic.copy()
    semantic[6:9, 5:8] = BOX                 # 9 scattered wrong pixels inside A
    semantic[5:16, 15:22] = BOX              # most of B
    wrong = replace(maps, semantic=semantic)
    result = rescore_deeplab([(truth, wrong)], CATS, stuff_area=0).merged[0]
    return truth, wrong, result


def test_outvoted_pixels_fix_a_minority_and_spread_a_majority(scene):
    """The vote makes each instance's label consistent: it fixes the wrong minority of A and
    imposes B's wrong majority on B's right pixels."""
    truth, maps, result = _mislabelled(scene)
    categories = {s.id: s.category_id for s in result.panoptic.segments}
    at = result.panoptic.id_map
    assert categories[at[10, 9]] == 1 and categories[at[10, 20]] == BOX
    outvoted = outvoted_pixels(maps.semantic, result)
    expected = np.zeros_like(outvoted)
    expected[6:9, 5:8] = True                # A: box pixels outvoted by disc (fixed)
    expected[5:16, 22:26] = True             # B: the right disc pixels outvoted by box (broken)
    np.testing.assert_array_equal(outvoted, expected)
    image = np.full((*maps.semantic.shape, 3), 128, np.uint8)
    fig = viz.show_grouping_steps(image, maps.semantic, result, CATS)
    assert len(fig.axes) == 4 and f"{expected.sum()} px outvoted" in fig.axes[2].get_title()
    assert fig.axes[2].collections, "the outvoted pixels are outlined"
    with_truth = viz.show_grouping_steps(image, maps.semantic, result, CATS, truth=truth)
    assert len(with_truth.axes) == 5
    assert "fixed 9 px, broke 44" in with_truth.axes[4].get_title()
    with pytest.raises(ValueError, match="shape"):
        outvoted_pixels(maps.semantic[:-1], result)
