"""Synthetic motions: the actions (walk, run, jump, wave, kick, ...) and their registry `ACTIONS`.

Each action adds eased ramps and periodic curves in SMPL rotation space to a `_Clip`
(synth_clip.py, which also states the joint-axis conventions used here) and sets the text
fields its phrasings need (counts, turn, how, first, second).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .synth_clip import SIDES, _Clip, _bump, _cycles, _hold, _ramp, _ss
from .synth_texts import _counts


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
