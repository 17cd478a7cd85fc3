"""Concept figures follow the objects they draw."""
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from panopticlab.models.pspnet import PSPNetConfig
from panopticlab.postprocess import MergeConfig
from panopticlab.viz import concepts


def test_pyramid_pooling_follows_the_config():
    config = PSPNetConfig.full(num_classes=9)
    labels = concepts.pyramid_pooling_labels(config)
    assert len(labels["branches"]) == 4 and "6x6" in labels["branches"][-1]
    assert "9 classes" in labels["head"] and "x 0.4" in labels["aux"]
    other = concepts.pyramid_pooling_labels(replace(config, bins=(1, 3), pool_channels=64, aux_channels=0))
    assert len(other["branches"]) == 2 and "64" in other["branches"][0] and other["aux"] == ""
    ax = concepts.draw_pyramid_pooling(config)
    texts = [t.get_text() for t in ax.texts]
    assert all(branch in texts for branch in labels["branches"])
    plt.close("all")
    with pytest.raises(ValueError, match="at least one bin"):
        concepts.pyramid_pooling_labels(replace(config, bins=()))


def test_merge_flowchart_writes_the_thresholds():
    merge = MergeConfig(score_threshold=0.7, overlap_threshold=0.3, stuff_area_limit=100)
    labels = concepts.merge_flowchart_labels(merge, 128 * 128)
    assert "score < 0.7?" in labels and "taken fraction > 0.3?" in labels and any("< 100?" in t for t in labels)
    ax = concepts.draw_merge_flowchart(merge, 128 * 128)
    assert set(labels) <= {t.get_text() for t in ax.texts}
    plt.close("all")


def test_mask_rcnn_sketch_follows_the_config():
    from panopticlab.models.mask_rcnn import MaskRCNNConfig

    config = MaskRCNNConfig()
    labels = concepts.mask_rcnn_labels(config)
    assert "strides 4/8/16/32/64" in labels[1] and "28x28 mask" in labels[4] and "at most 100" in labels[5]
    other = replace(config, returned_layers=(2, 3, 4), detection=replace(config.detection, mask_roi_size=7))
    other_labels = concepts.mask_rcnn_labels(other)
    assert "strides 8/16/32/64" in other_labels[1] and "14x14 mask" in other_labels[4]
    ax = concepts.draw_mask_rcnn(config)
    assert set(labels) <= {t.get_text() for t in ax.texts}
    plt.close("all")
