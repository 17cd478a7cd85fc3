"""The one evaluation loop: model -> predictions -> Panoptic Quality (and mIoU, and ablations).

In evaluation a model of the book maps images float [B, 3, H, W] in [0, 1] to B
predictions through ``model.inference(images)`` (or, for a model without that method,
``model(images)`` in eval mode): each a
:class:`~panopticlab.models.common.PanopticPrediction` (the panoptic result and the raw
outputs it came from), or a bare
:class:`~panopticlab.data.panoptic.PanopticSegmentation`. :func:`evaluate` scores them
against the ground truth with the in-memory
:class:`~panopticlab.metrics.pq.PQAccumulator` and returns an :class:`Evaluation`:

* ``results``: PQ / SQ / RQ and every breakdown of the model's panoptic output;
* ``miou`` and ``confusion``: when the predictions carry a semantic map
  (:mod:`panopticlab.metrics.semantic`);
* ``ablations``: the same breakdowns for merges of the same raw outputs with a network
  taken away (:func:`~panopticlab.postprocess.ablations.ablation_merge`), when asked;
* ``predictions``: every image's ground truth and prediction, when asked
  (``keep_predictions``), so a chapter can draw and rescore them without rerunning the
  network.

It can also write the predictions in COCO panoptic format for ``pq_compute``. Under
``torchrun`` each process scores its shard (:func:`~.sampling.make_eval_loader`) and the
counts are merged, so every process returns the same numbers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.categories import VOID_LABEL, CategorySet
from ..data.dataset import PanopticDataset
from ..data.panoptic import PanopticSegmentation
from ..data.targets import semantic_target
from ..metrics.matching import MATCH_IOU
from ..metrics.pq import PQAccumulator
from ..metrics.semantic import confusion_matrix, mean_iou
from ..postprocess.ablations import ablation_merge
from ..postprocess.heuristic import MergeConfig
from .distributed import (
    all_gather_objects,
    barrier,
    check_on_main_process,
    is_main_process,
    unwrap_model,
)
from .sampling import make_eval_loader
from .trainer import Trainer, resolve_device

__all__ = ["Evaluation", "Rescored", "as_panoptic", "predict", "iter_predictions", "evaluate", "rescore",
           "rescore_kept", "kept_pair", "summary_metrics", "PeriodicEvaluation"]


def as_panoptic(result: Any, where: str = "model output") -> PanopticSegmentation:
    """The :class:`PanopticSegmentation` of one model result (itself, or its ``.panoptic``)."""
    panoptic = result if isinstance(result, PanopticSegmentation) else getattr(result, "panoptic", None)
    if not isinstance(panoptic, PanopticSegmentation):
        raise TypeError(f"{where}: expected a PanopticSegmentation or an object with a .panoptic one, "
                        f"got {type(result).__name__}")
    return panoptic


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, device: str | torch.device | None = None,
            amp: bool | None = None) -> list[Any]:
    """The model's predictions for one batch; its train/eval mode is restored afterwards.

    Args:
        model: a panoptic model (DDP-wrapped or not).
        images: FloatTensor[B, 3, H, W] in [0, 1].
        device: where to run; default the model's device.
        amp: float16 autocast; default on CUDA only.

    Returns:
        B predictions, each a PanopticSegmentation or an object with ``.panoptic``.
    """
    module = unwrap_model(model)  # a DDP forward would sync buffers with processes that may have finished
    if device is None:
        first = next(module.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = resolve_device(device)
    amp = device.type == "cuda" if amp is None else bool(amp)
    run = getattr(module, "inference", module)
    was_training = module.training
    module.eval()
    try:
        with torch.autocast(device.type, enabled=amp):
            outputs = run(images.to(device, non_blocking=True))
    finally:
        module.train(was_training)
    if len(outputs) != len(images):
        raise ValueError(f"{type(module).__name__} returned {len(outputs)} results for {len(images)} images")
    for i, output in enumerate(outputs):
        as_panoptic(output, f"{type(module).__name__} output {i}")
    return list(outputs)


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


def as_loader(data: Any, categories: CategorySet, batch_size: int = 8) -> Iterable:
    """An iterable of ``(images, targets)`` batches: ``data`` itself, or batches of a sequence of Samples."""
    if isinstance(data, torch.utils.data.DataLoader):
        return data
    if isinstance(data, PanopticDataset):
        return make_eval_loader(data, batch_size)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):  # Samples, e.g. SyntheticPanoptic
        return make_eval_loader(PanopticDataset(data, categories, targets=()), batch_size)
    return data


def iter_predictions(model: nn.Module, loader: Iterable, device: str | torch.device | None = None,
                     amp: bool | None = None) -> Iterator[tuple[dict, Any]]:
    """``(ground-truth record, prediction)`` per image of ``loader``.

    A batch whose images differ in size (a list, :func:`~panopticlab.data.dataset.collate_mixed_sizes`)
    is predicted image by image. The record holds the ground truth ``panoptic``, ``image_id`` and, when the loader
    provides it, ``file_name``.
    """
    for images, targets in loader:
        if isinstance(images, (list, tuple)):  # images of several sizes: one at a time
            predictions = [p for image in images for p in predict(model, image[None], device, amp)]
        else:
            predictions = predict(model, images, device, amp)
        for record, prediction in zip(_per_image(targets, len(images)), predictions):
            yield record, prediction


def _png_name(record: dict) -> str:
    if "file_name" in record:
        return record["file_name"]
    image_id = record["image_id"]
    return f"{image_id:012d}.png" if isinstance(image_id, int) else f"{image_id}.png"  # COCO's naming


@dataclass
class Evaluation:
    """What :func:`evaluate` measured.

    Attributes:
        results: :meth:`PQAccumulator.results` of the model's panoptic output (fractions in
            [0, 1]; ``All``/``Things``/``Stuff``, ``per_class``, ``by_size``, ``pq_dagger``).
        ablations: the same for each requested ablation (name -> results).
        miou: mean IoU of the semantic maps (a fraction), when the predictions carry one;
            over the model's ``semantic_category_ids`` when it states them (a map of stuff
            only: Panoptic FPN).
        confusion: its (K, K + 1) pixel confusion matrix (rows: target train id;
            columns: predicted train id, then abstentions), or ``None``.
        predictions: ``(ground-truth record, prediction)`` per image when kept, else ``None``.
    """

    results: dict
    ablations: dict[str, dict]
    miou: float | None = None
    confusion: np.ndarray | None = None
    predictions: list[tuple[dict, Any]] | None = None

    def headline(self, variant: str | None = None) -> dict[str, float]:
        """``pq, sq, rq, pq_th, pq_st`` (fractions) of the model, or of one ablation."""
        return summary_metrics(self.results if variant is None else self.ablations[variant])


class _SemanticScore:
    """The confusion matrix of predicted semantic maps (category ids, void = abstain)."""

    def __init__(self, categories: CategorySet):
        self.categories = categories
        # category id -> train id; the void of an abstaining map stays void
        self.to_train_id = categories.id_to_train_id_lut(fill=VOID_LABEL, min_size=VOID_LABEL + 1)
        self.confusion = np.zeros((len(categories), len(categories) + 1), np.int64)
        self.seen = False

    def update(self, gt: PanopticSegmentation, semantic: np.ndarray) -> None:
        target = semantic_target(gt, self.categories).numpy()
        self.confusion += confusion_matrix(self.to_train_id[semantic], target, len(self.categories),
                                           void_prediction=VOID_LABEL)
        self.seen = True


def evaluate(model: nn.Module, data: Any, categories: CategorySet, device: str | torch.device | None = None, *,
             batch_size: int = 8, ablations: Sequence[str] = (), keep_predictions: bool = False,
             predictions_json: str | os.PathLike | None = None, predictions_folder: str | os.PathLike | None = None,
             iou_threshold: float = MATCH_IOU, amp: bool | None = None, progress: bool = True) -> Evaluation:
    """Panoptic Quality of ``model`` on ``data``, and everything else its predictions allow.

    Args:
        model: a panoptic model; its train/eval mode is left as it was.
        data: a loader yielding ``(images, targets)`` with the ground truth
            ``targets["panoptic"]`` (e.g. :func:`~.sampling.make_eval_loader` over a
            :class:`~panopticlab.data.dataset.PanopticDataset`), or a sequence of
            :class:`~panopticlab.data.sample.Sample` (e.g. the synthetic validation split).
        categories: the dataset's categories.
        device: default the model's device.
        batch_size: images per batch when ``data`` is a sequence of samples.
        ablations: names of :data:`~panopticlab.postprocess.ablations.ABLATIONS` to score
            too, merged from the predictions' ``semantic`` and ``detections`` with the
            model's ``merge_config``.
        keep_predictions: keep every image's record and prediction (memory: a few
            arrays of the image's size per image).
        predictions_json: also write the predictions in COCO panoptic format there
            (:func:`panopticlab.data.coco.write_predictions`; rank 0 writes all shards).
        predictions_folder: their PNG folder (default: ``predictions_json`` without ``.json``).
        iou_threshold: matching threshold (COCO: 0.5).
        amp: float16 autocast; default on CUDA only.
        progress: show a progress bar (rank 0).

    Raises:
        OSError: ``predictions_json`` or its folder cannot be written (checked before the
            model runs; :func:`~panopticlab.data.coco.check_predictions_writable`).
        ValueError: a prediction and its ground truth differ in size (names the image),
            or an ablation needs an output the predictions lack.
    """
    if predictions_json is not None:  # before the model runs, not after
        from ..data.coco import check_predictions_writable

        check_on_main_process(lambda: check_predictions_writable(predictions_json, predictions_folder))
    loader = as_loader(data, categories, batch_size)
    merge = getattr(unwrap_model(model), "merge_config", MergeConfig())
    accumulator = PQAccumulator(categories, iou_threshold)
    ablated = {name: PQAccumulator(categories, iou_threshold) for name in ablations}
    semantic = _SemanticScore(categories)
    kept = [] if keep_predictions else None
    written = [] if predictions_json is not None else None
    sampler = getattr(loader, "sampler", None)
    total = len(sampler) if hasattr(sampler, "__len__") else None  # this process's images
    bar = tqdm(total=total, desc="evaluate", unit="image", disable=not (progress and is_main_process()),
               dynamic_ncols=True)
    try:
        for record, prediction in iter_predictions(model, loader, device, amp):
            gt, panoptic = record["panoptic"], as_panoptic(prediction)
            if gt.shape != panoptic.shape:
                raise ValueError(f"image {record.get('image_id')!r}: prediction of size {panoptic.shape} for "
                                 f"ground truth of size {gt.shape}; the model must predict at input resolution")
            accumulator.update(gt, panoptic, image_id=record.get("image_id"))
            semantic_map = getattr(prediction, "semantic", None)
            if semantic_map is not None:
                semantic.update(gt, semantic_map)
            for name, ablation in ablated.items():
                merged = ablation_merge(name, semantic_map, getattr(prediction, "detections", None), categories, merge)
                ablation.update(gt, merged.panoptic, image_id=record.get("image_id"))
            if kept is not None:
                kept.append((record, prediction))
            if written is not None:
                written.append((record.get("image_id"), _png_name(record), panoptic))
            bar.update(1)
    finally:
        bar.close()

    def gathered(acc: PQAccumulator) -> PQAccumulator:
        shards = all_gather_objects(acc)
        for shard in shards[1:]:
            shards[0].merge(shard)
        return shards[0]

    results = gathered(accumulator).results()
    ablation_results = {name: gathered(acc).results() for name, acc in ablated.items()}
    confusions = all_gather_objects(semantic.confusion if semantic.seen else None)
    confusion = sum(c for c in confusions if c is not None) if any(c is not None for c in confusions) else None
    if written is not None:
        predictions = [item for shard in all_gather_objects(written) for item in shard]
        if is_main_process():
            from ..data.coco import write_predictions  # file I/O only when asked for

            write_predictions(predictions_json, predictions_folder, predictions, categories)
        barrier()
    # a semantic map that names only some categories (Panoptic FPN: stuff) is averaged over those
    covered = getattr(unwrap_model(model), "semantic_category_ids", None)
    covered = None if covered is None else [categories.train_id(c) for c in covered]
    miou = None if confusion is None else mean_iou(confusion, covered)
    return Evaluation(results, ablation_results, miou, confusion, kept)


@dataclass
class Rescored:
    """PQ of kept predictions fused again (:func:`rescore_kept`).

    Attributes:
        results: :meth:`~panopticlab.metrics.pq.PQAccumulator.results` over all images.
        fused: each image's result, as ``fuse`` returned it (a merge's steps, a head's
            channels, the centres found, ...), in the order of the input.
        per_image: each image's own PQ results, when asked for; else ``None``.
    """

    results: dict
    fused: list
    per_image: list[dict] | None = None


def rescore_kept(kept: Sequence, categories: CategorySet, fuse: Callable[[int, Any], Any], *,
                 iou_threshold: float = MATCH_IOU, per_image: bool = False) -> Rescored:
    """Fuse every kept prediction again and score the results: the one re-scoring loop behind
    :func:`rescore`, UPSNet's head analysis and Panoptic-DeepLab's centre settings.

    Args:
        kept: pairs ``(truth, prediction)``: :attr:`Evaluation.predictions` (the truth a record
            with the ground truth under ``"panoptic"``), or a ground-truth
            :class:`~panopticlab.data.panoptic.PanopticSegmentation` with anything ``fuse`` reads.
        fuse: ``fuse(index, prediction)`` -> the image's new result: a ``PanopticSegmentation``
            or an object with one under ``.panoptic``.
        per_image: also score every image alone (:attr:`Rescored.per_image`).

    Raises:
        TypeError: an item is not such a pair (names its index).
    """
    accumulator = PQAccumulator(categories, iou_threshold)
    fused, images = [], [] if per_image else None
    for index, item in enumerate(kept):
        truth, prediction = kept_pair(item, index)
        result = fuse(index, prediction)
        panoptic = result if isinstance(result, PanopticSegmentation) else result.panoptic
        image_id = truth.get("image_id", index) if isinstance(truth, dict) else index
        truth = truth["panoptic"] if isinstance(truth, dict) else truth
        accumulator.update(truth, panoptic, image_id=image_id)
        if images is not None:
            alone = PQAccumulator(categories, iou_threshold)
            alone.update(truth, panoptic, image_id=image_id)
            images.append(alone.results())
        fused.append(result)
    return Rescored(accumulator.results(), fused, images)


def kept_pair(item: Any, index: int) -> tuple[Any, Any]:
    """``(truth, prediction)`` of ``kept[index]``, checked (see :func:`rescore_kept`)."""
    try:
        truth, prediction = item
    except (TypeError, ValueError):
        raise TypeError(f"kept[{index}]: expected a (ground truth, prediction) pair, got {type(item).__name__}") from None
    panoptic = truth.get("panoptic") if isinstance(truth, dict) else truth
    if not isinstance(panoptic, PanopticSegmentation):
        raise TypeError(f"kept[{index}]: the ground truth must be a PanopticSegmentation (or a record with one "
                        f"under 'panoptic'), got {type(panoptic).__name__}")
    return truth, prediction


def rescore(predictions: Sequence[tuple[dict, Any]], categories: CategorySet, variant: str = "baseline",
            merge: MergeConfig = MergeConfig(), iou_threshold: float = MATCH_IOU) -> dict:
    """PQ results of kept predictions merged again: another merge setting or ablation, no network run.

    Args:
        predictions: :attr:`Evaluation.predictions` (``evaluate(..., keep_predictions=True)``);
            each prediction must carry ``semantic`` and / or ``detections`` as ``variant`` needs.
        variant: one of :data:`~panopticlab.postprocess.ablations.ABLATIONS`.
        merge: the merge settings.
    """
    def merged(index: int, prediction: Any):
        return ablation_merge(variant, getattr(prediction, "semantic", None), getattr(prediction, "detections", None),
                              categories, merge)

    return rescore_kept(predictions, categories, merged, iou_threshold=iou_threshold).results


def summary_metrics(results: dict) -> dict[str, float]:
    """The headline numbers of PQ results: ``pq, sq, rq, pq_th, pq_st`` (fractions)."""
    return {"pq": results["All"]["pq"], "sq": results["All"]["sq"], "rq": results["All"]["rq"],
            "pq_th": results["Things"]["pq"], "pq_st": results["Stuff"]["pq"]}


class PeriodicEvaluation:
    """A :class:`~.trainer.Trainer` callback that evaluates every ``every`` steps and at the end.

    Logs :func:`summary_metrics` into the trainer's history as ``<prefix>pq``, ``<prefix>sq``, ...
    and keeps the latest :class:`Evaluation` in ``self.evaluation``.
    """

    def __init__(self, data: Any, categories: CategorySet, every: int, prefix: str = "val/", **evaluate_options):
        if int(every) < 1:
            raise ValueError(f"every must be positive, got {every}")
        self.data, self.categories, self.every, self.prefix = data, categories, int(every), prefix
        self.evaluate_options = {"progress": False, **evaluate_options}
        self.evaluation: Evaluation | None = None

    @property
    def results(self) -> dict | None:
        """The PQ results of the latest evaluation."""
        return None if self.evaluation is None else self.evaluation.results

    def __call__(self, trainer: Trainer) -> None:
        if trainer.step % self.every and trainer.step != trainer.steps:
            return
        self.evaluation = evaluate(trainer.model, self.data, self.categories, trainer.device, amp=trainer.amp,
                                   **self.evaluate_options)
        trainer.history.log(trainer.step, {self.prefix + name: value
                                           for name, value in summary_metrics(self.evaluation.results).items()})
