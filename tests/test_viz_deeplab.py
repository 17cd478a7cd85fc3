"""Panoptic-DeepLab figures draw what they are given: arrows end at the votes, centres where found,
grid cells hold the PQ of their setting."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.quiver import Quiver
from test_deeplab_rescore import two_discs

from panopticlab import viz
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.postprocess import center_setting_grid, rescore_deeplab


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
