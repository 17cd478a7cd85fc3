"""Category sets the model tests share: COCO's layout, as torchvision's detector numbers it."""
from panopticlab.data.categories import Category, CategorySet

# torchvision's COCO detector numbers its labels by COCO category id (1..90, 80 of them used)
COCO_THING_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]


def coco_like_categories() -> CategorySet:
    """COCO panoptic's shape: its 80 thing ids, then 53 stuff classes."""
    return CategorySet([Category(i, f"thing{i}", True) for i in COCO_THING_IDS]
                       + [Category(92 + i, f"stuff{i}", False) for i in range(53)])
