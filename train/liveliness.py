""""It moves", as numbers: liveliness, recognisability and reconstruction on a held-out split.

    motionclip eval --checkpoint RUN --data DIR --split test --source bandai-namco [--evaluator EVAL]

For every action with real clips in the split (and source):

- Liveliness. Mean speed (m/s) of the ankles and of the wrists relative to the pelvis (joint position minus
  the pelvis position, frame-to-frame displacement norm x fps, averaged over the frames and the two joints)
  and of the root (the pelvis's horizontal speed), pooled over the frames of the split's real clips of that
  action; the same for motions generated from the action's plain prompt (`action_prompt`) with `seeds`
  seeds, at the data's frame rate, as long as the action's median real clip but at most the model's usable
  length (the window it was trained on); ratios generated / real. The target (DESIGN section 7: ankles for
  locomotion, wrists for arm actions) is a ratio in [0.6, 1.5] for the action's main limb: the ankles when
  the real root travels at 0.3 m/s or more, otherwise the limb (ankles or wrists) that is faster in the real
  clips.
- Classification by the independent evaluator (a text-motion model trained on real motions only, never on
  the judged model's latent): each generated motion is embedded by the evaluator's motion encoder and
  labelled with the action whose evaluator text embedding of `action_prompt(action)` is nearest, over all
  actions of the source; top-1 per action and its mean over actions. The same for the real clips of the
  split, cut into windows of the generated length: the evaluator's own ceiling. FID of the generated
  motions against the real windows and the diversity of both, in the evaluator's space.
- Reconstruction MPJPE (mm), plain and pelvis-aligned (train/evaluate.py's `reconstruction_errors`).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from motionclip.core.errors import MotionClipError

PELVIS = 0
LIMBS: dict[str, tuple[int, int]] = {"ankles": (7, 8), "wrists": (20, 21)}  # SMPL L_/R_Ankle, L_/R_Wrist
SPEEDS = ("ankles", "wrists", "root")
TARGET = (0.6, 1.5)  # generated / real speed of the main limb (DESIGN section 7)
TARGET_TOP1 = 0.7  # generated motions recognised by the evaluator, mean over actions
TARGET_MPJPE_LOCAL_MM = 60.0
MIN_REAL_SPEED = 0.05  # m/s: below it the real clips hold that part (nearly) still and a ratio means nothing
LOCOMOTION_ROOT_SPEED = 0.3  # m/s: real clips whose root travels at least this fast are locomotion: ankles judge


def main_limb(real: dict[str, float]) -> str:
    """The limb the target applies to, from the real speeds: ankles for locomotion (the root travels at least
    LOCOMOTION_ROOT_SPEED), otherwise whichever of ankles and wrists moves faster (wrists for arm actions)."""
    if real["root"] >= LOCOMOTION_ROOT_SPEED:
        return "ankles"
    return "ankles" if real["ankles"] >= real["wrists"] else "wrists"


def speed_sums(joints: torch.Tensor, fps: float) -> tuple[dict[str, float], int]:
    """joints [T, 24, 3] (metres, Y up) -> (sum over the T-1 frame steps of each speed in m/s, T-1).

    ankles / wrists: the two joints' mean speed relative to the pelvis; root: the pelvis's horizontal (X, Z)
    speed. Sums and step counts pool over clips of different lengths."""
    joints = torch.as_tensor(joints, dtype=torch.float64)
    steps = joints.shape[0] - 1
    if steps < 1:
        return {k: 0.0 for k in SPEEDS}, 0
    local = joints - joints[:, PELVIS:PELVIS + 1]
    step = (local[1:] - local[:-1]).norm(dim=-1) * fps  # [T-1, 24]
    out = {name: float(step[:, list(idx)].mean(-1).sum()) for name, idx in LIMBS.items()}
    root = joints[:, PELVIS, [0, 2]]
    out["root"] = float((root[1:] - root[:-1]).norm(dim=-1).sum() * fps)
    return out, steps


def limb_speeds(joints: torch.Tensor, fps: float) -> dict[str, float]:
    """Mean speeds (m/s) of one motion's joints [T, 24, 3]: ankles and wrists relative to the pelvis, root."""
    sums, n = speed_sums(joints, fps)
    return {k: v / max(n, 1) for k, v in sums.items()}


def pooled_speeds(motions: Sequence, skeleton=None) -> dict[str, float]:
    """Mean speeds over all frame steps of several Motions (each at its own fps)."""
    total, steps = defaultdict(float), 0
    for m in motions:
        s, n = speed_sums(m.joints(skeleton), m.fps)
        for k, v in s.items():
            total[k] += v
        steps += n
    return {k: total[k] / max(steps, 1) for k in SPEEDS}


def _ratio(gen: float, real: float) -> float | None:
    return gen / real if real >= MIN_REAL_SPEED else None


def _in_target(r: float | None) -> bool | None:
    """None when there is no ratio (the part is still in the real clips)."""
    return None if r is None else TARGET[0] <= r <= TARGET[1]


def _mean(values) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


@torch.no_grad()
def moves_report(model, data: str | Path, split: str = "test", source: str | None = None, evaluator=None,
                 seeds: int = 5, reconstruction: tuple[float, float] | None = None, batch: int = 64) -> dict[str, Any]:
    """Liveliness, (with `evaluator`) classification / FID / diversity, and reconstruction of `model` (a
    MotionModel, or anything with its `generate_batch`, `frame_limit`, `config`, `fps`) on a split.

    `reconstruction`: (MPJPE, pelvis-aligned MPJPE) in mm when already measured; otherwise measured here on
    the split's windows of the model's usable length (needs a real MotionModel)."""
    from motionclip.core.data.dataset_dir import DatasetIndex
    from motionclip.core.skeleton import neutral_skeleton
    from motionclip.train.evaluate import action_prompt, usable_frames

    skeleton = neutral_skeleton()
    index = DatasetIndex.load(data)
    fps = index.fps

    def keep(e: dict[str, Any]) -> bool:
        return "action" in e and (source is None or e.get("text_source") == source)

    entries = [e for e in index.entries(split) if keep(e)]
    if not entries:
        raise MotionClipError(f"{data}: split {split!r} has no clip with an action label"
                              + (f" from {source!r}" if source else ""))
    all_actions = sorted({e["action"] for e in index.entries() if keep(e)})  # candidates for classification
    clips: dict[str, list] = defaultdict(list)
    for e in entries:
        clips[e["action"]].append(index.load_clip(e["id"]))
    actions = sorted(clips)
    cap = usable_frames(model, fps)
    frames = {a: max(2, min(cap, int(statistics.median(m.num_frames for m in clips[a])))) for a in actions}

    requests = [{"prompt": action_prompt(a), "frames": frames[a], "fps": fps, "seed": s}
                for a in actions for s in range(seeds)]
    generated: dict[str, list] = defaultdict(list)
    for s in range(0, len(requests), batch):
        for i, m in enumerate(model.generate_batch(requests[s:s + batch]), start=s):
            generated[actions[i // seeds]].append(m)

    rows: dict[str, dict[str, Any]] = {}
    for a in actions:
        real, gen = pooled_speeds(clips[a], skeleton), pooled_speeds(generated[a], skeleton)
        ratio = {k: _ratio(gen[k], real[k]) for k in SPEEDS}
        main = main_limb(real)
        rows[a] = {"clips": len(clips[a]), "frames": frames[a], "real": real, "generated": gen, "ratio": ratio,
                   "main_limb": main, "main_ratio": ratio[main], "in_target": _in_target(ratio[main])}
    report: dict[str, Any] = {
        "data": str(data), "split": split, "source": source, "seeds": seeds, "fps": fps, "usable_frames": cap,
        "clips": len(entries), "actions": actions, "candidate_actions": all_actions, "target": list(TARGET),
        "per_action": rows,
        "mean_ratio": {**{k: _mean(r["ratio"][k] for r in rows.values()) for k in SPEEDS},
                       "main": _mean(r["main_ratio"] for r in rows.values())},
        # actions in the target range, and actions with a ratio at all (the rest hold both limbs still)
        "in_target": {"main": sum(bool(r["in_target"]) for r in rows.values()),
                      **{k: sum(bool(_in_target(r["ratio"][k])) for r in rows.values()) for k in LIMBS}},
        "measured": {"main": sum(r["main_ratio"] is not None for r in rows.values()),
                     **{k: sum(r["ratio"][k] is not None for r in rows.values()) for k in LIMBS}},
    }

    if evaluator is not None:
        report["evaluator"] = classify_report(evaluator, actions, all_actions, clips, generated, frames, skeleton)

    if reconstruction is None:
        from motionclip.train.evaluate import reconstruction_errors

        wins = [w for ms in clips.values() for m in ms for w in (list(m.windows(cap, cap)) or [m])]
        reconstruction = reconstruction_errors(model, wins)
    report["reconstruction"] = {"mpjpe_mm": round(float(reconstruction[0]), 2),
                                "mpjpe_pelvis_aligned_mm": round(float(reconstruction[1]), 2)}
    return report


@torch.no_grad()
def classify_report(evaluator, actions: list[str], all_actions: list[str], clips: dict[str, list],
                    generated: dict[str, list], frames: dict[str, int], skeleton) -> dict[str, Any]:
    """The evaluator's nearest-prompt action for each generated motion and each real window (of the generated
    length); top-1 per action, their means; FID and diversity in the evaluator's space."""
    from motionclip.train.evaluate import action_prompt
    from motionclip.train.t2m_eval import diversity, embed_motions, fid

    text = evaluator.encode_text([action_prompt(a) for a in all_actions]).float().cpu()

    def top1(motions: dict[str, list]) -> tuple[dict[str, float], torch.Tensor]:
        embs, out = [], {}
        for a in actions:
            e = embed_motions(evaluator, motions[a], skeleton)
            best = torch.cdist(e.double(), text.double()).argmin(dim=1)
            out[a] = float((best == all_actions.index(a)).double().mean())
            embs.append(e)
        return out, torch.cat(embs)

    real_windows = {a: [w for m in clips[a] for w in (list(m.windows(frames[a], frames[a])) or [m])] for a in actions}
    gen_top1, gen_emb = top1(generated)
    real_top1, real_emb = top1(real_windows)
    real_np = real_emb.numpy().astype(np.float64)
    fid_value = (fid(gen_emb.numpy().astype(np.float64), real_np.mean(0), np.cov(real_np, rowvar=False))
                 if len(real_np) > 1 and len(gen_emb) > 1 else None)
    return {"generated_top1": gen_top1, "generated_top1_mean": _mean(gen_top1.values()),
            "real_top1": real_top1, "real_top1_mean": _mean(real_top1.values()),
            "real_windows": len(real_emb), "generated_motions": len(gen_emb),
            "fid": fid_value, "diversity_generated": diversity(gen_emb), "diversity_real": diversity(real_emb),
            "chance_top1": 1 / len(all_actions)}


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_report(r: dict[str, Any]) -> str:
    """Markdown: the per-action table, then the summary with the targets."""
    ev = r.get("evaluator")
    lo, hi = r["target"]
    where = f"split {r['split']!r}" + (f" ({r['source']})" if r["source"] else "")
    head = (f"It moves: {len(r['actions'])} actions of {where}, {r['clips']} real clips; generated from each "
            f"action's plain prompt with {r['seeds']} seeds at "
            f"{r['fps']:g} fps (median real length, at most {r['usable_frames']} frames). Speeds in m/s relative to "
            f"the pelvis (root: horizontal); ratio = generated / real ('-': under {MIN_REAL_SPEED:g} m/s in the real "
            f"clips); target {lo:g}-{hi:g} for the main limb: ankles where the real root travels at "
            f">= {LOCOMOTION_ROOT_SPEED:g} m/s (locomotion), else the limb faster in the real clips.")
    cols = ["action", "clips", "ankles real", "ankles gen", "ankles ratio", "wrists real", "wrists gen",
            "wrists ratio", "root real", "root gen", "root ratio", "main limb ratio"]
    if ev:
        cols += ["evaluator top-1 generated", "evaluator top-1 real"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for a, row in r["per_action"].items():
        cells = [a, str(row["clips"])]
        for k in SPEEDS:
            cells += [_f(row["real"][k]), _f(row["generated"][k]), _f(row["ratio"][k])]
        mark = {True: " ✓", False: " ✗", None: ""}[row["in_target"]]
        cells.append(f"{row['main_limb']} {_f(row['main_ratio'])}{mark}")
        if ev:
            cells += [_f(ev["generated_top1"][a]), _f(ev["real_top1"][a])]
        lines.append("| " + " | ".join(cells) + " |")
    m, n = r["mean_ratio"], len(r["actions"])
    rec = r["reconstruction"]
    lines += ["", "| figure | value | target |", "| --- | --- | --- |",
              f"| liveliness, main limb: actions in {lo:g}-{hi:g} | {r['in_target']['main']} of {n}"
              + (f" ({r['measured']['main']} with a moving limb)" if r["measured"]["main"] < n else "") + " | all |",
              f"| liveliness ratio, mean over actions: main limb / ankles / wrists / root | {_f(m['main'])} / "
              f"{_f(m['ankles'])} / {_f(m['wrists'])} / {_f(m['root'])} | {lo:g}-{hi:g} |",
              f"| actions in {lo:g}-{hi:g}: ankles / wrists | {r['in_target']['ankles']} of "
              f"{r['measured']['ankles']} / {r['in_target']['wrists']} of {r['measured']['wrists']} | |"]
    if ev:
        lines += [f"| evaluator top-1 of generated motions, mean over actions | {_f(ev['generated_top1_mean'], 3)} "
                  f"(chance {ev['chance_top1']:.3f}) | >= {TARGET_TOP1:g} |",
                  f"| evaluator top-1 of real windows (its ceiling) | {_f(ev['real_top1_mean'], 3)} "
                  f"({ev['real_windows']} windows) | |",
                  f"| FID, generated vs real windows (evaluator space) | {_f(ev['fid'], 3)} | 0 |",
                  f"| diversity: generated / real | {_f(ev['diversity_generated'], 3)} / {_f(ev['diversity_real'], 3)} "
                  "| equal |"]
    lines += [f"| reconstruction MPJPE (mm) | {rec['mpjpe_mm']:.1f} | |",
              f"| reconstruction MPJPE, pelvis-aligned (mm) | {rec['mpjpe_pelvis_aligned_mm']:.1f} | "
              f"<= {TARGET_MPJPE_LOCAL_MM:g} |"]
    if not ev:
        lines += ["", "Classification of the generated motions needs the independent evaluator: add --evaluator EVAL "
                      "(from `motionclip train evaluator`)."]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: str | Path, stem: str = "moves", markdown: str | None = None
                 ) -> dict[str, Path]:
    """OUT/<stem>.json (the report, or a result holding it) and OUT/<stem>.md (`markdown`, default its table)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md"}
    paths["json"].write_text(json.dumps(report, indent=1))
    paths["markdown"].write_text((format_report(report) if markdown is None else markdown) + "\n")
    return paths
