"""Training and evaluating panoptic models.

* :mod:`.config` - :class:`OptimConfig`, the optimiser and schedule as one dataclass;
* :mod:`.optim` - optimisers and warmup + poly / step schedules from ``torch.optim``;
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
* :mod:`.timing` - seconds per training step and per image, to compare models.
"""
from .checkpoint import find_checkpoint, load_checkpoint, load_model_weights, save_checkpoint
from .config import OptimConfig
from .distributed import DistributedContext, destroy_distributed, init_distributed, is_main_process, spawn
from .evaluator import Evaluation, PeriodicEvaluation, evaluate, iter_predictions, predict, rescore, summary_metrics
from .history import History
from .optim import build_optimizer, build_scheduler, lr_curve
from .sampling import ResumableSampler, ShardSampler, make_eval_loader, make_train_loader
from .timing import inference_seconds, seconds_per_image, seconds_per_step
from .trainer import Trainer, train

__all__ = [
    "OptimConfig", "build_optimizer", "build_scheduler", "lr_curve",
    "Trainer", "train", "History",
    "ResumableSampler", "ShardSampler", "make_train_loader", "make_eval_loader",
    "save_checkpoint", "load_checkpoint", "find_checkpoint", "load_model_weights",
    "Evaluation", "evaluate", "rescore", "predict", "iter_predictions", "summary_metrics", "PeriodicEvaluation",
    "DistributedContext", "init_distributed", "destroy_distributed", "is_main_process", "spawn",
    "seconds_per_step", "seconds_per_image", "inference_seconds",
]
