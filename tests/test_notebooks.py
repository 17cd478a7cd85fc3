"""The book: every chapter is a valid py:percent source, names only what the package has,
and runs top to bottom in the `ci` profile; the student edition strips every solution."""
import ast
import importlib
import jupytext
import pytest

from panopticlab.notebooks import BOOK_DIR, chapter_paths, execute_notebook, load_chapter, strip_solutions, student_edition

CHAPTERS = chapter_paths(BOOK_DIR)
IDS = [p.stem for p in CHAPTERS]
CELL_TIMEOUT_SECONDS = 240  # a cell in the ci profile takes seconds; a runaway one fails the test


def code_cells(path):
    return [c.source for c in load_chapter(path).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_source_is_canonical_py_percent(path):
    """The .py file is what jupytext writes back: one source of truth, readable diffs."""
    text = path.read_text(encoding="utf-8")
    notebook = jupytext.reads(text, fmt="py:percent")
    assert jupytext.writes(notebook, fmt="py:percent") == text, \
        f"{path.name} is not in canonical py:percent form; run `jupytext --to py:percent {path.name}`"
    assert sum(c.cell_type == "markdown" for c in notebook.cells) >= 5, "a chapter teaches in prose"


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
    assert sources.count("raise NotImplementedError") >= text.count("# BEGIN SOLUTION")
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
