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
# # Chapter 6 — Panoptic-DeepLab: segment first, then group
#
# Chapters 3 to 5 find things **top-down**: a detector proposes boxes, a mask head
# segments the inside of each box, and a merge (a heuristic, or UPSNet's panoptic head)
# resolves the overlaps between the masks and the semantic map. These are **two-stage**
# methods: Mask R-CNN proposes regions, then segments each, and the semantic branch is
# attached beside it. Cheng, Collins, Zhu, Liu, Huang, Adam and Chen (UIUC and Google
# Research: "Panoptic-DeepLab", CVPR 2020) go **bottom-up**, in **one stage**: one
# network labels every pixel with a category, predicts a heatmap of where instance
# *centres* are, and, for every pixel, an *offset* pointing to the centre of the instance
# it belongs to. A parameter-free post-processing then finds the centres (a max-pool),
# sends every thing pixel to the centre its offset points nearest to, and gives each
# instance the majority category of its pixels. No boxes, no RoIs, no overlaps to
# resolve: every pixel gets exactly one answer. The paper's claim is that such a
# bottom-up, one-stage method can match the state of the art of the two-stage ones; its
# instance branch does not even need to know the classes (the semantic branch names them).
#
# **After this chapter you can**
#
# * tell top-down from bottom-up panoptic segmentation and point to where each can fail;
# * read a centre heatmap and an offset field, and say what the three heads learn;
# * explain centre finding by max-pool NMS, and predict and measure what its kernel size
#   and threshold change;
# * group pixels by their offsets and label instances by majority vote, by hand and with
#   the package;
# * compare a bottom-up model with the top-down models of chapters 3 and 4 on the same
#   data, evaluator and machine, and time its network and its post-processing apart.
#
# **Prerequisites:** chapters 1-2 (the panoptic format, PQ) and 3-4 (the top-down models
# it is compared with).
#
# **Run time** (measured by `panopticlab book run`): `ci` 21 s and `laptop` 2 min 43 s on two CPU cores;
# `gpu` not yet measured.
# In `ci` four training steps, then the shipped weights; in `laptop` most of the time
# is training the tiny Panoptic-DeepLab from the pretrained tiny backbone.

# %%
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

import panopticlab
from panopticlab import data, metrics, postprocess, viz
from panopticlab.engine import center_analysis, chapter_training, evaluate, pretrained, seconds_per_image
from panopticlab.exercises import ch06
from panopticlab.models import zoo
from panopticlab.models.common import eval_mode

profile = panopticlab.get_profile()
panopticlab.seed_everything(profile.seed)
CATEGORIES = data.SYNTHETIC_CATEGORIES
print(profile)

# %% [markdown]
# ## The network: one backbone, two decoders, three heads
#
# Panoptic-DeepLab is built from DeepLab's parts:
#
# * a **dilated ResNet** whose last stage keeps stride 16 (chapter 4 calls this the
#   accurate, expensive way back to fine features);
# * two **decoupled decoders**, one for semantics and one for instances. Each has its own
#   ASPP (atrous spatial pyramid pooling: parallel 3x3 convolutions with dilations 6, 12
#   and 18 at stride 16, a 1x1 branch and an image-pooling branch) and its own
#   DeepLabV3+ path back to stride 4 through 1x1 projections of the stride-8 and stride-4
#   features. The paper found that sharing one decoder for both tasks costs accuracy;
# * three **heads** at stride 4, upsampled to the image: the *semantic* head (one logit
#   per category, things and stuff), the *centre* head (one heatmap channel) and the
#   *offset* head (two channels, `(dy, dx)` in pixels; predicted at stride 4, so after the
#   bilinear upsampling they are multiplied by 4).
#
# Training targets come from the ground truth (`panopticlab.data.targets`): the semantic
# labels (pixels of small instances weighted 3: below 64 x 64 px, scaled here to the image
# size), a Gaussian of sigma 8 px at each thing's centre of mass, and at every thing pixel
# the vector to that centre. Three losses, one per head:
#
# $$L = L_{sem} + 200\, L_{center} + 0.01\, L_{offset}$$
#
# * L_sem, a *bootstrapped* (hard-pixel-mining) cross-entropy: the per-pixel losses,
#   small-instance weights applied, are sorted and only the worst 20 % are averaged, so
#   the easy stuff pixels stop dominating once they are learned;
# * L_center, the mean squared error between the predicted heatmap and the Gaussians,
#   on every labelled pixel, stuff included (crowd regions excepted);
# * L_offset, the L1 error of the offsets, on thing pixels only (crowd excepted).
#
# The weights and the 20 % are those of detectron2's Panoptic-DeepLab project
# (`projects/Panoptic-DeepLab/panoptic_deeplab/config.py`: `CENTER_LOSS_WEIGHT` 200,
# `OFFSET_LOSS_WEIGHT` 0.01, `LOSS_TOP_K` 0.2; its COCO configuration sets `LOSS_TOP_K`
# 1.0, a plain cross-entropy). The two configurations the package builds:

# %%
for size in ("tiny", "full"):
    network = zoo.build_model(f"panoptic-deeplab-{size}", CATEGORIES)
    config = network.config
    print(f"{size:>4}: {sum(p.numel() for p in network.parameters()) / 1e6:6.2f} M parameters, "
          f"output stride {config.output_stride}, ASPP {config.aspp_channels} ch at dilations {config.aspp_dilations}, "
          f"decoders {config.semantic_decoder_channels} / {config.instance_decoder_channels} ch; "
          f"centres: threshold {config.center_threshold}, {config.nms_kernel} x {config.nms_kernel} max-pool, "
          f"top {config.top_k}")
del network

# %% [markdown]
# The same network drawn from its modules (`viz.draw_panoptic_deeplab`), first the full
# model, then the tiny one:
#
# * the encoder and the three features the decoders read, each with its stride and width;
# * above it, the semantic decoder; below it, the instance decoder. Each has its own ASPP on
#   the stride-16 features, then two fusion stages that upsample and concatenate a 1 x 1
#   projection of the stride-8 and then the stride-4 features;
# * the three heads: the semantic logits, the centre heatmap (the probability that a pixel
#   is an instance centre) and the offsets (the direction and distance from each pixel to
#   its centre);
# * on the right, the post-processing: centres, grouping and majority vote.
#
# Every number in the boxes is read from the model, so the two figures differ exactly where
# the two configurations do.

# %%
for size in ("full", "tiny"):
    network = zoo.build_model(f"panoptic-deeplab-{size}", CATEGORIES)
    viz.draw_panoptic_deeplab(network)
    plt.show()
parts = viz.architecture.panoptic_deeplab_parts(network)  # the tiny one, drawn last
shared = {id(p) for p in network.semantic_decoder.parameters()} & {id(p) for p in network.instance_decoder.parameters()}
print(f"tiny: ASPP dilations {parts['semantic_decoder']['aspp']['dilations']}, "
      f"{len(shared)} parameters shared by the two decoders")
del network

# %%
assert not shared, "the two decoders are decoupled: each has its own ASPP and fusion convs"
assert parts["center_head"]["outputs"] == 1 and parts["offset_head"]["outputs"] == 2
assert parts["semantic_head"]["outputs"] == len(CATEGORIES)
assert [s["stride"] for s in parts["features"].values()] == [4, 8, 16]
full = viz.architecture.panoptic_deeplab_parts(zoo.build_model("panoptic-deeplab-full", CATEGORIES))
assert full["encoder"]["dilations"] == {"layer4": (2, 4, 8)}, "multi-grid (1, 2, 4) at output stride 16"
assert full["semantic_decoder"]["aspp"]["dilations"] == (6, 12, 18) != parts["semantic_decoder"]["aspp"]["dilations"]

# %% [markdown]
# The tiny configuration keeps the structure and shrinks the widths, and its ASPP
# dilations (2, 4, 6) fit 128-pixel images, where (6, 12, 18) at stride 16 would reach
# past the border of an 8 x 8 feature map.
#
# ## Training
#
# The tiny model starts from the shipped pretrained tiny backbone, as every model of the
# book. In `laptop` the recipe runs 420 steps (the shipped model had 1500), chosen so the
# whole chapter stays within 4 minutes on two cores. The engine reports the three losses
# by name.

# %%
run = chapter_training.train_in_chapter("panoptic-deeplab-tiny", profile, CATEGORIES)
recipe, history = run.recipe, run.history
viz.plot_history(history, smooth=25)
plt.show()

# %%
chapter_training.check_losses_fell(history, {"loss_semantic", "loss_center", "loss_offset"})

# %% [markdown]
# In `ci` four steps teach nothing, so from here on the chapter uses the shipped weights
# there (1500 steps by `scripts/train_checkpoints.py --model panoptic-deeplab-tiny`); in
# the other profiles, the network you just trained. Both are scored on the same
# validation images, and the predictions are kept with every raw output (`keep_predictions`):
# the rest of the chapter re-runs only the post-processing on them.

# %%
model, shipped_model, shipped_info = run.model, run.shipped, run.shipped_info
EVAL_SIZE = run.image_size
STUFF_AREA = model.config.stuff_area_for(EVAL_SIZE**2)
val_set = run.val_set()
evaluation = evaluate(model, val_set, CATEGORIES, keep_predictions=True)
run.keep(evaluation, val_set)  # for chapter 7 (not in ci: its runs are too short to compare)
kept = evaluation.predictions  # (record with the ground truth, prediction with every output) per image
print(metrics.format_comparison({"Panoptic-DeepLab": evaluation.results}))

# %% [markdown]
# ## Top-down and bottom-up on the same image
#
# The shipped baseline of chapter 3 (PSPNet + Mask R-CNN) and this chapter's model on
# one validation image. Top: the detector's boxes and masks (the merge keeps those with
# score >= 0.5), then the merged result. Bottom: the centre heatmap with the centres
# found, arrows from thing pixels to where their offsets point, then the grouped result.

# %%
baseline, _ = pretrained.load_pretrained("baseline-tiny")
SHOWN = 0
sample, (record, prediction) = val_set[SHOWN], kept[SHOWN]
with torch.no_grad():
    top_down = baseline.inference(data.dataset.image_batch([sample]))[0]
heatmap = prediction.outputs["center_heatmap"][0].numpy()
display(viz.show_top_down_vs_bottom_up(sample.image, top_down, prediction.merge, CATEGORIES, heatmap,
                                       titles=("top-down (baseline)", "bottom-up (Panoptic-DeepLab)")))

# %% [markdown]
# Where each can fail differs. Top-down, an object missed by the detector, or a box
# that cuts it, is lost, and two masks can claim the same pixel, so a merge has to
# decide. Bottom-up, every pixel has exactly one category and one instance, but two
# objects whose centres are closer than the NMS window become one, and an object's pixels
# can split between two centres when its offsets are poor. The two rows above show which
# of these you meet on this image; the table further down measures it over the
# validation set.
#
# ## The centre heatmap and the offset field
#
# The three maps of the trained model on the same image, and what the post-processing
# makes of them. The heatmap should peak near each object's centre of mass and stay near
# 0 elsewhere, stuff included (the centre loss is taken on stuff pixels too). The offsets
# are drawn only on pixels the semantic head calls a thing: only those are grouped.

# %%
display(viz.show_deeplab_outputs(sample.image, prediction.semantic, heatmap, prediction.merge, CATEGORIES, step=6))

# %%
for _, p in kept:
    assert p.outputs["offsets"].shape == (2, EVAL_SIZE, EVAL_SIZE)
    assert set(np.unique(p.semantic)) <= set(CATEGORIES.ids), "the semantic head names a category at every pixel"
    assert np.all(p.merge.center_scores > model.config.center_threshold), "every centre is above the threshold"
_ = prediction.panoptic.validate(CATEGORIES, check_statistics=True)
truth_things = sum(CATEGORIES.isthing(s.category_id) for r, _ in kept for s in r["panoptic"].segments)
found = sum(len(p.merge.centers) for _, p in kept)
print(f"{found} centres found for {truth_things} ground-truth things over {len(kept)} images")

# %% [markdown]
# ## Finding centres: a threshold and a max-pool
#
# A pixel is a centre when (1) its heatmap value is strictly above a **threshold** (0.1)
# and (2) it equals the maximum of the heatmap over the `k x k` window around it, the
# **max-pool NMS** (k = 7 on Cityscapes, 41 on COCO): `heatmap == max_pool2d(heatmap, k,
# stride=1, padding=k // 2)`. (3) At most the **top 200** survive. No learned parameter
# is involved, so both knobs can be moved after training. What each should do:
#
# * a **higher threshold** drops weak peaks: fewer false centres, but faint objects lose
#   theirs and their pixels join a neighbour's instance (or none);
# * a **larger kernel** lets a strong peak suppress every other peak within `k // 2`
#   pixels: fewer duplicate centres on one object, but two small objects closer than
#   that become one instance.
#
# Measured, on the kept outputs: the post-processing re-runs for every cell of a grid
# (`center_analysis.center_setting_grid`; the network does not run again), scored by the
# same PQ accumulator as the evaluation. The red cell is the model's own setting.

# %%
thresholds = profile.pick(ci=[0.1, 0.3], laptop=[0.05, 0.1, 0.2, 0.3, 0.5])
kernels = profile.pick(ci=[3, 7], laptop=[3, 7, 13, 21])
own = (model.config.center_threshold, model.config.nms_kernel)
start = time.perf_counter()
grid = center_analysis.center_setting_grid(kept, CATEGORIES, thresholds, kernels, stuff_area=STUFF_AREA)
print(f"{len(grid)} settings x {len(kept)} images re-post-processed and scored in {time.perf_counter() - start:.1f} s")
display(viz.plot_center_grid(grid, metrics=(("All", "pq"), ("Things", "pq"), ("Things", "rq")), marked=own))
best = max(grid, key=lambda cell: grid[cell]["All"]["pq"])
print(f"best: threshold {best[0]}, kernel {best[1]}: PQ {100 * grid[best]['All']['pq']:.1f} "
      f"(own setting: {100 * grid[own]['All']['pq']:.1f})")

# %%
assert grid[own] == evaluation.results, "the model's own setting reproduces the evaluation exactly"
stuff_pq = {round(r["Stuff"]["pq"], 12) for r in grid.values()}
assert len(stuff_pq) == 1, "stuff pixels are never grouped: PQ_st cannot depend on the centre setting"
counts = {setting: center_analysis.rescore_deeplab(kept, CATEGORIES, stuff_area=STUFF_AREA, threshold=setting[0],
                                                   nms_kernel=setting[1]).num_centers
          for setting in [(thresholds[0], kernels[0]), (thresholds[-1], kernels[0]), (thresholds[0], kernels[-1])]}
print("centres found:", counts)
assert counts[(thresholds[-1], kernels[0])] <= counts[(thresholds[0], kernels[0])], "a higher threshold never adds"
assert counts[(thresholds[0], kernels[-1])] <= counts[(thresholds[0], kernels[0])], "a larger window never adds"

# %% [markdown]
# The third rule, the **top-k**, is a cap: at most k centres, the highest first (k = 200
# in detectron2's `projects/Panoptic-DeepLab/panoptic_deeplab/config.py`). A Cityscapes image rarely holds that many objects, so
# the cap seldom bites; it bounds the cost of the grouping, which compares every thing
# pixel with every centre. What it does when it bites is worth seeing: the weakest
# centres are dropped *before* grouping, so their objects' pixels vote as before and join
# the nearest centre that is left: a merge. No image here has 200 candidates, so the cap is set to half of the shown image's:

# %%
uncapped = center_analysis.rescore_deeplab(kept[SHOWN:SHOWN + 1], CATEGORIES, stuff_area=STUFF_AREA,
                                           threshold=own[0], nms_kernel=own[1], top_k=None)
cap = max(1, uncapped.num_centers // 2)
capped = center_analysis.rescore_deeplab(kept[SHOWN:SHOWN + 1], CATEGORIES, stuff_area=STUFF_AREA,
                                         threshold=own[0], nms_kernel=own[1], top_k=cap)
shown_heatmap = kept[SHOWN][1].outputs["center_heatmap"][0].numpy()
for rescored, label in ((uncapped, "no cap"), (capped, f"top-k = {cap}")):
    things = sum(CATEGORIES.isthing(s.category_id) for s in rescored.merged[0].panoptic.segments)
    display(viz.show_rescored(val_set[SHOWN].image, shown_heatmap, rescored.merged[0], CATEGORIES,
                              title=f"{label}: {rescored.num_centers} centres, {things} thing segments, "
                                    f"PQ_th of this image {100 * rescored.results['Things']['pq']:.1f}"))

# %%
kept_centres = {tuple(c) for c in capped.merged[0].centers.tolist()}
all_centres = {tuple(c): score for c, score in zip(uncapped.merged[0].centers.tolist(),
                                                   uncapped.merged[0].center_scores.tolist())}
assert capped.num_centers == min(cap, uncapped.num_centers) and kept_centres <= set(all_centres)
dropped = [score for c, score in all_centres.items() if c not in kept_centres]
assert not dropped or max(dropped) <= min(all_centres[c] for c in kept_centres), "the cap keeps the strongest"
assert capped.results["Stuff"] == uncapped.results["Stuff"], "the cap never touches stuff"

# %% [markdown]
# How to read it. PQ_st is the same in every cell (the assertion above checks it): the
# centre setting only decides how thing pixels are cut into instances, so every
# difference is in PQ_th, and through it in PQ. Compare the rows (thresholds) and the
# columns (kernels) of the PQ_th and RQ_th panels: recognition quality moves most,
# because a missed or a duplicated centre turns a true positive into a false negative or
# a false positive. Where the rows barely differ, the heatmap's peaks lie well above every
# threshold tried and its background well below: the threshold then only decides faint
# peaks. How much each knob matters depends on how sharp the model's peaks
# are and how close the objects of this synthetic data lie; the tiny model and small
# images here are far from Cityscapes, so read the direction of the change, not the best
# cell, as the lesson.
#
# ## Grouping and the majority vote, step by step
#
# With the centres fixed, each thing pixel `(y, x)` *votes* for the point `(y + dy,
# x + dx)` and joins the centre nearest to its vote (Euclidean distance, ties to the
# first centre in raster order). Stuff pixels are not grouped. Each instance then takes
# the **majority category** of the semantic labels of its pixels: the semantic head
# decides what an instance is, the instance branch only where it is. A stuff category
# keeps its pixels if it has at least `stuff_area` of them; thing pixels that joined no
# centre (there was none) become void.

# %%
display(viz.show_grouping_steps(sample.image, prediction.semantic, prediction.merge, CATEGORIES,
                                truth=record["panoptic"]))

# %%
result = prediction.merge
thing = np.isin(prediction.semantic, CATEGORIES.thing_ids)
assert np.all((result.instance_map > 0) == (thing & (len(result.centers) > 0))), "every thing pixel, and only those"
votes = result.votes[:, thing]  # (2, M)
distance = ((votes[:, :, None] - result.centers.T[:, None, :].astype(np.float64)) ** 2).sum(0)  # (M, K)
assert np.array_equal(result.instance_map[thing], distance.argmin(1) + 1), "each pixel joins its nearest centre"

# %% [markdown]
# Panel 1 is the heart of the method. If the offset head has learned, the votes of one
# object gather into a tight cloud (or a short streak) near its centre, far from the
# other clouds. The thin grey lines split the plane by nearest centre, and the rule cuts
# cleanly between clouds that stay inside their own cell. Where votes spread (at object
# borders, or on objects the heatmap missed), they cross a line, those pixels join the
# wrong centre, and panel 2 shows an instance reaching into its neighbour.
#
# Panels 3 to 5 show what the majority vote does, and what it cannot do. The vote makes
# each instance's label *consistent*: every pixel of an instance gets the label most of
# its pixels carry. The pixels outlined in yellow in panel 3 are the ones it relabels.
# Where the semantic head got an object mostly right, this fixes the scattered wrong
# pixels, and a few "box" pixels inside a disc no longer split it into two categories.
# The vote has no other source of truth, though. Where the head is wrong on *most* of an
# instance, the majority is wrong: the vote then gives that wrong label to the whole
# instance and overwrites the few pixels the head had right. Panel 5 compares the result
# with the ground truth. A red region with no yellow outline was wrong before the vote
# (the head itself called most of the object that, and the vote kept it); red inside a
# yellow outline is a wrong label the vote imposed. The vote protects an instance's label
# against minority mistakes, not against a wrong majority. Counted over all validation
# images:

# %%
fixed = broke = wrong_before = wrong_after = grouped = 0
for truth_record, p in kept:
    true = truth_record["panoptic"].category_map()
    inside = (p.merge.instance_map > 0) & np.isin(true, CATEGORIES.thing_ids)  # grouped pixels on true things
    voted = p.merge.panoptic.category_map()
    changed = viz.outvoted_pixels(p.semantic, p.merge) & inside
    fixed += int((changed & (voted == true)).sum())
    broke += int((changed & (p.semantic == true)).sum())
    wrong_before += int((inside & (p.semantic != true)).sum())
    wrong_after += int((inside & (voted != true)).sum())
    grouped += int(inside.sum())
print(f"{grouped} grouped pixels on ground-truth things: wrong class {wrong_before / grouped:.1%} before the vote, "
      f"{wrong_after / grouped:.1%} after")
print(f"the vote made {fixed} wrong pixels right and {broke} right pixels wrong")
assert wrong_before - wrong_after == fixed - broke, "the vote changes only the pixels it relabels"

# %% [markdown]
# Where the vote fixes more pixels than it breaks, it helps on balance; the wrong labels
# that remain are then mostly whole instances whose majority was wrong, which only a
# better semantic head can fix.
#
# ## Move the knobs yourself
#
# Move the threshold and the kernel and watch the centres and the result change; the
# image slider picks a validation image. Each move re-runs
# `center_analysis.rescore_deeplab` on the kept outputs of one image (milliseconds) and
# reports its PQ.

# %%
def explore(threshold=own[0], kernel=own[1], image=0):
    rescored = center_analysis.rescore_deeplab(kept[image:image + 1], CATEGORIES, stuff_area=STUFF_AREA,
                                               threshold=threshold, nms_kernel=kernel)
    title = (f"threshold {threshold:.2f}, kernel {kernel}: {rescored.num_centers} centres, "
             f"PQ of this image {100 * rescored.results['All']['pq']:.1f}")
    display(viz.show_rescored(val_set[image].image, kept[image][1].outputs["center_heatmap"][0].numpy(),
                              rescored.merged[0], CATEGORIES, title=title))
    return rescored


explorer = widgets.interactive(
    explore, threshold=widgets.FloatSlider(value=own[0], min=0.02, max=0.9, step=0.02),
    kernel=widgets.IntSlider(value=own[1], min=1, max=41, step=2), image=widgets.IntSlider(value=0, min=0, max=len(kept) - 1))
display(explorer)

# %% [markdown]
# Without a live kernel (a static copy of this notebook) the sliders do nothing; the
# same function, called directly with a strict setting:

# %%
strict = explore(threshold=0.5, kernel=21, image=SHOWN)
default = center_analysis.rescore_deeplab(kept[SHOWN:SHOWN + 1], CATEGORIES, stuff_area=STUFF_AREA,
                                          threshold=own[0], nms_kernel=own[1])
assert np.array_equal(default.merged[0].panoptic.id_map, prediction.panoptic.id_map), "own setting = the model's output"
assert strict.num_centers <= default.num_centers, "a stricter setting keeps a subset of the centres"
assert len(explorer.children) == 4, "three sliders and the output"

# %% [markdown]
# ## Against the top-down models
#
# The same validation images, the same evaluator: the shipped models of the earlier
# chapters (chapter 3's baseline, chapter 4's Panoptic FPN, and any other shipped one),
# the shipped Panoptic-DeepLab and, outside `ci`, the one you trained above.

# %%
models = {"baseline (PSPNet + Mask R-CNN)": baseline}
for label, name in {"Panoptic FPN": "panoptic-fpn-tiny", "UPSNet": "upsnet-tiny"}.items():
    if name in pretrained.SHIPPED and pretrained.SHIPPED[name].exists:  # the chapters' shipped models
        models[label] = pretrained.load_pretrained(name)[0]
models["Panoptic-DeepLab (shipped)"] = shipped_model
results = {label: evaluate(candidate, val_set, CATEGORIES, progress=False).results
           for label, candidate in models.items() if candidate is not model}
if not profile.is_ci:
    results[f"Panoptic-DeepLab (trained here, {recipe.steps} steps)"] = evaluation.results
    models[f"Panoptic-DeepLab (trained here, {recipe.steps} steps)"] = model
else:
    results["Panoptic-DeepLab (shipped)"] = evaluation.results
print(metrics.format_comparison(results))

# %%
for label, r in results.items():
    assert r["Stuff"]["pq"] > 0.5, f"{label}: the semantic part must have learned the stuff classes"
assert results["Panoptic-DeepLab (shipped)"]["All"]["pq"] > 0.5, "the shipped Panoptic-DeepLab reaches a useful PQ"
ours = evaluation.results
print(f"this chapter's model: PQ {100 * ours['All']['pq']:.1f}, PQ_th {100 * ours['Things']['pq']:.1f}, "
      f"PQ_st {100 * ours['Stuff']['pq']:.1f}")

# %% [markdown]
# Read the PQ_th and PQ_st columns apart. Stuff comes from a semantic map in every model
# here, so the columns say how good each semantic part is. Things are where the two
# families differ: the top-down models cut objects with boxes and masks; Panoptic-DeepLab
# with centres, offsets and a majority vote. On these small synthetic images with many
# touching shapes, the numbers, not the paper's Cityscapes results, say which works
# better here; the shipped models were trained for comparable budgets (8 to 15 minutes each
# on two cores), the model you trained for fewer.
#
# ## Where the time goes
#
# Panoptic-DeepLab's post-processing is not free: detectron2's README notes it takes about
# as long as the network on Cityscapes. Timed here apart, per image, on this machine: the
# network (the three heads and the semantic arg-max, `model(images)` in eval mode) and the
# post-processing on its kept outputs (centres, grouping, majority vote); then the whole
# `inference` of each model.

# %%
images = data.dataset.image_batch([val_set[i] for i in range(8)])
device = next(model.parameters()).device
on_device = images.to(device)
with eval_mode(model), torch.no_grad():
    model(on_device[:1])  # warm-up
    start = time.perf_counter()
    for i in range(len(on_device)):
        model(on_device[i:i + 1])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    network_seconds = (time.perf_counter() - start) / len(on_device)
maps = [postprocess.DeepLabOutputs.of(p) for _, p in kept[:len(images)]]
start = time.perf_counter()
for outputs in maps:
    postprocess.repostprocess(outputs, CATEGORIES, stuff_area=STUFF_AREA, threshold=own[0], nms_kernel=own[1])
post_seconds = (time.perf_counter() - start) / len(maps)
print(f"Panoptic-DeepLab at {EVAL_SIZE} x {EVAL_SIZE}: network {1000 * network_seconds:.1f} ms, "
      f"post-processing {1000 * post_seconds:.1f} ms per image")
per_image = {label: seconds_per_image(candidate, images) for label, candidate in models.items()}
for label, seconds in per_image.items():
    print(f"{label:<44} {1000 * seconds:7.1f} ms per image, network + post-processing")

# %%
assert network_seconds > 0 and post_seconds > 0

# %% [markdown]
# Compare the two numbers above: on a CPU at these small sizes the post-processing is a
# small part of the time per image, because there are few thing pixels and few centres;
# on a GPU, where the network is fast, its share is likely larger. Its cost grows with the pixels
# and the centres (the
# package groups only thing pixels and never builds the K x pixels distance matrix; see
# `benchmarks/deeplab_grouping.py` for 512 x 1024), while the top-down models pay per
# detection in their RoI heads.
#
# ## Exercises
#
# **Exercise 6.1 — find the centres.** Write `find_centers(heatmap, threshold, kernel)`:
# `heatmap` is a float32 (H, W) numpy array; return the (K, 2) `(y, x)` of the pixels
# strictly above `threshold` that equal the maximum of the `kernel x kernel` window
# centred on them, in raster order. (`scipy.ndimage.maximum_filter` or
# `torch.nn.functional.max_pool2d` do the window.)

# %%
from scipy import ndimage


def find_centers(heatmap, threshold, kernel):
    # BEGIN SOLUTION
    pooled = ndimage.maximum_filter(heatmap, size=kernel, mode="constant", cval=-np.inf)
    return np.argwhere((heatmap > threshold) & (heatmap == pooled))
    # END SOLUTION


ch06.check_find_centers(find_centers);

# %% [markdown]
# **Exercise 6.2 — group the pixels.** Write `assign_pixels(centers, offsets, thing_mask)`:
# `centers` (K, 2) `(y, x)`, `offsets` (2, H, W) `(dy, dx)`, `thing_mask` (H, W) bool.
# Return the (H, W) integer map that gives each thing pixel `k + 1` for the centre `k`
# nearest (Euclidean) to its vote `(y + dy, x + dx)`, and 0 to the other pixels.

# %%
def assign_pixels(centers, offsets, thing_mask):
    # BEGIN SOLUTION
    ys, xs = np.mgrid[:thing_mask.shape[0], :thing_mask.shape[1]]
    votes = np.stack([ys + offsets[0], xs + offsets[1]], axis=-1).astype(np.float64)  # (H, W, 2)
    distance = ((votes[:, :, None, :] - centers[None, None].astype(np.float64)) ** 2).sum(-1)  # (H, W, K)
    return np.where(thing_mask, distance.argmin(-1) + 1, 0)
    # END SOLUTION


ch06.check_assign_pixels(assign_pixels);

# %% [markdown]
# **Exercise 6.3 — the majority vote.** Write `majority_vote(semantic, instances,
# thing_ids)`: `semantic` (H, W) category ids, `instances` (H, W) integers (0 = no
# instance). Return `{k: category}` for every instance `k > 0`: the most frequent *thing*
# category among its pixels (stuff pixels do not vote), ties to the smallest id.

# %%
def majority_vote(semantic, instances, thing_ids):
    # BEGIN SOLUTION
    votes = {}
    for k in np.unique(instances[instances > 0]):
        labels = semantic[(instances == k) & np.isin(semantic, thing_ids)]
        votes[int(k)] = int(np.bincount(labels).argmax())
    return votes
    # END SOLUTION


ch06.check_majority_vote(majority_vote);

# %% [markdown]
# **Exercise 6.4 — predict, then measure: when does the window merge two objects?** Two
# centre peaks, 0.875 and 0.625, lie on an otherwise zero heatmap, the weaker 3 px below
# and 4 px to the right of the stronger: 5 px apart. Predict the smallest odd max-pool
# kernel `k` with which the weaker peak is no longer a centre (threshold 0.1), and write
# it in `prediction` (`None` if you think no kernel does). Then measure it: write
# `smallest_merging_kernel(h1, h2, dy, dx, threshold)` for any two peaks `h1 >= h2`, the
# weaker at `(dy, dx)` from the stronger. A centre is a pixel strictly above `threshold`
# that equals the maximum of the `k x k` window centred on it (exercise 6.1's rule).
# Return the smallest odd `k` with which the weaker peak is no centre (1 when it is none
# even without pooling), or `None` when no kernel suppresses it. Put the two peaks on a
# zero heatmap and try k = 1, 3, 5, ... with `ndimage.maximum_filter` (or
# `F.max_pool2d`), not with the package's `find_instance_centers`.

# %%
# your prediction: an odd kernel size, or None
# BEGIN SOLUTION
prediction = 9
# END SOLUTION


def smallest_merging_kernel(h1, h2, dy, dx, threshold):
    # BEGIN SOLUTION
    side = 4 * max(abs(dy), abs(dx)) + 3
    heatmap = np.zeros((side, side), np.float32)
    y, x = side // 2 + dy, side // 2 + dx  # the weaker peak
    heatmap[side // 2, side // 2], heatmap[y, x] = h1, h2
    for kernel in range(1, 2 * side, 2):
        pooled = ndimage.maximum_filter(heatmap, size=kernel, mode="constant", cval=-np.inf)
        if not (heatmap[y, x] > threshold and heatmap[y, x] == pooled[y, x]):
            return kernel
    return None
    # END SOLUTION


ch06.check_merging_kernel(smallest_merging_kernel, prediction);

# %% [markdown] tags=["answers"]
# **Answer to exercise 6.4** (for the instructor; not in the student edition)
#
# k = 9. The max-pool window is a square: a 9 x 9 window reaches 4 px in every
# direction, so, centred on the weaker peak, it holds the stronger one 3 px up and 4 px
# left, although the two are 5 px apart. What counts is the Chebyshev distance
# d = max(|dy|, |dx|) = 4, and the weaker peak goes at k = 2d + 1; k = 7 reaches only
# 3 px and keeps both. The typical wrong prediction is 11, from the Euclidean distance 5
# (a disc of radius k // 2 instead of a square). Also expected in a good answer: two
# equal peaks both equal the maximum of every window, so they survive every kernel (no
# kernel merges a tie: `None`); a weaker peak at or below the threshold is no centre at
# any kernel (k = 1). The consequence for the model: with Cityscapes' k = 7 two objects
# whose centres lie within 3 px in both directions become one instance, with COCO's 41
# within 20 px: the weaker centre's pixels join the stronger one (check-your-understanding
# question 1). The isolated peaks are the max-pool's geometry alone; a predicted heatmap
# is smooth (its targets are Gaussian bumps, sigma 8 here, 10 in detectron2's config),
# and two close bumps can blur into one maximum whatever the kernel. Deriving
# k = 2 max(|dy|, |dx|) + 1 instead of measuring it is accepted as well.

# %% [markdown]
# ## Summary
#
# * Bottom-up panoptic segmentation labels pixels first and groups them after: a
#   semantic map, a centre heatmap and per-pixel offsets to the centres, from one dilated
#   backbone with two decoupled DeepLabV3+ decoders.
# * Centres are the heatmap's local maxima above a threshold (a max-pool NMS); each thing
#   pixel joins the centre nearest to its vote; each instance takes the majority category
#   of its pixels. Nothing overlaps, so nothing has to be merged.
# * The threshold and the kernel change only the things, never the stuff; because they
#   come after the network, they can be tuned on kept outputs in seconds.
# * The post-processing costs time of its own, which grows with the image and the number
#   of centres.
#
# **Check your understanding**
#
# 1. Two discs of the same class touch, and their centres are 5 px apart. Which NMS
#    kernels can still find both? What does the result look like when the kernel is too
#    large?
# 2. Why is PQ_st the same in every cell of the grid, and would it stay so if stuff
#    pixels were grouped too?
# 3. An instance's pixels are 60 % "box" and 40 % "disc" in the semantic map, and the
#    object is a disc. What does the majority vote give, which pixels does it change, and
#    what would a top-down model's classifier have used instead?
# 4. The offsets are predicted at stride 4 and multiplied by 4 after upsampling. What goes
#    wrong if the factor is forgotten?

# %% [markdown] tags=["answers"]
# **Answers** (for the instructor; not in the student edition)
#
# 1. The max-pool window reaches k // 2 pixels in each direction (a square, so the
#    distance that counts is the larger of |dy| and |dx|). Two peaks 5 px apart along a
#    row both survive while k // 2 < 5: k = 3, 5, 7 or 9; from k = 11 the weaker one is
#    suppressed (two exactly equal peaks both survive, a tie). With one centre left, the
#    pixels of both discs join it: one instance covering both discs, a merge: one false
#    negative at least, and a false positive unless it matches one disc at IoU > 0.5. (With
#    sigma-8 Gaussians, centres 5 px apart may already blur into a single peak.)
# 2. Stuff pixels are never grouped: they keep the semantic head's label and the stuff
#    area rule, neither of which depends on the centres. If stuff pixels were grouped, a
#    stuff region could be cut among centres or absorbed into instances, and PQ_st would
#    depend on the setting.
# 3. "box", for every pixel of the instance: the vote changes the 40 % "disc" pixels, so the
#    whole object is wrong (a false negative for disc, a false positive for box). A
#    top-down model names a detection by its box head's classifier, which reads the RoI's
#    features and gives one class to the whole region, independently of a per-pixel map.
# 4. The offsets stay in units of stride-4 cells: every vote lands at a quarter of the way
#    to its centre, so the votes cluster near their own pixels. Pixels far from the centre
#    (large objects, their borders) then join a nearer wrong centre or another piece of
#    their own object: large things split, neighbours steal pixels.

# %% [markdown]
# ## References
#
# * B. Cheng, M. D. Collins, Y. Zhu, T. Liu, T. S. Huang, H. Adam, L.-C. Chen.
#   *Panoptic-DeepLab: A Simple, Strong, and Fast Baseline for Bottom-Up Panoptic
#   Segmentation.* CVPR 2020. arXiv:1911.10194.
# * L.-C. Chen, Y. Zhu, G. Papandreou, F. Schroff, H. Adam. *Encoder-Decoder with Atrous
#   Separable Convolution for Semantic Image Segmentation* (DeepLabV3+). ECCV 2018.
#   arXiv:1802.02611.
# * L.-C. Chen, G. Papandreou, F. Schroff, H. Adam. *Rethinking Atrous Convolution for
#   Semantic Image Segmentation* (DeepLabV3, ASPP with image pooling). arXiv:1706.05587.
# * X. Zhou, D. Wang, P. Krähenbühl. *Objects as Points.* arXiv:1904.07850 (centre
#   heatmaps with max-pool NMS).
# * A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollár. *Panoptic Segmentation.*
#   CVPR 2019.
# * detectron2's `projects/Panoptic-DeepLab` (the published settings and post-processing).
