"""Chapter 1's checkers accept the reference solutions and explain wrong answers."""
import numpy as np
import pytest
from scipy import ndimage

from panopticlab.data import rgb_to_id
from panopticlab.exercises import ExerciseError, ch01


def test_rgb_to_id_checker():
    assert ch01.check_rgb_to_id(rgb_to_id)
    with pytest.raises(ExerciseError, match="overflowed"):
        ch01.check_rgb_to_id(lambda rgb: rgb_to_id(rgb).astype(np.uint16))

    def numpy2_refuses(rgb):
        raise OverflowError("Python integer 256 out of bounds for uint8")

    with pytest.raises(ExerciseError, match="Cast the image to a wider integer type"):
        ch01.check_rgb_to_id(numpy2_refuses)
    with pytest.raises(ExerciseError, match="reversed"):
        ch01.check_rgb_to_id(lambda rgb: rgb_to_id(rgb[..., ::-1]))
    with pytest.raises(ExerciseError, match="shape"):
        ch01.check_rgb_to_id(lambda rgb: rgb_to_id(rgb).ravel())

    def unfinished(rgb):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not implemented yet"):
        ch01.check_rgb_to_id(unfinished)


def test_semantic_checker():
    assert ch01.check_semantic_from_panoptic(lambda pan, cats: pan.category_map(void=255))
    with pytest.raises(ExerciseError, match="give them 255"):
        ch01.check_semantic_from_panoptic(lambda pan, cats: pan.category_map(void=0))
    with pytest.raises(ExerciseError, match="expected category"):
        ch01.check_semantic_from_panoptic(
            lambda pan, cats: np.where(pan.id_map > 0, np.vectorize(lambda c: cats.train_id(c) if c != 255 else 255)(
                pan.category_map()), 255))


def test_count_checker():
    assert ch01.check_count_instances(ch01.count_instances)

    def with_crowd(pan, cats):
        counts = {}
        for s in pan.segments:
            if cats.isthing(s.category_id):
                counts[cats.name(s.category_id)] = counts.get(cats.name(s.category_id), 0) + 1
        return counts

    with pytest.raises(ExerciseError, match="Exercise 1.3"):
        ch01.check_count_instances(with_crowd)


def test_blob_checker():
    fraction = ch01.check_semantic_blobs(lambda sem, c: ndimage.label(sem == c)[1])
    assert 0 < fraction < 1
    with pytest.raises(ExerciseError, match="connected regions"):
        ch01.check_semantic_blobs(lambda sem, c: ndimage.label(sem == c, structure=np.ones((3, 3)))[1] + 1)
