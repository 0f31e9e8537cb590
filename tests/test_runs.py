"""Run directories as one consistent thing: trainers killed at exact points of a checkpoint (the
MOTIONCLIP_CRASH_AT hook), then generation, --resume and the files left behind; --resume of a finished
run; SHA-256s of the weights checked on load; clear errors for edited or damaged config.json and
metrics.csv; the evaluator trainer under torchrun. Tiny models and 2-step epochs keep it fast.

The killed trainers run in forked copies of this process (torch is already imported there), which is
what a kill -9 leaves on disk without paying for a new interpreter per kill.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from motionclip.core.cli import main
from motionclip.core.data.synth import synthesize
from motionclip.core.inference import MotionModel, builtin_run_dir
from motionclip.core.run import CRASH_ENV, CRASH_EXIT, RunError, load_model, read_config
from motionclip.train.runs import TrainError, read_metrics

from test_train import TORCHRUN, one_line_error, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENCODER = "clip-random:tiny"
PROMPT = "a person walks forward"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs") / "ds"
    synthesize(root, clips=24, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def cfg(dataset) -> Path:
    path = dataset.parent / "tiny.json"
    path.write_text(json.dumps({"model": "small", "model_overrides": {"enc_layers": 1, "dec_layers": 1, "ff_dim": 64,
                                                                      "heads": 2, "dropout": 0.0},
                                "encoder": ENCODER, "batch_size": 8, "window": 30, "max_steps_per_epoch": 2,
                                "lr": 1e-3}))
    return path


def train(dataset: Path, cfg: Path, out: Path, *extra: str) -> None:
    assert main(["train", "autoencoder", "--data", str(dataset), "--out", str(out), "--config", str(cfg),
                 "--quiet", *extra]) == 0


def resume(dataset: Path, out: Path, *extra: str) -> None:
    assert main(["train", "autoencoder", "--data", str(dataset), "--out", str(out), "--resume", "--quiet",
                 *extra]) == 0


def killed(point: str, argv: list[str]) -> None:
    """The command in a forked process that MOTIONCLIP_CRASH_AT ends at `point` (POINT@N: the N-th time)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.environ[CRASH_ENV] = point
            code = main(argv)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASH_EXIT, f"{point}: the trainer was not stopped there"


def killed_training(dataset: Path, cfg: Path, out: Path, point: str, *extra: str) -> None:
    killed(point, ["train", "autoencoder", "--data", str(dataset), "--out", str(out), "--config", str(cfg),
                   "--quiet", *extra])


@torch.no_grad()
def generation(run: Path) -> tuple[torch.Tensor, torch.Tensor, float]:
    model = MotionModel(run, device="cpu")
    m = model.generate(PROMPT, frames=30, seed=1)
    return m.quats, m.trans, model.latent_norm


def same(a, b) -> bool:
    return torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


def leftovers(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.name.endswith((".tmp", ".next")))


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def references(dataset, cfg, tmp_path_factory) -> dict[str, Path]:
    """The same training stopped after epoch 1 and after epoch 2 (constant lr: epoch 1 of both is the same)."""
    root = tmp_path_factory.mktemp("refs")
    train(dataset, cfg, root / "e1", "--epochs", "1")
    train(dataset, cfg, root / "e2", "--epochs", "2")
    return {"e1": root / "e1", "e2": root / "e2"}


@pytest.fixture(scope="module")
def gens(references):
    g = {k: generation(v) for k, v in references.items()}
    assert not same(g["e1"], g["e2"]) and g["e1"][2] != g["e2"][2]  # the two models really differ
    assert g["e2"][2] > 1.0  # the training latents' size, not the 1.0 of a config without it
    return g


# --- kills during the second checkpoint: the old model or the new one, never a mix ------------------------------

@pytest.mark.parametrize("point, model_after_kill", [
    ("epoch-end@2", "e1"),                                  # epoch 2 trained, nothing of it written
    ("write:last.safetensors.next@2", "e1"),                # half of the new checkpoint on disk
    ("commit:weights-written@2", "e1"),                     # both new weights files complete, config not yet
    ("write:config.json.next@2", "e1"),                     # half of the new config.json
    ("commit:renamed:checkpoints/last.safetensors@2", "e1"),  # between the checkpoint and the final model
    ("commit:renamed:model.safetensors@2", "e2"),           # new weights in place, config.json's rename pending
])
def test_a_kill_during_a_checkpoint_leaves_the_old_or_the_new_model(dataset, cfg, references, gens, tmp_path,
                                                                     point, model_after_kill) -> None:
    run = tmp_path / "run"
    killed_training(dataset, cfg, run, point, "--epochs", "2")
    assert same(generation(run), gens[model_after_kill]), f"after a kill at {point}"
    assert read_config(run)["metrics"]["epoch"] == int(model_after_kill[1])

    # --resume repairs and finishes the run: the model of the uninterrupted training, no temporary files.
    resume(dataset, run, "--epochs", "2")
    assert same(generation(run), gens["e2"])
    assert leftovers(run) == []
    assert (run / "model.safetensors").read_bytes() == (references["e2"] / "model.safetensors").read_bytes()
    assert [int(r["epoch"]) for r in read_metrics(run / "metrics.csv")] == [1, 2]


def test_a_resume_killed_before_its_first_checkpoint_keeps_the_model(dataset, cfg, references, gens, tmp_path) -> None:
    """--resume once rewrote config.json at its start without latent_norm: killed then, the same weights
    generated other motions. Now the run directory is untouched until the next checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(references["e1"], run)
    before = (run / "config.json").read_bytes()
    killed("step@1", ["train", "autoencoder", "--data", str(dataset), "--out", str(run), "--resume", "--epochs", "2",
                       "--quiet"])
    assert (run / "config.json").read_bytes() == before
    assert same(generation(run), gens["e1"])
    resume(dataset, run, "--epochs", "2")  # and the curve is the uninterrupted one
    assert same(generation(run), gens["e2"])


def test_resume_of_a_finished_run_changes_nothing(dataset, references, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(references["e2"], run)
    out = resume_changes_nothing(dataset, run, capsys)
    assert "already trained to epoch 2" in out and "nothing to do" in out, out


def resume_changes_nothing(dataset: Path, run: Path, capsys) -> str:
    """--resume on a run with nothing to do: what it printed; its files are as they were."""
    before = snapshot(run)
    capsys.readouterr()
    resume(dataset, run)
    out = capsys.readouterr().out
    assert snapshot(run) == before
    return out


def test_resume_of_an_older_run_interrupted_between_its_files_warns(dataset, references, tmp_path, capsys) -> None:
    """A run written before checkpoints were one unit, killed between the checkpoint and model.safetensors:
    the model is an epoch behind; --resume says so (and rewrites nothing)."""
    run = tmp_path / "run"
    shutil.copytree(references["e2"], run)
    config = json.loads((run / "config.json").read_text())
    del config["sha256"]
    config["metrics"]["epoch"] = 1
    (run / "config.json").write_text(json.dumps(config))
    out = resume_changes_nothing(dataset, run, capsys)
    assert "nothing to do" in out and "hold epoch 1, the checkpoint epoch 2" in out, out


def test_stray_temporary_files_go_at_the_next_start(dataset, references, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(references["e1"], run)
    strays = [".model.safetensors.tmp", "model.safetensors.next", "metrics.csv.tmp",
              "checkpoints/.last.safetensors.tmp", "checkpoints/last.safetensors.next"]
    for s in strays:
        (run / s).write_bytes(b"half a file")
    assert leftovers(run) == sorted(strays)
    resume(dataset, run, "--epochs", "2")
    assert leftovers(run) == []


# --- SHA-256 of the weights --------------------------------------------------------------------------------------

def flip_a_weight_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's data: the file still parses
    path.write_bytes(bytes(data))


def test_a_changed_weights_file_is_refused(references, dataset, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(references["e2"], run)
    config = read_config(run)
    assert set(config["sha256"]) == {"model.safetensors", "checkpoints/last.safetensors"}
    flip_a_weight_bit(run / "model.safetensors")
    with pytest.raises(RunError, match="SHA-256") as exc:
        load_model(run)
    assert "model.safetensors" in str(exc.value) and "restore" in str(exc.value).lower()
    one_line_error(capsys, ["generate", PROMPT, "--checkpoint", str(run), "--out", str(tmp_path / "x.json"),
                            "--device", "cpu"], "model.safetensors", "SHA-256")

    # A flipped bit in the resume checkpoint stops --resume before it trains on it.
    shutil.copy(references["e2"] / "model.safetensors", run / "model.safetensors")
    flip_a_weight_bit(run / "checkpoints" / "last.safetensors")
    one_line_error(capsys, ["train", "autoencoder", "--data", str(dataset), "--out", str(run), "--resume",
                            "--epochs", "3", "--quiet"], "last.safetensors", "SHA-256")


def test_runs_without_recorded_sha256_still_load(references, gens, tmp_path) -> None:
    """Runs written before SHA-256s were recorded load as before (nothing to check against)."""
    run = tmp_path / "old"
    shutil.copytree(references["e2"], run)
    config = json.loads((run / "config.json").read_text())
    del config["sha256"]
    (run / "config.json").write_text(json.dumps(config))
    assert same(generation(run), gens["e2"])


def test_the_builtin_model_records_and_passes_its_sha256() -> None:
    config = read_config(builtin_run_dir())
    assert len(config["sha256"]["model.safetensors"]) == 64
    model, _ = load_model(builtin_run_dir())
    assert model.num_parameters() == config["parameters"]


def test_export_records_the_sha256(references, gens, tmp_path) -> None:
    from motionclip.core.run import export_run

    out = export_run(references["e2"], tmp_path / "shipped")
    assert set(read_config(out)["sha256"]) == {"model.safetensors"}
    assert same(generation(out), gens["e2"])  # float32 files too: their tensors are taken into aligned memory
    assert all(t.data_ptr() % 64 == 0 for t in load_model(out)[0].state_dict().values())
    flip_a_weight_bit(out / "model.safetensors")
    with pytest.raises(RunError, match="SHA-256"):
        load_model(out)


# --- edited or damaged config.json / metrics.csv: one clear line, nothing lost -----------------------------------

CONFIG_EDITS = [
    ("latent_norm as text", lambda c: c.update(latent_norm="big"), "latent_norm"),
    ("latent_norm zero", lambda c: c.update(latent_norm=0), "latent_norm"),
    ("data not an object", lambda c: c.update(data="x"), "'data' must be a JSON object"),
    ("fps as text", lambda c: c["data"].update(fps="x"), "data.fps"),
    ("encoder not an object", lambda c: c.update(encoder="minilm"), "'encoder' must be a JSON object"),
    ("encoder without a name", lambda c: c.update(encoder={"dim": 64}), "names no text encoder"),
    ("model missing", lambda c: c.pop("model"), "missing 'model'"),
    ("sha256 not hex", lambda c: c["sha256"].update({"model.safetensors": "xyz"}), "64 hex digits"),
]


@pytest.mark.parametrize("name, edit, needle", CONFIG_EDITS, ids=[e[0] for e in CONFIG_EDITS])
def test_edited_config_gives_a_clear_error(references, tmp_path, capsys, name, edit, needle) -> None:
    run = tmp_path / "run"
    shutil.copytree(references["e2"], run)
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    weights = (run / "model.safetensors").read_bytes()
    one_line_error(capsys, ["generate", PROMPT, "--checkpoint", str(run), "--out", str(tmp_path / "x.json"),
                            "--device", "cpu"], "config.json", needle)
    assert (run / "model.safetensors").read_bytes() == weights


def test_damaged_files_stop_resume_with_a_clear_error(references, dataset, tmp_path, capsys) -> None:
    base = references["e1"]
    argv = ["train", "autoencoder", "--data", str(dataset), "--resume", "--epochs", "2", "--quiet"]

    def copy(name: str) -> Path:
        run = tmp_path / name
        shutil.copytree(base, run)
        return run

    run = copy("truncated")
    (run / "config.json").write_text((base / "config.json").read_text()[:300])
    one_line_error(capsys, [*argv, "--out", str(run)], "config.json", "invalid JSON")
    one_line_error(capsys, ["generate", PROMPT, "--checkpoint", str(run), "--out", str(tmp_path / "x.json")],
                   "config.json", "invalid JSON")

    for name, edit, needle in (("no_train", lambda c: c.pop("train"), "missing 'train'"),
                               ("train_list", lambda c: c.update(train=[1]), "'train' must be a JSON object")):
        run = copy(name)
        config = json.loads((run / "config.json").read_text())
        edit(config)
        (run / "config.json").write_text(json.dumps(config))
        one_line_error(capsys, [*argv, "--out", str(run)], "config.json", needle)

    for name, text in (("garbled_row", None), ("open_quote", 'epoch,step\n"1,2\n')):
        run = copy(name)
        before = (run / "config.json").read_bytes(), (run / "model.safetensors").read_bytes()
        if text is None:
            lines = (run / "metrics.csv").read_text().splitlines()
            lines[1] = "1,garbage,,x"
            text = "\n".join(lines) + "\n"
        (run / "metrics.csv").write_text(text)
        one_line_error(capsys, [*argv, "--out", str(run)], "metrics.csv", "line 2", "not a number")
        assert ((run / "config.json").read_bytes(), (run / "model.safetensors").read_bytes()) == before
        with pytest.raises(TrainError, match="metrics.csv"):
            read_metrics(run / "metrics.csv")


# --- the evaluator trainer: TensorBoard, DDP, the same run-directory guarantees ----------------------------------

EVAL_MODEL = {"word_dim": 16, "text_hidden": 16, "motion_width": 32, "motion_layers": 1, "ff_dim": 32, "dim": 16,
              "dropout": 0.0}


def test_evaluator_two_processes_match_one(dataset, tmp_path, capsys) -> None:
    cfg = tmp_path / "ev.json"
    cfg.write_text(json.dumps({"model": EVAL_MODEL, "batch_size": 8, "max_steps_per_epoch": 3, "epochs": 2,
                               "checkpoint_every": 1}))
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--data", str(dataset), "--config", str(cfg)]
    assert main(["train", "evaluator", *args, "--out", str(one), "--quiet"]) == 0
    r = run_cli(*args, "--out", str(two), launcher=TORCHRUN, trainer="evaluator")  # 2 CPU processes (gloo)
    assert read_config(two)["world_size"] == 2 and read_config(one)["world_size"] == 1
    a, b = read_metrics(one / "metrics.csv"), read_metrics(two / "metrics.csv")
    assert [x["step"] for x in a] == [x["step"] for x in b] == ["3", "6"]
    for x, y in zip(a, b):
        assert float(y["train_loss"]) == pytest.approx(float(x["train_loss"]), rel=1e-5), (x, y, r.stderr)
    assert list((two / "tb").glob("events.out.tfevents.*")) and list((one / "tb").glob("events.out.tfevents.*"))
    from motionclip.core.run import load_weights
    wa, wb = load_weights(one / "model.safetensors")[0], load_weights(two / "model.safetensors")[0]
    A, B = (torch.cat([w[k].flatten().double() for k in sorted(w)]) for w in (wa, wb))
    torch.manual_seed(0)  # the initial weights: the trainer seeds, then builds the model
    from motionclip.core.models.evaluator import EvaluatorConfig, TextMotionEvaluator
    w0 = TextMotionEvaluator(EvaluatorConfig.from_dict(read_config(one)["model"])).state_dict()
    W0 = torch.cat([w0[k].flatten().double() for k in sorted(w0)])
    moved, diff = float((A - W0).norm() / A.norm()), float((A - B).norm() / A.norm())
    assert moved > 1e-3 and diff < 1e-5 and diff < 0.01 * moved, (moved, diff)

    capsys.readouterr()  # resume of the finished evaluator run: a message, nothing rewritten
    before = snapshot(one)
    assert main(["train", "evaluator", "--data", str(dataset), "--out", str(one), "--resume", "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().out and snapshot(one) == before


def test_a_killed_evaluator_run_resumes_to_the_same_weights(dataset, tmp_path, capsys) -> None:
    cfg = tmp_path / "ev.json"
    cfg.write_text(json.dumps({"model": EVAL_MODEL, "batch_size": 8, "max_steps_per_epoch": 2, "epochs": 2,
                               "checkpoint_every": 1}))
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    args = ["train", "evaluator", "--data", str(dataset), "--config", str(cfg), "--quiet"]
    assert main([*args, "--out", str(straight)]) == 0
    killed("commit:renamed:checkpoints/last.safetensors@2", [*args, "--out", str(cut)])
    assert read_config(cut)["metrics"]["epoch"] == 1
    assert main(["train", "evaluator", "--data", str(dataset), "--out", str(cut), "--resume", "--quiet"]) == 0
    assert (cut / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()
    assert leftovers(cut) == []
    with (cut / "metrics.csv").open() as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]

    # A damaged evaluator config.json: a clear error, not a traceback.
    for name, edit, needle in (("no_vocab", lambda c: c["model"].pop("vocab"), "model.vocab"),
                               ("no_train", lambda c: c.pop("train"), "missing 'train'")):
        broken = tmp_path / name
        shutil.copytree(cut, broken)
        config = json.loads((broken / "config.json").read_text())
        edit(config)
        (broken / "config.json").write_text(json.dumps(config))
        one_line_error(capsys, ["train", "evaluator", "--data", str(dataset), "--out", str(broken), "--resume",
                                "--epochs", "3", "--quiet"], "config.json", needle)
