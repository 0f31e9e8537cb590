"""Inference through the Python API and the CLI: generate, interpolate, edit, recognise, and bad input."""

import json
from pathlib import Path

import pytest
import torch

from motionclip.core.cli import main
from motionclip.core.encoders import load_encoder
from motionclip.core.errors import MotionClipError
from motionclip.core.inference import MAX_PROMPT_CHARS, MotionModel
from motionclip.core.io import load_motion, save_motion
from motionclip.core.run import CONFIG, WEIGHTS, RunError


@pytest.fixture(scope="session")
def run_dir(tiny_run) -> Path:
    """A tiny model trained for a few steps through the real trainer (conftest.tiny_run)."""
    return tiny_run


@pytest.fixture(scope="session")
def model(run_dir) -> MotionModel:
    return MotionModel(run_dir, device="cpu")


def test_generate_length_rate_and_seed(model) -> None:
    m = model.generate("a person walks forward", frames=90)
    assert m.num_frames == 90 and m.fps == 30.0 and torch.isfinite(m.quats).all()
    m24 = model.generate("a person walks forward", seconds=2.0, fps=24)
    assert m24.num_frames == 48 and m24.fps == 24.0
    a, b, c = (model.generate("a person jumps", frames=30, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.quats, b.quats) and not torch.equal(a.quats, c.quats)
    assert not torch.allclose(model.generate("a person walks", frames=30).quats,
                              model.generate("a person does a cartwheel", frames=30).quats)


def test_interpolate_ends_match_the_prompts(model) -> None:
    out = model.interpolate("a person walks", "a person jumps", [0.0, 0.5, 1.0], frames=40)
    assert len(out) == 3
    walk = model.generate("a person walks", frames=40)
    jump = model.generate("a person jumps", frames=40)
    assert torch.allclose(out[0].quats, walk.quats, atol=1e-5) and torch.allclose(out[2].quats, jump.quats, atol=1e-5)
    with pytest.raises(MotionClipError, match=r"\[0, 1\]"):
        model.interpolate("a", "b", [1.5], frames=10)


def test_edit_and_recognize(model) -> None:
    clip = model.generate("a person walks", frames=60)
    same = model.edit(clip, "walk", "walk", strength=1.0)
    assert same.num_frames == 60
    ranked = model.recognize(clip, ["walk", "run", "wave"])
    assert sorted(l for l, _ in ranked) == ["run", "walk", "wave"]
    assert ranked[0][1] >= ranked[1][1] >= ranked[2][1]


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt=""), "prompt is empty"),
    (dict(prompt="x" * (MAX_PROMPT_CHARS + 1)), f"under {MAX_PROMPT_CHARS}"),
    (dict(prompt="a", frames=0), "frames must be between 1 and"),
    (dict(prompt="a", frames=1_000_000), "frames must be between 1 and"),
    (dict(prompt="a", seconds=-1.0), "seconds must be positive"),
    (dict(prompt="a", fps=0.0), "fps must be in"),
])
def test_bad_requests(model, kwargs, match) -> None:
    with pytest.raises(MotionClipError, match=match):
        model.generate(**kwargs)


def test_cli_generate_recognize_interpolate_edit(run_dir, tmp_path, capsys) -> None:
    ck = ["--checkpoint", str(run_dir), "--device", "cpu"]
    for ext in (".bvh", ".npz", ".json"):
        assert main(["generate", "a person waves", "--out", str(tmp_path / f"g{ext}"), "--seconds", "1.5", *ck]) == 0
    g = load_motion(tmp_path / "g.bvh")
    assert g.num_frames == 45
    capsys.readouterr()
    assert main(["recognize", str(tmp_path / "g.bvh"), "--labels", "walk,wave,jump", "--json", *ck]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert {r["label"] for r in ranked} == {"walk", "wave", "jump"}
    assert main(["interpolate", "a person walks", str(tmp_path / "g.json"), "--alpha", "0.25,0.75",
                 "--out", str(tmp_path / "i.bvh"), "--frames", "30", *ck]) == 0
    assert (tmp_path / "i_0.25.bvh").is_file() and (tmp_path / "i_0.75.bvh").is_file()
    assert main(["edit", str(tmp_path / "g.bvh"), "--from", "wave", "--to", "wave happily",
                 "--out", str(tmp_path / "e.npz"), *ck]) == 0
    assert load_motion(tmp_path / "e.npz").num_frames == 45


def test_cli_errors_are_clear(run_dir, tmp_path, capsys) -> None:
    ck = ["--checkpoint", str(run_dir), "--device", "cpu"]
    assert main(["generate", "", "--out", str(tmp_path / "x.bvh"), *ck]) == 1
    assert "prompt is empty" in capsys.readouterr().err
    assert main(["generate", "hi", "--frames", "0", "--out", str(tmp_path / "x.bvh"), *ck]) == 1
    assert "frames must be" in capsys.readouterr().err
    assert main(["generate", "hi", "--out", str(tmp_path / "x.bvh"), "--checkpoint", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err


def test_checkpoint_with_another_encoder_is_refused(run_dir, tmp_path) -> None:
    other = load_encoder("clip-random:tiny")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)  # same architecture and name, other weights
    with pytest.raises(MotionClipError, match="trained with text encoder"):
        MotionModel(run_dir, device="cpu", encoder=other)


def test_corrupt_and_truncated_checkpoints(run_dir, tmp_path) -> None:
    import shutil

    for name, data in (("garbage", b"\x00not safetensors at all"), ("truncated", (run_dir / WEIGHTS).read_bytes()[:1000])):
        bad = tmp_path / name
        shutil.copytree(run_dir, bad)
        (bad / WEIGHTS).write_bytes(data)
        with pytest.raises(RunError, match=r"model.safetensors: not a readable safetensors file"):
            MotionModel(bad, device="cpu")
    broken = tmp_path / "broken-config"
    shutil.copytree(run_dir, broken)
    (broken / CONFIG).write_text("{not json")
    with pytest.raises(RunError, match="invalid JSON"):
        MotionModel(broken, device="cpu")


def test_export_run_float16_keeps_the_model(run_dir, model, tmp_path, capsys) -> None:
    out = tmp_path / "shipped"
    assert main(["export-run", str(run_dir), "--out", str(out), "--float16"]) == 0
    assert "float16" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [CONFIG, WEIGHTS]
    assert (out / WEIGHTS).stat().st_size < 0.6 * (run_dir / WEIGHTS).stat().st_size
    shipped = json.loads((out / CONFIG).read_text())
    assert shipped["data"]["path"] == "data"  # the local dataset path is not shipped, its folder name is
    small = MotionModel(out, device="cpu")
    a = model.generate("a person walks forward", frames=60, seed=1)
    b = small.generate("a person walks forward", frames=60, seed=1)
    assert torch.allclose(a.quats, b.quats, atol=2e-2) and torch.allclose(a.trans, b.trans, atol=2e-2)
    assert main(["export-run", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 1
    assert "no such run directory" in capsys.readouterr().err


def test_eval_command_prints_every_figure(run_dir, tmp_path, capsys) -> None:
    data = run_dir.parent / "data"
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(data), "--split", "train", "--seeds", "1",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["clips"] > 0 and r["actions"] >= 5
    assert 0 < r["mpjpe_pelvis_aligned_mm"] and 0 < r["mpjpe_mm"] < 1e5
    assert 0 <= r["recognition_top1"] <= r["recognition_top5"] <= 1 and r["chance_top1"] == round(1 / r["actions"], 4)
    assert len(r["generated_recognised"]) == r["actions"]
    assert all(0 <= v <= 1 for v in r["generated_recognised"].values())
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(data), "--source", "nowhere"]) == 1
    assert "no clip with an action label" in capsys.readouterr().err
