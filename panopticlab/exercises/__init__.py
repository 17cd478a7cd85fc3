"""Exercise checkers, one module per chapter (``panopticlab.exercises.ch01`` ...).

A checker takes the student's function, runs it on cases whose answers the package
knows, and either prints a short confirmation or raises :class:`ExerciseError` with an
explanation of what is wrong and a hint towards the fix.
"""
from .checking import ExerciseError, passed

__all__ = ["ExerciseError", "passed"]
