"""Chapter 4's checkers accept the reference solutions and name the typical wrong answers."""
import math

import pytest
import torch.nn.functional as F

from panopticlab.exercises import ExerciseError, ch04


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
