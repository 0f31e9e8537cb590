"""SMPL skeleton, forward kinematics and the Motion container."""

import math

import pytest
import torch

from motionclip.core import rotations as R
from motionclip.core.motion import Motion, MotionError
from motionclip.core.skeleton import JOINT_NAMES, MIRROR, PARENTS, forward_kinematics, neutral_skeleton

SK = neutral_skeleton()


def random_motion(frames: int = 40, fps: float = 30.0, seed: int = 0, scale: float = 0.6) -> Motion:
    """A smooth random motion: sinusoidal joint rotations and a drifting root."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None] / fps
    amp = torch.rand(1, 24, 3, generator=g) * scale
    freq = 0.5 + torch.rand(1, 24, 3, generator=g) * 2
    phase = torch.rand(1, 24, 3, generator=g) * 6.28
    aa = amp * torch.sin(2 * math.pi * freq * t + phase)
    trans = torch.cumsum(torch.randn(frames, 3, generator=g) * 0.01, 0)
    return Motion.from_axis_angle(aa, trans, fps)


def naive_fk(rotmats, rest, trans):
    pos, glob = [None] * 24, [None] * 24
    for j, p in enumerate(PARENTS):
        if p < 0:
            glob[j] = rotmats[..., j, :, :]
            pos[j] = rest[j] + trans
        else:
            glob[j] = glob[p] @ rotmats[..., j, :, :]
            pos[j] = pos[p] + (glob[p] @ (rest[j] - rest[p]))
    return torch.stack(pos, -2), torch.stack(glob, -3)


def test_skeleton_constants() -> None:
    assert len(JOINT_NAMES) == 24 and len(PARENTS) == 24
    assert PARENTS == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
    assert [JOINT_NAMES[m] for m in MIRROR][:3] == ["Pelvis", "R_Hip", "L_Hip"]
    rest = SK.rest_joints
    height = float(rest[:, 1].max() - SK.sole_y)
    assert 1.5 < height < 1.8  # head joint above the soles
    assert rest[JOINT_NAMES.index("L_Hip"), 0] > 0  # left is +X
    assert rest[JOINT_NAMES.index("L_Wrist"), 0] > 0.6  # T-pose: arms out along X


def test_fk_rest_pose_gives_rest_joints() -> None:
    eye = torch.eye(3).expand(24, 3, 3)
    pos, glob = SK.forward_kinematics(eye, torch.zeros(3))
    assert torch.allclose(pos, SK.rest_joints, atol=1e-6)
    assert torch.allclose(glob, eye)


def test_fk_matches_a_naive_loop_batched() -> None:
    m = random_motion(frames=7)
    rot = m.rotmats().reshape(7, 24, 3, 3)
    pos, glob = forward_kinematics(rot, SK.rest_joints, m.trans)
    ref_pos, ref_glob = naive_fk(rot, SK.rest_joints, m.trans[:, None, :].squeeze(1))
    assert torch.allclose(pos, ref_pos, atol=1e-5)
    assert torch.allclose(glob, ref_glob, atol=1e-6)
    # bone lengths are preserved
    par = torch.tensor([0, *PARENTS[1:]])
    assert torch.allclose((pos - pos[:, par]).norm(dim=-1), (SK.rest_joints - SK.rest_joints[par]).norm(dim=-1), atol=1e-5)


def test_fk_is_differentiable() -> None:
    aa = torch.zeros(2, 24, 3, requires_grad=True)
    pos, _ = forward_kinematics(R.axis_angle_to_matrix(aa), SK.rest_joints)
    pos[:, JOINT_NAMES.index("L_Wrist")].sum().backward()
    assert torch.isfinite(aa.grad).all() and aa.grad.abs().sum() > 0


def test_motion_save_load_is_lossless(tmp_path) -> None:
    m = random_motion()
    m.betas = torch.randn(10)
    m.meta = {"texts": ["a person waves"], "nested": {"a": 1}}
    path = m.save(tmp_path / "clip.motion")
    back = Motion.load(path)
    assert torch.equal(back.quats, m.quats) and torch.equal(back.trans, m.trans) and torch.equal(back.betas, m.betas)
    assert back.fps == m.fps and back.meta == m.meta


def test_motion_load_rejects_garbage(tmp_path) -> None:
    bad = tmp_path / "bad.motion"
    bad.write_bytes(b"not a zip")
    with pytest.raises(MotionError, match="bad.motion"):
        Motion.load(bad)


@pytest.mark.parametrize("bad, match", [
    (dict(quats=torch.zeros(5, 24, 4)), "zero-length"),
    (dict(quats=torch.full((5, 24, 4), float("nan"))), "NaN"),
    (dict(quats=torch.ones(5, 23, 4)), r"\[frames, 24, 4\]"),
    (dict(trans=torch.zeros(4, 3)), "trans"),
    (dict(fps=0.0), "fps"),
])
def test_motion_validation_names_the_field(bad, match) -> None:
    base = dict(quats=torch.tensor([1.0, 0, 0, 0]).repeat(5, 24, 1), trans=torch.zeros(5, 3), fps=30.0)
    base.update(bad)
    with pytest.raises(MotionError, match=match):
        Motion(**base)


def test_resample_keeps_duration_and_round_trips() -> None:
    m = random_motion(frames=61, fps=30.0, scale=0.3)
    up = m.resample(60.0)
    assert up.num_frames == 121 and up.fps == 60.0
    assert math.isclose(up.duration, m.duration)
    back = up.resample(30.0)
    assert back.num_frames == m.num_frames
    assert torch.allclose(R.quat_to_matrix(back.quats), R.quat_to_matrix(m.quats), atol=1e-5)
    # in-between frames interpolate the rotation: the angle to both neighbours is half the step
    a, mid, b = (R.quat_to_matrix(q) for q in (m.quats[10], up.quats[21], m.quats[11]))
    d1 = R.rotation_angle(a.transpose(-1, -2) @ mid)
    d2 = R.rotation_angle(mid.transpose(-1, -2) @ b)
    assert torch.allclose(d1, d2, atol=1e-4)
    assert torch.allclose(up.trans[21], (m.trans[10] + m.trans[11]) / 2, atol=1e-6)


def test_resample_to_an_unrelated_rate() -> None:
    m = random_motion(frames=100, fps=120.0)
    r = m.resample(30.0)
    assert r.num_frames == 25 and torch.allclose(r.quats[5], m.quats[20], atol=1e-6)
    r2 = m.resample(23.976)
    assert abs(r2.duration - m.duration) < 1 / 23.976


def test_canonicalize_faces_z_starts_at_origin_on_floor() -> None:
    m = random_motion()
    # turn and move the whole clip away from the origin first
    turn = R.axis_angle_to_quat(torch.tensor([0.0, 2.0, 0.0]))
    m.quats[:, 0] = R.quat_mul(turn.expand(m.num_frames, 4), m.quats[:, 0])
    m.trans += torch.tensor([3.0, 1.0, -2.0])
    c = m.canonicalize(SK)
    j = c.joints(SK)
    f = c.facing(SK)[0]
    assert torch.allclose(f, torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)
    assert torch.allclose(j[0, 0, [0, 2]], torch.zeros(2), atol=1e-5)
    gap = float(SK.rest_joints[:, 1].min() - SK.sole_y)
    assert abs(float(j[..., 1].min()) - gap) < 1e-5
    # the shape of the motion is unchanged: relative joint distances agree
    j0 = m.joints(SK)
    assert torch.allclose(torch.cdist(j[5], j[5]), torch.cdist(j0[5], j0[5]), atol=1e-5)


def test_mirror_swaps_sides_and_twice_is_identity() -> None:
    m = random_motion()
    mm = m.mirror(SK)
    j, jm = m.joints(SK), mm.joints(SK)
    flip = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(jm, j[:, list(MIRROR)] * flip, atol=1e-5)
    back = mm.mirror(SK)
    assert torch.allclose(back.joints(SK), j, atol=1e-5) and back.meta.get("mirrored") is False


def test_crop_and_windows() -> None:
    m = random_motion(frames=100)
    c = m.crop(10, 30)
    assert c.num_frames == 30 and torch.equal(c.quats, m.quats[10:40])
    wins = list(m.windows(40, 20))
    assert [w.num_frames for w in wins] == [40, 40, 40, 40]
    with pytest.raises(MotionError, match="outside"):
        m.crop(90, 20)
