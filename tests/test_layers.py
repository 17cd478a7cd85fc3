"""The package imports downward only, and the models load without the engine, the metrics or the synthetic data.

The layers, bottom to top (``../shared/DESIGN.md``): ``data``; ``postprocess`` and ``metrics``
on it, neither importing the other (data flows ``data -> models -> postprocess -> metrics``,
and a model's inference calls its post-processing); ``models``, with the recipe types
(``recipe``) and the run profiles below it; then ``engine`` driving and ``viz`` drawing,
neither importing the other; the exercise checkers, the book, and the command line on top.

Every import statement counts: at module level, inside a function and under
``TYPE_CHECKING``. An import inside a function defers the cost, not the dependency: it is
still an arrow from one layer to another, and upward it closes a circle. So are the
modules a package ``__init__`` names for lazy loading (its ``_EXPORTS`` table).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "panopticlab"

# Each part of the package (a subpackage or a top-level module; "panopticlab" is the
# package's own __init__) -> the parts it may import. Arrows are transitive: a part may
# also import everything below the parts it names, and anything of its own.
ARROWS = {
    "panopticlab": {"profiles"},
    "profiles": set(),
    "recipe": set(),
    "bibliography": set(),
    "_lazy": set(),
    "data": set(),
    "postprocess": {"data", "_lazy"},
    "metrics": {"data", "_lazy"},
    "models": {"postprocess", "profiles", "recipe"},
    "engine": {"models", "metrics"},
    "viz": {"models", "metrics"},
    "exercises": {"engine", "viz"},
    "book": {"exercises"},
    "commands": {"book", "engine", "viz"},
    "__main__": {"commands"},
}


def below(part: str) -> set[str]:
    """Every part ``part`` may import, following the arrows."""
    found, todo = set(), list(ARROWS[part])
    while todo:
        other = todo.pop()
        if other not in found:
            found.add(other)
            todo.extend(ARROWS[other])
    return found


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(path: Path, root: Path, modules: set[str]) -> list[tuple[int, str, str]]:
    """``(line, imported module, statement)`` for every import of the package in one file."""
    module, is_package = module_name(path, root), path.name == "__init__.py"
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ast.get_source_segment(source, node)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, is_package, node.level, node.module)
            # ``from . import zoo`` imports the submodule ``zoo``; ``from .zoo import spec`` the module ``zoo``
            found += [(node.lineno, f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target,
                       ast.get_source_segment(source, node)) for alias in node.names]
        elif (isinstance(node, ast.Assign) and is_package and isinstance(node.value, ast.Dict)
              and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)):
            for key in node.value.keys:
                relative = key.value
                level = len(relative) - len(relative.lstrip("."))
                found.append((key.lineno, resolve(module, True, level, relative[level:]), f"_EXPORTS[{relative!r}]"))
    # the package's own __init__ runs before any of its modules: importing it adds no arrow
    return sorted({entry for entry in found if entry[1].startswith(f"{root.name}.")})


def upward_imports(root: Path) -> list[str]:
    """Every import in the package ``root`` against :data:`ARROWS`, one line each."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in files}
    problems = []
    for path in files:
        source_part = part_of(module_name(path, root))
        allowed = below(source_part)
        for line, target, statement in imports_of(path, root, modules):
            target_part = part_of(target)
            if target_part != source_part and target_part not in allowed:
                problems.append(f"{path.relative_to(root.parent)}:{line}: {module_name(path, root)} imports {target} "
                                f"({statement!r}); {source_part} may import {', '.join(sorted(allowed)) or 'nothing'}")
    return problems


def test_the_arrows_are_layers():
    unknown = {other for targets in ARROWS.values() for other in targets} - set(ARROWS)
    assert not unknown, f"arrows to parts that are not listed: {unknown}"
    circles = [part for part in ARROWS if part in below(part)]
    assert not circles, f"the arrows go round in a circle through {circles}"


def test_every_part_of_the_package_has_its_place():
    parts = {part_of(module_name(path, PACKAGE)) for path in PACKAGE.rglob("*.py")}
    assert parts <= set(ARROWS), f"add {sorted(parts - set(ARROWS))} to ARROWS in {Path(__file__).name}"


def test_no_import_runs_upward():
    problems = upward_imports(PACKAGE)
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_the_walk_sees_relative_function_level_and_lazy_imports(tmp_path):
    root = tmp_path / "panopticlab"
    for folder in ("models", "engine", "metrics"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "engine" / "config.py").write_text("")
    (root / "metrics" / "pq.py").write_text("")
    (root / "models" / "zoo.py").write_text("from . import zoo\n\ndef recipe():\n    from ..engine import config\n")
    (root / "models" / "__init__.py").write_text('_EXPORTS = {".zoo": ("spec",), "..metrics.pq": ("PQ",)}\n')
    problems = upward_imports(root)
    assert len(problems) == 2, problems
    assert problems[0].startswith("panopticlab/models/__init__.py:1: panopticlab.models imports panopticlab.metrics.pq")
    assert problems[1].startswith("panopticlab/models/zoo.py:4: panopticlab.models.zoo imports panopticlab.engine.config "
                                  "('from ..engine import config'); models may import")


# what the models must not pull in: the layers above them, the synthetic data, scipy's KD-tree
NOT_FOR_MODELS = ("panopticlab.engine", "panopticlab.metrics", "panopticlab.data.synthetic", "scipy.spatial")


@pytest.mark.parametrize("statement", ["import panopticlab.models", "from panopticlab.models import zoo"])
def test_the_models_load_alone(statement):
    code = f"import sys\n{statement}\nprint(*[m for m in {NOT_FOR_MODELS!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"`{statement}` loads {done.stdout.split()}"
