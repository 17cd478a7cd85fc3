"""Category metadata shared by the data, metrics, models and viz modules.

A :class:`Category` is the COCO panoptic category record (``id``, ``name``,
``isthing``, ``color``). A :class:`CategorySet` is an ordered collection of them
with the lookups every module needs: by id, things vs stuff, and the mapping
between (possibly sparse) dataset ids and the contiguous ``0..C-1`` "train ids"
that a network's output channels use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

from .errors import PanopticFormatError
from .fields import coco_flag, coco_integer

#: The label of "no category" in every per-pixel class map of the package (semantic maps,
#: semantic targets, train-id lookups): the ignore label of the losses and the void of
#: the merges. 255 is the convention of COCO's and Cityscapes' tooling.
VOID_LABEL = 255
#: The largest category id a COCO file may use: lookup tables are indexed by category id
#: (:meth:`CategorySet.id_to_train_id_lut`), and this keeps them below 512 KiB. COCO's ids
#: end at 200, LVIS's at 1203.
MAX_CATEGORY_ID = 2**16 - 1


@dataclass(frozen=True)
class Category:
    """One category of a panoptic dataset.

    Attributes:
        id: dataset category id (COCO ids are sparse: things 1..90, stuff 92..200).
        name: human readable name.
        isthing: True for countable objects (things), False for amorphous regions (stuff).
        color: RGB colour used by visualisations and by COCO's id generator.
    """

    id: int
    name: str
    isthing: bool
    color: tuple[int, int, int] = (128, 128, 128)

    def to_coco(self) -> dict:
        return {"id": self.id, "name": self.name, "supercategory": "thing" if self.isthing else "stuff",
                "isthing": int(self.isthing), "color": list(self.color)}

    @classmethod
    def from_coco(cls, record: Mapping, where: str = "category record") -> "Category":
        """From a COCO ``categories`` record; ``where`` names it in errors (``"categories[3]"``).

        Raises:
            PanopticFormatError: ``"{where} (id 3): ..."`` for a record that is not an object
                or lacks ``id``, ``name`` or ``isthing``; an ``id`` that is not an integer
                from 0 to :data:`MAX_CATEGORY_ID` (:func:`~panopticlab.data.fields.coco_integer`:
                9.7, ``"1"``, ``true`` and ``null`` are refused, not rounded or read as 1); an
                ``isthing`` other than 0, 1, ``true`` or ``false``; a ``name`` that is not a
                string; a ``color`` that is not three integers from 0 to 255.
        """
        if not isinstance(record, Mapping):
            raise PanopticFormatError(f"{where} is not a JSON object: {record!r}")
        for key in ("id", "name", "isthing"):
            if key not in record:
                raise PanopticFormatError(f"{where} {dict(record)!r} lacks the field {key!r}")
        category_id = coco_integer(record["id"], f"{where}: category id", 0, MAX_CATEGORY_ID)
        where = f"{where} (id {category_id})"
        isthing = coco_flag(record["isthing"], f"{where}: isthing")
        if not isinstance(record["name"], str):
            raise PanopticFormatError(f"{where}: name must be a string, got {record['name']!r}")
        color = record.get("color", (128, 128, 128))
        try:
            channels = tuple(coco_integer(c, "color", 0, 255) for c in color) if isinstance(color, (list, tuple)) \
                else ()
        except PanopticFormatError:
            channels = ()
        if len(channels) != 3:
            raise PanopticFormatError(f"{where}: color must be three integers from 0 to 255, got {color!r}")
        return cls(id=category_id, name=record["name"], isthing=isthing, color=channels)


@dataclass(frozen=True)
class CategorySet:
    """An ordered set of categories; the order defines the contiguous train ids.

    ``train_id`` of the i-th category is ``i``. Lookups raise
    :class:`PanopticFormatError` naming the unknown id.
    """

    categories: tuple[Category, ...]
    _by_id: dict = field(init=False, repr=False, compare=False)

    def __init__(self, categories: Iterable[Category]):
        cats = tuple(categories)
        by_id = {}
        for c in cats:
            if c.id in by_id:
                raise PanopticFormatError(f"category id {c.id} appears twice ({by_id[c.id].name!r} and {c.name!r})")
            by_id[c.id] = c
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "_by_id", by_id)

    # --- collection protocol ---------------------------------------------------------
    def __iter__(self) -> Iterator[Category]:
        return iter(self.categories)

    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._by_id

    def __getitem__(self, category_id: int) -> Category:
        try:
            return self._by_id[int(category_id)]
        except KeyError:
            raise PanopticFormatError(f"unknown category id {category_id}; known ids: {sorted(self._by_id)}") from None

    # --- views -----------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.categories]

    @property
    def thing_ids(self) -> list[int]:
        return [c.id for c in self.categories if c.isthing]

    @property
    def stuff_ids(self) -> list[int]:
        return [c.id for c in self.categories if not c.isthing]

    def isthing(self, category_id: int) -> bool:
        return self[category_id].isthing

    def name(self, category_id: int) -> str:
        return self[category_id].name

    def train_id(self, category_id: int) -> int:
        """Contiguous index ``0..len-1`` of a dataset category id."""
        self[category_id]  # raises a clear error for unknown ids
        return self.ids.index(int(category_id))

    def id_to_train_id_lut(self, fill: int = VOID_LABEL, min_size: int = 0):
        """A lookup table ``lut[category_id] -> train_id`` (``fill`` elsewhere), as a numpy array
        of at least ``min_size`` entries (e.g. ``VOID_LABEL + 1``, so that void maps to ``fill``)."""
        import numpy as np

        lut = np.full(max(max(self.ids) + 1, min_size), fill, dtype=np.int64)
        lut[self.ids] = np.arange(len(self))
        return lut

    # --- COCO ------------------------------------------------------------------------
    def to_coco(self) -> list[dict]:
        return [c.to_coco() for c in self.categories]

    @classmethod
    def from_coco(cls, records: Sequence[dict]) -> "CategorySet":
        """From a COCO ``categories`` list; errors name the record by its position (``categories[3]``)."""
        return cls(Category.from_coco(r, f"categories[{k}]") for k, r in enumerate(records))
