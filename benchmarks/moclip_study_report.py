"""The report of benchmarks/moclip_study.py: curves, the lambda_distill ablation and the downstream comparison, on
training-style texts and on the paraphrase test set (train/paraphrases.tsv), and the from-scratch comparison. Writes
OUT/moclip_curves.png, OUT/moclip_downstream.png, OUT/moclip_scratch-eN.png, OUT/moclip_study*.md and .json, and
prints the tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAMBDA_COLOURS = {0.0: "tab:blue", 0.4: "tab:orange", 1.0: "tab:green"}


def read_metrics(run: Path) -> list[dict[str, Any]]:
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (v if k == "phase" else float(v)) for k, v in r.items() if v not in ("", None)} for r in rows]


class MoCLIPSpace:
    """A MoCLIP run as a retrieval model: its student (or another text encoder) and its motion head."""

    def __init__(self, run: Path, text_encoder=None) -> None:
        from motionclip.core.encoders.moclip_student import load_student
        from motionclip.core.models.moclip import MotionHead, MotionHeadConfig
        from motionclip.core.run import load_weights, read_config

        cfg = read_config(run)
        self.encoder = text_encoder or load_student(run)
        self.head = MotionHead(MotionHeadConfig.from_dict(cfg["model"]["head"])).eval()
        tensors, _ = load_weights(run / "model.safetensors")
        self.head.load_state_dict({k[5:]: v.float() for k, v in tensors.items() if k.startswith("head.")})
        self.device = torch.device("cpu")
        self.model = self

    def encode(self, rot6d, trans, mask):
        return self.head(rot6d, trans, mask)


def _mean_std(values: list[float], digits: int = 3) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not len(v):
        return "-"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def plot_curves(work: Path, seeds: list[int], lambdas: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("train_contrastive", "contrastive (train)"), ("train_distill", "distill MSE (train)"),
              ("train_align", "align 1 - cos (train)"), ("val_distill", "distill MSE (val)"),
              ("val_align", "align (val)"), ("val_r1_text_to_motion", "val text-to-motion top-1 (groups of 32)")]
    fig, axes = plt.subplots(2, 4, figsize=(19, 7.5))
    axes = axes[:, [0, 1, 2, 3]]
    bounds = set()
    for seed in seeds:
        base = read_metrics(work / "moclip" / f"s{seed}" / f"l{lambdas[0]:g}")
        for lam in lambdas:
            rows = read_metrics(work / "moclip" / f"s{seed}" / f"l{lam:g}")
            for ax, key in ((axes[0, 3], "train_distill"), (axes[1, 3], "val_align")):
                ax.plot([r["step"] for r in rows], [r[key] - b[key] for r, b in zip(rows, base)],
                        color=LAMBDA_COLOURS.get(lam), lw=1.2, marker=".")
            for r0, r1 in zip(rows, rows[1:]):
                if r0["phase"] != r1["phase"]:
                    bounds.add(r0["step"])
            for ax, (key, title) in zip(axes[:, :3].flat, panels):
                ax.plot([r["step"] for r in rows], [r.get(key, np.nan) for r in rows], color=LAMBDA_COLOURS.get(lam),
                        alpha=0.8, lw=1.2, marker=".", label=f"λ={lam:g}" if seed == seeds[0] else None)
    axes[0, 3].set_title(f"train distill: λ run minus λ={lambdas[0]:g} run (same seed)", fontsize=10)
    axes[1, 3].set_title(f"val align: λ run minus λ={lambdas[0]:g} run (same seed)", fontsize=10)
    for ax in axes[:, 3]:
        ax.set_xlabel("step (batch 32)")
    for ax, (key, title) in zip(axes[:, :3].flat, panels):
        for b in sorted(bounds):
            ax.axvline(b, color="grey", ls="--", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step (batch 32)")
    axes[0, 0].legend()
    fig.suptitle(f"MoCLIP on the full data: head only | top 2 student layers | top 4 (dashed: phase ends); "
                 f"{len(seeds)} seeds per λ", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def ablation(args, paraphrases) -> tuple[dict[str, Any], str]:
    """Per lambda over seeds: final validation losses and retrieval in MoCLIP's own space on the test split."""
    from motionclip.core.encoders import load_encoder
    from motionclip.train.paraphrase_eval import retrieval_report

    teacher = load_encoder("minilm", text_only=True)
    rows: dict[str, list[tuple[str, Any]]] = {}
    for seed in args.seeds:
        base = args.work / "moclip" / f"s{seed}"
        rows.setdefault("teacher + head (phase 1)", []).append((f"s{seed}", MoCLIPSpace(base / "head", teacher)))
        for lam in args.lambdas:
            rows.setdefault(f"student λ={lam:g}", []).append((f"s{seed}", MoCLIPSpace(base / f"l{lam:g}")))
    res: dict[str, Any] = {}
    for name, models in rows.items():
        rep = retrieval_report(models, args.data, paraphrases, split="test", source="bandai-namco",
                               repeats=args.repeats, stride=args.stride)
        res[name] = {kind: {m: [rep["rows"][s][kind][m]["mean"] for s, _ in models] for m in ("r_precision_top1",
                     "r_precision_top3", "mm_dist")} for kind in ("training", "paraphrase")}
        if name.startswith("student"):
            lam = float(name.split("=")[1])
            final = [read_metrics(args.work / "moclip" / f"s{s}" / f"l{lam:g}")[-1] for s in args.seeds]
            res[name]["final"] = {k: [f[k] for f in final] for k in ("val_contrastive", "val_distill", "val_align")}
    lines = ["| MoCLIP space | texts | R-prec top-1 ↑ | R-prec top-3 ↑ | MM-Dist ↓ | val distill | val align |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in res.items():
        for kind in ("training", "paraphrase"):
            fin = r.get("final", {})
            lines.append(f"| {name} | {kind} | {_mean_std(r[kind]['r_precision_top1'])} | "
                         f"{_mean_std(r[kind]['r_precision_top3'])} | {_mean_std(r[kind]['mm_dist'])} | "
                         + (f"{np.mean(fin['val_distill']):.2e} | {_mean_std(fin['val_align'])} |" if fin else "- | - |"))
    return res, "\n".join(lines)


def downstream(args, paraphrases, evaluator) -> tuple[dict[str, Any], str]:
    """The shipped model, and per seed the plain and the MoCLIP fine-tunings: retrieval and generation."""
    how = f" ({args.tag.strip('-')})" if args.tag else ""
    groups = {"fine-tuned, plain minilm" + how: [args.work / "downstream" / f"plain-s{s}{args.tag}" for s in args.seeds],
              "fine-tuned, MoCLIP student" + how: [args.work / "downstream" / f"moclip-s{s}{args.tag}"
                                                   for s in args.seeds]}
    if not args.tag:
        groups = {"shipped model (minilm)": [args.init], **groups}
    res = measure_groups(args, groups, paraphrases, evaluator, "downstream", full=False)
    return res, table(res, DOWNSTREAM_COLUMNS)


def scratch(args, paraphrases, evaluator) -> tuple[dict[str, Any], str]:
    """Per seed, the built-in recipe trained from scratch with plain MiniLM and with the student: every figure."""
    e = args.epochs
    groups = {f"from scratch, plain minilm ({e} epochs)": [args.work / "scratch" / f"plain-s{s}-e{e}" for s in args.seeds],
              f"from scratch, MoCLIP student ({e} epochs)": [args.work / "scratch" / f"moclip-s{s}-e{e}"
                                                            for s in args.seeds]}
    res = measure_groups(args, groups, paraphrases, evaluator, "scratch", full=True)
    spread = text_spread(args, paraphrases)
    note = ("Mean distance between the unit embeddings of two different paraphrases (how far apart each encoder "
            "puts texts): " + ", ".join(f"{k} {v:.3f}" for k, v in spread.items()) + ".")
    return {"runs": res, "text_spread": spread}, table(res, SCRATCH_COLUMNS) + "\n\n" + note


def text_spread(args, paraphrases) -> dict[str, float]:
    """Each encoder's mean pairwise distance between the (unit) embeddings of the paraphrase test set."""
    from motionclip.core.encoders import load_encoder

    texts = [t for wordings in paraphrases.values() for t in wordings]
    out = {}
    for seed in [None, *args.seeds]:
        spec = "minilm" if seed is None else f"moclip:{args.work / 'moclip' / f's{seed}' / f'l{args.main_lambda:g}'}"
        with torch.no_grad():
            e = load_encoder(spec, text_only=True).encode_text(texts).double()
        n = len(texts)
        out["minilm" if seed is None else f"student s{seed}"] = float(torch.cdist(e, e).sum() / (n * (n - 1)))
    return out


DOWNSTREAM_COLUMNS = [("r_precision_top1", "R-prec top-1 ↑"), ("r_precision_top3", "R-prec top-3 ↑"),
                      ("mm_dist", "MM-Dist ↓"), ("recognised_top1", "evaluator top-1 of generated ↑"),
                      ("main_ratio", "main-limb speed ratio")]
SCRATCH_COLUMNS = [("r_precision_top1", "R-prec top-1 ↑"), ("r_precision_top2", "top-2 ↑"),
                   ("r_precision_top3", "top-3 ↑"), ("mm_dist", "MM-Dist ↓"),
                   ("recognised_top1", "evaluator top-1 of generated ↑"), ("fid", "FID ↓"),
                   ("diversity", "diversity →"), ("main_ratio", "main-limb speed ratio"),
                   ("in_target", "actions in 0.6-1.5"), ("mpjpe_pa", "MPJPE mm (pelvis-aligned) ↓"),
                   ("cpu_minutes", "training CPU-minutes"), ("minutes", "wall minutes")]


def measure_groups(args, groups: dict[str, list[Path]], paraphrases, evaluator, step: str,
                   full: bool) -> dict[str, Any]:
    """Each group's runs measured once (WORK/report/NAME.json keeps what was measured, so a re-run reuses it)."""
    res: dict[str, Any] = {}
    for name, runs in groups.items():
        per = []
        for run in runs:
            if not (Path(run) / "model.safetensors").is_file() or (step == "scratch"
                                                                  and not (run / "study_time.json").is_file()):
                raise SystemExit(f"{run} is not trained yet: run `moclip_study.py {step}` first")
            done = args.work / "report" / f"{Path(run).name}.json"
            if not done.is_file():
                done.parent.mkdir(parents=True, exist_ok=True)
                done.write_text(json.dumps(measure_run(Path(run), args, paraphrases, evaluator, full)))
                print(f"  {run}: {done.read_text()}", flush=True)
            per.append(json.loads(done.read_text()))
            if full:  # what the training took, as study_time.json says now
                took = json.loads((Path(run) / "study_time.json").read_text())
                for kind in ("training", "paraphrase"):
                    per[-1][kind].update(minutes=took["wall_minutes"], cpu_minutes=took["cpu_seconds"] / 60)
        res[name] = per
    return res


def measure_run(run: Path, args, paraphrases, evaluator, full: bool) -> dict[str, Any]:
    """Retrieval (the model's own space) and generation (the evaluator; liveliness) on both kinds of text; `full`:
    also FID, diversity and reconstruction (measure_groups adds the training's minutes)."""
    from motionclip.core.inference import MotionModel
    from motionclip.train.paraphrase_eval import evaluate_paraphrases

    model = MotionModel(run, device="cpu")
    r = evaluate_paraphrases(model, args.data, paraphrases, evaluator=evaluator, repeats=args.repeats,
                             stride=args.stride, seeds=8, t2m=False,
                             reconstruction=None if full else (float("nan"),) * 2)
    out: dict[str, Any] = {}
    for kind in ("training", "paraphrase"):
        ret, gen, moves = r["retrieval"]["rows"][r["model"]][kind], r["generation"][kind], r["moves"][kind]
        row = {m: ret[m]["mean"] for m in ("r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist")}
        row.update(recognised_top1=gen.get("recognised_top1_mean"), main_ratio=gen["main_ratio_mean"],
                   in_target=gen["in_target"], actions=gen["actions"])
        if full:
            ev = moves.get("evaluator") or {}
            row.update(fid=ev.get("fid"), diversity=ev.get("diversity_generated"),
                       diversity_real=ev.get("diversity_real"),
                       mpjpe_pa=moves["reconstruction"]["mpjpe_pelvis_aligned_mm"])
        out[kind] = row
    return out


def table(res: dict[str, Any], columns: list[tuple[str, str]]) -> str:
    lines = ["| MotionCLIP | texts | runs | " + " | ".join(t for _, t in columns) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in columns) + " |"]
    for name, per in res.items():
        for kind in ("training", "paraphrase"):
            cells = [_mean_std([p[kind].get(m) for p in per], digits=1 if m in ("mpjpe_pa", "minutes", "cpu_minutes", "in_target") else 3)
                     for m, _ in columns]
            lines.append(f"| {name} | {kind} | {len(per)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_downstream(res: dict[str, Any], path: Path, how: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = list(res)
    for ax, (m, title) in zip(axes, [("r_precision_top1", "retrieval R-precision top-1 (model's space)"),
                                     ("mm_dist", "retrieval MM-Dist (unit vectors) ↓"),
                                     ("recognised_top1", "evaluator top-1 of generated motions")]):
        for j, kind in enumerate(("training", "paraphrase")):
            vals = [[p[kind][m] for p in res[n]] for n in names]
            ax.bar(np.arange(len(names)) + (j - 0.5) * 0.38, [np.mean(v) for v in vals], 0.38,
                   yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals], capsize=4,
                   label=f"{kind} texts", color=["tab:blue", "tab:red"][j])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize=8, rotation=12)
        ax.set_title(title, fontsize=10)
    axes[0].legend()
    fig.suptitle("MotionCLIP with plain MiniLM vs the MoCLIP student" + (f" ({how})" if how else "")
                 + ", Bandai-Namco test styles (mean ± std over seeds)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(args) -> None:
    from motionclip.train.evaluator import load_evaluator
    from motionclip.train.paraphrase_eval import load_paraphrases

    paraphrases = load_paraphrases()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"seeds": args.seeds, "lambdas": args.lambdas, "repeats": args.repeats}
    text = []
    if "curves" in args.parts:
        plot_curves(args.work, args.seeds, args.lambdas, out / "moclip_curves.png")
    if "ablation" in args.parts:
        result["changed"] = changed_size(args.work / "moclip" / f"s{args.seeds[0]}" / f"l{args.main_lambda:g}")
        print(f"student changes: {result['changed']}", flush=True)
        result["ablation"], t = ablation(args, paraphrases)
        text.append(t)
        print(t, flush=True)
    if "downstream" in args.parts:
        evaluator = load_evaluator(args.evaluator, device="cpu") if args.evaluator else None
        result["downstream"], t = downstream(args, paraphrases, evaluator)
        text.append(t)
        plot_downstream(result["downstream"], out / f"moclip_downstream{args.tag}.png")
        print(t, flush=True)
    if "scratch" in args.parts:
        evaluator = load_evaluator(args.evaluator, device="cpu") if args.evaluator else None
        result["scratch"], t = scratch(args, paraphrases, evaluator)
        text.append(t)
        plot_downstream(result["scratch"]["runs"], out / f"moclip_scratch-e{args.epochs}.png",
                        f"the built-in recipe from scratch, {args.epochs} epochs")
        print(t, flush=True)
    stem = ("moclip_study" + ("" if args.parts == ["curves", "ablation", "downstream"] else "_" + "_".join(args.parts))
            + args.tag + (f"-e{args.epochs}" if "scratch" in args.parts else ""))
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text("\n\n".join(text) + "\n")


def changed_size(run: Path) -> dict[str, Any]:
    """What a student changes on top of the encoder package's weights: tensors, parameters, float16 megabytes."""
    from motionclip.core.encoders import load_encoder
    from motionclip.core.encoders.moclip_student import load_student

    teacher = dict(load_encoder("minilm", text_only=True).state_dict())
    student = load_student(run).state_dict()
    changed = [k for k, v in student.items() if not torch.equal(v, teacher[k])]
    n = sum(student[k].numel() for k in changed)
    return {"tensors": len(changed), "of": len(student), "parameters": n, "float16_mb": round(n * 2 / 1e6, 1),
            "layers": sorted({k.split(".layer.")[1].split(".")[0] for k in changed if ".layer." in k})}
