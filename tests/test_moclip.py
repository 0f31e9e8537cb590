"""MoCLIP: losses (values worked out by hand), the phase schedule (which weights train when; the teacher
never changes), masked pooling, `train moclip` end to end through the real command, `moclip:RUN` as a text
encoder, exact resume, downstream fine-tuning, the evaluator's metrics and `eval --evaluator`.

Synthetic data and the random tiny CLIP teacher (clip-random:tiny: random weights, because real CLIP weights
cannot be fetched on this machine; it tests the code path, not the quality)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import motionclip.core.encoders as encoders
from motionclip.core.cli import main
from motionclip.core.data.synth import synthesize
from motionclip.core.data.windows import MotionWindows, collate_motion
from motionclip.core.encoders import EncoderError, load_encoder
from motionclip.core.errors import MotionClipError
from motionclip.core.models.moclip import MoCLIP, MotionHead, MotionHeadConfig, moclip_loss
from motionclip.core.run import load_weights
from motionclip.train.moclip import MoCLIPTrainConfig, load_moclip_config, phase_lr, train_moclip

TEACHER = "clip-random:tiny"
TINY_HEAD = {"part_dim": 16, "width": 32, "heads": 2, "limb_layers": 1, "time_layers": 1, "ff_dim": 32}


def tiny_config(**kw) -> dict:
    return {"teacher": TEACHER, "head": TINY_HEAD, "batch_size": 8, "window": 40, "min_window": 20,
            "max_steps_per_epoch": 3, "phases": [{"name": "head", "epochs": 2, "train": ["head"], "lr": 1e-3},
                                                 {"name": "student", "epochs": 1, "train": ["head", "student"],
                                                  "lr": {"head": 1e-3, "student": 1e-3}}], **kw}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("moclip-data")
    synthesize(root / "data", clips=24, seed=0, progress=False)
    return root / "data"


@pytest.fixture(scope="module")
def moclip_run(data, tmp_path_factory) -> Path:
    """A tiny MoCLIP trained through the real command."""
    out = tmp_path_factory.mktemp("moclip-run") / "run"
    cfg = out.parent / "tiny.json"
    cfg.write_text(json.dumps(tiny_config()))
    assert main(["train", "moclip", "--data", str(data), "--out", str(out), "--config", str(cfg), "--quiet"]) == 0
    return out


# --- losses ------------------------------------------------------------------------------------------------------

def test_loss_values_by_hand() -> None:
    m = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # unnormalised on purpose: the loss normalises
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    out = moclip_loss(m, s, t, torch.tensor(0.0), lambda_distill=0.4)  # temperature 1
    # logits = I: each row's cross-entropy is log(1 + e^-1), in both directions
    ce = math.log(1 + math.exp(-1))
    assert out["contrastive"].item() == pytest.approx(ce, abs=1e-6)
    assert out["distill"].item() == pytest.approx(1.0)  # mean of (1, 1, 1, 1)
    assert out["align"].item() == pytest.approx(0.0, abs=1e-7)  # cos = 1 on both rows
    assert out["total"].item() == pytest.approx(ce + 0.4, abs=1e-6)
    # student orthogonal to the motion: align = 1; lambda 0 drops distillation
    out = moclip_loss(m, t, t, torch.tensor(0.0), lambda_distill=0.0)
    assert out["align"].item() == pytest.approx(1.0)
    assert out["distill"].item() == 0.0
    assert out["contrastive"].item() == pytest.approx(math.log(1 + math.e), abs=1e-6)  # true pair logit 0, other 1
    assert out["total"].item() == pytest.approx(math.log(1 + math.e) + 1.0, abs=1e-6)


def test_temperature_is_learnable_and_clamped() -> None:
    m = torch.eye(3)
    s = torch.eye(3)
    scale = torch.tensor(math.log(10.0), requires_grad=True)
    out = moclip_loss(m, s, s, scale)
    # logits 10 on the diagonal, 0 elsewhere: CE = log(1 + 2 e^-10)
    assert out["contrastive"].item() == pytest.approx(math.log(1 + 2 * math.exp(-10)), rel=1e-3)  # float32
    out["total"].backward()
    assert scale.grad is not None and scale.grad.item() < 0  # sharper is better for a perfect match
    capped = moclip_loss(m, s, s, torch.tensor(50.0))
    assert capped["temperature"].item() == pytest.approx(0.01)  # logit scale clamped at 100
    with pytest.raises(MotionClipError, match="same shape"):
        moclip_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 4), torch.tensor(0.0))


def test_phase_lr_is_cosine() -> None:
    assert phase_lr(1e-4, 0, 10) == pytest.approx(1e-4)
    assert phase_lr(1e-4, 5, 10) == pytest.approx(5e-5)
    assert phase_lr(1e-4, 10, 10) == pytest.approx(0.0, abs=1e-20)
    assert phase_lr(1e-4, 10, 10, min_ratio=0.1) == pytest.approx(1e-5)


# --- the head: masked pooling -----------------------------------------------------------------------------------

def test_masked_pooling_ignores_padding(data) -> None:
    torch.manual_seed(0)
    head = MotionHead(MotionHeadConfig(out_dim=16, **TINY_HEAD)).eval()
    ds = MotionWindows(data, "train", window=(20, 40), seed=0)
    a, b = ds[0], ds[1]
    a_len = 20
    a = {**a, "rot6d": a["rot6d"][:a_len], "trans": a["trans"][:a_len], "length": a_len}
    alone = collate_motion([a])
    with torch.no_grad():
        ref = head(alone["rot6d"], alone["trans"], alone["mask"])[0]
        batch = collate_motion([a, b])  # a padded to b's length
        assert batch["rot6d"].shape[1] > a_len
        batch["rot6d"][0, a_len:] = float("nan")  # padding may hold anything
        batch["trans"][0, a_len:] = 1e6
        got = head(batch["rot6d"], batch["trans"], batch["mask"])[0]
    assert torch.isfinite(got).all()
    assert torch.allclose(got, ref, atol=1e-5)
    # the same motion with real frames instead of padding does change the embedding: the mask is what matters
    with torch.no_grad():
        full = collate_motion([ds[0]])
        other = head(full["rot6d"], full["trans"], full["mask"])[0]
    assert not torch.allclose(other, ref, atol=1e-4)


# --- the schedule -----------------------------------------------------------------------------------------------

def test_phases_config_and_trainable_groups() -> None:
    cfg = load_moclip_config("paper", {})
    assert [(p["epochs"], p["train"], p["lr"]) for p in cfg.phases] == [
        (35, ["head"], {"head": 1e-4}), (15, ["head", "student"], {"head": 1e-6, "student": 1e-6})]
    assert cfg.lambda_distill == 0.4 and cfg.grad_clip == 1.0 and cfg.epochs == 50
    assert cfg.phase_at(34)[0] == 0 and cfg.phase_at(35)[0] == 1
    assert [p["epochs"] for p in load_moclip_config("paper", {"phase_epochs": [3, 2]}).phases] == [3, 2]
    with pytest.raises(MotionClipError, match=r"phases\[0\]: train must be"):
        MoCLIPTrainConfig(phases=[{"epochs": 1, "train": ["teacher"], "lr": 1e-4}])
    with pytest.raises(MotionClipError, match="lr for 'student' must be a positive number"):
        MoCLIPTrainConfig(phases=[{"epochs": 1, "train": ["student"], "lr": {"head": 1e-4}}])
    with pytest.raises(MotionClipError, match="--phase-epochs gives 1 numbers but the config has 2 phases"):
        load_moclip_config("paper", {"phase_epochs": [3]})

    student = load_encoder(TEACHER)
    model = MoCLIP(student, MotionHeadConfig(out_dim=student.dim, **TINY_HEAD))
    model.set_trainable(["head"])
    assert all(p.requires_grad for p in model.head.parameters()) and model.logit_scale.requires_grad
    assert not any(p.requires_grad for p in model.student.parameters())
    model.train()
    assert model.head.training and not model.student.training  # a frozen student stays in eval mode
    model.set_trainable(["head", "student"])
    model.train()
    assert all(p.requires_grad for p in model.student.parameters()) and model.student.training


def test_schedule_trains_the_right_weights_and_never_the_teacher(data, tmp_path, monkeypatch) -> None:
    loaded = []
    real = encoders.load_encoder

    def spy(spec, *a, **kw):
        enc = real(spec, *a, **kw)
        loaded.append(enc)
        return enc

    monkeypatch.setattr(encoders, "load_encoder", spy)
    cfg = MoCLIPTrainConfig.from_dict(tiny_config())
    run = tmp_path / "run"
    train_moclip(data, run, cfg, progress=False, until_epoch=2)  # the head-only phase
    teacher = loaded[0]
    teacher_fp, teacher_sd = teacher.fingerprint, {k: v.clone() for k, v in teacher.state_dict().items()}
    after1, _ = load_weights(run / "model.safetensors")
    init_student = {f"student.{k}": v for k, v in real(TEACHER, text_only=True).state_dict().items()}
    for k, v in init_student.items():  # phase 1: the student is exactly the teacher's copy
        assert torch.equal(after1[k], v), k
    head_init = MoCLIP(real(TEACHER), MotionHeadConfig.from_dict(json.loads((run / "config.json").read_text())
                                                                  ["model"]["head"]))
    assert any(not torch.equal(after1[f"head.{k}"], v) for k, v in head_init.head.state_dict().items())
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["phase"] for r in rows] == ["head", "head"]
    assert all(float(r["lr_student"]) == 0.0 and float(r["train_distill"]) == 0.0 for r in rows)

    train_moclip(data, run, cfg, resume=True, progress=False)  # the student phase
    after2, _ = load_weights(run / "model.safetensors")
    changed = [k for k in init_student if not torch.equal(after2[k], init_student[k])]
    assert len(changed) > len(init_student) // 2  # the student trained
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert rows[-1]["phase"] == "student" and float(rows[-1]["lr_student"]) > 0
    assert float(rows[-1]["train_distill"]) > 0
    # the teacher: same weights, frozen, in eval mode, whatever happened
    assert teacher.fingerprint == teacher_fp
    assert all(torch.equal(teacher.state_dict()[k], v) for k, v in teacher_sd.items())
    assert not teacher.trainable and not teacher.training
    config = json.loads((run / "config.json").read_text())
    assert config["encoder"]["fingerprint"] == teacher_fp
    assert config["student"]["fingerprint"] != teacher_fp


# --- the command, the student as a text encoder, resume, fine-tuning --------------------------------------------

def test_train_moclip_command_writes_a_run(moclip_run) -> None:
    for name in ("config.json", "model.safetensors", "metrics.csv", "checkpoints/last.safetensors"):
        assert (moclip_run / name).is_file(), name
    config = json.loads((moclip_run / "config.json").read_text())
    assert config["kind"] == "moclip" and config["encoder"]["name"] == TEACHER
    rows = list(csv.DictReader((moclip_run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(math.isfinite(float(r["train_total"])) for r in rows)
    assert "val_r1_motion_to_text" in rows[-1]
    tensors, _ = load_weights(moclip_run / "model.safetensors")
    assert {k.split(".")[0] for k in tensors} == {"student", "head", "logit_scale"}  # no teacher weights


def test_moclip_spec_loads_and_encodes(moclip_run) -> None:
    enc = load_encoder(f"moclip:{moclip_run}")
    config = json.loads((moclip_run / "config.json").read_text())
    assert enc.name == f"moclip:{moclip_run.name}" and enc.dim == 64
    assert enc.fingerprint == config["student"]["fingerprint"]
    assert not enc.trainable
    texts = ["a person walks forward", "someone waves with the left hand"]
    e = enc.encode_text(texts)
    assert e.shape == (2, 64) and torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    teacher = load_encoder(TEACHER).encode_text(texts)
    assert not torch.allclose(e, teacher, atol=1e-6)  # fine-tuned: not the teacher any more
    assert torch.equal(load_encoder(f"moclip:{moclip_run}").encode_text(texts), e)  # deterministic


def test_moclip_spec_errors(moclip_run, tmp_path, data) -> None:
    with pytest.raises(EncoderError, match="no such run directory"):
        load_encoder(f"moclip:{tmp_path / 'nope'}")
    (tmp_path / "ae").mkdir()
    (tmp_path / "ae" / "config.json").write_text(json.dumps({"format": "motionclip-run", "version": 1,
                                                             "model": {}, "encoder": {"name": "minilm"}}))
    with pytest.raises(EncoderError, match="not a MoCLIP run"):
        load_encoder(f"moclip:{tmp_path / 'ae'}")
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(moclip_run, broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["student"]["fingerprint"] = "0" * 16
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EncoderError, match="mixes files from different runs"):
        load_encoder(f"moclip:{broken}")


def test_resume_continues_the_same_curve(data, tmp_path) -> None:
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(tiny_config()))
    full, part = tmp_path / "full", tmp_path / "part"
    common = ["--data", str(data), "--config", str(cfg), "--quiet"]
    assert main(["train", "moclip", "--out", str(full), *common]) == 0
    assert main(["train", "moclip", "--out", str(part), *common, "--until-epoch", "2"]) == 0
    assert main(["train", "moclip", "--out", str(part), "--data", str(data), "--resume", "--quiet"]) == 0
    a = list(csv.DictReader((full / "metrics.csv").open()))
    b = list(csv.DictReader((part / "metrics.csv").open()))
    for key in ("train_total", "train_contrastive", "train_distill", "val_total"):
        assert [float(r[key]) for r in a] == pytest.approx([float(r[key]) for r in b], rel=1e-5), key
    wa, _ = load_weights(full / "model.safetensors")
    wb, _ = load_weights(part / "model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert main(["train", "moclip", "--out", str(full), *common]) == 1  # refuses to overwrite a run


def test_finetune_with_the_student_and_generate(moclip_run, data, tmp_path, capsys) -> None:
    from motionclip.core.inference import MotionModel

    ae_cfg = tmp_path / "ae.json"
    ae_cfg.write_text(json.dumps({"model": "small", "model_overrides": {"enc_layers": 1, "dec_layers": 1, "ff_dim": 64,
                                                                        "heads": 2},
                                  "encoder": TEACHER, "epochs": 1, "batch_size": 8, "window": 40,
                                  "max_steps_per_epoch": 2}))
    ae, ft = tmp_path / "ae", tmp_path / "ft"
    assert main(["train", "autoencoder", "--data", str(data), "--out", str(ae), "--config", str(ae_cfg), "--quiet"]) == 0
    assert main(["train", "finetune", "--init", str(ae), "--encoder", f"moclip:{moclip_run}", "--data", str(data),
                 "--out", str(ft), "--epochs", "1", "--max-steps-per-epoch", "2", "--quiet"]) == 0
    config = json.loads((ft / "config.json").read_text())
    assert config["train"]["lr"] == 1e-6 and config["train"]["init"] == str(ae)
    assert config["encoder"]["name"] == f"moclip:{moclip_run.name}"
    assert config["encoder"]["spec"] == f"moclip:{moclip_run.resolve()}"
    before, _ = load_weights(ae / "model.safetensors")
    after, _ = load_weights(ft / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    assert max(float((before[k] - after[k]).abs().max()) for k in before) < 1e-4  # ... at lr 1e-6
    model = MotionModel(ft, device="cpu")  # loads the student through its spec
    assert model.encoder.name == f"moclip:{moclip_run.name}"
    assert model.generate("a person walks", frames=20).num_frames == 20
    with pytest.raises(MotionClipError, match="trained with text encoder"):
        MotionModel(ft, device="cpu", encoder=load_encoder(TEACHER))  # the plain encoder is refused
    capsys.readouterr()
    assert main(["train", "finetune", "--init", str(moclip_run), "--encoder", TEACHER, "--data", str(data),
                 "--out", str(tmp_path / "x"), "--quiet"]) == 1
    assert "that is a MoCLIP run" in capsys.readouterr().err


def test_bad_command_lines(data, tmp_path, capsys) -> None:
    assert main(["train", "moclip", "--data", str(data), "--out", str(tmp_path / "r"), "--config", "nope"]) == 1
    assert "unknown MoCLIP training preset 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "moclip", "--data", str(data), "--out", str(tmp_path / "r"), "--lambda-distill", "-1"])
    assert "must be a number >= 0" in capsys.readouterr().err
    assert main(["train", "moclip", "--data", str(data), "--out", str(tmp_path / "r"), "--resume"]) == 1
    assert "no such run directory" in capsys.readouterr().err


# --- the evaluator and the standard metrics -----------------------------------------------------------------------

def test_metric_functions_by_hand() -> None:
    from motionclip.train.t2m_eval import diversity, fid, r_precision

    e = torch.eye(4)
    assert r_precision(e, e) == [1.0, 1.0, 1.0]
    shifted = e[[1, 0, 3, 2]]  # each text's nearest motion is another one; its own is second
    assert r_precision(e, shifted + 0.1 * e) == [0.0, 1.0, 1.0]
    # four corners of a unit square: 4 sides of 1 and 2 diagonals of sqrt 2 over 6 pairs
    sq = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert diversity(sq) == pytest.approx((4 + 2 * math.sqrt(2)) / 6)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 3))
    assert fid(a, a.mean(0), np.cov(a, rowvar=False)) == pytest.approx(0.0, abs=1e-6)
    # a mean shift of (1, 0, 0) adds 1
    assert fid(a + [1.0, 0, 0], a.mean(0), np.cov(a, rowvar=False)) == pytest.approx(1.0, abs=1e-6)


def test_eval_with_evaluator_end_to_end(moclip_run, data, tmp_path, capsys) -> None:
    """`train evaluator` then `eval --evaluator` on a model that uses the MoCLIP student: table, JSON, plot."""
    ae_cfg = tmp_path / "ae.json"
    ae_cfg.write_text(json.dumps({"model": "small", "model_overrides": {"enc_layers": 1, "dec_layers": 1, "ff_dim": 64,
                                                                        "heads": 2},
                                  "encoder": f"moclip:{moclip_run}", "epochs": 1, "batch_size": 8, "window": 40,
                                  "max_steps_per_epoch": 2}))
    ae, ev, out = tmp_path / "ae", tmp_path / "ev", tmp_path / "out"
    assert main(["train", "autoencoder", "--data", str(data), "--out", str(ae), "--config", str(ae_cfg), "--quiet"]) == 0
    ev_cfg = tmp_path / "ev.json"
    ev_cfg.write_text(json.dumps({"model": {"word_dim": 16, "text_hidden": 16, "motion_width": 32, "motion_layers": 1,
                                            "ff_dim": 32, "dim": 16}, "batch_size": 8, "max_steps_per_epoch": 2}))
    assert main(["train", "evaluator", "--data", str(data), "--out", str(ev), "--config", str(ev_cfg), "--epochs", "2",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ae), "--data", str(data), "--split", "train", "--evaluator", str(ev),
                 "--repeats", "2", "--stride", "20", "--out", str(out), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    gt, model = result["rows"]["ground truth"], result["rows"][f"ae (moclip:{moclip_run.name})"]
    for m in ("r_precision_top1", "r_precision_top3", "fid", "mm_dist", "diversity"):
        assert len(gt["runs"][m]) == 2 and math.isfinite(gt[m]["mean"]) and math.isfinite(model[m]["mean"])
    assert gt["r_precision_top1"]["mean"] <= gt["r_precision_top3"]["mean"] <= 1.0
    for m in ("multimodality", "recognition_top1", "recognition_top5", "mpjpe_mm"):
        assert m in model and m not in gt
    assert (out / "eval.json").is_file() and (out / "eval.png").stat().st_size > 10_000
    table = (out / "eval.md").read_text()
    assert "| ground truth |" in table and "R-prec top-1" in table


def test_a_moclip_run_is_not_a_motion_model(moclip_run, tmp_path, capsys) -> None:
    assert main(["generate", "a person walks", "--checkpoint", str(moclip_run), "--out", str(tmp_path / "x.bvh"),
                 "--device", "cpu"]) == 1
    assert "a moclip run, not a MotionCLIP motion model; use it as a text encoder" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_under_torchrun_match_one(data, tmp_path) -> None:
    """DDP: the embeddings of every process are gathered for the loss, so 2 processes with half the batch each
    follow the very curve of 1 process with the whole batch (no dropout: its masks depend on the local batch)."""
    import os
    import shutil
    import subprocess
    import sys

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(tiny_config(head={**TINY_HEAD, "dropout": 0.0})))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    args = ["train", "moclip", "--data", str(data), "--config", str(cfg), "--quiet"]
    subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "motionclip.core.cli", *args, "--out", str(tmp_path / "two")],
                   check=True, env=env, timeout=600, capture_output=True)
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    a = list(csv.DictReader((tmp_path / "one" / "metrics.csv").open()))
    b = list(csv.DictReader((tmp_path / "two" / "metrics.csv").open()))
    assert len(a) == len(b) == 3
    for key in ("train_total", "train_contrastive", "train_distill", "train_align"):
        assert [float(r[key]) for r in a] == pytest.approx([float(r[key]) for r in b], rel=1e-5, abs=1e-7), key


# --- progressive unfreezing -------------------------------------------------------------------------------------

def test_progressive_unfreezing_trains_the_top_layers_only() -> None:
    from motionclip.core.models.moclip import student_frozen_parameters, student_num_layers
    from motionclip.train.moclip import TrainError

    student = load_encoder(TEACHER)  # the tiny CLIP: resblocks 0 and 1, embeddings, final norm, projection
    model = MoCLIP(student, MotionHeadConfig(out_dim=student.dim, **TINY_HEAD))
    assert student_num_layers(student) == 2
    model.set_trainable(["head", "student"], student_layers=1)
    trains = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trains and all(".resblocks.0." not in n and "embedding" not in n for n in trains)
    assert any(".resblocks.1." in n for n in trains) and any("ln_final" in n for n in trains)
    assert all(p.requires_grad for p in model.head.parameters()) and model.logit_scale.requires_grad
    model.set_trainable(["head", "student"], student_layers=2)  # every layer: the embeddings train too
    assert all(p.requires_grad for p in student.parameters())
    model.set_trainable(["head"])
    assert not any(p.requires_grad for p in student.parameters()) and not student.training
    with pytest.raises(MotionClipError, match="positive whole number"):
        student_frozen_parameters(student, 0)
    with pytest.raises(MotionClipError, match="no numbered transformer layers"):
        student_frozen_parameters(torch.nn.Linear(2, 2), 1)
    with pytest.raises(TrainError, match="student_layers must be a positive whole number"):
        MoCLIPTrainConfig.from_dict(tiny_config(phases=[{"epochs": 1, "train": ["head"], "lr": 1e-3,
                                                         "student_layers": 1}]))
    with pytest.raises(TrainError, match="val_max_windows"):
        MoCLIPTrainConfig.from_dict(tiny_config(val_max_windows=-1))


def test_progressive_phases_train_the_named_layers(data, tmp_path) -> None:
    """Through the trainer: a phase with student_layers 1 changes the top layer and leaves the lower one and the
    embeddings exactly the teacher's; val_max_windows validates on that many windows."""
    cfg = load_moclip_config(None, tiny_config(val_max_windows=8, phases=[
        {"name": "head", "epochs": 1, "train": ["head"], "lr": 1e-3},
        {"name": "top1", "epochs": 1, "train": ["head", "student"], "student_layers": 1, "lr": 1e-2}]))
    metrics = train_moclip(data, tmp_path / "run", cfg, progress=False)
    assert metrics["phase"] == "top1" and math.isfinite(metrics["val_total"])
    teacher = dict(load_encoder(TEACHER, text_only=True).state_dict())
    weights, _ = load_weights(tmp_path / "run" / "model.safetensors")
    student = {k[len("student."):]: v for k, v in weights.items() if k.startswith("student.")}
    assert set(student) == set(teacher)
    changed = {k for k in teacher if not torch.equal(teacher[k].float(), student[k].float())}
    assert changed and all(".resblocks.1." in k or "ln_final" in k or "text_projection" in k for k in changed)
    assert any(".resblocks.1." in k for k in changed)


# --- the paraphrase test set ------------------------------------------------------------------------------------

def _training_phrasings() -> set[str]:
    """Every text core/data/texts.py can give a clip (all subject x verb x style combinations, mirrored too), its
    verb phrases alone, and the DeepMimic / CMU texts."""
    from motionclip.core.data.texts import (BANDAI_CONTENT, BANDAI_STYLE, CMU, DEEPMIMIC, SUBJECTS, mirror_text)

    out = set()
    for verbs in BANDAI_CONTENT.values():
        for v in verbs:
            out.add(v)
            for s in SUBJECTS:
                for adverbs in BANDAI_STYLE.values():
                    out.update(f"{s} {v} {a}".strip() for a in adverbs)
    for texts in [*DEEPMIMIC.values(), *CMU.values()]:
        out.update(texts)
    out |= {mirror_text(t) for t in out}
    return {_norm(t) for t in out}


def _norm(text: str) -> str:
    import re

    return " ".join(re.findall(r"[a-z]+", text.lower()))


def test_paraphrases_cover_every_action_and_no_training_text_uses_them() -> None:
    import re

    from motionclip.core.data.synth import TEXTS
    from motionclip.core.data.texts import BANDAI_CONTENT, SUBJECTS
    from motionclip.train.paraphrase_eval import MIN_PER_ACTION, load_paraphrases

    para = load_paraphrases()
    assert set(para) == set(BANDAI_CONTENT)  # every action of Bandai-Namco datasets 1 and 2, nothing else
    assert all(len(set(ps)) == len(ps) >= MIN_PER_ACTION for ps in para.values())
    seen = _training_phrasings()
    assert len(seen) > 5000 and _norm("a person walks happily") in seen and _norm("lifts both arms up") in seen
    # the synthetic generator's templates, any field filled with anything
    synth = [_template_pattern(t) for ts in TEXTS.values() for t in ts]
    for action, texts in para.items():
        for t in texts:
            n = _norm(t)
            bare = [n] + [n[len(s) + 1:] for s in map(_norm, SUBJECTS) if n.startswith(s + " ")]
            assert not any(b in seen for b in bare), f"{action}: {t!r} is a training phrasing"
            assert not any(p.fullmatch(b) for p in synth for b in bare), f"{action}: {t!r} is a synthetic template"
    # the sides are right: a left action's paraphrases say left, never right (and the other way round)
    for action, texts in para.items():
        for side, other in (("left", "right"), ("right", "left")):
            if action.endswith(side) or action.endswith(f"{side}-hand"):
                assert all(side in t and other not in t for t in texts), action


def _template_pattern(template: str):
    """A synthetic text template as a regular expression over normalised words: the fields whose values are known
    (subject, side, direction, tempo) take those, any other field anything."""
    import re

    known = {"who": "(a person|someone|a man|a woman|the person|a human)", "side": "(left|right)",
             "dir": "(forward|backward|forward curving to the (left|right))?", "adv": "(slowly|quickly)?",
             "adv_end": "(slowly|quickly)?", "pace": "(slow|fast|steady)", "their": "(their|his|her)",
             "turn": "turns (around|degrees)", "first": "(left|right)", "second": "(left|right)"}
    words = re.findall(r"[a-z]+|\{\w+\}", template.lower())
    parts = [known.get(w[1:-1], ".*") if w.startswith("{") else re.escape(w) for w in words]
    return re.compile(" ?".join(parts))


def test_paraphrase_file_errors(tmp_path) -> None:
    from motionclip.train.paraphrase_eval import load_paraphrases

    with pytest.raises(MotionClipError, match="paraphrase file not found"):
        load_paraphrases(tmp_path / "missing.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("# comment\nwalk\tstrolls along\nrun jogs without a tab\n")
    with pytest.raises(MotionClipError, match=r"bad.tsv: line 3: expected 'action<TAB>text'"):
        load_paraphrases(bad)
    empty = tmp_path / "empty.tsv"
    empty.write_text("# nothing\n\n")
    with pytest.raises(MotionClipError, match="no paraphrases in it"):
        load_paraphrases(empty)


def test_action_r_precision_by_hand() -> None:
    from motionclip.train.paraphrase_eval import action_r_precision

    e = torch.eye(4)
    # text 0's nearest motion is motion 1: a miss when 1 shows another action, a hit when it shows the same one
    motion = e[[1, 0, 2, 3]] + 0.1 * e
    assert action_r_precision(e, motion, ["a", "b", "c", "d"]) == [0.5, 1.0, 1.0]
    assert action_r_precision(e, motion, ["a", "a", "c", "d"]) == [1.0, 1.0, 1.0]


@pytest.fixture(scope="module")
def moclip_ae(moclip_run, data, tmp_path_factory) -> Path:
    """A tiny MotionCLIP trained with the MoCLIP student as its text encoder, through the real command."""
    root = tmp_path_factory.mktemp("moclip-ae")
    cfg = root / "ae.json"
    cfg.write_text(json.dumps({"model": "small", "model_overrides": {"enc_layers": 1, "dec_layers": 1, "ff_dim": 64,
                                                                     "heads": 2},
                               "encoder": f"moclip:{moclip_run}", "epochs": 1, "batch_size": 8, "window": 40,
                               "max_steps_per_epoch": 2}))
    assert main(["train", "autoencoder", "--data", str(data), "--out", str(root / "ae"), "--config", str(cfg),
                 "--quiet"]) == 0
    return root / "ae"


def _synth_paraphrases(path: Path) -> Path:
    from motionclip.core.data.synth import ACTIONS

    own = {"walk": ["strolls along", "goes for a stroll"], "run": ["hurries on foot"], "bow": ["bends at the waist"],
           "wave": ["says hi with a hand"], "squat": ["crouches low"], "clap": ["applauds with both palms"]}
    path.write_text("# wordings of the synthetic actions\n" + "".join(
        f"{a}\t{t}\n" for a in ACTIONS for t in own.get(a, [f"an attempt at {a.replace('_', ' ')}"])))
    return path


def test_eval_with_paraphrases(moclip_ae, data, tmp_path, capsys) -> None:
    """`eval --paraphrases FILE` (and with --evaluator): retrieval and generation on training texts and paraphrases."""
    para = _synth_paraphrases(tmp_path / "para.tsv")
    ev_cfg = tmp_path / "ev.json"
    ev_cfg.write_text(json.dumps({"model": {"word_dim": 16, "text_hidden": 16, "motion_width": 32, "motion_layers": 1,
                                            "ff_dim": 32, "dim": 16}, "batch_size": 8, "max_steps_per_epoch": 2}))
    ev, out = tmp_path / "ev", tmp_path / "out"
    assert main(["train", "evaluator", "--data", str(data), "--out", str(ev), "--config", str(ev_cfg), "--epochs", "1",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(moclip_ae), "--data", str(data), "--split", "train", "--paraphrases",
                 str(para), "--evaluator", str(ev), "--repeats", "2", "--stride", "20", "--seeds", "2", "--device", "cpu",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    name = result["model"]
    assert name.startswith("ae (moclip:")
    ret = result["retrieval"]["rows"][name]
    for kind in ("training", "paraphrase"):
        assert ret[kind]["r_precision_top1"]["runs"] == 2
        assert 0 <= ret[kind]["r_precision_top1"]["mean"] <= ret[kind]["r_precision_top3"]["mean"] <= 1
        assert 0 <= ret[kind]["mm_dist"]["mean"] <= 2
        assert result["t2m"][kind]["texts"] == kind and name in result["t2m"][kind]["rows"]
        g = result["generation"][kind]
        assert g["actions"] >= 1 and 0 <= g["recognised_top1_mean"] <= 1
    # the paraphrase moves report generated from the paraphrases: other motions than from the plain prompts
    plain, paraphrased = result["moves"]["training"], result["moves"]["paraphrase"]
    walk = "walk" if "walk" in plain["per_action"] else sorted(set(plain["actions"]) & {"run", "bow", "wave"})[0]
    assert plain["per_action"][walk]["generated"] != paraphrased["per_action"][walk]["generated"]
    text = (out / "paraphrases.md").read_text()
    assert "| ae (moclip:" in text and "| paraphrase |" in text and (out / "paraphrases.json").is_file()
    # without the evaluator: retrieval and liveliness only; a file without the split's actions is refused
    assert main(["eval", "--checkpoint", str(moclip_ae), "--data", str(data), "--split", "train", "--paraphrases",
                 str(para), "--repeats", "1", "--stride", "20", "--seeds", "1", "--device", "cpu"]) == 0
    assert "Retrieval in the model's own space" in capsys.readouterr().out
    other = tmp_path / "other.tsv"
    other.write_text("cartwheel-jump\tdoes a flip\n")
    assert main(["eval", "--checkpoint", str(moclip_ae), "--data", str(data), "--split", "train", "--paraphrases",
                 str(other), "--device", "cpu"]) == 1
    assert "no window of the split has an action with paraphrases" in capsys.readouterr().err


def test_server_on_loopback_with_a_moclip_model(moclip_ae, moclip_run, tmp_path) -> None:
    """The real `motionclip serve` on a loopback port with a model trained with the MoCLIP student: it loads the
    student (by the run's recorded spec, checked by fingerprint) and generates what the Python API generates."""
    import subprocess
    import sys
    import threading
    import urllib.request

    from motionclip.core.inference import MotionModel
    from motionclip.core.io.json_motion import data_to_motion
    from motionclip.core.protocol import MotionData

    exe = Path(sys.executable).with_name("motionclip")
    proc = subprocess.Popen([str(exe), "serve", "--checkpoint", str(moclip_ae), "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, lines, started = [], [], threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "listening on http://" in line and not url:
                url.append(line.split("listening on ", 1)[1].split()[0])
                started.set()
        started.set()

    threading.Thread(target=read, daemon=True).start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        assert started.wait(240) and url, "".join(lines)
        assert url[0].startswith("http://127.0.0.1:")
        with opener.open(url[0] + "/health", timeout=60) as r:
            health = json.loads(r.read())
        assert health["status"] == "ok" and health["text_encoder"] == f"moclip:{moclip_run.name}"
        req = urllib.request.Request(url[0] + "/generate", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"prompt": "someone strolls along", "frames": 30, "seed": 3}).encode())
        with opener.open(req, timeout=120) as r:
            body = json.loads(r.read())
    finally:
        proc.terminate()
        proc.wait(60)
    served = data_to_motion(MotionData.from_json(body))
    local = MotionModel(moclip_ae, device="cpu").generate("someone strolls along", frames=30, seed=3)
    assert served.num_frames == 30 and torch.allclose(served.quats, local.quats, atol=2e-5)
    assert torch.allclose(served.trans, local.trans, atol=2e-5)
    # and the command line, the same way (the run's recorded encoder: the student)
    assert main(["generate", "someone strolls along", "--checkpoint", str(moclip_ae), "--frames", "30", "--seed", "3",
                 "--out", str(tmp_path / "stroll.bvh"), "--device", "cpu"]) == 0
    assert (tmp_path / "stroll.bvh").read_text().startswith("HIERARCHY")


def test_finetune_does_not_repeat_the_init_runs_warmup() -> None:
    from motionclip.core.run import read_config
    from motionclip.train.moclip_cli import finetune_config

    builtin = Path(__file__).resolve().parents[1] / "core" / "assets" / "model"
    assert read_config(builtin)["train"]["warmup_steps"] > 0  # the built-in recipe warms up
    cfg = finetune_config(builtin, "minilm", {})
    assert cfg.warmup_steps == 0 and cfg.lr == 1e-6 and cfg.init == str(builtin)
    assert finetune_config(builtin, "minilm", {"warmup_steps": 5}).warmup_steps == 5


def test_retrieval_scores_by_hand() -> None:
    from motionclip.train.paraphrase_eval import retrieval_scores

    e = torch.eye(4)
    r = retrieval_scores(e, e, ["a", "b", "c", "d"], seed=0, batch_size=4)
    assert r["r_precision_top1"] == 1.0 and r["mm_dist"] == pytest.approx(0.0)
    r = retrieval_scores(e, -e, ["a", "b", "c", "d"], seed=0, batch_size=4)  # each motion opposite its text
    assert r["mm_dist"] == pytest.approx(2.0) and r["r_precision_top1"] == 0.0
    with pytest.raises(MotionClipError, match="3 windows are fewer than one retrieval batch of 4"):
        retrieval_scores(e[:3], e[:3], ["a", "b", "c"], seed=0, batch_size=4)


def test_generate_with_text_encoder_when_the_moclip_run_moved(moclip_ae, moclip_run, tmp_path, capsys) -> None:
    """A model trained with a MoCLIP student whose run folder moved: `generate` fails naming the missing
    student, and `--text-encoder moclip:NEW_PLACE` loads it (checked by content against the run's record);
    another encoder is refused; --text-encoder with --server is refused (the server has its own)."""
    import shutil

    ae = tmp_path / "ae"
    shutil.copytree(moclip_ae, ae)
    moved = tmp_path / "moved-student"
    shutil.copytree(moclip_run, moved)
    record = json.loads((ae / "config.json").read_text())
    record["encoder"]["spec"] = f"moclip:{tmp_path / 'gone'}"  # where the student was when the model trained
    (ae / "config.json").write_text(json.dumps(record))
    out = tmp_path / "w.bvh"
    base = ["generate", "someone strolls along", "--checkpoint", str(ae), "--frames", "20", "--seed", "1",
            "--device", "cpu", "--out", str(out)]
    capsys.readouterr()
    assert main(base) == 1 and not out.exists()
    assert "gone" in capsys.readouterr().err
    assert main(base + ["--text-encoder", f"moclip:{moved}"]) == 0 and out.read_text().startswith("HIERARCHY")
    assert main(base + ["--text-encoder", "minilm"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert main(base + ["--text-encoder", f"moclip:{moved}", "--server", "http://127.0.0.1:9"]) == 1
    assert "--text-encoder loads a model here" in capsys.readouterr().err
