"""The exercises of a chapter, found by the book's convention, and their solutions stripped.

An exercise is a code cell holding a reference solution between two marker lines::

    def rgb_to_id(rgb):
        # BEGIN SOLUTION
        ...reference solution...
        # END SOLUTION

followed, in the same or the next code cell, by a call of its checker,
``chNN.check_xxx(...)`` (``panopticlab.exercises.chNN``). The checker names the exercise:
its id is ``chNN.check_xxx`` and its number (``1.1``) is read from the checker's
docstring, which starts ``Exercise 1.1: ...`` (see :mod:`panopticlab.exercises.checking`).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from dataclasses import dataclass, field

SOLUTION_BLOCK = re.compile(r"^([ \t]*)# BEGIN SOLUTION[^\n]*\n.*?^[ \t]*# END SOLUTION[^\n]*(\n|$)", re.MULTILINE | re.DOTALL)
#: The line a student replaces; the autograder knows an untouched exercise by it.
STUB_LINE = 'raise NotImplementedError("write your solution here")'
STUDENT_STUB = "{indent}# YOUR CODE HERE\n{indent}" + STUB_LINE + "\n"
#: The stub of a solution written at the top level of a cell: its names assigned ``...``
#: (a top-level ``raise`` would stop "Run All" there; the checker says "not implemented yet").
VALUE_STUB_COMMENT = "# YOUR CODE HERE: replace each ... with your answer"
VALUE_STUB_LINE = re.compile(r"^\w+(?:\s*,\s*\w+)*\s*=\s*\.\.\.(?:\s*,\s*\.\.\.)*\s*$", re.MULTILINE)
CHECKER_CALL = re.compile(r"\b(ch\d\d)\.(check_\w+)\s*\(")
EXERCISE_NUMBER = re.compile(r"^\s*Exercise\s+(\d+\.\d+)\s*:")


@dataclass
class Exercise:
    """One exercise of a chapter notebook.

    Attributes:
        checker: its id, the checker's dotted name in the chapter (``"ch01.check_rgb_to_id"``).
        number: ``"1.1"`` from the checker's docstring (``"?"`` when the docstring has none).
        solution_cell: index in ``notebook.cells`` of the cell with the solution (None: not found).
        check_cell: index of the cell calling the checker.
        call: the source of the checker call statement (e.g. ``"ch01.check_rgb_to_id(rgb_to_id)"``).
    """

    checker: str
    number: str
    solution_cell: int | None
    check_cell: int
    call: str
    names: list[str] = field(default_factory=list)

    @property
    def module(self) -> str:
        return "panopticlab.exercises." + self.checker.split(".")[0]

    def function(self):
        """The checker function itself (imported)."""
        module_name, name = self.checker.split(".")
        return getattr(importlib.import_module(f"panopticlab.exercises.{module_name}"), name)


def strip_solutions(source: str) -> str:
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a stub at its indentation.

    A block inside a function becomes :data:`STUDENT_STUB`, which raises when the function
    is called. A block at the top level of a cell becomes :func:`value_stub`, so that the
    cell itself runs (the checker call after it then says "not implemented yet").
    """
    def stub(match) -> str:
        indent = match.group(1)
        values = None if indent else value_stub(match.group(0), match.string[match.end():])
        return values if values is not None else STUDENT_STUB.format(indent=indent)

    return SOLUTION_BLOCK.sub(stub, source)


def value_stub(block: str, after: str) -> str | None:
    """The stub of a top-level solution ``block``: each assignment whose names the code
    ``after`` it uses, with every value replaced by ``...`` (``tp, fp, fn = ..., ..., ...``).

    All assignments are kept when ``after`` uses none of their names; None when the block
    assigns no plain names (then the raising stub is used).
    """
    try:
        statements = ast.parse(textwrap.dedent(block)).body
    except SyntaxError:
        return None
    assignments = [_assigned_names(s) for s in statements]
    assignments = [names for names in assignments if names]
    if not assignments:
        return None
    used = {node.id for node in ast.walk(_parsed(after)) if isinstance(node, ast.Name)}
    wanted = [names for names in assignments if set(names) & used] or assignments
    lines = [f"{', '.join(names)} = {', '.join(['...'] * len(names))}" for names in wanted]
    return "\n".join([VALUE_STUB_COMMENT, *lines]) + "\n"


def _assigned_names(statement) -> list[str]:
    """The plain names one assignment binds: ``["tp", "fp"]`` for ``tp, fp = 3, 2``; [] for any
    other statement (chained assignments and attribute or subscript targets included)."""
    if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
        return []
    target = statement.targets[0]
    elements = target.elts if isinstance(target, ast.Tuple) else [target]
    return [e.id for e in elements] if all(isinstance(e, ast.Name) for e in elements) else []


def _parsed(source: str):
    try:
        return ast.parse(source)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def solution_blocks(source: str) -> list[str]:
    """The text of every solution block in ``source`` (markers included)."""
    return [m.group(0) for m in SOLUTION_BLOCK.finditer(source)]


def checker_calls(source: str) -> list[tuple[str, str]]:
    """``(checker id, call statement source)`` for each checker call in a code cell, in order.

    A cell that does not parse (a student's syntax error) is searched by text only.
    """
    found = []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [(f"{m.group(1)}.{m.group(2)}", "") for m in CHECKER_CALL.finditer(source)]
    for node in tree.body:
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                    and isinstance(call.func.value, ast.Name) and re.fullmatch(r"ch\d\d", call.func.value.id) \
                    and call.func.attr.startswith("check_"):
                found.append((f"{call.func.value.id}.{call.func.attr}", ast.get_source_segment(source, call)))
    return found


def checker_number(checker: str) -> str:
    """The exercise number the checker's docstring names (``"1.1"``), ``"?"`` if it names none."""
    module_name, name = checker.split(".")
    try:
        function = getattr(importlib.import_module(f"panopticlab.exercises.{module_name}"), name)
    except (ImportError, AttributeError):
        return "?"
    match = EXERCISE_NUMBER.match(inspect.getdoc(function) or "")
    return match.group(1) if match else "?"


def find_exercises(notebook) -> list[Exercise]:
    """The exercises of ``notebook`` in order: one per checker call found in a code cell.

    The solution cell is the call's own cell when it holds a solution block (or the
    student stub), else the code cell before it.
    """
    cells = notebook.cells
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    exercises = []
    for position, index in enumerate(code):
        for checker, call in checker_calls(cells[index].source):
            solution = None
            for candidate in (index, code[position - 1] if position else None):
                if candidate is not None and _holds_exercise(cells[candidate].source):
                    solution = candidate
                    break
            exercises.append(Exercise(checker, checker_number(checker), solution, index, call))
    return exercises


def _holds_exercise(source: str) -> bool:
    return bool(SOLUTION_BLOCK.search(source)) or is_stub(source)


def is_stub(source: str) -> bool:
    """The cell still holds a student stub (the exercise was not attempted): the raising
    line, or the ``...`` assignments under :data:`VALUE_STUB_COMMENT`."""
    if STUB_LINE in source:
        return True
    _, marker, rest = source.partition(VALUE_STUB_COMMENT + "\n")
    return bool(marker) and bool(VALUE_STUB_LINE.match(rest))


def rejections(checker) -> list[str]:
    """What a checker rejects, for the answer key.

    Read from a ``Rejects:`` section of the checker's docstring when it has one (one item
    per ``-`` line); otherwise from the messages of the ``ExerciseError`` s the checker
    (and the functions of its module that it calls) raises, with ``{...}`` where the
    message is filled in at run time, followed by the keys of any module-level
    ``{mistake: variant}`` table the checker compares a wrong answer against, and the
    package functions it makes unavailable to the answer (``forbidden(..., functions=...)``).
    """
    doc = inspect.getdoc(checker) or ""
    section = re.search(r"^Rejects:\s*\n((?:[ \t]*-.*\n?(?:[ \t]+[^-\s].*\n?)*)+)", doc, re.MULTILINE)
    if section:
        items = re.split(r"^\s*-\s*", section.group(1), flags=re.MULTILINE)
        return [" ".join(item.split()) for item in items if item.strip()]
    module = inspect.getmodule(checker)
    messages, mistakes, refused, seen, todo = [], [], [], set(), [checker]
    while todo:
        function = todo.pop(0)
        if function.__name__ in seen:
            continue
        seen.add(function.__name__)
        try:
            tree = ast.parse(_dedented_source(function))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            for mistake in _mistake_table(module, node):
                text = f"an answer that gets this wrong (the message names it): {mistake}"
                if text not in mistakes:
                    mistakes.append(text)
            for label in _forbidden_labels(module, node):
                text = f"an answer that calls {label} (made unavailable while it runs)"
                if text not in refused:
                    refused.append(text)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "ExerciseError" and node.args:
                    text = _literal_text(node.args[0])
                    if text and text not in messages:
                        messages.append(text)
                else:
                    helper = getattr(module, node.func.id, None)
                    if inspect.isfunction(helper) and inspect.getmodule(helper) is module:
                        todo.append(helper)
    return [EXERCISE_PREFIX.sub("", m) for m in messages] + mistakes + refused


def _forbidden_labels(module, node) -> list[str]:
    """The labels of the functions and methods a ``forbidden(exercise, functions=..., methods=...)``
    call makes unavailable: the keys of a dict literal or of a module-level dict."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "forbidden"):
        return []
    labels = []
    for keyword in node.keywords:
        if isinstance(keyword.value, ast.Dict):
            labels += [k.value for k in keyword.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        elif isinstance(keyword.value, ast.Name) and isinstance(getattr(module, keyword.value.id, None), dict):
            labels += [k for k in getattr(module, keyword.value.id) if isinstance(k, str)]
    return labels


def _mistake_table(module, node) -> list[str]:
    """The keys of a module-level ``{mistake: variant}`` dict a checker loops over
    (``for mistake, variant in MISTAKES.items()``): each key names a rejected answer."""
    if not (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
            and isinstance(node.iter.func, ast.Attribute) and node.iter.func.attr == "items"
            and isinstance(node.iter.func.value, ast.Name)):
        return []
    table = getattr(module, node.iter.func.value.id, None)
    if not isinstance(table, dict) or not all(isinstance(key, str) for key in table):
        return []
    return list(table)


EXERCISE_PREFIX = re.compile(r"^Exercise \d+\.\d+:\s*")


def _dedented_source(function) -> str:
    return textwrap.dedent(inspect.getsource(function))


def _literal_text(node) -> str:
    """The text of a string literal, f-string (``{...}`` for each field) or concatenation of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{...}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal_text(node.left), _literal_text(node.right)
        return left + right if left or right else ""
    return ""
