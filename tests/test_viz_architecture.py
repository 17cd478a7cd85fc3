"""Architecture diagrams drawn from the models' own modules, and the measured decoder costs.

Every diagram must carry the model's numbers (change the config, the drawing changes),
every arrow must start and end on a box, every box's text must fit inside its box, and
the tiny and the full models must draw differently exactly where their configs differ.
Full models are built on the ``meta`` device: the diagrams only read modules, so no
weight is allocated.
"""
import copy

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Annotation
from torch import nn

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.models import panoptic_deeplab, upsnet, zoo
from panopticlab.models.backbones import TinyResNet
from panopticlab.models.decoder_designs import SymmetricDecoder, count_macs, decoder_design_costs
from panopticlab.viz.architecture import (
    draw_decoder_designs,
    draw_panoptic_deeplab,
    draw_semantic_fpn,
    draw_upsnet,
    panoptic_deeplab_parts,
    upsnet_parts,
)


def build(name, **overrides):
    """A model of the table; ``full`` ones on the meta device (no weights allocated)."""
    family, size = name.rsplit("-", 1)
    module = {"upsnet": upsnet, "panoptic-deeplab": panoptic_deeplab}[family]
    if size == "full":
        with torch.device("meta"):
            return module.for_categories(CATS, size, **overrides)
    return module.for_categories(CATS, size, **overrides)


@pytest.fixture(scope="module")
def models():
    return {name: build(name) for name in ("upsnet-tiny", "upsnet-full", "panoptic-deeplab-tiny",
                                           "panoptic-deeplab-full")}


@pytest.fixture(scope="module")
def costs():
    return decoder_design_costs(512)


def box_texts(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts if not isinstance(t, Annotation)]


def drawn(draw, model):
    figure = draw(model)
    texts = box_texts(figure)
    plt.close(figure)
    return texts


def assert_arrows_on_boxes(figure):
    """Every arrow's two ends lie on the drawn border of a box of its axes."""
    arrows = 0
    for ax in figure.axes:
        boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
        for annotation in (t for t in ax.texts if isinstance(t, Annotation) and t.arrow_patch is not None):
            arrows += 1
            for point in (annotation.xyann, annotation.xy):
                assert any(on_border(box, point) for box in boxes), \
                    f"an arrow end at {point} lies on no box of {ax.get_title()!r}"
    assert arrows > 0


def on_border(box, point, tolerance=0.06):
    pad = box.get_boxstyle().pad
    x0, y0 = box.get_x() - pad, box.get_y() - pad
    x1, y1 = box.get_x() + box.get_width() + pad, box.get_y() + box.get_height() + pad
    x, y = point
    inside = x0 - tolerance <= x <= x1 + tolerance and y0 - tolerance <= y <= y1 + tolerance
    distance = min(abs(x - x0), abs(x - x1), abs(y - y0), abs(y - y1))
    return inside and distance <= tolerance


def assert_boxes_apart(figure):
    """Two boxes of one axes are apart, or one holds the other (a group and its members)."""
    for ax in figure.axes:
        boxes = [p.get_bbox() for p in ax.patches if isinstance(p, FancyBboxPatch)]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                apart = a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
                nested = all(a.contains(x, y) for x, y in b.corners()) or \
                    all(b.contains(x, y) for x, y in a.corners())
                same = tuple(a.extents) == tuple(b.extents)
                assert apart or (nested and not same), f"boxes {a.extents} and {b.extents} overlap"


def assert_texts_fit(figure):
    """The text of each box (same gid) lies inside the box as drawn."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    checked = 0
    for ax in figure.axes:
        boxes = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyBboxPatch)}
        for text in ax.texts:
            if text.get_gid() in boxes:
                inner, outer = text.get_window_extent(renderer), boxes[text.get_gid()].get_window_extent(renderer)
                assert (outer.x0 - 1 <= inner.x0 and inner.x1 <= outer.x1 + 1 and outer.y0 - 1 <= inner.y0
                        and inner.y1 <= outer.y1 + 1), f"{text.get_text()!r} overflows its box"
                checked += 1
    assert checked > 5


# --- UPSNet -------------------------------------------------------------------------------------
def test_upsnet_parts_are_read_from_the_modules(models):
    tiny, full = upsnet_parts(models["upsnet-tiny"]), upsnet_parts(models["upsnet-full"])
    assert {name: level["stride"] for name, level in full["levels"].items()} == \
        {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    assert full["body"]["channels"] == (256, 512, 1024, 2048) and full["body"]["blocks"] == (3, 4, 6, 3)
    assert tiny["body"]["channels"] == (32, 64, 128, 256) and tiny["body"]["blocks"] == (1, 1, 1, 1)
    # the published head: three deformable layers, 256 -> 256 -> 128 -> 128, concatenated to 512
    assert full["semantic_head"]["layers"] == [(256, 256), (256, 128), (128, 128)]
    assert full["semantic_head"]["concat_channels"] == 4 * 128
    assert tiny["semantic_head"]["layers"] == [(64, 32), (32, 32)]
    assert full["semantic_head"]["classes"] == len(CATS) == tiny["semantic_head"]["classes"]
    assert full["mask_head"]["convs"] == (256,) * 4 and full["mask_head"]["logit_size"] == 28
    assert tiny["mask_head"]["convs"] == (64, 64) and tiny["mask_head"]["logit_size"] == 14
    assert full["rpn"]["anchor_sizes"] == (32, 64, 128, 256, 512) and full["rpn"]["anchors_per_location"] == 3
    assert full["panoptic_head"]["unknown"] and full["panoptic_head"]["stuff"] == len(CATS.stuff_ids)


def test_upsnet_drawing_changes_with_the_config():
    texts = "\n".join(drawn(draw_upsnet, build("upsnet-tiny", semantic_layers=4, semantic_channels=48,
                                                box_keep_fraction=1.0)))
    assert "4 x [deformable" in texts
    assert "64 → 64 → 64 → 48 → 48" in texts  # layer_widths(64, 48, 4), read from the layers
    assert "4 x 48\n= 192" in texts
    assert "no unknown channel" in texts and "1 unknown channel" not in texts


def test_tiny_and_full_upsnet_differ_where_their_configs_differ(models):
    tiny, full = drawn(draw_upsnet, models["upsnet-tiny"]), drawn(draw_upsnet, models["upsnet-full"])
    joined_tiny, joined_full = "\n".join(tiny), "\n".join(full)
    for small, large in (("2 x [deformable", "3 x [deformable"), ("FPN\n64 ch", "FPN\n256 ch"),
                         ("2 x conv 3x3 64", "4 x conv 3x3 256"), ("TinyResNet", "ResNet-50"),
                         ("64 → 32 → 32", "256 → 256 → 128 → 128"), ("14x14\nmask logits", "28x28\nmask logits")):
        assert small in joined_tiny and small not in joined_full
        assert large in joined_full and large not in joined_tiny
    # the same pyramid strides and the same classes: those boxes are the same
    levels = [f"P{k}  stride {2 ** k}" for k in range(2, 7)]
    assert all(level in tiny and level in full for level in levels)
    assert [t for t in tiny if t.startswith("conv 1x1")][0].split("\n")[2:] == \
        [t for t in full if t.startswith("conv 1x1")][0].split("\n")[2:]


@pytest.mark.parametrize("name", ["upsnet-tiny", "upsnet-full", "panoptic-deeplab-tiny", "panoptic-deeplab-full"])
def test_arrows_end_on_boxes_and_texts_fit(models, name):
    draw = draw_upsnet if name.startswith("upsnet") else draw_panoptic_deeplab
    figure = draw(models[name])
    assert_arrows_on_boxes(figure)
    assert_boxes_apart(figure)
    assert_texts_fit(figure)
    plt.close(figure)


# --- Panoptic-DeepLab ----------------------------------------------------------------------------
def test_panoptic_deeplab_parts_are_read_from_the_modules(models):
    tiny, full = panoptic_deeplab_parts(models["panoptic-deeplab-tiny"]), \
        panoptic_deeplab_parts(models["panoptic-deeplab-full"])
    assert full["features"] == {"res2": {"stride": 4, "channels": 256}, "res3": {"stride": 8, "channels": 512},
                                "res5": {"stride": 16, "channels": 2048}}
    assert full["encoder"]["dilations"] == {"layer4": (2, 4, 8)}  # multi-grid (1, 2, 4) at output stride 16
    assert tiny["encoder"]["dilations"] == {"layer4": (2,)}
    for key, width in (("semantic_decoder", 256), ("instance_decoder", 256)):
        assert full[key]["aspp"] == {"in_channels": 2048, "dilations": (6, 12, 18), "pooling": True,
                                     "channels": width}
    assert [s["projection"] for s in full["instance_decoder"]["stages"]] == [64, 32]
    assert [s["convs"] for s in full["instance_decoder"]["stages"]] == [(128, 128), (128, 128)]
    assert full["semantic_head"] == {"convs": (256, 256), "kernel": "3x3", "outputs": len(CATS)}
    assert full["center_head"]["outputs"] == 1 and full["offset_head"]["outputs"] == 2
    assert full["center_head"]["convs"] == (128, 32)
    assert tiny["semantic_decoder"]["aspp"]["dilations"] == (2, 4, 6)
    assert full["postprocess"]["nms_kernel"] == 7 and full["postprocess"]["top_k"] == 200


def test_panoptic_deeplab_drawing_changes_with_the_config():
    model = build("panoptic-deeplab-tiny", aspp_dilations=(3, 5, 7), low_level_channels=(24, 12), output_stride=8,
                  nms_kernel=9, top_k=50)
    figure = draw_panoptic_deeplab(model)
    assert_boxes_apart(figure)
    assert_texts_fit(figure)
    texts = "\n".join(box_texts(figure))
    plt.close(figure)
    assert "3x3 dilations 3, 5, 7" in texts
    assert "concat res3 1x1 → 24" in texts and "concat res2 1x1 → 12" in texts
    assert "output stride 8" in texts and "layer3 dilations 2" in texts and "layer4 dilations 4" in texts
    # at output stride 8, res5 and res3 share stride 8: no upsampling before the first fusion
    assert "at stride 8\nconcat res3" in texts and "up 2x → stride 4\nconcat res2" in texts
    assert "9x9\nmax-pool NMS,\ntop 50" in texts


def test_tiny_and_full_panoptic_deeplab_differ_where_their_configs_differ(models):
    tiny = "\n".join(drawn(draw_panoptic_deeplab, models["panoptic-deeplab-tiny"]))
    full = "\n".join(drawn(draw_panoptic_deeplab, models["panoptic-deeplab-full"]))
    for small, large in (("3x3 dilations 2, 4, 6", "3x3 dilations 6, 12, 18"), ("res5\nstride 16\n256 ch",
                         "res5\nstride 16\n2048 ch"), ("layer4 dilations 2\n", "layer4 dilations 2, 4, 8"),
                         ("→ 64 ch", "→ 256 ch"), ("the scaled\nmerge limit", "2048 px")):
        assert small in tiny and small not in full
        assert large in full and large not in tiny
    # both heads predict one heatmap channel and two offset channels; both keep the top 200 centres
    for same in ("conv 1x1 → 1: heatmap", "conv 1x1 → 2: (dy, dx)", "top 200", "output stride 16"):
        assert same in tiny and same in full




def test_semantic_fpn_arrows_end_on_boxes():
    with torch.device("meta"):
        head = zoo.build_model("panoptic-fpn-full", CATS).semantic_head
    figure = draw_semantic_fpn(head)
    assert_arrows_on_boxes(figure)
    plt.close(figure)


# --- the decoder designs -------------------------------------------------------------------------
def test_count_macs_counts_one_multiply_add_per_weight_and_output_position():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    macs, output = count_macs(conv, torch.zeros(1, 3, 16, 16))
    assert macs == 3 * 8 * 9 * 16 * 16 and output.shape == (1, 8, 16, 16)
    linear = nn.Linear(10, 4)
    assert count_macs(linear, torch.zeros(5, 10))[0] == 5 * 10 * 4


def test_symmetric_decoder_mirrors_the_encoder_stages():
    body = TinyResNet(widths=(8, 16, 32, 64), blocks=(2, 3, 2, 2))
    stages = [body.layer1, body.layer2, body.layer3, body.layer4]
    decoder = SymmetricDecoder(stages).eval()
    assert [(index, blocks, width) for index, blocks, width in decoder.mirrored] == [(2, 2, 32), (1, 3, 16),
                                                                                      (0, 2, 8)]
    features, x = [], body.stem(torch.rand(1, 3, 64, 64))
    for stage in stages:
        x = stage(x)
        features.append(x)
    with torch.no_grad():
        assert decoder(features).shape == (1, 8, 16, 16)  # back to stride 4, the finest stage's width
    # a stage of one block changes width or stride in that block: it has no block to repeat
    with pytest.raises(ValueError, match="cannot be repeated"):
        SymmetricDecoder([body.layer1, TinyResNet(blocks=(1, 1, 1, 1)).layer2, body.layer3])


def test_decoder_design_costs_order_and_layout(costs):
    dilated, symmetric, fpn, encoder = (costs[k] for k in ("dilated", "symmetric", "fpn", "encoder"))
    assert dilated["macs"] > fpn["macs"] and dilated["macs"] > symmetric["macs"] > encoder["macs"]
    assert fpn["macs"] > encoder["macs"]
    for design in (dilated, symmetric, fpn, encoder):
        assert sum(design["parts"].values()) == design["macs"]
        assert sum(design["param_parts"].values()) == design["params"]
        assert design["parts"]["encoder"] == encoder["macs"]
    # dilation adds no weight: the same ResNet-50, run at more positions
    assert dilated["params"] == encoder["params"] and symmetric["params"] > fpn["params"] > encoder["params"]
    assert [s["stride"] for s in encoder["stages"]] == [4, 8, 16, 32]
    assert [s["stride"] for s in dilated["stages"]] == [4, 8, 8, 8] and dilated["output_stride"] == 8
    assert [s["dilation"] > 1 for s in dilated["stages"]] == [False, False, True, True]
    mirrored = {s["mirrors"]: s for s in symmetric["decoder_stages"]}
    for stage in encoder["stages"][:-1]:  # as wide and as deep as the stage it mirrors, at its stride
        assert (mirrored[stage["name"]]["channels"], mirrored[stage["name"]]["blocks"],
                mirrored[stage["name"]]["stride"]) == (stage["channels"], stage["blocks"], stage["stride"])
    assert symmetric["output_stride"] == fpn["output_stride"] == 4
    assert [level["stride"] for level in fpn["levels"]] == [4, 8, 16, 32]
    assert [level["branch_convs"] for level in fpn["levels"]] == [1, 1, 2, 3]
    assert fpn["classes"] == len(CATS.stuff_ids) + 1 and fpn["branch_channels"] == 128
    # ResNet-50 is about 4.1 G multiply-adds at 224 x 224; 512 x 512 has 5.2 times the pixels
    assert 20e9 < encoder["macs"] < 23e9


def test_decoder_designs_are_drawn_from_the_costs(costs):
    figure = draw_decoder_designs(costs)
    texts = box_texts(figure)
    assert f" {costs['dilated']['macs'] / 1e9:.1f} G" in texts and f" {costs['fpn']['params'] / 1e6:.1f} M" in texts
    assert any("layer4: stride 32 → 8, 16x the positions" in t for t in texts)
    assert_arrows_on_boxes(figure)
    assert_boxes_apart(figure)
    plt.close(figure)
    changed = copy.deepcopy(costs)
    changed["fpn"]["branch_channels"] = 96
    changed["symmetric"]["decoder_stages"][0]["blocks"] = 9
    changed["dilated"]["parts"]["dilation"] *= 2
    figure = draw_decoder_designs(changed)
    texts = box_texts(figure)
    assert any("summed (96 ch)" in t for t in texts) and "1024 ch x 9\nstride 16" in texts
    total = (changed["dilated"]["parts"]["encoder"] + changed["dilated"]["parts"]["dilation"]) / 1e9
    assert f" {total:.1f} G" in texts
    plt.close(figure)


def test_a_separable_decoder_is_drawn_as_one_layer():
    """Panoptic-DeepLab's COCO decoders: a depthwise 5x5 and its 1x1 are one "separable 5x5" layer."""
    import torch

    from panopticlab.data import SYNTHETIC_CATEGORIES
    from panopticlab.models.panoptic_deeplab import PanopticDeepLab, PanopticDeepLabConfig
    from panopticlab.viz.architecture import panoptic_deeplab_parts

    with torch.device("meta"):
        model = PanopticDeepLab(PanopticDeepLabConfig.full(len(SYNTHETIC_CATEGORIES), "coco"), SYNTHETIC_CATEGORIES)
    parts = panoptic_deeplab_parts(model)
    assert parts["semantic_head"]["kernel"] == "separable 5x5" and len(parts["semantic_head"]["convs"]) == 1
    assert all(stage["kernel"] == "separable 5x5" and len(stage["convs"]) == 1
               for stage in parts["semantic_decoder"]["stages"])
    assert parts["center_head"]["kernel"] == "3x3"  # detectron2 keeps the centre head's two 3x3 convs
