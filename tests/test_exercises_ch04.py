"""Chapter 4's checkers accept the reference solutions and name the typical wrong answers."""
import math

import pytest
import torch
import torch.nn.functional as F

from panopticlab.exercises import ExerciseError, ch04

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def layout(stride):
    stages = int(math.log2(stride / 4))
    return max(1, stages), stages


def level(x, weights, num_groups, upsample, mode="bilinear", align_corners=False, norm=True, relu=True,
          upsample_first=False):
    for conv, gn_weight, gn_bias in weights:
        if upsample and upsample_first:
            x = F.interpolate(x, scale_factor=2, mode=mode, align_corners=align_corners if mode == "bilinear" else None)
        x = F.conv2d(x, conv, padding=1)
        if norm:
            x = F.group_norm(x, num_groups, gn_weight, gn_bias)
        if relu:
            x = F.relu(x)
        if upsample and not upsample_first:
            x = F.interpolate(x, scale_factor=2, mode=mode, align_corners=align_corners if mode == "bilinear" else None)
    return x


def test_layout_checker_accepts_the_solution():
    assert ch04.check_branch_layout(layout)


@pytest.mark.parametrize("wrong, hint", [
    (lambda s: (int(math.log2(s)), int(math.log2(s))), "stride 4, not at stride 1"),  # counting down to stride 1
    (lambda s: (int(math.log2(s / 4)), int(math.log2(s / 4))), "still gets one 3x3 conv"),  # P2 without its conv
    (lambda s: (int(math.log2(s / 4)) + 1,) * 2, "would sit at stride 2"),  # one stage too many
    (lambda s: (max(1, int(math.log2(s / 4))), max(1, int(math.log2(s / 4)))), "would sit at stride 2"),  # P2 upsampled
    (lambda s: (1, int(math.log2(s / 4))), "as many convs as upsamplings"),  # one conv per level
    (lambda s: 3, "pair"),
])
def test_layout_checker_names_the_mistake(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_branch_layout(wrong)


def test_level_checker_accepts_the_solution():
    assert ch04.check_semantic_level(level)


@pytest.mark.parametrize("changes, hint", [
    (dict(mode="nearest"), "not nearest"),
    (dict(align_corners=True), "align_corners=False"),
    (dict(upsample_first=True), "convolves first"),
    (dict(norm=False), "GroupNorm"),
    (dict(relu=False), "ReLU"),
])
def test_level_checker_names_the_mistake(changes, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_semantic_level(lambda *args: level(*args, **changes))


def test_level_checker_explains_shapes_and_unfinished_work():
    with pytest.raises(ExerciseError, match="expected shape"):
        ch04.check_semantic_level(lambda x, w, g, up: level(x, w, g, False))
    with pytest.raises(ExerciseError, match="not implemented"):
        ch04.check_semantic_level(lambda *args: (_ for _ in ()).throw(NotImplementedError))


def _delegating_layout(stride):
    from panopticlab.models.semantic_fpn import upsampling_stages

    return max(1, upsampling_stages(stride)), upsampling_stages(stride)


def _counting_layout(stride):
    from panopticlab.models.semantic_fpn import SemanticFPNHead

    head = SemanticFPNHead(8, 2, {"p": stride}, channels=8, norm_groups=4)
    ups = sum(type(m).__name__ == "Upsample" for m in head.modules())
    return sum(type(m).__name__ == "Conv2d" for m in head.scale_heads.modules()), ups


def _head_level(x, weights, num_groups, upsample):
    from panopticlab.models import semantic_fpn

    stride = 4 * 2 ** len(weights) if upsample else 4
    head = semantic_fpn.SemanticFPNHead(x.shape[1], 2, {"p": stride}, channels=weights[0][0].shape[0],
                                        norm_groups=num_groups)
    return head.scale_heads["p"](x)


@pytest.mark.parametrize("checker, answer, name", [
    (ch04.check_branch_layout, _delegating_layout, "models.semantic_fpn.upsampling_stages"),
    (ch04.check_branch_layout, _counting_layout, "models.semantic_fpn.SemanticFPNHead"),
    (ch04.check_semantic_level, _head_level, "models.semantic_fpn.SemanticFPNHead"),
    (ch04.check_semantic_level, lambda *args: ch04._level_variant(*args), "ch04._level_variant"),
])
def test_an_answer_that_delegates_to_the_package_fails(checker, answer, name):
    with pytest.raises(ExerciseError, match=rf"write it without {name}"):
        checker(answer)
    from panopticlab.models.semantic_fpn import SemanticFPNHead, upsampling_stages

    assert upsampling_stages(32) == 3 and SemanticFPNHead.__name__ == "SemanticFPNHead"  # put back afterwards


# --- 4.3: the semantic loss's share of the gradient on the backbone ------------------------------
def gradient_share(model, images, targets, weight, seed, params="backbone", apply="set", detector_part="detector",
                   norm="global", share="semantic", seeded=True):
    """The reference solution, and its typical mistakes."""
    model.train()
    if apply == "set":
        model.config.semantic_loss_weight = weight
    if seeded:
        torch.manual_seed(seed)
    losses = model(images, targets)
    semantic_loss = losses["loss_semantic"] * (weight if apply == "twice" else 1)
    detector = sum(value for name, value in losses.items() if name != "loss_semantic")
    if detector_part == "total":
        detector = detector + semantic_loss
    module = {"backbone": model.backbone, "body": model.backbone.body, "all": model}[params]
    parameters = [p for p in module.parameters() if p.requires_grad]
    semantic_grads = torch.autograd.grad(semantic_loss, parameters, retain_graph=True, allow_unused=True)
    detector_grads = torch.autograd.grad(detector, parameters, allow_unused=True)

    def size(grads):
        grads = [g for g in grads if g is not None]
        if norm == "squared":
            return sum((g ** 2).sum() for g in grads)
        if norm == "per_tensor":
            return sum(g.norm() for g in grads)
        return torch.sqrt(sum((g ** 2).sum() for g in grads))

    s, d = size(semantic_grads), size(detector_grads)
    if share == "detector":
        return float(d / (s + d))
    if share == "ratio":
        return float(s / d)
    return float(s / (s + d))


def test_gradient_share_accepts_the_solution_and_reports_the_prediction(capsys):
    assert ch04.check_gradient_share(gradient_share, "rises")
    assert "You predicted 'rises': as measured." in capsys.readouterr().out
    assert ch04.check_gradient_share(gradient_share, " Falls ")  # a wrong prediction is reported, not failed
    out = capsys.readouterr().out
    assert "correct" in out and "You predicted 'falls'; measured 'rises' - see the answer key." in out


def test_gradient_share_with_backward_and_grad_attributes():
    def with_backward(model, images, targets, weight, seed):
        model.train()
        model.config.semantic_loss_weight = weight
        torch.manual_seed(seed)
        losses = model(images, targets)
        params = [p for p in model.backbone.parameters() if p.requires_grad]
        model.zero_grad()
        losses["loss_semantic"].backward(retain_graph=True)
        semantic = torch.cat([p.grad.flatten() for p in params]).norm()
        model.zero_grad()
        sum(v for k, v in losses.items() if k != "loss_semantic").backward()
        detector = torch.cat([p.grad.flatten() for p in params]).norm()
        return semantic / (semantic + detector)

    assert ch04.check_gradient_share(with_backward, "rises")


@pytest.mark.parametrize("mistake, hint", [
    (dict(params="all"), "not on all the model's parameters"),
    (dict(params="body"), "not model.backbone.body alone"),
    (dict(apply="none"), "use the `weight` argument"),
    (dict(apply="twice"), "instead of multiplying it by `weight` once more"),
    (dict(detector_part="total"), "not of the total loss"),
    (dict(norm="squared"), "not the squared norm"),
    (dict(norm="per_tensor"), "not the sum of the per-tensor norms"),
    (dict(share="detector"), "not the detector's share"),
    (dict(share="ratio"), "not the ratio"),
    (dict(seeded=False), r"call torch.manual_seed\(seed\) right before the forward pass"),
])
def test_gradient_share_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch04.check_gradient_share(lambda *args: gradient_share(*args, **mistake), "rises")


def test_gradient_share_case_separates_the_mistakes():
    """At each weight every named reading gives its own share, far from the right one."""
    model, images, targets = ch04.share_case()
    norms = ch04._gradient_norms(model, images, targets, ch04.SHARE_SEED)
    own = model.config.semantic_loss_weight
    for weight in ch04.SHARE_WEIGHTS:
        right = ch04.semantic_share(norms, weight)
        wrong = {m: v(norms, weight, own) for m, v in ch04.SHARE_MISTAKES.items()}
        distinct = [w for m, w in wrong.items() if not (weight == own and "`weight` argument" in m)]
        assert all(abs(w - right) > 1e-3 * right for w in distinct), weight
        assert len({round(w, 6) for w in distinct}) == len(distinct), weight
    # the share rises with the weight by construction: w a / (w a + b)
    shares = [ch04.semantic_share(norms, w) for w in ch04.SHARE_WEIGHTS]
    assert shares == sorted(shares) and shares[0] < shares[-1]


def test_gradient_share_wants_a_prediction_and_a_number():
    with pytest.raises(ExerciseError, match="not implemented"):
        ch04.check_gradient_share(gradient_share, ...)
    with pytest.raises(ExerciseError, match="'rises', 'falls', 'stays'"):
        ch04.check_gradient_share(gradient_share, "goes up")
    with pytest.raises(ExerciseError, match="one number"):
        ch04.check_gradient_share(lambda *args: [gradient_share(*args)] * 2, "rises")
    with pytest.raises(ExerciseError, match="not implemented"):
        ch04.check_gradient_share(lambda *args: (_ for _ in ()).throw(NotImplementedError), "rises")


def test_gradient_share_refuses_the_checkers_reference():
    def borrowed(model, images, targets, weight, seed):
        return ch04.semantic_share(ch04._gradient_norms(model, images, targets, seed), weight)

    with pytest.raises(ExerciseError, match="without ch04._gradient_norms"):
        ch04.check_gradient_share(borrowed, "rises")
    assert ch04._gradient_norms.__name__ == "_gradient_norms"  # put back afterwards
