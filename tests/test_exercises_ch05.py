"""Chapter 5's checkers accept the reference solutions and name the typical wrong answers."""
import math

import pytest
import torch
import torch.nn.functional as F

from panopticlab.exercises import ExerciseError, ch05
from panopticlab.postprocess import upsnet


def unknown(logits, num_stuff, x_mask):
    thing = logits[num_stuff:].max(dim=0).values
    return thing - x_mask.max(dim=0).values if len(x_mask) else thing


def paste(logits, box, size, edges=(math.floor, math.ceil), mode="bilinear", align_corners=False, outside=0.0,
          sigmoid=False):
    start, stop = edges
    c0, r0, c1, r1 = start(box[0]), start(box[1]), stop(box[2]), stop(box[3])
    options = {"align_corners": align_corners} if mode == "bilinear" else {}
    resized = F.interpolate(logits[None, None], size=(r1 - r0, c1 - c0), mode=mode, **options)[0, 0]
    if sigmoid:
        resized = resized.sigmoid()
    out = torch.full(size, outside)
    y0, x0, y1, x1 = max(r0, 0), max(c0, 0), min(r1, size[0]), min(c1, size[1])
    out[y0:y1, x0:x1] = resized[y0 - r0:y1 - r0, x0 - c0:x1 - c0]
    return out


def test_unknown_checker_accepts_the_solution():
    assert ch05.check_unknown_channel(unknown)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, s, m: x.max(dim=0).values - (m.max(dim=0).values if len(m) else 0), "not over all channels"),
    (lambda x, s, m: x[s:].max(dim=0).values - (m.min(dim=0).values if len(m) else 0), "not the minimum"),
    (lambda x, s, m: (m.max(dim=0).values if len(m) else 0) - x[s:].max(dim=0).values, "other way round"),
    (lambda x, s, m: x[s:].max(dim=0).values - m.sum(dim=0), "not a sum"),
    (lambda x, s, m: x[s:].max(dim=0).values - m.max(dim=0).values, "no instance"),  # fails on N = 0
    (lambda x, s, m: x[s:].max(dim=0).values, "differs"),                          # forgets X_mask
    (lambda x, s, m: x[s:].max(dim=0).values[None], "shape"),
])
def test_unknown_checker_names_the_mistake(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch05.check_unknown_channel(wrong)


def test_paste_checker_accepts_the_solution():
    assert ch05.check_paste_mask(paste)


@pytest.mark.parametrize("options, hint", [
    ({"edges": (round, round)}, "rounding both edges"),
    ({"edges": (int, int)}, "int\\(\\) truncates"),
    ({"mode": "nearest"}, "not nearest"),
    ({"align_corners": True}, "align_corners=False"),
    ({"sigmoid": True}, "no sigmoid"),
    ({"outside": -10.0}, "outside its box"),
])
def test_paste_checker_names_the_mistake(options, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch05.check_paste_mask(lambda logits, box, size: paste(logits, box, size, **options))


def test_paste_checker_wants_the_whole_map_and_a_cut_at_the_edge():
    with pytest.raises(ExerciseError, match="shape"):
        ch05.check_paste_mask(lambda logits, box, size: logits)

    def no_cut(logits, box, size):  # the negative start wraps around instead of being cut off
        out = paste(logits, box, size)
        if box[0] < 0:
            out[:, -1] = 1.0
        return out

    with pytest.raises(ExerciseError, match="past the map's edge"):
        ch05.check_paste_mask(no_cut)


def test_not_implemented_is_explained():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not implemented"):
        ch05.check_unknown_channel(stub)



@pytest.mark.parametrize("checker, answer, name", [
    (ch05.check_unknown_channel, lambda x, s, m: upsnet.unknown_logits(x[s:], m), "postprocess.upsnet.unknown_logits"),
    (ch05.check_unknown_channel, lambda x, s, m: upsnet.panoptic_logits(x, s, m, torch.zeros_like(m))[-1],
     "postprocess.upsnet.panoptic_logits"),
    (ch05.check_paste_mask,
     lambda logits, box, size: upsnet.paste_mask_logits(logits[None], torch.tensor([box]), size)[0],
     "postprocess.upsnet.paste_mask_logits"),
    # box_masks is refused through the box_cells it calls
    (ch05.check_paste_mask, lambda logits, box, size: upsnet.box_masks(torch.tensor([box]), size)[0].float(),
     "postprocess.upsnet.box_cells"),
    (ch05.check_paste_mask, lambda logits, box, size: ch05._paste_variant(logits, box, size), "ch05._paste_variant"),
])
def test_an_answer_that_delegates_to_the_package_fails(checker, answer, name):
    with pytest.raises(ExerciseError, match=rf"write it without {name}"):
        checker(answer)
    assert upsnet.box_cells(torch.tensor([[0.5, 0.5, 2.0, 2.0]])).tolist() == [[0, 0, 2, 2]]  # put back afterwards
