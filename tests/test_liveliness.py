""""It moves" as numbers (train/liveliness.py): speeds worked out by hand, ratios of a model that replays the real
clips (1) or stands still (0), the evaluator classification with an oracle evaluator, pelvis-aligned MPJPE of a
pure translation (0), and `motionclip eval` printing it all, with and without `--evaluator`, on a tiny model
trained here on synthetic data (random tiny CLIP text encoder: it tests the code path, not the quality)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from motionclip.core.cli import main
from motionclip.core.data.dataset_dir import DatasetIndex
from motionclip.core.data.synth import generate_clip, synthesize
from motionclip.core.motion import Motion
from motionclip.core.rotations import axis_angle_to_quat
from motionclip.core.skeleton import neutral_skeleton
from motionclip.train.evaluate import action_prompt, pelvis_aligned, reconstruction_errors
from motionclip.train.liveliness import format_report, limb_speeds, main_limb, moves_report, pooled_speeds

ACTIONS = ("walk", "wave", "bow")
FPS = 30.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- speeds by hand -------------------------------------------------------------------------------------------

def test_speeds_of_hand_made_joints() -> None:
    T = 31
    t = torch.arange(T, dtype=torch.float64) / FPS
    joints = torch.zeros(T, 24, 3, dtype=torch.float64)
    joints[:, :, 0] += 2.0 * t[:, None]  # every joint travels with the pelvis along X at 2 m/s
    joints[:, :, 1] += 0.05 * torch.sin(9 * t)[:, None]  # and bobs up and down: not horizontal, not relative
    joints[:, 7, 2] += 1.0 * t  # left ankle: 1 m/s forward relative to the pelvis
    joints[:, 8, 2] -= 1.0 * t  # right ankle: 1 m/s backward
    joints[:, 20, 0] += 3.0 * t  # left wrist 3 m/s, right wrist still (relative): wrists' mean 1.5
    s = limb_speeds(joints, FPS)
    assert s["ankles"] == pytest.approx(1.0, abs=1e-3)
    assert s["wrists"] == pytest.approx(1.5, abs=1e-3)
    assert s["root"] == pytest.approx(2.0, abs=1e-3)
    frozen = limb_speeds(joints[:1].repeat(T, 1, 1), FPS)
    assert frozen == {"ankles": 0.0, "wrists": 0.0, "root": 0.0}
    assert limb_speeds(joints, 2 * FPS)["ankles"] == pytest.approx(2.0, abs=1e-3)  # speeds scale with fps


def test_speeds_of_a_motion_through_forward_kinematics() -> None:
    """A still pose carried along at 1.5 m/s: limbs 0, root 1.5. The left elbow turning at pi rad/s: the left
    wrist moves on a circle (chord per frame x fps), the right one not: wrists' mean is half of it."""
    sk = neutral_skeleton()
    T = 46
    m = Motion.rest(T, FPS)
    carried = m.copy(trans=torch.stack([torch.arange(T) * 1.5 / FPS, torch.zeros(T), torch.zeros(T)], -1))
    s = pooled_speeds([carried], sk)
    assert s["ankles"] == pytest.approx(0.0, abs=1e-6) and s["wrists"] == pytest.approx(0.0, abs=1e-6)
    assert s["root"] == pytest.approx(1.5, abs=1e-3)
    assert pooled_speeds([m], sk) == {"ankles": 0.0, "wrists": 0.0, "root": 0.0}

    rest = sk.rest_joints.double()
    forearm = rest[20] - rest[18]  # L_Elbow -> L_Wrist
    axis = torch.linalg.cross(forearm, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    axis = axis / axis.norm()
    omega = math.pi
    quats = m.quats.clone()
    angle = omega * torch.arange(T, dtype=torch.float64) / FPS
    quats[:, 18] = axis_angle_to_quat(axis[None] * angle[:, None]).float()
    s = pooled_speeds([m.copy(quats=quats)], sk)
    wrist = 2 * float(forearm.norm()) * math.sin(omega / FPS / 2) * FPS
    assert s["wrists"] == pytest.approx(wrist / 2, rel=1e-3)
    assert s["ankles"] == pytest.approx(0.0, abs=1e-6) and s["root"] == pytest.approx(0.0, abs=1e-6)


def test_main_limb_ankles_for_locomotion_else_the_faster() -> None:
    assert main_limb({"ankles": 1.0, "wrists": 1.3, "root": 1.0}) == "ankles"  # a walk with a big arm swing
    assert main_limb({"ankles": 0.1, "wrists": 0.6, "root": 0.05}) == "wrists"  # a wave
    assert main_limb({"ankles": 0.9, "wrists": 0.4, "root": 0.1}) == "ankles"  # a kick


# --- ratios with models that are known to be right or still ---------------------------------------------------

@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    """One synthetic clip per action in the test split (and one more per action in train)."""
    root = tmp_path_factory.mktemp("live") / "ds"
    index = DatasetIndex.open_or_create(root, FPS)
    for n, a in enumerate(ACTIONS):
        for split in ("test", "train"):
            motion, texts = generate_clip(a, np.random.default_rng([n, len(split)]), FPS)
            index.add(f"{a}_{split}", motion, texts, source=f"synth:{a}", split=split, action=a)
    index.save()
    return root


class Replay:
    """Stands in for a MotionModel: 'generates' the real clip of the prompt's action (cropped to the length
    asked) - or stands still, or a clip of another action."""

    fps = FPS

    def __init__(self, data: Path, split: str, mode: str = "replay", window: int = 1000) -> None:
        index = DatasetIndex.load(data)
        self.clips = {action_prompt(e["action"]): index.load_clip(e["id"]) for e in index.entries(split)}
        self.mode, self.config, self.requests = mode, {"train": {"window": window}}, []

    def frame_limit(self, fps=None) -> int:
        return 1000

    def generate_batch(self, requests):
        self.requests += requests
        out = []
        for r in requests:
            clip = self.clips[r["prompt"]]
            if self.mode == "still":
                out.append(Motion.rest(r["frames"], r["fps"]))
            elif self.mode == "swap":  # walk <-> wave, the other action's whole clip
                out.append(self.clips[{action_prompt("walk"): action_prompt("wave"),
                                       action_prompt("wave"): action_prompt("walk")}.get(r["prompt"], r["prompt"])])
            else:
                out.append(clip.crop(0, min(r["frames"], clip.num_frames)))
        return out


def test_a_model_that_replays_the_real_clips_scores_one(handmade) -> None:
    model = Replay(handmade, "test")
    r = moves_report(model, handmade, "test", seeds=5, reconstruction=(0.0, 0.0))
    assert r["actions"] == sorted(ACTIONS) and set(r["per_action"]) == set(ACTIONS)
    assert len(model.requests) == 5 * len(ACTIONS)
    assert {q["seed"] for q in model.requests} == set(range(5)) and {q["fps"] for q in model.requests} == {FPS}
    index = DatasetIndex.load(handmade)
    for a, row in r["per_action"].items():
        assert row["frames"] == index.clips[f"{a}_test"]["frames"]  # the real clip's length (under the cap)
        assert row["real"][row["main_limb"]] > 0.1
        for k in ("ankles", "wrists", "root"):  # no ratio for what barely moves in the real clip (< 5 cm/s)
            assert row["ratio"][k] == (None if row["real"][k] < 0.05 else pytest.approx(1.0, abs=1e-6)), (a, k)
        assert row["in_target"] is True
        faster = "ankles" if row["real"]["ankles"] >= row["real"]["wrists"] else "wrists"
        assert row["main_limb"] == ("ankles" if row["real"]["root"] >= 0.3 else faster)
    assert r["per_action"]["walk"]["main_limb"] == "ankles" and r["per_action"]["wave"]["main_limb"] == "wrists"
    assert r["mean_ratio"]["main"] == pytest.approx(1.0, abs=1e-6) and r["in_target"]["main"] == len(ACTIONS)
    assert "evaluator" not in r and "needs the independent evaluator" in format_report(r)


def test_a_still_model_scores_zero_and_lengths_are_capped(handmade) -> None:
    model = Replay(handmade, "test", mode="still", window=40)
    r = moves_report(model, handmade, "test", seeds=2, reconstruction=(0.0, 0.0))
    assert r["usable_frames"] == 40
    assert {q["frames"] for q in model.requests} == {40}  # every real clip is longer than the cap
    for row in r["per_action"].values():
        assert row["frames"] == 40
        assert row["main_ratio"] == 0.0 and row["in_target"] is False
        assert all(v in (None, 0.0) for v in row["ratio"].values())
    assert r["in_target"] == {"main": 0, "ankles": 0, "wrists": 0} and r["mean_ratio"]["main"] == 0.0
    assert "| walk | 1 |" in format_report(r) and "0 of 3" in format_report(r)


class Oracle:
    """An 'evaluator' that reads the action off a motion: action i's motions here are the real clip of action
    i, told apart by their clip length (each test clip has its own length), and texts are one-hot by action."""

    def __init__(self, data: Path, actions: list[str]) -> None:
        index = DatasetIndex.load(data)
        self.length = {e["frames"]: e["action"] for e in index.entries("test")}
        self.actions = actions
        self.device = torch.device("cpu")

    def encode_text(self, texts):
        return torch.stack([torch.eye(len(self.actions))[[action_prompt(a) for a in self.actions].index(t)]
                            for t in texts])

    def encode_motion(self, rot6d, trans, mask):
        out = torch.zeros(len(mask), len(self.actions))
        for i, n in enumerate(mask.sum(1).tolist()):
            if n in self.length:
                out[i, self.actions.index(self.length[n])] = 1.0
        return out


def test_classification_by_the_evaluator(handmade) -> None:
    index = DatasetIndex.load(handmade)
    assert len({e["frames"] for e in index.entries("test")}) == len(ACTIONS)  # the oracle needs distinct lengths
    acts = sorted(ACTIONS)
    r = moves_report(Replay(handmade, "test"), handmade, "test", seeds=3, evaluator=Oracle(handmade, acts),
                     reconstruction=(0.0, 0.0))
    ev = r["evaluator"]
    assert set(ev["generated_top1"]) == set(ACTIONS) and set(ev["real_top1"]) == set(ACTIONS)
    assert ev["generated_top1"] == {a: 1.0 for a in ACTIONS} and ev["generated_top1_mean"] == 1.0
    assert ev["real_top1"] == {a: 1.0 for a in ACTIONS}  # one window per clip: each clip at its own length
    assert ev["generated_motions"] == 9 and ev["real_windows"] == 3
    # one-hot embeddings, 3 per action: pairs of different actions sqrt 2 apart, the same action 0
    assert ev["diversity_generated"] == pytest.approx(math.sqrt(2) * (81 - 3 * 9) / (9 * 8))
    assert ev["chance_top1"] == pytest.approx(1 / 3)
    table = format_report(r)
    assert "evaluator top-1 generated" in table and "| walk | 1 |" in table and ">= 0.7" in table

    r = moves_report(Replay(handmade, "test", mode="swap"), handmade, "test", seeds=3,
                     evaluator=Oracle(handmade, acts), reconstruction=(0.0, 0.0))
    ev = r["evaluator"]
    assert ev["generated_top1"] == {"bow": 1.0, "walk": 0.0, "wave": 0.0}
    assert ev["generated_top1_mean"] == pytest.approx(1 / 3) and ev["real_top1_mean"] == 1.0


# --- pelvis-aligned reconstruction ------------------------------------------------------------------------------

def test_pelvis_aligned_error_ignores_the_path() -> None:
    a = torch.randn(10, 24, 3)
    shift = torch.randn(10, 1, 3)  # a different offset on every frame
    assert (pelvis_aligned(a + shift) - pelvis_aligned(a)).abs().max() < 1e-6
    assert (pelvis_aligned(a)[:, 0] == 0).all()


class Shifted:
    """A MotionModel whose auto-encoder returns its input moved by a fixed offset."""

    device = torch.device("cpu")
    fps = FPS
    skeleton = neutral_skeleton()
    OFFSET = torch.tensor([0.3, 0.1, -0.2])

    class model:  # noqa: N801 - the attribute MotionModel calls `model`
        stored = None

        @classmethod
        def encode(cls, rot6d, trans, mask):
            cls.stored = (rot6d, trans)
            return torch.zeros(len(rot6d), 1)

        @classmethod
        def decode(cls, z, frames):
            rot6d, trans = cls.stored
            return rot6d, trans + Shifted.OFFSET


def test_reconstruction_error_of_a_pure_translation(handmade) -> None:
    index = DatasetIndex.load(handmade)
    wins = [w for e in index.entries() for w in index.load_clip(e["id"]).windows(40, 40)]
    mpjpe, local = reconstruction_errors(Shifted(), wins)
    assert mpjpe == pytest.approx(float(Shifted.OFFSET.norm()) * 1000, rel=1e-4)
    assert local == pytest.approx(0.0, abs=1e-3)


# --- the command ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Synthetic data, a tiny MotionCLIP and a tiny evaluator, each trained for a few steps by the real commands."""
    tmp = tmp_path_factory.mktemp("live-runs")
    data = tmp / "data"
    synthesize(data, clips=24, seed=0, progress=False)
    cfg = tmp / "ae.json"
    cfg.write_text(json.dumps({"model": "small", "model_overrides": {"enc_layers": 1, "dec_layers": 1, "ff_dim": 64,
                                                                     "heads": 2},
                               "encoder": "clip-random:tiny", "epochs": 1, "batch_size": 8, "window": 40,
                               "max_steps_per_epoch": 2}))
    assert main(["train", "autoencoder", "--data", str(data), "--out", str(tmp / "ae"), "--config", str(cfg),
                 "--quiet"]) == 0
    ev_cfg = tmp / "ev.json"
    ev_cfg.write_text(json.dumps({"model": {"word_dim": 16, "text_hidden": 16, "motion_width": 32, "motion_layers": 1,
                                            "ff_dim": 32, "dim": 16}, "batch_size": 8, "max_steps_per_epoch": 2}))
    assert main(["train", "evaluator", "--data", str(data), "--out", str(tmp / "ev"), "--config", str(ev_cfg),
                 "--epochs", "1", "--quiet"]) == 0
    return data, tmp / "ae", tmp / "ev"


def _split_actions(data: Path, split: str) -> set[str]:
    return {e["action"] for e in DatasetIndex.load(data).entries(split)}


def test_eval_prints_liveliness(tiny_runs, tmp_path, capsys) -> None:
    data, ae, _ = tiny_runs
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ae), "--data", str(data), "--split", "train", "--seeds", "2",
                 "--device", "cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "It moves:" in out and "| action | clips | ankles real |" in out and "main limb ratio" in out
    assert "reconstruction MPJPE, pelvis-aligned (mm)" in out and "needs the independent evaluator" in out
    for a in _split_actions(data, "train"):
        assert f"| {a} |" in out
    saved = json.loads((tmp_path / "eval.json").read_text())
    moves = saved["moves"]
    assert set(moves["per_action"]) == _split_actions(data, "train") and moves["seeds"] == 2
    assert moves["reconstruction"]["mpjpe_pelvis_aligned_mm"] == saved["mpjpe_pelvis_aligned_mm"]
    assert 0 < moves["reconstruction"]["mpjpe_pelvis_aligned_mm"] <= moves["reconstruction"]["mpjpe_mm"] + 1e-6
    for row in moves["per_action"].values():
        assert row["real"][row["main_limb"]] > 0 and all(v is None or v >= 0 for v in row["ratio"].values())
    assert "It moves:" in (tmp_path / "eval.md").read_text()


def test_eval_with_evaluator_classifies_generated_and_real(tiny_runs, tmp_path, capsys) -> None:
    data, ae, ev = tiny_runs
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ae), "--data", str(data), "--split", "train", "--evaluator", str(ev),
                 "--repeats", "1", "--stride", "30", "--seeds", "2", "--device", "cpu", "--json",
                 "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    moves = result["moves"]
    acts = _split_actions(data, "train")
    cls = moves["evaluator"]
    assert set(cls["generated_top1"]) == acts and set(cls["real_top1"]) == acts
    assert all(0.0 <= v <= 1.0 for v in cls["real_top1"].values())
    assert all(v in (0.0, 0.5, 1.0) for v in cls["generated_top1"].values())  # 2 seeds per action
    assert cls["generated_top1_mean"] == pytest.approx(np.mean(list(cls["generated_top1"].values())))
    assert cls["generated_motions"] == 2 * len(acts) and math.isfinite(cls["fid"]) and cls["diversity_real"] > 0
    assert moves["reconstruction"]["mpjpe_pelvis_aligned_mm"] > 0
    md = (tmp_path / "eval.md").read_text()
    assert "| ground truth |" in md and "evaluator top-1 generated" in md and "evaluator top-1 of real windows" in md
    assert json.loads((tmp_path / "eval.json").read_text())["moves"]["evaluator"] == cls
