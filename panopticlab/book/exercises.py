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
from dataclasses import dataclass, field

SOLUTION_BLOCK = re.compile(r"^([ \t]*)# BEGIN SOLUTION[^\n]*\n.*?^[ \t]*# END SOLUTION[^\n]*(\n|$)", re.MULTILINE | re.DOTALL)
#: The line a student replaces; the autograder knows an untouched exercise by it.
STUB_LINE = 'raise NotImplementedError("write your solution here")'
STUDENT_STUB = "{indent}# YOUR CODE HERE\n{indent}" + STUB_LINE + "\n"
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
    """Replace every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block by a stub at its indentation."""
    return SOLUTION_BLOCK.sub(lambda m: STUDENT_STUB.format(indent=m.group(1)), source)


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
    return bool(SOLUTION_BLOCK.search(source)) or STUB_LINE in source


def is_stub(source: str) -> bool:
    """The cell still holds the student stub (the exercise was not attempted)."""
    return STUB_LINE in source


def rejections(checker) -> list[str]:
    """What a checker rejects, for the answer key.

    Read from a ``Rejects:`` section of the checker's docstring when it has one (one item
    per ``-`` line); otherwise from the messages of the ``ExerciseError`` s the checker
    (and the functions of its module that it calls) raises, with ``{...}`` where the
    message is filled in at run time, followed by the keys of any module-level
    ``{mistake: variant}`` table the checker compares a wrong answer against.
    """
    doc = inspect.getdoc(checker) or ""
    section = re.search(r"^Rejects:\s*\n((?:[ \t]*-.*\n?(?:[ \t]+[^-\s].*\n?)*)+)", doc, re.MULTILINE)
    if section:
        items = re.split(r"^\s*-\s*", section.group(1), flags=re.MULTILINE)
        return [" ".join(item.split()) for item in items if item.strip()]
    module = inspect.getmodule(checker)
    messages, mistakes, seen, todo = [], [], set(), [checker]
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
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "ExerciseError" and node.args:
                    text = _literal_text(node.args[0])
                    if text and text not in messages:
                        messages.append(text)
                else:
                    helper = getattr(module, node.func.id, None)
                    if inspect.isfunction(helper) and inspect.getmodule(helper) is module:
                        todo.append(helper)
    return [EXERCISE_PREFIX.sub("", m) for m in messages] + mistakes


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
    import textwrap

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
