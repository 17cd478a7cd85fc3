"""Shared by the Cityscapes tests: a tiny Cityscapes tree (instanceIds and leftImg8bit PNGs of random
streets) converted by cityscapesScripts' ``createPanopticImgs`` in both label-id and train-id modes."""
import numpy as np

# The reference implementation (test dependency): cityscapesScripts from PyPI.
from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic
from PIL import Image

HEIGHT, WIDTH = 64, 128
# {split: {city: [frame, ...]}}: four training images and two validation images
FRAMES = {"train": {"aachen": ["000000_000019", "000001_000019"], "bochum": ["000000_000313", "000000_001097"]},
          "val": {"frankfurt": ["000000_000294"], "lindau": ["000000_000019"]}}
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY = 7, 8, 11, 21, 23
PERSON, RIDER, CAR, TRAIN, BICYCLE = 24, 25, 26, 31, 33
UNLABELED, EGO_VEHICLE, PARKING, CARAVAN = 0, 1, 9, 29  # not evaluated: void


def instance_ids_scene(rng) -> np.ndarray:
    """A (64, 128) uint16 street in the instanceIds encoding, objects placed at random.

    Stuff and crowd regions hold their label id; objects hold label_id * 1000 + k, k from 0.
    Also holds classes that are not evaluated (unlabeled, ego vehicle, parking, caravan).
    """
    ids = np.full((HEIGHT, WIDTH), SKY, np.uint16)
    ids[HEIGHT // 2:] = ROAD
    ids[HEIGHT // 2:, :12] = SIDEWALK
    ids[8:HEIGHT // 2, :24] = BUILDING
    ids[10:HEIGHT // 2, 100:] = VEGETATION
    ids[HEIGHT - 4:] = EGO_VEHICLE
    ids[0, :] = UNLABELED
    ids[HEIGHT // 2: HEIGHT // 2 + 6, 40:60] = PARKING

    def box(value, height, width):
        y, x = rng.integers(HEIGHT // 3, HEIGHT - height - 4), rng.integers(0, WIDTH - width)
        ids[y:y + height, x:x + width] = value

    for k in range(3):
        box(CAR * 1000 + k, 8, 14)
    box(CAR, 6, 20)                       # a group of cars: crowd
    for k in range(2):
        box(PERSON * 1000 + k, 12, 4)
    box(PERSON, 10, 10)                   # a group of people: crowd
    box(RIDER * 1000, 10, 4)
    box(BICYCLE * 1000 + 1, 6, 8)
    box(TRAIN * 1000, 10, 30)
    box(CARAVAN * 1000, 8, 16)
    box(CARAVAN, 5, 5)
    return ids


def write_cityscapes_tree(root, frames=FRAMES, seed=0):
    """Write ``root/gtFine/<split>/<city>/*_gtFine_instanceIds.png`` and ``root/leftImg8bit/...`` for
    ``frames`` ({split: {city: [frame, ...]}}), then convert every split with cityscapesScripts, with
    label ids and with train ids. Returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, cities in frames.items():
        for city, names in cities.items():
            for frame in names:
                stem = f"{city}_{frame}"
                gt = root / "gtFine" / split / city
                images = root / "leftImg8bit" / split / city
                gt.mkdir(parents=True, exist_ok=True)
                images.mkdir(parents=True, exist_ok=True)
                Image.fromarray(instance_ids_scene(rng)).save(gt / f"{stem}_gtFine_instanceIds.png")
                image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                Image.fromarray(image).save(images / f"{stem}_leftImg8bit.png")
    for use_train_id in (False, True):
        convert2panoptic(str(root / "gtFine"), str(root / "gtFine"), use_train_id, list(frames))
    return root
