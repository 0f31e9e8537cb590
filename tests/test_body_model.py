"""load_skeleton through the real `smplx` code path, on synthetic SMPL / SMPL-H / SMPL-X files.

The licensed model files cannot exist on this machine, so each test writes its own: random
numbers in exactly the layout `smplx` reads (v_template, f, J_regressor, weights,
kintree_table, shapedirs, posedirs; SMPL-H / SMPL-X add the hand PCA components and means,
SMPL-X the landmark embedding). The joint regressor puts every joint at a known position, so
the test can check that load_skeleton returns exactly those positions in SMPL's order.
"""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
import torch

pytest.importorskip("smplx")

from motionclip.core.skeleton import (  # noqa: E402
    NEUTRAL_REST_JOINTS,
    NEUTRAL_SOLE_Y,
    NUM_JOINTS,
    PARENTS,
    SMPL_MODEL_ENV,
    BodyModelError,
    load_skeleton,
)

NUM_JOINTS_OF = {"smpl": 24, "smplh": 52, "smplx": 55}
# Where SMPL's 24 joints sit in each model's own joint list (hands: middle-finger knuckle).
SMPL_INDEX = {
    "smpl": list(range(24)),
    "smplh": list(range(22)) + [25, 40],
    "smplx": list(range(22)) + [28, 43],
}
SOLE_Y = -1.75  # the lowest vertex of every synthetic body


def kintree_parents(kind: str) -> list[int]:
    """The parent of each joint, as in the official files (SMPL-X: jaw, eyes, then hands)."""
    if kind == "smpl":
        return list(PARENTS)
    parents = list(PARENTS[:22])
    if kind == "smplx":
        parents += [15, 15, 15]  # jaw, left eye, right eye: children of the head
    for wrist in (20, 21):  # left hand, then right: index, middle, pinky, ring, thumb; 3 joints each
        for _finger in range(5):
            first = len(parents)
            parents += [wrist, first, first + 1]
    assert len(parents) == NUM_JOINTS_OF[kind]
    return parents


def make_model(kind: str, seed: int = 0, num_verts: int = 300, num_faces: int = 400) -> dict:
    """A synthetic model dict for `kind`, and the answers: `_joints` [J, 3] and `_parents`."""
    rng = np.random.default_rng(seed)
    nj = NUM_JOINTS_OF[kind]
    parents = kintree_parents(kind)
    joints = rng.uniform(-0.8, 0.8, size=(nj, 3))
    v = rng.uniform(-0.9, 0.9, size=(num_verts, 3))
    # Joint j is the mean of vertices 2j and 2j+1, placed symmetrically about it.
    reg = np.zeros((nj, num_verts))
    for j in range(nj):
        d = rng.uniform(-0.05, 0.05, size=3)
        v[2 * j], v[2 * j + 1] = joints[j] + d, joints[j] - d
        reg[j, 2 * j] = reg[j, 2 * j + 1] = 0.5
    v[-1, 1] = SOLE_Y  # a vertex that no joint uses is the lowest one
    weights = rng.uniform(0.0, 1.0, size=(num_verts, nj)) ** 4
    weights /= weights.sum(1, keepdims=True)
    kintree = np.array([[4294967295, *parents[1:]], list(range(nj))], dtype=np.int64)  # root: uint32 -1
    num_shape = {"smpl": 10, "smplh": 16, "smplx": 400}[kind]
    data = {
        "v_template": v,
        "f": rng.integers(0, num_verts, size=(num_faces, 3)).astype(np.uint32),
        "J_regressor": reg,
        "weights": weights,
        "kintree_table": kintree,
        "shapedirs": rng.normal(0, 1e-3, size=(num_verts, 3, num_shape)),
        "posedirs": rng.normal(0, 1e-3, size=(num_verts, 3, (nj - 1) * 9)),
    }
    if kind in ("smplh", "smplx"):
        for side in "lr":
            data[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            data[f"hands_mean{side}"] = rng.normal(0, 0.1, size=45)
    if kind == "smplx":
        data["lmk_faces_idx"] = rng.integers(0, num_faces, size=51).astype(np.int64)
        data["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
    data["_joints"] = joints
    data["_parents"] = parents
    return data


def write_model(path, data: dict, *, sparse_regressor: bool = False, drop: tuple[str, ...] = ()):
    payload = {k: val for k, val in data.items() if not k.startswith("_") and k not in drop}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, **payload)
    else:
        if sparse_regressor:  # the official SMPL .pkl keeps J_regressor as a scipy sparse matrix
            import scipy.sparse

            payload["J_regressor"] = scipy.sparse.csc_matrix(payload["J_regressor"])
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=2)
    return path


def check_skeleton(sk, data: dict, kind: str) -> None:
    nj = NUM_JOINTS_OF[kind]
    want = torch.tensor(data["_joints"][SMPL_INDEX[kind]], dtype=torch.float32)
    assert sk.rest_joints.shape == (NUM_JOINTS, 3)
    assert sk.rest_joints.dtype == torch.float32
    torch.testing.assert_close(sk.rest_joints, want, atol=1e-5, rtol=0)
    mesh = sk.mesh
    assert mesh is not None
    assert mesh.vertices.shape == data["v_template"].shape
    torch.testing.assert_close(mesh.vertices, torch.tensor(data["v_template"], dtype=torch.float32))
    assert mesh.faces.shape == data["f"].shape and mesh.faces.dtype == torch.int64
    assert torch.equal(mesh.faces, torch.tensor(data["f"].astype(np.int64)))
    assert mesh.weights.shape == (data["v_template"].shape[0], NUM_JOINTS)
    torch.testing.assert_close(mesh.weights.sum(1), torch.ones(mesh.weights.shape[0]), atol=1e-5, rtol=0)
    assert sk.sole_y == pytest.approx(SOLE_Y, abs=1e-6)
    assert sk.name.startswith(kind + "-")
    # Every weight of a joint outside SMPL's 24 lands on the SMPL joint that stands for it.
    w = torch.tensor(data["weights"], dtype=torch.float32)
    want_w = torch.zeros(w.shape[0], NUM_JOINTS)
    col = {j: i for i, j in enumerate(SMPL_INDEX[kind])}
    parents = data["_parents"]
    for j in range(nj):
        k = j
        while k not in col:
            k = parents[k]
        c = col[k]
        if j not in col and c in (20, 21):  # fingers belong to SMPL's hand joint, not the wrist
            c += 2
        want_w[:, c] += w[:, j]
    torch.testing.assert_close(mesh.weights, want_w, atol=1e-5, rtol=0)


@pytest.fixture(autouse=True)
def _no_env_model(monkeypatch):
    monkeypatch.delenv(SMPL_MODEL_ENV, raising=False)


# --- the real smplx path --------------------------------------------------------------------


MODEL_FILES = {  # test id: (model type, seed, file, the skeleton's name, write_model's options)
    "smplx_npz": ("smplx", 1, "SMPLX_NEUTRAL.npz", "smplx-neutral", {}),
    "smplx_pkl": ("smplx", 2, "SMPLX_MALE.pkl", "smplx-male", {}),  # a file's own name says its gender
    "smpl_pkl_with_sparse_regressor": ("smpl", 3, "SMPL_NEUTRAL.pkl", None, {"sparse_regressor": True}),
    "smpl_official_file_name": ("smpl", 4, "basicmodel_f_lbs_10_207_0_v1.1.0.pkl", "smpl-female", {}),
    # smplx itself reads SMPL only from a pickle; an .npz SMPL file works here too.
    "smpl_npz": ("smpl", 5, "SMPL_NEUTRAL.npz", None, {}),
    "smplh_pkl": ("smplh", 6, "SMPLH_female.pkl", "smplh-female", {}),
}


@pytest.mark.parametrize("kind, seed, file, name, options", MODEL_FILES.values(), ids=MODEL_FILES.keys())
def test_model_file(tmp_path, kind, seed, file, name, options):
    data = make_model(kind, seed=seed)
    path = write_model(tmp_path / file, data, **options)
    sk = load_skeleton(path)
    check_skeleton(sk, data, kind)
    assert sk.source == str(path)
    if name is not None:
        assert sk.name == name


def test_smplh_amass_layout_without_hand_pca(tmp_path):
    # AMASS's "extended SMPL+H" files are smplh/<gender>/model.npz and carry no hand PCA,
    # which plain smplx.create refuses ('Struct' object has no attribute 'hands_componentsl').
    data = make_model("smplh", seed=7)
    path = write_model(tmp_path / "body_models" / "smplh" / "male" / "model.npz", data,
                       drop=("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr"))
    sk = load_skeleton(path)
    check_skeleton(sk, data, "smplh")
    assert sk.name == "smplh-male"
    # ... and its folder, with the gender chosen by argument
    sk = load_skeleton(tmp_path / "body_models", gender="male")
    check_skeleton(sk, data, "smplh")


def test_folder_layouts(tmp_path):
    # smplx.create's layout: <folder>/<type>/<TYPE>_<GENDER>.<ext>, and the type folder itself.
    neutral, female = make_model("smplx", seed=8), make_model("smplx", seed=9)
    write_model(tmp_path / "models" / "smplx" / "SMPLX_NEUTRAL.npz", neutral)
    write_model(tmp_path / "models" / "smplx" / "SMPLX_FEMALE.npz", female)
    check_skeleton(load_skeleton(tmp_path / "models"), neutral, "smplx")
    sk = load_skeleton(tmp_path / "models" / "smplx", gender="female")
    check_skeleton(sk, female, "smplx")
    assert sk.name == "smplx-female"
    assert sk.source == str(tmp_path / "models" / "smplx" / "SMPLX_FEMALE.npz")


def test_env_var_route(tmp_path, monkeypatch):
    data = make_model("smpl", seed=10)
    path = write_model(tmp_path / "SMPL_MALE.pkl", data)
    monkeypatch.setenv(SMPL_MODEL_ENV, str(path))
    sk = load_skeleton()
    check_skeleton(sk, data, "smpl")
    assert sk.source == str(path)


def test_skeleton_from_model_drives_fk(tmp_path):
    data = make_model("smplx", seed=11)
    sk = load_skeleton(write_model(tmp_path / "SMPLX_NEUTRAL.npz", data))
    rot = torch.eye(3).expand(2, NUM_JOINTS, 3, 3)
    pos, _ = sk.forward_kinematics(rot, torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]))
    torch.testing.assert_close(pos[0], sk.rest_joints)
    torch.testing.assert_close(pos[1], sk.rest_joints + torch.tensor([1.0, 2.0, 3.0]))


# --- no model: the built-in neutral skeleton ------------------------------------------------


def test_no_path_no_env_gives_neutral():
    sk = load_skeleton()
    assert sk.name == "neutral" and sk.mesh is None
    torch.testing.assert_close(sk.rest_joints, torch.tensor(NEUTRAL_REST_JOINTS))
    assert sk.sole_y == NEUTRAL_SOLE_Y


def test_empty_env_var_gives_neutral(monkeypatch):
    monkeypatch.setenv(SMPL_MODEL_ENV, "")
    assert load_skeleton().name == "neutral"


# --- errors: each names the file and says what to do ----------------------------------------


def test_missing_path(tmp_path):
    path = tmp_path / "nowhere" / "SMPLX_NEUTRAL.npz"
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and "not found" in msg and SMPL_MODEL_ENV in msg


def test_missing_path_from_env_var(tmp_path, monkeypatch):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    monkeypatch.setenv(SMPL_MODEL_ENV, str(path))
    with pytest.raises(BodyModelError) as err:
        load_skeleton()
    msg = str(err.value)
    assert str(path) in msg and f"from ${SMPL_MODEL_ENV}" in msg


def test_name_without_model_type(tmp_path):
    data = make_model("smpl", seed=12)
    path = write_model(tmp_path / "models" / "body.npz", data)
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and "smplx" in msg and "SMPLX_NEUTRAL.npz" in msg


def test_corrupt_npz(tmp_path):
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    path.write_bytes(b"this is not a model file" * 40)
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and "SMPL-X" in msg


def test_corrupt_pkl(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    assert str(path) in str(err.value)


def test_truncated_npz(tmp_path):
    path = write_model(tmp_path / "SMPLX_NEUTRAL.npz", make_model("smplx", seed=13))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    assert str(path) in str(err.value)


def test_model_missing_a_key(tmp_path):
    path = write_model(tmp_path / "SMPLX_NEUTRAL.npz", make_model("smplx", seed=14), drop=("J_regressor",))
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and "J_regressor" in msg


def test_wrong_model_type_for_name(tmp_path):
    # An SMPL body (24 joints) saved under an SMPL-X name.
    path = write_model(tmp_path / "SMPLX_NEUTRAL.npz", make_model("smpl", seed=15))
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    assert str(path) in str(err.value)


def test_wrong_extension(tmp_path):
    path = tmp_path / "SMPLX_NEUTRAL.obj"
    path.write_text("v 0 0 0\n")
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and ".npz" in msg


def test_chumpy_pickle(tmp_path):
    # The original SMPL downloads pickle chumpy arrays; they are read as their arrays without
    # chumpy (tests/test_safe_loading.py). A chumpy object that holds no array is named and refused.
    fake = types.ModuleType("chumpy")

    class Ch:  # stands in for chumpy.Ch while pickling
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy", "Ch"
    fake.Ch = Ch
    saved = sys.modules.get("chumpy")
    sys.modules["chumpy"] = fake
    try:
        payload = {k: val for k, val in make_model("smpl", seed=16).items() if not k.startswith("_")}
        payload["shapedirs"] = Ch()
        blob = pickle.dumps(payload, protocol=2)
    finally:
        if saved is None:
            del sys.modules["chumpy"]
        else:
            sys.modules["chumpy"] = saved
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(blob)
    with pytest.raises(BodyModelError) as err:
        load_skeleton(path)
    msg = str(err.value)
    assert str(path) in msg and "'shapedirs' is a chumpy object without an array" in msg


def test_folder_without_model(tmp_path):
    (tmp_path / "smplx").mkdir()
    with pytest.raises(BodyModelError) as err:
        load_skeleton(tmp_path, gender="female")
    msg = str(err.value)
    assert str(tmp_path) in msg and "FEMALE" in msg


def test_bad_gender(tmp_path):
    path = write_model(tmp_path / "SMPLX_NEUTRAL.npz", make_model("smplx", seed=17))
    with pytest.raises(BodyModelError) as err:
        load_skeleton(tmp_path, gender="robot")
    assert "robot" in str(err.value) and "neutral" in str(err.value)
    assert load_skeleton(path).name == "smplx-neutral"
