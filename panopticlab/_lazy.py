"""A package's public names, loaded when first used (PEP 562).

A package ``__init__`` states which submodule defines each of its names and imports
nothing; :func:`lazy_names` turns that table into the package's ``__getattr__`` and
``__dir__``. ``import panopticlab.models`` then loads no model, and importing one part
of a package (``panopticlab.models.common`` from the engine,
``panopticlab.postprocess.heuristic`` from a model) does not load its siblings (scipy's
KD-tree, the evaluator, the trainer). Every submodule is an attribute of its package as
well (``panopticlab.engine.recipes``).
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Iterable, Mapping


def lazy_names(package: str, exports: Mapping[str, Iterable[str]]) -> tuple[Callable[[str], Any],
                                                                            Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        exports: each module, named relative to the package as in an import statement
            (``".trainer"``, ``"..recipe"``) -> the public names it defines.
    """
    names = {name: module for module, defined in exports.items() for name in defined}

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            setattr(sys.modules[package], name, value)  # found in the module's namespace from now on
            return value
        if not name.startswith("__"):
            try:
                return importlib.import_module(f".{name}", package)  # the import binds it to the package
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":
                    raise  # the submodule exists but imports something missing
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
