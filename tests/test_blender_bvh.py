"""Blender's own BVH importer opens the BVH files `write_bvh` writes.

Blender (bpy 5.0.1 from PyPI) pins numpy 1.26, so it lives in its own virtual environment
and runs as a subprocess: tests/blender_scripts/check_bvh_import.py imports the file with
`bpy.ops.import_anim.bvh` and dumps bone names, frame range, fps and every bone's world
head position at every frame. Here we compare that with our own forward kinematics.

Blender interpreter: $MOTIONCLIP_BLENDER_PYTHON, else <repo>/.venv-blender/bin/python.
Create the latter with
    python3 -m venv .venv-blender && .venv-blender/bin/pip install bpy==5.0.1
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from motionclip.core import rotations as R
from motionclip.core.io.bvh import write_bvh
from motionclip.core.motion import Motion
from motionclip.core.skeleton import JOINT_NAMES, neutral_skeleton

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "blender_scripts" / "check_bvh_import.py"
BLENDER_PYTHON_ENV = "MOTIONCLIP_BLENDER_PYTHON"
TOLERANCE_M = 1e-3  # 1 mm


def blender_python() -> Path:
    given = os.environ.get(BLENDER_PYTHON_ENV)
    path = Path(given).expanduser() if given else REPO / ".venv-blender" / "bin" / "python"
    if not path.exists():
        pytest.skip(
            f"no Blender-side Python at {path}: create it with "
            f"`python3 -m venv {REPO / '.venv-blender'} && {REPO / '.venv-blender' / 'bin' / 'pip'} install bpy==5.0.1` "
            f"(its own environment: bpy pins numpy 1.26), or point ${BLENDER_PYTHON_ENV} at a Python that can `import bpy`"
        )
    return path


def make_motion(frames: int, fps: float, seed: int) -> Motion:
    """Smooth random rotations on all 24 joints (a few sinusoids each, up to ~70 degrees),
    a root that turns through 180 degrees of yaw, walks, bobs and sways, plus two
    hand-made frames that sit on the ZYX Euler singularity (Y rotation of +-90 degrees)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float64) / fps  # seconds
    aa = torch.zeros(frames, 24, 3, dtype=torch.float64)
    for _ in range(3):
        amp = (torch.rand(24, 3, generator=g, dtype=torch.float64) - 0.5) * 0.8
        freq = 0.3 + 1.5 * torch.rand(24, 3, generator=g, dtype=torch.float64)
        phase = 2 * math.pi * torch.rand(24, 3, generator=g, dtype=torch.float64)
        aa += amp * torch.sin(2 * math.pi * freq * t[:, None, None] + phase)
    rot = R.axis_angle_to_matrix(aa)
    # Root: a 180-degree turn about Y over the clip, on top of the random wobble.
    yaw = torch.linspace(0.0, math.pi, frames, dtype=torch.float64)
    turn = R.axis_angle_to_matrix(torch.stack([torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)], -1))
    rot[:, 0] = turn @ rot[:, 0]
    # Gimbal-lock frames: ZYX Euler with Y = +-90 degrees.
    rot[frames // 3, JOINT_NAMES.index("L_Shoulder")] = R.axis_angle_to_matrix(torch.tensor([0.0, math.pi / 2, 0.0], dtype=torch.float64))
    rot[2 * frames // 3, JOINT_NAMES.index("R_Elbow")] = (
        R.axis_angle_to_matrix(torch.tensor([0.0, -math.pi / 2, 0.0], dtype=torch.float64))
        @ R.axis_angle_to_matrix(torch.tensor([0.4, 0.0, 0.0], dtype=torch.float64)))
    trans = torch.stack([
        0.3 * torch.sin(2 * math.pi * 0.4 * t),        # sway
        0.05 * torch.sin(2 * math.pi * 2.0 * t) + 0.1,  # bob
        1.2 * t,                                        # walk forward (+Z)
    ], dim=-1)
    return Motion.from_rotmats(rot, trans, fps)


def run_blender_import(bvh: Path, out_json: Path) -> dict:
    py = blender_python()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(py), str(SCRIPT), str(bvh), str(out_json)], cwd=bvh.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"Blender import script failed (rc {proc.returncode})\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return json.loads(out_json.read_text())


def blender_z_up_to_y_up(p: np.ndarray) -> np.ndarray:
    """Blender's default BVH import (axis_forward='-Z', axis_up='Y') maps BVH (x, y, z) to
    Blender (x, -z, y); invert that."""
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


@pytest.mark.parametrize("fps,frames", [(30.0, 40), (24.0, 37), (60.0, 45)])
def test_blender_imports_our_bvh(tmp_path: Path, fps: float, frames: int) -> None:
    motion = make_motion(frames, fps, seed=int(fps))
    skeleton = neutral_skeleton()
    bvh = write_bvh(motion, tmp_path / f"clip_{int(fps)}.bvh", skeleton=skeleton)
    t0 = time.time()
    d = run_blender_import(bvh, tmp_path / "blender.json")
    print(f"Blender {d['blender_version']} import + sampling: {time.time() - t0:.1f} s")

    # Skeleton: SMPL's 24 joints, by name.
    assert d["bones"] == 24
    assert sorted(d["bone_names"]) == sorted(JOINT_NAMES)

    # Frame rate: Blender sets fps = round(1 / Frame Time) and fps_base to the remainder.
    assert d["fps"] == int(round(fps))
    assert d["scene_fps"] == pytest.approx(fps, rel=1e-5)

    # Frames: every BVH frame is keyed, file frame i at Blender frame 1 + i.
    assert d["key_frames"] == [float(1 + i) for i in range(frames)]
    assert d["frames"] == list(range(1, frames + 1))
    # Scene range covers the clip. (Blender's importer sets frame_end = frame_start + Frames,
    # one past the last key: its own off-by-one, io_anim_bvh/import_bvh.py _update_scene_duration.)
    assert d["frame_start"] == 1 and d["frame_end"] >= frames

    heads = np.asarray(d["heads"], dtype=np.float64)  # [frames, bones, 3], Blender Z up
    assert heads.shape == (frames, 24, 3)
    index = [d["bone_names"].index(n) for n in JOINT_NAMES]
    blender = blender_z_up_to_y_up(heads[:, index])
    ours = motion.joints(skeleton).to(torch.float64).numpy()
    err = np.linalg.norm(blender - ours, axis=-1)  # [frames, 24]
    worst = np.unravel_index(int(err.argmax()), err.shape)
    print(f"fps {fps:g}, {frames} frames: max joint position error {err.max() * 1000:.4f} mm "
          f"(frame {worst[0]}, {JOINT_NAMES[worst[1]]}); mean {err.mean() * 1000:.4f} mm")
    assert err.max() < TOLERANCE_M, (
        f"Blender's joints differ from our FK by up to {err.max() * 1000:.2f} mm "
        f"(frame {worst[0]}, {JOINT_NAMES[worst[1]]})")
    # The motion really moves: guards against comparing two rest poses.
    assert np.ptp(ours[:, :, 2]) > 0.5 and np.ptp(ours, axis=0).max() > 0.5
