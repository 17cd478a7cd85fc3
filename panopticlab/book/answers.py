"""Answers carried out of a graded kernel as data, never as code.

The autograder grades in its own process: the checker runs there, and the submission's
kernel only runs the student's code. What crosses from the kernel to the grader is the
*answer*: a value the notebook defined, or what a student's function returned when the
checker called it through :class:`~panopticlab.book.session.RemoteFunction`. This module
is both ends of that crossing.

In the kernel (:func:`describe_name`, :func:`serve_call`), an answer is reduced to plain
data (:func:`plain`): numbers, strings, ``None``, ``...``, lists, tuples, dicts, sets,
NumPy arrays and torch tensors (sent as arrays). Anything else is sent as its type's name
and repr, which no checker accepts.

In the grader (:func:`read_answer`), the bytes are unpickled by :class:`AnswerUnpickler`,
which builds only those types: a kernel that writes a pickle naming any other class or
function (``os.system``, a checker's own ``passed``) gets an :class:`AnswerError`, not a
call. So a submission can shape what its answer *is*, but not what the grader *does*.
"""
from __future__ import annotations

import io
import pickle
import random
import sys
from contextlib import ExitStack
from pathlib import Path

#: A tensor crosses as ``(TENSOR_TAG, array, dtype name, requires_grad)``.
TENSOR_TAG = "__panopticlab_tensor__"
#: An object that is none of the plain types crosses as ``(OPAQUE_TAG, type name, repr)``.
OPAQUE_TAG = "__panopticlab_opaque__"
#: The largest answer file the grader reads (a flood of data is an error, not a hang).
MAX_ANSWER_BYTES = 256 * 2**20

_ALLOWED_GLOBALS = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
    ("builtins", "range"), ("builtins", "bytearray"), ("builtins", "Ellipsis"),
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class AnswerError(ValueError):
    """The kernel's answer file cannot be read as plain data (names what it held)."""


class OpaqueAnswer:
    """An answer of a type no checker reads: its type's name and repr, for the message."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<a {self.type_name}: {self.text}>"


class AnswerUnpickler(pickle.Unpickler):
    """Unpickle plain data only: every global outside :data:`_ALLOWED_GLOBALS` (and the
    dtype classes of ``numpy.dtypes``) is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise AnswerError(f"the answer names {module}.{name}, which is not plain data")


# --- in the grader ---------------------------------------------------------------------

def read_answer(path: str | Path):
    """The value in an answer file the kernel wrote, with tensors rebuilt.

    Raises:
        AnswerError: the file is missing, too large, or not plain data.
    """
    data = _read_regular_file(Path(path))
    try:
        value = AnswerUnpickler(io.BytesIO(data)).load()
    except AnswerError:
        raise
    except Exception as error:  # noqa: BLE001 - a truncated or doctored file fails in many ways
        raise AnswerError(f"the answer cannot be read ({type(error).__name__}: {error})") from None
    return _rebuilt(value)


def _read_regular_file(path: Path) -> bytes:
    """The bytes of the answer file, read only if it is a regular file and not a link (the
    kernel may have put a link to a device, a pipe or another of your files there)."""
    import os
    import stat

    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise AnswerError("the kernel wrote no answer") from None
    except OSError as error:
        raise AnswerError(f"the answer is not a plain file ({error.strerror})") from None
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise AnswerError("the answer is not a plain file")
        data = file.read(MAX_ANSWER_BYTES + 1)
    if len(data) > MAX_ANSWER_BYTES:
        raise AnswerError(f"the answer is over the limit of {MAX_ANSWER_BYTES // 2**20} MiB")
    return data


def _rebuilt(value):
    """Tensors and opaque objects back from their tagged tuples; containers rebuilt alike."""
    if isinstance(value, tuple) and len(value) == 4 and value[0] == TENSOR_TAG:
        import torch

        _, array, dtype, requires_grad = value
        tensor = torch.from_numpy(array.copy()).to(getattr(torch, str(dtype), torch.float32))
        return tensor.requires_grad_(bool(requires_grad)) if tensor.is_floating_point() else tensor
    if isinstance(value, tuple) and len(value) == 3 and value[0] == OPAQUE_TAG:
        return OpaqueAnswer(str(value[1]), str(value[2]))
    if isinstance(value, list):
        return [_rebuilt(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_rebuilt(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_rebuilt(k), _rebuilt(v)) for k, v in value.items())
    if isinstance(value, (set, frozenset)):
        return type(value)(_rebuilt(v) for v in value)
    return value


def capture_random_state() -> dict:
    """The global random generators' state a call of a student's function starts from."""
    import numpy as np
    import torch

    return {"torch": torch.get_rng_state().numpy(), "numpy": np.random.get_state(), "random": random.getstate(),
            "threads": torch.get_num_threads()}


def restore_random_state(state) -> None:
    """Set the grader's generators to where the kernel's ended (a malformed state is ignored:
    it only changes what later draws of the check give, never the verdict's source)."""
    import numpy as np
    import torch

    try:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8))
        np.random.set_state(tuple(state["numpy"]))
        random.setstate(_as_random_state(state["random"]))
    except Exception:  # noqa: BLE001
        pass


def _as_random_state(state):
    version, internal, gauss = state
    return int(version), tuple(int(v) for v in internal), gauss


# --- in the kernel ---------------------------------------------------------------------

def plain(value, _depth: int = 0):
    """``value`` as plain data the grader can read (see the module's docstring)."""
    import numpy as np

    if _depth > 50:
        return (OPAQUE_TAG, "nesting deeper than 50", "")
    torch = sys.modules.get("torch")
    if value is None or value is Ellipsis or type(value) in (bool, int, float, complex, str, bytes):
        return value
    if isinstance(value, np.ndarray):
        return np.array(value, dtype=value.dtype) if value.dtype != object else (OPAQUE_TAG, "object array", "")
    if isinstance(value, np.generic):
        return value.item()
    if torch is not None and isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        dtype = str(tensor.dtype).removeprefix("torch.")
        array = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.resolve_conj().numpy()
        return (TENSOR_TAG, np.array(array), dtype, bool(value.requires_grad))
    if isinstance(value, (bool, int, float, str)):  # subclasses (a named int, an IntEnum) as the base type
        return next(base for base in (bool, int, float, str) if isinstance(value, base))(value)
    if isinstance(value, dict):
        return {plain(k, _depth + 1): plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = (plain(v, _depth + 1) for v in value)
        return frozenset(items) if isinstance(value, frozenset) else set(items)
    if isinstance(value, (list, tuple, range)):
        items = [plain(v, _depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    try:
        text = repr(value)[:200]
    except Exception:  # noqa: BLE001
        text = "?"
    return (OPAQUE_TAG, type(value).__name__, text)


def _write(path: str, record: dict) -> None:
    with open(path, "wb") as file:
        pickle.dump(record, file, protocol=4)


def describe_name(namespace: dict, name: str, out: str) -> None:
    """Write what ``name`` is in the notebook: missing, a function, or a value (as data)."""
    if name not in namespace:
        _write(out, {"kind": "missing"})
    elif callable(namespace[name]) and not isinstance(namespace[name], type):
        _write(out, {"kind": "function"})
    else:
        _write(out, {"kind": "value", "value": plain(namespace[name])})


def serve_call(namespace: dict, name: str, request: str, out: str) -> None:
    """Call the notebook's function ``name`` as the grader asked, and write what happened.

    ``request`` is the grader's pickle (trusted: the grader wrote it): the arguments (and
    keyword arguments), the
    random state to start from, and the package functions the exercise forbids (each
    ``(label, module, qualified name)`` or ``(label, module, class name, method)``).
    """
    import numpy as np
    import torch

    from ..exercises.forbidden import forbidden
    from ..exercises.checking import ExerciseError

    with open(request, "rb") as file:
        call = pickle.load(file)
    state = call["random"]
    torch.set_rng_state(torch.from_numpy(state["torch"]))
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    torch.set_num_threads(state["threads"])
    try:
        with ExitStack() as stack:
            for exercise, functions, methods in call["forbidden"]:
                stack.enter_context(forbidden(exercise, functions=_resolved(functions),
                                              methods=_resolved_methods(methods)))
            result = namespace[name](*call["args"], **call["kwargs"])
        record = {"kind": "returned", "value": plain(result)}
    except ExerciseError as error:
        record = {"kind": "raised", "type": "ExerciseError", "message": str(error)}
    except BaseException as error:  # noqa: BLE001 - the student's crash is the answer
        if isinstance(error, KeyboardInterrupt):
            raise
        record = {"kind": "raised", "type": type(error).__name__, "message": str(error)[:2000]}
    record["random"] = capture_random_state()
    _write(out, record)


def _resolved(functions) -> dict:
    import importlib

    resolved = {}
    for label, module, qualname in functions:
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        resolved[label] = value
    return resolved


def _resolved_methods(methods) -> dict:
    import importlib

    resolved = {}
    for label, module, qualname, attribute in methods:
        owner = importlib.import_module(module)
        for part in qualname.split("."):
            owner = getattr(owner, part)
        resolved[label] = (owner, attribute)
    return resolved
