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
# # Chapter 3 — The baseline: semantic + instance + a heuristic merge
#
# The panoptic segmentation paper did not propose a new network. Its baseline takes two
# existing ones, trained separately:
#
# * a **semantic segmentation** network, PSPNet (Zhao et al., 2017), which labels every
#   pixel with a category;
# * an **instance segmentation** network, Mask R-CNN (He et al., 2017), which detects
#   things and predicts a mask and a confidence for each;
#
# and combines their outputs with a simple rule:
#
# 1. drop the instances whose confidence is below a **score threshold** (0.5), and
#    visit the rest from the most confident;
# 2. for each instance, remove the pixels already assigned to earlier (more confident)
#    instances; if more than a fraction of it (the **overlap threshold**, 0.5) was
#    already taken, drop it, otherwise accept its non-overlapping part;
# 3. fill the remaining pixels with the *stuff* classes of the semantic map, resolving
#    any overlap between thing and stuff classes in favour of the thing. Things come
#    only from instances: a pixel the semantic map calls a thing but that no instance
#    claimed becomes void.
#
# panopticapi's reference script adds one more rule: a stuff category left with fewer
# than 4096 free pixels in the image (a setting made for COCO's images, about
# 640 x 480) becomes void there. This chapter trains tiny versions of both networks on
# the built-in dataset, then takes the merge apart step by step.
#
# The paper ran this baseline with published models on Cityscapes, ADE20k and
# Mapillary Vistas and set it beside its human annotators: machines came close to
# humans in SQ but fell far behind in RQ. Which backbones each published model used,
# and the per-dataset numbers, are in the paper's machine-baseline tables; we do not
# restate them here, but we check its conclusion on our data at the end of the chapter.
#
# **After this chapter you can**
#
# * describe PSPNet's pyramid pooling and Mask R-CNN's stages, and train tiny versions
#   of both;
# * run the heuristic merge by hand: score threshold, most confident first, the overlap
#   rule, things over stuff, the stuff area limit;
# * read ablations that remove one network, and the effect of each merge threshold;
# * compare a model with the annotators of chapter 2 in SQ and RQ.
#
# **Prerequisites:** chapters 1 and 2; PyTorch basics (a module, a loss, an optimiser
# step); what a convolutional backbone is.
#
# **Run time** (measured by `panopticlab book run`): `ci` 21 s and `laptop` 3 min 8 s on two CPU cores;
# `gpu` not yet measured.
# In `ci` the networks take a few training steps, then the shipped weights are loaded;
# in `laptop` most of the time is the two trainings (PSPNet, then Mask R-CNN).

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

import panopticlab
from panopticlab import data, metrics, viz
from panopticlab.engine import evaluate, pretrained, recipes, rescore, runs
from panopticlab.exercises import ch03
from panopticlab.models import HeuristicBaseline, zoo
from panopticlab.postprocess import ablation_merge
from panopticlab.viz import concepts

profile = panopticlab.get_profile()
panopticlab.seed_everything(profile.seed)
CATEGORIES = data.SYNTHETIC_CATEGORIES
print(profile)

# %% [markdown]
# ## The two networks
#
# **PSPNet** runs a dilated ResNet (output stride 8 instead of 32, so the feature map
# keeps detail) and then a *pyramid pooling module*: the features are average-pooled
# into 1x1, 2x2, 3x3 and 6x6 grids, each projected and upsampled back, and concatenated
# with the input feature map. The 1x1 bin sees the whole image: context that tells
# water from sky when their colours are the same. During training an auxiliary head on
# the fourth ResNet stage (res4, torchvision's `layer3`) adds a second loss, weighted
# 0.4, that helps the early layers learn.
#
# **Mask R-CNN** proposes boxes with a region proposal network over a feature pyramid
# (FPN), classifies and refines them, and predicts a 28x28 mask inside each box. We
# assemble it from torchvision's parts.
#
# Both come in a `tiny` configuration, for CPUs, and a `full` one (ResNet-50, the
# published architecture). As full-size models start from ImageNet weights, both tiny
# networks start from one small ResNet pretrained on the built-in dataset
# (`models.tiny_backbone()`, made by `scripts/pretrain_backbone.py`), its first two
# stages frozen as detectron2 freezes them; `tiny_backbone(pretrained=False)` would
# train them from scratch. PSPNet dilates the last two stages of that ResNet (output
# stride 8); Mask R-CNN puts an FPN on it (stride 4 to 64).

# %%
for name in ("pspnet-tiny", "maskrcnn-tiny", "pspnet-full", "maskrcnn-full"):
    model = zoo.build_model(name, CATEGORIES)
    print(f"{name:<14} {sum(p.numel() for p in model.parameters()) / 1e6:6.2f} M parameters")
del model

# %% [markdown]
# The two architectures, drawn from the configurations of the tiny models this chapter
# trains (`viz.concepts` reads the config: other bins or other RoI sizes draw other
# boxes):

# %%
fig, axes = plt.subplots(1, 2, figsize=(15, 4.8), layout="constrained")
tiny_semantic = zoo.build_model("pspnet-tiny", CATEGORIES)
tiny_instance = zoo.build_model("maskrcnn-tiny", CATEGORIES)
concepts.draw_pyramid_pooling(tiny_semantic.config, ax=axes[0])
concepts.draw_mask_rcnn(tiny_instance.config, ax=axes[1])
plt.show()
assert len(concepts.pyramid_pooling_labels(tiny_semantic.config)["branches"]) == len(tiny_semantic.config.bins)
del tiny_semantic, tiny_instance

# %% [markdown]
# ## Training
#
# The two networks are trained separately, exactly as the paper's baseline was: each
# with its own loss on its own targets (the semantic map; the boxes, labels and masks
# of the things). The recipes (`engine.recipes`) set steps, batch size, image size and
# optimiser per profile; the engine shows a progress bar with the running losses. In
# the `laptop` profile the two cells below take about 1 and 3 minutes on two CPU
# cores; in `ci` a few seconds (too few steps to learn anything).
#
# The plots show each loss (log scale, smoothed over 25 steps), the learning rate
# (warm-up, then decay) and the gradient norm. PSPNet's `loss_aux` is already
# multiplied by its weight 0.4, so it sits below the main loss without being better.

# %%
semantic_recipe = recipes.recipe("pspnet-tiny", profile)
instance_recipe = recipes.recipe("maskrcnn-tiny", profile)
print(semantic_recipe)
print(instance_recipe)

# %%
semantic_model, semantic_training = runs.train_network(semantic_recipe, CATEGORIES, seed=profile.seed)
print(f"trained {semantic_recipe.steps} steps in {semantic_training.seconds:.0f} s")
viz.plot_history(semantic_training.history, smooth=25)
plt.show()

# %%
instance_model, instance_training = runs.train_network(instance_recipe, CATEGORIES, seed=profile.seed)
print(f"trained {instance_recipe.steps} steps in {instance_training.seconds:.0f} s")
viz.plot_history(instance_training.history, smooth=25)
plt.show()

# %%
for training in (semantic_training, instance_training):
    losses = training.history.values("loss")
    assert np.isfinite(losses).all(), "a loss diverged"
    if len(losses) >= 20:
        assert np.mean(losses[-5:]) < np.mean(losses[:5]), "training must lower the loss"

# %% [markdown]
# The package also ships both tiny networks trained for longer
# (`scripts/train_checkpoints.py`). In the `ci` profile the few steps above teach the
# networks nothing, so the rest of the chapter uses the shipped weights there; in the
# other profiles it uses the networks you just trained. The shipped weights come with
# the numbers the *baseline made of the two of them* reaches on a fixed validation set
# (50 images of 128 x 128, seed 0: the set the `laptop` profile evaluates on below, so
# you can compare your own training with them), and each network's number alone:

# %%
pretrained_semantic, semantic_info = pretrained.load_pretrained("pspnet-tiny")
pretrained_instance, instance_info = pretrained.load_pretrained("maskrcnn-tiny")
print("baseline (shipped pair):", {k: semantic_info[k] for k in ("image_size", "pq", "pq_th", "pq_st")})
for info in (semantic_info, instance_info):
    print(f"{info['name']:<14} {info['steps']} steps; alone ({info['alone']['variant']}): PQ {info['alone']['pq']}")
if profile.is_ci:
    semantic_model, instance_model = pretrained_semantic, pretrained_instance

# %% [markdown]
# ## What each network predicts
#
# We evaluate on the validation split at the training image size. The engine's one
# evaluation loop (`engine.evaluate`) runs both networks once per image, merges their
# outputs, scores the result with the PQ evaluator of chapter 2, and, because we ask for
# it, keeps every image's raw outputs (the semantic map, the detections, the merge and
# its steps) so that the rest of the chapter can look at them and merge them again
# without running a network.

# %%
EVAL_SIZE = instance_recipe.image_size if not profile.is_ci else instance_info["image_size"]
val_set = recipes.val_data(size=EVAL_SIZE, num=profile.pick(ci=16, laptop=50, gpu=200), seed=0)
baseline = HeuristicBaseline(semantic_model, instance_model, CATEGORIES)
evaluation = evaluate(baseline, val_set, CATEGORIES, ablations=("semantic_only", "instance_only"),
                      keep_predictions=True)
if not profile.is_ci:  # kept for chapter 7; ci runs are too short to compare
    runs.save_book_run(runs.record_run('baseline-tiny', baseline, [semantic_training, instance_training], evaluation, val_set, profile=profile.name,
                                       seed=profile.seed))
predictions = [prediction for _, prediction in evaluation.predictions]
viz.show_network_outputs(val_set[0].image, predictions[0], CATEGORIES)

# %% [markdown]
# Compare the two pictures with the image. The semantic map knows where stuff is, but
# it has no notion of objects: touching things of one class run together, and a small
# network sometimes paints one object with two thing classes. The detector separates
# objects, but it can miss small ones and return overlapping masks, or a second, weaker
# mask for an object it already found. The merge has to reconcile the two.
#
# ## The merge, step by step
#
# `postprocess.heuristic_merge` is a pure function (arrays in, panoptic segmentation
# out) that gives panopticapi's `combine_semantic_and_instance_predictions.py` pixel
# for pixel (segment ids are numbered differently), and keeps every intermediate step.
# Which instance went first, how much of it more confident ones had already taken, and
# what happened to it: *kept* whole, *cut* (kept without its taken pixels), dropped
# because too much of it was taken (*overlap*), or dropped because its mask is empty.
# (torchvision already returns detections sorted by score, so the visiting order and
# the input order coincide here.) The whole rule, with this chapter's thresholds
# written in:

# %%
concepts.draw_merge_flowchart(baseline.merge_config, EVAL_SIZE * EVAL_SIZE)
plt.show()

# %% [markdown]
# Now the merge of one image, step by step.

# %%
# the validation image whose merge had the most to resolve
busiest = max(range(len(predictions)), key=lambda i: sum(s.overlap > 0 for s in predictions[i].merge.steps.instances))
sample, prediction = val_set[busiest], predictions[busiest]
steps = prediction.merge.steps
print(steps.report(CATEGORIES))

# %%
viz.show_merge_steps(sample.image, prediction, CATEGORIES)

# %%
kept = [s for s in steps.instances if s.outcome in ("kept", "cut")]
assert all(a.score >= b.score for a, b in zip(steps.instances, steps.instances[1:])), "most confident first"
assert all(s.overlap_fraction <= 0.5 for s in kept), "kept instances lost at most half of their pixels"
assert prediction.panoptic.id_map.max() == len(prediction.panoptic.segments)
_ = prediction.panoptic.validate(CATEGORIES, check_statistics=True)

# %% [markdown]
# ## How good is it? Ablations
#
# PQ of the merged result on the validation split, against two ablations that each keep
# only one network (`postprocess.ablation_merge`, which the evaluator called for each
# image from the same network outputs):
#
# * **semantic only**: things come from connected regions of the semantic map, so
#   touching objects of a class merge (chapter 1);
# * **instance only**: no semantic map, so every stuff pixel is void.

# %%
ablations = {"baseline": evaluation.results, "semantic only": evaluation.ablations["semantic_only"],
             "instance only": evaluation.ablations["instance_only"]}
print(metrics.format_comparison(ablations))
print(f"mIoU of the semantic network: {100 * evaluation.miou:.1f}")

# %% [markdown]
# Read the PQ_th and PQ_st columns. Without the semantic map there is no stuff at all.
# Without instances, stuff is nearly unchanged but things collapse, for two reasons:
# connected regions merge touching objects of one class, and the tiny PSPNet often
# paints one object with two thing classes or leaves stray blobs, each of which becomes
# a false positive. How much is the merging alone? Split the *ground-truth* semantic map
# into connected regions, a perfect semantic network, and score the result:

# %%
perfect = metrics.evaluate_pairs(
    [(s.panoptic, ablation_merge("semantic_only", s.panoptic.category_map(), None, CATEGORIES).panoptic)
     for s in val_set], CATEGORIES)
print(f"perfect semantic map, things from connected regions: PQ_th {100 * perfect['Things']['pq']:.1f}, "
      f"PQ_st {100 * perfect['Stuff']['pq']:.1f}")
assert perfect["Things"]["pq"] < 0.95, "touching objects of one class merge even with a perfect semantic map"

# %% [markdown]
# ## How far from the annotators?
#
# Chapter 2 scored a second, simulated annotator against the first. Here is the same
# second annotation of the *same validation images*, set beside the baseline: the
# paper's comparison of machines and humans, in PQ, SQ and RQ for things and stuff.

# %%
annotator = metrics.evaluate_pairs([(val_set[i].panoptic, val_set.second_annotation(i)) for i in range(len(val_set))],
                                   CATEGORIES)
print(metrics.format_comparison({"annotator 2": annotator, "baseline": evaluation.results}))
print(f"{'':14s} {'SQ_th':>6s} {'RQ_th':>6s} {'SQ_st':>6s} {'RQ_st':>6s}")
for name, r in (("annotator 2", annotator), ("baseline", evaluation.results)):
    print(f"{name:14s} " + " ".join(f"{100 * r[g][k]:6.1f}" for g in ("Things", "Stuff") for k in ("sq", "rq")))
gaps = {key: annotator["All"][key] - evaluation.results["All"][key] for key in ("sq", "rq")}
print(f"the annotator is ahead by {100 * gaps['sq']:.1f} points of SQ and {100 * gaps['rq']:.1f} points of RQ")

# %%
assert annotator["num_images"] == evaluation.results["num_images"] == len(val_set), "the same images"
assert annotator["All"]["n"] == evaluation.results["All"]["n"] == len(CATEGORIES)

# %% [markdown]
# Read the two gaps with chapter 2's caveat: the second annotator is simulated, and its
# settings decide how much it disagrees. Still, the comparison shows what the paper
# saw: where the baseline loses to the annotator, is it in how well it outlines what
# it finds (SQ), or in finding the right segments at all (RQ)? On the paper's three
# datasets the RQ gap was much the larger one.

# %%
full, sem_only, inst_only = (r["All"]["pq"] for r in ablations.values())
assert full > inst_only, "stuff from the semantic network must help"
assert evaluation.results["Stuff"]["pq"] > 0.5, "the semantic network must have learned the stuff classes"
if not profile.is_ci:
    assert full > 0.3, "a trained tiny baseline reaches a useful PQ"

# %% [markdown]
# ## The effect of each threshold
#
# The merge has three knobs, each with a published default, held together in one
# `MergeConfig`: the **score threshold** (0.5), the **overlap threshold** (0.5) and the
# **stuff area limit** (4096 px of the image as evaluated, on COCO images; the tiny
# models, `MergeConfig.tiny()`, keep the same fraction of the image for smaller ones,
# about 218 px at 128 x 128). Because the evaluation kept the networks' outputs,
# `engine.rescore` only reruns the cheap merge: `score(...)` below scores the baseline
# with one setting changed, the stuff limit in pixels of the 128 px images.

# %%
stuff_limit = baseline.merge_config.stuff_limit(EVAL_SIZE * EVAL_SIZE)
in_pixels = replace(baseline.merge_config, stuff_area_limit=stuff_limit, stuff_area_reference=None)


def score(**changes):
    return rescore(evaluation.predictions, CATEGORIES, merge=replace(in_pixels, **changes))


sweeps = {
    "score_threshold": [0.1, 0.3, 0.5, 0.7, 0.9],
    "overlap_threshold": [0.1, 0.3, 0.5, 0.7, 0.9],
    "stuff_area_limit": [0, stuff_limit / 4, stuff_limit, 2 * stuff_limit, 4 * stuff_limit],
}
defaults = {"score_threshold": 0.5, "overlap_threshold": 0.5, "stuff_area_limit": stuff_limit}
figure, curves = viz.plot_sweeps(score, sweeps, defaults)
display(figure)
for setting, values in sweeps.items():
    print(f"{setting:<18} " + "  ".join(f"{v:>6.4g}: PQ_th {100 * t:5.1f}" for v, t in zip(values, curves[setting]["Things"])))

# %%
for setting in sweeps:  # each curve passes through the evaluation at its default (the middle value)
    assert curves[setting]["All"][2] == evaluation.results["All"]["pq"], "the default reproduces the evaluation"
# the score threshold only removes instances: at 0.9 no thing gets more true positives than at 0.5
high, default = (score(score_threshold=t)["per_class"] for t in (0.9, 0.5))
assert all(high[c]["tp"] <= default[c]["tp"] for c in CATEGORIES.thing_ids)

# %% [markdown]
# Read the *Things* curves and the printed numbers; what follows is what to look for,
# and how much of it shows depends on the networks you trained (in `ci`, the shipped
# ones). A low score threshold lets weak detections in: they cost false positives and
# take stuff pixels (instances are visited by confidence, so a weak one never takes
# pixels from a stronger one). A high score threshold throws away detections, and with
# them true positives (the cell above checks that it never adds any). The overlap
# threshold tends to matter little: the duplicates a detector returns (numbered above)
# mostly lie almost entirely under their stronger twin, so most settings drop them. The
# stuff limit trades small false stuff regions against small true ones.
#
# All three knobs at once, live (in a notebook; the cell also runs without one, and
# checks the re-score at the defaults):

# %%
import ipywidgets


def merge_at(score_threshold=0.5, overlap_threshold=0.5, stuff_area_limit=stuff_limit):
    rescored = score(score_threshold=score_threshold, overlap_threshold=overlap_threshold,
                     stuff_area_limit=stuff_area_limit)
    print(metrics.format_comparison({"merge": rescored, "defaults": evaluation.results}))
    return rescored


knobs = ipywidgets.interactive(
    merge_at,
    score_threshold=ipywidgets.FloatSlider(value=0.5, min=0.0, max=0.95, step=0.05),
    overlap_threshold=ipywidgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05),
    stuff_area_limit=ipywidgets.FloatSlider(value=stuff_limit, min=0.0, max=4 * stuff_limit, step=stuff_limit / 8))
display(knobs)
assert merge_at()["All"] == evaluation.results["All"]
#
# ## Exercises
#
# **Exercise 3.1 — claim the pixels.** Write `claim_pixels(masks, scores,
# score_threshold, overlap_threshold)`: `masks` is an (N, H, W) boolean array. Drop
# instances scoring below the threshold, visit the rest from the most confident (ties
# in input order), skip empty masks, drop an instance if more than `overlap_threshold`
# of its pixels are already taken, and otherwise give it its free pixels. Return the
# (H, W) owner map: the input index of each pixel's instance, -1 where none.

# %%
def claim_pixels(masks, scores, score_threshold, overlap_threshold):
    # BEGIN SOLUTION
    owner = np.full(masks.shape[1:], -1)
    for i in np.argsort(-scores, kind="stable"):
        area = masks[i].sum()
        if scores[i] < score_threshold or area == 0:
            continue
        if (masks[i] & (owner >= 0)).sum() / area > overlap_threshold:
            continue
        owner[masks[i] & (owner < 0)] = i
    return owner
    # END SOLUTION


ch03.check_claim_pixels(claim_pixels);

# %% [markdown]
# **Exercise 3.2 — fill in the stuff.** Write `fill_stuff(owner, semantic, categories,
# stuff_area_limit)`: every pixel that no instance owns and that the semantic map calls
# a *stuff* category gets that category, provided the category keeps at least
# `stuff_area_limit` such free pixels in the image; everything else is 255.
# (`categories.stuff_ids` lists the stuff category ids, `categories.isthing(id)` tells
# one id's kind; `owner` is the map of exercise 3.1.)

# %%
def fill_stuff(owner, semantic, categories, stuff_area_limit):
    # BEGIN SOLUTION
    stuff = np.full(owner.shape, 255)
    for category_id in categories.stuff_ids:
        free = (semantic == category_id) & (owner < 0)
        if free.any() and free.sum() >= stuff_area_limit:
            stuff[free] = category_id
    return stuff
    # END SOLUTION


ch03.check_fill_stuff(fill_stuff);

# %% [markdown]
# **Exercise 3.3 — tune a knob.** Using `score(score_threshold=...)` from above, find
# the score threshold among 0.1, 0.2, ..., 0.9 that maximises PQ on the validation
# split. Is it the published 0.5? (Tuning on the set you report is cheating; here we
# only look.)

# %%
# BEGIN SOLUTION
candidates = np.round(np.arange(0.1, 1.0, 0.1), 1)
best_threshold = max(candidates, key=lambda t: score(score_threshold=float(t))["All"]["pq"])
# END SOLUTION
print("best score threshold:", best_threshold)
ch03.check_best_threshold(best_threshold, score);

# %% [markdown]
# ## Summary
#
# * The baseline trains a semantic network and an instance network separately and
#   merges their outputs with a rule: most confident instance first, drop instances
#   mostly covered by earlier ones, things win over stuff, small stuff becomes void.
# * Each network alone is worse: without the semantic map there is no stuff; without
#   instances, things collapse (touching objects merge, and a semantic network's errors
#   on things become false positives) while stuff stays as it was.
# * Beside chapter 2's annotator on the same images, the gap splits into SQ (outlines)
#   and RQ (finding the segments); in the paper the RQ gap was the larger one.
# * Two networks mean two backbones and two trainings. Chapter 4's Panoptic FPN shares
#   one backbone between both tasks.
#
# ## Check your understanding
#
# 1. Why does the merge visit instances from the most confident, and what would change
#    if it visited them in the detector's order?
# 2. An instance has 16 pixels, 8 of them already taken. With the overlap threshold at
#    0.5, is it kept? With a score exactly 0.5 and the score threshold 0.5?
# 3. Why is a thing pixel that no instance claims left void, instead of being given to
#    the semantic map's thing class?
# 4. Why does panopticapi's stuff limit of 4096 pixels need scaling on our images, and
#    what goes wrong if it is applied per connected region instead of per category?
# 5. Tuning the score threshold on the validation set and reporting PQ on the same set:
#    why is that cheating, and how would you do it properly?

# %% [markdown] tags=["answers"]
# **Answers** (for the instructor; not in the student edition)
#
# 1. A pixel claimed by two instances goes to the first one visited, so the visiting order
#    decides every overlap. Most confident first gives contested pixels to the detection
#    the detector is surest of, and drops the less confident duplicates that overlap it.
#    In the detector's output order (by class, or arbitrary) a weak detection could take
#    the pixels of a strong one and push it out.
# 2. 8 of 16 is exactly half: the rule drops an instance when *more* than the overlap
#    threshold of it is taken (strictly greater), so it is kept, with its 8 free pixels. A
#    score of exactly 0.5 with the threshold 0.5 passes too: instances below the threshold
#    are dropped (score >= threshold is kept).
# 3. The semantic map's thing classes say "some thing of this class is here", not which
#    one: giving the pixel to the class would make a thing segment without an instance,
#    and a region of touching things would become one segment. The baseline takes things
#    only from instances; a thing pixel no instance claims is void, which costs less than
#    a wrong segment.
# 4. 4096 pixels is a size on COCO's images (about 640 x 480): a share of the image. On
#    128 x 128 images the same share is about 218 pixels; left at 4096, the limit would
#    remove every stuff category that covers less than a quarter of the image. Applied per connected region instead of per
#    category, a stuff category cut into pieces by things (a road between cars) would lose
#    the pieces below the limit although the category as a whole is large.
# 5. The threshold is then chosen to fit the very images it is scored on, so the reported
#    PQ is optimistic and does not say what the setting does on new images. Tune it on a
#    separate split (or by cross-validation on the training data), fix it, then report PQ
#    once on the held-out validation or test images.

# %% [markdown]
# ## References

# %%
from panopticlab import bibliography

display(Markdown(bibliography.markdown(["kirillov2019panoptic", "zhao2017pspnet", "he2017maskrcnn", "lin2017fpn",
                                        "panopticapi", "detectron2", "torchvision_detection"])))
