"""The model table: every model of the book, by name, with everything the engine needs to know.

A name is ``<family>-<size>``: ``pspnet`` (the semantic network), ``maskrcnn`` (the
instance network), ``baseline`` (both, merged by the heuristic), ``panoptic-fpn`` (one
network, two branches), ``upsnet`` (one network, a deformable semantic head and the
parameter-free panoptic head), ``panoptic-deeplab`` (bottom-up: semantic map, centres and
offsets, grouped), ``maskformer`` (mask classification: learned queries, each one class
and one mask, no fusion rule); ``tiny`` (CPU, minutes, the built-in dataset) or ``full`` (the published architecture). Each row of
:data:`MODELS` is a :class:`ModelSpec`: how to build the model, which targets it trains
on, its training recipe per run profile, the separately trained networks it is made of,
the ablations the evaluator can score from its outputs, and its shipped weights.
The recipes, the command line, the shipped checkpoints, the evaluator and the scripts
read this table and nothing else; none of them branches on a name. Adding a model is one
file (its config, its ``nn.Module``) and one row here.

    model = build_model("maskrcnn-tiny", categories)
    recipe = spec("maskrcnn-tiny").recipe("laptop")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, Callable, Mapping

from torch import nn

from ..data.categories import CategorySet
from ..recipe import OptimConfig, PublishedSchedule, TrainRecipe
from ..postprocess.heuristic import COCO_REFERENCE_AREA
from ..profiles import Profile, get_profile
from . import mask_former, mask_rcnn, panoptic_deeplab, panoptic_fpn, pspnet, upsnet
from .starts import IMAGENET
from .heuristic_baseline import HeuristicBaseline
from .mask_former import MaskFormer
from .mask_rcnn import MaskRCNN
from .panoptic_deeplab import PanopticDeepLab
from .panoptic_fpn import PanopticFPN
from .pspnet import PSPNet
from .upsnet import UPSNet

__all__ = ["ModelSpec", "MODELS", "MODEL_NAMES", "DATASETS", "spec", "build_model", "check_name", "model_settings"]

RecipeFactory = Callable[[str, Profile, "int | None"], TrainRecipe]


@dataclass(frozen=True)
class ModelSpec:
    """One row of the model table.

    Attributes:
        name: ``<family>-<size>``.
        module: the class of the model (what :attr:`build` returns).
        build: ``categories -> model``, randomly initialised.
        targets: the :class:`~panopticlab.data.dataset.PanopticDataset` targets it trains on.
        recipe_factory: ``(name, profile, steps) -> TrainRecipe``; ``None`` for a model
            trained as its :attr:`components`.
        components: names of separately trained networks the model is made of, in the
            order :attr:`assemble` takes them.
        assemble: ``(*networks, categories) -> model`` from trained components.
        ablations: variants the evaluator also scores from the model's raw outputs
            (:data:`~panopticlab.postprocess.ablations.ABLATIONS`).
        shipped: file name of trained weights in ``panopticlab/checkpoints``, or ``None``.
        shipped_steps: the steps ``scripts/train_checkpoints.py`` trains the shipped weights
            for (the laptop recipe's, or longer where it pays), or ``None``.
        summary: one line for listings.
        target_options: keyword options of the :attr:`targets` for the book's training data
            (``PanopticDataset(..., **target_options)``, e.g. Panoptic-DeepLab's small-instance
            area scaled to the synthetic images).
        published: the published training runs of the network, by data set
            (:class:`~panopticlab.recipe.PublishedSchedule`); :meth:`published_recipe` runs them.
    """

    name: str
    module: type[nn.Module]
    build: Callable[[CategorySet], nn.Module]
    targets: tuple[str, ...]
    recipe_factory: RecipeFactory | None = None
    components: tuple[str, ...] = ()
    assemble: Callable[..., nn.Module] | None = None
    ablations: tuple[str, ...] = ()
    shipped: str | None = None
    shipped_steps: int | None = None
    summary: str = ""
    target_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    published: Mapping[str, PublishedSchedule] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def size(self) -> str:
        return self.name.rsplit("-", 1)[1]

    def recipe(self, profile: Profile | str | None = None, steps: int | None = None) -> TrainRecipe:
        """The book's training recipe for a run profile (``None``: ``$PANOPTICLAB_PROFILE``).

        Args:
            steps: train this many steps instead of the profile's; the schedule's warmup
                and decay are laid out over them.

        Raises:
            ValueError: ``steps`` is not a positive integer, or the model is trained as
                its components (the message names their recipes).
        """
        if steps is not None and not (isinstance(steps, int) and steps > 0):
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if self.recipe_factory is None:
            parts = " and ".join(f"recipe({c!r})" for c in self.components)
            raise ValueError(f"{self.name} is {len(self.components)} networks trained separately, as in the "
                             f"paper: use {parts}, then combine them with {self.module.__name__}")
        if not isinstance(profile, Profile):
            profile = get_profile(profile)
        return self.recipe_factory(self.name, profile, steps)

    def published_recipe(self, dataset: str, *, world_size: int = 1, batch_size: int | None = None,
                         steps: int | None = None, input_size: int | None = None) -> tuple[TrainRecipe, list[str]]:
        """The published training run of this network on ``dataset``, as a recipe, and what it
        changes from the publication, in words (empty: the run as published).

        The recipe is the row's own (its start, frozen parts and clipping) with the
        schedule's steps, total batch, solver, crops and resizes, and the data set's published
        model configuration (:meth:`~panopticlab.recipe.PublishedSchedule.train_recipe`).

        Args:
            dataset: a key of :attr:`published` (``"coco"``, ``"cityscapes"``).
            world_size: processes sharing the batch (``torchrun``).
            batch_size: images per process instead of the published total / ``world_size``:
                the total batch changes, and the learning rate and the iterations follow the
                linear scaling rule (:meth:`~panopticlab.recipe.PublishedSchedule.scaled`).
            steps: train this many steps instead (warmup and milestones keep their places).
            input_size: the short side to train and test at instead of the published one:
                every crop and resize of the schedule scales with it.

        Raises:
            ValueError: the row has no published run on ``dataset`` (the message names those it has).
        """
        if dataset not in self.published:
            if self.components:
                raise ValueError(f"{self.name} is trained as its networks ({', '.join(self.components)}): "
                                 f"each has its own published run")
            known = ", ".join(self.published) or "none"
            raise ValueError(f"{self.name} has no published training run on {dataset!r} (published: {known})")
        schedule = self.published[dataset]
        total = None if batch_size is None else batch_size * world_size
        schedule, changes = schedule.scaled(batch_size=total, iterations=steps, test_size=input_size)
        base = self.recipe("laptop")  # its start, frozen parts and clipping: the same in every profile
        if input_size is not None:
            base = base.replace(input_size=input_size)
        return schedule.train_recipe(base, world_size), changes


# --- recipes ------------------------------------------------------------------------------
def _adamw(lr: float, steps: int) -> OptimConfig:
    # AdamW with a short linear warmup and a linear decay to zero: from scratch, this
    # trained both tiny networks faster than SGD with the poly schedule.
    return OptimConfig(optimizer="adamw", lr=lr, weight_decay=1e-4, warmup_steps=steps // 20,
                       warmup_factor=0.01, schedule="poly", poly_power=1.0)


def tiny_recipe(name: str, profile: Profile, steps: int | None, *, ci: int, laptop: int, gpu: int,
                lr: float = 2e-3, grad_clip: float | None = None) -> TrainRecipe:
    """A tiny model's recipe: the profile's images and batch, AdamW with warmup and linear decay.

    Flips only, no rescaling: the validation images have the training images' scale, and
    on the synthetic data random rescaling (0.75-1.5) slowed the detector down (PQ_th 7.9
    instead of 10.3 after 600 steps, from scratch). From the pretrained tiny backbone, 500
    steps of the detector gave the baseline PQ_th 22.7 at a learning rate of 2e-3, 18.4 at
    1e-3 and 13.3 at 6e-3; 1000 steps gave 32.5.
    """
    steps = steps or profile.pick(ci=ci, laptop=laptop, gpu=gpu)
    return TrainRecipe(model=name, steps=steps, batch_size=profile.batch_size, image_size=profile.image_size,
                       num_train=profile.num_train, optim=_adamw(lr, steps), grad_clip=grad_clip)


def _full_run(name: str, profile: Profile, steps: int | None, optim: Callable[[int], OptimConfig],
              start: str | None = IMAGENET, freeze: bool = False, grad_clip: float | None = None) -> TrainRecipe:
    # Batch 2 per process fits ResNet-50 at these sizes on one GPU; scale augmentation
    # 0.5-2 as both published recipes. The published start: ImageNet weights of the body.
    steps = steps or profile.pick(ci=2, laptop=200, gpu=20_000)
    batch = profile.pick(ci=2, laptop=2, gpu=8)
    return TrainRecipe(model=name, steps=steps, batch_size=batch, image_size=profile.pick(ci=64, laptop=256, gpu=512),
                       num_train=max(batch, profile.num_train), optim=optim(steps), grad_clip=grad_clip,
                       augment_scale=profile.pick(ci=(1.0, 1.0), laptop=(0.5, 2.0)), start=start,
                       # the detectors fine-tune with FrozenBN and FREEZE_AT 2 (detectron2's defaults,
                       # torchvision's pretrained detectors); PSPNet trains its norms (mmseg's SyncBN)
                       freeze_norms=freeze, freeze_at=2 if freeze else 0)


def sgd_poly(steps: int) -> OptimConfig:
    """PSPNet's solver (mmsegmentation): SGD 0.01, momentum 0.9, weight decay 5e-4, poly 0.9."""
    return OptimConfig(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="poly", poly_power=0.9)


def sgd_1x(steps: int) -> OptimConfig:
    """Mask R-CNN's solver, detectron2's 1x (:data:`~.mask_rcnn.COCO_1X`) shortened to ``steps``: its
    warmup (at most a tenth of the run), its steps at the same fractions (60k and 80k of 90k)."""
    schedule = mask_rcnn.COCO_1X
    warmup = min(schedule.optim.warmup_steps, steps // 10)
    first, second = (round(steps * (milestone / schedule.iterations)) for milestone in schedule.optim.milestones)
    return schedule.optim.replace(warmup_steps=warmup, milestones=(max(warmup + 1, first), max(warmup + 2, second)))


def adam_poly(steps: int) -> OptimConfig:
    """Panoptic-DeepLab's solver (detectron2, Cityscapes): Adam 0.001 without weight decay, a linear
    warmup of 1000 steps (at most a tenth of a shorter run), poly 0.9
    (:data:`~.panoptic_deeplab.PUBLISHED_SCHEDULES`)."""
    published = panoptic_deeplab.PUBLISHED_SCHEDULES["cityscapes"].optim
    return published.replace(warmup_steps=min(published.warmup_steps, steps // 10))


def adamw_step(steps: int) -> OptimConfig:
    """Mask2Former's solver for COCO panoptic (``facebookresearch/Mask2Former``
    ``configs/coco/panoptic-segmentation/Base-COCO-PanopticSegmentation.yaml``): AdamW 1e-4,
    weight decay 0.05, the learning rate divided by 10 at 327,778 and 355,092 of 368,750
    iterations (here at the same fractions of the run), a warmup of 10 iterations at factor 1
    (none). Its ``BACKBONE_MULTIPLIER: 0.1`` (the body at a tenth of the rate) is not applied."""
    milestones = (max(1, round(steps * 327_778 / 368_750)), max(2, round(steps * 355_092 / 368_750)))
    return OptimConfig(optimizer="adamw", lr=1e-4, weight_decay=0.05, schedule="step", milestones=milestones)


# --- the table ----------------------------------------------------------------------------
PSPNET = "PSPNet: dilated ResNet + pyramid pooling (the baseline's semantic network)"
MASK_RCNN = "Mask R-CNN: ResNet-FPN + RPN + RoI heads (the baseline's instance network)"
BASELINE = "the paper's baseline: PSPNet + Mask R-CNN + the heuristic merge"
PANOPTIC_FPN = "Panoptic FPN: one ResNet-FPN, a Mask R-CNN branch and a semantic FPN branch, the heuristic merge"
PANOPTIC_DEEPLAB = ("Panoptic-DeepLab: a dilated ResNet, two ASPP decoders (semantic; centres and offsets), "
                    "pixels grouped by centre")
# Things under 64 x 64 px of a 640 x 480 image weigh 3 in the semantic loss: the same fraction
# of the synthetic images, which are drawn at every size from one scene (about 218 px at 128 x 128)
SCALED_SMALL_INSTANCES = MappingProxyType({"small_instance_reference_area": COCO_REFERENCE_AREA})
MASK_FORMER = ("MaskFormer: a ResNet, a pixel decoder and learned queries, each one class and one mask "
               "(no fusion rule)")
UPSNET = "UPSNet: one ResNet-FPN, a Mask R-CNN branch, a deformable semantic head, the parameter-free panoptic head"
# UPSNet's semantic map names every category and its detections come with masks: the
# heuristic merges of chapter 3 can be scored on the same outputs (the learned head against the rule)
UPSNET_ABLATIONS = ("baseline", "semantic_only", "instance_only")
# The shipped weights train longer than the laptop recipe (shipped_steps), each for 8-15 minutes
# on two cores; the semantic network's stuff is near its ceiling after a few hundred steps from
# the pretrained backbone. The laptop steps keep each chapter within 4 minutes on two cores. The
# tiny detectors and Panoptic-DeepLab see the images enlarged twice (MaskRCNNConfig.tiny): a
# step of 8 images then costs 0.30 s (Mask R-CNN), 0.37 s (Panoptic FPN), 1.15 s (UPSNet) and
# 0.40 s (Panoptic-DeepLab) on two cores, 2.0 to 3.7 times the cost at the data's size
# (benchmarks/train_step.py, the README's Performance table).

_ROWS = [
    ModelSpec("pspnet-tiny", PSPNet, partial(pspnet.for_categories, size="tiny"), ("semantic",),
              partial(tiny_recipe, ci=4, laptop=300, gpu=2000), shipped="pspnet-tiny.pt", shipped_steps=600,
              summary=PSPNET),
    ModelSpec("maskrcnn-tiny", MaskRCNN, partial(mask_rcnn.for_categories, size="tiny"), ("instances",),
              # the detector's losses spike early in training: clip
              partial(tiny_recipe, ci=4, laptop=500, gpu=4000, grad_clip=10.0), shipped="maskrcnn-tiny.pt",
              shipped_steps=1500, summary=MASK_RCNN),
    ModelSpec("baseline-tiny", HeuristicBaseline, partial(HeuristicBaseline.for_categories, size="tiny"),
              ("semantic", "instances"), components=("pspnet-tiny", "maskrcnn-tiny"), assemble=HeuristicBaseline,
              ablations=("semantic_only", "instance_only"), summary=BASELINE),
    # 420 laptop steps (about 180 s): 300 steps (125 s) gave PQ 69.8, PQ_th 39.0 on 40 unseen
    # scenes, where 750 steps at the data's size (240 s) gave PQ 63.8, PQ_th 30.1
    ModelSpec("panoptic-fpn-tiny", PanopticFPN, partial(panoptic_fpn.for_categories, size="tiny"),
              ("semantic", "instances"), partial(tiny_recipe, ci=4, laptop=420, gpu=4000, grad_clip=10.0),
              ablations=("instance_only",), shipped="panoptic-fpn-tiny.pt", shipped_steps=1500, summary=PANOPTIC_FPN),
    # 200 laptop steps (about 170 s): a step costs twice a Panoptic FPN step (the deformable
    # head on every level, the panoptic loss)
    ModelSpec("upsnet-tiny", UPSNet, partial(upsnet.for_categories, size="tiny"), ("semantic", "instances"),
              partial(tiny_recipe, ci=4, laptop=200, gpu=4000, grad_clip=10.0), ablations=UPSNET_ABLATIONS,
              shipped="upsnet-tiny.pt", shipped_steps=1000, summary=UPSNET),
    # 420 laptop steps (about 170 s)
    ModelSpec("panoptic-deeplab-tiny", PanopticDeepLab, partial(panoptic_deeplab.for_categories, size="tiny"),
              ("deeplab",), partial(tiny_recipe, ci=4, laptop=420, gpu=4000), target_options=SCALED_SMALL_INSTANCES,
              ablations=("semantic_only",), shipped="panoptic-deeplab-tiny.pt", shipped_steps=1500,
              summary=PANOPTIC_DEEPLAB),
    ModelSpec("maskformer-tiny", MaskFormer, partial(mask_former.for_categories, size="tiny"),
              ("semantic", "instances"), partial(tiny_recipe, ci=4, laptop=600, gpu=4000, grad_clip=10.0),
              shipped="maskformer-tiny.pt", shipped_steps=2000, summary=MASK_FORMER),
    ModelSpec("pspnet-full", PSPNet, partial(pspnet.for_categories, size="full"), ("semantic",),
              partial(_full_run, optim=sgd_poly), summary=PSPNET,
              published=pspnet.PUBLISHED_SCHEDULES),
    ModelSpec("maskrcnn-full", MaskRCNN, partial(mask_rcnn.for_categories, size="full"), ("instances",),
              partial(_full_run, optim=sgd_1x, freeze=True), summary=MASK_RCNN,
              published=mask_rcnn.PUBLISHED_SCHEDULES),
    ModelSpec("baseline-full", HeuristicBaseline, partial(HeuristicBaseline.for_categories, size="full"),
              ("semantic", "instances"), components=("pspnet-full", "maskrcnn-full"), assemble=HeuristicBaseline,
              ablations=("semantic_only", "instance_only"), summary=BASELINE),
    ModelSpec("panoptic-fpn-full", PanopticFPN, partial(panoptic_fpn.for_categories, size="full"),
              ("semantic", "instances"), partial(_full_run, optim=sgd_1x, freeze=True), ablations=("instance_only",),
              summary=PANOPTIC_FPN, published=panoptic_fpn.PUBLISHED_SCHEDULES),
    ModelSpec("upsnet-full", UPSNet, partial(upsnet.for_categories, size="full"), ("semantic", "instances"),
              partial(_full_run, optim=sgd_1x, freeze=True), ablations=UPSNET_ABLATIONS, summary=UPSNET,
              published=upsnet.PUBLISHED_SCHEDULES),
    # its published start is detectron2's ImageNet R-52 (a deep stem), which torchvision does not
    # have: it starts at random unless train --weights FILE gives those weights in torchvision's names
    ModelSpec("panoptic-deeplab-full", PanopticDeepLab, partial(panoptic_deeplab.for_categories, size="full"),
              ("deeplab",), partial(_full_run, optim=adam_poly, start=None), ablations=("semantic_only",),
              summary=PANOPTIC_DEEPLAB, published=panoptic_deeplab.PUBLISHED_SCHEDULES),
    # the whole model's gradient norm clipped at 0.01 (Mask2Former's CLIP_TYPE: "full_model")
    ModelSpec("maskformer-full", MaskFormer, partial(mask_former.for_categories, size="full"),
              ("semantic", "instances"), partial(_full_run, optim=adamw_step, grad_clip=0.01), summary=MASK_FORMER),
]


MODELS: dict[str, ModelSpec] = {row.name: row for row in _ROWS}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def check_name(name: str) -> str:
    """``name`` if it is in the table; otherwise a ValueError listing the known names."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return name


def spec(name: str) -> ModelSpec:
    """The table's row for ``name`` (a ValueError listing the known names otherwise)."""
    return MODELS[check_name(name)]


#: The data sets whose published configuration a full model can take (``--data KIND``):
#: each model's ``for_categories(..., dataset=)`` selects it, and its config class's
#: ``full(...)`` states what changes and where it is published. ``None`` (the built-in
#: data) builds each full model's default: COCO's, Panoptic-DeepLab's Cityscapes one.
DATASETS = ("coco", "cityscapes")


def build_model(name: str, categories: CategorySet, dataset: str | None = None) -> nn.Module:
    """A randomly initialised model of the table with outputs for ``categories``, in the
    published configuration for ``dataset`` (one of :data:`DATASETS`, or ``None``).

    Raises:
        ValueError: ``name`` is not in the table (the message lists the names), or an unknown dataset.
    """
    row = spec(name)
    if dataset is None:
        return row.build(categories)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return row.build(categories, dataset=dataset)


SETTINGS = ("config", "merge_config", "head_config")  # the dataclasses a model and its parts keep


def model_settings(model: nn.Module) -> dict[str, Any]:
    """Every setting of ``model`` as ``{"dotted.name": value}``: the fields of the config
    dataclasses (:data:`SETTINGS`) of the model and of each of its submodules, nested ones
    flattened (``"semantic_model.config.backbone.depth"``)."""
    from dataclasses import asdict, is_dataclass

    settings: dict[str, Any] = {}

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                flatten(f"{prefix}.{key}", item)
        else:
            settings[prefix] = value

    for path, module in model.named_modules():
        for attribute in SETTINGS:
            value = module.__dict__.get(attribute)
            if is_dataclass(value) and not isinstance(value, type):
                flatten(".".join(filter(None, (path, attribute))), asdict(value))
    return settings
