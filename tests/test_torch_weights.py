"""Torch weights files read as tensors only (core/encoders/torch_weights.py), on crafted archives.

Each archive is written the way torch.jit.save lays one out (<archive>/data.pkl describing module
objects whose attributes are tensors, raw storages in <archive>/data/<key>, constants.pkl), with
the pickle made here, so that every way an archive can be wrong is tried: missing or short
storages, tensors reaching past their storage, foreign persistent ids, big-endian data.
Real archives (torch.jit.trace of the tiny CLIP) and hostile ones are in tests/test_encoders.py.
"""

from __future__ import annotations

import io
import pickle
import types
import zipfile
from collections import OrderedDict

import pytest
import torch

from conftest import modules_installed
from motionclip.core.encoders.torch_weights import read_weights
from motionclip.core.safe_pickle import UnsafePickleError


class Storage:
    def __init__(self, key: str, numel: int, kind=torch.FloatStorage) -> None:
        self.key, self.numel, self.kind = key, numel, kind


class Strange:
    """Pickled as a persistent id that is not a storage."""


class Rebuilt:
    """Pickles as torch._utils.<fn>(*args): a tensor as torch writes one, or a wrong call."""

    def __init__(self, fn: str, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        import torch._utils

        return getattr(torch._utils, self.fn), self.args


def tensor(storage: Storage, size, stride, offset: int = 0) -> Rebuilt:
    return Rebuilt("_rebuild_tensor_v2", storage, offset, tuple(size), tuple(stride), False, OrderedDict())


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cuda:0", obj.numel)
        if isinstance(obj, Strange):
            return ("weird", 1)
        return None


def module(name: str = "CLIP", **attrs):
    """An object pickled as the TorchScript class __torch__.clip.model.<name> with these attributes."""
    cls = type(name, (), {})
    cls.__module__, cls.__qualname__ = "__torch__.clip.model", name
    obj = cls()
    obj.__dict__.update(attrs)
    return obj


def archive(path, root, storages: dict[str, bytes], byteorder: bytes | None = None, data_pkl: bool = True):
    fake = types.ModuleType("__torch__.clip.model")
    for value in _walk(root):
        setattr(fake, type(value).__qualname__, type(value))
    buf = io.BytesIO()
    with modules_installed({"__torch__": types.ModuleType("__torch__"),  # importable while pickling only
                            "__torch__.clip": types.ModuleType("__torch__.clip"), "__torch__.clip.model": fake}):
        _Pickler(buf, protocol=2).dump(root)
    with zipfile.ZipFile(path, "w") as zf:
        if data_pkl:
            zf.writestr("arch/data.pkl", buf.getvalue())
        zf.writestr("arch/constants.pkl", pickle.dumps((), protocol=2))
        zf.writestr("arch/code/__torch__/clip/model.py", "def forward(self): ...\n")
        for key, raw in storages.items():
            zf.writestr(f"arch/data/{key}", raw)
        if byteorder is not None:
            zf.writestr("arch/byteorder", byteorder)
    return path


def _walk(obj):
    if type(obj).__module__ == "__torch__.clip.model":
        yield obj
        for v in obj.__dict__.values():
            yield from _walk(v)


def floats(*values: float) -> bytes:
    return torch.tensor(values, dtype=torch.float32).numpy().tobytes()


def test_module_tree_to_state_dict(tmp_path):
    s0, s1 = Storage("0", 6), Storage("1", 2, torch.HalfStorage)
    root = module(text_projection=tensor(s0, (2, 3), (3, 1)), training=False, vocab_size=49408,
                  ln_final=module("LayerNorm", weight=tensor(s1, (2,), (1,)), bias=Rebuilt("_rebuild_parameter",
                                                                                          tensor(s0, (2,), (1,), 4),
                                                                                          True, OrderedDict())))
    path = archive(tmp_path / "w.pt", root, {"0": floats(1, 2, 3, 4, 5, 6),
                                            "1": torch.tensor([7.0, 8.0], dtype=torch.float16).numpy().tobytes()},
                   byteorder=b"little")
    sd = read_weights(path)
    assert sorted(sd) == ["ln_final.bias", "ln_final.weight", "text_projection"]
    assert torch.equal(sd["text_projection"], torch.tensor([[1.0, 2, 3], [4, 5, 6]]))
    assert sd["ln_final.weight"].dtype == torch.float16 and sd["ln_final.weight"].tolist() == [7.0, 8.0]
    assert sd["ln_final.bias"].tolist() == [5.0, 6.0]  # offset 4 into the same storage


@pytest.mark.parametrize("case, message", [
    ("missing storage", "arch/data/0 is missing"),
    ("short storage", "holds 8 bytes, not the 24"),
    ("past the storage", "reaches past its storage"),
    ("negative size", "negative size"),
    ("no storage", "without a storage"),
    ("parameter of nothing", "without a tensor"),
    ("strange persistent id", "unknown persistent id"),
    ("big-endian", "big-endian"),
    ("no data.pkl", "no single <archive>/data.pkl"),
    ("forbidden", "builtins.eval"),
])
def test_bad_archives(tmp_path, case, message):
    s = Storage("0", 6)
    storages = {"0": floats(1, 2, 3, 4, 5, 6)}
    attrs = {"w": tensor(s, (2, 3), (3, 1))}
    extra = {}
    if case == "missing storage":
        storages = {}
    elif case == "short storage":
        storages = {"0": floats(1, 2)}
    elif case == "past the storage":
        attrs = {"w": tensor(s, (3, 3), (3, 1))}
    elif case == "negative size":
        attrs = {"w": tensor(s, (2, -3), (3, 1))}
    elif case == "no storage":
        attrs = {"w": Rebuilt("_rebuild_tensor_v2", 5, 0, (1,), (1,), False, OrderedDict())}
    elif case == "parameter of nothing":
        attrs = {"w": Rebuilt("_rebuild_parameter", "x", True, OrderedDict())}
    elif case == "strange persistent id":
        attrs = {"w": Strange()}
    elif case == "big-endian":
        extra = {"byteorder": b"big"}
    elif case == "no data.pkl":
        extra = {"data_pkl": False}
    elif case == "forbidden":
        attrs = {"w": Reduces(eval, "1 + 1")}
    path = archive(tmp_path / "w.pt", module(**attrs), storages, **extra)
    with pytest.raises((UnsafePickleError, pickle.UnpicklingError), match=message):
        read_weights(path)


class Reduces:
    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_modules_nested_too_deep(tmp_path):
    root = module(w=tensor(Storage("0", 1), (1,), (1,)))
    for i in range(70):
        root = module(f"Block{i}", child=root)  # one class per level, as TorchScript mangles them
    path = archive(tmp_path / "w.pt", root, {"0": floats(1)})
    with pytest.raises(UnsafePickleError, match="more than 64 deep"):
        read_weights(path)


def test_archive_whose_root_is_no_module(tmp_path):
    path = archive(tmp_path / "w.pt", {"w": tensor(Storage("0", 1), (1,), (1,))}, {"0": floats(1)})
    with pytest.raises(ValueError, match="holds a dict, not a TorchScript module"):
        read_weights(path)


def test_torch_save_files(tmp_path):
    good = tmp_path / "sd.pt"
    torch.save({"a": torch.arange(3.0)}, good)
    assert torch.equal(read_weights(good)["a"], torch.arange(3.0))
    not_dict = tmp_path / "t.pt"
    torch.save(torch.zeros(2), not_dict)
    with pytest.raises(ValueError, match="holds a Tensor, not a state dict"):
        read_weights(not_dict)
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"not weights at all")
    with pytest.raises(ValueError, match="not a torch weights file"):
        read_weights(garbage)
