"""Diagrams drawn from a model's modules, and the three decoder designs drawn from their measured costs.

Every diagram reads its numbers (channels, strides, layer counts, dilations, class
counts) from the model it is given, so a tiny and a full model each draw their own:

* :func:`draw_semantic_fpn` reads Panoptic FPN's semantic branch (``level_strides``,
  ``scale_heads``, ``predictor``, as :class:`panopticlab.models.semantic_fpn.SemanticFPNHead`
  has them) and draws one row per pyramid level: its stages ([conv, GroupNorm, ReLU],
  then a 2x upsampling when the level is coarser than stride 4), the sum, the 1 x 1
  classifier and the final 4x upsampling;
* :func:`draw_upsnet` draws UPSNet (:func:`upsnet_parts`): ResNet-FPN, the instance head,
  the deformable semantic head and the parameter-free panoptic head;
* :func:`draw_panoptic_deeplab` draws Panoptic-DeepLab (:func:`panoptic_deeplab_parts`):
  the dilated encoder, the two decoupled ASPP decoders, the three heads and the
  post-processing;
* :func:`draw_decoder_designs` draws the three ways back to fine features of the Panoptic
  FPN paper from their costs, as
  :func:`panopticlab.models.decoder_designs.decoder_design_costs` measures them.

A module with other parts draws differently: the figure is the module, not a picture of
the paper. Boxes are ``FancyBboxPatch`` es, each with its text (the same ``gid``); every
arrow is an annotation that starts and ends on a box's border.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch
from torch import nn

__all__ = ["semantic_fpn_stages", "draw_semantic_fpn", "Node", "upsnet_parts", "draw_upsnet",
           "panoptic_deeplab_parts", "draw_panoptic_deeplab", "draw_decoder_designs"]

CONV_COLOR = "#9ecae1"
UP_COLOR = "#fdd0a2"
SUM_COLOR = "#c7e9c0"


def semantic_fpn_stages(head) -> dict[str, list[str]]:
    """Level name -> the labels of its layers in order (``"conv 3x3, 128"``, ``"GN + ReLU"``, ``"up 2x"``)."""
    stages = {}
    for name, sequence in head.scale_heads.items():
        labels = []
        for module in sequence.modules():
            if isinstance(module, nn.Conv2d):
                labels.append(f"conv {module.kernel_size[0]}x{module.kernel_size[1]}, {module.out_channels}")
            elif isinstance(module, nn.GroupNorm):
                labels[-1] += f"\nGN({module.num_groups}) + ReLU"
            elif isinstance(module, nn.Upsample):
                labels.append(f"up {int(module.scale_factor)}x")
        stages[name] = labels
    return stages


def _box(ax, x, y, text, color, width=1.5, height=0.7):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                                facecolor=color, edgecolor="0.3"))
    ax.text(x, y, text, ha="center", va="center", fontsize=7)


def draw_semantic_fpn(head, ax=None, num_classes_label: str | None = None):
    """The branch as a diagram: one row per level, coarsest on top, then the sum and the classifier.

    Args:
        head: the semantic branch (``level_strides``, ``scale_heads``, ``predictor``).
        num_classes_label: text for the classifier's output (default: its channel count).

    Returns:
        the Figure.
    """
    stages = semantic_fpn_stages(head)
    levels = list(reversed(list(stages)))  # coarsest (P5) on top
    longest = max(len(labels) for labels in stages.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(2.0 + 1.8 * (longest + 4), 0.9 * len(levels) + 1.2))
    step = 1.8
    sum_x = step * (longest + 1.5)
    for row, name in enumerate(levels):
        y = len(levels) - 1 - row
        stride = head.level_strides[name]
        _box(ax, 0, y, f"{name.upper()}\nstride {stride}", "0.9", width=1.3)
        x = 0
        for label in stages[name]:
            x += step
            _box(ax, x, y, label, UP_COLOR if label.startswith("up") else CONV_COLOR)
            ax.annotate("", (x - 0.78, y), (x - step + 0.78 if x > step else 0.68, y),
                        arrowprops=dict(arrowstyle="->", color="0.4"))
        ax.annotate("", (sum_x - 0.35, (len(levels) - 1) / 2), (x + 0.78, y),
                    arrowprops=dict(arrowstyle="->", color="0.6", linewidth=0.8))
    middle = (len(levels) - 1) / 2
    _box(ax, sum_x, middle, "sum\n(stride 4)", SUM_COLOR, width=0.7)
    classes = num_classes_label or str(head.predictor.out_channels)
    _box(ax, sum_x + step, middle, f"conv 1x1\n-> {classes}", CONV_COLOR)
    _box(ax, sum_x + 2 * step, middle, "up 4x\n(stride 1)", UP_COLOR)
    for start, end in ((sum_x + 0.4, sum_x + step - 0.78), (sum_x + step + 0.78, sum_x + 2 * step - 0.78)):
        ax.annotate("", (end, middle), (start, middle), arrowprops=dict(arrowstyle="->", color="0.4"))
    ax.set_xlim(-1, sum_x + 2 * step + 1)
    ax.set_ylim(-0.8, len(levels) - 0.2)
    ax.set_axis_off()
    ax.set_title("semantic branch: every level to stride 4, summed", fontsize=9)
    return ax.figure


# --- shared drawing parts -------------------------------------------------------------------------
BODY_COLOR = "#d9d9d9"
GROUP_COLOR = "#f4f4f4"
INSTANCE_COLOR = "#fcbba1"
PANOPTIC_COLOR = "#dadaeb"
POST_COLOR = "#fff2ae"
FONT_SIZE = 8
PAD = 0.04  # the rounding pad of every box, in data units: arrows end on the drawn border


@dataclass(frozen=True)
class Node:
    """A box of a diagram: its centre, width and height in data units (the drawn border lies
    :data:`PAD` outside)."""

    x: float
    y: float
    width: float
    height: float

    def edge(self, side: str, at: float | None = None) -> tuple[float, float]:
        """The point of the drawn border on ``side`` (``left``/``right``/``top``/``bottom``), at the
        coordinate ``at`` along it (default its middle)."""
        half_w, half_h = self.width / 2 + PAD, self.height / 2 + PAD
        if side in ("left", "right"):
            return (self.x - half_w if side == "left" else self.x + half_w), (self.y if at is None else at)
        if side in ("top", "bottom"):
            return (self.x if at is None else at), (self.y + half_h if side == "top" else self.y - half_h)
        raise ValueError(f"unknown side {side!r}")


def _node(ax, x, y, text, color, width, height, fontsize=FONT_SIZE, text_y=None, weight="normal",
          text_x=None) -> Node:
    """A box with its text (centred, or hanging from ``text_y``, or centred on ``text_x``); both carry
    the gid ``box<n>``."""
    gid = f"box{sum(1 for p in ax.patches if isinstance(p, FancyBboxPatch))}"
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle=f"round,pad={PAD}",
                                facecolor=color, edgecolor="0.35", linewidth=0.8, gid=gid))
    if text:
        ax.text(x if text_x is None else text_x, y if text_y is None else text_y, text, ha="center",
                va="center" if text_y is None else "top", fontsize=fontsize, gid=gid, fontweight=weight,
                linespacing=1.3)
    return Node(x, y, width, height)


def _link(ax, start: tuple[float, float], end: tuple[float, float], label: str | None = None, rad: float = 0.0,
          color: str = "0.3", label_at: tuple[float, float] | None = None, ha: str = "center", va: str = "bottom"):
    """An arrow from ``start`` to ``end`` (points on boxes' borders: :meth:`Node.edge`), with an
    optional label at ``label_at`` (default a little above its middle; gid ``arrow-label``)."""
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color=color, linewidth=1.0, shrinkA=0, shrinkB=0,
                                mutation_scale=9, connectionstyle=f"arc3,rad={rad}"))
    if label:
        x, y = label_at or ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.06)
        ax.text(x, y, label, fontsize=FONT_SIZE - 0.5, ha=ha, va=va, style="italic", color="0.2", gid="arrow-label",
                linespacing=1.2)


def _caption(ax, x, y, text, va="bottom", size=FONT_SIZE + 1, ha="center"):
    ax.text(x, y, text, ha=ha, va=va, fontsize=size, fontweight="bold", gid="caption")


def _diagram_axes(ax, width: float, height: float, inches_per_unit: float):
    """``ax``, or the axes of a new figure of ``width`` x ``height`` data units (``inches_per_unit``
    each), with those limits and no frame."""
    if ax is None:
        title = 0.4  # inches above the axes for the title
        figure = plt.figure(figsize=(width * inches_per_unit, height * inches_per_unit + title))
        ax = figure.add_axes((0.0, 0.0, 1.0, height * inches_per_unit / (height * inches_per_unit + title)))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return ax


def _chain(values) -> str:
    return " → ".join(str(v) for v in values)


def _listing(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


BODY_NAMES = {"tiny": "TinyResNet", "resnet50": "ResNet-50", "resnet52": "ResNet-52"}


def _body_summary(body, config_name: str | None) -> dict:
    """Name, stage widths and blocks per stage of a ResNet-shaped body (``layer1`` .. ``layer4``)."""
    from ..models.backbones import stage_channels

    return {"name": BODY_NAMES.get(config_name, config_name or type(body).__name__),
            "channels": tuple(int(c) for c in stage_channels(body)),
            "blocks": tuple(len(getattr(body, f"layer{k}")) for k in range(1, 5))}


def _convs(module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def _side(value) -> int:
    return int(value[0] if isinstance(value, (tuple, list)) else value)


def _kernel(conv) -> str:
    return f"{conv.kernel_size[0]}x{conv.kernel_size[1]}"


def _layers(module) -> list[tuple[str, int]]:
    """``(kernel, out_channels)`` of each conv layer of ``module``; a depthwise conv and the
    1x1 after it are one layer, ``"separable 5x5"`` (Panoptic-DeepLab's COCO decoders)."""
    layers, depthwise = [], None
    for conv in _convs(module):
        if conv.groups > 1:
            depthwise = f"separable {_kernel(conv)}"
            continue
        layers.append((depthwise or _kernel(conv), int(conv.out_channels)))
        depthwise = None
    return layers


# --- UPSNet -------------------------------------------------------------------------------------
def upsnet_parts(model) -> dict:
    """What :func:`draw_upsnet` writes, read from a :class:`~panopticlab.models.upsnet.UPSNet`'s modules.

    Returns:
        a dict: ``body`` (``name``, stage ``channels``, ``blocks`` per stage); ``levels``
        (pyramid level -> ``stride``, ``channels``); ``rpn`` (``conv_channels``,
        ``anchors_per_location``, ``anchor_sizes``, ``aspect_ratios``, ``proposals`` kept at
        test time); ``box_head`` (``roi_size``, ``fc`` widths, ``classes`` with background);
        ``mask_head`` (``roi_size``, ``convs`` widths, ``kernel``, ``deconv`` channels,
        ``logit_size``, ``classes``); ``semantic_head`` (``levels`` -> stride, ``layers``:
        ``(in, out)`` of each deformable conv of the shared sub-network, ``kernel``,
        ``concat_channels``, ``classes``, ``num_stuff``, ``num_things``); ``panoptic_head``
        (``stuff`` channels, ``unknown``: whether it has the unknown channel, and the
        detection selection: ``score_threshold``, ``nms_threshold``, ``max_detections``).
    """
    from ..models.deformable import DeformableConv2d

    backbone, rpn, roi_heads, head = model.backbone, model.rpn, model.roi_heads, model.semantic_head
    names = list(backbone.body.return_layers.values())
    if backbone.fpn.extra_blocks is not None:  # P6, max-pooled from the coarsest level
        names.append(f"p{int(names[-1][1:]) + 1}")
    generator = rpn.anchor_generator
    mask_convs = _convs(roi_heads.mask_head)
    deconv = roi_heads.mask_predictor.conv5_mask
    mask_roi = _side(roi_heads.mask_roi_pool.output_size)
    deformable = [m.conv for m in head.subnet.modules() if isinstance(m, DeformableConv2d)]
    selection = model.head_config
    return {
        "body": _body_summary(backbone.body, model.config.detector.backbone.name),
        "levels": {name: {"stride": 2 ** int(name[1:]), "channels": int(backbone.out_channels)} for name in names},
        "rpn": {"conv_channels": _convs(rpn.head.conv)[0].out_channels,
                "anchors_per_location": int(rpn.head.cls_logits.out_channels),
                "anchor_sizes": tuple(s for sizes in generator.sizes for s in sizes),
                "aspect_ratios": tuple(generator.aspect_ratios[0]),
                "proposals": int(rpn._post_nms_top_n["testing"])},
        "box_head": {"roi_size": _side(roi_heads.box_roi_pool.output_size),
                     "fc": tuple(m.out_features for m in roi_heads.box_head.modules() if isinstance(m, nn.Linear)),
                     "classes": int(roi_heads.box_predictor.cls_score.out_features)},
        "mask_head": {"roi_size": mask_roi, "convs": tuple(c.out_channels for c in mask_convs),
                      "kernel": _kernel(mask_convs[0]), "deconv": int(deconv.out_channels),
                      "logit_size": mask_roi * deconv.stride[0],
                      "classes": int(roi_heads.mask_predictor.mask_fcn_logits.out_channels)},
        "semantic_head": {"levels": dict(head.level_strides),
                          "layers": [(int(c.in_channels), int(c.out_channels)) for c in deformable],
                          "kernel": f"{deformable[0].kernel_size[0]}x{deformable[0].kernel_size[1]}",
                          "concat_channels": int(head.predictor.in_channels),
                          "classes": int(head.predictor.out_channels),
                          "num_stuff": int(model.config.num_stuff), "num_things": int(model.config.num_things)},
        "panoptic_head": {"stuff": int(model.config.num_stuff), "unknown": bool(model.config.unknown),
                          "score_threshold": selection.score_threshold, "nms_threshold": selection.nms_threshold,
                          "max_detections": selection.max_detections},
    }


def draw_upsnet(model, ax=None):
    """UPSNet as one network, drawn from ``model``'s modules (:func:`upsnet_parts`).

    Left, the backbone: the ResNet body (stage widths, blocks) and the FPN levels with
    their strides. Above, the instance head: the RPN on every level, the box head and the
    mask head (its convs and the 2x deconv to per-class mask logits). Below, the
    deformable semantic head as a multi-scale cascade: P2-P5 each through the *same*
    stack of deformable convs (one box crossed by four paths: the weights are shared),
    upsampled to stride 4, concatenated, one 1 x 1 classifier over every category.
    Right, the parameter-free panoptic head (its stuff channels, one channel per
    instance, the unknown channel) and the three arrows that feed it: the semantic logits
    X, the selected detections, their mask logits. Every number is read from the model,
    so the tiny and the full model each draw their own.

    Args:
        model: a :class:`~panopticlab.models.upsnet.UPSNet` (on any device, ``meta`` included).
        ax: axes to draw on; default a new figure (13 x 7.5 inches).

    Returns:
        the Figure.
    """
    parts = upsnet_parts(model)
    body, levels, semantic, head = parts["body"], parts["levels"], parts["semantic_head"], parts["panoptic_head"]
    names = list(levels)
    rows = {name: 1.05 + 1.0 * index for index, name in enumerate(names)}  # finest at the bottom
    bottom, fpn_top = min(rows.values()) - 0.6, max(rows.values()) + 0.85
    instance_y = fpn_top + 1.55
    ax = _diagram_axes(ax, 18.0, instance_y + 1.75, 0.62)

    # the backbone: the body, the FPN's levels grouped
    middle = (bottom + fpn_top) / 2
    body_node = _node(ax, 0.95, middle, f"{body['name']}\nbody\n\nstage\nwidths\n"
                      + "\n".join(str(c) for c in body["channels"]) + "\n\nblocks\n"
                      + "-".join(str(b) for b in body["blocks"]), BODY_COLOR, 1.45, fpn_top - bottom)
    fpn_node = _node(ax, 3.2, middle, f"FPN\n{levels[names[0]]['channels']} ch", GROUP_COLOR, 2.0,
                     fpn_top - bottom, text_y=fpn_top - 0.05, weight="bold")
    level_nodes = {name: _node(ax, 3.2, rows[name], f"{name.upper()}  stride {levels[name]['stride']}",
                               BODY_COLOR, 1.7, 0.5) for name in names}
    _link(ax, body_node.edge("right"), fpn_node.edge("left"))

    # the instance head, above the semantic head
    rpn, box, mask = parts["rpn"], parts["box_head"], parts["mask_head"]
    rpn_node = _node(ax, 7.0, instance_y, f"RPN on {names[0].upper()}-{names[-1].upper()}\n"
                     f"conv 3x3 {rpn['conv_channels']}, {rpn['anchors_per_location']} anchors per pixel\n"
                     f"sizes {_listing(rpn['anchor_sizes'])}\nratios {_listing(rpn['aspect_ratios'])}"
                     f" → {rpn['proposals']} proposals", INSTANCE_COLOR, 3.3, 1.35)
    box_node = _node(ax, 11.3, instance_y + 0.85, f"box head: RoIAlign {box['roi_size']}x{box['roi_size']}\n"
                     f"{len(box['fc'])} FC ({_listing(box['fc'])})\n→ {box['classes']} classes (with background)\n"
                     "+ a box per class", INSTANCE_COLOR, 3.3, 1.25)
    convs = mask["convs"]
    conv_text = (f"{len(convs)} x conv {mask['kernel']} {convs[0]}" if len(set(convs)) == 1
                 else f"convs {mask['kernel']} {_listing(convs)}")
    mask_node = _node(ax, 11.3, instance_y - 0.85, f"mask head: RoIAlign {mask['roi_size']}x{mask['roi_size']}\n"
                      f"{conv_text}\ndeconv 2x {mask['deconv']} → {mask['classes']} x "
                      f"{mask['logit_size']}x{mask['logit_size']}\nmask logits (one per class)",
                      INSTANCE_COLOR, 3.3, 1.25)
    _link(ax, fpn_node.edge("top", 3.6), rpn_node.edge("left"), rad=-0.3, label="every level",
          label_at=(3.85, instance_y + 0.05), ha="left")
    _link(ax, rpn_node.edge("right", instance_y + 0.35), box_node.edge("left", instance_y + 0.6),
          label="proposals", label_at=(8.95, instance_y + 0.62), ha="center")
    _link(ax, box_node.edge("bottom"), mask_node.edge("top"), label=" detections",
          label_at=(11.3, instance_y - 0.05), ha="left", va="center")
    _caption(ax, 7.0, instance_y + 0.95, "instance head (Mask R-CNN)")

    # the deformable semantic head
    layers, levels_in = semantic["layers"], list(semantic["levels"])
    sem_rows = [rows[name] for name in levels_in]
    sub_top, sub_bottom = max(sem_rows) + 0.4, min(sem_rows) - 0.4
    sub_middle = (sub_top + sub_bottom) / 2
    subnet = _node(ax, 6.55, sub_middle, f"one sub-network,\nshared by every level:\n\n{len(layers)} x "
                   f"[deformable\nconv {semantic['kernel']} + ReLU]\n\nwidths\n"
                   f"{_chain([layers[0][0]] + [out for _, out in layers])}", CONV_COLOR, 2.5, sub_top - sub_bottom)
    up_x, concat_x = 9.05, 10.65
    concat = _node(ax, concat_x, sub_middle, f"concat\n\n{len(levels_in)} x {layers[-1][1]}\n"
                   f"= {semantic['concat_channels']}\nch\n\nstride\n{min(semantic['levels'].values())}",
                   SUM_COLOR, 1.0, sub_top - sub_bottom)
    finest = min(semantic["levels"].values())
    for name in levels_in:
        y = rows[name]
        _link(ax, level_nodes[name].edge("right"), subnet.edge("left", y))
        factor = semantic["levels"][name] // finest
        if factor > 1:
            up = _node(ax, up_x, y, f"up {factor}x", UP_COLOR, 0.8, 0.4)
            _link(ax, subnet.edge("right", y), up.edge("left"))
            _link(ax, up.edge("right"), concat.edge("left", y))
        else:
            _link(ax, subnet.edge("right", y), concat.edge("left", y))
    classifier = _node(ax, 12.65, sub_middle, f"conv 1x1\n{semantic['concat_channels']} → {semantic['classes']}"
                       f"\n\n{semantic['num_stuff']} stuff\n+ {semantic['num_things']} things", CONV_COLOR, 1.55, 1.6)
    _link(ax, concat.edge("right"), classifier.edge("left"))
    _caption(ax, 8.6, sub_bottom - 0.12, "deformable semantic head", va="top")

    # the panoptic head: its channels, then the argmax, spread over its height
    head_x, head_top, head_bottom = 16.5, instance_y + 1.45, sub_bottom
    head_node = _node(ax, head_x, (head_top + head_bottom) / 2, "panoptic head\n(no weights)", PANOPTIC_COLOR, 2.7,
                      head_top - head_bottom, text_y=head_top - 0.05, weight="bold", fontsize=FONT_SIZE + 1)
    boxes = [(f"{head['stuff']} stuff channels:\nX of each stuff class", 0.75, "white"),
             ("one channel per\ndetection i: X of its\nclass inside its box\n+ its mask logits\n"
              "pasted into the box", 1.4, "white")]
    unknown = "1 unknown channel:\nmax of X over things\n− max over i of X of\ni's class inside box i"
    boxes.append((unknown, 1.25, "white") if head["unknown"]
                 else ("no unknown channel\n(every box kept\nin training)", 1.0, "white"))
    boxes.append(("softmax over the\nchannels; argmax\n→ panoptic"
                  + ("\n(unknown → void)" if head["unknown"] else ""), 1.1, POST_COLOR))
    top, low = head_top - 0.8, head_bottom + 0.15
    gap = (top - low - sum(height for _, height, _ in boxes)) / (len(boxes) - 1)
    for text, height, color in boxes:
        _node(ax, head_x, top - height / 2, text, color, 2.4, height)
        top -= height + gap
    _link(ax, classifier.edge("right"), head_node.edge("left", classifier.y), label="X: logits")
    _link(ax, mask_node.edge("right"), head_node.edge("left", mask_node.y), label="mask\nlogits")
    _link(ax, box_node.edge("right"), head_node.edge("left", box_node.y),
          label=f"score > {head['score_threshold']:g}\nNMS {head['nms_threshold']:g}\n≤ {head['max_detections']}",
          label_at=((box_node.x + box_node.width / 2 + head_x - 1.25) / 2, box_node.y - 0.08), va="top")
    ax.set_title(f"UPSNet: {body['name']}-FPN, an instance head, a deformable semantic head, a parameter-free "
                 "panoptic head", fontsize=FONT_SIZE + 2)
    return ax.figure


# --- Panoptic-DeepLab ---------------------------------------------------------------------------
def _decoder_parts(decoder) -> dict:
    """ASPP and the two fusion stages of a :class:`~panopticlab.models.panoptic_deeplab.DeepLabV3PlusDecoder`."""
    from torchvision.models.segmentation.deeplabv3 import ASPPConv, ASPPPooling

    aspp = decoder.aspp
    return {"aspp": {"in_channels": int(aspp.convs[0][0].in_channels),
                     "dilations": tuple(int(m[0].dilation[0]) for m in aspp.convs if isinstance(m, ASPPConv)),
                     "pooling": any(isinstance(m, ASPPPooling) for m in aspp.convs),
                     "channels": int(aspp.project[0].out_channels)},
            "stages": [{"feature": name, "in_channels": int(decoder.project[name][0].in_channels),
                        "projection": int(decoder.project[name][0].out_channels),
                        "convs": tuple(width for _, width in _layers(decoder.fuse[name])),
                        "kernel": _layers(decoder.fuse[name])[0][0]} for name in decoder.stages]}


def _head_parts(head) -> dict:
    layers = _layers(head)
    return {"convs": tuple(width for _, width in layers[:-1]), "kernel": layers[0][0], "outputs": layers[-1][1]}


def panoptic_deeplab_parts(model) -> dict:
    """What :func:`draw_panoptic_deeplab` writes, read from a
    :class:`~panopticlab.models.panoptic_deeplab.PanopticDeepLab`'s modules and config.

    Returns:
        a dict: ``encoder`` (``name``, stage ``channels``, ``blocks``, ``output_stride``,
        ``dilations``: stage -> the dilation of each block's 3 x 3 conv, for the dilated
        stages); ``features`` (name -> ``stride``, ``channels``: what the decoders read);
        ``aspp_feature`` (the feature both ASPPs read); ``semantic_decoder`` and
        ``instance_decoder`` (``aspp``: ``in_channels``, ``dilations``, ``pooling``,
        ``channels``; ``stages``: for each low-level feature, its ``projection`` width and
        the fusion ``convs``); ``semantic_head``, ``center_head``,
        ``offset_head`` (``convs`` widths, ``kernel``, ``outputs``); ``postprocess``
        (``threshold``, ``nms_kernel``, ``top_k``, ``stuff_area``: pixels, or ``None`` for
        the merge's limit scaled to the image).
    """
    from ..models.backbones import stage_strides
    from ..models.panoptic_deeplab import FEATURES, HEAD_STRIDE

    config, backbone = model.config, model.backbone
    strides = stage_strides(config.output_stride)
    dilations = {}
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        rates = tuple(int(block.conv2.dilation[0]) for block in getattr(backbone, stage))
        if max(rates) > 1:
            dilations[stage] = rates
    semantic, instance = _decoder_parts(model.semantic_decoder), _decoder_parts(model.instance_decoder)
    channels = {stage["feature"]: stage["in_channels"] for stage in semantic["stages"]}
    channels[FEATURES["layer4"]] = semantic["aspp"]["in_channels"]
    return {
        "encoder": {**_body_summary(backbone, config.backbone.name), "output_stride": int(config.output_stride),
                    "dilations": dilations},
        "features": {feature: {"stride": strides[stage], "channels": channels[feature]}
                     for stage, feature in FEATURES.items()},
        "aspp_feature": FEATURES["layer4"],
        "semantic_decoder": semantic, "instance_decoder": instance,
        "semantic_head": _head_parts(model.semantic_head), "center_head": _head_parts(model.center_head),
        "offset_head": _head_parts(model.offset_head), "head_stride": HEAD_STRIDE,
        "postprocess": {"threshold": config.center_threshold, "nms_kernel": config.nms_kernel, "top_k": config.top_k,
                        "stuff_area": config.stuff_area},
    }


def draw_panoptic_deeplab(model, ax=None):
    """Panoptic-DeepLab drawn from ``model``'s modules (:func:`panoptic_deeplab_parts`).

    Middle row, the encoder: the dilated ResNet (its output stride, the dilations of its
    dilated stages) and the three features the decoders read (stride, channels). Above,
    the semantic decoder; below, the instance decoder: each its own ASPP (1 x 1 branch,
    atrous 3 x 3 branches and their dilations, image pooling, width) on the coarsest
    feature, then two fusion stages that upsample to a finer feature's stride and
    concatenate its 1 x 1 projection (the projection's width) before their 3 x 3 convs. Then
    the three heads (semantic: one logit per class; centre: one heatmap channel;
    offset: two channels) and, right, the post-processing: centres (threshold, max-pool
    NMS, top-k), grouping, majority vote.

    Args:
        model: a :class:`~panopticlab.models.panoptic_deeplab.PanopticDeepLab` (any device).
        ax: axes to draw on; default a new figure.

    Returns:
        the Figure.
    """
    parts = panoptic_deeplab_parts(model)
    encoder, features, post = parts["encoder"], parts["features"], parts["postprocess"]
    semantic_y, feature_y, instance_y = 7.35, 4.6, 1.95
    ax = _diagram_axes(ax, 19.4, semantic_y + 1.0, 0.58)
    aspp_x, columns = 5.2, {}

    # the encoder and its features
    coarsest = parts["aspp_feature"]
    order = [coarsest] + [stage["feature"] for stage in parts["semantic_decoder"]["stages"]]
    for index, name in enumerate(order):
        columns[name] = aspp_x + 2.75 * index
    dilated = "\n".join(f"{stage} dilations {_listing(rates)}" for stage, rates in encoder["dilations"].items())
    _node(ax, (0.2 + columns[order[-1]] + 1.15) / 2, feature_y,
          f"encoder\n{encoder['name']}\nblocks {'-'.join(str(b) for b in encoder['blocks'])}\n"
          f"output stride {encoder['output_stride']}\n{dilated or 'no dilation'}", BODY_COLOR,
          columns[order[-1]] + 0.95, 1.9, text_x=2.0)
    feature_nodes = {name: _node(ax, columns[name], feature_y, f"{name}\nstride {features[name]['stride']}\n"
                                 f"{features[name]['channels']} ch", "white", 1.5, 1.2) for name in order}

    def decoder_row(decoder: dict, y: float, side: str, name: str) -> Node:
        aspp = decoder["aspp"]
        branches = ["1x1", f"3x3 dilations {_listing(aspp['dilations'])}"]
        branches += ["image pooling"] if aspp["pooling"] else []
        node = _node(ax, columns[coarsest], y, f"ASPP ({name})\n" + "\n".join(branches)
                     + f"\n→ {aspp['channels']} ch", CONV_COLOR, 2.3, 1.45)
        _link(ax, feature_nodes[coarsest].edge(side), node.edge("bottom" if side == "top" else "top"))
        stride = features[coarsest]["stride"]
        for stage in decoder["stages"]:
            feature, convs = stage["feature"], stage["convs"]
            factor, stride = stride // features[feature]["stride"], features[feature]["stride"]
            fuse = (f"{len(convs)} x conv {stage['kernel']} {convs[0]}" if len(set(convs)) == 1
                    else f"convs {stage['kernel']} {_listing(convs)}")
            resize = f"up {factor}x → stride {stride}" if factor > 1 else f"at stride {stride}"
            fused = _node(ax, columns[feature], y, f"{resize}\nconcat {feature} 1x1 → {stage['projection']}\n{fuse}",
                          SUM_COLOR, 2.3, 1.45)
            _link(ax, node.edge("right"), fused.edge("left"))
            _link(ax, feature_nodes[feature].edge(side), fused.edge("bottom" if side == "top" else "top"))
            node = fused
        _caption(ax, 2.0, y, f"{name}\ndecoder", va="center")
        return node

    def head_text(title: str, head: dict, output: str) -> str:
        return f"{title}\nconv {head['kernel']} {_listing(head['convs'])}\nconv 1x1 → {head['outputs']}: {output}"

    heads_x = columns[order[-1]] + 2.75
    semantic_end = decoder_row(parts["semantic_decoder"], semantic_y, "top", "semantic")
    instance_end = decoder_row(parts["instance_decoder"], instance_y, "bottom", "instance")
    semantic_head = _node(ax, heads_x, semantic_y, head_text("semantic head", parts["semantic_head"], "classes"),
                          CONV_COLOR, 2.5, 1.1)
    center_head = _node(ax, heads_x, instance_y + 0.75, head_text("centre head", parts["center_head"], "heatmap"),
                        CONV_COLOR, 2.5, 1.1)
    offset_head = _node(ax, heads_x, instance_y - 0.75, head_text("offset head", parts["offset_head"], "(dy, dx)"),
                        CONV_COLOR, 2.5, 1.1)
    _link(ax, semantic_end.edge("right"), semantic_head.edge("left"))
    _link(ax, instance_end.edge("right"), center_head.edge("left"))
    _link(ax, instance_end.edge("right"), offset_head.edge("left"))
    stride = parts["head_stride"]
    ax.text(heads_x, feature_y, f"each head at stride {stride}, upsampled\n{stride}x to the image; the offsets\n"
            f"then multiplied by {stride} (input pixels)", ha="center", va="center",
            fontsize=FONT_SIZE - 0.5, style="italic", color="0.2", gid="note")

    # the post-processing
    post_x = heads_x + 2.95
    top_k = "all" if post["top_k"] is None else f"top {post['top_k']}"
    centres = _node(ax, post_x, center_head.y + 0.35, f"centres: heatmap\n> {post['threshold']:g}, "
                    f"{post['nms_kernel']}x{post['nms_kernel']}\nmax-pool NMS,\n{top_k}", POST_COLOR, 2.2, 1.25)
    grouping = _node(ax, post_x, offset_head.y - 0.2, "grouping: each\nthing pixel joins\nthe centre nearest\n"
                     "to pixel + offset", POST_COLOR, 2.2, 1.25)
    stuff = "the scaled\nmerge limit" if post["stuff_area"] is None else f"{post['stuff_area']} px"
    vote = _node(ax, post_x, semantic_y - 1.05, f"majority vote: an\ninstance takes its\npixels' most frequent\n"
                 f"class; stuff under\n{stuff} → void\n→ panoptic", POST_COLOR, 2.2, 2.1)
    _link(ax, center_head.edge("right"), centres.edge("left", center_head.y))
    _link(ax, centres.edge("bottom"), grouping.edge("top"))
    _link(ax, offset_head.edge("right"), grouping.edge("left", offset_head.y))
    _link(ax, semantic_head.edge("right"), vote.edge("left", semantic_head.y))
    _link(ax, grouping.edge("right"), vote.edge("right", vote.y - 0.5), rad=0.45)
    _caption(ax, post_x, semantic_y + 0.12, "post-processing")
    ax.set_title(f"Panoptic-DeepLab: a dilated {encoder['name']} (output stride {encoder['output_stride']}), two "
                 "decoupled decoders, three heads", fontsize=FONT_SIZE + 2)
    return ax.figure


# --- three ways back to fine features: drawn from their measured costs ------------------------------
DESIGNS = (("dilated", "(a) dilated backbone"), ("symmetric", "(b) symmetric encoder-decoder"),
           ("fpn", "(c) FPN: asymmetric, lightweight decoder"))
PART_COLORS = {"encoder": BODY_COLOR, "dilation": "#fb6a4a", "symmetric decoder": "#9e9ac8", "FPN": CONV_COLOR,
               "semantic branch": SUM_COLOR}
SHORT_NAMES = ("dilated", "symmetric", "FPN + branch")
STAGE_X = (1.2, 3.55, 5.9, 8.25)  # the four encoder stages' columns in a schematic
BASE, TOP = 1.05, 5.35  # the encoder row stands on BASE; the decoder row hangs from TOP


def _stage_box(ax, x, stride, blocks, color, top=False, thin=False) -> Node:
    """A feature map as a box: as tall as its resolution (1 / stride), as wide as its depth (blocks)."""
    height = 1.8 * 4 / stride
    width = 0.28 if thin else 0.3 + 0.14 * blocks
    y = TOP - height / 2 if top else BASE + height / 2
    return _node(ax, x, y, None, color, width, height)


def _stage_label(ax, x, y, text, va):
    ax.text(x, y, text, ha="center", va=va, fontsize=FONT_SIZE - 0.5, gid="label", linespacing=1.2)


def _encoder_row(ax, stages, colors=None) -> list[Node]:
    nodes = []
    for stage, x in zip(stages, STAGE_X):  # labelled "<channels> ch x <blocks>"
        color = (colors or {}).get(stage["name"], BODY_COLOR)
        node = _stage_box(ax, x, stage["stride"], stage["blocks"], color)
        dilation = f", dil. {stage['dilation']}" if stage["dilation"] > 1 else ""
        _stage_label(ax, x, BASE - 0.12, f"{stage['name']}\n{stage['channels']} ch x {stage['blocks']}\n"
                     f"stride {stage['stride']}{dilation}", "top")
        if nodes:
            _link(ax, nodes[-1].edge("right"), node.edge("left", BASE + min(node.height, nodes[-1].height) / 2))
        nodes.append(node)
    return nodes


def _schematic_axes(ax, title):
    ax.set_xlim(0, 9.6)
    ax.set_ylim(-0.35, 7.3)
    ax.set_axis_off()
    ax.set_title(title, fontsize=FONT_SIZE + 1.5)


def _draw_dilated(ax, design, encoder):
    plain = {stage["name"]: stage["stride"] for stage in encoder["stages"]}
    dilated = [stage["name"] for stage in design["stages"] if stage["dilation"] > 1]
    _encoder_row(ax, design["stages"], {name: PART_COLORS["dilation"] for name in dilated})
    lines = [f"{stage['name']}: stride {plain[stage['name']]} → {stage['stride']}, "
             f"{(plain[stage['name']] // stage['stride']) ** 2}x the positions"
             for stage in design["stages"] if stage["name"] in dilated]
    ax.text(4.7, TOP - 0.2, "strides traded for dilation:\n" + "\n".join(lines), ha="center", va="top",
            fontsize=FONT_SIZE, gid="label", linespacing=1.3)


def _draw_symmetric(ax, design):
    encoder = _encoder_row(ax, design["stages"])
    names = [stage["name"] for stage in design["stages"]]
    previous = encoder[-1]
    for stage in design["decoder_stages"]:
        index = names.index(stage["mirrors"])
        node = _stage_box(ax, STAGE_X[index], stage["stride"], stage["blocks"], PART_COLORS["symmetric decoder"],
                          top=True)
        _link(ax, encoder[index].edge("top"), node.edge("bottom"), color="0.55")  # the skip connection
        start = previous.edge("top") if previous is encoder[-1] else previous.edge("left", TOP - previous.height / 2)
        _link(ax, start, node.edge("right", TOP - min(node.height, previous.height) / 2))
        _stage_label(ax, STAGE_X[index], TOP + 0.12, f"{stage['channels']} ch x {stage['blocks']}\n"
                     f"stride {stage['stride']}", "bottom")
        previous = node


def _draw_fpn(ax, design):
    encoder = _encoder_row(ax, design["stages"])
    strides = [stage["stride"] for stage in design["stages"]]
    levels = sorted(design["levels"], key=lambda level: -level["stride"])  # coarse to fine
    branch = _node(ax, 4.7, TOP + 1.05, f"semantic branch: each level to stride {min(strides)}, summed "
                   f"({design['branch_channels']} ch)\n→ conv 1x1 → {design['classes']} classes",
                   PART_COLORS["semantic branch"], 8.6, 0.62, fontsize=FONT_SIZE - 0.5)
    previous = None
    for level in levels:
        index = strides.index(level["stride"])
        node = _stage_box(ax, STAGE_X[index], level["stride"], 1, PART_COLORS["FPN"], top=True, thin=True)
        _link(ax, encoder[index].edge("top"), node.edge("bottom"), color="0.55")  # the lateral connection
        if previous is not None:
            _link(ax, previous.edge("left", TOP - min(node.height, previous.height) / 2),
                  node.edge("right", TOP - min(node.height, previous.height) / 2))
        _link(ax, node.edge("top"), branch.edge("bottom", node.x))
        convs = level["branch_convs"]
        ax.text(node.x + 0.1, (BASE + TOP) / 2 - 0.03, f"{level['name'].upper()}, {level['channels']} ch\n"
                f"{convs} conv{'s' if convs > 1 else ''}", ha="left", va="center", fontsize=FONT_SIZE - 0.5,
                gid="label")
        previous = node


def draw_decoder_designs(costs: dict):
    """The three ways back to fine features, drawn schematically, with their measured costs.

    Top, one schematic per design, from ``costs``
    (:func:`panopticlab.models.decoder_designs.decoder_design_costs`): a box
    per feature map, as tall as its resolution and as wide as its blocks; (a) the dilated
    backbone (dilated stages in red, how many more positions they run at), (b) the
    symmetric encoder-decoder (decoder stages as wide and deep as the encoder's, skip
    connections in grey), (c) FPN (one thin block per level in the top-down pathway,
    lateral connections in grey, the semantic branch on top). Bottom, the measured
    multiply-adds and parameters of each, split into the shared encoder and what each
    design adds.

    Args:
        costs: :func:`~panopticlab.models.decoder_designs.decoder_design_costs`' result.

    Returns:
        the Figure.
    """
    figure = plt.figure(figsize=(12.0, 7.4))
    grid = figure.add_gridspec(2, 6, height_ratios=(2.5, 1.0), hspace=0.25, wspace=0.6, left=0.02, right=0.98,
                               top=0.94, bottom=0.07)
    axes = [figure.add_subplot(grid[0, 2 * k:2 * k + 2]) for k in range(3)]
    for ax, (key, title) in zip(axes, DESIGNS):
        design = costs[key]
        output = f"{design['classes']} classes" if "classes" in design else f"{design['channels']} ch"
        _schematic_axes(ax, f"{title}\noutput: stride {design['output_stride']}, {output}")
    _draw_dilated(axes[0], costs["dilated"], costs["encoder"])
    _draw_symmetric(axes[1], costs["symmetric"])
    _draw_fpn(axes[2], costs["fpn"])
    labels = [f"{title.split(' ', 1)[0]} {name}" for (_, title), name in zip(DESIGNS, SHORT_NAMES)]
    for column, (measure, scale, unit, title) in enumerate(
            (("parts", 1e9, "G", f"multiply-adds, one {costs['size']} x {costs['size']} image (measured)"),
             ("param_parts", 1e6, "M", "parameters (counted)"))):
        ax = figure.add_subplot(grid[1, 3 * column:3 * column + 3])
        seen = set()
        for row, (key, _) in enumerate(DESIGNS):
            left = 0.0
            for part, value in costs[key][measure].items():
                ax.barh(row, value / scale, left=left, color=PART_COLORS[part], edgecolor="0.35", linewidth=0.6,
                        label=None if part in seen else part)
                seen.add(part)
                left += value / scale
            ax.text(left, row, f" {left:.1f} {unit}", va="center", fontsize=FONT_SIZE)
        ax.set_yticks(range(len(DESIGNS)), labels, fontsize=FONT_SIZE)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.2 * max(costs[key]["macs" if measure == "parts" else "params"] for key, _ in DESIGNS) / scale)
        ax.tick_params(labelsize=FONT_SIZE)
        ax.set_xlabel("billions" if unit == "G" else "millions", fontsize=FONT_SIZE)
        ax.set_title(title, fontsize=FONT_SIZE + 1)
        ax.spines[["top", "right"]].set_visible(False)
        if column == 0:
            ax.legend(fontsize=FONT_SIZE - 0.5, loc="lower right", frameon=False)
    return figure
