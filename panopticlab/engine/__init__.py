"""Training and evaluating panoptic models.

* :mod:`.optim` - optimisers and warmup + poly / step schedules from ``torch.optim``, built from an
  :class:`~panopticlab.recipe.OptimConfig` (the recipe types sit below both the models and the engine);
* :mod:`.trainer` - :func:`train` / :class:`Trainer`: the loop, mixed precision, clipping,
  progress bar, exact resumption from checkpoints;
* :mod:`.sampling` - a data order that can be checkpointed; train and eval loaders;
* :mod:`.checkpoint` - atomic checkpoint files with every state and random generator;
* :mod:`.history` - :class:`History`, the losses and metrics of a run
  (:func:`panopticlab.viz.curves.plot_history` draws it);
* :mod:`.evaluator` - :func:`evaluate`, the one evaluation loop: model -> predictions -> PQ,
  mIoU, ablations, COCO-format output; :func:`rescore` merges kept outputs again;
* :mod:`.recipes` - the models' training recipes, training data and :func:`~.recipes.fit`;
* :mod:`.pretrained` - the weights shipped with the package and their loader;
* :mod:`.distributed` - ``torchrun`` / DDP on ``nccl`` (CUDA) or ``gloo`` (CPU);
* :mod:`.timing` - seconds per training step and per image, to compare models;
* :mod:`.head_analysis`, :mod:`.center_analysis` - UPSNet's panoptic head and Panoptic-DeepLab's
  centre settings scored again on kept outputs;
* :mod:`.runs`, :mod:`.comparison` - run records and the comparison table read from them.

Names load when first used: importing the package loads none of its modules.
"""
from .._lazy import lazy_names

_EXPORTS = {
    ".checkpoint": ("find_checkpoint", "load_checkpoint", "load_model_weights", "save_checkpoint"),
    ".distributed": ("DistributedContext", "destroy_distributed", "init_distributed", "is_main_process", "spawn"),
    ".evaluator": ("Evaluation", "PeriodicEvaluation", "evaluate", "iter_predictions", "predict", "rescore",
                  "summary_metrics"),
    ".history": ("History",),
    ".optim": ("build_optimizer", "build_scheduler", "lr_curve"),
    ".sampling": ("ResumableSampler", "ShardSampler", "make_eval_loader", "make_train_loader"),
    ".timing": ("inference_seconds", "seconds_per_image", "seconds_per_step"),
    ".trainer": ("Trainer", "train"),
    "..recipe": ("OptimConfig",),
}
__all__ = [name for names in _EXPORTS.values() for name in names]
__getattr__, __dir__ = lazy_names(__name__, _EXPORTS)
