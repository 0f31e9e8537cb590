"""Real motion-capture files import and retarget cleanly, each reporting its retarget error.

Sources: CMU (Debian assimp-testmodels), DeepMimic (pybullet wheel), LAFAN1 and a six-channel
rig (bvhtools sdist), Mixamo (bvhtoolbox sdist), every clip of ../shared/data/bandai-namco-1.
Skips with a reason where a source is missing (see conftest.py).
"""

from pathlib import Path

import pytest
import torch

from motionclip.core import rotations as R
from motionclip.core.io import load_source_motion
from motionclip.core.io.retarget import hinge_agreement
from motionclip.core.skeleton import neutral_skeleton

SK = neutral_skeleton()


def check(path: Path, preset: str, max_dir_err: float, hinge: bool = True, max_limb_err: float = 0.1):
    motion, report = load_source_motion(path)
    print(f"{path.name}: {report.mapping} {motion.num_frames} frames, bone-direction error "
          f"{report.bone_dir_err_deg:.2f} deg (limbs {report.limb_dir_err_deg:.3f}, torso {report.torso_dir_err_deg:.1f}, "
          f"worst bone {report.bone_dir_err_max_deg:.1f}), facing {report.facing_err_deg:.2f} deg")
    assert report.mapping == preset
    assert torch.isfinite(motion.quats).all() and torch.isfinite(motion.trans).all()
    assert report.bone_dir_err_deg < max_dir_err
    # limbs point where the source's do (exactly, unless the source has extra joints inside a
    # limb, like CMU's two neck joints for SMPL's one)
    assert report.limb_dir_err_deg < max_limb_err
    assert report.facing_err_deg < 2.0  # the global facing is preserved
    joints = motion.joints(SK)
    # a plausible body: the head stays above the pelvis on average for these clips
    # (except acrobatics), and the pelvis travels less than 20 m/s
    speed = (joints[1:, 0] - joints[:-1, 0]).norm(dim=-1) * motion.fps
    assert float(speed.quantile(0.99)) < 20.0
    if hinge:
        # knees bend about SMPL's knee axis: bone twist came across right
        assert hinge_agreement(motion, min_angle_deg=30).get("knee", 1.0) > 0.85
    return motion, report


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_01.bvh", "01_03.bvh"])
def test_cmu(cmu_dir, name) -> None:
    m, _ = check(cmu_dir / name, "cmu", max_dir_err=8.0, max_limb_err=1.0)
    assert m.fps == 120.0


@pytest.mark.slow
def test_deepmimic_clips(deepmimic_dir) -> None:
    files = sorted(deepmimic_dir.glob("humanoid3d_*.txt"))
    assert len(files) == 15
    for f in files:
        check(f, "deepmimic", max_dir_err=12.0)


@pytest.mark.slow
@pytest.mark.parametrize("name, preset, hinge", [("test.bvh", "lafan1", True), ("test2.bvh", "lafan1", True),
                                                 ("test3.bvh", "blender_metarig", False)])
def test_bvhtools_files(bvhtools_dir, name, preset, hinge) -> None:
    # test3.bvh: six channels on most joints; its knees barely bend, so the hinge check says nothing there
    check(bvhtools_dir / name, preset, max_dir_err=12.0, hinge=hinge)


@pytest.mark.slow
def test_mixamo(bvhtoolbox_dir) -> None:
    check(bvhtoolbox_dir / "test_freebvh.bvh", "mixamo", max_dir_err=5.0)


@pytest.mark.slow
def test_every_bandai_namco_clip(bandai_dir) -> None:
    files = sorted((bandai_dir / "data").glob("*.bvh"))
    assert len(files) == 174
    hinges = []
    for f in files:
        m, r = check(f, "bandai_namco", max_dir_err=8.0, hinge=False)
        hinges.append(hinge_agreement(m, min_angle_deg=30).get("knee"))
    knee = [h for h in hinges if h is not None]
    assert sum(knee) / len(knee) > 0.9
