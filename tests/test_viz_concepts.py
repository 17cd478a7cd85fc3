"""Concept figures follow the objects they draw."""
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.models.pspnet import PSPNetConfig
from panopticlab.postprocess import MergeConfig
from panopticlab.viz import concepts


def test_pyramid_pooling_follows_the_config():
    config = PSPNetConfig.full(num_classes=9)
    labels = concepts.pyramid_pooling_labels(config)
    assert len(labels["branches"]) == 4 and "6x6" in labels["branches"][-1]
    assert "9 classes" in labels["head"] and "x 0.4" in labels["aux"]
    other = concepts.pyramid_pooling_labels(replace(config, bins=(1, 3), pool_channels=64, aux_channels=0))
    assert len(other["branches"]) == 2 and "64" in other["branches"][0] and other["aux"] == ""
    ax = concepts.draw_pyramid_pooling(config)
    texts = [t.get_text() for t in ax.texts]
    assert all(branch in texts for branch in labels["branches"])
    plt.close("all")
    with pytest.raises(ValueError, match="at least one bin"):
        concepts.pyramid_pooling_labels(replace(config, bins=()))


def test_merge_flowchart_writes_the_thresholds():
    merge = MergeConfig(score_threshold=0.7, overlap_threshold=0.3, stuff_area_limit=100)
    labels = concepts.merge_flowchart_labels(merge, 128 * 128)
    assert "score < 0.7?" in labels and "taken fraction > 0.3?" in labels and any("< 100?" in t for t in labels)
    ax = concepts.draw_merge_flowchart(merge, 128 * 128)
    assert set(labels) <= {t.get_text() for t in ax.texts}
    plt.close("all")


def test_mask_rcnn_sketch_follows_the_config():
    from panopticlab.models.mask_rcnn import MaskRCNNConfig

    config = MaskRCNNConfig()
    labels = concepts.mask_rcnn_labels(config)
    assert "strides 4/8/16/32/64" in labels[1] and "28x28 mask" in labels[4] and "at most 100" in labels[5]
    other = replace(config, returned_layers=(2, 3, 4), detection=replace(config.detection, mask_roi_size=7))
    other_labels = concepts.mask_rcnn_labels(other)
    assert "strides 8/16/32/64" in other_labels[1] and "14x14 mask" in other_labels[4]
    ax = concepts.draw_mask_rcnn(config)
    assert set(labels) <= {t.get_text() for t in ax.texts}
    plt.close("all")


def _on_edge(point, box, tol=1e-9):
    """Whether (x, y) lies on the border of a (x, y, width, height) box given by its centre."""
    (px, py), (x, y, w, h) = point, box
    inside = abs(px - x) <= w / 2 + tol and abs(py - y) <= h / 2 + tol
    return inside and (abs(abs(px - x) - w / 2) <= tol or abs(abs(py - y) - h / 2) <= tol)


def _crosses(points, box, shrink=0.02):
    """Whether a polyline enters the interior of a box (sampled along every leg)."""
    x, y, w, h = box
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        t = np.linspace(0, 1, 200)
        xs, ys = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        if np.any((np.abs(xs - x) < w / 2 - shrink) & (np.abs(ys - y) < h / 2 - shrink)):
            return True
    return False


def _inside_axes(ax, artists):
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    outside = []
    for artist in artists:
        box = artist.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1 or box.y1 > frame.y1 + 1:
            outside.append(artist)
    return outside


@pytest.mark.parametrize("bins", [(1,), (1, 2, 3, 6), (1, 2, 3, 6, 8)])
def test_pyramid_pooling_arrows_run_from_box_to_box(bins):
    """Every arrow, the identity path included, starts on the box it leaves and ends on the box it
    feeds, crosses no other box, and the drawing (boxes, texts) stays inside the axes."""
    config = replace(PSPNetConfig.full(num_classes=9), bins=bins)
    layout = concepts.pyramid_pooling_layout(config)
    boxes = layout["boxes"]
    assert len(layout["arrows"]) == 2 * len(bins) + 2
    identity = [points for source, target, points in layout["arrows"] if len(points) > 2]
    assert len(identity) == 1 and [a[:2] for a in layout["arrows"] if len(a[2]) > 2] == [("features", "concat")]
    for source, target, points in layout["arrows"]:
        assert _on_edge(points[0], boxes[source]), (source, target, points[0])
        assert _on_edge(points[-1], boxes[target]), (source, target, points[-1])
        for name, box in boxes.items():
            assert name in (source, target) or not _crosses(points, box), f"{source} -> {target} crosses {name}"

    ax = concepts.draw_pyramid_pooling(config)
    drawn = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(drawn) == len(layout["arrows"])
    ax.figure.canvas.draw()
    for arrow, (_, target, points) in zip(drawn, layout["arrows"]):
        tip = np.asarray(points[-1])
        vertices = arrow.get_path().vertices  # data coordinates, the head included
        assert np.min(np.linalg.norm(vertices - tip, axis=1)) < 0.05, f"an arrow into {target} stops short"
    boxes_drawn = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes_drawn) == len(boxes)
    assert not _inside_axes(ax, boxes_drawn + ax.texts), "part of the diagram lies outside the axes"
    plt.close("all")


def _marker_extents(ax, collection):
    """Display-space (x0, y0, x1, y1) of every marker of a scatter, its edge included."""
    scale = np.array([t[0, 0] for t in collection.get_transforms()])  # marker size in pixels
    scale = np.resize(scale, len(collection.get_offsets()))
    half = scale * np.abs(collection.get_paths()[0].vertices).max()  # unit marker paths reach 0.5
    half += collection.get_linewidths()[0] * ax.figure.dpi / 72 / 2
    centres = ax.transData.transform(collection.get_offsets())
    return np.column_stack([centres - half[:, None], centres + half[:, None]])


def test_sq_vs_rq_draws_every_marker_whole():
    """Categories at RQ = 1 and SQ = 1 (stuff often is) lie wholly inside the axes, clear of the frame."""
    per_class = {c.id: {"tp": 3, "fp": 0, "fn": 0, "rq": 1.0, "sq": 0.9 + 0.01 * k}
                 for k, c in enumerate(CATS) if not c.isthing}
    per_class.update({c.id: {"tp": 2, "fp": 1, "fn": 1, "rq": 0.5 + 0.1 * k, "sq": 1.0 if k == 0 else 0.8}
                      for k, c in enumerate(c for c in CATS if c.isthing)})
    per_class[CATS.thing_ids[-1]] = {"tp": 0, "fp": 0, "fn": 0, "rq": 0.0, "sq": 0.0}  # absent: left out
    ax = concepts.plot_sq_vs_rq(per_class, CATS)
    ax.figure.canvas.draw()
    frame = ax.get_window_extent(ax.figure.canvas.get_renderer())
    clearance = 4 * ax.figure.dpi / 72  # four points between a marker and the frame (the old figure: 2)
    assert len(ax.collections) == len(CATS) - 1
    for collection in ax.collections:
        (x0, y0, x1, y1), = _marker_extents(ax, collection)
        assert x0 > frame.x0 + clearance and x1 < frame.x1 - clearance, collection.get_label()
        assert y0 > frame.y0 + clearance and y1 < frame.y1 - clearance, collection.get_label()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith(CATS[CATS.ids[0]].name) and "RQ 1.00" in labels[-1]
    plt.close("all")
