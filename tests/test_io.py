"""Motion files in and out: round trips, retargeting of any BVH variant, and clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from motionclip.core import rotations as R
from motionclip.core.errors import MotionClipError
from motionclip.core.io import load_source_motion, save_motion
from motionclip.core.io.bvh import BVHError, read_bvh
from motionclip.core.io.retarget import Mapping, RetargetError, hinge_agreement, presets, retarget
from motionclip.core.motion import Motion
from motionclip.core.skeleton import JOINT_NAMES, PARENTS, neutral_skeleton

from test_skeleton_motion import random_motion

SK = neutral_skeleton()


def rot_err_deg(a: Motion, b: Motion) -> float:
    d = R.quat_to_matrix(a.quats).transpose(-1, -2) @ R.quat_to_matrix(b.quats)
    return float(torch.rad2deg(R.rotation_angle(d)).max())


def test_bvh_export_import_round_trip(tmp_path) -> None:
    m = random_motion(frames=50, scale=1.2)
    save_motion(m, tmp_path / "a.bvh")
    back, report = load_source_motion(tmp_path / "a.bvh")
    assert report.mapping == "smpl" and report.mapped_joints == 24
    assert back.num_frames == m.num_frames and back.fps == m.fps
    assert rot_err_deg(back, m) < 1e-3
    assert torch.allclose(back.trans, m.trans, atol=1e-5)
    assert report.bone_dir_err_deg < 1e-3 and report.facing_err_deg < 1e-3


def test_amass_export_import_round_trip(tmp_path) -> None:
    m = random_motion(frames=30, scale=1.5)
    m.betas = torch.linspace(-1, 1, 10)
    save_motion(m, tmp_path / "a.npz")
    data = np.load(tmp_path / "a.npz")
    assert data["poses"].shape == (30, 72) and data["trans"].shape == (30, 3) and float(data["mocap_framerate"]) == 30.0
    back, _ = load_source_motion(tmp_path / "a.npz")
    assert rot_err_deg(back, m) < 1e-3
    assert torch.allclose(back.trans, m.trans, atol=1e-5) and torch.allclose(back.betas, m.betas)
    # AMASS is Z up: the pelvis (body-frame rest joint J0 + trans) is as high there as in our Y-up world
    j0 = SK.rest_joints[0]
    assert np.allclose(data["trans"][:, 2] + float(j0[2]), (m.trans[:, 1] + j0[1]).numpy(), atol=1e-5)


def test_amass_smplh_poses_are_trimmed_to_the_body(tmp_path) -> None:
    T = 12
    poses = np.random.default_rng(0).normal(0, 0.3, (T, 156))
    np.savez(tmp_path / "h.npz", poses=poses, trans=np.zeros((T, 3)), mocap_framerate=120.0, betas=np.zeros(16))
    m, _ = load_source_motion(tmp_path / "h.npz", up="y")
    assert m.fps == 120.0
    assert torch.allclose(m.axis_angle()[:, :22].reshape(T, -1).double(),
                          R.quat_to_axis_angle(R.axis_angle_to_quat(torch.tensor(poses[:, :66]).reshape(T, 22, 3))).reshape(T, -1),
                          atol=1e-5)
    assert torch.allclose(m.axis_angle()[:, 22:], torch.zeros(T, 2, 3), atol=1e-6)  # SMPL hands at rest


def test_json_and_motion_round_trip(tmp_path) -> None:
    m = random_motion(frames=20)
    for name in ("a.json", "a.motion"):
        save_motion(m, tmp_path / name)
        back, _ = load_source_motion(tmp_path / name)
        assert rot_err_deg(back, m) < 1e-3 and torch.allclose(back.trans, m.trans, atol=1e-5)
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["joint_names"] == list(JOINT_NAMES) and d["parents"] == list(PARENTS) and len(d["rotations"][0]) == 24


def test_humanml3d_export(tmp_path) -> None:
    m = random_motion(frames=61, fps=30.0)
    save_motion(m, tmp_path / "a.npy")
    j = np.load(tmp_path / "a.npy")
    assert j.shape == (41, 22, 3)  # 2 s at 20 fps
    assert abs(j[0, 0, 0]) < 1e-5 and abs(j[0, 0, 2]) < 1e-5  # starts at the origin


# --- any BVH variant retargets back to the same motion ------------------------------------------------

def write_foreign_bvh(m: Motion, path: Path, *, prefix: str = "jnt_", up: str = "y", unit: float = 1.0,
                      order: str = "ZXY", six: bool = False, rest_pose: dict[str, list[float]] | None = None) -> None:
    """Write `m` as a BVH of a different-looking rig: renamed joints, another channel order, cm,
    Z up, 6 channels on every joint, and a rest pose that is not the T-pose."""
    rest = SK.rest_joints.double()
    P = torch.eye(3, dtype=torch.float64).repeat(24, 1, 1)  # local rotations of the rig's rest pose
    for name, target in (rest_pose or {}).items():
        # bend the joint's bone towards `target` (a pure swing, as when a rig is posed by hand)
        j = JOINT_NAMES.index(name)
        child = PARENTS.index(j)
        P[j] = R.rotation_between(rest[child] - rest[j], torch.tensor(target, dtype=torch.float64))
    pos_p, glob_p = SK.to(torch.float64).forward_kinematics(P, torch.zeros(3, dtype=torch.float64))
    rot = m.rotmats().double()
    pos, glob = SK.to(torch.float64).forward_kinematics(rot, m.trans.double())
    Gs = glob @ glob_p.transpose(-1, -2)[None]  # the rig's globals: same bones, rest pose P
    par = [0, *PARENTS[1:]]
    L = Gs[:, par].transpose(-1, -2) @ Gs
    L[:, 0] = Gs[:, 0]
    C = torch.eye(3, dtype=torch.float64) if up == "y" else torch.tensor([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], dtype=torch.float64)
    L = C @ L @ C.T
    offsets = (pos_p - pos_p[par]) @ C.T * unit
    offsets[0] = 0
    root = pos[:, 0] @ C.T * unit
    euler = torch.rad2deg(R.matrix_to_euler(L, order))
    children = {j: [c for c, p in enumerate(PARENTS) if p == j] for j in range(24)}
    rot_ch = " ".join(f"{a}rotation" for a in order)
    lines = ["HIERARCHY"]
    data_cols: list[torch.Tensor] = []

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {prefix}{JOINT_NAMES[j]}")
        lines.append(pad + "{")
        o = offsets[j]
        lines.append(f"{pad}\tOFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}")
        if j == 0 or six:
            lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_ch}")
            data_cols.append(root if j == 0 else offsets[j].expand(m.num_frames, 3))
        else:
            lines.append(f"{pad}\tCHANNELS 3 {rot_ch}")
        data_cols.append(euler[:, j])
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}\tEnd Site", pad + "\t{", f"{pad}\t\tOFFSET 0 {0.05 * unit} 0", pad + "\t}"])
        lines.append(pad + "}")

    emit(0, 0)
    data = torch.cat(data_cols, dim=1).numpy()
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in data)
    path.write_text("\n".join(lines) + f"\nMOTION\nFrames:\t{m.num_frames}\nFrame Time: {1 / m.fps:.7f}\n{body}\n")


def mapping_for(prefix: str, **kw) -> Mapping:
    return Mapping.from_dict({"name": "test-rig", "joints": {n: prefix + n for n in JOINT_NAMES}, **kw})


@pytest.mark.parametrize("variant", [
    dict(),
    dict(order="XZY"),
    dict(up="z"),
    dict(unit=100.0),
    dict(six=True, order="YXZ"),
    dict(up="z", unit=100.0, six=True, order="ZYX"),
])
def test_retarget_recovers_the_motion_from_any_bvh_variant(tmp_path, variant) -> None:
    m = random_motion(frames=30, scale=1.0)
    path = tmp_path / "rig.bvh"
    write_foreign_bvh(m, path, **variant)
    back, report = load_source_motion(path, mapping=mapping_for("jnt_", up=variant.get("up", "y")))
    assert rot_err_deg(back, m) < 0.01
    assert torch.allclose(back.joints(SK), m.joints(SK), atol=2e-4)
    assert report.bone_dir_err_deg < 0.01 and abs(report.scale - 1 / variant.get("unit", 1.0)) < 1e-6


def test_retarget_handles_a_rest_pose_that_is_not_a_t_pose(tmp_path) -> None:
    """A rig whose rest pose has the arms down, elbows and knees bent: bones and twist carry over."""
    m = random_motion(frames=30, scale=0.8)
    rest_pose = {"L_Shoulder": [0.3, -1.0, 0.1], "R_Shoulder": [-0.3, -1.0, 0.1], "L_Elbow": [0.5, -1.0, 0.6],
                 "R_Elbow": [-0.5, -1.0, 0.6], "L_Knee": [0.0, -1.0, -0.4], "R_Knee": [0.0, -1.0, -0.4]}
    path = tmp_path / "apose.bvh"
    write_foreign_bvh(m, path, rest_pose=rest_pose, unit=100.0)
    back, report = load_source_motion(path, mapping=mapping_for("jnt_"))
    assert rot_err_deg(back, m) < 0.01
    assert torch.allclose(back.joints(SK), m.joints(SK), atol=2e-4)


def test_retarget_with_fewer_joints_keeps_bone_directions(tmp_path) -> None:
    """A rig mapped without collars, Spine2, hands, toes: the limbs still point where the source's do
    (the unmapped joints' own motion is lost, which the reported error shows)."""
    m = random_motion(frames=20)
    path = tmp_path / "rig.bvh"
    write_foreign_bvh(m, path)
    drop = {"L_Collar", "R_Collar", "Spine2", "L_Hand", "R_Hand", "L_Foot", "R_Foot"}
    mapping = Mapping.from_dict({"joints": {n: "jnt_" + n for n in JOINT_NAMES if n not in drop}})
    back, report = load_source_motion(path, mapping=mapping)
    assert report.mapped_joints == 17 and set(report.unmapped) == drop
    assert 0.1 < report.bone_dir_err_deg < 5.0
    for a, b in (("L_Shoulder", "L_Elbow"), ("L_Elbow", "L_Wrist"), ("R_Hip", "R_Knee"), ("R_Knee", "R_Ankle")):
        ia, ib = JOINT_NAMES.index(a), JOINT_NAMES.index(b)
        d1 = back.joints(SK)[:, ib] - back.joints(SK)[:, ia]
        d2 = m.joints(SK)[:, ib] - m.joints(SK)[:, ia]
        assert float(torch.rad2deg(R.angle_between(d1, d2)).max()) < 0.05


def test_mapping_presets_load_and_detect() -> None:
    p = presets()
    assert {"cmu", "bandai_namco", "lafan1", "mixamo", "deepmimic", "smpl"} <= set(p)
    names = ["mixamorig:Hips", "mixamorig:LeftUpLeg", "mixamorig:RightUpLeg", "mixamorig:Spine"]
    assert p["mixamo"].resolve(names)["Pelvis"] == 0


# --- bad input --------------------------------------------------------------------------------------------

@pytest.fixture
def good_bvh(tmp_path) -> Path:
    path = tmp_path / "good.bvh"
    save_motion(random_motion(frames=10), path)
    return path


def _edit(src: Path, dst: Path, fn) -> Path:
    dst.write_text(fn(src.read_text()))
    return dst


@pytest.mark.parametrize("edit, match", [
    (lambda t: t[: t.index("MOTION") - 40], r"line \d+: .*truncated|missing .* closing brace"),
    (lambda t: t.replace("Frames: 10", "Frames: 12"), "Frames: 12 but the file has only 10"),
    (lambda t: t.replace("Frames: 10", "Frames: 9"), "--extra-frames ignore"),
    (lambda t: t.replace("CHANNELS 3 Zrotation Yrotation Xrotation", "CHANNELS 3 Zrotation Yrotation", 1), r"line \d+"),
    (lambda t: t.rsplit("\n", 3)[0] + "\n" + " ".join(t.rsplit("\n", 3)[1].split()[:-5]) + "\n" + t.rsplit("\n", 3)[2] + "\n",
     r"line \d+|values"),
    (lambda t: t.replace(t.rsplit("\n", 2)[1].split()[3], "nan", 1), r"NaN|finite"),
    (lambda t: t.replace("OFFSET", "OFFSTE", 1), r"line \d+: unexpected 'OFFSTE'"),
    (lambda t: "garbage\n" + t, "not a BVH file"),
])
def test_malformed_bvh_gets_a_clear_error(tmp_path, good_bvh, edit, match) -> None:
    bad = _edit(good_bvh, tmp_path / "bad.bvh", edit)
    with pytest.raises(MotionClipError, match=match) as exc:
        load_source_motion(bad)
    assert "bad.bvh" in str(exc.value)


def test_extra_frames_can_be_ignored(tmp_path, good_bvh) -> None:
    bad = _edit(good_bvh, tmp_path / "extra.bvh", lambda t: t.replace("Frames: 10", "Frames: 9"))
    m, _ = load_source_motion(bad, extra_frames="ignore")
    assert m.num_frames == 9


def test_unknown_skeleton_asks_for_a_mapping(tmp_path) -> None:
    m = random_motion(frames=5)
    path = tmp_path / "odd.bvh"
    write_foreign_bvh(m, path, prefix="zz")
    with pytest.raises(RetargetError, match=r"odd.bvh: no mapping preset matches .*--mapping"):
        load_source_motion(path)


def test_bad_mapping_file_is_named(tmp_path) -> None:
    f = tmp_path / "map.json"
    f.write_text('{"joints": {"Pelvis": "a", "Elbow": "b"}}')
    with pytest.raises(RetargetError, match=r"map.json: 'Elbow' is not an SMPL joint"):
        Mapping.load(f)
    f.write_text('{"joints": {"Pelvis": "a"}}')
    with pytest.raises(RetargetError, match="must name L_Hip, R_Hip"):
        Mapping.load(f)


@pytest.mark.parametrize("arrays, match", [
    (dict(trans=np.zeros((3, 3)), mocap_framerate=30.0), "no 'poses'"),
    (dict(poses=np.zeros((3, 10)), trans=np.zeros((3, 3)), mocap_framerate=30.0), r"shape \[3, 10\]"),
    (dict(poses=np.zeros((3, 72)), trans=np.zeros((2, 3)), mocap_framerate=30.0), "'trans' has shape"),
    (dict(poses=np.full((3, 72), np.nan), trans=np.zeros((3, 3)), mocap_framerate=30.0), "NaN"),
    (dict(poses=np.zeros((3, 72)), trans=np.zeros((3, 3))), "frame rate"),
])
def test_bad_amass_npz(tmp_path, arrays, match) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(MotionClipError, match=match) as exc:
        load_source_motion(tmp_path / "bad.npz")
    assert "bad.npz" in str(exc.value)


def test_bad_deepmimic_clip(tmp_path) -> None:
    (tmp_path / "clip.txt").write_text(json.dumps({"Loop": "none", "Frames": [[0.03] * 44, [0.03] * 40]}))
    with pytest.raises(MotionClipError, match=r"clip.txt: Frames\[1\] has 40 values"):
        load_source_motion(tmp_path / "clip.txt")


def test_unknown_extension(tmp_path) -> None:
    (tmp_path / "a.fbx").write_text("x")
    with pytest.raises(MotionClipError, match="cannot tell the format"):
        load_source_motion(tmp_path / "a.fbx")
    with pytest.raises(MotionClipError, match="cannot write"):
        save_motion(random_motion(frames=3), tmp_path / "a.fbx")
