"""A trained model from what ``panopticlab train`` leaves: the run folder, its recipe and categories.

``evaluate``, ``predict`` and ``train`` (to resume and to score its run) read run folders the
same way: the categories the model was built for (``categories.json``), the recipe it was
trained with (``recipe.json``: data set, input size, frozen bodies), its checkpoint. A
``--data KIND ROOT`` opens here too. Errors are CommandErrors naming the file; torch and
the models are imported inside the functions, so that ``--help`` stays fast.
"""
from __future__ import annotations

from pathlib import Path

from .common import CommandError

CATEGORIES_FILE = "categories.json"  # in a run folder: the categories the model was built for


def _checkpoint_file(path: Path) -> Path:
    """A checkpoint file itself, or the ``last.pt`` of a run folder."""
    from ..engine.checkpoint import CHECKPOINT_NAME, find_checkpoint

    if path.is_dir():
        found = find_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no {CHECKPOINT_NAME} in this run folder")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file or run folder")
    return path


def data_inputs(kind: str, root: str) -> list[Path]:
    """The files and folders of a ``--data KIND ROOT`` that a run reads (both splits'
    annotations and images), and for Cityscapes the label-id ground truth that its
    predictions are scored against: no output may replace them."""
    from ..data.cityscapes import cityscapes_panoptic_paths
    from ..data.datasets import DATA_KINDS, split_paths

    if kind not in DATA_KINDS:
        return []  # open_data names the unknown kind
    paths = [path for split in ("train", "val") for path in split_paths(kind, root, split).values()]
    if kind == "cityscapes":
        paths += [path for split in ("train", "val") for path in cityscapes_panoptic_paths(root, split).values()]
    return paths


def open_data(kind: str, root: str, split: str):
    """``(images, categories)`` of a split of ``--data KIND ROOT``, errors as command errors."""
    from ..data.datasets import open_split
    from ..data.errors import PanopticFormatError

    try:
        return open_split(kind, root, split)
    except (ValueError, FileNotFoundError, PanopticFormatError) as error:
        raise CommandError(f"--data {kind} {root}: {error}") from None


def run_categories(checkpoint: str | None):
    """The categories recorded in a run folder (``categories.json``), else the built-in data's."""
    from ..data.synthetic import SYNTHETIC_CATEGORIES

    if checkpoint is None:
        return SYNTHETIC_CATEGORIES
    path = Path(checkpoint)
    for folder in (path, path.parent, path.parent.parent) if path.suffix else (path,):
        if (folder / CATEGORIES_FILE).is_file():
            return _read_categories(folder / CATEGORIES_FILE)
    return SYNTHETIC_CATEGORIES


def recorded_recipe(checkpoint: Path):
    """The recipe (``recipe.json``) that ``panopticlab train`` wrote beside a checkpoint, or None."""
    import json

    from ..recipe import TrainRecipe

    recipe = (checkpoint if checkpoint.is_dir() else checkpoint.parent) / "recipe.json"
    if not recipe.is_file():
        return None
    try:
        return TrainRecipe.from_dict(json.loads(recipe.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as error:
        raise CommandError(f"{recipe}: not a recipe written by `panopticlab train` ({error})") from error


def _read_categories(path: Path):
    """The categories of a run folder's ``categories.json``; a CommandError naming the file if it is not one."""
    import json

    from ..data.categories import CategorySet

    try:
        return CategorySet.from_coco(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise CommandError(f"{path}: not the categories file `panopticlab train` writes "
                           f"({type(error).__name__}: {error}); train the run again or restore the file") from None


def trained_model(name: str, checkpoint: str | None, pretrained: bool, categories=None, input_size: int | None = None):
    """Model ``name`` of the table with the weights ``checkpoint`` (a file or run folder) or ``pretrained`` names,
    built for ``categories`` (default: those of the run, see :func:`run_categories`), resizing its
    images to ``input_size`` (default: the size the run was trained at, see :func:`recorded_recipe`)."""
    from ..engine.checkpoint import load_model_weights
    from ..engine.pretrained import load_pretrained
    from ..models import zoo
    from ..models.common import set_input_size
    from ..engine.runs import build_network

    row = zoo.spec(name)
    if pretrained:
        model = load_pretrained(name)[0]
        if input_size is not None:
            set_input_size(model, input_size)
        return model
    categories = categories or run_categories(checkpoint)
    if checkpoint is None:
        raise CommandError("give the weights: --checkpoint PATH or --pretrained")
    path = Path(checkpoint)

    def load(component: str, where: Path):
        recipe = recorded_recipe(where)
        network = build_network(component, categories, recipe)  # as it was trained: data set, frozen bodies
        size = input_size or (recipe.input_size if recipe is not None else None)
        if size is not None:
            set_input_size(network, size)
        load_model_weights(_checkpoint_file(where), network)
        return network.eval()

    if not row.components:
        return load(name, path)
    if not path.is_dir():
        raise CommandError(f"{path}: the --checkpoint of {name} is the run folder of `panopticlab train --model "
                           f"{name}`, holding {' and '.join(f'{c}/' for c in row.components)}")
    return row.assemble(*(load(c, path / c) for c in row.components), categories).eval()


def resolve_device(device: str | None) -> str:
    """``--device``, checked (default: CUDA when present, else the CPU)."""
    from ..engine.trainer import resolve_device as engine_resolve_device

    return str(engine_resolve_device(device))
