"""SMPL-family model files are read without running the code a pickle can carry.

Each hostile file here carries a real payload: unpickled by `pickle.load` or
`numpy.load(allow_pickle=True)`, it would create a marker file (os.system('touch ...') or
builtins.exec). The test checks, without unpickling, that the file really names that callable,
then that loading refuses with a message naming the file and the callable, and that the marker
was never created. Well-formed files with everything the official downloads hold (numpy arrays,
scipy.sparse matrices, chumpy arrays) still load, and `motionclip convert-smpl` turns them into
plain-array .npz files.
"""

from __future__ import annotations

import codecs
import copyreg
import os
import pickle
import pickletools
import shlex
import sys
import types

import numpy as np
import pytest
import scipy.sparse

pytest.importorskip("smplx")

from motionclip.core.cli import main  # noqa: E402
from motionclip.core.safe_pickle import (  # noqa: E402
    ForbiddenGlobalError,
    UnsafePickleError,
    read_model_arrays,
    save_plain_npz,
)
from motionclip.core.skeleton import SMPL_MODEL_ENV, BodyModelError, load_skeleton  # noqa: E402
from conftest import modules_installed  # noqa: E402
from test_body_model import check_skeleton, make_model  # noqa: E402


@pytest.fixture(autouse=True)
def _no_env_model(monkeypatch):
    monkeypatch.delenv(SMPL_MODEL_ENV, raising=False)


class Touch:
    """Unpickled, runs `touch MARKER` through os.system."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


class Exec:
    """Unpickled, creates MARKER through builtins.exec."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def named_globals(blob: bytes) -> set[str]:
    """The module.name pairs a pickle asks the unpickler to import (GLOBAL and STACK_GLOBAL)."""
    names, memo, recent = set(), {}, []  # recent: the values of the last pushes (strings or None)
    for op, arg, _ in pickletools.genops(blob):
        if op.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            names.add(".".join(str(x) for x in recent[-2:]))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            recent.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = recent[-1] if recent else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            recent.append(memo.get(arg))
        else:
            recent.append(None)
    return {n.replace("__builtin__.", "builtins.") for n in names}  # Python 2's name, as protocol <= 2 writes it


def npy_pickle(path) -> bytes:
    """The pickle inside an .npy stream of an object array (after numpy's header)."""
    from numpy.lib import format as npf

    with open(path, "rb") as fh:
        npf.read_array_header_1_0(fh) if npf.read_magic(fh) == (1, 0) else npf.read_array_header_2_0(fh)
        return fh.read()


def plain(kind: str, seed: int) -> dict:
    return {k: v for k, v in make_model(kind, seed=seed).items() if not k.startswith("_")}


def fake_chumpy():
    """A class pickled as chumpy.ch.Ch (sys.modules holds the fake module only while pickling)."""
    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x) -> None:  # what chumpy pickles: the array as 'x', and bookkeeping
            self.x = x
            self._dirty_vars = set()
            self._itr = None

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch = Ch
    return mod


def pickle_with_chumpy(payload, protocol: int) -> bytes:
    mod = fake_chumpy()
    with modules_installed({"chumpy": types.ModuleType("chumpy"), "chumpy.ch": mod}):
        return pickle.dumps(payload(mod.Ch), protocol=protocol)


# --- hostile files ------------------------------------------------------------------------------


@pytest.mark.parametrize("carrier", [Touch, Exec])
@pytest.mark.parametrize("where", ["entry", "whole file", "inside a chumpy array"])
def test_hostile_pickle_is_refused(tmp_path, carrier, where):
    marker = tmp_path / "PWNED"
    data = plain("smpl", seed=20)
    if where == "entry":
        blob = pickle.dumps({**data, "J_regressor_prior": carrier(marker)}, protocol=2)
    elif where == "whole file":
        blob = pickle.dumps(carrier(marker), protocol=2)
    else:
        blob = pickle_with_chumpy(lambda Ch: {**data, "shapedirs": Ch(carrier(marker))}, protocol=2)
    forbidden = {Touch: "posix.system", Exec: "builtins.exec"}[carrier]
    assert forbidden in named_globals(blob)  # a real payload: pickle.load would run it
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(blob)
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and forbidden in msg and "was not loaded" in msg
    assert "download it again" not in msg  # not blamed on a damaged download
    assert not marker.exists()


@pytest.mark.parametrize("name", ["SMPLX_NEUTRAL.npz", "SMPL_NEUTRAL.npz", "SMPLH_MALE.npz"])
def test_hostile_npz_is_refused(tmp_path, name):
    # SMPL-X .npz files reach smplx's np.load(allow_pickle=True) unless read here first.
    marker = tmp_path / "PWNED"
    kind = name.split("_")[0].lower()
    path = tmp_path / name
    np.savez(path, **plain(kind, seed=21), joint2num=np.array(Touch(marker), dtype=object))
    member = tmp_path / "member.npy"
    np.save(member, np.array(Touch(marker), dtype=object), allow_pickle=True)
    assert "posix.system" in named_globals(npy_pickle(member))
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and "joint2num.npy" in msg and "posix.system" in msg
    assert not marker.exists()


@pytest.mark.parametrize("form", ["pickle", "npy"])
def test_npz_that_is_something_else_is_refused(tmp_path, form):
    # numpy.load(allow_pickle=True) reads a pickle or an .npy named .npz as what it is.
    marker = tmp_path / "PWNED"
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    if form == "pickle":
        path.write_bytes(pickle.dumps({"v_template": Touch(marker)}, protocol=2))
    else:
        with open(path, "wb") as fh:
            np.save(fh, np.array({"v_template": Touch(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(ForbiddenGlobalError) as err:
        read_model_arrays(path)
    assert err.value.name == "posix.system" and err.value.file == str(path)
    with pytest.raises(BodyModelError, match="posix.system"):
        load_skeleton(path)
    assert not marker.exists()


class Reduces:
    """Pickles as fn(*args): reaches allowed names with arguments they must refuse."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("obj, message", [
    (Reduces(codecs.encode, "abc", "rot13"), "only latin-1"),
    (Reduces(copyreg._reconstructor, np.ndarray, object, None), "_reconstructor"),
])
def test_allowed_names_with_bad_arguments(tmp_path, obj, message):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": obj}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=message):
        read_model_arrays(path)


# --- what the official files hold ------------------------------------------------------------


def official_like_smpl(Ch, data: dict) -> dict:
    """An SMPL pickle as the downloads have it: chumpy arrays, sparse regressors, extra entries."""
    out = dict(data)
    out["shapedirs"] = Ch(data["shapedirs"])
    out["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])
    out["J_regressor_prior"] = scipy.sparse.csc_matrix(data["J_regressor"])
    out["weights_prior"] = Ch(data["weights"])
    out["pose_training_info"] = {"frames": 1786, "lambda": 0.5}
    out["bs_style"], out["bs_type"] = "lbs", "lrotmin"
    return out


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_official_shaped_smpl_pickle_loads(tmp_path, protocol):
    truth = make_model("smpl", seed=22)
    data = {k: v for k, v in truth.items() if not k.startswith("_")}
    blob = pickle_with_chumpy(lambda Ch: official_like_smpl(Ch, data), protocol)
    assert {"chumpy.ch.Ch"} <= named_globals(blob) and "chumpy" not in sys.modules
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(blob)
    arrays = read_model_arrays(path)
    assert isinstance(arrays["shapedirs"], np.ndarray) and np.array_equal(arrays["shapedirs"], data["shapedirs"])
    assert isinstance(arrays["J_regressor"], np.ndarray) and np.array_equal(arrays["J_regressor"], data["J_regressor"])
    assert arrays["pose_training_info"] == {"frames": 1786, "lambda": 0.5} and arrays["bs_style"] == "lbs"
    check_skeleton(load_skeleton(path), truth, "smpl")
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules  # never imported


def test_smplx_npz_with_object_entries_loads(tmp_path):
    # SMPL-X downloads keep dicts (joint2num, part2num) as pickled object arrays.
    truth = make_model("smplx", seed=23)
    path = tmp_path / "SMPLX_FEMALE.npz"
    np.savez(path, **{k: v for k, v in truth.items() if not k.startswith("_")},
             joint2num=np.array({"pelvis": 0}, dtype=object), part2num=np.array({"head": 1}, dtype=object))
    assert read_model_arrays(path)["joint2num"].item() == {"pelvis": 0}
    check_skeleton(load_skeleton(path), truth, "smplx")


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_other_sparse_layouts(tmp_path, layout):
    reg = np.zeros((4, 6))
    reg[1, 2], reg[3, 5], reg[0, 0] = 0.5, 2.0, -1.0
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"J_regressor": getattr(scipy.sparse, f"{layout}_matrix")(reg)}, protocol=2))
    assert np.array_equal(read_model_arrays(path)["J_regressor"], reg)


@pytest.mark.parametrize("field, value, message", [
    ("indptr", np.array([0, 2, 1, 3]), "decrease"),
    ("indptr", np.array([0, 1]), "do not match its shape"),
    ("_shape", (10**6, 10**6), "too large"),
    ("data", np.array(["a", "b", "c"], dtype=object), "not numbers"),
])
def test_damaged_sparse_matrix(tmp_path, field, value, message):
    m = scipy.sparse.csc_matrix(np.eye(3))
    m.__dict__[field] = value  # pickled as is: scipy checks nothing on the way out
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"J_regressor": m}, protocol=2))
    with pytest.raises(UnsafePickleError, match=message) as err:
        read_model_arrays(path)
    assert str(path) in str(err.value) and "scipy.sparse csc matrix" in str(err.value)


@pytest.mark.parametrize("x, message", [(None, "without an array"), (["a", {}], "holds objects")])
def test_chumpy_without_numbers(tmp_path, x, message):
    blob = pickle_with_chumpy(lambda Ch: {"shapedirs": Ch(np.array(x, dtype=object) if x else None)}, 2)
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(blob)
    with pytest.raises(UnsafePickleError, match=message) as err:
        read_model_arrays(path)
    assert str(path) in str(err.value)


def test_npz_object_member_that_is_not_an_array(tmp_path):
    # An .npy header that says "object array" followed by a pickled dict.
    from numpy.lib import format as npf

    member = tmp_path / "SMPL_NEUTRAL.npy"
    with open(member, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump({"a": 1}, fh, protocol=2)
    with pytest.raises(UnsafePickleError, match="holds a dict, not an array"):
        read_model_arrays(member)


def test_save_plain_npz_leaves_out_objects(tmp_path):
    out = tmp_path / "x.npz"
    dropped = save_plain_npz(out, {"a": np.arange(3), "b": {"k": 1}, "c": [[1], [2, 3]], "d": "lbs"})
    assert sorted(dropped) == ["b", "c"]
    with np.load(out, allow_pickle=False) as z:
        assert sorted(z.files) == ["a", "d"] and str(z["d"]) == "lbs"


# --- motionclip convert-smpl -----------------------------------------------------------------


def official_smpl_file(tmp_path, seed=24):
    truth = make_model("smpl", seed=seed)
    data = {k: v for k, v in truth.items() if not k.startswith("_")}
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(pickle_with_chumpy(lambda Ch: official_like_smpl(Ch, data), 2))
    return path, truth


def test_convert_smpl(tmp_path, capsys):
    src, truth = official_smpl_file(tmp_path)
    out = tmp_path / "models" / "SMPL_NEUTRAL.npz"
    assert main(["convert-smpl", str(src), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "pose_training_info" in printed and f"--smpl-model {out}" in printed
    with np.load(out, allow_pickle=False) as z:  # plain arrays only
        assert np.array_equal(z["shapedirs"], truth["shapedirs"])
        assert np.array_equal(z["J_regressor"], truth["J_regressor"])
        assert "pose_training_info" not in z.files and str(z["bs_style"]) == "lbs"
    check_skeleton(load_skeleton(out), truth, "smpl")
    assert sorted(p.name for p in out.parent.iterdir()) == ["SMPL_NEUTRAL.npz"]  # no partial file left
    # The default output: IN with .npz (an .npz input gets _plain.npz).
    assert main(["convert-smpl", str(src)]) == 0
    assert load_skeleton(src.with_suffix(".npz")).name == "smpl-neutral"
    assert main(["convert-smpl", str(out)]) == 0
    assert (out.parent / "SMPL_NEUTRAL_plain.npz").is_file()


def test_convert_smpl_replaces_only_with_force(tmp_path, capsys):
    src, truth = official_smpl_file(tmp_path)
    out = tmp_path / "SMPL_NEUTRAL.npz"
    out.write_bytes(b"old")
    assert main(["convert-smpl", str(src), str(out)]) == 1
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert main(["convert-smpl", str(src), str(out), "--force"]) == 0
    check_skeleton(load_skeleton(out), truth, "smpl")


def test_convert_smpl_refuses_a_hostile_file(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    src = tmp_path / "SMPL_NEUTRAL.pkl"
    src.write_bytes(pickle.dumps({**plain("smpl", seed=25), "weights": Touch(marker)}, protocol=2))
    out = tmp_path / "SMPL_NEUTRAL.npz"
    assert main(["convert-smpl", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert str(src) in err and "posix.system" in err
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("not npz", "must end in .npz"),
    ("same file", "is the input file itself"),
    ("no type in name", "cannot tell the model type"),
    ("not a model", "could not be read as an SMPL model"),
    ("incomplete", "nothing was written"),
])
def test_convert_smpl_errors(tmp_path, capsys, case, message):
    src, _ = official_smpl_file(tmp_path)
    out = tmp_path / "SMPL_NEUTRAL.npz"
    if case == "missing":
        src = tmp_path / "SMPL_MALE.pkl"
    elif case == "not npz":
        out = tmp_path / "SMPL_NEUTRAL.pkl"
    elif case == "same file":
        src = out = tmp_path / "SMPL_NEUTRAL.npz"
        np.savez(src, **plain("smpl", seed=26))
    elif case == "no type in name":
        out = tmp_path / "body.npz"
    elif case == "not a model":
        src.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    elif case == "incomplete":
        src.write_bytes(pickle.dumps({k: v for k, v in plain("smpl", seed=27).items() if k != "weights"}, protocol=2))
    before = set(tmp_path.iterdir())
    assert main(["convert-smpl", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and (out.name if case in ("not npz", "no type in name") else src.name) in err
    assert set(tmp_path.iterdir()) == before  # nothing written, no partial file
