"""Reading pickled model files without running the code a pickle can carry.

A pickle names the functions and classes that rebuild its objects, and `pickle.load` imports and
calls whatever it names: a crafted file runs any command. SMPL / SMPL-H / SMPL-X model files are
pickles (`.pkl`) or numpy archives (`.npz`) that may hold pickled object arrays, so they are read
here through an unpickler that knows only what those files contain:

    numpy arrays, dtypes and scalars            rebuilt by numpy itself
    scipy.sparse csc / csr / coo matrices       rebuilt from their index and data arrays (dense)
    chumpy arrays (chumpy.ch.Ch)                 their array, without importing chumpy
    dicts, lists, tuples, strings, numbers       the pickle format's own types

Anything else a file names (os.system, builtins.eval, subprocess.Popen, ...) stops the load with
ForbiddenGlobalError naming the file and the forbidden name; nothing it names is imported or called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from .errors import MotionClipError

# Python 2 pickles (the original SMPL downloads) use Python 2's module names.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
MAX_DENSE_ELEMENTS = 200_000_000  # a sparse matrix is made dense only up to this size (1.6 GB of float64)


class UnsafePickleError(MotionClipError):
    """A pickled file could not be read safely (a forbidden name, or objects of the wrong shape)."""


class ForbiddenGlobalError(UnsafePickleError):
    """A pickle names a function or class outside the allowed list; nothing was imported or called."""

    def __init__(self, file: str, name: str, what: str, advice: str = "") -> None:
        self.file, self.name = file, name
        advice = advice or ("If the file came from someone else, delete it and get the model from its official "
                            "site; if it is yours, re-save its arrays with numpy.savez (plain arrays only).")
        super().__init__(
            f"{file} refers to {name}, which {what} never contains; it was not loaded, because unpickling "
            f"it would import and call {name} (a pickle can run any code this way). {advice}")


# --------------------------------------------------------------------------------------- the unpickler

class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only the (module, name) pairs in `allowed`, else raises
    ForbiddenGlobalError. A module starting with one of `prefixes` goes to `fallback(module, name)`
    instead (TorchScript's generated `__torch__.*` classes become inert placeholders)."""

    def __init__(self, fh: BinaryIO, file: str, allowed: dict[tuple[str, str], Any], what: str, *,
                 fallback: Callable[[str, str], Any] | None = None, prefixes: tuple[str, ...] = (),
                 persistent_load: Callable[[Any], Any] | None = None, encoding: str = "latin1",
                 advice: str = "") -> None:
        super().__init__(fh, encoding=encoding)
        self._file, self._allowed, self._what, self._advice = file, allowed, what, advice
        self._fallback, self._prefixes = fallback, prefixes
        if persistent_load is not None:
            self.persistent_load = persistent_load  # type: ignore[method-assign]

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        found = self._allowed.get((module, name), _MISSING)
        if found is not _MISSING:
            return found
        if self._fallback is not None and module.startswith(self._prefixes):
            return self._fallback(module, name)
        raise ForbiddenGlobalError(self._file, f"{module}.{name}", self._what, self._advice)


_MISSING = object()


_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"}


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """What Python 3 protocol 0-2 pickles call (_codecs.encode) to store bytes; latin-1 only (no codec
    lookup, which could import an encodings module the file names)."""
    if str(encoding).lower() not in _LATIN1 or errors != "strict" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}: only latin-1 text is allowed")
    return text.encode("latin1", errors)


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """copyreg._reconstructor (protocol 0/1 pickles of plain objects), for allowed classes only."""
    if base is not object or not isinstance(cls, type) or not issubclass(cls, _Stub):
        raise pickle.UnpicklingError(f"copyreg._reconstructor({getattr(cls, '__name__', cls)!r}, ...) is not allowed")
    return cls.__new__(cls)


class _Stub:
    """Stands in for a class of a model file (chumpy.Ch, scipy.sparse matrices) while unpickling;
    `state` keeps what the pickle gave, and finish() turns the stub into a numpy array."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        obj = object.__new__(cls)
        obj.state = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):  # (dict, slots)
            state = {**(state[0] or {}), **state[1]}
        self.state = state if isinstance(state, dict) else {}


class _ChumpyArray(_Stub):
    """chumpy.ch.Ch: its array is state['x']."""


class _SparseMatrix(_Stub):
    """A scipy.sparse matrix of one layout (csc, csr, coo): its arrays and shape are in `state`."""

    layout = ""


def _sparse_class(layout: str) -> type:
    return type(f"_Sparse_{layout}", (_SparseMatrix,), {"layout": layout})


def _numpy_allowed() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer
    return allowed


def _model_allowed() -> dict[tuple[str, str], Any]:
    allowed = _numpy_allowed()
    allowed.update({
        ("_codecs", "encode"): _latin1_encode,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("builtins", "object"): object,
        ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "bytes"): bytes,
        ("builtins", "bytearray"): bytearray, ("builtins", "complex"): complex,
        ("chumpy.ch", "Ch"): _ChumpyArray, ("chumpy", "Ch"): _ChumpyArray,
    })
    for layout in ("csc", "csr", "coo"):
        cls = _sparse_class(layout)
        for name in (f"{layout}_matrix", f"{layout}_array"):
            for mod in ("scipy.sparse", f"scipy.sparse.{layout}", f"scipy.sparse._{layout}"):
                allowed[(mod, name)] = cls
    return allowed


_MODEL_ALLOWED: dict[tuple[str, str], Any] | None = None


def model_allowed() -> dict[tuple[str, str], Any]:
    """The names an SMPL-family model pickle may refer to (built once)."""
    global _MODEL_ALLOWED
    if _MODEL_ALLOWED is None:
        _MODEL_ALLOWED = _model_allowed()
    return _MODEL_ALLOWED


# --------------------------------------------------------------------------------------- stubs -> arrays

def _sparse_to_dense(stub: _SparseMatrix, file: str) -> np.ndarray:
    s = stub.state
    shape = s.get("_shape", s.get("shape"))
    try:
        rows, cols = (int(n) for n in shape)
        if rows < 0 or cols < 0 or rows * cols > MAX_DENSE_ELEMENTS:
            raise ValueError(f"shape {shape} is too large")
        data = np.asarray(s["data"])
        if data.dtype.hasobject:
            raise ValueError("its data is not numbers")
        out = np.zeros((rows, cols), dtype=data.dtype)
        if stub.layout == "coo":
            coords = s.get("coords") or (s.get("row"), s.get("col"))  # scipy >= 1.13 keeps (row, col) as coords
            r, c = (np.asarray(x, np.int64) for x in coords[:2])
            np.add.at(out, (r, c), data)
            return out
        indices, indptr = np.asarray(s["indices"], np.int64), np.asarray(s["indptr"], np.int64)
        major = rows if stub.layout == "csr" else cols
        if indptr.shape != (major + 1,) or indptr[-1] > len(indices) or len(data) < indptr[-1]:
            raise ValueError("its index arrays do not match its shape")
        counts = np.diff(indptr)
        if (counts < 0).any():
            raise ValueError("its index pointers decrease")
        majors = np.repeat(np.arange(major), counts)
        minors, vals = indices[: indptr[-1]], data[: indptr[-1]]
        where = (majors, minors) if stub.layout == "csr" else (minors, majors)
        np.add.at(out, where, vals)
        return out
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise UnsafePickleError(f"{file}: a scipy.sparse {stub.layout} matrix in it cannot be read "
                                f"({type(exc).__name__}: {exc}); the file is damaged or not a model file") from None


def _chumpy_to_array(stub: _ChumpyArray, file: str, key: str) -> np.ndarray:
    x = stub.state.get("x")
    if x is None:
        raise UnsafePickleError(
            f"{file}: its entry {key!r} is a chumpy object without an array (only chumpy.ch.Ch arrays are "
            f"understood); convert the file in an environment that has chumpy (smplx's tools/clean_ch.py), "
            f"or use the model's .npz version")
    x = np.asarray(x)
    if x.dtype.hasobject:
        raise UnsafePickleError(f"{file}: its chumpy entry {key!r} holds objects, not numbers")
    return x


def finish(obj: Any, file: str, key: str = "", depth: int = 0) -> Any:
    """The unpickled object with every stub replaced by a plain numpy array (dicts, lists, tuples)."""
    if isinstance(obj, _ChumpyArray):
        return _chumpy_to_array(obj, file, key)
    if isinstance(obj, _SparseMatrix):
        return _sparse_to_dense(obj, file)
    if depth > 20:
        return obj
    if isinstance(obj, dict):
        return {k: finish(v, file, str(k), depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(finish(v, file, key, depth + 1) for v in obj)
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.size:
        out = np.empty(obj.size, dtype=object)
        for i, v in enumerate(obj.reshape(-1)):
            out[i] = finish(v, file, key, depth + 1)
        return out.reshape(obj.shape)
    return obj


# --------------------------------------------------------------------------------------- model files

def load_model_pickle(fh: BinaryIO, file: str, what: str = "an SMPL-family model file") -> Any:
    """One pickled object from `fh`, read with the model allowlist, stubs made into numpy arrays."""
    return finish(RestrictedUnpickler(fh, file, model_allowed(), what).load(), file)


def _read_npy(fh: BinaryIO, file: str, member: str) -> np.ndarray:
    """One .npy stream; an object array's pickle goes through the restricted unpickler."""
    from numpy.lib import format as npf

    version = npf.read_magic(fh)
    if version == (1, 0):
        _, _, dtype = npf.read_array_header_1_0(fh)
    elif version == (2, 0):
        _, _, dtype = npf.read_array_header_2_0(fh)
    else:  # 3.0: a UTF-8 header, read by numpy's own (private) reader
        _, _, dtype = npf._read_array_header(fh, version)
    if not dtype.hasobject:
        fh.seek(0)
        return npf.read_array(fh, allow_pickle=False)
    where = f"{file} ({member})" if member else file
    arr = load_model_pickle(fh, where, "a numpy object array in a model file")
    if not isinstance(arr, np.ndarray):
        raise UnsafePickleError(f"{where}: its object array holds a {type(arr).__name__}, not an array")
    return arr


def read_model_arrays(path: str | os.PathLike) -> Any:
    """The contents of an SMPL-family `.pkl` or `.npz` file (usually a dict of named arrays), read
    without running code: `.npz` members load with allow_pickle=False, object arrays and pickles
    through the restricted unpickler. As numpy.load does, a `.npz` that is really a pickle or a
    single `.npy` is read as what it is."""
    path = Path(path)
    file = str(path)
    with open(path, "rb") as fh:
        head = fh.read(6)
        fh.seek(0)
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            return _read_npz(fh, file)
        if head == b"\x93NUMPY":
            return _read_npy(fh, file, "")
        return load_model_pickle(fh, file)


def _read_npz(fh: BinaryIO, file: str) -> dict[str, np.ndarray]:
    """Every member of an .npz: numpy's own reader with allow_pickle=False, and for an object array
    (which numpy would unpickle) the restricted unpickler."""
    out: dict[str, np.ndarray] = {}
    with np.load(fh, allow_pickle=False) as npz:
        for key in npz.files:
            try:
                out[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise
                with npz.zip.open(f"{key}.npy") as raw:
                    out[key] = _read_npy(io.BytesIO(raw.read()), file, f"{key}.npy")
    return out


def save_plain_npz(path: str | os.PathLike, data: dict[str, Any]) -> list[str]:
    """Write the entries of `data` that are plain arrays (numbers or text) to an .npz that loads with
    allow_pickle=False; returns the names of the entries left out (objects: dicts, None, ...)."""
    keep, dropped = {}, []
    for key, value in data.items():
        try:
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
        except ValueError:  # a ragged list
            arr = np.empty(0, dtype=object)
        if arr.dtype.hasobject:
            dropped.append(str(key))
        else:
            keep[str(key)] = arr
    with open(path, "wb") as fh:
        np.savez(fh, **keep)
    return dropped

