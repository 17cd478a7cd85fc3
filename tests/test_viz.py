"""Tests of panopticlab.viz: colours, colourised maps, boundaries, label points, overlays, figures.

Scenes are built by hand with numpy; boundaries are cross-checked against
scikit-image's ``find_boundaries`` and the colour shades against ``colorsys`` hues.
"""
import colorsys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from skimage.segmentation import find_boundaries

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticFormatError, PanopticSegmentation, Sample, Segment
from panopticlab.viz import (
    category_color,
    colorize,
    colorize_instances,
    colorize_semantic,
    draw_panoptic,
    instance_colors,
    legend_handles,
    overlay,
    overlay_masks,
    representative_points,
    segment_boundaries,
    segment_colors,
    show_grid,
    show_masks,
    show_panoptic,
    show_side_by_side,
)
from panopticlab.viz.colors import MIN_CATEGORY_DISTANCE

SKY, ROAD, GRASS = 11, 12, 13
DISC, BOX, TRIANGLE, RING = 1, 2, 3, 4


# ---------------------------------------------------------------------------------------
# hand-built scenes
# ---------------------------------------------------------------------------------------
def disc(shape, center, radius):
    rows, cols = np.indices(shape)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def ring(shape, center, inner, outer):
    return disc(shape, center, outer) & ~disc(shape, center, inner)


def make_scene(height=96, width=128, seed=0):
    """An image and its panoptic segmentation: sky, grass, a road, two touching discs,
    a box, a triangle, a ring (whose centre lies in its hole) and a void strip."""
    shape = (height, width)
    rows, cols = np.indices(shape)
    id_map = np.where(rows < height * 0.3, 1, 2).astype(np.int32)  # sky / grass
    id_map[(rows >= height * 0.62) & (rows < height * 0.82)] = 3  # road
    id_map[(rows >= height * 0.82) & (rows < height * 0.82 + 2)] = 0  # void strip
    id_map[disc(shape, (0.45 * height, 0.22 * width), 0.1 * height)] = 10
    # the second disc touches the first: semantic segmentation merges them
    id_map[disc(shape, (0.45 * height, 0.22 * width + 0.19 * height), 0.09 * height)] = 11
    id_map[(rows >= 0.64 * height) & (rows < 0.8 * height) & (cols >= 0.55 * width) & (cols < 0.75 * width)] = 20
    apex_r, base_r, mid_c, half = 0.6 * height, 0.95 * height, 0.15 * width, 0.1 * width
    triangle = (rows <= base_r) & (np.abs(cols - mid_c) <= half * (rows - apex_r) / (base_r - apex_r))
    id_map[triangle] = 40
    id_map[ring(shape, (0.4 * height, 0.8 * width), 0.08 * height, 0.15 * height)] = 30
    category_of = {1: SKY, 2: GRASS, 3: ROAD, 10: DISC, 11: DISC, 20: BOX, 30: RING, 40: TRIANGLE}
    pan = PanopticSegmentation.from_id_map(id_map, category_of)
    rng = np.random.default_rng(seed)
    base = np.zeros((*shape, 3))
    for s in pan.segments:
        base[id_map == s.id] = np.asarray(CATS[s.category_id].color) * 0.8 + 30
    image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return image, pan


def squares_of_one_category(n, category_id=DISC, side=4):
    """n separate side x side squares, all of ``category_id``, on a sky background."""
    width = n * (side + 1) + 1
    id_map = np.full((side + 2, width), 1, np.int32)
    for k in range(n):
        id_map[1:1 + side, 1 + k * (side + 1):1 + k * (side + 1) + side] = 100 + k
    return PanopticSegmentation.from_id_map(id_map, {1: SKY, **{100 + k: category_id for k in range(n)}})


def png_pixels(fig, path):
    fig.savefig(path)
    assert path.stat().st_size > 5_000, "the saved figure is nearly empty"
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


# ---------------------------------------------------------------------------------------
# colours
# ---------------------------------------------------------------------------------------
def test_category_color_and_unknown_category():
    assert category_color(CATS, GRASS) == (107, 142, 35)
    with pytest.raises(PanopticFormatError, match="99"):
        category_color(CATS, 99)


def test_segment_colors_stable_across_calls_and_segment_order():
    _, pan = make_scene()
    first = segment_colors(pan, CATS)
    again = segment_colors(pan, CATS)
    shuffled = PanopticSegmentation(pan.id_map, list(reversed(pan.segments)))
    assert first == again == segment_colors(shuffled, CATS)
    assert set(first) == {s.id for s in pan.segments}
    reseeded = segment_colors(pan, CATS, seed=3)
    assert reseeded[11] != first[11]  # another seed, other shades ...
    assert reseeded[1] == first[1]  # ... but stuff keeps its category colour


def test_stuff_gets_category_colour_and_first_instance_keeps_it():
    _, pan = make_scene()
    colors = segment_colors(pan, CATS)
    for s in pan.segments:
        if not CATS.isthing(s.category_id):
            assert colors[s.id] == CATS[s.category_id].color
    assert colors[10] == CATS[DISC].color  # the first disc, by segment id


@pytest.mark.parametrize("category_id", [DISC, BOX, TRIANGLE, RING])
def test_instances_of_one_category_get_distinct_shades_of_its_hue(category_id):
    pan = squares_of_one_category(40, category_id)
    colors = segment_colors(pan, CATS)
    things = [colors[100 + k] for k in range(40)]
    assert len(set(things)) == 40
    assert colors[1] not in things and (0, 0, 0) not in things
    base_hue = colorsys.rgb_to_hsv(*(np.asarray(CATS[category_id].color) / 255))[0]
    for color in things:
        hue = colorsys.rgb_to_hsv(*(np.asarray(color) / 255))[0]
        assert min(abs(hue - base_hue), 1 - abs(hue - base_hue)) < 0.02, (color, CATS[category_id].color)


def test_shades_never_look_like_another_category():
    # darkening the disc colour (220, 20, 60) by ~46 % gives exactly the ring colour (119, 11, 32)
    colors = instance_colors([DISC] * 60 + [RING], CATS)
    assert colors[-1] == CATS[RING].color  # the only ring keeps its category colour
    others = np.array([c.color for c in CATS if c.id != DISC])
    for color in colors[:60]:
        assert np.abs(others - color).max(axis=1).min() >= MIN_CATEGORY_DISTANCE, color


def test_instance_colors_never_repeat_even_beyond_the_lightness_range():
    colors = instance_colors([BOX] * 600 + [DISC] * 3, CATS, taken=[(0, 0, 0), CATS[BOX].color])
    assert len(set(colors)) == 603
    assert CATS[BOX].color not in colors
    assert colors[600] == CATS[DISC].color


def test_colorize_puts_each_segments_colour_on_its_pixels():
    _, pan = make_scene()
    colors = segment_colors(pan, CATS)
    painted = colorize(pan, CATS, void_color=(1, 2, 3))
    expected = np.empty((*pan.shape, 3), np.uint8)
    expected[:] = (1, 2, 3)
    for s in pan.segments:
        expected[pan.id_map == s.id] = colors[s.id]
    assert painted.dtype == np.uint8 and painted.shape == (*pan.shape, 3)
    np.testing.assert_array_equal(painted, expected)
    assert (pan.id_map == 0).any()


def test_colorize_names_unlisted_ids_and_unknown_categories():
    id_map = np.array([[1, 7], [1, 1]])
    with pytest.raises(PanopticFormatError, match=r"\[7\]"):
        colorize(PanopticSegmentation(id_map, [Segment(1, SKY)]), CATS)
    with pytest.raises(PanopticFormatError, match="segment 7 .*99"):
        colorize(PanopticSegmentation(id_map, [Segment(1, SKY), Segment(7, 99)]), CATS)


def test_colorize_semantic_paints_categories_and_rejects_unknown_values():
    category_map = np.array([[SKY, DISC, 255], [DISC, DISC, SKY]])
    painted = colorize_semantic(category_map, CATS, void_color=(9, 9, 9))
    sky, disc_color = CATS[SKY].color, CATS[DISC].color
    np.testing.assert_array_equal(painted, np.array([[sky, disc_color, (9, 9, 9)], [disc_color, disc_color, sky]],
                                                    np.uint8))
    with pytest.raises(PanopticFormatError, match="42"):
        colorize_semantic(np.array([[SKY, 42]]), CATS)


def test_colorize_instances_shows_things_only():
    _, pan = make_scene()
    painted = colorize_instances(pan, CATS, stuff_color=(50, 60, 70), void_color=(0, 0, 0))
    full = colorize(pan, CATS)
    thing = np.isin(pan.category_map(), CATS.thing_ids)
    stuff = np.isin(pan.category_map(), CATS.stuff_ids)
    np.testing.assert_array_equal(painted[thing], full[thing])
    assert (painted[stuff] == (50, 60, 70)).all()
    assert (painted[pan.id_map == 0] == 0).all()


def test_legend_handles_things_first_with_category_colours():
    handles = legend_handles(CATS)
    assert [h.get_label() for h in handles][:5] == ["disc (thing)", "box (thing)", "triangle (thing)",
                                                     "ring (thing)", "sky (stuff)"]
    assert len(handles) == len(CATS)
    for handle, category in zip(handles, CATS):
        np.testing.assert_allclose(handle.get_facecolor()[:3], np.asarray(category.color) / 255)
    only = legend_handles(CATS, [GRASS, BOX], kind=False)
    assert [h.get_label() for h in only] == ["box", "grass"]
    with pytest.raises(PanopticFormatError, match="77"):
        legend_handles(CATS, [77])


# ---------------------------------------------------------------------------------------
# boundaries and label points
# ---------------------------------------------------------------------------------------
def test_segment_boundaries_on_a_hand_built_map():
    id_map = np.array([[0, 0, 5, 5, 5],
                       [0, 0, 5, 5, 5],
                       [7, 7, 7, 5, 5],
                       [7, 7, 7, 5, 5]])
    # worked out by hand: a pixel is marked when its up/down/left/right neighbour differs
    expected = np.array([[0, 1, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 0],
                         [0, 0, 1, 1, 0]], bool)
    np.testing.assert_array_equal(segment_boundaries(id_map), expected)


@pytest.mark.parametrize("seed", range(4))
def test_segment_boundaries_match_skimage_thick_boundaries(seed):
    rng = np.random.default_rng(seed)
    # blocky random maps: runs of equal ids with edges in every direction
    id_map = np.kron(rng.integers(0, 4, (12, 15)), np.ones((3, 2), int))
    _, pan = make_scene()
    for labels in (id_map, pan.id_map):
        np.testing.assert_array_equal(segment_boundaries(labels), find_boundaries(labels, connectivity=1, mode="thick"))


def test_segment_boundaries_rejects_non_2d_maps():
    with pytest.raises(PanopticFormatError, match=r"\(2, 3, 4\)"):
        segment_boundaries(np.zeros((2, 3, 4), int))


def test_representative_point_of_a_ring_lies_inside_it_not_at_its_centroid():
    shape, center, inner, outer = (61, 61), (30, 30), 10, 22
    annulus = ring(shape, center, inner, outer)
    id_map = np.where(annulus, 4, 9)
    centroid = np.round(np.argwhere(annulus).mean(axis=0)).astype(int)
    assert not annulus[tuple(centroid)]  # the naive label position would sit in the hole
    row, col = representative_points(id_map)[4]
    assert annulus[row, col]
    # the widest disc that fits an annulus is centred halfway across it
    assert abs(np.hypot(row - center[0], col - center[1]) - (inner + outer) / 2) <= 1.5


def test_representative_point_of_squares_is_the_centre_and_keeps_off_the_border():
    id_map = np.zeros((11, 11), int)
    id_map[2:9, 2:9] = 1  # 7x7 square, centre (5, 5)
    id_map[0:3, 9:11] = 2  # a 3x2 corner patch touching the image border
    points = representative_points(id_map)
    assert points[1] == (5, 5)
    assert id_map[points[2]] == 2
    framed = np.ones((11, 11), int)  # one segment covering the image: its centre, not a corner
    assert representative_points(framed) == {1: (5, 5)}
    assert representative_points(id_map, [2]) == {2: points[2]}
    with pytest.raises(PanopticFormatError, match="3"):
        representative_points(id_map, [3])


# ---------------------------------------------------------------------------------------
# overlays
# ---------------------------------------------------------------------------------------
def test_overlay_blends_colours_and_keeps_void_pixels():
    image, pan = make_scene()
    void = pan.id_map == 0
    np.testing.assert_array_equal(overlay(image, pan, CATS, alpha=0.0, contours=False), image)
    opaque = overlay(image, pan, CATS, alpha=1.0, contours=False)
    colors = colorize(pan, CATS)
    np.testing.assert_array_equal(opaque[~void], colors[~void])
    np.testing.assert_array_equal(opaque[void], image[void])
    half = overlay(image, pan, CATS, alpha=0.5, contours=False)
    expected = np.rint((image.astype(float) + colors) / 2)
    assert np.abs(half[~void] - expected[~void]).max() <= 1


def test_overlay_paints_contours_and_labels():
    image, pan = make_scene()
    plain = overlay(image, pan, CATS, contours=False)
    outlined = overlay(image, pan, CATS, contour_color=(255, 0, 255))
    edges = segment_boundaries(pan.id_map)
    assert (outlined[edges] == (255, 0, 255)).all()
    np.testing.assert_array_equal(outlined[~edges], plain[~edges])
    labelled = overlay(image, pan, CATS, contours=False, ids="name")
    changed = np.any(labelled != plain, axis=-1)
    assert changed.any()
    # text sits on the label points: the box's point is inside the changed area's bounding box
    row, col = representative_points(pan.id_map, [20])[20]
    near = changed[max(row - 6, 0):row + 7, max(col - 20, 0):col + 21]
    assert near.any()
    np.testing.assert_array_equal(overlay(None, pan, CATS, contours=False), colorize(pan, CATS))


def test_overlay_accepts_float_images_and_rejects_bad_ones():
    image, pan = make_scene()
    as_float = image / 255.0
    np.testing.assert_array_equal(overlay(as_float, pan, CATS), overlay(image, pan, CATS))
    with pytest.raises(ValueError, match="96x128.*48x128|48x128.*96x128"):
        overlay(image[:48], pan, CATS)
    with pytest.raises(ValueError, match=r"channels first"):
        overlay(image.transpose(2, 0, 1), pan, CATS)
    with pytest.raises(ValueError, match="outside"):
        overlay(as_float * 3, pan, CATS)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, pan, CATS, alpha=1.5)
    with pytest.raises(ValueError, match="ids"):
        overlay(image, pan, CATS, ids="area")


def test_overlay_masks_mixes_colours_where_masks_overlap():
    masks = np.zeros((2, 4, 6), bool)
    masks[0, :, :4] = True
    masks[1, :, 2:] = True
    red, blue = (200, 0, 0), (0, 0, 200)
    out = overlay_masks(None, masks, [red, blue], alpha=0.5)
    # worked by hand: black -> half red = 100; then half blue over that
    np.testing.assert_array_equal(out[0, 0], (100, 0, 0))
    np.testing.assert_array_equal(out[0, 5], (0, 0, 100))
    np.testing.assert_array_equal(out[0, 3], (50, 0, 100))
    with pytest.raises(ValueError, match="2 masks but 1"):
        overlay_masks(None, masks, [red])


def test_draw_panoptic_writes_each_label_inside_its_segment():
    image, pan = make_scene()
    fig = Figure()
    ax = fig.add_subplot()
    draw_panoptic(ax, image, pan, CATS, ids="segment", min_label_area=1)
    written = {int(t.get_text()): t.get_position() for t in ax.texts}
    assert set(written) == {s.id for s in pan.segments}
    for seg_id, (x, y) in written.items():
        assert pan.id_map[int(round(y)), int(round(x))] == seg_id
    names = Figure().add_subplot()
    draw_panoptic(names, image, pan, CATS, ids="name", min_label_area=200)
    big = {s.id for s in pan.segments if s.area >= 200}
    assert sorted(t.get_text() for t in names.texts) == sorted(CATS.name(pan.segment(i).category_id) for i in big)
    assert not names.axison


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def image_data(ax):
    return np.asarray(ax.images[0].get_array(), dtype=np.float64)


def test_show_panoptic_returns_a_non_blank_figure(tmp_path):
    image, pan = make_scene()
    fig = show_panoptic(image, pan, CATS, legend=True, title="scene")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert fig.axes[0].get_title() == "scene" and len(fig.legends) == 1
    assert image_data(fig.axes[0]).std() > 10
    assert png_pixels(fig, tmp_path / "panoptic.png").std() > 10
    own = Figure()
    ax = own.add_subplot()
    assert show_panoptic(image, pan, CATS, ax=ax) is own


def test_show_side_by_side_has_four_panels_where_semantic_merges_touching_discs(tmp_path):
    image, pan = make_scene()
    fig = show_side_by_side(image, pan, CATS)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert [ax.get_title().split(" ")[0] for ax in fig.axes] == ["image", "semantic", "instance", "panoptic"]
    semantic, instance, panoptic = (image_data(ax) for ax in fig.axes[1:])
    inside = ~segment_boundaries(pan.id_map)  # panoptic contours are drawn on the boundaries
    first, second = pan.mask(10) & inside, pan.mask(11) & inside
    assert (semantic[pan.mask(10) | pan.mask(11)] == semantic[first][0]).all()  # one colour for both discs
    for panel in (instance, panoptic):  # two colours, one per disc
        assert (panel[first] == panel[first][0]).all() and (panel[second] == panel[second][0]).all()
        assert not np.array_equal(panel[first][0], panel[second][0])
    for ax in fig.axes:
        assert image_data(ax).std() > 10 and not ax.axison
    assert png_pixels(fig, tmp_path / "side_by_side.png").std() > 10


def test_show_side_by_side_accepts_overlapping_instance_masks(tmp_path):
    image, pan = make_scene()
    masks = np.stack([pan.mask(10), pan.mask(11) | pan.mask(10) & (np.indices(pan.shape)[1] > 25), pan.mask(20)])
    overlap = int((masks.sum(axis=0) > 1).sum())
    assert overlap > 0
    fig = show_side_by_side(image, pan, CATS, masks=masks, labels=[DISC, DISC, BOX])
    assert len(fig.axes) == 4 and f"{overlap} px overlap" in fig.axes[2].get_title()
    assert png_pixels(fig, tmp_path / "side_by_side_masks.png").std() > 10
    with pytest.raises(ValueError, match="3 masks but 2 labels"):
        show_side_by_side(image, pan, CATS, masks=masks, labels=[DISC, DISC])
    with pytest.raises(ValueError, match="without labels"):
        show_side_by_side(image, pan, CATS, masks=masks)


def test_show_grid_has_one_panel_per_sample(tmp_path):
    samples = [Sample(*make_scene(48, 64, seed=k), image_id=k, file_name=f"{k:06d}.png") for k in range(5)]
    fig = show_grid(samples, CATS, ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes] == [s.file_name for s in samples]
    assert all(image_data(ax).std() > 10 for ax in fig.axes)
    assert png_pixels(fig, tmp_path / "grid.png").std() > 10
    with pytest.raises(ValueError, match="at least one"):
        show_grid([], CATS)
    with pytest.raises(ValueError, match="sample 1"):
        show_grid([samples[0], "not a sample"], CATS)


def test_show_masks_counts_and_mixes_overlaps(tmp_path):
    shape = (64, 80)
    masks = np.stack([disc(shape, (32, 28), 16), disc(shape, (32, 48), 16), np.zeros(shape, bool)])
    masks[2, 40:60, 10:30] = True
    overlap = int((masks.sum(axis=0) > 1).sum())
    fig = show_masks(masks, [DISC, DISC, BOX], CATS)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert f"{overlap} pixels" in fig.axes[0].get_title()
    drawn = image_data(fig.axes[0])
    only_first, only_second, both = (32, 14), (32, 62), (32, 38)
    assert not np.array_equal(drawn[both], drawn[only_first])
    assert not np.array_equal(drawn[both], drawn[only_second])
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0: disc", "1: disc", "2: box"]
    assert png_pixels(fig, tmp_path / "masks.png").std() > 10
    with pytest.raises(PanopticFormatError, match="mask 2 .*99"):
        show_masks(masks, [DISC, DISC, 99], CATS)
    with pytest.raises(ValueError, match="0/1"):
        show_masks(masks * 0.7, [DISC, DISC, BOX], CATS)


def test_show_matching_colours_each_outcome(tmp_path):
    from panopticlab.exercises.ch02 import rq_case
    from panopticlab.metrics import match_segments
    from panopticlab.viz.matching import OUTCOME_STYLE, outcome_colors, show_matching

    gt, pred = rq_case()
    matching = match_segments(gt, pred)
    colors = outcome_colors(matching.pred.ids, matching.pred_outcome)
    assert colors[9] == OUTCOME_STYLE[3][1] and colors[8] == OUTCOME_STYLE[1][1] and colors[2] == OUTCOME_STYLE[0][1]
    fig = show_matching(None, gt, pred, matching, CATS)
    assert len(fig.axes) == 2
    assert "3 TP" not in fig.axes[0].get_title() and "4 TP, 2 FN" in fig.axes[0].get_title()
    path = tmp_path / "matching.png"
    fig.savefig(path)
    assert path.stat().st_size > 5000


def test_semantic_fpn_diagram_is_drawn_from_the_module():
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    from panopticlab.models.semantic_fpn import SemanticFPNHead
    from panopticlab.viz.architecture import draw_semantic_fpn, semantic_fpn_stages

    head = SemanticFPNHead(16, 6, SemanticFPNHead.strides_of(["p2", "p3", "p4", "p5"]), channels=32, norm_groups=8)
    stages = semantic_fpn_stages(head)
    assert stages["p2"] == ["conv 3x3, 32\nGN(8) + ReLU"]
    assert stages["p5"] == ["conv 3x3, 32\nGN(8) + ReLU", "up 2x"] * 3
    figure = draw_semantic_fpn(head)
    boxes = [p for p in figure.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == 4 + sum(len(s) for s in stages.values()) + 3  # levels, their stages, sum / classifier / up
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "conv 1x1\n-> 6" in texts
    plt.close(figure)


def test_comparison_figure_leaves_room_for_its_legends():
    from panopticlab.engine.runs import shipped_runs
    from panopticlab.viz import plot_comparison

    records = shipped_runs()
    scores, parts, times = plot_comparison(records).axes
    assert [t.get_text() for t in times.get_xticklabels()] == list(records)
    tallest = max(1000 * (r.inference["network"] + r.inference["postprocess"]) for g in records.values() for r in g)
    assert times.get_ylim()[1] >= 1.15 * tallest and scores.get_ylim()[1] > 100 and parts.get_ylim()[1] > 100


def test_comparison_figure_shows_each_seed_and_the_mean():
    """Chapter 7's figure over seeds: a bar at the mean of each model's runs, a dot per run."""
    from panopticlab.engine.runs import TrainingRun
    from panopticlab.viz import plot_comparison

    def run(seed, pq):
        groups = {group: {"pq": pq, "sq": 0.8, "rq": 0.7} for group in ("All", "Things", "Stuff")}
        return TrainingRun("m", "laptop", seed, {}, {}, 1, groups, inference={"network": 0.01, "postprocess": 0.001})

    scores, _, _ = plot_comparison({"one": [run(0, 0.2), run(1, 0.4), run(2, 0.6)], "two": run(0, 0.5)}).axes
    heights = sorted(round(p.get_height(), 6) for p in scores.patches)
    assert heights == [40.0] * 3 + [50.0] * 3  # PQ, PQ things, PQ stuff: the mean of the seeds
    dots = sorted(float(y) for line in scores.lines if line.get_marker() == "o" for y in line.get_ydata()
                  if np.isfinite(y))
    assert dots == [20.0] * 3 + [40.0] * 3 + [50.0] * 3 + [60.0] * 3  # each seed once per score (NaN: "two" has one)
    labels = sorted((text.get_text(), round(text.xy[1], 6)) for text in scores.texts)
    assert labels == [("40", 60.0)] * 3 + [("50", 50.0)] * 3  # each mean, above its highest run and its sd (20)


def test_loss_curves_get_a_panel_each_because_their_objectives_differ():
    """Chapter 7: a pixel cross-entropy and five detection losses on one axis would compare
    numbers that measure different things; each network's curve gets its own panel, each
    seed's run a line in it."""
    from panopticlab.engine.runs import shipped_runs
    from panopticlab.viz import plot_loss_curves

    records = shipped_runs()
    figure = plot_loss_curves(records)
    first = {name: group[0] for name, group in records.items()}
    networks = [name for run in first.values() for name in run.losses if name.split("/")[-1] == "loss"]
    assert len(figure.axes) == len(networks) == len(records) + 1  # the baseline trains two networks
    for ax in figure.axes:
        assert len(ax.lines) == len(next(iter(records.values()))) and ax.get_yscale() == "log"
    assert any("(pspnet-tiny)" in ax.get_title() for ax in figure.axes)
    with pytest.raises(ValueError, match="no run holds a 'loss_nothing' curve"):
        plot_loss_curves(records, series="loss_nothing")


def test_errors_side_by_side_has_a_legend_entry_for_every_fill_and_outline():
    """Chapter 7's mistakes figure: things and (paler) stuff outcomes, ignored, and the three outlines."""
    from panopticlab.exercises.ch02 import rq_case
    from panopticlab.metrics import error_analysis, match_segments
    from panopticlab.viz import show_errors_side_by_side

    gt, pred = rq_case()
    matching = match_segments(gt, pred)
    figure = show_errors_side_by_side(None, gt, {"model": pred}, {"model": matching},
                                      {"model": error_analysis(matching)}, CATS)
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels[:4] == ["thing: true positive", "thing: false positive", "stuff: true positive",
                          "stuff: false positive"] and len(labels) == 8
    assert not figure.axes[1].texts, "no IoU labels in the small panels"
