"""Synthetic motion library: procedural, labelled SMPL motions (walk, run, jump, wave, kick, ...).

For tests and smoke runs that need a dataset with known content (a left-hand wave really moves the
left wrist, a walk really travels), pipeline checks without licensed mocap, and optional extra
training data. The motions are eased ramps and periodic curves in SMPL rotation space: plausible
but stiff and repetitive, so no substitute for real captured data for training or evaluation.

Each action poses a `_Clip` from per-clip tempo, amplitude, side, direction, duration and posture
noise; forward kinematics then puts the feet on the floor (the root follows the feet in contact,
so feet neither float nor slide much). Phrasings are data (`TEXTS`) filled from the same
parameters, so "slowly", "left" and "right" in a text always match the motion.

Conventions of the neutral skeleton (checked by FK in tests/test_synth.py): knees flex about +X,
hips flex (thigh forward) about -X, ankles point the toes down about +X, the left elbow flexes
about -Y, the left shoulder lowers the T-pose arm about -Z, spine and neck bend forward about +X
and turn left about +Y, root yaw about +Y turns the body to its left (+X). The right side mirrors
the left: (x, y, z) -> (x, -y, -z).
"""

from __future__ import annotations

import zlib
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from .. import rotations as R
from ..errors import MotionClipError
from ..motion import Motion
from ..skeleton import JOINT_NAMES, neutral_skeleton
from .dataset_dir import DatasetIndex


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


# --- actions ---------------------------------------------------------------------------------------------

def _gait(c: _Clip, hip, knee, arm, elbow, lean, phase, stance, strike=0.05, give=0.1, push=0.25, kpow=0.7, hop=0.0):
    """Legs and arms for walking / running. phase: radians over time (decreasing: walking backward);
    stance: fraction of the cycle a foot is down (below 0.5 leaves flight phases, `hop` metres high)."""
    contact, hips = [], []
    for s, off in (("left", 0.0), ("right", 0.5)):
        f = (phase / (2 * np.pi) + off) % 1.0  # 0 = foot strike
        u = np.clip((f - stance) / (1 - stance), 0, 1)
        # In stance the hip sweeps back at a constant rate, so the planted foot carries the body at an even
        # speed; the swing is a cubic Hermite curve whose end slopes match it (no kink at lift-off or strike).
        m = -2 * (1 - stance) / stance
        swing = -(2 * u**3 - 3 * u**2 + 1) + (u**3 - 2 * u**2 + u) * m + (3 * u**2 - 2 * u**3) + (u**3 - u**2) * m
        h = np.where(f < stance, 1 - 2 * f / stance, swing)
        # The knee folds in early swing, is still bent (`strike`) when the foot lands, then gives a little.
        c.leg(s, flex=hip * h + 0.05, knee=strike + knee * _bump(u**kpow) + give * _bump(f / stance),
              ankle=push * _bump((f - stance + 0.15) / 0.3) - 0.12 * _bump(u))
        c.arms(s, flex=-arm * h, elbow=elbow * (1 + 0.2 * np.maximum(0, -h)))
        contact.append(np.where(f < stance, _ss(f / 0.04) * _ss((stance - f) / 0.04), 0.0))
        hips.append(h)
    c.contact, c.lock = np.stack(contact, -1), "stance"
    c.rot("Pelvis", x=lean * 0.5, y=-0.07 * c.amp * hips[0], z=0.03 * np.cos(2 * phase))  # pelvis turns with the legs
    c.spine(pitch=lean * 0.5, yaw=0.09 * c.amp * hips[0])  # the chest against it
    if stance < 0.5:
        f = (phase / (2 * np.pi)) % 1.0
        c.air = hop * (_bump((f - stance) / (0.5 - stance)) + _bump((f - 0.5 - stance) / (0.5 - stance)))
    if c.direction in SIDES:  # a gradual curve
        c.yaw = c.sgn(c.direction) * c.rng.uniform(0.7, 1.6) * _ramp(c.t, 0.1 * c.dur, 0.95 * c.dur)


def walk(c: _Clip) -> None:
    # Start in mid-stance of either foot, when the pelvis faces straight ahead: canonicalisation turns
    # the clip by the facing of the first frame, so this keeps a straight walk along +Z.
    ph = 2 * np.pi * (1.0 * c.tempo * c.t + c.rng.uniform(0.2, 0.4) + 0.5 * c.rng.integers(2))
    back = c.direction == "backward"  # the same cycle in reverse time, with shorter steps
    _gait(c, (0.32 if back else 0.45) * c.amp, 0.65, 0.3 * c.amp, 0.1, 0.05, -ph if back else ph, 0.6)


def run(c: _Clip) -> None:
    ph = 2 * np.pi * (1.25 * c.tempo * c.t + c.rng.uniform(0.1, 0.25))  # starts mid-stance, as walk
    _gait(c, 0.4 * c.amp, 1.6, 0.4 * c.amp, 1.3, 0.3, ph, 0.35, strike=0.2, give=0.15, push=0.6, kpow=1.2,
          hop=0.05 * c.amp)


def _jumps(c: _Clip, forward: float) -> None:
    h = c.rng.uniform(0.1, 0.25) * c.amp
    prep, land, fly = 0.5 / c.tempo, 0.45 / c.tempo, 2 * np.sqrt(2 * h / 9.81)  # ballistic flight time
    period, lead = prep + fly + land, c.rng.uniform(0.2, 0.5)
    n = max(1, min(3, int((c.dur - lead - 0.2) // period)))
    u = _cycles(c.t, lead, period, n) * period  # seconds into the current jump, < 0 outside
    inside = u >= 0
    crouch = np.where(inside, _bump(u / prep) + 0.8 * _bump((u - prep - fly) / land), 0.0)
    s = np.where(inside, (u - prep) / fly, -1.0)
    c.air = np.where((s > 0) & (s < 1), 4 * h * s * (1 - s), 0.0)
    point = np.where(inside, _bump((u - prep + 0.1) / (fly + 0.2)), 0.0)  # toes point down in the air
    c.leg(None, flex=1.2 * crouch, knee=1.2 * crouch, ankle=-0.4 * crouch + 0.45 * point)
    c.arms(None, flex=-0.6 * crouch * (u < prep) + 1.6 * point, elbow=0.3 * crouch)  # swing back, then up
    c.rot("Pelvis", x=0.3 * crouch)  # pelvis and trunk tip forward in the crouch
    c.spine(pitch=0.3 * crouch)
    if forward:  # jumps completed so far, eased within a jump
        c.shift[:, 1] = forward * (np.clip(np.floor((c.t - lead) / period), 0, n) + np.where(inside, _ss(s), 0.0))
    c.fields.update(_counts(n))
    c.info["jumps"] = n


def squat(c: _Clip) -> None:
    period, lead = 2.2 / c.tempo, c.rng.uniform(0.2, 0.5)
    n = max(1, int((c.dur - lead) // period))
    b = _bump(_cycles(c.t, lead, period, n)) * c.rng.uniform(0.6, 1.0) * min(c.amp, 1.0)
    c.leg(None, flex=1.7 * b, knee=2.0 * b, ankle=-0.55 * b)
    c.arms(None, flex=1.4 * b)  # arms forward for balance
    c.spine(pitch=0.2 * b)
    c.fields.update(_counts(n))


def wave(c: _Clip) -> None:
    w = _hold(c.t, c.rng.uniform(0.1, 0.4), c.dur - c.rng.uniform(0.1, 0.4), 0.5 / c.tempo)
    f = c.rng.uniform(1.8, 2.4) * c.tempo
    # Upper arm out sideways, twisted so the elbow bends upward; the forearm swings in the frontal plane.
    c.arms(c.side, abd=1.45 * w, twist=-1.3 * w, flex=0.25 * w, collar=0.1 * w,
           elbow=w * (1.25 + 0.35 * c.amp * np.sin(2 * np.pi * f * c.t)))
    c.rot("Head", y=0.1 * c.sgn(c.side) * w)


def kick(c: _Clip) -> None:
    period, lead = 1.3 / c.tempo, c.rng.uniform(0.2, 0.5)
    n = max(1, min(3, int((c.dur - lead - 0.2) // period)))
    u = _cycles(c.t, lead, period, n)
    # Chamber (knee up), snap the shin out at the top, chamber again, put the foot down; the thigh rises
    # early (sqrt) so the chambered foot does not swing backward.
    hip = np.sqrt(_bump(u)) * 1.25 * min(c.amp, 1.1)
    c.leg(c.side, flex=hip, knee=1.5 * (_bump((u - 0.06) / 0.38) + _bump((u - 0.56) / 0.38)), ankle=0.35 * _bump(u))
    c.leg(c.other, knee=0.15 * _bump(u))
    c.spine(pitch=-0.2 * hip)
    c.arms(c.other, flex=0.4 * _bump(u), abd=0.3 * _bump(u))
    c.arms(c.side, flex=-0.3 * _bump(u), abd=0.3 * _bump(u))
    c.lock = c.other
    c.fields.update(_counts(n))


def punch(c: _Clip) -> None:
    period, lead = 0.8 / c.tempo, c.rng.uniform(0.5, 0.8)
    n = max(1, min(4, int((c.dur - lead - 0.6) // period)))
    guard = _hold(c.t, 0.05, c.dur - 0.05, 0.45)
    u = _cycles(c.t, lead, period, n)
    e = np.where(u >= 0, _bump(np.clip(u, 0, 1) ** 0.6), 0.0)  # fast out, slower back
    c.arms(None, flex=0.7 * guard, elbow=2.0 * guard, hz=0.15 * guard)  # fists in front of the chin
    c.arms(c.side, flex=0.95 * e, elbow=-2.15 * e, hz=-0.1 * e)  # straight out at shoulder height
    c.spine(yaw=-0.3 * c.sgn(c.side) * e)  # the shoulder follows the fist
    c.leg(None, knee=0.2 * guard, flex=0.1 * guard)
    c.fields.update(_counts(n))


def bow(c: _Clip) -> None:
    lead, down, hold = c.rng.uniform(0.2, 0.6), 0.9 / c.tempo, c.rng.uniform(0.3, 1.0)
    th = c.rng.uniform(0.5, 0.9) * c.amp * _hold(c.t, lead, min(lead + 2 * down + hold, c.dur - 0.1), down)
    c.rot("Pelvis", x=0.6 * th)  # the pelvis tips forward over straight legs
    c.leg(None, flex=0.6 * th)
    c.arms(None, flex=th)  # arms keep hanging straight down
    c.spine(pitch=0.4 * th)
    c.rot("Neck", x=0.1 * th)


def turn(c: _Clip) -> None:
    angle, lead = (np.pi if c.rng.random() < 0.4 else np.pi / 2), c.rng.uniform(0.2, 0.5)
    end = min(lead + angle / (1.4 * c.tempo), c.dur - 0.2)
    c.yaw = c.sgn(c.side) * angle * _ramp(c.t, lead, end)
    w = _hold(c.t, lead - 0.1, end + 0.2, 0.25)  # small steps while turning
    for s, p in (("left", 0.0), ("right", np.pi)):
        lift = w * np.maximum(0, np.sin(2 * np.pi * 1.8 * c.tempo * (c.t - lead) + p)) ** 2
        c.leg(s, flex=0.3 * lift, knee=0.6 * lift, ankle=-0.1 * lift)
    c.lock = "none"
    c.fields["turn"] = "turns around" if angle > 2 else "turns 90 degrees"
    c.info["angle_deg"] = round(float(np.degrees(angle)))


def clap(c: _Clip) -> None:
    w = _hold(c.t, c.rng.uniform(0.1, 0.3), c.dur - c.rng.uniform(0.1, 0.3), 0.5 / c.tempo)
    apart = 0.5 + 0.5 * np.cos(2 * np.pi * c.rng.uniform(1.6, 2.4) * c.tempo * c.t)  # 0 when the hands meet
    c.arms(None, flex=0.75 * w, elbow=1.3 * w, hz=w * (0.3 - 0.25 * c.amp * apart), twist=0.35 * w)


def raise_both_arms(c: _Clip) -> None:
    how = str(c.rng.choice(["overhead", "sides", "forward"]))
    w = _hold(c.t, c.rng.uniform(0.2, 0.5), c.dur - c.rng.uniform(0.1, 0.6), 0.9 / c.tempo)
    up = 2.8 + 0.2 * (c.amp - 1)
    kw = {"overhead": dict(flex=up * w, collar=0.15 * w), "forward": dict(flex=1.5 * w, hz=0.1 * w),
          "sides": dict(abd=up * w, collar=0.2 * w, twist=-1.2 * w)}[how]
    c.arms(None, **kw)
    c.info["variant"] = how
    c.fields["how"] = {"overhead": "above {their} head", "sides": "out to the sides and up over {their} head",
                       "forward": "straight out in front of {them}"}[how]


def raise_one_arm(c: _Clip) -> None:
    w = _hold(c.t, c.rng.uniform(0.2, 0.5), c.dur - c.rng.uniform(0.1, 0.6), 0.9 / c.tempo)
    c.arms(c.side, flex=(2.8 + 0.2 * (c.amp - 1)) * w, collar=0.15 * w)
    c.spine(roll=-0.05 * c.sgn(c.side) * w)


def jumping_jacks(c: _Clip) -> None:
    period, lead = 1.0 / c.tempo, c.rng.uniform(0.1, 0.4)
    n = max(1, int((c.dur - lead) // period))
    u = _cycles(c.t, lead, period, n)
    spread = _bump(u)
    hop = np.where(u >= 0, np.sin(2 * np.pi * np.clip(u, 0, 1)) ** 2, 0.0)  # airborne while opening and closing
    c.air = 0.06 * c.amp * hop
    c.arms(None, abd=2.7 * spread, collar=0.2 * spread, twist=-1.0 * spread)
    c.leg(None, abd=0.22 * c.amp * spread, knee=0.25 * (1 - hop) * (u >= 0), ankle=0.3 * hop)
    c.fields.update(_counts(n))


def sit_down(c: _Clip) -> None:
    lead = c.rng.uniform(0.2, 0.5)
    down = min(1.5 / c.tempo, c.dur - lead - 0.3)
    s, mid = _ramp(c.t, lead, lead + down), _bump((c.t - lead) / down)
    c.leg(None, flex=1.5 * s, knee=1.55 * s, ankle=-0.15 * mid)  # onto an (invisible) chair: thighs level
    c.arms(None, flex=0.35 * s + 0.4 * mid, elbow=0.6 * s, hz=0.35 * s)  # hands come to rest on the thighs
    c.spine(pitch=0.45 * mid + 0.1 * s)  # lean forward while lowering


def stand_up(c: _Clip) -> None:
    c.t = c.dur - c.t  # sitting down, played backward
    sit_down(c)
    c.t = c.dur - c.t


def side_step(c: _Clip) -> None:
    period, lead = 1.0 / c.tempo, c.rng.uniform(0.2, 0.4)
    n = max(1, min(5, int((c.dur - lead - 0.1) // period)))
    u = _cycles(c.t, lead, period, n)
    k = np.clip(np.floor((c.t - lead) / period), 0, n)  # steps completed
    step = 0.3 * c.amp
    # Sideways distances: the leading foot moves in the first half of a step, the other foot in the
    # second, the pelvis all along; hip abductions follow from them (leg length ~0.85 m).
    lead_x, trail_x, pelvis = (step * (k + np.where(u >= 0, _ss(x), 0.0)) for x in (2 * u, 2 * u - 1, u))
    c.leg(c.side, abd=np.arcsin((lead_x - pelvis) / 0.85), knee=0.5 * _bump(2 * u), flex=0.15 * _bump(2 * u))
    c.leg(c.other, abd=np.arcsin((pelvis - trail_x) / 0.85), knee=0.5 * _bump(2 * u - 1), flex=0.15 * _bump(2 * u - 1))
    c.shift[:, 0] = c.sgn(c.side) * pelvis  # left is +X
    c.lock = "none"
    c.fields.update(_counts(n))


def march(c: _Clip) -> None:
    f, ph0 = 0.9 * c.tempo, c.rng.uniform(0, 2 * np.pi)
    w = _hold(c.t, 0.0, c.dur, 0.4)
    for s, p in (("left", 0.0), ("right", np.pi)):
        ph = 2 * np.pi * f * c.t + ph0 + p
        lift = w * np.maximum(0, np.sin(ph)) ** 2 * c.amp
        c.leg(s, flex=1.0 * lift, knee=1.5 * lift, ankle=0.2 * lift)  # thigh up, shin hanging
        c.arms(s, flex=-0.5 * w * c.amp * np.sin(ph), elbow=1.0 * w)
    c.lock = "none"


def arm_circles(c: _Clip) -> None:
    fwd = bool(c.rng.random() < 0.5)
    w = _hold(c.t, c.rng.uniform(0.1, 0.3), c.dur - c.rng.uniform(0.1, 0.3), 0.6 / c.tempo)
    ph = 2 * np.pi * c.rng.uniform(0.8, 1.2) * c.tempo * c.t * (1 if fwd else -1)
    r = 0.35 * c.amp * w
    c.arms(None, abd=1.4 * w + r * np.cos(ph), flex=r * np.sin(ph), collar=0.05 * w)  # out to the sides
    c.info["variant"], c.fields["dir"] = ("forward", "forwards") if fwd else ("backward", "backwards")


def look_around(c: _Clip) -> None:
    a, r = c.rng.uniform(0.5, 0.8) * c.amp * c.sgn(c.side), 0.6 / c.tempo  # first to c.side, then across
    t1 = c.rng.uniform(0.2, 0.5)
    t2 = t1 + r + c.rng.uniform(0.2, 0.6)
    t3 = min(t2 + 2 * r + c.rng.uniform(0.2, 0.6), c.dur - r - 0.05)
    y = a * (_ramp(c.t, t1, t1 + r) - 2 * _ramp(c.t, t2, t2 + 2 * r) + _ramp(c.t, t3, t3 + r))
    c.head(y=0.85 * y)
    c.spine(yaw=0.2 * y)
    c.fields["first"], c.fields["second"] = c.side, c.other


def nod(c: _Clip) -> None:
    f, lead = c.rng.uniform(1.2, 1.8) * c.tempo, c.rng.uniform(0.2, 0.5)
    n = max(2, min(5, int((c.dur - lead - 0.2) * f)))
    x = _bump(_cycles(c.t, lead, 1 / f, n)) * 0.25 * c.amp
    c.head(x=1.2 * x, neck=0.5)
    c.fields.update(_counts(n))


def shake_head(c: _Clip) -> None:
    w = _hold(c.t, c.rng.uniform(0.1, 0.4), c.dur - c.rng.uniform(0.1, 0.4), 0.3)
    y = 0.35 * c.amp * w * np.sin(2 * np.pi * c.rng.uniform(1.5, 2.2) * c.tempo * c.t)
    c.head(y=y)


def side_bend(c: _Clip) -> None:
    w = _hold(c.t, c.rng.uniform(0.2, 0.5), c.dur - c.rng.uniform(0.1, 0.5), 1.0 / c.tempo)
    c.spine(roll=-c.sgn(c.side) * 0.55 * c.amp * w)  # negative Z leans toward +X, the left
    c.arms(c.other, abd=3.0 * w, collar=0.2 * w, twist=-1.2 * w, elbow=0.3 * w)  # the other arm arcs overhead
    c.arms(c.side, abd=0.1 * w)


def throw(c: _Clip) -> None:
    lead, span = c.rng.uniform(0.3, 0.6), min(1.6 / c.tempo, c.dur - 0.8)
    u = np.clip((c.t - lead) / span, 0, 1)
    wind = _hold(u, 0.0, 0.62, 0.3)   # arm up and back, elbow bent, trunk turned away
    fire = _bump((u - 0.42) / 0.58)  # whip forward and across, then settle
    out = _ramp(u, 0.0, 0.25) * (1 - _ramp(u, 0.6, 1.0))
    c.arms(c.side, abd=1.3 * out, twist=-1.4 * wind, elbow=1.5 * wind + 0.2 * fire, hz=-0.6 * wind + fire,
           flex=0.4 * fire)
    c.spine(yaw=c.sgn(c.side) * (0.35 * wind - 0.45 * fire), pitch=0.2 * fire)
    c.arms(c.other, flex=0.5 * wind, abd=0.2 * out)


def hop(c: _Clip) -> None:
    lead, f = c.rng.uniform(0.3, 0.6), c.rng.uniform(1.4, 1.9) * c.tempo
    w = _hold(c.t, 0.05, c.dur - 0.05, lead)
    n = max(1, int((c.dur - 2 * lead) * f))
    u = _cycles(c.t, lead, 1 / f, n)
    flight = _bump(u / 0.6)  # airborne for 60% of each hop
    c.air = 0.09 * c.amp * flight
    c.leg(c.other, flex=0.35 * w, knee=1.2 * w)  # free leg tucked up behind
    c.leg(c.side, knee=0.3 * w * (1 - flight), ankle=0.3 * flight)
    c.arms(None, abd=0.45 * w, elbow=0.4 * w)
    c.lock = c.side
    c.fields.update(_counts(n))


# --- registry and phrasing -------------------------------------------------------------------------------

# name -> (function, duration range in seconds, whether a side applies, direction choices or None)
ACTIONS: dict[str, tuple[Callable[[_Clip], None], tuple[float, float], bool, tuple[str, ...] | None]] = {
    "walk": (walk, (2.0, 6.0), False, ("forward", "forward", "left", "right", "backward")),
    "run": (run, (2.0, 5.0), False, ("forward", "forward", "left", "right")),
    "jump_in_place": (lambda c: _jumps(c, 0.0), (2.0, 5.0), False, None),
    "jump_forward": (lambda c: _jumps(c, c.rng.uniform(0.4, 0.9) * c.amp), (2.0, 5.0), False, None),
    "squat": (squat, (2.5, 6.0), False, None), "wave": (wave, (2.0, 5.0), True, None),
    "kick": (kick, (2.0, 5.0), True, None), "punch": (punch, (2.0, 5.0), True, None),
    "bow": (bow, (2.5, 5.0), False, None), "turn": (turn, (2.5, 5.0), True, None),
    "clap": (clap, (2.0, 5.0), False, None), "raise_both_arms": (raise_both_arms, (2.5, 5.0), False, None),
    "raise_one_arm": (raise_one_arm, (2.5, 5.0), True, None), "jumping_jacks": (jumping_jacks, (2.0, 6.0), False, None),
    "sit_down": (sit_down, (2.5, 5.0), False, None), "stand_up": (stand_up, (2.5, 5.0), False, None),
    "side_step": (side_step, (2.0, 5.0), True, None), "march": (march, (2.0, 6.0), False, None),
    "arm_circles": (arm_circles, (2.0, 5.0), False, None), "look_around": (look_around, (3.0, 6.0), True, None),
    "nod": (nod, (2.0, 4.0), False, None), "shake_head": (shake_head, (2.0, 4.0), False, None),
    "side_bend": (side_bend, (2.5, 5.0), True, None), "throw": (throw, (2.0, 4.0), True, None),
    "hop": (hop, (2.0, 4.0), True, None),
}

# Phrasings per action. Fields: who, their, them, themself, adv ("slowly " / "quickly " / ""), adv_end
# (" slowly" / ...), pace, side, dir, n ("twice"), num ("two"), s (plural ending), plus what the action
# sets (turn, how, first, second). At most two phrasings per action lack a tempo field, so with three or
# more per clip a slow or quick clip always says so.
TEXTS: dict[str, list[str]] = {
    "walk": ["{who} {adv}walks {dir}", "{who} is walking {dir}{adv_end}", "{who} takes a few steps {dir}{adv_end}",
             "{who} walks {dir} at a {pace} pace", "walking {dir}, {who} moves at a {pace} pace"],
    "run": ["{who} {adv}runs {dir}", "{who} jogs {dir}{adv_end}", "{who} is running {dir} at a {pace} pace",
            "{who} breaks into a run, heading {dir}{adv_end}"],
    "jump_in_place": ["{who} {adv}jumps up and down in place", "{who} jumps on the spot {n}",
                      "{who} hops straight up with both feet {n}", "standing still, {who} jumps up {n}{adv_end}"],
    "jump_forward": ["{who} {adv}jumps forward", "{who} leaps forward with both feet {n}",
                     "{who} does a standing long jump{adv_end}", "{who} jumps ahead {n}"],
    "squat": ["{who} {adv}squats down and stands back up", "{who} does squats{adv_end}", "{who} squats {n}",
              "{who} bends {their} knees and crouches down{adv_end}"],
    "wave": ["{who} {adv}waves with {their} {side} hand", "{who} waves hello using the {side} arm",
             "{who} raises {their} {side} hand and waves{adv_end}", "{who} greets someone by waving the {side} hand",
             "with {their} {side} arm up, {who} waves{adv_end}"],
    "kick": ["{who} {adv}kicks with {their} {side} leg", "{who} kicks forward with the {side} foot",
             "{who} does a front kick with {their} {side} leg{adv_end}", "{who} kicks {n} using the {side} foot"],
    "punch": ["{who} {adv}punches with {their} {side} fist", "{who} throws a {side} punch{adv_end}",
              "{who} jabs forward with the {side} hand {n}", "{who} punches straight ahead using {their} {side} arm"],
    "bow": ["{who} {adv}bows", "{who} bows forward politely{adv_end}", "{who} takes a bow{adv_end}",
            "{who} bends forward at the waist and straightens up"],
    "turn": ["{who} {adv}{turn} to the {side}", "{who} {turn} to {their} {side} in place{adv_end}",
             "standing in place, {who} {turn} toward the {side}", "{who} rotates {their} body to the {side}{adv_end}"],
    "clap": ["{who} {adv}claps {their} hands", "{who} is clapping{adv_end}", "{who} applauds{adv_end}",
             "{who} claps {their} hands together in front of {their} chest"],
    "raise_both_arms": ["{who} {adv}raises both arms {how}", "{who} lifts both hands {how}{adv_end}",
                        "{who} puts both arms up {how} and lowers them again", "both of {their} arms go up {how}"],
    "raise_one_arm": ["{who} {adv}raises {their} {side} arm", "{who} lifts the {side} hand above {their} head{adv_end}",
                      "{who} puts {their} {side} arm up in the air", "{who} reaches up with the {side} hand{adv_end}"],
    "jumping_jacks": ["{who} {adv}does jumping jacks", "{who} performs jumping jacks{adv_end}",
                      "{who} does {num} jumping jack{s}", "{who} jumps while spreading arms and legs{adv_end}"],
    "sit_down": ["{who} {adv}sits down", "{who} sits down on a chair{adv_end}", "{who} lowers {themself} into a seat",
                 "{who} goes from standing to sitting{adv_end}"],
    "stand_up": ["{who} {adv}stands up", "{who} gets up from a chair{adv_end}", "{who} rises from a seated position",
                 "{who} goes from sitting to standing{adv_end}"],
    "side_step": ["{who} {adv}steps sideways to the {side}", "{who} side-steps to {their} {side}{adv_end}",
                  "{who} shuffles to the {side}", "{who} takes {num} step{s} to the {side}{adv_end}"],
    "march": ["{who} {adv}marches in place", "{who} marches on the spot{adv_end}",
              "{who} lifts {their} knees high, marching in place", "{who} steps in place raising the knees{adv_end}"],
    "arm_circles": ["{who} {adv}circles {their} arms {dir}", "{who} makes {dir} circles with both arms{adv_end}",
                    "{who} holds {their} arms out to the sides and rotates them {dir}",
                    "{who} does arm circles {dir}{adv_end}"],
    "look_around": ["{who} {adv}looks around", "{who} looks to the {first} and then to the {second}{adv_end}",
                    "{who} turns {their} head {first}, then {second}", "{who} glances {first} and {second}{adv_end}"],
    "nod": ["{who} {adv}nods", "{who} nods {their} head{adv_end}", "{who} nods yes", "{who} nods in agreement {n}"],
    "shake_head": ["{who} {adv}shakes {their} head", "{who} shakes {their} head no{adv_end}",
                   "{who} turns {their} head from side to side", "{who} disagrees by shaking {their} head{adv_end}"],
    "side_bend": ["{who} {adv}bends {their} upper body to the {side}", "{who} leans sideways to the {side}{adv_end}",
                  "{who} does a side stretch to the {side}", "{who} bends to the {side} with one arm overhead"],
    "throw": ["{who} {adv}throws something with {their} {side} hand", "{who} hurls an object with the {side} hand",
              "{who} makes a throwing motion with {their} {side} arm{adv_end}",
              "{who} throws a ball overhand using the {side} arm"],
    "hop": ["{who} {adv}hops on {their} {side} foot", "{who} jumps up and down on the {side} leg",
            "balancing on the {side} leg, {who} hops {n}", "{who} hops{adv_end} on one leg, the {side} one"],
}
_SUBJECTS = (("a person", "their", "them", "themself"), ("someone", "their", "them", "themself"),
             ("a man", "his", "him", "himself"), ("a woman", "her", "her", "herself"),
             ("the person", "their", "them", "themself"), ("a human", "their", "them", "themself"))
_DIRS = {"forward": "forward", "backward": "backward", "left": "forward, curving to the left",
         "right": "forward, curving to the right"}
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
SLOW, FAST = 0.85, 1.2  # tempo below / above which texts say "slowly" / "quickly"


def _counts(n: int) -> dict[str, str]:
    """Text fields for a count: n ("twice"), num ("two"), s (plural ending)."""
    num = _NUMBERS[n] if n < len(_NUMBERS) else str(n)
    return {"n": {1: "once", 2: "twice"}.get(n, f"{num} times"), "num": num, "s": "" if n == 1 else "s"}


def _texts(action: str, c: _Clip, k: int) -> list[str]:
    adv = "slowly" if c.tempo < SLOW else "quickly" if c.tempo > FAST else ""
    base = {"adv": adv + " " if adv else "", "adv_end": " " + adv if adv else "", "side": c.side,
            "pace": {"slowly": "slow", "quickly": "fast"}.get(adv, "steady"), "dir": _DIRS.get(c.direction or "", ""),
            "n": "", "num": "", "s": "s", **c.fields}
    out = []
    for i in c.rng.choice(len(TEXTS[action]), size=min(k, len(TEXTS[action])), replace=False):
        who, their, them, themself = _SUBJECTS[c.rng.integers(len(_SUBJECTS))]
        f = dict(base, who=who, their=their, them=them, themself=themself)
        s = TEXTS[action][i].format(**f)
        s = s.format(**f) if "{" in s else s  # fields may hold pronouns themselves
        out.append(" ".join(s.split()))
    return out


def generate_clip(action: str, rng: np.random.Generator, fps: float = 30.0, **params: Any) -> tuple[Motion, list[str]]:
    """One canonicalised clip of `action` and 3-4 phrasings of it.

    Tempo (1 = normal speed), amplitude (1 = normal size), side ("left" / "right"), direction
    (locomotion: "forward", "left", "right", "backward") and duration (seconds) are drawn from
    `rng`; pass any of them as a keyword to fix it. The Motion's meta records them all.
    """
    if action not in ACTIONS:
        raise SynthError(f"unknown action {action!r}; known actions: {', '.join(ACTIONS)}")
    unknown = set(params) - {"tempo", "amplitude", "side", "direction", "duration"}
    if unknown:
        raise SynthError(f"unknown parameter(s) {sorted(unknown)}; use tempo, amplitude, side, direction, duration")
    fn, (dmin, dmax), sided, dirs = ACTIONS[action]
    lo, hi = {"walk": (0.75, 1.3), "run": (0.8, 1.3)}.get(action, (0.7, 1.4))
    p = {"duration": rng.uniform(dmin, dmax), "tempo": rng.uniform(lo, hi), "amplitude": rng.uniform(0.8, 1.2),
         "side": SIDES[int(rng.integers(2))], "direction": dirs[int(rng.integers(len(dirs)))] if dirs else None}
    p.update(params)
    if p["side"] not in SIDES or (dirs and p["direction"] not in dirs):
        raise SynthError(f"side must be 'left' or 'right' and direction one of {sorted(set(dirs or [None]))}"
                         f" for {action}, got side={p['side']!r}, direction={p['direction']!r}")
    if not (float(p["duration"]) >= 1.0 and float(p["tempo"]) > 0 and float(p["amplitude"]) > 0 and fps > 0):
        raise SynthError(f"need duration >= 1 s and positive tempo, amplitude and fps, got {p} at {fps} fps")
    c = _Clip(rng, fps, float(p["duration"]), float(p["tempo"]), float(p["amplitude"]), str(p["side"]),
              p["direction"] if dirs else None)
    _posture_noise(c)
    fn(c)
    aa, trans = c.finish()
    meta = {"action": action, "generator": "motionclip.synth", "tempo": round(c.tempo, 4),
            "amplitude": round(c.amp, 4), "side": c.side if sided else None, "direction": c.direction,
            "duration": round(c.dur, 6), **c.info}
    motion = Motion.from_axis_angle(torch.from_numpy(aa), torch.from_numpy(trans), fps, meta=meta).canonicalize()
    return motion, _texts(action, c, int(rng.integers(3, 5)))


def synthesize(out_dir, clips: int, seed: int = 0, fps: float = 30.0, actions: list[str] | None = None,
               progress: bool = True) -> list[dict]:
    """Write `clips` synthetic clips into the dataset directory `out_dir`, cycling through `actions`
    (default: all), and return their index entries.

    Deterministic: clip n depends only on (seed, n, its action), so the same call writes the same
    motions (arrays and header byte for byte) and texts; rerun over the same directory, it rewrites
    the same clips.
    """
    if int(clips) <= 0:
        raise SynthError(f"clips must be a positive number of clips to generate, got {clips}")
    if int(seed) < 0:
        raise SynthError(f"seed must be a non-negative integer, got {seed}")
    names = list(ACTIONS) if not actions else [a.strip() for a in actions]
    bad = [a for a in names if a not in ACTIONS]
    if bad:
        raise SynthError(f"unknown action(s) {', '.join(map(repr, bad))}; known actions: {', '.join(ACTIONS)}")
    index = DatasetIndex.open_or_create(out_dir, fps)
    entries, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of a few hundred frames: extra threads only add overhead (a lot, on a busy CPU)
    try:
        for n in tqdm(range(int(clips)), desc="synthesizing", unit="clip", disable=not progress):
            action = names[n % len(names)]
            rng = np.random.default_rng([int(seed), n, zlib.crc32(action.encode())])
            motion, texts = generate_clip(action, rng, fps)
            motion.meta.update(seed=int(seed), clip_index=n)
            source = f"synth:{action}"
            cid = index.unique_id(f"synth_{action}_{seed}_{n}", source)
            entries.append(index.add(cid, motion, texts, source=source, action=action))
    finally:
        torch.set_num_threads(threads)
    index.save()
    return entries


__all__ = ["ACTIONS", "TEXTS", "SIDES", "generate_clip", "synthesize"]
