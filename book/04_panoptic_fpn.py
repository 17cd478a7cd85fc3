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
# # Chapter 4 — Panoptic FPN: one network, two branches
#
# The baseline of chapter 3 runs two networks, each with its own backbone, and trains
# them separately. Kirillov, Girshick, He and Dollár (Facebook AI Research: "Panoptic
# Feature Pyramid Networks", CVPR 2019) asked whether one network could do both jobs: keep Mask R-CNN
# as it is, and add a small *semantic branch* to the feature pyramid it already
# computes. One backbone, one forward pass, two outputs, and chapter 3's merge on top.
#
# **After this chapter you can**
#
# * say what sharing one backbone saves (parameters, training time, time per image) and
#   what it costs, and measure both;
# * tell dilated backbones (DeepLab), symmetric encoder-decoders (U-Net) and FPN's
#   asymmetric, lightweight decoder apart;
# * build Panoptic FPN's semantic branch level by level, and check it against the
#   package's;
# * read the effect of the semantic loss weight on things and stuff.
#
# **Prerequisites:** chapters 2 (PQ, PQ_th, PQ_st) and 3 (Mask R-CNN's parts and losses,
# the heuristic merge, PSPNet's dilated backbone).
#
# **Run time** (measured by `panopticlab book run`): `ci` 28 s and `laptop` 3 min 33 s on two CPU cores;
# `gpu` not yet measured.
# In `ci` the shipped weights and a few training steps; in `laptop` one Panoptic FPN is
# trained, then a short sweep.

# %%

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

import panopticlab
from panopticlab import data, metrics, viz
from panopticlab.engine import chapter_training, evaluate, pretrained, recipes, seconds_per_image, seconds_per_step
from panopticlab.exercises import ch04
from panopticlab.models import decoder_designs, panoptic_fpn, semantic_fpn, zoo

profile = panopticlab.get_profile()
panopticlab.seed_everything(profile.seed)
CATEGORIES = data.SYNTHETIC_CATEGORIES
print(profile)

# %% [markdown]
# ## One backbone, two branches
#
# Panoptic FPN is Mask R-CNN plus one module. The ResNet-FPN backbone computes the
# pyramid P2-P6 once; the region proposal network and the RoI heads use it exactly as in
# chapter 3 (the package builds both models from the same parts,
# `models.mask_rcnn.detector_parts`); and the **semantic branch** reads P2-P5 to label
# every pixel.
#
# The semantic branch does not need to tell the things apart: that is the detector's
# job. It predicts the stuff classes plus one merged class **"things"**. The merge of
# chapter 3 then takes stuff from it and things from the detections; pixels the branch
# calls "things" but no detection claims become void.
#
# What does sharing save? Count the parameters of chapter 3's two networks against the
# one network here, in both configurations:

# %%
def parameters(name):
    return sum(p.numel() for p in zoo.build_model(name, CATEGORIES).parameters())


for size in ("tiny", "full"):
    semantic, instance, shared = (parameters(f"{family}-{size}") for family in ("pspnet", "maskrcnn", "panoptic-fpn"))
    print(f"{size:>4}: PSPNet {semantic / 1e6:6.2f} M + Mask R-CNN {instance / 1e6:6.2f} M = "
          f"{(semantic + instance) / 1e6:6.2f} M   vs   Panoptic FPN {shared / 1e6:6.2f} M")
    assert shared < semantic + instance, "one shared backbone is smaller than two"

# %% [markdown]
# At full size Panoptic FPN has about the parameters of Mask R-CNN alone: the semantic
# branch adds 1.6 M to Mask R-CNN's 44 M, where PSPNet adds a whole dilated ResNet-50.
# The tiny models share their tiny backbone too, so the saving is of the same kind.
#
# The instance branch is Mask R-CNN's, unchanged. For each region, RoIAlign pools the
# pyramid level that suits the region's size: a 7 x 7 window for the box head, a two-layer
# MLP that predicts the refined box and the class, and a 14 x 14 window for the mask
# branch, a stack of four 3 x 3 convolutions (the "x4" of the paper's figure) before the
# upsampling to the 28 x 28 mask. The tiny model keeps two of the four, at the tiny
# pyramid's 64 channels:

# %%
for size in ("tiny", "full"):
    mask_head = zoo.build_model(f"panoptic-fpn-{size}", CATEGORIES).roi_heads.mask_head
    convs = [m for m in mask_head.modules() if isinstance(m, torch.nn.Conv2d)]
    print(f"{size:>4}: mask branch of {len(convs)} convolutions "
          f"{' -> '.join(f'{c.kernel_size[0]}x{c.kernel_size[1]} {c.out_channels}' for c in convs)}")
    assert all(c.kernel_size == (3, 3) for c in convs) and len(convs) == (4 if size == "full" else 2)

# %% [markdown]
# ## Three ways to fine features
#
# A semantic network must label pixels, but a classification backbone ends at stride 32.
# The Panoptic FPN paper (its Figure 3) sorts the ways back to fine features into three:
#
# * **dilation** (DeepLab, chapter 3's PSPNet): remove the strides of the last stages
#   and dilate their convolutions, so the features stay at stride 8 or 16. Accurate and
#   expensive: the deepest, widest stages run at 4 to 16 times the resolution they were
#   designed for.
# * a **symmetric encoder-decoder** (U-Net): a decoder that mirrors the encoder stage by
#   stage, as deep and as wide, upsampling back with skip connections.
# * an **asymmetric, lightweight decoder** (FPN): a top-down path with one block per
#   stage and one shared channel width (256), lateral connections from the encoder.
#   The encoder runs at its normal strides; the decoder adds few weights, and far less
#   computation than dilation does. Its top-down pathway has only one block per level.
#
# How much does each cost? Rather than quote the paper, we measure it.
# `models.decoder_designs.decoder_design_costs` runs the package's full modules on one
# 512 x 512 image and counts their multiply-adds with PyTorch's
# `torch.utils.flop_counter.FlopCounterMode`, which counts the convolutions and matrix
# products (normalisation, activations and resizing are not counted). The image lives on
# PyTorch's *meta* device, which has shapes but no values, so the count comes from the
# shapes alone and takes well under a second.
#
# * (a) is the backbone of chapter 3's full PSPNet: ResNet-50 with `layer3` and `layer4`
#   dilated, at output stride 8;
# * (c) is the full Panoptic FPN's ResNet-50-FPN plus its semantic branch, up to the
#   logits at stride 4;
# * (b) has no model in the package. For this measurement only, the package builds a
#   minimal one, `models.decoder_designs.SymmetricDecoder`. It mirrors ResNet-50's stages
#   3, 2 and 1: at each stage's stride it has the stage's width and as many residual
#   blocks as the stage, with skip connections from the encoder, until it is back at
#   stride 4.
#
# In the figure, each box is a feature map: its height shows the resolution and its width
# the number of blocks.

# %%
decoder_costs = decoder_designs.decoder_design_costs(size=512)
viz.draw_decoder_designs(decoder_costs)
plt.show()
for key, name in (("dilated", "(a) dilated ResNet-50"), ("symmetric", "(b) ResNet-50 + symmetric decoder"),
                  ("fpn", "(c) ResNet-50-FPN + semantic branch")):
    design = decoder_costs[key]
    print(f"{name:<36} {design['macs'] / 1e9:5.1f} G multiply-adds  {design['params'] / 1e6:5.1f} M parameters  "
          f"output stride {design['output_stride']}")

# %%
dilated, symmetric, fpn, encoder = (decoder_costs[key] for key in ("dilated", "symmetric", "fpn", "encoder"))
assert dilated["macs"] > 2 * fpn["macs"], "at 512 px the dilated backbone costs over twice FPN + its branch"
assert dilated["params"] == encoder["params"], "dilation adds no weight: the same ResNet-50 at more positions"
assert symmetric["params"] > fpn["params"], "a decoder as wide and deep as the encoder has more weights"
assert [s["stride"] for s in dilated["stages"]] == [4, 8, 8, 8] and fpn["output_stride"] == 4

# %% [markdown]
# The three designs share the encoder, the grey part of every bar. Dilation adds no
# weight: (a) has exactly ResNet-50's parameters. It costs several times the
# multiply-adds, because `layer3` and `layer4`, the widest stages, now run at 4 and 16
# times as many positions. FPN and its semantic branch reach stride 4 for less than half
# the cost of (a) and add about 5 M parameters. The symmetric decoder, built from ResNet's
# own bottleneck blocks, costs about as many multiply-adds as FPN with its branch, but has
# more than twice their extra parameters; and it leaves a single stride-4 map, where FPN
# leaves a pyramid that the detector uses as well. Every cost here grows with the number
# of pixels, so the ratios hold at other image sizes too.
#
# Panoptic FPN takes the third, which Mask R-CNN already computes, and adds only a few
# cheap stages that bring *every* pyramid level to stride 4, where the levels are
# **summed**. Each stage is a 3x3 conv (128 channels in the paper), GroupNorm, ReLU and
# a 2x bilinear upsampling; a level gets as many stages as it needs to reach stride 4.
# The diagram is drawn from the full model's branch itself (`viz.draw_semantic_fpn`
# reads its modules):

# %%
full_model = zoo.build_model("panoptic-fpn-full", CATEGORIES)
viz.draw_semantic_fpn(full_model.semantic_head,
                      num_classes_label=f"{len(CATEGORIES.stuff_ids)} stuff + things")
plt.show()
for name, labels in viz.architecture.semantic_fpn_stages(full_model.semantic_head).items():
    print(name, "->", [label.split("\n")[0] for label in labels])
del full_model

# %% [markdown]
# Summing rather than concatenating keeps the classifier small (128 inputs instead of
# 512) and makes every level speak the same 128-channel language; UPSNet (chapter 5)
# concatenates instead. The logits come out at stride 4 and are upsampled 4x to the
# image. The paper's point is that this whole branch costs little next to a dilated
# ResNet (the paper calls it "lightweight"), yet labels pixels well: one network then does
# both jobs. Published results, with their sources, are collected in chapter 7 ("Results on
# COCO and Cityscapes").
#
# ## Training
#
# One network, one recipe, one loss: the five Mask R-CNN losses of chapter 3 (the RPN's
# objectness L_obj and box regression L_rpn; the RoI heads' classification L_c, box
# regression L_b and mask L_m) plus the semantic branch's per-pixel cross-entropy L_s:
#
# $$L = L_{obj} + L_{rpn} + \lambda_i \,(L_c + L_b + L_m) + \lambda_s L_s, \qquad
# \lambda_i = 1,\ \lambda_s = 0.5$$
#
# with the weights of detectron2's published configuration (`PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT`
# 1.0 in `config/defaults.py`, applied to the RoI heads' losses; `SEM_SEG_HEAD.LOSS_WEIGHT`
# 0.5 in `configs/COCO-PanopticSegmentation/Base-Panoptic-FPN.yaml`). The engine plots each by
# name. The tiny model starts, as chapter 3's networks did, from the shipped pretrained
# tiny ResNet-FPN with its first two stages frozen.

# %%
run = chapter_training.train_in_chapter("panoptic-fpn-tiny", profile, CATEGORIES)
recipe, history = run.recipe, run.history
viz.plot_history(history, smooth=25)
plt.show()

# %%
chapter_training.check_losses_fell(history, {"loss_semantic", "loss_mask", "loss_classifier"})

# %% [markdown]
# In the `ci` profile a few steps teach the network nothing, so from here on the
# chapter uses the shipped weights there (trained for longer by
# `scripts/train_checkpoints.py --model panoptic-fpn-tiny`, with the numbers they reach
# on a fixed validation set); in the other profiles, the network you just trained.

# %%
model, shipped_model, shipped_info = run.model, run.shipped, run.shipped_info

# %% [markdown]
# ## What the two branches predict
#
# The semantic branch's map (stuff in colour, its "things" class black: void for the
# merge), the detection branch's instances, and the merged result, on validation
# images:

# %%
EVAL_SIZE = run.image_size
val_set = run.val_set()
evaluation = evaluate(model, val_set, CATEGORIES, ablations=("instance_only",), keep_predictions=True)
run.keep(evaluation, val_set)  # for chapter 7 (not in ci: its runs are too short to compare)
predictions = [prediction for _, prediction in evaluation.predictions]
for index in (0, 1):
    display(viz.show_network_outputs(val_set[index].image, predictions[index], CATEGORIES, with_result=True,
                                     titles=("semantic branch", "detection branch")))

# %%
stuff = set(CATEGORIES.stuff_ids)
for prediction in predictions:
    assert set(np.unique(prediction.semantic)) <= stuff | {255}, "the branch names stuff, or 'things' (void)"
    assert prediction.outputs["semantic_logits"].shape[0] == len(CATEGORIES.stuff_ids) + 1
_ = predictions[0].panoptic.validate(CATEGORIES, check_statistics=True)

# %% [markdown]
# ## Against the baseline
#
# The same validation images, the same evaluator, the same merge. Both shipped models
# were trained for comparable budgets (chapter 3's pair for 600 + 1500 steps, Panoptic
# FPN for 1500), so that comparison is fair; the model you trained above is listed too.
# Time is measured here, on this machine: a training step of each network with the
# `laptop` recipe (times the steps it was trained for: its training time; in `ci`, a step
# of the `ci` recipe, which only checks that the cell runs), and the full inference of each
# model (networks and merge) per image.

# %%
baseline, baseline_info = pretrained.load_pretrained("baseline-tiny")
models = {"baseline (PSPNet + Mask R-CNN)": baseline, "Panoptic FPN (shipped)": shipped_model}
results = {name: evaluate(candidate, val_set, CATEGORIES, progress=False).results
           for name, candidate in models.items() if candidate is not model}
results["Panoptic FPN (shipped)" if profile.is_ci else "Panoptic FPN (trained here)"] = evaluation.results
print(metrics.format_comparison(results))

# %%
timing_profile = profile if profile.is_ci else "laptop"  # the shipped weights were trained with laptop steps
step_seconds = {name: seconds_per_step(zoo.build_model(name, CATEGORIES), recipes.recipe(name, timing_profile),
                                       CATEGORIES)
                for name in ("pspnet-tiny", "maskrcnn-tiny", "panoptic-fpn-tiny")}
trained_steps = {name: pretrained.SHIPPED[name].metadata["steps"] for name in step_seconds}
images = data.dataset.image_batch([val_set[i] for i in range(8)])
costs = {
    "baseline (PSPNet + Mask R-CNN)": (
        parameters("pspnet-tiny") + parameters("maskrcnn-tiny"),
        sum(trained_steps[n] * step_seconds[n] for n in ("pspnet-tiny", "maskrcnn-tiny"))),
    "Panoptic FPN (shipped)": (parameters("panoptic-fpn-tiny"),
                               trained_steps["panoptic-fpn-tiny"] * step_seconds["panoptic-fpn-tiny"]),
}
print(f"{'':<32}{'parameters':>12}{'training':>10}{'per image':>11}")
per_image = {}
for name, (count, seconds) in costs.items():
    per_image[name] = seconds_per_image(models[name], images)
    print(f"{name:<32}{count / 1e6:>10.2f} M{seconds:>8.0f} s{1000 * per_image[name]:>8.0f} ms")

# %%
ours, theirs = results["Panoptic FPN (shipped)"], results["baseline (PSPNet + Mask R-CNN)"]
delta = {key: 100 * (ours[group]["pq"] - theirs[group]["pq"])
         for key, group in (("PQ", "All"), ("PQ_th", "Things"), ("PQ_st", "Stuff"))}
print("Panoptic FPN - baseline: " + ", ".join(f"{k} {v:+.1f}" for k, v in delta.items())
      + f"; training {costs['Panoptic FPN (shipped)'][1] / costs['baseline (PSPNet + Mask R-CNN)'][1]:.2f}x "
        f"the time, inference {per_image['Panoptic FPN (shipped)'] / per_image['baseline (PSPNet + Mask R-CNN)']:.2f}x "
        f"the time per image")
assert costs["Panoptic FPN (shipped)"][0] < costs["baseline (PSPNet + Mask R-CNN)"][0], "one backbone, not two"
for name, result in results.items():
    assert result["Stuff"]["pq"] > 0.5, f"{name}: the semantic branch must have learned the stuff classes"
assert ours["All"]["pq"] > 0.5, "the shipped Panoptic FPN reaches a useful PQ"

# %% [markdown]
# How to read it. Both models see the same images, score with the same evaluator, and
# merge with the same rule, so the differences come from the networks. Stuff is where
# sharing helps least and costs least: the semantic branch reads features that the
# detector also shapes, and a few hundred steps reach the stuff quality of a separate
# PSPNet. Things come from the same Mask R-CNN branch in both models; in Panoptic FPN
# the backbone under it is also pulled towards the semantic task.
#
# Now the cost, as measured, not as expected. Sharing always saves **parameters** (the
# first column; at full size, a whole dilated ResNet-50). **Time** is another matter at
# this size. In `laptop` runs on two CPU cores the two train for similar times (their
# recipes are sized to fit a chapter) and infer about equally fast. The tiny
# backbone is cheap, so two of them cost little more than one; a Panoptic FPN step costs
# about 1.4x a Mask R-CNN step (its semantic branch works at stride 4 on every level);
# and the shipped Panoptic FPN trained 1500 such steps where the baseline trained 1500
# Mask R-CNN steps plus 600 PSPNet steps. At full size the balance differs: PSPNet runs
# the last two stages of a ResNet-50 at stride 8 (4 and 16 times the positions those
# stages were designed for), the most expensive part of the pair, and Panoptic FPN runs
# no such network. Read your own ratios in the line above; they depend on your machine.
#
# ## The semantic loss weight
#
# The objective adds the semantic cross-entropy with weight λ_s (0.5 published) to the
# detector's losses. Both branches pull on one backbone, so λ_s sets the balance: too
# low and the semantic branch hardly shapes the features; too high and the shared
# features serve the semantic task at the expense of detection. A small experiment:
# continue training the shipped model for a few steps (`laptop`: 30, at a quarter of
# the learning rate) with a very low, the published and a very high weight, from the
# same start and seed, and score each. (`ci`: one weight, two steps.)

# %%
sweep_weights = profile.pick(ci=[0.5], laptop=[0.05, 0.5, 5.0])
sweep_recipe = recipe.replace(steps=profile.pick(ci=2, laptop=30),
                              optim=recipe.optim.replace(lr=recipe.optim.lr / 4, warmup_steps=0))
sweep_val = [val_set[i] for i in range(profile.pick(ci=8, laptop=20))]
sweep = {}
for weight in sweep_weights:
    panopticlab.seed_everything(profile.seed)
    candidate = panoptic_fpn.for_categories(CATEGORIES, "tiny", semantic_loss_weight=weight)
    candidate.load_state_dict(shipped_model.state_dict())
    recipes.fit(candidate, sweep_recipe, CATEGORIES, seed=profile.seed, progress=False)
    sweep[f"λ_s = {weight}"] = evaluate(candidate, sweep_val, CATEGORIES, progress=False).results
print(f"{sweep_recipe.steps} steps each from the shipped weights, {len(sweep_val)} validation images")
print(metrics.format_comparison(sweep))

# %%
assert all(np.isfinite(r["All"]["pq"]) for r in sweep.values())
assert all(0 <= r["All"]["pq"] <= 1 for r in sweep.values())

# %% [markdown]
# Compare PQ_th across the rows, then PQ_st. The paper reports that simply adding the
# two losses hurts one of the tasks and that the relative weight has to be tuned, with
# a different best value on COCO and on Cityscapes. A few steps from a trained model
# show the direction at best: a difference of a point or two here is not a finding.
# Train from the pretrained backbone with each weight
# (`panoptic_fpn.for_categories(..., semantic_loss_weight=w)` and the full recipe) if
# you want to know.
#
# ## Exercises
#
# **Exercise 4.1 — the branch's layout.** Write `branch_layout(stride)`: for the pyramid
# level of that stride (4, 8, 16, 32, and a P6 at 64), return `(convs, upsamplings)`,
# the number of 3x3 convs and of 2x upsamplings the semantic branch applies to it.

# %%
def branch_layout(stride):
    # BEGIN SOLUTION
    stages = int(np.log2(stride / 4))
    return max(1, stages), stages
    # END SOLUTION


ch04.check_branch_layout(branch_layout);

# %% [markdown]
# **Exercise 4.2 — one level of the branch.** Write `semantic_level(x, weights,
# num_groups, upsample)` with `torch.nn.functional`: `x` is one pyramid level, float
# [B, C, h, w]; `weights` holds one `(conv_weight, gn_weight, gn_bias)` per stage. Each
# stage is a 3x3 conv (padding 1, no bias), GroupNorm with `num_groups` groups, ReLU,
# and, when `upsample` is true, a 2x bilinear upsampling (`align_corners=False`). The
# checker compares your function with the package's branch on every level.

# %%
import torch.nn.functional as F


def semantic_level(x, weights, num_groups, upsample):
    # BEGIN SOLUTION
    for conv_weight, gn_weight, gn_bias in weights:
        x = F.relu(F.group_norm(F.conv2d(x, conv_weight, padding=1), num_groups, gn_weight, gn_bias))
        if upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    return x
    # END SOLUTION


ch04.check_semantic_level(semantic_level);

# %% [markdown]
# **Exercise 4.3 — predict, then measure: λ_s and the shared backbone.** The backbone
# receives the gradient of L = L_det + λ_s L_s. As λ_s goes from 0.05 to 0.5 to 5, does
# the semantic loss's share of that gradient *rise*, *fall* or *stay*? First write your
# prediction in `prediction` ("rises", "falls" or "stays"); then measure it. Write
# `semantic_gradient_share(model, images, targets, weight, seed)`: one training step of
# `model` (train mode) with `model.config.semantic_loss_weight = weight`, returning
# ||∇(λ_s L_s)|| / (||∇(λ_s L_s)|| + ||∇L_det||), where L_det is the sum of the
# detector's five losses (every loss but `loss_semantic`, which already carries the
# weight), the gradients are taken on the parameters of `model.backbone` (the ResNet
# body and the FPN, those that require a gradient: `torch.autograd.grad`), and each norm
# is the global L2 norm over all those tensors. The RPN and RoI heads sample anchors and
# proposals at random: call `torch.manual_seed(seed)` right before the forward pass. The
# checker runs your function on a tiny model at the three weights, then tells you whether
# your prediction matched what it measured (a wrong prediction is not a failure).

# %%
# your prediction: "rises", "falls" or "stays"
# BEGIN SOLUTION
prediction = "rises"
# END SOLUTION


def semantic_gradient_share(model, images, targets, weight, seed):
    # BEGIN SOLUTION
    model.train()
    model.config.semantic_loss_weight = weight
    torch.manual_seed(seed)
    losses = model(images, targets)
    detector = sum(value for name, value in losses.items() if name != "loss_semantic")
    params = [p for p in model.backbone.parameters() if p.requires_grad]
    semantic_grads = torch.autograd.grad(losses["loss_semantic"], params, retain_graph=True, allow_unused=True)
    detector_grads = torch.autograd.grad(detector, params, allow_unused=True)
    semantic_norm = torch.sqrt(sum((g**2).sum() for g in semantic_grads if g is not None))
    detector_norm = torch.sqrt(sum((g**2).sum() for g in detector_grads if g is not None))
    return float(semantic_norm / (semantic_norm + detector_norm))
    # END SOLUTION


ch04.check_gradient_share(semantic_gradient_share, prediction);

# %% [markdown] tags=["answers"]
# **Answer to exercise 4.3** (for the instructor; not in the student edition)
#
# It rises, and it must. The gradient of λ_s L_s is λ_s ∇L_s, and L_det does not depend on
# λ_s; with the weights and the seed fixed (the seed fixes the anchors and proposals the
# RPN and RoI heads sample), ∇L_det is the same in the three runs. With a = ||∇L_s|| and
# b = ||∇L_det|| on the backbone, the share is λ_s a / (λ_s a + b) = 1 / (1 + b / (λ_s a)),
# which grows with λ_s whenever a and b are not 0: near 0 for a tiny λ_s, near 1 for a
# large one, one half at λ_s = b / a. On the checker's tiny untrained model it measured
# 0.149, 0.636 and 0.946. A good answer says why the direction is certain (linearity,
# same seed) and what the measurement does not show: it is one step from one set of
# weights. During training the weights move and a and b move with them; λ_s sets how
# hard the semantic task pulls on the shared features, which is why its best value has
# to be tuned (the sweep above) rather than read off this share. The heads' own
# gradients do not compete for the backbone, so gradients over all parameters answer a
# different question; the total loss as the detector's part counts the semantic term
# twice; a share that changes between calls is the unseeded sampling.

# %% [markdown]
# ## Summary
#
# * Panoptic FPN is Mask R-CNN plus a light semantic branch on the same feature
#   pyramid: every level brought to stride 4 by [conv, GroupNorm, ReLU, 2x up] stages,
#   summed, classified into stuff + one "things" class.
# * One backbone serves both tasks: fewer parameters, one training, one forward pass;
#   the merge is chapter 3's.
# * The semantic loss weight balances the two tasks that share the backbone.
# * Chapter 5's UPSNet keeps this design and replaces the heuristic merge with a
#   panoptic head that learns nothing but resolves conflicts inside the network.
#
# **Check your understanding**
#
# 1. Panoptic FPN's semantic branch predicts the stuff classes and one "things" class.
#    What does the merge do with a pixel the branch calls "things" that no detection
#    claims, and why not give it to the nearest detection?
# 2. Which pyramid level passes through the most [conv, GroupNorm, ReLU, 2x up] stages,
#    and why does the branch then *sum* the levels rather than concatenate them?
# 3. A dilated ResNet-50 keeps its last two stages at stride 8. By about how much does
#    that multiply the cost of those stages, and why does the FPN decoder avoid it?
# 4. With λ_s = 0 the semantic branch is still in the network. What does it learn, and
#    what happens to PQ_st?
# 5. On two CPU cores the tiny Panoptic FPN was not faster than the tiny baseline. Which
#    measurement would you make to show where the full-size saving comes from?
# 6. The dilated backbone and the plain ResNet-50 have exactly the same parameters. Why do
#    their multiply-adds differ by a factor of several? Work it out from the strides in
#    the figure of "Three ways to fine features".

# %% [markdown] tags=["answers"]
# **Answers** (for the instructor; not in the student edition)
#
# 1. It becomes void. The merge takes things only from the detections and stuff only from
#    the branch's stuff classes; a "things" pixel that no mask claims has no instance to
#    belong to. Handing it to the nearest detection would grow that mask beyond what the
#    mask head predicted, often onto another object, and turn a miss into a wrong
#    segment; left void, it only lowers the IoU of the object it belongs to.
# 2. P5 (stride 32): three [conv, GroupNorm, ReLU, 2x up] stages to reach stride 4 (P4 two,
#    P3 one, P2 one conv and no upsampling). After their stages all levels have the same
#    resolution and the same 128 channels, so they can be added: the classifier then reads
#    128 channels, not the 512 a concatenation would give (UPSNet concatenates).
# 3. `layer3` runs at stride 8 instead of 16, four times the positions, and `layer4` at 8
#    instead of 32, sixteen times; these two stages hold most of ResNet-50's weights, so
#    the network's multiply-adds grow several-fold (the chapter measures it: about 100 G
#    against 21 G at 512 px). FPN reads the encoder at its normal strides and adds one
#    light block per level on the way down.
# 4. Nothing: with λ_s = 0 no gradient reaches the branch, whose weights stay as they were
#    initialised; the backbone is shaped by the detector's losses alone. The stuff labels
#    come out as noise, so PQ_st collapses; PQ_th, which comes from the detector, barely
#    moves.
# 5. Measure each part at full size on one device: the multiply-adds (or the forward time)
#    of the full PSPNet's dilated backbone against the full Panoptic FPN's FPN and
#    semantic branch, at a realistic image size, as "Three ways to fine features" does.
# 6. Dilation spreads a kernel's taps apart without adding any: the weights are the same.
#    The cost of a convolution is its weights times its output positions, and `layer3`
#    and `layer4` now produce 4 and 16 times as many positions (stride 8 instead of 16 and
#    32).

# %% [markdown]
# ## References
#
# * A. Kirillov, R. Girshick, K. He, P. Dollár. *Panoptic Feature Pyramid Networks.*
#   CVPR 2019. arXiv:1901.02446.
# * T.-Y. Lin, P. Dollár, R. Girshick, K. He, B. Hariharan, S. Belongie. *Feature
#   Pyramid Networks for Object Detection.* CVPR 2017.
# * K. He, G. Gkioxari, P. Dollár, R. Girshick. *Mask R-CNN.* ICCV 2017.
# * Y. Wu, K. He. *Group Normalization.* ECCV 2018.
# * detectron2's `PanopticFPN` and `SemSegFPNHead` (the reference implementation of the
#   published settings).
