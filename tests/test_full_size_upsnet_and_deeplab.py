"""The full-size path end to end for upsnet, panoptic-deeplab: see tests/full_size.py (the
COCO files come from the ``coco_root`` fixture of tests/conftest.py)."""
import pytest
from full_size import check_full_model_on_coco_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family", ["upsnet", "panoptic-deeplab"])
def test_train_and_evaluate_a_full_model_on_coco_files(family, coco_root, tmp_path):
    check_full_model_on_coco_files(family, coco_root, tmp_path)
