"""MaskFormer / Mask2Former: the matching against every assignment, the cost and the loss against the
paper's formulas written out here, gradients, a few training steps, the inference rule on a hand-made
case and against the published loop, the published settings, the targets, bad input."""
import dataclasses
import itertools
import math
import re

import numpy as np
import pytest
import torch

from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation
from panopticlab.data.dataset import PanopticDataset, collate_panoptic
from panopticlab.data.sample import Sample
from panopticlab.data.synthetic import SyntheticPanoptic
from panopticlab.models import mask_former
from panopticlab.models.backbones import BackboneConfig
from panopticlab.models.common import PanopticPrediction
from panopticlab.models.mask_former import MaskFormerConfig, attention_mask, for_categories, sine_position_embedding
from panopticlab.models.set_matching import (
    SetLossConfig,
    hungarian_matching,
    match,
    matching_cost,
    point_sample,
    set_criterion,
    set_losses,
    uncertain_point_coords,
)
from panopticlab.postprocess.mask_former import (
    EMPTY,
    KEPT,
    LOW_SCORE,
    MERGED,
    NO_OBJECT,
    OVERLAP,
    MaskInferenceConfig,
    mask_former_panoptic,
    semantic_inference,
)

from model_cases import coco_like_categories

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = len(CATS)  # 9 categories; class K is "no object"
DISC, BOX, TRIANGLE, SKY, ROAD = 1, 2, 3, 11, 12
TRAIN_ID = {c: i for i, c in enumerate(CATS.ids)}
MASKFORMER = SetLossConfig()
MASK2FORMER = SetLossConfig.mask2former(num_points=None)


# --- the paper's formulas, written out independently of the package ------------------------------------
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def bce(x, t):
    """-(t log s + (1 - t) log(1 - s)), s = sigmoid(x): the per-pixel binary cross-entropy."""
    s = sigmoid(x)
    return -(t * np.log(s) + (1 - t) * np.log(1 - s))


def focal(x, t, alpha=0.25, gamma=2.0):
    """Lin et al.: alpha_t (1 - p_t)^gamma CE, p_t the probability given to the true label."""
    s = sigmoid(x)
    p_t = s * t + (1 - s) * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    return alpha_t * (1 - p_t) ** gamma * bce(x, t)


def dice(x, t):
    """1 - (2 |s t| + 1) / (|s| + |t| + 1), with the published +1 smoothing."""
    s = sigmoid(x)
    return 1 - (2 * (s * t).sum() + 1) / (s.sum() + t.sum() + 1)


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def reference_cost(class_logits, mask_logits, labels, masks, config):
    """C[q, n] = -w_class p_q(c_n) + w_mask mean_pixels L_mask(m_q, t_n) + w_dice dice(m_q, t_n), one pair at a time."""
    pixel_loss = focal if config.mask_loss == "focal" else bce
    cost = np.zeros((len(class_logits), len(labels)))
    for q in range(len(class_logits)):
        p = softmax(class_logits[q])
        for n in range(len(labels)):
            cost[q, n] = (-config.class_weight * p[labels[n]]
                          + config.mask_weight * pixel_loss(mask_logits[q], masks[n]).mean()
                          + config.dice_weight * dice(mask_logits[q], masks[n]))
    return cost


def reference_losses(class_logits, mask_logits, targets, pairs, config):
    """The set loss of a batch given its matching: weighted CE over all queries (unmatched -> no object),
    mask and Dice losses summed over the matched pairs and divided by the batch's number of segments."""
    num_classes = class_logits.shape[-1]
    weights = np.ones(num_classes)
    weights[-1] = config.no_object_weight
    pixel_loss = focal if config.mask_loss == "focal" else bce
    ce_sum = weight_sum = mask_sum = dice_sum = 0.0
    num_masks = max(sum(len(t["labels"]) for t in targets), 1)
    for b, (rows, cols) in enumerate(pairs):
        wanted = {int(q): int(n) for q, n in zip(rows, cols)}
        for q in range(class_logits.shape[1]):
            label = targets[b]["labels"][wanted[q]] if q in wanted else num_classes - 1
            ce_sum += weights[label] * -math.log(softmax(class_logits[b, q])[label])
            weight_sum += weights[label]
            if q in wanted:
                mask = targets[b]["masks"][wanted[q]]
                mask_sum += pixel_loss(mask_logits[b, q], mask).mean()
                dice_sum += dice(mask_logits[b, q], mask)
    return {"loss_ce": ce_sum / weight_sum, "loss_mask": mask_sum / num_masks, "loss_dice": dice_sum / num_masks}


def brute_force_min(cost):
    """The least total cost of a one-to-one assignment of min(Q, N) pairs, over every possibility."""
    rows, cols = cost.shape
    if rows >= cols:
        return min(sum(cost[q, n] for n, q in enumerate(p)) for p in itertools.permutations(range(rows), cols))
    return min(sum(cost[q, n] for q, n in enumerate(p)) for p in itertools.permutations(range(cols), rows))


def random_case(rng, batch=2, queries=5, size=(6, 7), max_segments=4):
    class_logits = rng.normal(0, 2, (batch, queries, K + 1))
    mask_logits = rng.normal(0, 3, (batch, queries, *size))
    targets = []
    for _ in range(batch):
        n = int(rng.integers(0, max_segments + 1))
        targets.append({"labels": rng.integers(0, K, n), "masks": (rng.random((n, *size)) < 0.4).astype(np.float64)})
    return class_logits, mask_logits, targets


def as_torch(class_logits, mask_logits, targets):
    return (torch.tensor(class_logits), torch.tensor(mask_logits),
            [{"labels": torch.tensor(t["labels"], dtype=torch.int64), "masks": torch.tensor(t["masks"])}
             for t in targets])


# --- matching ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (5, 2), (6, 4), (2, 5)])
def test_hungarian_matching_finds_the_least_total_cost_of_all_assignments(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.normal(size=shape)
        if rng.random() < 0.3:
            cost = np.round(cost)  # ties
        rows, cols = hungarian_matching(torch.tensor(cost))
        assert len(rows) == len(cols) == min(shape)
        assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert rows.tolist() == sorted(rows.tolist())
        assert cost[rows, cols].sum() == pytest.approx(brute_force_min(cost), abs=1e-12)


@pytest.mark.parametrize("config", [MASKFORMER, MASK2FORMER], ids=["maskformer", "mask2former"])
def test_matching_cost_is_the_papers_formula(config):
    rng = np.random.default_rng(1)
    class_logits, mask_logits, targets = random_case(rng, batch=1, queries=6, max_segments=5)
    targets[0] = {"labels": np.array([0, 4, 8, 4]), "masks": (rng.random((4, 6, 7)) < 0.5).astype(float)}
    c, m, t = as_torch(class_logits, mask_logits, targets)
    cost = matching_cost(c[0], m[0].flatten(1), t[0]["labels"], t[0]["masks"].flatten(1), config)
    expected = reference_cost(class_logits[0], mask_logits[0].reshape(6, -1), targets[0]["labels"],
                              targets[0]["masks"].reshape(4, -1), config)
    np.testing.assert_allclose(cost.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config", [MASKFORMER, MASK2FORMER], ids=["maskformer", "mask2former"])
def test_match_of_a_batch_is_the_cheapest_assignment_of_each_image(config):
    rng = np.random.default_rng(2)
    for _ in range(5):
        class_logits, mask_logits, targets = random_case(rng, batch=3, queries=5)
        pairs = match(*as_torch(class_logits, mask_logits, targets), config)
        for b, (rows, cols) in enumerate(pairs):
            n = len(targets[b]["labels"])
            assert len(rows) == len(cols) == n
            if n:
                cost = reference_cost(class_logits[b], mask_logits[b].reshape(5, -1), targets[b]["labels"],
                                      targets[b]["masks"].reshape(n, -1), config)
                assert cost[rows, cols].sum() == pytest.approx(brute_force_min(cost), rel=1e-6)


def test_the_class_term_can_decide_the_matching():
    # two queries with the same mask, one confident of class 2, one of class 5: each goes to its class
    masks = torch.zeros(2, 4, 4)
    masks[:, :2] = 1
    class_logits = torch.full((1, 2, K + 1), -5.0)
    class_logits[0, 0, 5] = class_logits[0, 1, 2] = 5.0
    mask_logits = (masks[:1] * 8 - 4).expand(1, 2, 4, 4).clone()
    targets = [{"labels": torch.tensor([2, 5]), "masks": masks}]
    (rows, cols), = match(class_logits, mask_logits, targets, MASK2FORMER)
    assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 1: 0}


# --- the set loss ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [MASKFORMER, MASK2FORMER, dataclasses.replace(MASKFORMER, no_object_weight=1.0)],
                         ids=["maskformer", "mask2former", "no_object_weight_1"])
def test_set_losses_are_the_papers_formulas(config):
    rng = np.random.default_rng(3)
    for _ in range(3):
        class_logits, mask_logits, targets = random_case(rng, batch=3, queries=5)
        c, m, t = as_torch(class_logits, mask_logits, targets)
        pairs = match(c, m, t, config)
        losses = set_losses(c, m, t, pairs, config)
        expected = reference_losses(class_logits, mask_logits, targets, pairs, config)
        for name, value in expected.items():
            assert losses[name].item() == pytest.approx(value, rel=1e-5, abs=1e-7), name


def test_no_object_weight_lowers_the_pull_of_empty_queries():
    # one matched query among nine unmatched ones: with "no object" weighing 0.1, its share of the gradient grows
    class_logits = torch.zeros(1, 10, K + 1, requires_grad=True)
    targets = [{"labels": torch.tensor([3]), "masks": torch.ones(1, 4, 4)}]
    pairs = [(torch.tensor([0]), torch.tensor([0]))]
    mask_logits = torch.zeros(1, 10, 4, 4)
    grads = []
    for weight in (1.0, 0.1):
        config = dataclasses.replace(MASKFORMER, no_object_weight=weight)
        loss = set_losses(class_logits, mask_logits, targets, pairs, config)
        grad, = torch.autograd.grad(loss["loss_ce"], class_logits)
        grads.append(grad[0, 0].abs().sum() / grad[0, 1:].abs().sum())
    assert grads[1] > 5 * grads[0]


def test_criterion_weights_the_losses_and_sums_the_earlier_layers():
    rng = np.random.default_rng(4)
    c, m, t = as_torch(*random_case(rng, batch=2, queries=5))
    layers = [(c + i, m - i) for i in range(3)]
    losses = set_criterion(layers, t, MASK2FORMER)
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice", "loss_ce_aux", "loss_mask_aux", "loss_dice_aux"}
    weights = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
    unweighted = [set_losses(cl, ml, t, match(cl, ml, t, MASK2FORMER), MASK2FORMER) for cl, ml in layers]
    for name, weight in weights.items():
        assert losses[name].item() == pytest.approx(weight * unweighted[-1][name].item(), rel=1e-6)
        assert losses[name + "_aux"].item() == pytest.approx(
            weight * (unweighted[0][name] + unweighted[1][name]).item(), rel=1e-6)
    assert set(set_criterion(layers[-1:], t, MASK2FORMER)) == set(weights)


def test_an_image_without_segments_gives_only_no_object_targets():
    class_logits = torch.randn(2, 4, K + 1)
    mask_logits = torch.randn(2, 4, 5, 5, requires_grad=True)
    targets = [{"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 5, 5)}] * 2
    losses = set_criterion([(class_logits, mask_logits)], targets, MASKFORMER)
    expected = torch.nn.functional.cross_entropy(class_logits.transpose(1, 2), torch.full((2, 4), K))
    assert losses["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses["loss_mask"].item() == losses["loss_dice"].item() == 0.0
    losses["loss_mask"].backward()  # in the graph, with a zero gradient
    assert not mask_logits.grad.any()


def test_point_sample_reads_pixel_centres_and_uncertain_points_are_uncertain():
    maps = torch.arange(12.0).reshape(1, 1, 3, 4)
    centres = torch.tensor([[[(x + 0.5) / 4, (y + 0.5) / 3] for y in range(3) for x in range(4)]])
    assert point_sample(maps, centres)[0, 0].tolist() == pytest.approx(list(range(12)), abs=1e-5)

    torch.manual_seed(0)
    logits = torch.full((2, 1, 16, 16), 10.0)
    logits[:, :, :, :8] = 0.0  # the left half is uncertain
    points = uncertain_point_coords(logits, 100, oversample_ratio=3.0, importance_sample_ratio=1.0)
    assert points.shape == (2, 100, 2) and bool((points[..., 0] < 0.5).all())
    mixed = uncertain_point_coords(logits, 100, oversample_ratio=3.0, importance_sample_ratio=0.75)
    assert mixed.shape == (2, 100, 2) and bool((mixed[:, :75, 0] < 0.5).all())


def test_sampled_points_estimate_the_every_pixel_loss():
    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 48), torch.linspace(-1, 1, 48), indexing="ij")
    mask_logits = torch.stack([3 * x, 2 - 4 * (x**2 + y**2)])[None]  # smooth logits
    targets = [{"labels": torch.tensor([1, 2]),
                "masks": torch.stack([x > 0.2, x**2 + y**2 < 0.4]).float()}]
    class_logits = torch.zeros(1, 2, K + 1)
    pairs = [(torch.tensor([0, 1]), torch.tensor([0, 1]))]
    dense = set_losses(class_logits, mask_logits, targets, pairs, MASK2FORMER)
    sampled = set_losses(class_logits, mask_logits, targets, pairs,
                         dataclasses.replace(MASK2FORMER, num_points=40000, importance_sample_ratio=0.0))
    for name in ("loss_mask", "loss_dice"):
        assert sampled[name].item() == pytest.approx(dense[name].item(), rel=0.05)


# --- the network -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batch():
    dataset = PanopticDataset(SyntheticPanoptic(4, 64, split="train"), CATS, targets=("semantic", "instances"))
    return collate_panoptic([dataset[i] for i in range(4)])


def test_sine_positions_are_detrs():
    pos = sine_position_embedding(3, 4, 8)
    assert pos.shape == (8, 3, 4)
    for y, x, c in itertools.product(range(3), range(4), range(8)):
        coordinate, j = ((y + 1) / 3, c) if c < 4 else ((x + 1) / 4, c - 4)
        angle = coordinate * 2 * math.pi / 10000 ** (2 * (j // 2) / 4)
        assert pos[c, y, x].item() == pytest.approx(math.sin(angle) if j % 2 == 0 else math.cos(angle), abs=1e-5)


def test_masked_attention_looks_only_inside_the_previous_mask():
    logits = torch.full((2, 3, 4, 4), -5.0)
    logits[0, 0, :2, :2] = 5.0  # query 0 of image 0: the top-left quarter
    logits[1, 1] = 5.0          # query 1 of image 1: everywhere
    blocked = attention_mask(logits, (4, 4), heads=2)
    assert blocked.shape == (4, 3, 16)
    for head in range(2):
        assert (~blocked[head, 0]).nonzero()[:, 0].tolist() == [0, 1, 4, 5]
        assert not blocked[head, 1].any() and not blocked[head, 2].any()  # an empty mask looks everywhere
        assert not blocked[2 + head, 1].any()
    assert torch.equal(attention_mask(logits, (2, 2), heads=1)[0, 0], torch.tensor([False, True, True, True]))


def test_full_models_are_the_published_configurations():
    maskformer = MaskFormerConfig.full(133)
    assert (maskformer.num_queries, maskformer.decoder_layers, maskformer.hidden_dim, maskformer.mask_dim,
            maskformer.conv_dim, maskformer.num_heads, maskformer.feedforward_dim, maskformer.dropout,
            maskformer.encoder_layers, maskformer.masked_attention) == (100, 6, 256, 256, 256, 8, 2048, 0.1, 6, False)
    assert maskformer.loss == SetLossConfig(1.0, 20.0, 1.0, 0.1, "focal", 0.25, 2.0, None)
    assert maskformer.inference == MaskInferenceConfig(0.7, 0.8, 0.5, within_mask=False)
    assert (maskformer.min_size, maskformer.max_size) == (800, 1333)
    assert maskformer.backbone == BackboneConfig("resnet50", norm="batch")
    m2f = MaskFormerConfig.full(133, variant="mask2former")
    assert (m2f.num_queries, m2f.decoder_layers, m2f.dropout, m2f.masked_attention, m2f.encoder_layers) == \
        (100, 9, 0.0, True, 0)
    assert m2f.loss == SetLossConfig(2.0, 5.0, 5.0, 0.1, "bce", num_points=12544, oversample_ratio=3.0,
                                     importance_sample_ratio=0.75)
    assert m2f.inference == MaskInferenceConfig(0.8, 0.8, 0.5, within_mask=True)
    assert (MaskFormerConfig.full(19, dataset="cityscapes").min_size,
            MaskFormerConfig.full(19, dataset="cityscapes").max_size) == (1024, 2048)
    with pytest.raises(ValueError, match="variant"):
        MaskFormerConfig.full(133, variant="maskformer3")


def test_stated_parameter_counts():
    def count(*modules):
        return sum(p.numel() for module in modules for p in module.parameters())

    stated = [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+", mask_former.__doc__)]
    coco = coco_like_categories()
    maskformer, m2f = (for_categories(coco, "full", variant=v) for v in ("maskformer", "mask2former"))
    tiny = for_categories(CATS, "tiny")
    assert stated == [count(maskformer), count(maskformer.backbone), count(maskformer.pixel_decoder),
                      count(maskformer.pixel_decoder.encoder), count(maskformer.decoder), count(m2f),
                      count(m2f.pixel_decoder), count(m2f.decoder), count(tiny), count(tiny.backbone)]
    assert count(maskformer) == count(maskformer.backbone, maskformer.pixel_decoder, maskformer.decoder)


@pytest.mark.parametrize("variant", ["maskformer", "mask2former"])
def test_full_model_shapes_and_supervised_predictions(variant, batch):
    torch.manual_seed(0)
    model = for_categories(CATS, "full", variant=variant, min_size=None)  # 64 px, as given
    decoder = model.decoder
    assert decoder.class_head.out_features == K + 1 and decoder.query_embed.num_embeddings == 100
    assert [layer.cross_first for layer in decoder.layers] == [variant == "mask2former"] * len(decoder.layers)
    assert len(model.pixel_decoder.encoder) == (6 if variant == "maskformer" else 0)
    images, targets = batch
    with torch.no_grad():
        predictions = model.eval().predict(model.transform.batch(images[:2]).images.tensors)
        assert len(predictions) == (6 if variant == "maskformer" else 10)
        assert [tuple(c.shape) + tuple(m.shape) for c, m in predictions[-1:]] == [(2, 100, K + 1, 2, 100, 16, 16)]
        outputs = model(images[:2, :, :, :48])
    assert outputs["class_logits"].shape == (2, 100, K + 1) and outputs["mask_logits"].shape == (2, 100, 64, 48)
    if variant == "mask2former":  # the point-sampled losses run
        losses = model.train()(images[:2], {key: value[:2] for key, value in targets.items()})
        assert set(losses) == {"loss_ce", "loss_mask", "loss_dice", "loss_ce_aux", "loss_mask_aux", "loss_dice_aux"}
        assert all(torch.isfinite(v) for v in losses.values())


def test_mask_logits_are_dot_products_of_query_and_pixel_embeddings():
    torch.manual_seed(0)
    decoder = for_categories(CATS, "tiny").decoder
    queries, features = torch.randn(2, 30, 64), torch.randn(2, 64, 5, 6)
    class_logits, mask_logits = decoder.predict(queries, features)
    embeddings = decoder.mask_head(decoder.norm(queries))
    assert class_logits.shape == (2, 30, K + 1)
    expected = torch.stack([torch.stack([(e[:, None, None] * f).sum(0) for e in emb])
                            for emb, f in zip(embeddings, features)])
    torch.testing.assert_close(mask_logits, expected, rtol=1e-4, atol=1e-4)


def test_gradients_reach_every_trainable_parameter(batch):
    torch.manual_seed(0)
    model = for_categories(CATS, "tiny").train()
    images, targets = batch
    losses = model(images, targets)
    sum(losses.values()).backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(name.startswith(("backbone.stem", "backbone.layer1")) for name in trainable)
    missing = [name for name, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())


def test_tiny_model_trains_on_the_built_in_data(batch):
    torch.manual_seed(0)
    model = for_categories(CATS, "tiny").train()
    images, targets = batch
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    totals = []
    for _ in range(12):
        total = sum(model(images, targets).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert np.mean(totals[-3:]) < 0.7 * np.mean(totals[:3])


def test_eval_outputs_and_inference(batch):
    torch.manual_seed(0)
    model = for_categories(CATS, "tiny")
    images, _ = batch
    with torch.no_grad():
        outputs = model.eval()(images[:2])
    assert outputs["class_logits"].shape == (2, 30, K + 1) and outputs["mask_logits"].shape == (2, 30, 64, 64)
    model.config.inference = MaskInferenceConfig(score_threshold=0.0, overlap_threshold=0.0)  # keep what it can
    predictions = model.inference(images[:2])
    assert model.training is False
    for prediction in predictions:
        assert isinstance(prediction, PanopticPrediction)
        prediction.panoptic.validate(CATS, check_statistics=True)
        assert prediction.panoptic.shape == (64, 64) and prediction.panoptic.segments
        assert set(np.unique(prediction.semantic)) <= set(CATS.ids)
        assert prediction.outputs["mask_logits"].shape == (30, 64, 64)
        assert len(prediction.merge.outcomes) == 30


# --- targets ---------------------------------------------------------------------------------------------
def test_segment_targets_are_the_non_crowd_things_and_one_segment_per_stuff_class():
    id_map = np.zeros((8, 10), dtype=np.int32)
    id_map[:4] = 1             # sky
    id_map[4:, :5] = 2         # road
    id_map[4:, 5:] = 3         # road again (a second segment of the class)
    id_map[1:3, 1:3] = 10      # a disc
    id_map[5:7, 6:9] = 11      # a crowd of boxes
    id_map[0, 9] = 0           # void
    pan = PanopticSegmentation.from_id_map(id_map, {1: SKY, 2: ROAD, 3: ROAD, 10: DISC, 11: BOX}, {11: 1})
    sample = Sample(np.zeros((8, 10, 3), np.uint8), pan, image_id=0, file_name="hand-made")
    dataset = PanopticDataset([sample, sample], CATS, targets=("semantic", "instances"))
    images, targets = collate_panoptic([dataset[0], dataset[1]])
    model = for_categories(CATS, "tiny")
    batch = model.transform.batch(images, [dict(t, labels=model.instance_to_class[t["labels"]])
                                           for t in targets["instances"]], targets["semantic"])
    segments = model.segment_targets(batch.semantic, batch.instances)
    assert len(segments) == 2 and batch.semantic.shape == (2, 32, 32)  # padded to 32
    got = {(int(label), tuple(mask.nonzero()[:, 0].unique().tolist()), int(mask.sum()))
           for label, mask in zip(segments[0]["labels"], segments[0]["masks"])}
    assert got == {(TRAIN_ID[DISC], (1, 2), 4), (TRAIN_ID[SKY], (0, 1, 2, 3), 40 - 4 - 1),
                   (TRAIN_ID[ROAD], (4, 5, 6, 7), 40 - 6)}  # the crowd is no segment; void and padding are in none


# --- inference -------------------------------------------------------------------------------------------
def class_logits_for(entries):
    """Q x (K + 1) logits: ``(train id or K, probability)`` per query, the rest spread evenly."""
    rows = []
    for label, probability in entries:
        p = np.full(K + 1, (1 - probability) / K)
        p[label] = probability
        rows.append(np.log(p))
    return torch.tensor(np.array(rows))


def hand_made_case():
    """Six queries on an 8 x 8 image; mask logits +-10 (probabilities 1 or 0, up to 5e-5)."""
    masks = np.zeros((6, 8, 8), dtype=bool)
    masks[0, 4:, :4] = True          # a disc, bottom left
    masks[1, :4] = True              # sky, top half
    masks[2, 4:, 4:] = True          # sky again, bottom right: merges with query 1
    masks[3] = True                  # "no object"
    masks[4, 4:6, 0:2] = True        # a box, not confident enough
    masks[5, 3:6, 1:4] = True        # a triangle over the disc: it wins only its top row (row 3)
    entries = [(TRAIN_ID[DISC], 0.95), (TRAIN_ID[SKY], 0.9), (TRAIN_ID[SKY], 0.85), (K, 0.99),
               (TRAIN_ID[BOX], 0.6), (TRAIN_ID[TRIANGLE], 0.93)]
    return class_logits_for(entries), torch.tensor(np.where(masks, 10.0, -10.0)), masks


def test_inference_on_a_hand_made_case():
    class_logits, mask_logits, _ = hand_made_case()
    result = mask_former_panoptic(class_logits, mask_logits, CATS, MaskInferenceConfig())
    assert result.outcomes == [KEPT, KEPT, MERGED, NO_OBJECT, LOW_SCORE, OVERLAP]
    assert result.kept.tolist() == [True, True, True, False, False, True]
    assert result.scores.tolist() == pytest.approx([0.95, 0.9, 0.85, 0.99, 0.6, 0.93])
    # the triangle (0.93) loses rows 4-5 to the disc (0.95) and wins only row 3 from the sky (0.9):
    # 3 of its 9 pixels, less than 0.8 of its mask: dropped
    assert result.won_area[5] == 3 and result.mask_area[5] == 9
    expected = np.zeros((8, 8), dtype=np.int32)
    expected[4:, :4] = 1
    expected[:4] = 2
    expected[4:, 4:] = 2
    # row 3, columns 1-3 went to the triangle, which was dropped: void
    expected[3, 1:4] = 0
    np.testing.assert_array_equal(result.panoptic.id_map, expected)
    result.panoptic.validate(CATS, check_statistics=True)
    assert [(s.id, s.category_id, s.area) for s in result.panoptic.segments] == [(1, DISC, 16), (2, SKY, 45)]
    assert [round(s.score, 6) for s in result.panoptic.segments] == [0.95, 0.9]
    assert result.query_segment.tolist() == [1, 2, 2, 0, 0, 0]
    assert result.owner[3, 1] == 5 and result.owner[0, 0] == 1 and result.owner[7, 7] == 2
    assert "triangle" in result.report(CATS) and "overlap" in result.report(CATS)

    # a lower overlap threshold keeps the triangle's row; a score threshold of 0.5 keeps the box, which the
    # disc then beats on all its pixels: it won nothing
    relaxed = mask_former_panoptic(class_logits, mask_logits, CATS, MaskInferenceConfig(0.5, 0.3))
    assert relaxed.outcomes == [KEPT, KEPT, MERGED, NO_OBJECT, EMPTY, KEPT]
    assert relaxed.panoptic.segment(3).category_id == TRIANGLE and relaxed.panoptic.segment(3).area == 3


def test_maskformer_rule_gives_every_won_pixel():
    # Mask2Former keeps a won pixel only inside the query's own mask; MaskFormer keeps every won pixel
    class_logits = class_logits_for([(TRAIN_ID[SKY], 0.9), (TRAIN_ID[DISC], 0.95)])
    mask_logits = torch.full((2, 4, 4), -10.0)
    mask_logits[0, :2] = 10.0
    mask_logits[0, 2] = math.log(0.3 / 0.7)  # the sky's probability 0.3 on row 2: it wins the row, outside its mask
    mask_logits[1, 3, :2] = 10.0              # the disc: row 3, columns 0-1; it also wins columns 2-3 (0.95 > 0.9)
    within = mask_former_panoptic(class_logits, mask_logits, CATS, MaskInferenceConfig())
    everywhere = mask_former_panoptic(class_logits, mask_logits, CATS, MaskInferenceConfig.maskformer())
    np.testing.assert_array_equal(within.owner, [[0] * 4] * 3 + [[1] * 4])
    np.testing.assert_array_equal(within.panoptic.id_map, [[1] * 4, [1] * 4, [0] * 4, [2, 2, 0, 0]])
    np.testing.assert_array_equal(everywhere.panoptic.id_map, [[1] * 4] * 3 + [[2] * 4])
    assert within.outcomes == everywhere.outcomes == [KEPT, KEPT]
    assert (within.won_area.tolist(), within.mask_area.tolist()) == ([12, 4], [8, 2])


def published_panoptic_inference(class_logits, mask_logits, thing_classes, score_threshold, overlap_threshold,
                                 within_mask):
    """Mask2Former's ``panoptic_inference`` (``mask2former/maskformer_model.py``), step by step in numpy."""
    p = np.exp(class_logits - class_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores, labels = p.max(1), p.argmax(1)
    num_classes = class_logits.shape[1] - 1
    keep = (labels != num_classes) & (scores > score_threshold)
    masks = sigmoid(mask_logits)
    panoptic = np.zeros(mask_logits.shape[1:], dtype=np.int32)
    segments, stuff_memory = [], {}
    if not keep.any():
        return panoptic, segments
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], masks[keep]
    ids = (cur_scores[:, None, None] * cur_masks).argmax(0)
    for k in range(len(cur_classes)):
        pred_class = int(cur_classes[k])
        mask_area = (ids == k).sum()
        original_area = (cur_masks[k] >= 0.5).sum()
        mask = (ids == k) & (cur_masks[k] >= 0.5) if within_mask else ids == k
        if mask_area > 0 and original_area > 0 and mask.sum() > 0:
            if mask_area / original_area < overlap_threshold:
                continue
            if pred_class not in thing_classes:
                if pred_class in stuff_memory:
                    panoptic[mask] = stuff_memory[pred_class]
                    continue
                stuff_memory[pred_class] = len(segments) + 1
            segments.append((len(segments) + 1, pred_class))
            panoptic[mask] = len(segments)
    return panoptic, segments


@pytest.mark.parametrize("within_mask", [True, False])
def test_inference_is_the_published_loop_on_random_outputs(within_mask):
    rng = np.random.default_rng(5)
    thing_classes = {TRAIN_ID[c] for c in CATS.thing_ids}
    for trial in range(30):
        queries = int(rng.integers(1, 12))
        class_logits = rng.normal(0, 3, (queries, K + 1))
        mask_logits = rng.normal(0, 2, (queries, 1, 1)) + rng.normal(0, 2, (queries, 12, 14))
        config = MaskInferenceConfig(float(rng.uniform(0, 0.6)), float(rng.uniform(0, 0.9)), within_mask=within_mask)
        result = mask_former_panoptic(torch.tensor(class_logits), torch.tensor(mask_logits), CATS, config)
        id_map, segments = published_panoptic_inference(class_logits, mask_logits, thing_classes,
                                                         config.score_threshold, config.overlap_threshold, within_mask)
        np.testing.assert_array_equal(result.panoptic.id_map, id_map)
        assert [(s.id, TRAIN_ID[s.category_id]) for s in sorted(result.panoptic.segments, key=lambda s: s.id)] == \
            segments
        result.panoptic.validate(CATS, check_statistics=True)


def test_semantic_inference_sums_class_times_mask_probabilities():
    class_logits, mask_logits, _ = hand_made_case()
    semantic = semantic_inference(class_logits, mask_logits, CATS)
    assert semantic[0, 0] == SKY and semantic[7, 0] == DISC and semantic[7, 7] == SKY
    assert semantic[3, 2] == TRIANGLE  # the triangle's 0.93 against the disc's near-zero mask there


def test_bad_input_is_named():
    class_logits, mask_logits, _ = hand_made_case()
    with pytest.raises(ValueError, match="9 categories and 'no object' make 10"):
        mask_former_panoptic(class_logits[:, :-1], mask_logits, CATS, source="image 7")
    with pytest.raises(ValueError, match="image 7: 6 class predictions but 5 masks"):
        mask_former_panoptic(class_logits, mask_logits[:5], CATS, source="image 7")
    with pytest.raises(ValueError, match="NaN"):
        mask_former_panoptic(class_logits, mask_logits * float("nan"), CATS)
    with pytest.raises(ValueError, match="score_threshold"):
        MaskInferenceConfig(score_threshold=1.5)
    with pytest.raises(ValueError, match="mask_loss"):
        SetLossConfig(mask_loss="l1")
    model = for_categories(CATS, "tiny").train()
    with pytest.raises(ValueError, match="'semantic' and 'instances'"):
        model(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="categories have 9 classes, the config 10"):
        mask_former.MaskFormer(MaskFormerConfig.tiny(10), CATS)
    with pytest.raises(ValueError, match="unknown size"):
        for_categories(CATS, "medium")


def test_explain_matching_is_the_training_matching_with_its_costs(batch):
    torch.manual_seed(0)
    model = for_categories(CATS, "tiny").eval()
    images, targets = batch
    matchings = model.explain_matching(images, targets)
    assert len(matchings) == len(images)
    for image_matching in matchings:
        queries, segments = image_matching.cost.shape
        assert queries == model.config.num_queries and segments == len(image_matching.labels)
        assert image_matching.masks.shape[0] == segments and image_matching.mask_logits.shape[0] == queries
        # the pairs are the Hungarian assignment of that cost: no other one-to-one choice is cheaper
        rows, cols = hungarian_matching(image_matching.cost)
        assert torch.equal(rows, image_matching.queries) and torch.equal(cols, image_matching.targets)
        chosen = image_matching.cost[image_matching.queries, image_matching.targets].sum()
        rng = np.random.default_rng(1)
        for _ in range(50):
            other = torch.as_tensor(rng.permutation(queries)[:segments])
            assert image_matching.cost[other, torch.arange(segments)].sum() >= chosen - 1e-5
    # Q >= N: every segment has its query
    assert all(len(m.queries) == len(m.labels) for m in matchings)
    # the same pairs as the loss's matching of the same predictions
    with torch.no_grad():
        batch_in, segments = model._segments(images, list(images), targets)
        class_logits, mask_logits = model.predict(batch_in.images.tensors)[-1]
    for (rows, cols), image_matching in zip(match(class_logits, mask_logits, segments, model.config.loss), matchings):
        assert torch.equal(rows, image_matching.queries) and torch.equal(cols, image_matching.targets)


def test_query_and_matching_figures_draw_what_they_are_given(batch):
    from panopticlab import viz

    torch.manual_seed(0)
    model = for_categories(CATS, "tiny").eval()
    images, targets = batch
    first = model.explain_matching(images, targets)[0]
    height, width = images.shape[-2:]
    image = (images[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    names = [CATS.name(CATS.ids[int(label)]) for label in first.labels]
    figure = viz.show_set_matching(first.cost.numpy(), first.queries.numpy(), first.targets.numpy(), names,
                                   image=image, target_masks=first.masks[:, :height, :width].numpy(),
                                   query_masks=first.mask_logits[:, :height, :width].sigmoid().numpy(), max_queries=5)
    assert len(figure.axes) >= 1 + len(first.queries)  # the matrix (and its colour bar) and one panel per pair
    with pytest.raises(ValueError, match="target names"):
        viz.show_set_matching(first.cost.numpy(), first.queries.numpy(), first.targets.numpy(), names[:-1])
    prediction = model.inference(images[:1])[0]
    steps = prediction.merge
    figure = viz.show_queries(image, prediction.outputs["mask_logits"].sigmoid().numpy(), steps, CATS, max_queries=4)
    titled = [ax for ax in figure.axes if ax.get_title()]
    named = sum(o != NO_OBJECT for o in steps.outcomes)
    assert len(titled) == (min(4, named) if named else 1)  # one panel per query that named a class
    with pytest.raises(ValueError, match="one map per query"):
        viz.show_queries(image, np.zeros((3, height, width)), steps, CATS)
