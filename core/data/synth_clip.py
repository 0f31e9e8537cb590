"""Synthetic motions: the clip being built (`_Clip`), easing curves and posture noise.

Each action (synth_actions.py) poses a `_Clip` from per-clip tempo, amplitude, side, direction,
duration and posture noise; forward kinematics then puts the feet on the floor (the root follows
the feet in contact, so feet neither float nor slide much).

Conventions of the neutral skeleton (checked by FK in tests/test_synth.py): knees flex about +X,
hips flex (thigh forward) about -X, ankles point the toes down about +X, the left elbow flexes
about -Y, the left shoulder lowers the T-pose arm about -Z, spine and neck bend forward about +X
and turn left about +Y, root yaw about +Y turns the body to its left (+X). The right side mirrors
the left: (x, y, z) -> (x, -y, -z).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import rotations as R
from ..errors import MotionClipError
from ..skeleton import JOINT_NAMES, neutral_skeleton


class SynthError(MotionClipError):
    """A bad action name or generation parameter."""

J = {n: i for i, n in enumerate(JOINT_NAMES)}
SIDES = ("left", "right")
_SKEL = neutral_skeleton(torch.float64)
_REST = _SKEL.rest_joints.numpy()
_HEEL = float(_REST[J["L_Ankle"], 1] - _REST[J["L_Foot"], 1])  # ankle height above the toe joint, flat foot
_HANG = -1.25  # left shoulder Z rotation that lowers the T-pose arm to hang ~5 degrees out from the body
_MIRROR_AA = np.array([1.0, -1.0, -1.0])
_ARM_KEYS = ("flex", "abd", "hz", "twist", "elbow", "collar")


# --- easing -----------------------------------------------------------------------------------------

def _ss(x):
    """Smoothstep of x clipped to [0, 1]: zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _ramp(t, t0, t1):
    return _ss((t - t0) / max(t1 - t0, 1e-6))


def _hold(t, t0, t1, rise):
    """0 -> 1 over [t0, t0 + rise], 1 until t1 - rise, back to 0 at t1."""
    return _ramp(t, t0, t0 + rise) * (1.0 - _ramp(t, t1 - rise, t1))


def _bump(u):
    """sin^2 bump on [0, 1], zero (with zero slope) outside."""
    return np.where((u > 0) & (u < 1), np.sin(np.pi * np.clip(u, 0, 1)) ** 2, 0.0)


def _cycles(t, t0, period, n):
    """Phase u in [0, 1) within each of n repetitions starting at t0; -1 outside them."""
    k = np.floor((t - t0) / period)
    return np.where((k >= 0) & (k < n), (t - t0) / period - k, -1.0)


def _smooth(x: np.ndarray) -> np.ndarray:
    """Binomial [1 4 6 4 1] / 16 filter along time; odd reflection at the ends keeps straight lines straight."""
    p = np.concatenate([2 * x[:1] - x[2:0:-1], x, 2 * x[-1:] - x[-2:-4:-1]])
    return (p[:-4] + 4 * p[1:-3] + 6 * p[2:-2] + 4 * p[3:-1] + p[4:]) / 16


def _mat(axis: int, angle) -> np.ndarray:
    """Rotation matrices [..., 3, 3] about one coordinate axis."""
    angle = np.asarray(angle, dtype=np.float64)
    i, k = (axis + 1) % 3, (axis + 2) % 3
    m = np.zeros(angle.shape + (3, 3))
    m[..., axis, axis] = 1.0
    m[..., i, i] = m[..., k, k] = np.cos(angle)
    m[..., k, i], m[..., i, k] = np.sin(angle), -np.sin(angle)
    return m


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angle of rotation a applied after b, batched [..., 3]."""
    q = R.quat_mul(R.axis_angle_to_quat(torch.from_numpy(a)), R.axis_angle_to_quat(torch.from_numpy(b)))
    return R.quat_to_axis_angle(q).numpy()


# --- a clip being built -------------------------------------------------------------------------------

class _Clip:
    """Per-clip parameters and the pose being built; actions add to it."""

    def __init__(self, rng: np.random.Generator, fps: float, duration: float, tempo: float, amp: float,
                 side: str, direction: str | None):
        self.rng, self.fps, self.tempo, self.amp, self.side, self.direction = rng, fps, tempo, amp, side, direction
        self.other = "right" if side == "left" else "left"
        self.T = int(round(duration * fps)) + 1
        self.dur = (self.T - 1) / fps
        self.t = np.arange(self.T) / fps
        self.A = np.zeros((self.T, 24, 3))   # local axis-angle
        self.yaw = np.zeros(self.T)          # heading (about +Y, positive turns left), on top of the root
        self.air = np.zeros(self.T)          # pelvis height above what the feet allow (flight)
        self.shift = np.zeros((self.T, 2))   # extra root travel on the floor (x, z)
        self.lock = "both"                   # what holds the floor: both (feet) | stance | left | right | none
        self.contact: np.ndarray | None = None  # [T, 2] foot contact weights (left, right) for "stance"
        self.fields: dict[str, str] = {}     # extra text fields
        self.info: dict[str, Any] = {}       # extra meta
        self.arm = {s: {k: np.zeros(self.T) for k in _ARM_KEYS} for s in SIDES}
        self.hang = {s: _HANG + rng.normal(0, 0.03) for s in SIDES}
        for s in SIDES:
            self.arm[s]["elbow"] += rng.uniform(0.12, 0.35)  # relaxed arms are slightly bent

    def sgn(self, side: str) -> float:  # +1 left, -1 right
        return 1.0 if side == "left" else -1.0

    def rot(self, joint: str, x=0.0, y=0.0, z=0.0, side: str | None = None) -> None:
        """Add a rotation (axis-angle, added: fine for small or single-axis angles); `side` mirrors the
        left-side convention onto the right."""
        if side is not None:
            joint = ("L_" if side == "left" else "R_") + joint
            y, z = (y, z) if side == "left" else (-np.asarray(y), -np.asarray(z))
        v = np.stack(np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float), np.asarray(z, float)), -1)
        self.A[:, J[joint]] += np.broadcast_to(v, (self.T, 3))

    def leg(self, side: str | None, flex=0.0, knee=0.0, ankle=0.0, abd=0.0) -> None:
        """Hip flexion (thigh forward), knee flexion, ankle plantarflexion (toes down), hip abduction
        (outward), of one side or both for None."""
        for s in (side,) if side else SIDES:
            self.rot("Hip", x=-np.asarray(flex), z=abd, side=s)
            self.rot("Knee", x=knee, side=s)
            self.rot("Ankle", x=ankle, side=s)

    def head(self, x=0.0, y=0.0, neck=0.6) -> None:
        """Nod (x, forward) and turn (y, left) the head, shared between neck and head joints."""
        self.rot("Neck", x=neck * np.asarray(x), y=neck * np.asarray(y))
        self.rot("Head", x=(1 - neck) * np.asarray(x), y=(1 - neck) * np.asarray(y))

    def spine(self, pitch=0.0, yaw=0.0, roll=0.0) -> None:
        """Bend the trunk forward (pitch), turn it left (yaw), lean it to the right (roll, about +Z)."""
        for j, w in (("Spine1", 0.4), ("Spine2", 0.3), ("Spine3", 0.3)):
            self.rot(j, x=w * np.asarray(pitch), y=w * np.asarray(yaw), z=w * np.asarray(roll))

    def arms(self, side: str | None, **kw) -> None:
        """Add to arm parameters (radians) of one side, or both for None: flex (forward), abd (up sideways,
        from hanging), hz (across the body), twist (about the upper arm), elbow (flexion), collar (raise)."""
        for s in (side,) if side else SIDES:
            for k, v in kw.items():
                self.arm[s][k] = self.arm[s][k] + v

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Local axis-angle [T, 24, 3] and root translation [T, 3], feet on the floor."""
        A = self.A.copy()
        for s in SIDES:
            p, pre = self.arm[s], ("L_" if s == "left" else "R_")
            # Left-arm frame: twist about the bone, lower/raise sideways, swing forward, then across the body.
            M = _mat(1, -p["hz"]) @ _mat(0, -p["flex"]) @ _mat(2, self.hang[s] + p["abd"]) @ _mat(0, p["twist"])
            aa = R.matrix_to_axis_angle(torch.from_numpy(M)).numpy() * (1.0 if s == "left" else _MIRROR_AA)
            A[:, J[pre + "Shoulder"]] = _compose(A[:, J[pre + "Shoulder"]], aa)
            A[:, J[pre + "Elbow"], 1] += -self.sgn(s) * np.maximum(p["elbow"], 0.0)  # never hyperextended
            A[:, J[pre + "Collar"], 2] += self.sgn(s) * p["collar"]
        A[:, 0] = _compose(np.stack([np.zeros(self.T), self.yaw, np.zeros(self.T)], -1), A[:, 0])
        j = _SKEL.forward_kinematics(R.axis_angle_to_matrix(torch.from_numpy(A)))[0].numpy()  # root at rest
        lows = np.stack([np.minimum(j[:, J[p + "Foot"], 1], j[:, J[p + "Ankle"], 1] - _HEEL) for p in ("L_", "R_")], -1)
        ank = np.stack([j[:, J["L_Ankle"]], j[:, J["R_Ankle"]]], 1)[..., [0, 2]]  # [T, 2 feet, (x, z)]
        trans = np.zeros((self.T, 3))
        trans[:, 1] = -lows.min(1) + self.air  # the lowest foot on the floor
        if self.lock == "both":  # feet planted: the pelvis moves over them (squat, bow, sit)
            trans[:, [0, 2]] = -(ank.mean(1) - ank[:1].mean(1))
        elif self.lock in SIDES:
            k = SIDES.index(self.lock)
            trans[:, [0, 2]] = -(ank[:, k] - ank[:1, k])
        elif self.lock == "stance":  # locomotion: feet in contact do not slide, the body travels over them
            w = self.contact
            on = w.sum(1) > 0.2
            # Height from the feet in contact (a foot leaving the floor must not pull the body down),
            # bridged over flight phases, never letting a foot sink below the floor.
            y = -(w * lows).sum(1) / np.maximum(w.sum(1), 1e-9)
            y = np.interp(self.t, self.t[on], y[on]) if on.any() else -lows.min(1)
            trans[:, 1] = np.maximum(y + self.air, -lows.min(1))
            ws = w[1:] + w[:-1]
            v = -(ws[..., None] * np.diff(ank, axis=0)).sum(1) / np.maximum(ws.sum(1), 1e-9)[:, None]
            ok = ws.sum(1) > 0.2
            if ok.any():  # flight: carry the body across at the speed it had
                v = np.stack([np.interp(np.arange(self.T - 1), np.flatnonzero(ok), v[ok, k]) for k in (0, 1)], -1)
            trans[1:, [0, 2]] = np.cumsum(v, axis=0)
            trans = _smooth(trans)  # contact changes leave small kinks
        trans[:, [0, 2]] += self.shift
        return A, trans


def _posture_noise(c: _Clip) -> None:
    """Small per-clip differences in posture, plus breathing sway, so no two clips share a pose."""
    r = c.rng
    for j, s in (("Spine1", 0.03), ("Spine2", 0.02), ("Spine3", 0.02), ("Neck", 0.04), ("Head", 0.04)):
        c.rot(j, *r.normal(0, s, 3))
    c.spine(pitch=0.012 * np.sin(2 * np.pi * r.uniform(0.2, 0.3) * c.t + r.uniform(0, 6.3)))
    width = r.uniform(0.0, 0.06)  # stance width
    for s in SIDES:
        c.leg(s, flex=r.normal(0, 0.03), knee=r.uniform(0.02, 0.1), abd=width)
        c.arms(s, flex=r.normal(0.05, 0.05), twist=r.normal(0, 0.08))
