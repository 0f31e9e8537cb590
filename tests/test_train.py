"""`motionclip train autoencoder` as users run it, on small synthetic data, CPU only.

A run directory with everything in it and a falling loss; weights that reload to the very model
that was trained; exact resume; 2 processes under torchrun == 1 process at the same global batch;
clear one-line errors for bad input. Tiny models (1 + 1 layers, 64-d) and the random tiny CLIP
text encoder keep the whole file under a minute on a (busy) 2-core CPU.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import motionclip.train.autoencoder as ae
from motionclip.core.cli import main
from motionclip.core.data.synth import synthesize
from motionclip.core.data.windows import MotionWindows, collate_motion
from motionclip.core.models.motionclip import MotionCLIP, MotionCLIPConfig
from motionclip.core.run import RunError, load_model, load_weights, save_weights

EXE = shutil.which("motionclip") or str(Path(sys.executable).parent / "motionclip")
ENCODER = "clip-random:tiny"  # 64-d, random weights, no download
WINDOW = 30
TINY = {"enc_layers": 1, "dec_layers": 1, "ff_dim": 64, "heads": 2}


def write_config(path: Path, dropout: float, **train) -> Path:
    path.write_text(json.dumps({"model": "small", "model_overrides": {**TINY, "dropout": dropout},
                                "encoder": ENCODER, "batch_size": 8, "window": WINDOW, **train}))
    return path


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"  # as in this process (see conftest.one_torch_thread): same numbers, no oversubscription
    return env


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_main(*args: str) -> None:
    """The command in this process (cheaper than a new interpreter importing torch and CLIP)."""
    assert main(["train", "autoencoder", *args, "--quiet"]) == 0


def run_cli(*args: str, launcher: list[str] | None = None, timeout: int = 300,
            trainer: str = "autoencoder") -> subprocess.CompletedProcess:
    """`train TRAINER` by the installed command (or a launcher such as torchrun) in its own process group: a
    hang fails the test after `timeout` seconds and takes every process it started with it."""
    cmd = [*(launcher or [EXE]), "train", trainer, *args, "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"{' '.join(cmd)} still running after {timeout} s (a hang?)\n{out}\n{err}")
    assert p.returncode == 0, f"exit {p.returncode}\n{out}\n{err}"
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "motionclip.core.cli"]


def read_metrics(run: Path) -> list[dict[str, float]]:
    with (run / "metrics.csv").open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensors[k].flatten().double() for k in sorted(tensors)])


def fixed_batch(data: Path, n: int = 4) -> dict:
    val = MotionWindows(data, "val", window=WINDOW)
    return collate_motion([val[i] for i in range(min(n, len(val)))])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train") / "ds"
    synthesize(root, clips=24, seed=0, progress=False)  # 21 train / 2 val / 1 test clips, 69-170 frames
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """One real run (main() in this process, as the entry point calls it), keeping the trained model object."""
    tmp = tmp_path_factory.mktemp("run")
    run = tmp / "run"
    made: list[MotionCLIP] = []

    class Capture(MotionCLIP):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ae, "MotionCLIP", Capture)
        rc = main(["train", "autoencoder", "--data", str(dataset), "--out", str(run), "--config",
                   str(write_config(tmp / "cfg.json", dropout=0.1, lr=1e-3, max_steps_per_epoch=8)),
                   "--epochs", "3", "--seed", "3", "--quiet"])
    assert rc == 0 and len(made) == 1
    return run, made[0]


# --- 1. a training run ----------------------------------------------------------------------------------------

def test_run_directory_and_falling_loss(trained) -> None:
    run, _ = trained
    for name in ("config.json", "model.safetensors", "checkpoints/last.safetensors", "metrics.csv"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100

    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["step"] for r in rows] == [8, 16, 24]
    first, last = rows[0]["train_total"], rows[-1]["train_total"]
    assert last < 0.6 * first, f"loss did not fall: {first} -> {last}"
    assert all(k in rows[-1] for k in ("train_rc", "train_rcxyz", "train_vel", "train_text", "val_total",
                                       "val_mpjpe_mm", "latent_norm"))

    config = json.loads((run / "config.json").read_text())
    from motionclip.core.encoders import load_encoder
    enc = load_encoder(ENCODER, device="cpu")
    assert config["encoder"]["name"] == ENCODER and config["encoder"]["fingerprint"] == enc.fingerprint
    assert config["encoder"]["dim"] == 64
    assert config["model"] == MotionCLIPConfig(latent_dim=64, **TINY, dropout=0.1, root="velocity").to_dict()  # "small"
    train = config["train"]
    assert (train["epochs"], train["batch_size"], train["seed"], train["window"], train["encoder"]) == \
        (3, 8, 3, WINDOW, ENCODER)
    assert config["world_size"] == 1 and config["metrics"]["epoch"] == 3
    assert config["metrics"]["train_total"] == pytest.approx(last)

    meta = load_weights(run / "checkpoints" / "last.safetensors")[1]
    assert (meta["epoch"], meta["step"]) == ("3", str(int(rows[-1]["step"])))


# --- 2. reload ---------------------------------------------------------------------------------------------------

@torch.no_grad()
def test_checkpoint_reloads_to_the_trained_model(trained, dataset) -> None:
    run, model = trained
    batch = fixed_batch(dataset)
    model.eval()
    want = model(batch)
    loaded, config = load_model(run)
    assert not loaded.training  # eval mode: dropout 0.1 is off
    got = loaded(batch)
    for k in ("z", "rot6d", "trans"):
        assert torch.equal(got[k], want[k]), k
    assert torch.equal(loaded(batch)["z"], got["z"])  # deterministic
    # Not trivially equal: a model of the same config with other weights answers differently.
    torch.manual_seed(123)
    other = MotionCLIP(MotionCLIPConfig.from_dict(config["model"])).eval()
    assert not torch.allclose(other(batch)["rot6d"], want["rot6d"], atol=1e-3)
    # The resume checkpoint holds the same weights as model.safetensors.
    ckpt = load_weights(run / "checkpoints" / "last.safetensors")[0]
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt[f"model.{k}"], v), k


# --- 3. exact resume ---------------------------------------------------------------------------------------------

def test_resume_continues_the_same_loss_curve(dataset, tmp_path) -> None:
    """Dropout, variable-length windows and mirroring on: every random source must be restored."""
    cfg = str(write_config(tmp_path / "cfg.json", dropout=0.1, min_window=20, max_steps_per_epoch=4, seed=1))
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_main("--data", str(dataset), "--out", str(straight), "--config", cfg, "--epochs", "4")
    run_main("--data", str(dataset), "--out", str(resumed), "--config", cfg, "--epochs", "2")
    assert [r["epoch"] for r in read_metrics(resumed)] == [1, 2]
    # The resume in a fresh process, as after a crash or a cluster job's time limit.
    r = run_cli("--data", str(dataset), "--out", str(resumed), "--resume", "--epochs", "4")
    assert '"epoch": 4' in r.stdout

    a, b = read_metrics(straight), read_metrics(resumed)
    assert [x["epoch"] for x in b] == [1, 2, 3, 4] and [x["step"] for x in b] == [x["step"] for x in a]
    for x, y in zip(a, b):
        for k in ("train_total", "train_rc", "train_text", "val_total", "latent_norm"):
            assert y[k] == pytest.approx(x[k], rel=1e-6, abs=0), (x["epoch"], k, x[k], y[k])
    assert b[3]["train_total"] < b[0]["train_total"]
    wa, wb = load_weights(straight / "model.safetensors")[0], load_weights(resumed / "model.safetensors")[0]
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst == 0.0, f"resumed weights differ from the straight run's by up to {worst}"
    assert json.loads((resumed / "config.json").read_text())["train"]["epochs"] == 4


# --- 4. distributed ----------------------------------------------------------------------------------------------

def test_two_processes_match_one(dataset, tmp_path) -> None:
    """torchrun, 2 CPU processes (gloo) x local batch 4 == 1 process x batch 8: same data, same averaged gradients."""
    cfg = str(write_config(tmp_path / "cfg.json", dropout=0.0, epochs=2, max_steps_per_epoch=5, seed=2))
    one, two = tmp_path / "one", tmp_path / "two"
    run_main("--data", str(dataset), "--out", str(one), "--config", cfg)
    run_cli("--data", str(dataset), "--out", str(two), "--config", cfg, launcher=TORCHRUN)
    config = json.loads((two / "config.json").read_text())
    assert config["world_size"] == 2

    a, b = read_metrics(one), read_metrics(two)
    assert [x["epoch"] for x in b] == [1, 2] and [x["step"] for x in b] == [x["step"] for x in a]
    for x, y in zip(a, b):
        for k in ("train_total", "train_rc", "train_text", "latent_norm", "val_total", "val_mpjpe_mm"):
            assert y[k] == pytest.approx(x[k], rel=1e-5), (x["epoch"], k, x[k], y[k])

    wa, wb = load_weights(one / "model.safetensors")[0], load_weights(two / "model.safetensors")[0]
    A, B = flat(wa), flat(wb)
    torch.manual_seed(2)  # the initial weights (the trainer seeds, then builds the model)
    W0 = flat(MotionCLIP(MotionCLIPConfig.from_dict(config["model"])).state_dict())
    moved = float((A - W0).norm() / A.norm())
    assert 1e-3 < moved < 0.1  # training moved the weights (and W0 really is the initialisation)
    diff = float((A - B).norm() / A.norm())
    assert diff < 1e-4 and diff < 0.01 * moved, f"2 processes vs 1: relative weight difference {diff} (moved {moved})"


def test_two_processes_with_one_validation_window(dataset, tmp_path) -> None:
    """A validation split smaller than the number of processes: a rank with nothing to validate must still
    take part in the reductions (it once skipped them, and the other rank waited forever)."""
    data = tmp_path / "ds"
    shutil.copytree(dataset, data)
    index = json.loads((data / "index.json").read_text())
    val = sorted((c for c in index["clips"] if c["split"] == "val"), key=lambda c: c["frames"])
    for c in val[1:]:
        c["split"] = "test"
    (data / "index.json").write_text(json.dumps(index))
    window = val[0]["frames"] + 1  # the one val clip is a single (shorter) window
    cfg = str(write_config(tmp_path / "cfg.json", dropout=0.0, epochs=1, max_steps_per_epoch=2, window=window,
                           min_window=10))
    run_cli("--data", str(data), "--out", str(tmp_path / "run"), "--config", cfg, launcher=TORCHRUN, timeout=120)
    (row,) = read_metrics(tmp_path / "run")
    assert row["val_total"] > 0 and row["val_mpjpe_mm"] > 0


# --- 5. bad input ------------------------------------------------------------------------------------------------

def one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_bad_training_input(dataset, trained, tmp_path, capsys) -> None:
    base = ["train", "autoencoder", "--data", str(dataset), "--encoder", ENCODER, "--quiet"]
    one_line_error(capsys, [*base, "--out", str(tmp_path / "a"), "--config", "nope"], "unknown training preset", "nope")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochs": 2, "bogus_field": 1}))
    one_line_error(capsys, [*base, "--out", str(tmp_path / "b"), "--config", str(bad)], "unknown field", "bogus_field")
    bad.write_text(json.dumps({"model_overrides": {"enc_layers": 1, "bogus_layer": 1}}))
    one_line_error(capsys, [*base, "--out", str(tmp_path / "b"), "--config", str(bad)], "unknown field", "bogus_layer")
    bad.write_text("{not json")
    one_line_error(capsys, [*base, "--out", str(tmp_path / "b"), "--config", str(bad)], "invalid JSON")
    one_line_error(capsys, [*base, "--out", str(tmp_path / "b"), "--config", str(tmp_path / "missing.json")],
                   "not found")

    # A dataset whose train split is empty, and a folder that is not a dataset.
    empty = tmp_path / "empty_train"
    shutil.copytree(dataset, empty, ignore=shutil.ignore_patterns("cache"))
    index = json.loads((empty / "index.json").read_text())
    for clip in index["clips"]:
        clip["split"] = "val"
    (empty / "index.json").write_text(json.dumps(index))
    args = ["train", "autoencoder", "--encoder", ENCODER, "--quiet", "--window", str(WINDOW)]
    one_line_error(capsys, [*args, "--data", str(empty), "--out", str(tmp_path / "c")], "train", "0 clips")
    (tmp_path / "not_a_dataset").mkdir()
    one_line_error(capsys, [*args, "--data", str(tmp_path / "not_a_dataset"), "--out", str(tmp_path / "c")],
                   "not a dataset")
    one_line_error(capsys, [*args, "--data", str(dataset), "--out", str(tmp_path / "c"), "--batch-size", "5000"],
                   "fewer than one batch")
    assert not (tmp_path / "c").exists()

    # --out already holds a run; --resume of a folder without a checkpoint.
    run, _ = trained
    before = (run / "model.safetensors").read_bytes()
    one_line_error(capsys, [*args, "--data", str(dataset), "--out", str(run)], "already holds a run", "--resume")
    assert (run / "model.safetensors").read_bytes() == before
    (tmp_path / "empty_run").mkdir()
    one_line_error(capsys, [*args, "--data", str(dataset), "--out", str(tmp_path / "empty_run"), "--resume"],
                   "config.json")
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    shutil.copy(run / "config.json", no_ckpt / "config.json")
    one_line_error(capsys, [*args, "--data", str(dataset), "--out", str(no_ckpt), "--resume"], "nothing to resume")
    # A corrupt resume checkpoint.
    broken = tmp_path / "broken_ckpt"
    shutil.copytree(run, broken)
    (broken / "checkpoints" / "last.safetensors").write_bytes(b"\x00garbage" * 100)
    one_line_error(capsys, [*args, "--data", str(dataset), "--out", str(broken), "--resume", "--epochs", "4"],
                   "last.safetensors", "corrupt")


def test_load_model_errors(trained, tmp_path) -> None:
    run, _ = trained
    good = (run / "model.safetensors").read_bytes()

    def copy(name: str, weights: bytes | None = None) -> Path:
        d = tmp_path / name
        shutil.copytree(run, d)
        if weights is not None:
            (d / "model.safetensors").write_bytes(weights)
        return d

    for name, data in (("garbage", os.urandom(4096)), ("zeros", bytes(4096)), ("truncated", good[:len(good) // 2]),
                       ("empty", b"")):
        d = copy(name, data)
        with pytest.raises(RunError, match="model.safetensors") as exc:
            load_model(d)
        assert "corrupt" in str(exc.value) or "truncated" in str(exc.value), str(exc.value)

    # Weights of another model config: refused by the SHA-256 config.json records; in a run written before
    # SHA-256s were recorded, by the names and shapes that do not fit.
    cfg = json.loads((run / "config.json").read_text())
    for name, change in (("layers", {"enc_layers": 2}), ("width", {"ff_dim": 128})):
        d = copy(name)
        save_weights(MotionCLIP(MotionCLIPConfig.from_dict({**cfg["model"], **change})).state_dict(),
                     d / "model.safetensors")
        with pytest.raises(RunError, match="SHA-256") as exc:
            load_model(d)
        assert "model.safetensors" in str(exc.value)
        (d / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "sha256"}))
        with pytest.raises(RunError, match="do not fit") as exc:
            load_model(d)
        assert "model.safetensors" in str(exc.value)

    d = copy("missing")
    (d / "model.safetensors").unlink()
    with pytest.raises(RunError, match="missing"):
        load_model(d)
    with pytest.raises(RunError, match="no such run directory"):
        load_model(tmp_path / "nowhere")


def test_train_help(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "autoencoder", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--data", "--out", "--config", "--resume", "--epochs", "--batch-size", "--encoder", "--seed",
                 "--window", "--min-window", "--max-steps-per-epoch", "--checkpoint-every", "--quiet", "torchrun"):
        assert flag in out, flag
    r = subprocess.run([EXE, "train", "autoencoder", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage: motionclip train autoencoder" in r.stdout


# --- the built-in recipe: learning-rate schedule, feature statistics, leaving the mean pose ---------------------

def test_warmup_then_cosine_schedule() -> None:
    cfg = ae.TrainConfig(lr=1e-3, warmup_steps=10, lr_schedule="cosine", final_lr_ratio=0.1)
    lrs = [ae.lr_at(cfg, s, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then only down
    assert lrs[60] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=0.02)  # half way: half way down
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)
    assert ae.lr_at(ae.TrainConfig(lr=1e-3), 500, 10) == 1e-3  # constant
    with pytest.raises(ae.TrainError, match="lr_schedule"):
        ae.TrainConfig(lr_schedule="linear")
    with pytest.raises(ae.TrainError, match="warmup_steps"):
        ae.TrainConfig(warmup_steps=-1)


def test_feature_statistics_match_the_windows(dataset) -> None:
    from motionclip.core.models.motionclip import config_from_preset

    windows = MotionWindows(dataset, "train", window=WINDOW, mirror_prob=0.5)
    model = MotionCLIP(config_from_preset("builtin", latent_dim=64, **TINY))
    mean, std = ae.feature_statistics(model, windows, limit=10_000)
    feats = torch.cat([model.features(windows[i]["rot6d"][None], windows[i]["trans"][None], normalized=False)[0]
                       for i in range(len(windows))])
    assert torch.allclose(mean, feats.mean(0), atol=1e-4) and torch.allclose(std, feats.std(0, unbiased=False), atol=1e-4)


def _ankle_speed(rot6d: torch.Tensor, trans: torch.Tensor, fps: float) -> float:
    """Mean speed (m/s) of the ankles relative to the pelvis, over [B, T] frames."""
    from motionclip.core.rotations import rot6d_to_matrix
    from motionclip.core.skeleton import neutral_skeleton

    joints = neutral_skeleton().forward_kinematics(rot6d_to_matrix(rot6d), trans)[0]  # [B, T, 24, 3]
    rel = joints[..., [7, 8], :] - joints[..., :1, :]
    return float((rel[:, 1:] - rel[:, :-1]).norm(dim=-1).mean()) * fps


def test_the_builtin_recipe_starts_moving_the_feet(tmp_path) -> None:
    """On a few synthetic walk windows the built-in recipe's decoder leaves the mean pose within a few hundred
    steps: the reconstructed ankles end at most of the real speed, where they start near a still pose's 0 (the
    plateau: about 0.05 after 50 steps here). Asserts foot speed, not loss."""
    from motionclip.core.losses import motionclip_loss
    from motionclip.core.models.motionclip import config_from_preset
    from motionclip.core.skeleton import neutral_skeleton

    data = tmp_path / "walks"
    synthesize(data, clips=4, seed=1, actions=["walk"], fps=20, progress=False)
    windows = MotionWindows(data, None, window=40, stride=20)
    batch = collate_motion([windows[i] for i in range(8)])
    torch.manual_seed(0)
    model = MotionCLIP(config_from_preset("builtin", latent_dim=64, width=128, ff_dim=256))
    model.set_normalization(*ae.feature_statistics(model, windows, limit=100))
    cfg = ae.TrainConfig(lr=1e-3, warmup_steps=20, lr_schedule="constant")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    skeleton = neutral_skeleton()
    real = _ankle_speed(batch["rot6d"], batch["trans"], 20.0)

    def ratio() -> float:
        model.eval()
        with torch.no_grad():
            out = model(batch)
        model.train()
        return _ankle_speed(out["rot6d"], out["trans"], 20.0) / real

    ratios = []
    for step in range(300):
        for g in opt.param_groups:
            g["lr"] = ae.lr_at(cfg, step, 300)
        loss = motionclip_loss(batch, model(batch), skeleton)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 50:
            ratios.append(ratio())
    ratios.append(ratio())
    assert real > 0.5 and ratios[0] < 0.3 and 0.6 < ratios[1] < 1.5, (real, ratios)


def test_init_continues_from_another_run_and_keeps_its_lineage(trained, dataset, tmp_path) -> None:
    """`--init RUN0`: the weights (and feature statistics) of RUN0 start the run; config.json's lineage lists
    RUN0's trainings and then this one (the model card's training log)."""
    first, _ = trained
    lineage0 = json.loads((first / "config.json").read_text())["lineage"]
    assert len(lineage0) == 1 and lineage0[0]["init"] is None and lineage0[0]["steps"] > 0
    run = tmp_path / "more"
    saved = json.loads((first / "config.json").read_text())["train"]
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**saved, "epochs": 1, "lr": 1e-12, "init": ""}))
    run_main("--data", str(dataset), "--out", str(run), "--config", str(cfg), "--init", str(first))
    config = json.loads((run / "config.json").read_text())
    assert [e["init"] for e in config["lineage"]] == [None, first.name]
    a, b = load_weights(first / "model.safetensors")[0], load_weights(run / "model.safetensors")[0]
    assert torch.allclose(flat(a), flat(b), atol=1e-6)  # lr ~0: the weights it started from
