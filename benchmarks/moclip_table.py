"""MotionCLIP with the plain text encoder vs with MoCLIP, and the lambda_distill ablation, on the
held-out split of Bandai-Namco dataset 1: one command, end to end, sized for a 2-core CPU.

    .venv/bin/python benchmarks/moclip_table.py [--bandai ../shared/data/bandai-namco-1] [--work runs/moclip-table]
        [--motionclip RUN] [--lambdas 0,0.2,0.4,0.6] [--repeats 5]

Steps (each skipped when its output already exists, so a re-run continues where it stopped):
 1. import the dataset, split by style (`--split-by style`: the test split holds a whole style,
    "happy", that no model trains on);
 2. train the evaluator (its own word-level text encoder and motion encoder) on the train split;
 3. train a small MotionCLIP with the offline text encoder (minilm), unless --motionclip gives one
    trained on the same train split (e.g. the built-in model, whose recipe uses this split);
 4. train MoCLIP (teacher minilm, preset "small"): the head-only phase once, then the student phase
    for each lambda_distill from that same checkpoint (the first phase does not depend on lambda:
    the frozen student equals the teacher there, so the distillation term is exactly zero);
 5. fine-tune MotionCLIP with each MoCLIP student (lr 1e-6), and, as a control, with the plain
    encoder in the same way;
 6. evaluate every row on the test split with the evaluator, --repeats draws each, and write
    WORK/moclip_table.md, .json and .png.

Prints the table and the time each step took.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A small MotionCLIP for CPU (about 10 s per epoch on the 2-core machine, one thread).
MOTIONCLIP_CONFIG = {"model": "small", "model_overrides": {"enc_layers": 2, "dec_layers": 2, "ff_dim": 512},
                     "encoder": "minilm", "epochs": 12, "batch_size": 16, "lr": 3e-4, "window": 90, "min_window": 30,
                     "stride": 45, "mirror_prob": 0.5, "seed": 0,
                     "loss": {"rc": 100.0, "rcxyz": 100.0, "vel": 100.0, "text": 10.0, "image": 1.0}}


def step(name: str, times: dict[str, float], fn) -> None:
    t0 = time.perf_counter()
    print(f"== {name}", flush=True)
    fn()
    times[name] = round(time.perf_counter() - t0, 1)
    print(f"   {name}: {times[name]:.0f} s", flush=True)


def run_cli(*args: str) -> None:
    from motionclip.core.cli import main

    code = main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"motionclip {' '.join(map(str, args))} failed with exit code {code}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bandai", type=Path, default=REPO.parent / "shared" / "data" / "bandai-namco-1")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "moclip-table")
    ap.add_argument("--motionclip", type=Path, help="an existing MotionCLIP run (minilm) trained on the same train split")
    ap.add_argument("--lambdas", default="0,0.2,0.4,0.6")
    ap.add_argument("--main-lambda", type=float, default=0.4, help="the MoCLIP row of the comparison (default 0.4)")
    ap.add_argument("--moclip-phases", default="8,3", help="epochs of MoCLIP's two phases (default 8,3)")
    ap.add_argument("--evaluator-epochs", type=int, default=30)
    ap.add_argument("--motionclip-epochs", type=int, default=MOTIONCLIP_CONFIG["epochs"])
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from motionclip.core.inference import MotionModel
    from motionclip.train.evaluator import load_evaluator
    from motionclip.train.t2m_eval import evaluate_rows, format_markdown, write_outputs

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data, evaluator = work / "data", work / "evaluator"
    lambdas = [float(x) for x in args.lambdas.split(",")]
    if args.main_lambda not in lambdas:
        lambdas.append(args.main_lambda)
    times: dict[str, float] = {}
    t_all = time.perf_counter()

    if not (data / "index.json").is_file():
        if not (args.bandai / "data").is_dir():
            raise SystemExit(f"{args.bandai}/data not found: give --bandai /path/to/bandai-namco-1")
        step("import", times, lambda: run_cli("data", "import", args.bandai / "data", "--out", data,
                                               "--split-by", "style", "--quiet"))
    if not (evaluator / "model.safetensors").is_file():
        step("evaluator", times, lambda: run_cli("train", "evaluator", "--data", data, "--out", evaluator,
                                                  "--epochs", args.evaluator_epochs, "--quiet",
                                                  *(["--resume"] if (evaluator / "config.json").is_file() else [])))
    motionclip = args.motionclip.resolve() if args.motionclip else work / "motionclip"
    if not args.motionclip and not (motionclip / "model.safetensors").is_file():
        cfg = work / "motionclip.json"
        cfg.write_text(json.dumps({**MOTIONCLIP_CONFIG, "epochs": args.motionclip_epochs}))
        step("motionclip", times, lambda: run_cli("train", "autoencoder", "--data", data, "--out", motionclip,
                                                   "--config", cfg, "--quiet"))
    phases = [int(x) for x in args.moclip_phases.split(",")]
    phase1 = work / "moclip-phase1"
    if not (phase1 / "model.safetensors").is_file():
        step("moclip phase 1", times, lambda: run_cli(
            "train", "moclip", "--data", data, "--out", phase1, "--teacher", "minilm", "--config", "small",
            "--phase-epochs", args.moclip_phases, "--until-epoch", phases[0], "--quiet"))
    students = {}
    for lam in lambdas:
        run = work / f"moclip-l{lam:g}"
        students[lam] = run
        cfg_path = run / "config.json"
        done = cfg_path.is_file() and json.loads(cfg_path.read_text()).get("metrics", {}).get("epoch") == sum(phases)
        if not done:
            if run.exists():
                shutil.rmtree(run)
            shutil.copytree(phase1, run, ignore=shutil.ignore_patterns("tb"))
            step(f"moclip lambda {lam:g}", times, lambda: run_cli(
                "train", "moclip", "--data", data, "--out", run, "--resume", "--lambda-distill", lam, "--quiet"))
    tuned = {}
    for name, encoder in [("plain", "minilm"), *[(f"l{lam:g}", f"moclip:{students[lam]}") for lam in lambdas]]:
        out = work / f"finetune-{name}"
        tuned[name] = out
        if not (out / "model.safetensors").is_file() or not (out / "config.json").is_file():
            if out.exists():
                shutil.rmtree(out)
            step(f"finetune {name}", times, lambda: run_cli(
                "train", "finetune", "--init", motionclip, "--encoder", encoder, "--data", data, "--out", out,
                "--lr", "1e-6", "--epochs", args.finetune_epochs, "--quiet"))

    def evaluate() -> None:
        ev = load_evaluator(evaluator)
        rows = [("ground truth", None), ("MotionCLIP + minilm", MotionModel(motionclip, device="cpu")),
                ("MotionCLIP + minilm, fine-tuned (control)", MotionModel(tuned["plain"], device="cpu")),
                (f"MotionCLIP + MoCLIP (λ={args.main_lambda:g})", MotionModel(tuned[f"l{args.main_lambda:g}"], device="cpu"))]
        rows += [(f"ablation: MoCLIP λ={lam:g}", MotionModel(tuned[f"l{lam:g}"], device="cpu"))
                 for lam in lambdas if lam != args.main_lambda]
        result = evaluate_rows(rows, ev, data, split="test", repeats=args.repeats)
        result["runs"] = {"evaluator": str(evaluator), "motionclip": str(motionclip),
                          **{f"moclip_l{lam:g}": str(students[lam]) for lam in lambdas},
                          **{f"finetune_{k}": str(v) for k, v in tuned.items()}}
        result["moclip_val"] = {f"{lam:g}": {k: v for k, v in json.loads((students[lam] / "config.json").read_text())
                                             ["metrics"].items() if k.startswith("val_")} for lam in lambdas}
        result["evaluator_val"] = json.loads((evaluator / "config.json").read_text()).get("metrics", {})
        result["times_s"] = times
        paths = write_outputs(result, work, stem="moclip_table")
        print(format_markdown(result))
        print("MoCLIP validation (val split, the student's own retrieval within groups of 32):")
        for lam, m in result["moclip_val"].items():
            print(f"  lambda {lam}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
        print(f"evaluator validation: {result['evaluator_val']}")
        print("wrote " + ", ".join(str(p) for p in paths.values()))

    step("evaluate", times, evaluate)
    print(f"total {time.perf_counter() - t_all:.0f} s; steps: {json.dumps(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
