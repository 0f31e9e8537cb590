"""Evaluating a trained auto-encoder on a dataset split it never trained on.

    motionclip eval --checkpoint RUN --data DIR [--split test] [--source bandai-namco]

Figures: reconstruction error (MPJPE, mm, of each clip's windows), zero-shot recognition top-1 /
top-5 over the split's action labels (a clip's latent against "a person <action>" prompts), and
for each action the share of generated motions (from its prompt, several seeds) that the model
recognises as that action.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import torch

from motionclip.core.data.dataset_dir import DatasetIndex
from motionclip.core.data.texts import BANDAI_CONTENT, DEEPMIMIC
from motionclip.core.errors import MotionClipError
from motionclip.core.inference import MotionModel
from motionclip.core.motion import Motion
from motionclip.core.skeleton import forward_kinematics

DEFAULT_WINDOW = 120  # frames: the usable length of a model whose run does not record its training window


def action_prompt(action: str) -> str:
    """The prompt that stands for an action label."""
    if action in BANDAI_CONTENT:
        return f"a person {BANDAI_CONTENT[action][0]}"
    if action in DEEPMIMIC:
        return DEEPMIMIC[action][0]
    return f"a person does {action.replace('_', ' ')}"


def usable_frames(model, fps: float) -> int:
    """The longest motion worth asking `model` for at `fps`: the window it was trained on (its run's
    train.window, at the model's rate), and never more than it can make."""
    window = (model.config.get("train") or {}).get("window", DEFAULT_WINDOW)
    if isinstance(window, (list, tuple)):
        window = max(window)
    if isinstance(window, bool) or not isinstance(window, (int, float)) or window < 1:
        window = DEFAULT_WINDOW
    model_fps = float(getattr(model, "fps", fps))
    return max(2, min(model.frame_limit(fps), int(round((window - 1) / model_fps * fps)) + 1))


def pelvis_aligned(joints: torch.Tensor) -> torch.Tensor:
    """Joint positions [..., T, 24, 3] with each frame's pelvis moved to the origin: the pose without the path."""
    return joints - joints[..., :1, :]


@torch.no_grad()
def reconstruction_errors(model: MotionModel, windows: Sequence[Motion]) -> tuple[float, float]:
    """Auto-encoding error of real windows: (MPJPE, pelvis-aligned MPJPE) in mm, each the mean over the
    windows of the per-window mean joint error. Each window is resampled to the model's rate, canonicalised
    (floor kept), encoded and decoded at its own length; windows of the same length go through the model
    together. Pelvis-aligned: the pelvis position of each frame is subtracted from both skeletons first (the
    pose error alone, not the path's)."""
    from motionclip.core.data.windows import collate_motion
    from motionclip.core.rotations import rot6d_to_matrix

    rest = model.skeleton.rest_joints.to(model.device)
    by_length: dict[int, list[Motion]] = defaultdict(list)
    for w in windows:
        w = w.resample(model.fps) if abs(w.fps - model.fps) > 1e-6 else w
        by_length[w.num_frames].append(w.canonicalize(model.skeleton, floor=False))
    errors, local = [], []
    for n, group in by_length.items():
        for s in range(0, len(group), 32):
            chunk = group[s:s + 32]
            b = collate_motion([{"rot6d": w.rot6d(), "trans": w.trans, "length": n, "text": "", "clip_id": "",
                                 "mirrored": False} for w in chunk])
            rot6d_in, trans_in = b["rot6d"].to(model.device), b["trans"].to(model.device)
            z = model.model.encode(rot6d_in, trans_in, b["mask"].to(model.device))
            rot6d, trans = model.model.decode(z, n)
            a = forward_kinematics(rot6d_to_matrix(rot6d.float()), rest, trans.float())[0]  # [B, T, 24, 3]
            t = forward_kinematics(rot6d_to_matrix(rot6d_in), rest, trans_in)[0]
            errors += ((a - t).norm(dim=-1).mean((-1, -2)) * 1000).tolist()
            local += ((pelvis_aligned(a) - pelvis_aligned(t)).norm(dim=-1).mean((-1, -2)) * 1000).tolist()
    if not errors:
        raise MotionClipError("reconstruction error: no window to reconstruct")
    return sum(errors) / len(errors), sum(local) / len(local)


@torch.no_grad()
def evaluate(run: str | Path | MotionModel, data: str | Path, split: str = "test", source: str | None = None,
             window: int | None = None, seeds: int = 5, device: str = "auto") -> dict[str, Any]:
    """`run`: a run directory, or a loaded MotionModel. `window`: frames per reconstructed window and per
    generated motion (default: the model's usable length at the data's rate, `usable_frames`)."""
    model = run if isinstance(run, MotionModel) else MotionModel(run, device=device)
    run = model.run_dir if isinstance(run, MotionModel) else run
    index = DatasetIndex.load(data)
    window = window or usable_frames(model, index.fps)
    entries = [e for e in index.entries(split) if "action" in e and (source is None or e.get("text_source") == source)]
    if not entries:
        raise MotionClipError(f"{data}: split {split!r} has no clip with an action label"
                              + (f" from {source!r}" if source else ""))
    # Rank against every action of the source, not only those that happen to be in this split.
    actions = sorted({e["action"] for e in index.entries() if "action" in e
                      and (source is None or e.get("text_source") == source)})
    prompts = [action_prompt(a) for a in actions]
    label_emb = torch.nn.functional.normalize(model.encoder.encode_text(prompts, to_cpu=False).float(), dim=-1)

    all_windows, top1, top5 = [], 0, 0
    per_action: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in entries:
        clip = index.load_clip(e["id"])
        wins = list(clip.windows(window, window)) or [clip]
        all_windows += wins  # reconstruction of every window of the clip
        # recognition of the clip (its first window)
        z = torch.nn.functional.normalize(model.motion_latents([wins[0]]).float(), dim=-1)[0]
        order = torch.argsort(label_emb @ z, descending=True).tolist()
        truth = actions.index(e["action"])
        top1 += int(order[0] == truth)
        top5 += int(truth in order[:5])
    mpjpe, mpjpe_local = reconstruction_errors(model, all_windows)
    for a, p in zip(actions, prompts):
        for s in range(seeds):
            m = model.generate(p, frames=window, fps=index.fps, seed=s)
            z = torch.nn.functional.normalize(model.motion_latents([m]).float(), dim=-1)[0]
            best = int(torch.argmax(label_emb @ z))
            per_action[a][0] += int(best == actions.index(a))
            per_action[a][1] += 1
    n = len(entries)
    return {
        "run": str(run), "data": str(data), "split": split, "source": source, "clips": n, "actions": len(actions),
        "mpjpe_mm": round(mpjpe, 2), "mpjpe_pelvis_aligned_mm": round(mpjpe_local, 2),
        "recognition_top1": round(top1 / n, 4), "recognition_top5": round(top5 / n, 4),
        "chance_top1": round(1 / len(actions), 4),
        "generated_recognised": {a: round(k / t, 3) for a, (k, t) in sorted(per_action.items())},
        "generated_recognised_mean": round(sum(k / t for k, t in per_action.values()) / len(per_action), 4),
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [f"evaluation of {r['run']} on {r['data']} split {r['split']}"
             + (f" ({r['source']})" if r["source"] else "") + f": {r['clips']} clips, {r['actions']} actions",
             "", "| metric | value |", "| --- | --- |",
             f"| reconstruction MPJPE (mm) | {r['mpjpe_mm']:.1f} |",
             f"| reconstruction MPJPE, pelvis-aligned (mm) | {r['mpjpe_pelvis_aligned_mm']:.1f} |",
             f"| recognition top-1 | {r['recognition_top1']:.3f} (chance {r['chance_top1']:.3f}) |",
             f"| recognition top-5 | {r['recognition_top5']:.3f} |",
             f"| generated motions recognised as their prompt's action (mean) | {r['generated_recognised_mean']:.3f} |",
             "", "| action | generated motions recognised as it |", "| --- | --- |"]
    lines += [f"| {a} | {v:.2f} |" for a, v in r["generated_recognised"].items()]
    return "\n".join(lines)
