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
# # Chapter 8 — What came next: mask classification
#
# Every method of this book so far ends in a rule written by hand. The baseline and
# Panoptic FPN merge a semantic map and instance masks with chapter 3's heuristic (most
# confident instance first, overlaps removed, things over stuff, small stuff dropped);
# UPSNet learns the logits but fuses them with a parameter-free head whose layout is
# fixed; Panoptic-DeepLab groups pixels by centres and votes on their class. Each rule
# has settings, and each treats things and stuff by different code.
#
# The methods that came next removed the rule. **MaskFormer** (Cheng, Schwing and
# Kirillov, NeurIPS 2021) and **Mask2Former** (Cheng, Misra, Schwing, Kirillov and
# Girdhar, CVPR 2022) borrow DETR's idea (Carion et al., ECCV 2020): a fixed set of Q
# learned **queries**, each predicting *one class and one mask*. A car is a query; so is
# the sky. Training matches the Q predictions to the ground-truth segments one to one
# (the Hungarian algorithm), so every segment is predicted by exactly one query and every
# other query learns to say **"no object"**. The panoptic result is read off the queries
# by one short rule that treats things and stuff alike. This is *mask classification*:
# instead of classifying every pixel, classify every mask.
#
# **After this chapter you can**
#
# * describe a mask-classification model: pixel decoder, queries, transformer decoder,
#   class head with K + 1 outputs, masks as dot products of embeddings;
# * compute the matching cost of queries against segments, find the matching with the
#   Hungarian algorithm, and say why the loss needs it;
# * explain what the "no object" class and its down-weighting do;
# * read a panoptic result off the queries, and say why no merge rule is needed;
# * train a tiny MaskFormer on a laptop and compare it with the four earlier methods on
#   the same data and evaluator, including the kinds of mistakes it makes.
#
# **Prerequisites:** chapters 2 (PQ), 3 (the merge this chapter does without) and 7 (the
# comparison of the four methods).
#
# **Run time** (measured by `panopticlab book run`): `ci` 11 s and `laptop` 1 min 56 s on two CPU cores;
# `gpu` not yet measured.
# In `ci` four training steps, then the shipped weights; in `laptop` most of the time is
# training the tiny MaskFormer from the pretrained tiny backbone.

# %%
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

import panopticlab
from panopticlab import data, metrics, viz
from panopticlab.engine import chapter_training, evaluate, pretrained
from panopticlab.exercises import ch08
from panopticlab.models import zoo
from panopticlab.models.common import eval_mode
from panopticlab.postprocess import mask_former as mask_inference

profile = panopticlab.get_profile()
panopticlab.seed_everything(profile.seed)
CATEGORIES = data.SYNTHETIC_CATEGORIES
print(profile)

# %% [markdown]
# ## The network: queries that each predict a class and a mask
#
# The model (`panopticlab.models.mask_former`) has three parts:
#
# * a **backbone and a pixel decoder**: the ResNet of every earlier chapter, and an FPN
#   from its stride-32 features back to stride 4 that ends in a map of per-pixel
#   **embeddings** E, a D-dimensional vector at every pixel;
# * a **transformer decoder**: Q learned query vectors, refined by a few layers of
#   attention. In each layer the queries attend to each other (*self-attention*: two queries
#   can agree not to predict the same object) and to the pixel decoder's features
#   (*cross-attention*: each query gathers what it predicts from the image). Mask2Former's
#   version is *masked*: a query attends only inside the mask it predicted after the
#   previous layer, and the layers visit the strides 32, 16 and 8 in turn;
# * two **heads** on every query: a linear layer to K + 1 class logits (the K categories
#   and "no object"), and an MLP to a mask embedding e_q. The query's mask is the dot
#   product of e_q with the embedding of every pixel: m_q(x) = <e_q, E(x)>, one logit per
#   pixel, a sigmoid away from a probability.
#
# Nothing here is specific to things or to stuff, and nothing needs boxes, centres or a
# fixed number of instances: Q only bounds the number of segments in an image. The two
# configurations: the full one has MaskFormer R50's published settings (sources in the
# module docstring; Mask2Former's decoder is `variant="mask2former"`, not the default
# because its deformable-attention pixel decoder is not built here):

# %%
for size in ("tiny", "full"):
    network = zoo.build_model(f"maskformer-{size}", CATEGORIES)
    config = network.config
    print(f"{size:>4}: {sum(p.numel() for p in network.parameters()) / 1e6:6.2f} M parameters, {config.num_queries} "
          f"queries, {config.decoder_layers} decoder layers of width {config.hidden_dim}, mask embeddings of "
          f"{config.mask_dim}, {'masked attention' if config.masked_attention else 'attention to stride 32'}; losses "
          f"class {config.loss.class_weight}, mask {config.loss.mask_weight} ({config.loss.mask_loss}), Dice "
          f"{config.loss.dice_weight}, no object {config.loss.no_object_weight}")
del network

# %% [markdown]
# The tiny network is Mask2Former-shaped (masked attention, its losses and its inference
# rule) at a quarter of the width, with 30 queries: a synthetic scene holds at most 20
# segments. Its configuration (`MaskFormerConfig.tiny`) says why each value differs from
# the published one.
#
# ## Training
#
# Training needs targets a query can be compared with. Each image's ground truth becomes a
# list of **segments**, each one class and one binary mask: every thing instance, and every
# stuff category present as one segment (crowd regions and void are no segment). The same
# model, the same data and the same recipe format as every chapter:

# %%
run = chapter_training.train_in_chapter("maskformer-tiny", profile, CATEGORIES)
recipe, history = run.recipe, run.history
viz.plot_history(history, smooth=25)
plt.show()

# %%
chapter_training.check_losses_fell(history, {"loss_ce", "loss_mask", "loss_dice"})

# %% [markdown]
# The losses come in two sets: those of the last decoder layer (`loss_ce`, `loss_mask`,
# `loss_dice`) and the same three summed over the earlier layers (`_aux`): every layer's
# prediction is matched and scored (*deep supervision*), so each layer learns to predict
# by itself (with masked attention, one more prediction is scored: the learned queries'
# own, before the first layer). The `shipped:` line above is the shipped network (2000
# steps, by `scripts/train_checkpoints.py --model maskformer-tiny`) and its scores. In
# `ci` four steps teach nothing, so from here on the chapter uses those shipped weights
# there; in the other profiles, the network you just trained.

# %%
model = run.model.eval()
val_set = run.val_set()
evaluation = evaluate(model, val_set, CATEGORIES, keep_predictions=True)
run.keep(evaluation, val_set)  # for chapter 7 (not in ci: its runs are too short to compare)
kept = evaluation.predictions
print(metrics.format_comparison({"MaskFormer (tiny)": evaluation.results}))

# %%
assert evaluation.results["Stuff"]["pq"] > 0.5, "the stuff queries must have learned the stuff classes"
assert evaluation.results["Things"]["rq"] > 0, "some things must be found"

# %% [markdown]
# ## The matching, on one image
#
# Why a matching at all? The loss must say which query should have predicted which
# segment. The queries are not ordered and not tied to places in the image, so there is no
# fixed answer; the Hungarian algorithm (Kuhn 1955) picks the one-to-one assignment of
# least total **cost**, recomputed at every training step. The cost of query q for segment
# n adds three terms, with the weights of the model's configuration:
#
# $$C(q, n) = -w_{class}\, p_q(c_n) + w_{mask}\, \mathrm{BCE}(m_q, t_n) + w_{dice}\, (1 - \mathrm{Dice}(m_q, t_n))$$
#
# * p_q(c_n), the probability the query gives the segment's class (negated: a higher
#   probability is a lower cost);
# * the mean binary cross-entropy of the query's mask probabilities against the segment's
#   mask, pixel by pixel;
# * one minus the Dice coefficient, 2|m ∩ t| / (|m| + |t|), computed on probabilities
#   (with +1 on both sides so that two empty masks agree): the overlap, insensitive to the
#   size of the segment, where the BCE is dominated by large ones.
#
# Here is the matching the trained model makes on one validation image: the cost of the
# first queries and of every matched one (rows) for every segment (columns), the matched
# pairs circled, and under it each matched query's mask (red where its probability is at
# least 0.5) with its segment outlined (white). A cost can be negative: the class term is
# minus a weighted probability. The stuff columns cost far more for every query (their
# masks are large, so the mask terms are), and the colours stop at the upper quartile so
# that the differences among the small segments stay visible. A matched query with a
# faint mask is one the loss is still pulling towards its segment; at inference it may
# well be dropped (its fate is printed further down).

# %%
sample = val_set[0]
training_view = data.dataset.PanopticDataset(val_set, CATEGORIES, targets=zoo.spec("maskformer-tiny").targets)
images, targets = data.dataset.collate_panoptic([training_view[0]])  # what a training step sees (no augmentation)
matching = model.explain_matching(images, targets)[0]
height, width = sample.image.shape[:2]
names = [CATEGORIES.name(CATEGORIES.ids[int(label)]) for label in matching.labels]
fig = viz.show_set_matching(matching.cost.numpy(), matching.queries.numpy(), matching.targets.numpy(), names,
                            image=sample.image, target_masks=matching.masks[:, :height, :width].numpy(),
                            query_masks=matching.mask_logits[:, :height, :width].sigmoid().numpy(), max_queries=12)
display(fig)

# %%
cost = matching.cost.numpy()
best = cost[matching.queries, matching.targets].sum()
rng = np.random.default_rng(0)
for _ in range(200):  # no other one-to-one assignment is cheaper
    other = rng.permutation(len(cost))[:cost.shape[1]]
    assert cost[other, np.arange(cost.shape[1])].sum() >= best - 1e-6
greedy = cost.argmin(axis=0)  # each segment its cheapest query, ignoring that two may want the same one
print(f"{len(names)} segments, {len(cost)} queries; total cost of the matching {best:.2f}; the greedy choice "
      f"uses {len(set(greedy))} distinct queries for {len(greedy)} segments")
assert len(set(matching.queries.tolist())) == len(matching.queries) == len(names), "one query per segment"

# %% [markdown]
# A greedy choice (each segment its cheapest query) can give two segments the same query;
# the matching never does. Early in training the cost is nearly flat and the matching
# almost arbitrary; as the queries specialise, the same query tends to win the same kind
# of segment, and the matching becomes stable.
#
# ## The loss, and what "no object" does
#
# Once matched, each query has a target: its segment, or "no object" for the Q - N queries
# left over. The loss is a cross-entropy over the K + 1 classes for **every** query, and a
# mask loss (BCE, 5) and a Dice loss (5) for the **matched** ones only: an unmatched query's
# mask is never scored. Most queries are unmatched (30 queries against the segments counted
# above; 12.5 segments on average over the training scenes), so
# "no object" would dominate the classification loss; its weight is divided by ten
# (`no_object_weight = 0.1`, MaskFormer's and Mask2Former's value).
#
# "No object" is what lets a fixed number of queries describe a varying number of
# segments: the model says *how many* segments there are by how many queries it does not
# switch off. The inference rule then drops every query whose most probable class is "no
# object". On the image above:

# %%
with eval_mode(model), torch.no_grad():
    prediction = model.inference(images)[0]
steps = prediction.merge
print(Counter(steps.outcomes))
print(steps.report(CATEGORIES))

# %% [markdown]
# ## Reading the panoptic result off the queries
#
# The inference rule (`postprocess.mask_former.mask_former_panoptic`, Mask2Former's
# `panoptic_inference`):
#
# 1. **keep** the queries whose most probable class is not "no object" and whose
#    probability is above a threshold (0.8 as published; 0.4 for the tiny model, which
#    after minutes of training is rarely that sure of a small thing: `MaskFormerConfig.tiny`
#    gives the measurement);
# 2. **assign** every pixel to the kept query with the highest score x mask probability;
# 3. a query's **mask** is its pixels of probability at least 0.5, its **segment** the
#    pixels it won inside its mask; drop it when it won nothing there, or when all the
#    pixels it won are fewer than 80 % of its mask's area (most of it went to others: a
#    duplicate or a fragment);
# 4. **merge stuff by class**: two queries of one stuff class make one segment.
#
# Compare chapter 3's merge: there, instances were pasted in order of confidence, overlaps
# removed by a rule, things won over stuff, and small stuff regions were dropped. Here
# things and stuff compete pixel by pixel on the same footing, the product of a class
# score and a mask probability. What is left of a hand-made rule is small but not nothing:
# the score threshold (which the tiny model needed tuned), the 0.5 mask threshold and the
# overlap rule that removes duplicates; and it is not free (chapter 7 times it per image).
# Each query's mask over the image, most confident first, and what became of it:

# %%
display(viz.show_queries(sample.image, prediction.outputs["mask_logits"].sigmoid().numpy(), steps, CATEGORIES))
display(viz.show_side_by_side(sample.image, sample.panoptic, CATEGORIES))  # the ground truth
display(viz.show_side_by_side(sample.image, prediction.panoptic, CATEGORIES))  # the prediction

# %% [markdown]
# Read the figures together (the ground truth first, then the prediction). The stuff
# queries are sure of their class (0.99 and above) and of their masks, and the stuff comes
# out whole. The thing queries are less sure of their class, which can be wrong, and
# their masks are not sharp: one mask covers two neighbouring shapes, or a
# confident mask loses most of its pixels to a neighbour and is dropped by the overlap rule
# ("lost to others"), or it wins nothing. Where no kept query wins a thing's pixels with a
# mask of its own, they stay void (black). This is the tiny model's main failure, and the
# table below measures it.

# %%
segments = prediction.panoptic.segments
assert len(segments) == sum(o == mask_inference.KEPT for o in steps.outcomes), "one segment per kept query"
stuff_ids = [s.category_id for s in segments if not CATEGORIES.isthing(s.category_id)]
assert len(stuff_ids) == len(set(stuff_ids)), "stuff merges by class: one segment per stuff category"

# %% [markdown]
# ## Against the four
#
# The shipped models of chapters 3 to 6 and this chapter's MaskFormer on the same
# validation images, with the same evaluator. Two things make this comparison unequal: the
# four were trained for 1000 to 1500 steps (8 to 15 minutes), the MaskFormer of this
# chapter for the recipe's steps (the shipped one, in `ci`, for 2000); and the four see
# every image enlarged twice inside, which MaskFormer does not (enlarged, it reached
# PQ_th 10.4 instead of 7.8 after 600 steps, for four times the pixels: see
# `MaskFormerConfig.tiny`). Chapter 7's table compares all five at one budget.

# %%
others = {"baseline (ch. 3)": "baseline-tiny", "Panoptic FPN (ch. 4)": "panoptic-fpn-tiny",
          "UPSNet (ch. 5)": "upsnet-tiny", "Panoptic-DeepLab (ch. 6)": "panoptic-deeplab-tiny"}
models = {label: pretrained.load_pretrained(name)[0] for label, name in others.items()}
evaluations = {label: evaluate(candidate, val_set, CATEGORIES, keep_predictions=True, progress=False)
               for label, candidate in models.items()}
label = "MaskFormer (shipped)" if profile.is_ci else f"MaskFormer (trained here, {recipe.steps} steps)"
evaluations[label] = evaluation
print(metrics.format_comparison({name: e.results for name, e in evaluations.items()}))

# %% [markdown]
# And the kinds of mistakes each makes (chapter 7's `metrics.error_analysis`): misses,
# false alarms, merges (one prediction over two objects) and splits (one object in two
# predictions), summed over the validation images.

# %%
totals = {}
for name, e in evaluations.items():
    matchings = [metrics.match_segments(record["panoptic"], predicted.panoptic) for record, predicted in e.predictions]
    totals[name] = sum((Counter(metrics.error_analysis(m).counts()) for m in matchings), Counter())
print(f"{'':34s} {'misses':>7s} {'false alarms':>13s} {'merges':>7s} {'splits':>7s}")
for name, count in totals.items():
    print(f"{name:34s} {count['fn']:7d} {count['fp']:13d} {count['merges']:7d} {count['splits']:7d}")

# %%
for name, e in evaluations.items():
    assert e.results["Stuff"]["pq"] > 0.5, f"{name}: stuff is learned"

# %% [markdown]
# Read the table with chapter 7's caution: tiny networks, a few minutes of training,
# simple shapes. On these scenes the tiny MaskFormer's weakness is things, small ones most
# (chapter 7's PQ_S column), and its typical mistake is the miss: a thing no kept query
# wins with a mask of its own. A thing is found only if one of thirty queries has learned
# both its class and a sharp mask for it, wherever it lies; the detectors instead propose
# boxes at every position, and Panoptic-DeepLab votes at every pixel. The
# published models answer with resolution (Mask2Former's masked attention at three
# strides, 12544 sampled points per mask at 1024 px), with 100 to 200 queries, and with
# training far longer: 50 epochs of COCO for Mask2Former R50.
#
# ## Published results
#
# COCO panoptic `val2017`, PQ in %, each read from the model zoo of the named repository
# (the row of the configuration given):
#
# | method | backbone, training | PQ | source |
# |---|---|---:|---|
# | Panoptic FPN (ch. 4) | R50-FPN, 3x | 41.5 | detectron2 `MODEL_ZOO.md` |
# | MaskFormer | R50 + 6 encoder layers, 554k iterations, batch 64 | 46.5 | facebookresearch/MaskFormer `MODEL_ZOO.md`, `maskformer_panoptic_R50_bs64_554k` |
# | Mask2Former | R50, 50 epochs, batch 16 | 51.9 | facebookresearch/Mask2Former `MODEL_ZOO.md`, `maskformer2_R50_bs16_50ep` |
# | Mask2Former | Swin-L (ImageNet-21k), 100 epochs, 200 queries | 57.8 | facebookresearch/Mask2Former `MODEL_ZOO.md`, `maskformer2_swin_large_IN21k_384_bs16_100ep` |
# | kMaX-DeepLab | ResNet-50 | 53.0 | google-research/deeplab2 `g3doc/projects/kmax_deeplab.md` |
# | EoMT | ViT-L, 640 x 640 | 56.0 | tue-mps/eomt `README.md` |
#
# With the same ResNet-50, Mask2Former is ten points of PQ above Panoptic FPN. kMaX-DeepLab
# (Yu et al., ECCV 2022) replaces the cross-attention's softmax over pixels by a k-means
# step: every pixel goes to the one query it matches best, and each query is updated from
# its pixels; EoMT (Kerssies et al., CVPR 2025) drops the pixel decoder
# and the separate transformer decoder and lets the queries join the layers of a plain
# Vision Transformer. The set of queries, the matching and the "no object" class stayed.
#
# ## Exercises
#
# **Exercise 8.1 — the matching cost.** Write `matching_cost(class_probs, mask_probs,
# gt_labels, gt_masks, w_class, w_mask, w_dice)` in numpy: `class_probs` (Q, K + 1) are
# softmax probabilities, the last column "no object"; `mask_probs` (Q, P) sigmoid
# probabilities at P pixels; `gt_labels` (G,) classes in 0..K-1; `gt_masks` (G, P) in
# {0, 1}. Return the (Q, G) cost of the formula above: the BCE averaged over the P pixels,
# Dice = (2 Σ p t + 1) / (Σ p + Σ t + 1).

# %%
def matching_cost(class_probs, mask_probs, gt_labels, gt_masks, w_class, w_mask, w_dice):
    # BEGIN SOLUTION
    p, t = mask_probs, gt_masks  # (Q, P), (G, P)
    class_term = -class_probs[:, gt_labels]  # (Q, G): the probability, not its log
    bce = -(np.log(p) @ t.T + np.log(1 - p) @ (1 - t).T) / p.shape[1]  # mean over the P pixels
    dice = (2 * p @ t.T + 1) / (p.sum(1)[:, None] + t.sum(1)[None, :] + 1)
    return w_class * class_term + w_mask * bce + w_dice * (1 - dice)
    # END SOLUTION


ch08.check_matching_cost(matching_cost);

# %% [markdown]
# **Exercise 8.2 — reading the result off the queries.** Write
# `panoptic_inference(class_probs, mask_probs, is_thing, score_threshold,
# overlap_threshold)`: `class_probs` (Q, K + 1), `mask_probs` (Q, H, W), `is_thing` (K,)
# bool. The rule of the section above:
#
# 1. keep the queries whose most probable class is not "no object" and whose probability
#    is above `score_threshold`;
# 2. each pixel goes to the kept query with the highest score x mask probability;
# 3. in query order, a query's mask is its pixels with probability at least 0.5 and its
#    segment the pixels it won inside its mask; drop the query if that is empty, or if the
#    pixels it won (all of them) are fewer than `overlap_threshold` x its mask's area;
# 4. a stuff query whose class already has a segment adds its pixels to that segment.
#
# Return an (H, W) integer id map (0 for void) and a dict `{segment id: class}`.

# %%
def panoptic_inference(class_probs, mask_probs, is_thing, score_threshold, overlap_threshold):
    # BEGIN SOLUTION
    num_classes = class_probs.shape[1] - 1
    scores, classes = class_probs.max(1), class_probs.argmax(1)
    kept = np.flatnonzero((classes != num_classes) & (scores > score_threshold))
    id_map, segment_classes, stuff_segment = np.zeros(mask_probs.shape[1:], np.int64), {}, {}
    if len(kept) == 0:
        return id_map, segment_classes
    owner = kept[np.argmax(scores[kept, None, None] * mask_probs[kept], axis=0)]  # (H, W) query index
    for q in kept:
        won, mask = owner == q, mask_probs[q] >= 0.5
        pixels = won & mask
        if not pixels.any() or won.sum() / mask.sum() < overlap_threshold:  # won: all its pixels
            continue
        c = int(classes[q])
        if not is_thing[c] and c in stuff_segment:
            segment = stuff_segment[c]
        else:
            segment = len(segment_classes) + 1
            segment_classes[segment] = c
            if not is_thing[c]:
                stuff_segment[c] = segment
        id_map[pixels] = segment
    return id_map, segment_classes
    # END SOLUTION


ch08.check_panoptic_inference(panoptic_inference);

# %% [markdown]
# **Exercise 8.3 — the assignment, by brute force.** Write `assign(cost)` for a (Q, G)
# cost with Q >= G by trying every assignment (`itertools.permutations(range(Q), G)`):
# return `(rows, cols)`, G pairs that use each query and each segment at most once, of
# least total cost. (The Hungarian algorithm finds the same in O(Q³) instead of
# Q! / (Q - G)! tries: with 30 queries and 12 segments, about 4 x 10^16.)

# %%
import itertools


def assign(cost):
    # BEGIN SOLUTION
    num_queries, num_segments = cost.shape
    segments = np.arange(num_segments)
    best = min(itertools.permutations(range(num_queries), num_segments),  # queries[g] goes to segment g
               key=lambda queries: cost[list(queries), segments].sum())
    return np.array(best), segments
    # END SOLUTION


ch08.check_assignment(assign);

# %% [markdown]
# ## Summary
#
# * Mask classification predicts a set: Q queries, each one class (or "no object") and
#   one mask, the mask a dot product of a query embedding with per-pixel embeddings.
# * Training matches predictions to segments one to one by the Hungarian algorithm on a
#   class + mask + Dice cost; the loss scores the matched pairs, and the unmatched queries
#   learn "no object", down-weighted by ten.
# * Things and stuff are predicted the same way, and the panoptic result is read off the
#   queries; what is left of the merge is the rule that drops duplicates.
# * The published models of this family lead the COCO tables; the tiny one shows the idea
#   and its cost: many queries to train, and masks only as fine as their embeddings.
#
# **Check your understanding**
#
# 1. Why can the loss not simply compare query q with the q-th ground-truth segment?
# 2. An image has 12 segments and the model has 30 queries. How many queries learn "no
#    object" from this image, and why is that class down-weighted?
# 3. Chapter 3's merge gives things priority over stuff. Where does the mask-classification
#    inference decide between a thing and the stuff around it?
# 4. What would happen at inference if two queries predicted the same disc with the same
#    mask and nearly the same score?

# %% [markdown] tags=["answers"]
# **Answers** (for the instructor; not in the student edition)
#
# 1. The queries are an unordered set: no query is tied to a position or a segment, and
#    the number of segments changes from image to image. A fixed pairing would ask the
#    same query for a disc in one image and the sky in the next, for no reason the image
#    gives. The matching pairs each segment with the query that predicts it best now, so
#    the loss only asks each query to improve what it already does.
# 2. 30 - 12 = 18. Most queries are "no object" in every image, so with weight 1 the
#    classification loss would mostly teach "no object" and push every query towards it;
#    the weight 0.1 keeps the few matched queries' classes from being drowned out.
# 3. At every pixel, by the product of a query's class score and its mask probability:
#    the disc's query wins where its score x mask is higher than the stuff query's. No
#    rule favours either; a confident, sharp thing mask wins its pixels.
# 4. Both would be kept (if above the score); every pixel goes to the one with the higher
#    score x mask, so the other wins almost nothing of its mask and is dropped by the
#    overlap rule (less than 80 % of its mask won). One segment remains. The matching
#    loss discourages duplicates in training already: only one of the two can be matched,
#    the other is taught "no object".

# %% [markdown]
# ## References

# %%
from panopticlab import bibliography

display(Markdown(bibliography.markdown(["cheng2021maskformer", "cheng2022mask2former", "carion2020detr",
                                        "kuhn1955hungarian", "milletari2016vnet", "yu2022kmax",
                                        "kerssies2025eomt", "kirillov2019panoptic", "kirillov2019fpn"])))
