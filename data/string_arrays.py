"""Arrays of strings from user-given ``.npy`` files, the baseline's pickled object arrays included, without
ever running a pickle.

The baseline saved its split lists (``images_list_<synset>_<split>.npy``, baseline §2.2) as numpy object
arrays of ``str``, which ``np.save`` writes as a pickle behind the ``.npy`` header; ``np.load(...,
allow_pickle=True)`` would run whatever a crafted file's pickle calls. :func:`load_string_array` reads plain
string arrays (``dtype`` ``U`` or ``S``) with ``allow_pickle=False`` and reads an object array's pickle
with a restricted unpickler: the only names it resolves are the three a pickled numpy array refers to
(``numpy[._core|.core].multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``), and each resolves to a
stand-in of this module that records its arguments instead of calling numpy. So no callable other than
those stand-ins can run; the recorded array is accepted only when it is exactly what ``np.save`` (Python 2
or 3) writes for an object array of strings (dtype ``O8``, the header's shape, one ``str`` or ``bytes`` per
element), and only then is a numpy array built, from the strings.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

#: The modules numpy has pickled ``_reconstruct`` from (numpy 2, numpy 1 and Python 2 numpy).
_MULTIARRAY_MODULES = ("numpy._core.multiarray", "numpy.core.multiarray")
#: The dtype spec of an object array in a numpy pickle (Python 3 str, or Python 2 str read as bytes).
_OBJECT_SPECS = ("O8", b"O8")
#: Header readers of the .npy format versions an object array is written with (3.0 only adds UTF-8 names).
_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


class _Token:
    """A token with no attributes to set (a pickle's BUILD on it fails)."""

    __slots__ = ()


#: Stands for ``numpy.ndarray`` in the pickle.
_NDARRAY = _Token()


class _Recorded:
    """What a stand-in returns: its call's arguments, and the state the pickle's BUILD gives it."""

    def __init__(self, kind: str, args: tuple):
        self.kind, self.args, self.state = kind, args, None

    def __setstate__(self, state):
        self.state = state


def _reconstruct(*args):
    return _Recorded("array", args)


def _dtype(*args):
    return _Recorded("dtype", args)


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names of a pickled numpy array, to the stand-ins above."""

    def find_class(self, module, name):
        if module in _MULTIARRAY_MODULES and name == "_reconstruct":
            return _reconstruct
        if module == "numpy" and name == "ndarray":
            return _NDARRAY
        if module == "numpy" and name == "dtype":
            return _dtype
        raise pickle.UnpicklingError(f"refers to {module}.{name}, which an array of strings never does")


def _strings_of_pickle(file, shape: tuple[int, ...]) -> list:
    """The elements of the pickled object array that follows the header, in C order; ValueError unless it is
    exactly an object array of ``shape`` holding str or bytes."""
    try:
        # encoding="bytes": a Python 2 str stays bytes (decoded below), nothing is guessed.
        array = _ArrayUnpickler(file, encoding="bytes").load()
    except Exception as err:  # a malformed stream fails in many ways; only pickle's own code ran
        raise ValueError(f"its pickle is not an array of strings ({type(err).__name__}: {err})") from None
    if not (isinstance(array, _Recorded) and array.kind == "array" and array.args[:1] == (_NDARRAY,)
            and isinstance(array.state, tuple) and len(array.state) == 5):
        raise ValueError("its pickle is not a numpy array")
    _version, pickled_shape, dtype, fortran, elements = array.state
    if not (isinstance(dtype, _Recorded) and dtype.kind == "dtype" and dtype.args[:1]
            and dtype.args[0] in _OBJECT_SPECS):
        raise ValueError("its pickle is not an object array")
    if pickled_shape != shape or fortran not in (False, 0) or not isinstance(elements, list) \
            or len(elements) != math.prod(shape):
        raise ValueError(f"its pickle does not hold the {shape} elements its header announces")
    strange = [type(e).__name__ for e in elements if not isinstance(e, (str, bytes))]
    if strange:
        raise ValueError(f"it holds objects that are not strings ({strange[0]})")
    return elements


def load_string_array(path) -> np.ndarray:
    """A ``.npy`` array of strings: plain ``U``/``S`` arrays, or a pickled object array of ``str``/``bytes``
    (the baseline's layout), the latter read without running its pickle (module docstring).

    Args:
        path: the ``.npy`` file.

    Returns:
        str array of the file's shape (bytes decoded as ASCII).

    Raises:
        ValueError: an unreadable file, an array that is not of strings, or a pickle that is anything but an
            object array of strings (nothing of it is run); the message names the file.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            read_header = _HEADER_READERS.get(npy_format.read_magic(file))
            shape, _, dtype = read_header(file) if read_header else ((), False, None)
            if dtype is not None and dtype.hasobject:
                elements = _strings_of_pickle(file, tuple(shape))
                array = np.array([e.decode("ascii") if isinstance(e, bytes) else e for e in elements],
                                 dtype=str).reshape(shape)
            else:
                array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path} as an array of strings: {err}") from None
    if array.dtype.kind == "S":
        try:
            return np.strings.decode(array, "ascii")
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: a byte string is not ASCII ({err})") from None
    if array.dtype.kind != "U":
        raise ValueError(f"{path} holds {array.dtype} values, not strings")
    return array
