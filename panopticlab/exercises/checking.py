"""What every exercise checker shares: the error it raises and the message it prints."""
from __future__ import annotations


class ExerciseError(AssertionError):
    """The student's answer is wrong; the message says how and hints at the fix."""


def passed(exercise: str, detail: str = "") -> bool:
    """Print the confirmation and return True, so a checker call can also be asserted."""
    print(f"Exercise {exercise}: correct." + (f" {detail}" if detail else ""))
    return True


def call(exercise: str, fn, *args):
    """Call the student's function, turning a crash into an explanation."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseError(f"Exercise {exercise}: not implemented yet - replace the `raise NotImplementedError` "
                            f"line with your solution.") from None
