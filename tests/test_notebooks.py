"""The book: every chapter is a valid py:percent source, names only what the package has,
and runs top to bottom in the `ci` profile; the student edition strips every solution."""
import ast
import importlib
import os
import re
import jupytext
import pytest

from panopticlab.book.chapters import BOOK_DIR, chapter_paths, load_chapter
from panopticlab.book.editions import student_edition
from panopticlab.book.exercises import strip_solutions
from panopticlab.book.runner import execute_notebook

CHAPTERS = chapter_paths(BOOK_DIR)
IDS = [p.stem for p in CHAPTERS]
CELL_TIMEOUT_SECONDS = 240  # a cell in the ci profile takes seconds; a runaway one fails the test


def code_cells(path):
    return [c.source for c in load_chapter(path).cells if c.cell_type == "code"]


def notebook_content(text: str) -> dict:
    """What a py:percent chapter holds for its reader and the kernel: every cell's type, source
    and metadata, the kernelspec and the paired formats. Not the jupytext version that wrote
    the header, nor how a given jupytext release spaces the file."""
    notebook = jupytext.reads(text, fmt="py:percent")
    return {"cells": [(c.cell_type, c.source, dict(c.metadata)) for c in notebook.cells],
            "kernelspec": notebook.metadata.get("kernelspec"),
            "formats": notebook.metadata.get("jupytext", {}).get("formats")}


def round_trip_differences(text: str) -> list[str]:
    """How the chapter ``text`` changes when jupytext reads it and writes it back (as saving in
    JupyterLab does): one line per changed cell or header field; none for a canonical chapter."""
    before = notebook_content(text)
    after = notebook_content(jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent"))
    differences = [f"{key}: {before[key]!r} -> {after[key]!r}" for key in ("kernelspec", "formats")
                   if before[key] != after[key]]
    if len(before["cells"]) != len(after["cells"]):
        differences.append(f"{len(before['cells'])} cells -> {len(after['cells'])}")
    differences += [f"cell {i}: {old!r} -> {new!r}" for i, (old, new) in enumerate(zip(before["cells"], after["cells"]))
                    if old != new]
    return differences


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_source_survives_a_jupytext_round_trip(path):
    """The .py file is what saving the notebook writes back: one source of truth, readable diffs."""
    text = path.read_text(encoding="utf-8")
    assert not round_trip_differences(text), \
        f"{path.name} changes when saved from JupyterLab; run `jupytext --to py:percent {path.name}`"
    content = notebook_content(text)
    assert content["formats"] == "ipynb,py:percent", "the chapter pairs with its notebook"
    assert sum(kind == "markdown" for kind, _, _ in content["cells"]) >= 5, "a chapter teaches in prose"


@pytest.mark.parametrize("version", ["1.16.0", "1.19.6", "1.19.7", "2.0.0", "99.1.0"])
def test_round_trip_ignores_the_jupytext_release_that_saved_the_chapter(version):
    """A chapter saved by an older or newer jupytext passes: the header's version line is not content."""
    text = CHAPTERS[0].read_text(encoding="utf-8")
    resaved, count = re.subn(r"(?m)^(#\s+jupytext_version:).*$", rf"\g<1> {version}", text)
    assert count == 1 and not round_trip_differences(resaved)
    assert not round_trip_differences(re.sub(r"(?m)^#\s+jupytext_version:.*\n", "", text))


def test_round_trip_names_what_a_release_would_change(monkeypatch):
    """The check can fail: a jupytext that wrote a cell or the kernelspec back otherwise is caught."""
    text = CHAPTERS[0].read_text(encoding="utf-8")
    real_writes = jupytext.writes

    def writes_otherwise(notebook, fmt):
        notebook.cells[3].source += "\n# one more line"
        notebook.metadata["kernelspec"]["name"] = "python3-other"
        return real_writes(notebook, fmt=fmt)

    monkeypatch.setattr(jupytext, "writes", writes_otherwise)
    differences = round_trip_differences(text)
    assert [d.split(":")[0] for d in differences] == ["kernelspec", "cell 3"]


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_book_sync_then_saving_in_jupyterlab_keeps_the_chapter(path, tmp_path):
    """`panopticlab book sync`, then JupyterLab's save (jupytext's contents manager writes the
    paired .py): the chapter's content is unchanged and the next round-trip test still passes,
    whatever jupytext version the save writes into the header."""
    from jupytext import TextFileContentsManager

    from panopticlab.book.editions import sync_notebook

    copy = tmp_path / path.name
    copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    sync_notebook(copy)
    os.utime(copy, ns=(0, 0))
    manager = TextFileContentsManager(root_dir=str(tmp_path))
    manager.save(manager.get(copy.with_suffix(".ipynb").name), copy.with_suffix(".ipynb").name)
    assert copy.stat().st_mtime_ns > 0, "the save wrote the paired .py"
    saved = copy.read_text(encoding="utf-8")
    assert notebook_content(saved) == notebook_content(path.read_text(encoding="utf-8"))
    assert not round_trip_differences(saved)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_header_names_the_kernel_as_jupyterlab_saves_it(path):
    """JupyterLab writes the running kernel's spec into a saved notebook; jupytext copies it into
    the paired .py. The header must already say that, or saving an unedited chapter changes it."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3")
    kernelspec = jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent").metadata["kernelspec"]
    assert kernelspec == {"name": "python3", "display_name": installed.display_name, "language": installed.language}
    assert load_chapter(path).metadata["kernelspec"] == kernelspec


def _panopticlab_references(source: str):
    """Yield dotted names like ``panopticlab.data.rgb_to_id`` that a cell uses."""
    tree = ast.parse(source)
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("panopticlab"):
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                    yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("panopticlab"):
            for a in node.names:
                yield f"{node.module}.{a.name}"
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            value = node
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                yield ".".join([aliases[value.id], *reversed(parts)])


def _resolve(dotted: str):
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_names_exist_in_the_package(path):
    """Fails fast, without running the chapter, when it calls a name the package lost."""
    missing = []
    for source in code_cells(path):
        for dotted in set(_panopticlab_references(source)):
            try:
                _resolve(dotted)
            except (AttributeError, ModuleNotFoundError):
                missing.append(dotted)
    assert not missing, f"{path.name} uses names the package does not have: {sorted(set(missing))}"


def test_name_check_catches_a_missing_name():
    refs = set(_panopticlab_references("import panopticlab.data as d\nd.no_such_function(1)\n"))
    assert "panopticlab.data.no_such_function" in refs
    with pytest.raises(AttributeError):
        _resolve("panopticlab.data.no_such_function")


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_student_edition_strips_every_solution(path):
    text = path.read_text(encoding="utf-8")
    student = student_edition(load_chapter(path))
    sources = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in sources and "END SOLUTION" not in sources
    assert sources.count("# YOUR CODE HERE") >= text.count("# BEGIN SOLUTION")  # a stub for every solution
    assert text.count("# BEGIN SOLUTION") >= 1, f"{path.name} has no exercise"
    for cell in student.cells:  # the student edition is still valid Python
        if cell.cell_type == "code":
            ast.parse(cell.source)


def test_strip_solutions_keeps_indentation():
    src = "def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n\nprint(f)\n"
    stripped = strip_solutions(src)
    assert "return x + 1" not in stripped
    assert '    raise NotImplementedError("write your solution here")\n' in stripped
    assert stripped.endswith("\nprint(f)\n")
    ast.parse(stripped)


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_chapter_runs_in_ci_profile(path, tmp_path):
    """Execute the chapter top to bottom; its assertion cells carry the correctness checks."""
    notebook = execute_notebook(load_chapter(path), profile="ci", cwd=tmp_path, timeout=CELL_TIMEOUT_SECONDS)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures >= 3, f"{path.name}: {figures} figures kept in the executed notebook; a chapter shows its results"
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written in ([], ["work"]), f"{path.name} wrote {written} into its folder; write through panopticlab.work_dir"


def test_a_cell_with_an_interactive_widget_executes(tmp_path):
    """ipywidgets.interactive holds an Output widget: the runner must keep its state to record its output."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "import ipywidgets as w\nfrom IPython.display import display\n"
        "display(w.interactive(lambda x: print('x is', x), x=w.IntSlider(value=3)))")]
    executed = execute_notebook(notebook, profile="ci", cwd=tmp_path, timeout=60)
    assert [o["output_type"] for o in executed.cells[0].outputs] == ["display_data"]
