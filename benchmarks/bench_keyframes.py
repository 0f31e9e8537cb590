"""Keyframing an SMPL armature in Blender: the add-on's bulk writer against a keyframe_insert loop.

Runs inside Blender's Python (bpy as a module, or a Blender binary):

    .venv-blender/bin/python benchmarks/bench_keyframes.py [--frames 600] [--repeat 5]
    blender -b --python benchmarks/bench_keyframes.py -- [--frames 600]

Both write the same motion (24 bones x FRAMES frames of quaternions plus the root's location:
99 F-curves) on the same armature, into fresh actions:
  bulk   rig.apply_motion: the Y-up -> Z-up change and rest-orientation conjugation in numpy,
         then per F-curve keyframe_points.add(n) + foreach_set("co") (median of --repeat runs)
  loop   per frame and bone: set rotation_quaternion / location, keyframe_insert (one run)
and the two actions are checked to hold the same keys. Prints the times and the ratio.
"""

from __future__ import annotations

import argparse
import ast
import math
import statistics
import sys
import time
from pathlib import Path

import bpy
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from blender_addon import rig  # noqa: E402
from blender_addon.protocol_loader import protocol  # noqa: E402


def neutral_offsets() -> np.ndarray:
    """The built-in rest skeleton (core/skeleton.py's NEUTRAL_REST_JOINTS) without importing torch."""
    tree = ast.parse((REPO / "core" / "skeleton.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "NEUTRAL_REST_JOINTS":
            pos = np.array(ast.literal_eval(node.value))
            return np.array([pos[j] - pos[p] if p >= 0 else pos[j] for j, p in enumerate(protocol.PARENTS)])
    raise SystemExit("NEUTRAL_REST_JOINTS not found in core/skeleton.py")


def smooth_motion(frames: int, fps: float = 30.0, seed: int = 0):
    """Sinusoidal rotations on every joint (axis-angle up to ~60 degrees) and a walking root."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / fps
    aa = (rng.uniform(-0.5, 0.5, (1, 24, 3)) * np.sin(2 * math.pi * rng.uniform(0.3, 1.5, (1, 24, 3)) * t
                                                      + rng.uniform(0, 6.3, (1, 24, 3))))
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.maximum(angle, 1e-9)
    quat = np.concatenate([np.cos(angle / 2), axis * np.sin(angle / 2)], -1)
    tt = t[:, 0, 0]
    trans = np.stack([0.2 * np.sin(tt), 0.05 * np.sin(4 * tt), 1.2 * tt], -1)
    return protocol.MotionData(fps=fps, rotations=quat.tolist(), trans=trans.tolist(),
                               rest_offsets=neutral_offsets().tolist())


def keyframe_insert_loop(ob, pose: np.ndarray, loc: np.ndarray, start: int) -> None:
    ad = ob.animation_data or ob.animation_data_create()
    ad.action = bpy.data.actions.new("loop")
    if hasattr(ad.action, "slots"):
        ad.action_slot = ad.action.slots.new(id_type="OBJECT", name=ob.name)
    bones = [ob.pose.bones[n] for n in rig.JOINT_NAMES]
    for t in range(pose.shape[0]):
        frame = start + t
        for j, pb in enumerate(bones):
            pb.rotation_quaternion = pose[t, j]
            pb.keyframe_insert("rotation_quaternion", frame=frame, group=pb.name)
        bones[0].location = loc[t]
        bones[0].keyframe_insert("location", frame=frame, group=bones[0].name)


def action_keys(ob) -> dict:
    out = {}
    for fc in rig._fcurve_collection(ob.animation_data.action, ob, create=False):
        co = np.zeros(2 * len(fc.keyframe_points), dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        out[(fc.data_path, fc.array_index)] = co.reshape(-1, 2)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    motion = smooth_motion(args.frames)
    ob = rig.build_armature("SMPL", motion.rest_offsets)

    bulk = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        rig.apply_motion(ob, motion, "bulk", 1)
        bulk.append(time.perf_counter() - t0)
    bulk_keys = action_keys(ob)
    pose, loc = rig.pose_channels(motion, ob)

    t0 = time.perf_counter()
    keyframe_insert_loop(ob, pose, loc, 1)
    loop = time.perf_counter() - t0
    loop_keys = action_keys(ob)

    assert set(bulk_keys) == set(loop_keys) and len(bulk_keys) == 24 * 4 + 3
    diff = max(float(np.abs(bulk_keys[k] - loop_keys[k]).max()) for k in bulk_keys)
    n_keys = sum(len(v) for v in bulk_keys.values())
    med = statistics.median(bulk)
    print(f"Blender {bpy.app.version_string}: 24 bones x {args.frames} frames = {len(bulk_keys)} F-curves, "
          f"{n_keys} keys (the two methods' keys differ by at most {diff:.1e})")
    print(f"bulk (rig.apply_motion, foreach_set): median {med * 1000:.1f} ms over {args.repeat} runs "
          f"(min {min(bulk) * 1000:.1f}, max {max(bulk) * 1000:.1f})")
    print(f"keyframe_insert loop:                 {loop * 1000:.0f} ms")
    print(f"speed-up: {loop / med:.0f}x   (targets: bulk <= 500 ms, >= 20x)")
    return 0


if __name__ == "__main__":
    if "--" in sys.argv:
        argv = sys.argv[sys.argv.index("--") + 1:]
    else:  # the bpy module: the script's own arguments; a Blender binary: none given
        argv = [] if Path(sys.argv[0]).name.lower().startswith("blender") else sys.argv[1:]
    sys.exit(main(argv))
