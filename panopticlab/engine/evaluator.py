"""The evaluation loop: model -> panoptic results -> Panoptic Quality.

In evaluation mode a model maps ``images`` (FloatTensor[B, 3, H, W] in [0, 1]) to a
list of B panoptic results: :class:`~panopticlab.data.panoptic.PanopticSegmentation`
objects, or objects carrying one as ``.panoptic`` (keeping the intermediate outputs a
chapter may show). :func:`evaluate` scores them against the ground truth the loader
provides with the in-memory :class:`~panopticlab.metrics.pq.PQAccumulator` (no file is
written), and can also save them in COCO panoptic format for ``pq_compute``.

Under ``torchrun`` each process scores its shard (:func:`~.sampling.make_eval_loader`)
and the per-category counts are merged, so every process returns the same results.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.categories import CategorySet
from ..data.panoptic import PanopticSegmentation
from ..metrics.matching import MATCH_IOU
from ..metrics.pq import PQAccumulator
from .distributed import all_gather_objects, barrier, is_main_process, unwrap_model
from .trainer import Trainer, resolve_device

__all__ = ["as_panoptic", "predict", "iter_predictions", "evaluate", "summary_metrics", "PeriodicEvaluation"]


def as_panoptic(result: Any, where: str = "model output") -> PanopticSegmentation:
    """The :class:`PanopticSegmentation` of one model result (itself, or its ``.panoptic``)."""
    panoptic = result if isinstance(result, PanopticSegmentation) else getattr(result, "panoptic", None)
    if not isinstance(panoptic, PanopticSegmentation):
        raise TypeError(f"{where}: expected a PanopticSegmentation or an object with a .panoptic one, "
                        f"got {type(result).__name__}")
    return panoptic


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, device: str | torch.device | None = None,
            amp: bool | None = None) -> list[PanopticSegmentation]:
    """Panoptic predictions for one batch of images; the model's train/eval mode is restored afterwards.

    Args:
        model: a panoptic model (DDP-wrapped or not).
        images: FloatTensor[B, 3, H, W] in [0, 1].
        device: where to run; default the model's device.
        amp: float16 autocast; default on CUDA only.

    Returns:
        B panoptic segmentations.
    """
    module = unwrap_model(model)  # a DDP forward would sync buffers with processes that may have finished
    if device is None:
        first = next(module.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = resolve_device(device)
    amp = device.type == "cuda" if amp is None else bool(amp)
    was_training = module.training
    module.eval()
    try:
        with torch.autocast(device.type, enabled=amp):
            outputs = module(images.to(device, non_blocking=True))
    finally:
        module.train(was_training)
    if len(outputs) != len(images):
        raise ValueError(f"{type(module).__name__} returned {len(outputs)} results for {len(images)} images")
    return [as_panoptic(output, f"{type(module).__name__} output {i}") for i, output in enumerate(outputs)]


def _per_image(targets: Any, batch_size: int) -> list[dict]:
    """``[{"panoptic", "image_id", "file_name"?}]`` from a collated batch (dict of lists) or a list of dicts."""
    if isinstance(targets, dict):
        if "panoptic" not in targets:
            raise ValueError("evaluation needs the ground truth: the batch targets must hold 'panoptic' "
                             "(PanopticDataset puts it there)")
        keys = [key for key in ("panoptic", "image_id", "file_name") if key in targets]
        return [{key: targets[key][i] for key in keys} for i in range(batch_size)]
    items = list(targets)
    if len(items) != batch_size or not all(isinstance(t, dict) and "panoptic" in t for t in items):
        raise ValueError("evaluation needs the ground truth: targets must be a dict of per-image lists or a list "
                         "of per-image dicts, each with 'panoptic'")
    return items


def iter_predictions(model: nn.Module, loader: Iterable, device: str | torch.device | None = None,
                     amp: bool | None = None) -> Iterator[tuple[dict, PanopticSegmentation]]:
    """``(ground-truth record, prediction)`` per image of ``loader``.

    The record holds the ground truth ``panoptic``, ``image_id`` and, when the loader
    provides it, ``file_name``.
    """
    for images, targets in loader:
        predictions = predict(model, images, device, amp)
        for record, prediction in zip(_per_image(targets, len(images)), predictions):
            yield record, prediction


def _png_name(record: dict) -> str:
    if "file_name" in record:
        return record["file_name"]
    image_id = record["image_id"]
    return f"{image_id:012d}.png" if isinstance(image_id, int) else f"{image_id}.png"  # COCO's naming


def evaluate(model: nn.Module, loader: Iterable, categories: CategorySet, device: str | torch.device | None = None,
             *, predictions_json: str | os.PathLike | None = None, predictions_folder: str | os.PathLike | None = None,
             iou_threshold: float = MATCH_IOU, amp: bool | None = None, progress: bool = True) -> dict:
    """Panoptic Quality of ``model`` on the images of ``loader``.

    Args:
        model: a panoptic model; its train/eval mode is left as it was.
        loader: yields ``(images, targets)`` with the ground truth ``targets["panoptic"]``
            (e.g. :func:`~.sampling.make_eval_loader` over a
            :class:`~panopticlab.data.dataset.PanopticDataset`).
        categories: the dataset's categories.
        device: default the model's device.
        predictions_json: also write the predictions in COCO panoptic format there
            (:func:`panopticlab.data.coco.write_predictions`; rank 0 writes all shards).
        predictions_folder: their PNG folder (default: ``predictions_json`` without ``.json``).
        iou_threshold: matching threshold (COCO: 0.5).
        amp: float16 autocast; default on CUDA only.
        progress: show a progress bar (rank 0).

    Returns:
        :meth:`PQAccumulator.results` (fractions in [0, 1]; ``All``/``Things``/``Stuff``,
        ``per_class``, ``by_size``, ``pq_dagger``); identical on every process.

    Raises:
        ValueError: a prediction and its ground truth differ in size (names the image).
    """
    accumulator = PQAccumulator(categories, iou_threshold)
    kept = [] if predictions_json is not None else None
    sampler = getattr(loader, "sampler", None)
    total = len(sampler) if hasattr(sampler, "__len__") else None  # this process's images
    bar = tqdm(total=total, desc="evaluate", unit="image", disable=not (progress and is_main_process()),
               dynamic_ncols=True)
    try:
        for record, prediction in iter_predictions(model, loader, device, amp):
            gt = record["panoptic"]
            if gt.shape != prediction.shape:
                raise ValueError(f"image {record.get('image_id')!r}: prediction of size {prediction.shape} for "
                                 f"ground truth of size {gt.shape}; the model must predict at input resolution")
            accumulator.update(gt, prediction, image_id=record.get("image_id"))
            if kept is not None:
                kept.append((record.get("image_id"), _png_name(record), prediction))
            bar.update(1)
    finally:
        bar.close()

    shards = all_gather_objects(accumulator)
    total = shards[0]
    for shard in shards[1:]:
        total.merge(shard)
    if kept is not None:
        predictions = [item for shard in all_gather_objects(kept) for item in shard]
        if is_main_process():
            from ..data.coco import write_predictions  # file I/O only when asked for

            write_predictions(predictions_json, predictions_folder, predictions, categories)
        barrier()
    return total.results()


def summary_metrics(results: dict) -> dict[str, float]:
    """The headline numbers of :func:`evaluate`'s results: ``pq, sq, rq, pq_th, pq_st`` (fractions)."""
    return {"pq": results["All"]["pq"], "sq": results["All"]["sq"], "rq": results["All"]["rq"],
            "pq_th": results["Things"]["pq"], "pq_st": results["Stuff"]["pq"]}


class PeriodicEvaluation:
    """A :class:`~.trainer.Trainer` callback that evaluates every ``every`` steps and at the end.

    Logs :func:`summary_metrics` into the trainer's history as ``<prefix>pq``, ``<prefix>sq``, ...
    and keeps the full results of the latest evaluation in ``self.results``.
    """

    def __init__(self, loader: Iterable, categories: CategorySet, every: int, prefix: str = "val/",
                 **evaluate_options):
        if int(every) < 1:
            raise ValueError(f"every must be positive, got {every}")
        self.loader, self.categories, self.every, self.prefix = loader, categories, int(every), prefix
        self.evaluate_options = {"progress": False, **evaluate_options}
        self.results: dict | None = None

    def __call__(self, trainer: Trainer) -> None:
        if trainer.step % self.every and trainer.step != trainer.steps:
            return
        self.results = evaluate(trainer.model, self.loader, self.categories, trainer.device, amp=trainer.amp,
                                **self.evaluate_options)
        trainer.history.log(trainer.step, {self.prefix + name: value
                                           for name, value in summary_metrics(self.results).items()})
