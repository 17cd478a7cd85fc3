"""Mask R-CNN: the full configuration is torchvision's, the tiny one trains and predicts."""
import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from model_cases import COCO_THING_IDS, coco_like_categories
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data.categories import CategorySet
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.models.detection import detect, mask_logits
from panopticlab.postprocess.ablations import ablation_merge
from panopticlab.postprocess.heuristic import MergeConfig
from panopticlab.models.mask_rcnn import MaskRCNN, MaskRCNNConfig, for_categories

LOSS_NAMES = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
# two thing categories: a detector of three classes, background included
TWO_THINGS = CategorySet(c for c in CATS if c.id in CATS.thing_ids[:2] or not c.isthing)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def batch():
    dataset = PanopticDataset(SyntheticPanoptic(4, 64, split="train"), CATS, targets=("instances",))
    return collate_panoptic([dataset[i] for i in range(4)])


def test_full_config_is_torchvisions_maskrcnn_resnet50_fpn():
    torch.manual_seed(0)
    # three classes rather than COCO's 91: random weights then give scores above 0.05, so
    # the eval comparison below has detections to compare
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3)
    ours = MaskRCNN(MaskRCNNConfig.full(num_classes=3), TWO_THINGS)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    ours.load_state_dict(reference.state_dict())  # strict: same modules, names and shapes
    config = ours.config.detection
    assert config.anchor_sizes == (32, 64, 128, 256, 512) and config.aspect_ratios == (0.5, 1.0, 2.0)
    assert (config.mask_roi_size, config.mask_head_channels) == (14, (256,) * 4)
    assert (ours.transform.min_size, ours.transform.max_size) == ((800,), 1333)
    # the published sizes, then a small input size on both for a cheap identical forward
    # the composed model's parts are torchvision's, with torchvision's settings
    for part in ("rpn", "roi_heads"):
        for key, value in vars(getattr(reference, part)).items():
            if not key.startswith("_") and isinstance(value, (int, float, dict, tuple)):
                assert vars(getattr(ours, part))[key] == value, (part, key)
    for model in (ours, reference):
        model.transform.min_size, model.transform.max_size = (96,), 96
        model.eval()
    images = torch.rand(1, 3, 80, 96)
    with torch.no_grad():
        expected, got = reference(list(images)), ours(images)
    assert len(got[0]["boxes"]) > 0
    for key in ("boxes", "labels", "scores", "masks"):
        torch.testing.assert_close(got[0][key], expected[0][key])
    assert got[0]["masks"].shape[1:] == (1, 80, 96)


def test_input_size_option_resizes_every_batcher_in_the_published_ratio():
    """`train --input-size`: a full detector on 64 px test images resizes them to 64 px, not 800."""
    from panopticlab.models.common import ImageBatcher, set_input_size
    from panopticlab.models.pspnet import for_categories as pspnet_for_categories

    published, tiny = ImageBatcher(800, 1333), ImageBatcher(None)
    images = [torch.rand(3, 48, 96)]
    assert published.batch(images).images.image_sizes == [(666, 1333)]  # long side capped at 1333
    assert tiny.batch(images).images.image_sizes == [(48, 96)]  # kept
    for batcher in (published, tiny):
        batcher.set_input_size(64)
        assert (batcher.min_size, batcher.max_size) == ((64,), 107)  # 64 x 1333 / 800
    assert published.batch(images).images.image_sizes == [(53, 107)]
    assert published.batch([torch.rand(3, 64, 64)]).images.image_sizes == [(64, 64)]
    with pytest.raises(ValueError, match="positive number of pixels, got 0"):
        published.set_input_size(0)
    model = MaskRCNN(MaskRCNNConfig.full(num_classes=3), TWO_THINGS)
    assert set_input_size(model, 96) == 1 and model.transform.min_size == (96,)
    for keeps_the_data_size in (pspnet_for_categories(CATS, size="full"), for_categories(CATS)):
        assert set_input_size(keeps_the_data_size, 96) == 0 and keeps_the_data_size.transform.keep_size


def test_logits_come_back_as_one_map_per_input_image():
    """ImageBatcher.to_input_size: a list of [C, H_i, W_i] whatever the sizes; stack_if_one_size
    makes the maps of inputs of one size one tensor, as the models' eval outputs give them."""
    from panopticlab.models.common import ImageBatcher, stack_if_one_size

    batcher = ImageBatcher(None)  # keeps the sizes: to_input_size only crops the padding
    for images in ([torch.rand(3, 40, 56)] * 2, [torch.rand(3, 40, 56), torch.rand(3, 64, 32)]):
        batch = batcher.batch(images)
        logits = torch.rand(2, 5, *batch.images.tensors.shape[-2:])
        maps = batcher.to_input_size(logits, batch)
        assert isinstance(maps, list) and [m.shape for m in maps] == [(5, *i.shape[-2:]) for i in images]
        assert all(torch.equal(m, x[:, :m.shape[1], :m.shape[2]]) for m, x in zip(maps, logits))
        stacked = stack_if_one_size(maps)
        if images[0].shape == images[1].shape:
            assert torch.equal(stacked, torch.stack(maps))
        else:
            assert isinstance(stacked, list) and all(a is b for a, b in zip(stacked, maps))


def test_full_parameter_count_matches_coco_maskrcnn():
    reference = sum(p.numel() for p in maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).parameters())
    assert sum(p.numel() for p in MaskRCNN(MaskRCNNConfig.full(), coco_like_categories(),
                                                thing_labels=COCO_THING_IDS).parameters()) == reference  # 91 classes: 44.4M
    assert 44_000_000 < reference < 45_000_000


def test_tiny_train_step_returns_torchvisions_losses(batch):
    images, targets = batch
    assert sum(len(t["boxes"]) for t in targets["instances"]) > 0
    model = for_categories(CATS).train()
    torch.manual_seed(0)  # the RPN and RoI heads sample anchors and proposals at random
    losses = model(images, targets)  # the collated batch dict
    assert set(losses) == LOSS_NAMES
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    # the same step from torchvision's list-of-images, list-of-targets call
    torch.manual_seed(0)
    again = model(list(images), targets["instances"])
    for name in LOSS_NAMES:
        torch.testing.assert_close(again[name], losses[name])


def test_tiny_overfits_a_fixed_batch(batch):
    images, targets = batch
    torch.manual_seed(0)
    model = MaskRCNN(MaskRCNNConfig.tiny(len(CATS.thing_ids) + 1), CATS).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    history = []
    for _ in range(20):
        losses = model(images, targets)
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert sum(history[-3:]) / 3 < 0.6 * history[0], history


def test_tiny_eval_outputs_are_well_formed_detections(batch):
    images, _ = batch
    torch.manual_seed(0)
    model = for_categories(CATS).eval()
    # the tiny model enlarges its images twice inside (MaskRCNNConfig.tiny's input_scale)
    image_list, _ = model.transform(list(images))
    assert image_list.image_sizes == [(128, 128)] * 4
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 4
    for d in detections:
        n = len(d["scores"])
        assert 0 < n <= model.config.detection.box_detections_per_img
        assert d["boxes"].shape == (n, 4) and d["masks"].shape == (n, 1, 64, 64)
        assert d["labels"].dtype == torch.int64 and d["labels"].min() >= 1 and d["labels"].max() <= 4
        assert ((d["scores"] >= 0.05) & (d["scores"] <= 1)).all()
        assert (d["masks"] >= 0).all() and (d["masks"] <= 1).all()
        assert (d["boxes"][:, 2:] >= d["boxes"][:, :2]).all()
        assert torch.equal(d["category_ids"], torch.tensor(CATS.thing_ids)[d["labels"] - 1])


def test_mask_logits_of_given_boxes_are_the_masks_of_the_detections(batch):
    images, _ = batch
    torch.manual_seed(0)
    model = for_categories(CATS, box_score_thresh=0.0).eval()
    with torch.no_grad():
        prepared = model.transform.batch(images)
        features = model.backbone(prepared.images.tensors)
        detections, _ = detect(model.rpn, model.roi_heads, prepared.images, features)
        logits = mask_logits(model.roi_heads, features, [d["boxes"] for d in detections], prepared.images.image_sizes)
    for d, image_logits in zip(detections, logits):
        side = 2 * model.config.detection.mask_roi_size
        assert image_logits.shape == (len(d["boxes"]), len(CATS.thing_ids) + 1, side, side) and len(d["boxes"]) > 0
        # torchvision's masks are the sigmoid of the predicted class's logits
        chosen = image_logits[torch.arange(len(d["labels"])), d["labels"]]
        torch.testing.assert_close(d["masks"][:, 0], chosen.sigmoid())


def test_inference_is_the_instance_only_ablation(batch):
    images, _ = batch
    torch.manual_seed(0)
    model = for_categories(CATS, box_score_thresh=0.0)
    model.merge_config = MergeConfig(score_threshold=0.0)  # random weights: keep every detection
    predictions = model.inference(images)
    assert len(predictions) == 4 and model.training
    for prediction in predictions:
        assert prediction.semantic is None and prediction.detections["masks"].ndim == 3
        expected = ablation_merge("instance_only", None, prediction.detections, CATS, model.merge_config)
        assert prediction.panoptic.equals(expected.panoptic)
        assert all(CATS.isthing(s.category_id) for s in prediction.panoptic.segments)


def test_image_without_instances_trains():
    model = for_categories(CATS).train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 32, 32, dtype=torch.uint8)}
    losses = model(torch.rand(2, 3, 32, 32), [empty, empty])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"] == 0 and losses["loss_box_reg"] == 0  # nothing to regress


def test_bad_input_gets_clear_errors(batch):
    images, targets = batch
    model = for_categories(CATS).train()
    with pytest.raises(ValueError, match="needs targets"):
        model(images)
    with pytest.raises(ValueError, match="4 images but 2 targets"):
        model(images, targets["instances"][:2])
    with pytest.raises(ValueError, match=r"image 1 lacks \['masks'\]"):
        model(images[:2], [targets["instances"][0], {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])
    with pytest.raises(ValueError, match="no 'instances' entry"):
        model(images, {"semantic": None})
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(images[0])
    with pytest.raises(ValueError, match="anchor sizes"):
        MaskRCNN(MaskRCNNConfig.tiny(5, anchor_sizes=(8, 16)), CATS)
    with pytest.raises(ValueError, match="thing ids"):
        MaskRCNN(MaskRCNNConfig.tiny(5), TWO_THINGS)
    with pytest.raises(ValueError, match="background"):
        MaskRCNN(MaskRCNNConfig.tiny(1), CATS)


def test_the_baselines_detector_takes_torchvisions_coco_weights_whole():
    """As Panoptic FPN and UPSNet: thing_labels numbers the detector's 91 labels by COCO id."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from panopticlab.models import HeuristicBaseline

    categories = coco_like_categories()
    baseline = HeuristicBaseline.for_categories(categories, "full", thing_labels=COCO_THING_IDS)
    detector = baseline.instance_model
    assert detector.config.num_classes == 91
    result = detector.load_state_dict(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert detector.label_to_category[COCO_THING_IDS].tolist() == list(categories.thing_ids)
    assert int(detector.label_to_category[12]) == 0  # a COCO label without a category
    # training relabels the data's labels 1..K to the detector's
    assert detector.instance_to_detector_label[1:].tolist() == COCO_THING_IDS


def test_the_tiny_detectors_see_their_images_enlarged_and_answer_at_the_input_size():
    from panopticlab.models.common import ImageBatcher

    batcher = ImageBatcher(None, scale=2.0)
    settings = batcher.min_size, batcher.max_size
    assert tuple(batcher.batch([torch.rand(3, 50, 70)]).images.image_sizes[0]) == (100, 140)
    assert (batcher.min_size, batcher.max_size) == settings  # an image's size does not stay behind
    with pytest.raises(ValueError, match="scale must be positive and given without min_size"):
        ImageBatcher(800, scale=2.0)
    model = MaskRCNN(MaskRCNNConfig.tiny(len(CATS.thing_ids) + 1), CATS).eval()
    assert model.config.input_scale == 2.0
    with torch.no_grad():
        detections = model(torch.rand(1, 3, 48, 64))[0]
    assert detections["masks"].shape[-2:] == (48, 64)  # back at the input's size
    assert (detections["boxes"][:, 2] <= 64).all() and (detections["boxes"][:, 3] <= 48).all()
