"""Synthetic motion library: procedural, labelled SMPL motions (walk, run, jump, wave, kick, ...).

For tests and smoke runs that need a dataset with known content (a left-hand wave really moves the
left wrist, a walk really travels), pipeline checks without licensed mocap, and optional extra
training data. The motions are eased ramps and periodic curves in SMPL rotation space: plausible
but stiff and repetitive, so no substitute for real captured data for training or evaluation.

Each action poses a `_Clip` from per-clip tempo, amplitude, side, direction, duration and posture
noise; forward kinematics then puts the feet on the floor (the root follows the feet in contact,
so feet neither float nor slide much). Phrasings are data (`TEXTS`) filled from the same
parameters, so "slowly", "left" and "right" in a text always match the motion.

The pieces: synth_clip.py (the clip being built, easing, posture noise), synth_actions.py (the
actions and `ACTIONS`), synth_texts.py (the phrasings `TEXTS`); this module draws the parameters,
generates clips and writes datasets.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..motion import Motion
from .dataset_dir import DatasetIndex
from .synth_actions import ACTIONS
from .synth_clip import SIDES, SynthError, _Clip, _posture_noise
from .synth_texts import FAST, SLOW, TEXTS, _texts


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


__all__ = ["ACTIONS", "FAST", "SIDES", "SLOW", "TEXTS", "SynthError", "generate_clip", "synthesize"]
