"""Chapter 1's checkers accept the reference solutions and reject each wrong answer with a hint naming it."""
import sys

import numpy as np
import pytest
from scipy import ndimage

from panopticlab import data
from panopticlab.data import SYNTHETIC_CATEGORIES as CATS
from panopticlab.data import PanopticSegmentation, analysis, rgb_to_id
from panopticlab.exercises import ExerciseError, ch01
from panopticlab.exercises.forbidden import forbidden


def own_rgb_to_id(rgb):
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def test_rgb_to_id_checker():
    assert ch01.check_rgb_to_id(own_rgb_to_id)
    with pytest.raises(ExerciseError, match="overflowed"):
        ch01.check_rgb_to_id(lambda rgb: own_rgb_to_id(rgb).astype(np.uint16))

    def numpy2_refuses(rgb):
        raise OverflowError("Python integer 256 out of bounds for uint8")

    with pytest.raises(ExerciseError, match="Cast the image to a wider integer type"):
        ch01.check_rgb_to_id(numpy2_refuses)
    with pytest.raises(ExerciseError, match="reversed"):
        ch01.check_rgb_to_id(lambda rgb: own_rgb_to_id(rgb[..., ::-1]))
    with pytest.raises(ExerciseError, match="shape"):
        ch01.check_rgb_to_id(lambda rgb: own_rgb_to_id(rgb).ravel())
    with pytest.raises(ExerciseError, match="B is multiplied by 256, not by 256\\^2"):
        ch01.check_rgb_to_id(lambda rgb: rgb[..., 0].astype(int) + 256 * rgb[..., 1] + 256 * rgb[..., 2].astype(int))
    with pytest.raises(ExerciseError, match="without their weights"):
        ch01.check_rgb_to_id(lambda rgb: rgb.astype(int).sum(axis=-1))

    def unfinished(rgb):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not implemented yet"):
        ch01.check_rgb_to_id(unfinished)


def test_rgb_to_id_checker_refuses_the_package_function_however_imported():
    for borrowed in (lambda rgb: data.rgb_to_id(rgb), lambda rgb: rgb_to_id(rgb),
                     lambda rgb: data.panoptic.rgb_to_id(rgb)):
        with pytest.raises(ExerciseError, match="without data.rgb_to_id"):
            ch01.check_rgb_to_id(borrowed)
    # restored afterwards, also after a failure
    assert data.rgb_to_id is data.panoptic.rgb_to_id is rgb_to_id
    assert rgb_to_id(np.array([[[1, 2, 3]]], np.uint8))[0, 0] == 1 + 512 + 3 * 65536


def test_forbidden_restores_after_an_error():
    original = PanopticSegmentation.category_map
    held = [rgb_to_id]  # a list is not a module namespace: it keeps the original through the swap
    with pytest.raises(RuntimeError), forbidden("9.9", functions={"x": rgb_to_id},
                                                methods={"y": (PanopticSegmentation, "category_map")}):
        assert data.rgb_to_id is not held[0] and rgb_to_id is not held[0]  # this module's name too
        raise RuntimeError("the student's code crashed")
    assert data.rgb_to_id is held[0] is rgb_to_id and PanopticSegmentation.category_map is original


def test_a_stand_in_copied_during_the_block_does_not_outlive_it():
    import types

    held = [rgb_to_id]
    lazy = types.ModuleType("lazy_package_like")  # a package's lazy name, first looked up inside the block
    sys.modules[lazy.__name__] = lazy
    try:
        with forbidden("9.9", functions={"x": rgb_to_id}):
            lazy.rgb_to_id = data.panoptic.rgb_to_id  # the stand-in, as a lazy __getattr__ would cache it
            assert lazy.rgb_to_id is not held[0]
        assert lazy.rgb_to_id is held[0] and data.panoptic.rgb_to_id is held[0]
    finally:
        del sys.modules[lazy.__name__]


def own_semantic(pan, cats, void=255, skip_crowd=False, value=lambda s: s.category_id):
    out = np.full(pan.id_map.shape, void, np.int64)
    for s in pan.segments:
        if not (skip_crowd and s.iscrowd):
            out[pan.id_map == s.id] = value(s)
    return out


def test_semantic_checker():
    assert ch01.check_semantic_from_panoptic(own_semantic)
    with pytest.raises(ExerciseError, match="without pan.category_map"):
        ch01.check_semantic_from_panoptic(lambda pan, cats: pan.category_map(void=255))
    assert PanopticSegmentation.category_map.__name__ == "category_map"
    with pytest.raises(ExerciseError, match="give them 255"):
        ch01.check_semantic_from_panoptic(lambda pan, cats: own_semantic(pan, cats, void=0))
    with pytest.raises(ExerciseError, match="crowd segment: a crowd still has a category"):
        ch01.check_semantic_from_panoptic(lambda pan, cats: own_semantic(pan, cats, skip_crowd=True))
    with pytest.raises(ExerciseError, match="train id"):
        ch01.check_semantic_from_panoptic(lambda pan, cats: own_semantic(pan, cats, value=lambda s: cats.train_id(s.category_id)))
    with pytest.raises(ExerciseError, match="That is the segment id"):
        ch01.check_semantic_from_panoptic(lambda pan, cats: own_semantic(pan, cats, value=lambda s: s.id))


def counting(keep, key=lambda cats, s: cats.name(s.category_id)):
    def count(pan, cats):
        counts = {}
        for s in pan.segments:
            if keep(cats, s):
                counts[key(cats, s)] = counts.get(key(cats, s), 0) + 1
        return counts
    return count


def test_count_checker():
    assert ch01.check_count_instances(ch01.count_instances)
    assert ch01.check_count_instances(counting(lambda cats, s: cats.isthing(s.category_id) and not s.iscrowd))
    with pytest.raises(ExerciseError, match="crowd segment .* leave it out"):
        ch01.check_count_instances(counting(lambda cats, s: cats.isthing(s.category_id)))
    with pytest.raises(ExerciseError, match="Stuff is not countable"):
        ch01.check_count_instances(counting(lambda cats, s: not s.iscrowd))
    with pytest.raises(ExerciseError, match="names .*not ids"):
        ch01.check_count_instances(counting(lambda cats, s: cats.isthing(s.category_id) and not s.iscrowd,
                                            key=lambda cats, s: s.category_id))


def fused(pan, category_id, structure=None, drop_crowd_pixels=False, keep_crowd_ids=False, min_size=2,
          mask_of=None):
    """The reference solution of 1.4, with switches for each misreading."""
    semantic = own_semantic(pan, CATS)
    crowd = {s.id for s in pan.segments if s.iscrowd}
    mask = semantic == category_id if mask_of is None else mask_of(semantic)
    if drop_crowd_pixels:
        mask &= ~np.isin(pan.id_map, list(crowd))
    regions, n = ndimage.label(mask, structure=structure)
    groups = []
    for label in range(1, n + 1):
        ids = set(np.unique(pan.id_map[regions == label]).tolist())
        if not keep_crowd_ids:
            ids -= crowd
        if len(ids) >= min_size:
            groups.append(ids)
    return groups


def test_fusion_case_is_what_its_docstring_says():
    case = ch01.fusion_case()
    assert ch01.fused_groups(case)[1] == {frozenset({1, 2})} and ch01.fused_groups(case)[2] == {frozenset({5, 6})}
    assert case.segment(7).iscrowd and case.segment(7).category_id == 2


def test_fused_instances_checker():
    fraction = ch01.check_fused_instances(fused)
    assert 0 < fraction < 1
    wrong = {
        "4-connectivity": {"structure": np.ones((3, 3))},
        "joins them into one region": {"drop_crowd_pixels": True},
        "crowd segment is not an instance": {"keep_crowd_ids": True},
        "single instance loses nothing": {"min_size": 1},
        "Only instances of the asked category": {"mask_of": lambda sem: np.isin(sem, CATS.thing_ids)},
    }
    for hint, switches in wrong.items():
        with pytest.raises(ExerciseError, match=hint):
            ch01.check_fused_instances(lambda pan, c, s=switches: fused(pan, c, **s))
    # the package's own one call does not answer it: it counts regions, it does not name the instances
    with pytest.raises(ExerciseError, match="return a list of groups"):
        ch01.check_fused_instances(lambda pan, c: ndimage.label(own_semantic(pan, CATS) == c)[1])


def test_lost_count_agrees_with_semantic_region_counts():
    """The checker's lost fraction counts the same instances as exercise 1.3 and data.analysis."""
    lost, total = 0, 0
    for sample in ch01._scenes(num=12):
        counts = analysis.semantic_region_counts(sample.panoptic, CATS)
        lost += sum(c.lost for c in counts)
        total += sum(c.instances for c in counts)
        assert sum(c.instances for c in counts) == sum(ch01.count_instances(sample.panoptic).values())
    assert ch01.check_fused_instances(fused) == pytest.approx(lost / total)


def test_a_crowd_alone_recovers_no_instance():
    id_map = np.full((6, 6), 3, np.int32)
    id_map[1:3, 1:3] = 1      # a disc
    id_map[4:6, 4:6] = 2      # a disc crowd, apart from it
    pan = PanopticSegmentation.from_id_map(id_map, {1: 1, 2: 1, 3: 11}, iscrowd={2: 1})
    disc = next(c for c in analysis.semantic_region_counts(pan, CATS) if c.category_id == 1)
    assert (disc.instances, disc.regions, disc.lost) == (1, 1, 0)
