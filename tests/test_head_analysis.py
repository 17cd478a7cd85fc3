"""Re-running UPSNet's head on kept outputs: the same result as the model's, the unknown
switch, per-image PQ against a hand-counted case, and the gain ranking."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation
from panopticlab.engine import head_analysis
from panopticlab.models.upsnet_head import unified_panoptic
from panopticlab.postprocess.upsnet import UPSNetHeadConfig, semantic_layout

# a 32 x 32 case: the tiny head, whose stuff limit is scaled to the image (the published 4096 px would void it)
HEAD = UPSNetHeadConfig.tiny()


def kept_prediction():
    """A disc detected in its box, and a second disc the semantic head sees that no box explains."""
    layout = semantic_layout(CATS)
    logits = torch.zeros(len(layout), 32, 32)
    logits[0] = 1.0
    logits[layout.index(1), 4:14, 4:14] = 5.0
    logits[layout.index(1), 20:30, 20:30] = 5.0
    boxes = np.array([[4.0, 4.0, 14.0, 14.0]], np.float32)
    detections = {"boxes": boxes, "scores": np.array([0.9], np.float32), "category_ids": np.array([1])}
    mask_logits = torch.full((1, 14, 14), 3.0)
    panoptic = unified_panoptic(logits, torch.as_tensor(boxes), torch.tensor([0.9]), torch.tensor([1]), mask_logits,
                                CATS, HEAD).panoptic
    prediction = SimpleNamespace(panoptic=panoptic, detections=detections,
                                 outputs={"semantic_logits": logits, "mask_logits": mask_logits})
    ids = np.full((32, 32), 3, np.int32)     # stuff 'sky' (segment 3) everywhere
    ids[4:14, 4:14] = 1
    ids[20:30, 20:30] = 2
    gt = PanopticSegmentation.from_id_map(ids, {1: 1, 2: 1, 3: CATS.stuff_ids[0]})
    return {"panoptic": gt, "image_id": 0}, prediction


def test_rerun_equals_the_models_output_and_unknown_switch():
    _, prediction = kept_prediction()
    with_unknown = head_analysis.unified_results(prediction, CATS, HEAD)
    np.testing.assert_array_equal(with_unknown.panoptic.id_map, prediction.panoptic.id_map)
    assert with_unknown.unknown_pixels[20:30, 20:30].all()
    without = head_analysis.unified_results(prediction, CATS, HEAD, unknown=False)
    assert without.unknown_logits is None
    assert (without.labels[20:30, 20:30] == 0).all()     # without unknown the second disc becomes stuff


def test_per_image_pq_by_hand():
    record, prediction = kept_prediction()
    # with unknown: disc 1 matched (IoU 1), disc 2 predicted void -> one FN and no FP
    things = head_analysis.per_image_pq([(record, prediction)], CATS, group="Things", config=HEAD)
    assert things[0] == pytest.approx(1 / (1 + 0.5 * 1))          # TP 1, FN 1, IoU 1: RQ = 1 / 1.5
    things_no_unknown = head_analysis.per_image_pq([(record, prediction)], CATS, "head", unknown=False, config=HEAD,
                                                   group="Things")
    assert things_no_unknown[0] == pytest.approx(1 / 1.5)         # still one FN: the disc became stuff
    # without: the disc's pixels join the stuff segment, which loses IoU (824 / 924)
    stuff = head_analysis.per_image_pq([(record, prediction)], CATS, "head", unknown=False, group="Stuff",
                                       config=HEAD)
    assert stuff[0] < head_analysis.per_image_pq([(record, prediction)], CATS, group="Stuff", config=HEAD)[0]
    with pytest.raises(ValueError, match="group"):
        head_analysis.per_image_pq([(record, prediction)], CATS, group="things")


def test_rescore_and_missing_outputs():
    record, prediction = kept_prediction()
    assert head_analysis.rescore_unified([(record, prediction)], CATS, HEAD)["Things"]["pq"] == pytest.approx(1 / 1.5)
    with pytest.raises(ValueError, match="semantic_logits"):
        head_analysis.unified_results(SimpleNamespace(outputs={}, detections=None), CATS)


def test_largest_gains():
    ours = np.array([0.5, 0.9, np.nan, 0.2, 0.7])
    theirs = np.array([0.5, 0.4, 0.0, 0.3, 0.6])
    assert head_analysis.largest_gains(ours, theirs, 3).tolist() == [1, 4]
    assert head_analysis.largest_gains(theirs[:2], theirs[:2]).tolist() == []
    with pytest.raises(ValueError, match="shapes"):
        head_analysis.largest_gains(ours, theirs[:3])
