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
from typing import Any

import torch

from motionclip.core.data.dataset_dir import DatasetIndex
from motionclip.core.data.texts import BANDAI_CONTENT, DEEPMIMIC
from motionclip.core.errors import MotionClipError
from motionclip.core.inference import MotionModel
from motionclip.core.skeleton import forward_kinematics


def action_prompt(action: str) -> str:
    """The prompt that stands for an action label."""
    if action in BANDAI_CONTENT:
        return f"a person {BANDAI_CONTENT[action][0]}"
    if action in DEEPMIMIC:
        return DEEPMIMIC[action][0]
    return f"a person does {action.replace('_', ' ')}"


@torch.no_grad()
def evaluate(run: str | Path, data: str | Path, split: str = "test", source: str | None = None,
             window: int = 120, seeds: int = 5, device: str = "auto") -> dict[str, Any]:
    model = MotionModel(run, device=device)
    index = DatasetIndex.load(data)
    entries = [e for e in index.entries(split) if "action" in e and (source is None or e.get("text_source") == source)]
    if not entries:
        raise MotionClipError(f"{data}: split {split!r} has no clip with an action label"
                              + (f" from {source!r}" if source else ""))
    # Rank against every action of the source, not only those that happen to be in this split.
    actions = sorted({e["action"] for e in index.entries() if "action" in e
                      and (source is None or e.get("text_source") == source)})
    prompts = [action_prompt(a) for a in actions]
    label_emb = torch.nn.functional.normalize(model.encoder.encode_text(prompts, to_cpu=False).float(), dim=-1)
    rest = model.skeleton.rest_joints.to(model.device)

    errors_mm, local_mm, top1, top5 = [], [], 0, 0
    per_action: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in entries:
        clip = index.load_clip(e["id"])
        wins = list(clip.windows(window, window)) or [clip]
        # reconstruction of every window of the clip
        for w in wins:
            w = w.canonicalize(model.skeleton, floor=False)
            z = model.motion_latents([w])
            rot6d, trans = model.model.decode(z, w.num_frames)
            from motionclip.core.rotations import rot6d_to_matrix

            a = forward_kinematics(rot6d_to_matrix(rot6d[0].float()), rest, trans[0].float())[0]
            b = forward_kinematics(w.rotmats().to(model.device), rest, w.trans.to(model.device))[0]
            errors_mm.append(float((a - b).norm(dim=-1).mean()) * 1000)
            # the same with both skeletons' pelvis at the origin: the pose alone, without the path
            local_mm.append(float(((a - a[:, :1]) - (b - b[:, :1])).norm(dim=-1).mean()) * 1000)
        # recognition of the clip (its first window)
        z = torch.nn.functional.normalize(model.motion_latents([wins[0]]).float(), dim=-1)[0]
        order = torch.argsort(label_emb @ z, descending=True).tolist()
        truth = actions.index(e["action"])
        top1 += int(order[0] == truth)
        top5 += int(truth in order[:5])
    for a, p in zip(actions, prompts):
        for s in range(seeds):
            m = model.generate(p, frames=window, seed=s)
            z = torch.nn.functional.normalize(model.motion_latents([m]).float(), dim=-1)[0]
            best = int(torch.argmax(label_emb @ z))
            per_action[a][0] += int(best == actions.index(a))
            per_action[a][1] += 1
    n = len(entries)
    return {
        "run": str(run), "data": str(data), "split": split, "source": source, "clips": n, "actions": len(actions),
        "mpjpe_mm": round(sum(errors_mm) / len(errors_mm), 2),
        "mpjpe_pelvis_aligned_mm": round(sum(local_mm) / len(local_mm), 2),
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
