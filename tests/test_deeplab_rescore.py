"""Re-scoring kept Panoptic-DeepLab outputs: the model's own setting reproduces its output; other
settings give the hand-worked results of a two-instance scene; bad input is named."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation
from panopticlab.engine import evaluate, pretrained, recipes
from panopticlab.engine.center_analysis import center_setting_grid, rescore_deeplab
from panopticlab.models.common import PanopticPrediction
from panopticlab.postprocess import DeepLabOutputs, panoptic_deeplab_postprocess, repostprocess

DISC, SKY = 1, 11
SIZE = (24, 32)
PEAKS = {(10, 9): 0.9, (10, 20): 0.6}  # 11 px apart: one 23 x 23 window covers both


def two_discs():
    """Two touching discs' boxes (same category) on sky, the network maps a perfect model would give.

    Instance A covers columns 4..14, B columns 15..25 (rows 5..15); the heatmap has one
    Gaussian peak per instance (0.9 and 0.6), and every thing pixel's offset points exactly at
    its own instance's peak.
    """
    id_map = np.full(SIZE, 3, np.int32)
    id_map[5:16, 4:15] = 1
    id_map[5:16, 15:26] = 2
    truth = PanopticSegmentation.from_id_map(id_map, {1: DISC, 2: DISC, 3: SKY})
    semantic = np.where(id_map == 3, SKY, DISC).astype(np.int64)
    ys, xs = np.mgrid[:SIZE[0], :SIZE[1]].astype(np.float32)
    heatmap = np.zeros(SIZE, np.float32)
    offsets = np.zeros((2, *SIZE), np.float32)
    for segment_id, ((py, px), peak) in zip((1, 2), PEAKS.items()):
        heatmap = np.maximum(heatmap, peak * np.exp(-((ys - py) ** 2 + (xs - px) ** 2) / (2 * 2.0**2)))
        inside = id_map == segment_id
        offsets[0][inside], offsets[1][inside] = py - ys[inside], px - xs[inside]
    return truth, DeepLabOutputs(semantic, heatmap, offsets)


@pytest.mark.parametrize("threshold, kernel, things_pq, centres", [
    (0.1, 7, 1.0, 2),    # both peaks: both instances exact
    (0.1, 23, 0.0, 1),   # the 0.6 peak lies inside the 0.9 peak's window: one instance of both, IoU 0.5 each
    (0.7, 7, 0.0, 1),    # only the 0.9 peak passes: the same merged instance
    (0.9, 7, 0.0, 0),    # strictly above: a peak equal to the threshold is no centre, the discs go void
])
def test_hand_worked_settings(threshold, kernel, things_pq, centres):
    truth, maps = two_discs()
    rescored = rescore_deeplab([(truth, maps)], CATS, stuff_area=0, threshold=threshold, nms_kernel=kernel)
    assert rescored.num_centers == centres
    assert rescored.results["Things"]["pq"] == pytest.approx(things_pq)
    assert rescored.results["Stuff"]["pq"] == pytest.approx(1.0)  # the sky is exact whatever the centres
    assert rescored.setting == {"threshold": threshold, "nms_kernel": kernel, "top_k": 200}


def test_grid_cells_equal_single_rescores_and_scipy_centres():
    truth, maps = two_discs()
    thresholds, kernels = [0.05, 0.5, 0.95], [3, 7, 23]
    grid = center_setting_grid([(truth, maps)], CATS, thresholds, kernels, stuff_area=0)
    assert list(grid) == [(t, k) for t in thresholds for k in kernels]
    for (threshold, kernel), results in grid.items():
        single = rescore_deeplab([(truth, maps)], CATS, stuff_area=0, threshold=threshold, nms_kernel=kernel)
        assert results == single.results
        # the centres against an independent max-filter NMS
        pooled = ndimage.maximum_filter(maps.center_heatmap, size=kernel, mode="constant", cval=-np.inf)
        expected = np.argwhere((maps.center_heatmap > np.float32(threshold)) & (maps.center_heatmap == pooled))
        np.testing.assert_array_equal(single.merged[0].centers, expected)


@pytest.fixture(scope="module")
def shipped_evaluation():
    model, _ = pretrained.load_pretrained("panoptic-deeplab-tiny")
    val = recipes.val_data(size=64, num=4, seed=0)
    return model, evaluate(model, val, CATS, keep_predictions=True, progress=False)


def test_the_models_own_setting_reproduces_its_output(shipped_evaluation):
    model, evaluation = shipped_evaluation
    config = model.config
    stuff_area = config.stuff_area_for(64 * 64)
    rescored = rescore_deeplab(evaluation.predictions, CATS, stuff_area=stuff_area,
                               threshold=config.center_threshold, nms_kernel=config.nms_kernel, top_k=config.top_k)
    assert rescored.results == evaluation.results
    for (_, prediction), result in zip(evaluation.predictions, rescored.merged):
        np.testing.assert_array_equal(result.panoptic.id_map, prediction.panoptic.id_map)
        assert result.panoptic.segments == prediction.panoptic.segments
        np.testing.assert_array_equal(result.centers, prediction.outputs["centers"])
    # another setting changes the centres found, from the same kept maps
    fewer = rescore_deeplab(evaluation.predictions, CATS, stuff_area=stuff_area, threshold=0.5, nms_kernel=15)
    assert fewer.num_centers < rescored.num_centers


def test_outputs_from_tensors_equal_outputs_from_arrays():
    truth, maps = two_discs()
    prediction = PanopticPrediction(truth, semantic=maps.semantic, outputs={
        "center_heatmap": torch.from_numpy(maps.center_heatmap)[None], "offsets": torch.from_numpy(maps.offsets)})
    from_tensors = repostprocess(prediction, CATS, stuff_area=0)
    direct = panoptic_deeplab_postprocess(maps.semantic, maps.center_heatmap, maps.offsets, CATS, stuff_area=0)
    np.testing.assert_array_equal(from_tensors.panoptic.id_map, direct.panoptic.id_map)
    assert DeepLabOutputs.of(prediction).center_heatmap.shape == SIZE


def test_bad_input_is_named():
    truth, maps = two_discs()
    with pytest.raises(ValueError, match="no semantic, center_heatmap, offsets"):
        rescore_deeplab([(truth, PanopticPrediction(truth))], CATS, stuff_area=0)
    with pytest.raises(ValueError, match="2 values for 1 images"):
        rescore_deeplab([(truth, maps)], CATS, stuff_area=[0, 0])
    with pytest.raises(TypeError, match=r"kept\[0\].*pair"):
        rescore_deeplab([truth], CATS, stuff_area=0)
    with pytest.raises(TypeError, match="ground truth must be a PanopticSegmentation"):
        rescore_deeplab([({"image_id": 3}, maps)], CATS, stuff_area=0)
    with pytest.raises(ValueError, match="odd"):
        rescore_deeplab([(truth, maps)], CATS, stuff_area=0, nms_kernel=4)
    with pytest.raises(ValueError, match="at least one threshold"):
        center_setting_grid([(truth, maps)], CATS, [], [7], stuff_area=0)
