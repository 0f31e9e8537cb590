"""Weights files read as plain tensors, never as code.

OpenAI's CLIP `.pt` files are TorchScript archives: `torch.jit.load` runs the TorchScript they
hold, and `torch.load(weights_only=True)` refuses them. Their tensors sit in the zip as raw
storages (`<archive>/data/<key>`) described by `<archive>/data.pkl`, a pickle of module objects
(`__torch__.clip.model.CLIP`, ...) whose attributes are tensors. That pickle is read here with
core.safe_pickle's restricted unpickler: the `__torch__.*` classes become inert placeholders,
tensors are rebuilt from the raw storages by this module, and any other name it refers to
stops the load. The code inside the archive is never read.

    read_weights(path)   a state dict from a TorchScript archive, a torch.save file (loaded with
                         weights_only=True) or a .safetensors file
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..safe_pickle import ForbiddenGlobalError, RestrictedUnpickler, UnsafePickleError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
WHAT = "a torch weights archive"
ADVICE = ("If the file came from someone else, delete it and get the weights from their official source; "
          "if it is yours, save the model's state_dict() with torch.save or safetensors.")


class _StorageType:
    """Stands in for torch.FloatStorage & co. in a storage's persistent id: only its dtype is used."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class ScriptObject:
    """A TorchScript module object from data.pkl: its class name and its attributes, nothing callable."""

    type_name = "__torch__"

    def __new__(cls, *args: Any) -> "ScriptObject":
        obj = object.__new__(cls)
        obj.attrs = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        self.attrs = state if isinstance(state, dict) else {}


def _rebuild_tensor_v2(storage: Tensor, offset: int, size: tuple, stride: tuple, *_ignored: Any) -> Tensor:
    """torch._utils._rebuild_tensor_v2 over a flat tensor holding the storage (bounds are checked)."""
    if not isinstance(storage, Tensor) or storage.dim() != 1:
        raise pickle.UnpicklingError("_rebuild_tensor_v2 without a storage")
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    if any(s < 0 for s in size + stride) or offset < 0:
        raise pickle.UnpicklingError(f"a tensor with negative size, stride or offset ({size}, {stride}, {offset})")
    end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else offset
    if end > storage.numel():
        raise pickle.UnpicklingError(f"a tensor of size {size} reaches past its storage ({storage.numel()} items)")
    return storage.as_strided(size, stride, offset)


def _rebuild_parameter(data: Tensor, *_ignored: Any) -> Tensor:
    if not isinstance(data, Tensor):
        raise pickle.UnpicklingError("_rebuild_parameter without a tensor")
    return data


_CLASSES: dict[str, type] = {}


def _script_class(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _CLASSES:
        _CLASSES[key] = type(name, (ScriptObject,), {"type_name": key})
    return _CLASSES[key]


def _allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("collections", "OrderedDict"): OrderedDict,
    }
    for name, dtype in _STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageType(dtype)
    return allowed


class _ArchiveReader:
    """Storages of one zip archive, read on demand by persistent id."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str, file: str) -> None:
        self.zf, self.prefix, self.file = zf, prefix, file
        self.storages: dict[str, Tensor] = {}
        order = f"{prefix}byteorder"
        if order in zf.namelist() and zf.read(order).strip() not in (b"little", b""):
            raise UnsafePickleError(f"{file}: its tensors are stored big-endian; re-save them on this kind of machine")
        if sys.byteorder != "little":  # pragma: no cover - every machine this runs on is little-endian
            raise UnsafePickleError(f"{file}: reading TorchScript weights needs a little-endian machine")

    def persistent_load(self, pid: Any) -> Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:80]}")
        dtype, key, numel = pid[1].dtype, str(pid[2]), int(pid[4])
        if key not in self.storages:
            name = f"{self.prefix}data/{key}"
            try:
                raw = bytearray(self.zf.read(name))
            except KeyError:
                raise UnsafePickleError(f"{self.file}: its storage {name} is missing; the file is incomplete") from None
            itemsize = torch.empty(0, dtype=dtype).element_size()
            if len(raw) < numel * itemsize:
                raise UnsafePickleError(f"{self.file}: its storage {name} holds {len(raw)} bytes, "
                                        f"not the {numel * itemsize} it should; the file is incomplete")
            flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            self.storages[key] = flat[: numel * itemsize].view(dtype)
        return self.storages[key]


def _data_pickle(zf: zipfile.ZipFile, file: str) -> str:
    names = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if len(names) != 1:
        raise UnsafePickleError(f"{file}: not a torch weights archive (no single <archive>/data.pkl in the zip)")
    return names[0]


def read_archive(path: str | os.PathLike) -> Any:
    """The object pickled in a torch zip archive's data.pkl (TorchScript modules as ScriptObject)."""
    file = str(path)
    with zipfile.ZipFile(path) as zf:
        name = _data_pickle(zf, file)
        reader = _ArchiveReader(zf, name[: -len("data.pkl")], file)
        with zf.open(name) as fh:
            unpickler = RestrictedUnpickler(fh, file, _allowed(), WHAT, fallback=_script_class,
                                            prefixes=("__torch__",), persistent_load=reader.persistent_load,
                                            encoding="utf-8", advice=ADVICE)
            return unpickler.load()


def flatten_module(obj: ScriptObject, prefix: str = "", depth: int = 0) -> dict[str, Tensor]:
    """Every tensor attribute of a TorchScript module tree, keyed as state_dict keys are."""
    out: dict[str, Tensor] = {}
    if depth > 64:
        raise UnsafePickleError("TorchScript modules nested more than 64 deep")
    for name, value in obj.attrs.items():
        if isinstance(value, Tensor):
            out[prefix + str(name)] = value
        elif isinstance(value, ScriptObject):
            out.update(flatten_module(value, f"{prefix}{name}.", depth + 1))
    return out


def is_torchscript(path: str | os.PathLike) -> bool:
    """A zip with <archive>/constants.pkl or code/: what torch.jit.save writes."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_weights(path: str | os.PathLike) -> dict[str, Tensor]:
    """A state dict from `path`, read as data: a TorchScript archive's tensor attributes, a torch.save
    file (torch.load with weights_only=True) or a .safetensors file. Raises UnsafePickleError (naming
    the forbidden name) or ValueError for anything else."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if is_torchscript(path):
        root = read_archive(path)
        if not isinstance(root, ScriptObject):
            raise ValueError(f"its data.pkl holds a {type(root).__name__}, not a TorchScript module")
        return flatten_module(root)
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(exc), re.IGNORECASE)
        if found:  # torch's own weights-only unpickler refused a name: nothing was called
            raise ForbiddenGlobalError(str(path), found.group(1), "a weights file", ADVICE) from None
        why = [ln.strip() for ln in str(exc).splitlines() if ln.strip().lower().startswith("unsupported")]
        raise ValueError(f"not a torch weights file ({why[0] if why else 'torch.load could not read it'})") from None
    if not isinstance(sd, dict):
        raise ValueError(f"it holds a {type(sd).__name__}, not a state dict")
    return sd


__all__ = ["read_weights", "read_archive", "flatten_module", "is_torchscript", "ScriptObject",
           "ForbiddenGlobalError", "UnsafePickleError"]
