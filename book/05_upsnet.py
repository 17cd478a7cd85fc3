# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 5 — UPSNet: a panoptic head instead of a merge rule
#
# Panoptic FPN (chapter 4) shares one backbone between a semantic branch and Mask R-CNN,
# then hands both outputs to chapter 3's heuristic merge: sort the instances by score,
# paste them, fill the rest with stuff. Xiong, Liao, Zhao, Hu, Bai, Yumer and Urtasun
# (Uber ATG, the University of Toronto and the Chinese University of Hong Kong: "UPSNet: A
# Unified Panoptic Segmentation Network", CVPR 2019) move that decision into the network,
# and train everything end to end: one backbone, two light heads for the semantic and the
# instance task, and a panoptic head on top. A **panoptic head** without weights of its own turns the semantic logits
# and the mask logits into one channel per stuff class, one per instance and one
# *unknown* channel; a per-pixel softmax over them is trained with a cross-entropy, and
# the prediction is their argmax. The semantic head is built from **deformable
# convolutions**.
#
# **After this chapter you can**
#
# * build UPSNet's panoptic logits from a semantic map and mask logits, and read them
#   channel by channel;
# * say how the number of instance channels differs between training (ground-truth boxes,
#   70 % of them kept) and prediction (the detections);
# * explain with the RQ formula why predicting "unknown" costs less than a wrong class,
#   and measure what the unknown channel is worth on a trained model;
# * say what a deformable convolution learns, draw its offsets, and show that with zero
#   offsets it is an ordinary convolution;
# * compare UPSNet with chapters 3, 4 and 6 on the same data and evaluator, and find the
#   images where the learned fusion beats the rule.
#
# **Prerequisites:** chapters 2 (PQ, SQ, RQ), 3 (Mask R-CNN, the heuristic merge) and 4
# (a shared backbone with a semantic branch).
#
# **Run time** (measured by `panopticlab book run`): `ci` 20 s and `laptop` 2 min 48 s on two CPU cores;
# `gpu` not yet measured.
# In `ci` four training steps, then the shipped weights; in `laptop` most of the time
# is training the tiny UPSNet from the pretrained tiny backbone.

# %%

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

import panopticlab
from panopticlab import bibliography, data, metrics, viz
from panopticlab.engine import chapter_training, evaluate, head_analysis, pretrained, runs, seconds_per_image
from panopticlab.exercises import ch05
from panopticlab.models import deformable, upsnet, zoo
from panopticlab.postprocess.ablations import ablation_merge

profile = panopticlab.get_profile()
panopticlab.seed_everything(profile.seed)
CATEGORIES = data.SYNTHETIC_CATEGORIES
NUM_STUFF = len(CATEGORIES.stuff_ids)
print(profile)

# %% [markdown]
# ## Why learn the fusion?
#
# The heuristic merge decides overlaps by rules: a more confident instance wins every
# pixel it claims, an instance that overlaps earlier ones too much is dropped, stuff fills
# what is left. The rules never look at the evidence *at a pixel*: a confident box whose
# mask spills onto its neighbour takes the neighbour's pixels, whatever the semantic map
# says there, and the thresholds (score, overlap, stuff area) are tuned by hand on a
# validation set.
#
# UPSNet's head compares logits instead. With X the semantic head's logits over every
# class (stuff first, then things) and, for instance *i* with box B_i and class c_i, its
# mask logits:
#
# * each **stuff** channel is X of that class;
# * each **instance** channel is X_mask_i + Y_mask_i: X_mask_i is X of class c_i inside
#   B_i and 0 outside, Y_mask_i the 28 x 28 mask logits resized into B_i and 0 outside;
# * the **unknown** channel is max over thing classes of X minus max_i X_mask_i.
#
# Where two instances overlap, the one whose mask *and* whose semantic evidence are
# stronger at that pixel wins; where an instance's box covers stuff, the stuff logit
# competes with it. None of this has weights: the head adds a loss (a cross-entropy over
# these channels, against the panoptic ground truth) that trains the semantic head and
# the mask head to produce logits that fuse well.

# %% [markdown]
# ## The network, drawn from its modules
#
# One backbone and four heads. The figure below is drawn from the full model itself:
# `viz.draw_upsnet` reads the channels, strides and layer counts from its modules, so a
# different configuration draws differently.
#
# * **Backbone:** ResNet-50 with an FPN, levels P2-P6.
# * **Instance head:** Mask R-CNN's RPN and RoI heads, unchanged.
# * **Deformable semantic head:** P2-P5 each pass through the *same* stack of deformable
#   convolutions (one box, four paths: the weights are shared). Each is upsampled to
#   stride 4, the four are **concatenated** (Panoptic FPN sums them), and one 1 x 1 conv
#   predicts every category, stuff and things: a multi-scale cascade, where chapter 3's
#   PSPNet gathers its scales by pooling one stride-8 map at several bin sizes.
# * **Panoptic head:** has no weights. Three arrows feed it: the semantic logits X, the
#   selected detections, and their mask logits.
#
# The full model is built for this book's categories, so its classifier has one output per
# category (the number printed below); a COCO model has one per COCO panoptic category (133,
# `SEM_SEG_HEAD.NUM_CLASSES` of detectron2's Panoptic-DeepLab COCO configuration).

# %%
full_network = zoo.build_model("upsnet-full", CATEGORIES)
viz.draw_upsnet(full_network)
plt.show()
parts = {"tiny": viz.architecture.upsnet_parts(zoo.build_model("upsnet-tiny", CATEGORIES)),
         "full": viz.architecture.upsnet_parts(full_network)}
for size, part in parts.items():
    head, mask = part["semantic_head"], part["mask_head"]
    print(f"{size:>4}: FPN {part['levels']['p2']['channels']} ch; mask head {len(mask['convs'])} convs of "
          f"{mask['convs'][0]}; semantic head {len(head['layers'])} deformable layers "
          f"{' -> '.join(str(w) for w in [head['layers'][0][0]] + [o for _, o in head['layers']])}, "
          f"concat {head['concat_channels']} -> {head['classes']} classes")
del full_network

# %%
full = parts["full"]
assert full["semantic_head"]["layers"] == [(256, 256), (256, 128), (128, 128)], "the published COCO head"
assert full["semantic_head"]["concat_channels"] == len(full["semantic_head"]["levels"]) * 128
for part in parts.values():  # every category, stuff first; one stuff channel per stuff class in the panoptic head
    assert part["semantic_head"]["classes"] == NUM_STUFF + len(CATEGORIES.thing_ids)
    assert part["panoptic_head"]["stuff"] == NUM_STUFF and part["panoptic_head"]["unknown"]

# %% [markdown]
# ## Training: eight losses, four heads
#
# One backbone pass feeds four heads, and each head has its losses: the region proposal
# network two, the instance head (Mask R-CNN's box and mask branches) three, the semantic
# head two (its cross-entropy over the whole image, and the same classifier on the
# features RoI-pooled in each ground-truth box, which pushes the semantic head to get the
# things right inside their boxes), and the panoptic head one. The objective is their
# weighted sum. The weights differ per dataset; these are the published ones, from the
# experiment configurations of uber-research/UPSNet (`upsnet_resnet50_coco_16gpu.yaml`,
# `upsnet_resnet50_cityscapes.yaml`: `fcn_loss_weight`, `fcn_with_roi_loss`,
# `panoptic_loss_weight`; its training script adds the five Mask R-CNN losses with weight
# 1 and the RoI loss with a further factor 0.2), as the package states them
# (`models.upsnet.LOSSES`):

# %%
def weight(value):
    return "off" if value is None else f"{value:g}"


table = ["| head | loss | what it is | COCO | Cityscapes |", "|---|---|---|---:|---:|"]
table += [f"| {t.head} | `{t.name}` | {t.kind} | {weight(t.weights['coco'])} | {weight(t.weights['cityscapes'])} |"
          for t in upsnet.LOSSES]
display(Markdown("\n".join(table)))

# %% [markdown]
# On COCO the semantic and panoptic losses are weighted well below the detector's; on
# Cityscapes, with 11 stuff classes covering most pixels, the semantic loss counts fully
# and the RoI loss is off. The tiny model keeps the COCO weights (they were not tuned on
# the built-in data) and starts from the shipped pretrained tiny ResNet-FPN.

# %%
run = chapter_training.train_in_chapter("upsnet-tiny", profile, CATEGORIES)
recipe, history = run.recipe, run.history
assert [t.name for t in upsnet.LOSSES] == [name for name in history.names if name.startswith("loss_")], \
    "the table lists the losses the model trains with"

# %% [markdown]
# Each loss, head by head, over the run (in `ci`, whose four steps show nothing, the
# curves recorded when the shipped weights were trained; each curve is the weighted loss,
# as it enters the objective):

# %%
curves = runs.shipped_run("upsnet-tiny").loss_history() if profile.is_ci else history
heads = {head: [t.name for t in upsnet.LOSSES if t.head == head] for head in dict.fromkeys(t.head for t in upsnet.LOSSES)}
viz.plot_history(curves, groups={f"{head} head": names for head, names in heads.items()}, smooth=profile.pick(ci=5, laptop=25),
                 panel_size=(3.4, 2.8))
plt.show()

# %%
chapter_training.check_losses_fell(history, {"loss_semantic", "loss_panoptic", "loss_mask", "loss_classifier"})

# %% [markdown]
# In `ci` four steps teach nothing, so from here on the chapter uses the shipped weights
# there (1000 steps, `scripts/train_checkpoints.py --model upsnet-tiny`); in the other
# profiles the network you just trained.

# %%
model, shipped_model, shipped_info = run.model.eval(), run.shipped, run.shipped_info
EVAL_SIZE = run.image_size
val_set = run.val_set()
evaluation = evaluate(model, val_set, CATEGORIES, ablations=("baseline",), keep_predictions=True, progress=False)
run.keep(evaluation, val_set)  # for chapter 7 (not in ci: its runs are too short to compare)
kept = evaluation.predictions
print(metrics.format_comparison({"UPSNet (panoptic head)": evaluation.results,
                                 "same outputs, heuristic merge": evaluation.ablations["baseline"]}))

# %% [markdown]
# The two rows share every network output; only the fusion differs. Read them before
# the rest of the chapter: on these small synthetic scenes the learned head and the rule
# land within about a point of each other (the shipped model: the merge slightly ahead
# overall), so the head's value here is in *how* it decides, pixel by pixel, more than
# in the total.
#
# ## The panoptic logits of one image
#
# Every channel of the head on one validation image, on one colour scale (red positive,
# blue negative), then their argmax. Each panel is titled with its channel number, the
# index the argmax picks, and with what the channel is: a stuff class, instance *i* with
# its class and score, or unknown. Each panel is framed in the colour the argmax gives its
# channel: stuff in its class colour, each instance in a colour of its own; unknown is
# white in the argmax and framed dark grey. An instance channel is 0 outside its box, so
# each one is shown cropped to its box (dashed), and the image panel shows where the
# numbered boxes lie. The record `prediction.merge` keeps each step
# (`models.upsnet_head.unified_panoptic`).

# %%
SHOWN = int(np.argmax([p.merge.num_instances for _, p in kept[:8]]))  # the busiest of the first images
record, prediction = kept[SHOWN]
result = prediction.merge
stuff_logits = prediction.outputs["semantic_logits"][:NUM_STUFF].numpy()
instance_categories = prediction.detections["category_ids"][result.kept].tolist()
display(viz.show_panoptic_logits(val_set[SHOWN].image, result, stuff_logits, CATEGORIES, instance_categories))
print(result.report(CATEGORIES))

# %%
# the argmax is the argmax of the stacked channels, and the unknown channel is the formula
channels = np.stack([logits for _, logits in viz.panoptic_channels(result, stuff_logits, CATEGORIES)])
assert channels.shape[0] == NUM_STUFF + result.num_instances + 1
assert (channels.argmax(axis=0) == result.argmax).mean() > 0.999, "the prediction is the argmax of the channels"
semantic_logits = prediction.outputs["semantic_logits"]
expected_unknown = (semantic_logits[NUM_STUFF:].max(dim=0).values
                    - torch.as_tensor(result.x_mask).max(dim=0).values).numpy()
np.testing.assert_allclose(result.unknown_logits, expected_unknown, atol=1e-5)
assert np.all(result.labels[result.unknown_pixels] == 255), "unknown pixels become void"
_ = prediction.panoptic.validate(CATEGORIES, check_statistics=True)

# %% [markdown]
# Inside its box an instance channel adds two pieces of evidence, and outside it is 0: a
# pixel far from every box goes to the strongest stuff logit (or to unknown, when the
# semantic head sees a thing there that no box explains). The unknown channel is near 0
# inside the boxes (there max X_mask is the thing logit of the box's class, usually the
# largest thing logit) and equals the largest thing logit outside them: on stuff that
# loses to the stuff channels, and it wins (white in the argmax) only where the semantic
# head sees a thing that no instance explains.
#
# ## How many instance channels?
#
# The number of channels depends on the image. In **training** the instances are the
# ground-truth boxes with their classes, and the head keeps a random 70 % of them
# (`models.upsnet.keep_instances`); the pixels of the dropped ones become the target of
# the unknown channel. In **prediction** the instances are the detections that survive
# the head's selection (score > 0.6, class-agnostic NMS at 0.5, at most 100), minus the
# duplicates its mask removal drops.

# %%
generator = torch.Generator().manual_seed(0)
for count in (1, 3, 7, 10):
    kept_idx = upsnet.keep_instances(count, model.config.box_keep_fraction, generator)
    print(f"{count:>2} ground-truth instances -> {len(kept_idx)} instance channels, "
          f"{count - len(kept_idx)} of them trained as unknown")
truth_counts = [sum(CATEGORIES.isthing(s.category_id) for s in r["panoptic"].segments) for r, _ in kept]
predicted_counts = [p.merge.num_instances for _, p in kept]
print(f"prediction, {len(kept)} validation images: {np.mean(predicted_counts):.1f} instance channels per image "
      f"for {np.mean(truth_counts):.1f} ground-truth things")
assert model.config.box_keep_fraction == 0.7 and model.config.unknown

# %% [markdown]
# ## Why an unknown class?
#
# Recall RQ = TP / (TP + ½ FP + ½ FN), computed **per category** and then averaged over
# the categories. Take a disc the model is unsure of, and would call a box.
#
# * Predict the **wrong class**: the ground-truth disc matches nothing of class *disc*, a
#   false negative of *disc*; the predicted box matches nothing of class *box*, a false
#   positive of *box*. Two classes each lose ½ in their denominators.
# * Predict **unknown**: the pixels become void, which PQ ignores; the disc is still a
#   false negative of *disc*, but *box* loses nothing.
#
# With 10 true positives in each of the two classes, a wrong class gives RQ_disc = RQ_box
# = 10 / 10.5 = 0.952, mean 0.952; unknown gives RQ_disc = 0.952 and RQ_box = 1, mean
# 0.976. Abstaining is cheaper whenever the model would be wrong. The head learns when:
# in training, pixels of the ground-truth instances it dropped have no instance channel,
# and their target is unknown.
#
# Measured: the same trained model, its head run again on the kept outputs with the
# unknown channel removed (`head_analysis.rescore_unified(..., unknown=False)`); those
# pixels then go to the best stuff or instance channel.

# %%
with_unknown = head_analysis.rescore_unified(kept, CATEGORIES, model.head_config)
without_unknown = head_analysis.rescore_unified(kept, CATEGORIES, model.head_config, unknown=False)
print(metrics.format_comparison({"with the unknown channel": with_unknown,
                                 "unknown channel removed": without_unknown}))
unknown_share = np.mean([p.merge.unknown_pixels.mean() for _, p in kept])
print(f"{100 * unknown_share:.2f} % of the pixels are predicted unknown")
assert with_unknown["All"]["pq"] == evaluation.results["All"]["pq"], "the re-run head is the model's head"
wrong_class = (10 / 10.5 + 10 / 10.5) / 2  # RQ_disc and RQ_box: a FN of one class, a FP of the other
abstained = (10 / 10.5 + 10 / 10) / 2  # only the FN of disc
assert abstained > wrong_class  # the arithmetic above

# %% [markdown]
# Removing the channel turns each abstention into a guess. Where the guess is wrong it
# adds a false positive (a spurious instance, or stuff that steals IoU from the right
# stuff segment); where it is right, it can turn a false negative into a true positive.
# The difference in the table is the net of the two on these images, mostly in PQ_th;
# it is small because few pixels (the share printed above) are unknown at all.
#
# ## Deformable convolution
#
# UPSNet's semantic head applies the same stack of deformable 3 x 3 convolutions to each
# pyramid level (Dai et al., "Deformable Convolutional Networks", ICCV 2017). A
# deformable convolution reads its nine inputs not on the regular grid but at the grid
# plus a learned offset (dy, dx) per tap and per output pixel; a plain 3 x 3 conv on
# the same input predicts the offsets, and bilinear interpolation reads between pixels.
# The offset conv starts at zero, so the layer starts as an ordinary convolution and
# learns where to look. Below: the first layer of the trained head on P3 (stride 8), for
# a few output cells on things, the regular taps (grey circles) and where the layer
# samples (dots).

# %%
sample = val_set[SHOWN]
with torch.no_grad():
    batch = model.transform.batch(data.dataset.image_batch([sample]))
    features = model.backbone(batch.images.tensors)
    offsets = model.semantic_head.subnet[0].offset(features["p3"])[0].numpy()  # [18, h, w]
stride = model.semantic_head.level_strides["p3"]
on_things = np.isin(record["panoptic"].category_map(), CATEGORIES.thing_ids)[stride // 2::stride, stride // 2::stride]
thing_cells = [(int(r), int(c)) for r, c in np.argwhere(on_things)]
points = thing_cells[::max(1, len(thing_cells) // 4)][:4] or [(offsets.shape[1] // 2, offsets.shape[2] // 2)]
display(viz.show_deformable_offsets(sample.image, offsets, points, stride,
                                    title="first deformable layer on P3: plain taps (grey), learned samples"))
print(f"offsets on P3: mean |offset| {np.abs(offsets).mean():.2f} cells, largest {np.abs(offsets).max():.2f}")

# %%
# zero offsets: a deformable conv is the ordinary conv with the same weights
layer = deformable.DeformableConv2d(8, 4)
x = torch.randn(2, 8, 12, 10)
with torch.no_grad():
    plain = F.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1)
    np.testing.assert_allclose(layer(x).numpy(), plain.numpy(), atol=1e-5)
    assert torch.count_nonzero(layer.offset.weight) == 0, "the offsets start at zero"
    grid = deformable.grid_deform_conv2d(x, torch.zeros(2, 18, 12, 10), layer.conv.weight, layer.conv.bias)
    np.testing.assert_allclose(grid.numpy(), plain.numpy(), atol=1e-5)
    trained = model.semantic_head.subnet[0]
    assert torch.count_nonzero(trained.offset.weight) > 0, "training moved the offsets away from zero"
print("zero offsets = plain convolution (torchvision's deform_conv2d and the package's grid version)")

# %% [markdown]
# On these synthetic scenes the offsets stay modest (about a cell on average, a few
# cells at most: the numbers printed above): shapes of a few sizes, no perspective, no
# articulated objects. What deformable layers are meant to learn on real images is to
# spread their taps over large objects and gather them on small ones; the UPSNet paper
# uses them in the semantic head throughout rather than ablating them there.
#
# ## Against chapters 3, 4 and 6
#
# The shipped models of the other chapters on the same validation images and with the
# same evaluator, and the inference time per image of each, measured here.

# %%
others = {"baseline (ch. 3)": "baseline-tiny", "Panoptic FPN (ch. 4)": "panoptic-fpn-tiny",
          "Panoptic-DeepLab (ch. 6)": "panoptic-deeplab-tiny"}
models = {label: pretrained.load_pretrained(name)[0] for label, name in others.items()
          if name in pretrained.SHIPPED or zoo.spec(name).components}
label = "UPSNet (shipped)" if profile.is_ci else f"UPSNet (trained here, {recipe.steps} steps)"
results = {name: evaluate(candidate, val_set, CATEGORIES, progress=False).results for name, candidate in models.items()}
results[label] = evaluation.results
models[label] = model
print(metrics.format_comparison(results))
images = data.dataset.image_batch([val_set[i] for i in range(8)])
per_image = {name: seconds_per_image(candidate, images) for name, candidate in models.items()}
for name, seconds in per_image.items():
    print(f"{name:<34} {1000 * seconds:6.0f} ms per image")

# %%
for name, r in results.items():
    assert r["Stuff"]["pq"] > 0.5, f"{name}: the semantic part must have learned the stuff classes"
if profile.is_ci:
    assert evaluation.results["All"]["pq"] > 0.5, "the shipped UPSNet reaches a useful PQ"

# %% [markdown]
# UPSNet and Panoptic FPN share the design up to the fusion: one ResNet-FPN, Mask R-CNN,
# a semantic head on the pyramid. The differences are the deformable semantic head over
# all classes (Panoptic FPN's predicts stuff and one "things" class) and the learned
# fusion. The first table of the chapter isolates the second: the same UPSNet outputs,
# fused by the head and by chapter 3's merge.
#
# ## Where the head beats the merge
#
# Per image, PQ of things with the head and with the heuristic merge on *the same*
# semantic map and detections; the image with the largest gain is found by
# `head_analysis.largest_gains`, not picked by hand.

# %%
settings = dict(config=model.head_config, merge=model.merge_config)  # the trained model's own
head_pq = head_analysis.per_image_pq(kept, CATEGORIES, group="Things", **settings)
merge_pq = head_analysis.per_image_pq(kept, CATEGORIES, "baseline", group="Things", **settings)
gains = head_analysis.largest_gains(head_pq, merge_pq, count=3)
print(f"the head is better on {int(np.sum(head_pq > merge_pq))}, the merge on {int(np.sum(head_pq < merge_pq))} "
      f"of {len(kept)} images (PQ of things)")
if len(gains):
    best = int(gains[0])
    best_record, best_prediction = kept[best]
    merged = ablation_merge("baseline", best_prediction.semantic, best_prediction.detections, CATEGORIES)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), layout="constrained")
    viz.show_panoptic(val_set[best].image, best_record["panoptic"], CATEGORIES, ax=axes[0], title="ground truth")
    viz.show_panoptic(val_set[best].image, merged.panoptic, CATEGORIES, ax=axes[1],
                      title=f"heuristic merge: PQ_th {100 * merge_pq[best]:.0f}")
    viz.show_panoptic(val_set[best].image, best_prediction.panoptic, CATEGORIES, ax=axes[2],
                      title=f"panoptic head: PQ_th {100 * head_pq[best]:.0f}")
    plt.show()
    assert head_pq[best] > merge_pq[best]
    print(best_prediction.merge.report(CATEGORIES))
else:
    print("on these images the head never beats the merge")
assert len(head_pq) == len(kept) and np.all((head_pq[np.isfinite(head_pq)] >= 0) & (head_pq[np.isfinite(head_pq)] <= 1))

# %% [markdown]
# Read the three panels together with the report: where two masks claim the same
# pixels, the merge gives them all to the higher score; the head compares the two
# instance channels pixel by pixel, and its overlap removal only drops an instance that
# mostly repeats one of its own class. The count above the figure is the honest
# summary: the head wins on some images and the merge on others, which is what close
# totals in the first table look like image by image.
#
# ## Exercises
#
# **Exercise 5.1 — the unknown channel.** Write `unknown_channel(semantic_logits,
# num_stuff, x_mask)`: `semantic_logits` is float [C, H, W] with the `num_stuff` stuff
# channels first, `x_mask` float [N, H, W] (each instance's class logit inside its box,
# 0 outside; N may be 0). Return the unknown logit of every pixel, float [H, W].

# %%
def unknown_channel(semantic_logits, num_stuff, x_mask):
    # BEGIN SOLUTION
    thing = semantic_logits[num_stuff:].max(dim=0).values
    return thing - x_mask.max(dim=0).values if len(x_mask) else thing
    # END SOLUTION


ch05.check_unknown_channel(unknown_channel);

# %% [markdown]
# **Exercise 5.2 — paste a mask into its box.** Write `paste_mask(mask_logits, box,
# size)`: `mask_logits` float [28, 28], `box` `(x1, y1, x2, y2)` in pixel-edge
# coordinates (floats), `size` `(H, W)`. The box covers the columns `floor(x1)` to
# `ceil(x2) - 1` and the rows likewise; resize the logits bilinearly
# (`align_corners=False`) to those cells, paste them, 0 everywhere else, and cut off what
# falls outside the map.

# %%
import math


def paste_mask(mask_logits, box, size):
    # BEGIN SOLUTION
    c0, r0 = math.floor(box[0]), math.floor(box[1])
    c1, r1 = max(math.ceil(box[2]), c0 + 1), max(math.ceil(box[3]), r0 + 1)
    resized = F.interpolate(mask_logits[None, None], size=(r1 - r0, c1 - c0), mode="bilinear",
                            align_corners=False)[0, 0]
    out = torch.zeros(size)
    y0, x0, y1, x1 = max(r0, 0), max(c0, 0), min(r1, size[0]), min(c1, size[1])
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = resized[y0 - r0:y1 - r0, x0 - c0:x1 - c0]
    return out
    # END SOLUTION


ch05.check_paste_mask(paste_mask);

# %% [markdown]
# **Exercise 5.3 (thinking).** Set `box_keep_fraction=1.0`
# (`upsnet.for_categories(CATEGORIES, "tiny", box_keep_fraction=1.0)`): the model has no
# unknown channel. Which pixels of a training image then have no target the head can
# predict, and what happens to a detection the head misses at test time?

# %% [markdown] tags=["answers"]
# **Answer to exercise 5.3** (for the instructor; not in the student edition)
#
# In training every ground-truth instance then has its own channel, so the unknown channel
# is never a target and the model has none. The pixels left without a target are the thing
# pixels that no instance channel covers: crowd regions and any thing pixel without an
# instance annotation, which can only be ignored. At test time a thing the detector missed
# has no channel of its own and no unknown channel to go to: its pixels take the strongest
# remaining channel, a stuff class or a neighbouring instance whose box covers them. A
# miss then also becomes a false positive or a swollen neighbour, instead of void (the RQ
# argument of "Why an unknown class?").

# %% [markdown]
# **Exercise 5.4 — predict, then measure: every box kept.** In training the panoptic
# head keeps a random 70 % of the ground-truth instances (at least one); a thing pixel's
# target is the channel of the kept instance that covers it, and otherwise the unknown
# channel. Predict: with the keep fraction at 1 instead of 0.7, does the share of thing
# pixels whose target is the unknown channel *rise*, *fall*, *stay*, or *drop to zero*
# (nothing but crowd regions and other thing pixels without an instance stays unknown)?
# Write `prediction` ("rises", "falls", "stays" or "drops to zero"); then measure it.
# Write `unknown_target_share(semantic, instances, num_stuff, fraction, generator)`:
# `semantic` is int64 [H, W] in UPSNet's layout (stuff `0..num_stuff - 1`, then the
# things, void 255; crowd pixels keep their thing label), `instances` bool [N, H, W] the
# ground-truth instances (a crowd has none). Draw the kept instances with
# `upsnet.keep_instances(len(instances), fraction, generator)` and return the share of
# the thing pixels (neither void nor stuff) whose target is the unknown channel. Build
# the targets yourself, not with `upsnet.panoptic_targets`, and keep the unknown channel
# at every fraction, so that you see what the draw alone does. The checker measures your
# function on training images of the built-in data.

# %%
# your prediction: "rises", "falls", "stays" or "drops to zero"
# BEGIN SOLUTION
prediction = "drops to zero"
# END SOLUTION


def unknown_target_share(semantic, instances, num_stuff, fraction, generator):
    # BEGIN SOLUTION
    kept = upsnet.keep_instances(len(instances), fraction, generator)
    thing = (semantic >= num_stuff) & (semantic != 255)
    covered = instances[kept].any(dim=0) if len(kept) else torch.zeros_like(thing)
    return float((thing & ~covered).sum() / thing.sum())
    # END SOLUTION


ch05.check_unknown_share(unknown_target_share, prediction);

# %% [markdown] tags=["answers"]
# **Answer to exercise 5.4** (for the instructor; not in the student edition)
#
# It drops to zero, except for the thing pixels that no instance covers. At 0.7 the
# unknown targets are the pixels of the dropped instances (about 30 % of the instances,
# but a random share of the thing pixels: one large instance dropped or kept changes it
# a lot) plus the crowd regions and any other thing pixel without an instance. At 1,
# `keep_instances` returns every instance (no draw at all), so every annotated thing
# pixel is the target of its own channel; only the crowd regions (a crowd segment has no
# instance target) stay unknown. The checker measured training image 33 going from 0.582
# (mean of four draws) to 0.365, which is exactly its crowd's share, and image 4, which
# has no crowd, from 0.220 to 0.000. "Falls" is half right: it falls, but all the way
# to the pixels that have no channel at any fraction. A good answer also connects it to
# the package: with `box_keep_fraction = 1` UPSNet drops the unknown channel altogether
# (`UPSNetConfig.unknown` is False), so those crowd pixels become void and nothing ever
# trains the unknown channel; at test time a thing the detector missed has nowhere to
# abstain to (exercise 5.3). Typical wrong measurements: void counted as thing (255 is
# >= num_stuff), stuff in the denominator, dropped instances kept as their own channel,
# `int(count * fraction)` without "at least one", crowd pixels left out.

# %% [markdown]
# ## Summary
#
# * UPSNet's panoptic head has no weights: stuff channels from the semantic logits, an
#   instance channel per box (semantic logit of its class in the box + its pasted mask
#   logits), an unknown channel (max thing logit minus max X_mask); a softmax over them
#   is trained, their argmax is the prediction.
# * Training builds the channels from 70 % of the ground-truth boxes, so the head learns
#   to call thing pixels without an instance unknown; prediction uses the detections.
# * Unknown pixels are void: one false negative instead of a false negative and a false
#   positive.
# * The semantic head's deformable convolutions learn where to sample; with zero
#   offsets they are plain convolutions, which is where they start.
# * Per image, the learned fusion can be compared with the rule on the same outputs.
#
# **Check your understanding**
#
# 1. A pixel lies in the boxes of two discs. Which two numbers does the head compare
#    there, and what does the heuristic merge compare?
# 2. Why is the unknown channel built from the semantic logits of the *thing* classes
#    only?
# 3. Discs and boxes have 8 true positives each and no other errors. One more disc is
#    predicted as a box, or as unknown: compute RQ_disc, RQ_box and their mean in each case.
# 4. What does a deformable layer compute when all its offsets are 1.0 in dx?

# %% [markdown] tags=["answers"]
# **Answers** (for the instructor; not in the student edition)
#
# 1. The head compares, at that pixel, X of the first disc's class plus its pasted mask
#    logit against the same sum for the second disc (and both against the stuff channels
#    and the unknown channel): per-pixel evidence of both heads. The heuristic merge
#    compares the two detections' scores: the more confident one takes every pixel of the
#    overlap, whatever its mask says there.
# 2. The unknown channel stands for "the semantic head sees a thing here, and no instance
#    explains it". Its evidence is the strongest thing logit, minus the semantic part of
#    the best instance channel at the pixel; stuff logits say nothing about a missing
#    instance (stuff pixels have their own channels).
# 3. Wrong class: RQ_disc = 8 / (8 + 0.5) = 0.941 (a false negative), RQ_box = 8 / 8.5 =
#    0.941 (a false positive), mean 0.941. Unknown: RQ_disc = 0.941, RQ_box = 8 / 8 = 1,
#    mean 0.971.
# 4. Every tap reads one pixel to the right of its place on the grid, and integer offsets
#    need no interpolation: the layer is the plain convolution of the input shifted one
#    pixel to the left (its output at x is the plain output at x + 1, with zeros past the
#    right border).

# %% [markdown]
# ## References

# %%
display(Markdown(bibliography.markdown(["xiong2019upsnet", "upsnet_code", "dai2017deformable", "kirillov2019fpn",
                                         "he2017maskrcnn", "kirillov2019panoptic"])))
