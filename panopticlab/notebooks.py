"""The book's chapters as notebooks (kept for existing imports; the code is in :mod:`panopticlab.book`).

Exercise solutions sit between two marker lines inside a code cell::

    def rgb_to_id(rgb):
        # BEGIN SOLUTION
        ...reference solution...
        # END SOLUTION

The student edition replaces each such block with ``raise NotImplementedError(...)``
at the same indentation.
"""
from __future__ import annotations

from .book.build import ExecutionReport, build_book
from .book.chapters import (
           BOOK_DIR,
           BOOK_ENV_VAR,
           chapter_paths,
           find_book_dir,
           load_chapter,
)
from .book.editions import student_edition, write_student_edition
from .book.exercises import SOLUTION_BLOCK, STUDENT_STUB, strip_solutions
from .book.runner import execute_notebook

__all__ = ["BOOK_DIR", "BOOK_ENV_VAR", "SOLUTION_BLOCK", "STUDENT_STUB", "ExecutionReport", "build_book",
           "chapter_paths", "execute_notebook", "find_book_dir", "load_chapter", "strip_solutions",
           "student_edition", "write_student_edition"]
