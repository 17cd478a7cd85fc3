"""Chapter 5's checkers accept the reference solutions and name the typical wrong answers."""
import math

import pytest
import torch
import torch.nn.functional as F

from panopticlab.exercises import ExerciseError, ch05
from panopticlab.models import upsnet as upsnet_model
from panopticlab.models import upsnet_head


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
    (ch05.check_unknown_channel, lambda x, s, m: upsnet_head.unknown_logits(x[s:], m),
     "models.upsnet_head.unknown_logits"),
    (ch05.check_unknown_channel, lambda x, s, m: upsnet_head.panoptic_logits(x, s, m, torch.zeros_like(m))[-1],
     "models.upsnet_head.panoptic_logits"),
    (ch05.check_paste_mask,
     lambda logits, box, size: upsnet_head.paste_mask_logits(logits[None], torch.tensor([box]), size)[0],
     "models.upsnet_head.paste_mask_logits"),
    # box_masks is refused through the box_cells it calls
    (ch05.check_paste_mask, lambda logits, box, size: upsnet_head.box_masks(torch.tensor([box]), size)[0].float(),
     "models.upsnet_head.box_cells"),
    (ch05.check_paste_mask, lambda logits, box, size: ch05._paste_variant(logits, box, size), "ch05._paste_variant"),
])
def test_an_answer_that_delegates_to_the_package_fails(checker, answer, name):
    with pytest.raises(ExerciseError, match=rf"write it without {name}"):
        checker(answer)
    assert upsnet_head.box_cells(torch.tensor([[0.5, 0.5, 2.0, 2.0]])).tolist() == [[0, 0, 2, 2]]  # put back afterwards


# --- 5.4: the unknown targets at keep fractions 0.7 and 1 ----------------------------------------
def unknown_share(semantic, instances, num_stuff, fraction, generator, void=False, void_denominator=False,
                  stuff_denominator=False, dropped_own=False, no_minimum=False, crowd=False, crowd_excluded=False,
                  fraction_dropped=False, own_generator=False):
    """The reference solution, and its typical mistakes."""
    count = len(instances)
    if no_minimum:
        kept = torch.randperm(count, generator=generator)[:int(count * fraction)]
    else:
        kept = upsnet_model.keep_instances(count, 1 - fraction if fraction_dropped and fraction < 1 else fraction,
                                     None if own_generator else generator)
    thing = semantic >= num_stuff if void else (semantic >= num_stuff) & (semantic != 255)
    annotated = instances.any(dim=0)
    covered = instances[kept].any(dim=0) if len(kept) else torch.zeros_like(thing)
    unknown = thing & ~(annotated if dropped_own else covered)
    if crowd or crowd_excluded:
        unknown &= annotated
    counted = semantic != 255 if stuff_denominator else semantic >= num_stuff if void_denominator else thing
    if crowd_excluded:
        counted = counted & annotated
    return float(unknown.sum() / counted.sum())


def test_unknown_share_accepts_the_solution_and_reports_the_prediction(capsys):
    assert ch05.check_unknown_share(unknown_share, "drops to zero")
    out = capsys.readouterr().out
    assert "You predicted 'drops to zero': as measured." in out and "image 4: " in out and "-> 0.000" in out
    for prediction in ("rises", "Falls", "stays"):  # a wrong prediction is reported, not failed
        assert ch05.check_unknown_share(unknown_share, prediction)
        assert f"You predicted '{prediction.lower()}'; measured 'drops to zero'" in capsys.readouterr().out


def test_unknown_share_accepts_the_targets_built_channel_by_channel():
    def with_targets(semantic, instances, num_stuff, fraction, generator):
        kept = upsnet_model.keep_instances(len(instances), fraction, generator)
        target = torch.where(semantic < num_stuff, semantic, torch.full_like(semantic, num_stuff + len(kept)))
        target[semantic == 255] = 255
        for channel, k in enumerate(kept.tolist()):
            target[instances[k]] = num_stuff + channel
        thing = (semantic >= num_stuff) & (semantic != 255)
        return (target[thing] == num_stuff + len(kept)).float().mean()

    assert ch05.check_unknown_share(with_targets, "drops to zero")


@pytest.mark.parametrize("mistake, hint", [
    (dict(void=True), "void pixels"),
    (dict(void_denominator=True), "void pixels do not count in the denominator"),
    (dict(stuff_denominator=True), "stuff pixels do not count in the denominator"),
    (dict(dropped_own=True), "not of a channel of their own"),
    (dict(no_minimum=True), r"keeps at least one instance \(max\(int\(count \* fraction\), 1\)\)"),
    (dict(crowd=True), "crowd regions .* are unknown targets too"),
    (dict(crowd_excluded=True), "crowd regions count among the thing pixels"),
    (dict(fraction_dropped=True), "kept, not dropped"),
    (dict(own_generator=True), "passing the `generator` argument"),
])
def test_unknown_share_names_the_mistake(mistake, hint):
    with pytest.raises(ExerciseError, match=hint):
        ch05.check_unknown_share(lambda *args: unknown_share(*args, **mistake), "drops to zero")


def test_unknown_share_cases_separate_the_mistakes():
    """Each named reading fails on a drawn case before any other case rejects it, with its own share."""
    right = ch05.unknown_share(*ch05.target_case(33), 0.7, torch.Generator().manual_seed(0))
    first = {m: ch05._unknown_share_variant(*ch05.target_case(33), 0.7, torch.Generator().manual_seed(0), **v)
             for m, v in ch05.UNKNOWN_SHARE_MISTAKES.items()}
    caught_later = {m for m, v in ch05.UNKNOWN_SHARE_MISTAKES.items() if v == dict(no_minimum=True)}
    assert all(abs(w - right) > 1e-3 for m, w in first.items() if m not in caught_later)
    assert len({round(w, 6) for m, w in first.items() if m not in caught_later}) == len(first) - len(caught_later)
    semantic, instances, num_stuff = ch05.target_case(35)
    assert len(instances) == 2  # 2 x 0.3 < 1: keep_instances still keeps one
    at_least_one = ch05.unknown_share(semantic, instances, num_stuff, 0.3, torch.Generator().manual_seed(1))
    assert at_least_one < 1.0 == ch05._unknown_share_variant(semantic, instances, num_stuff, 0.3,
                                                             torch.Generator().manual_seed(1), no_minimum=True)
    # at keep fraction 1 only the crowd is unknown: 0 on image 4, which has none
    assert ch05.unknown_share(*ch05.target_case(4), 1.0, None) == 0.0
    semantic, instances, num_stuff = ch05.target_case(33)
    crowd = ((semantic >= num_stuff) & (semantic != 255) & ~instances.any(dim=0)).sum()
    assert crowd > 0 and ch05.unknown_share(semantic, instances, num_stuff, 1.0, None) == pytest.approx(
        float(crowd / ((semantic >= num_stuff) & (semantic != 255)).sum()))


def test_unknown_share_wants_a_prediction_and_a_number():
    with pytest.raises(ExerciseError, match="not implemented"):
        ch05.check_unknown_share(unknown_share, ...)
    with pytest.raises(ExerciseError, match="'rises', 'falls', 'stays', 'drops to zero'"):
        ch05.check_unknown_share(unknown_share, 0)
    with pytest.raises(ExerciseError, match="one number"):
        ch05.check_unknown_share(lambda *args: (unknown_share(*args), 0), "falls")


def test_unknown_share_refuses_the_package_targets():
    def with_package(semantic, instances, num_stuff, fraction, generator):
        kept = upsnet_model.keep_instances(len(instances), fraction, generator)
        target = upsnet_model.panoptic_targets(semantic, instances[kept], num_stuff)
        return float((target == num_stuff + len(kept)).sum() / ((semantic >= num_stuff) & (semantic != 255)).sum())

    with pytest.raises(ExerciseError, match="without models.upsnet.panoptic_targets"):
        ch05.check_unknown_share(with_package, "falls")
    with pytest.raises(ExerciseError, match="without ch05.unknown_share"):
        ch05.check_unknown_share(lambda *args: ch05.unknown_share(*args), "falls")
    assert upsnet_model.panoptic_targets(torch.zeros(2, 2, dtype=torch.long), torch.zeros(0, 2, 2, dtype=torch.bool),
                                   1).sum() == 0  # put back afterwards
