"""The baseline wrapper: the two networks' losses unchanged, predictions merged by the heuristic."""
import numpy as np
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.models.common import PanopticPrediction
from panopticlab.models.heuristic_baseline import HeuristicBaseline
from panopticlab.postprocess.heuristic import MergeConfig, heuristic_merge


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch():
    dataset = PanopticDataset(SyntheticPanoptic(2, 64, split="train"), CATS, targets=("semantic", "instances"))
    return collate_panoptic([dataset[i] for i in range(2)])


def test_training_returns_each_networks_own_losses(batch):
    images, targets = batch
    model = HeuristicBaseline.for_categories(CATS).train()
    torch.manual_seed(0)
    losses = model(images, targets)
    # the same random numbers (dropout, then the RPN's and RoI heads' sampling) one network at a time
    torch.manual_seed(0)
    separate = {**model.semantic_model(images, targets), **model.instance_model(images, targets)}
    assert len(separate) == 7 and set(losses) == set(separate)  # no name is shared
    for name, value in separate.items():
        torch.testing.assert_close(losses[name], value)
    with pytest.raises(ValueError, match="collated target dict"):
        model(images, None)


def test_eval_merges_the_two_networks_outputs(batch):
    images, _ = batch
    torch.manual_seed(0)
    model = HeuristicBaseline.for_categories(CATS, merge=MergeConfig.tiny(score_threshold=0.0)).eval()  # random weights: keep all
    with torch.no_grad():
        raw = model(images)  # eval mode: the two networks' outputs, not yet merged
        predictions = model.inference(images)
        semantic = model.semantic_model(images)["semantic"]
        detections = model.instance_model(images)
    assert torch.equal(raw["semantic"], semantic) and len(raw["detections"]) == len(detections) == 2
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(raw["detections"], detections))
    assert len(predictions) == 2
    for prediction, sem, det in zip(predictions, semantic, detections):
        assert isinstance(prediction, PanopticPrediction) and isinstance(prediction.panoptic, PanopticSegmentation)
        np.testing.assert_array_equal(prediction.semantic, sem.numpy())
        # the tiny merge: the published 4096 px scaled to a 64 x 64 image
        expected = heuristic_merge(sem.numpy(), det["masks"].numpy(), det["scores"].numpy(),
                                   det["category_ids"].numpy(), CATS, score_threshold=0.0,
                                   stuff_area_limit=4096 * 64 * 64 / (640 * 480))
        assert prediction.panoptic.equals(expected.panoptic)
        assert len(prediction.merge.steps.order) == len(det["scores"]) > 0
        prediction.panoptic.validate(CATS)
