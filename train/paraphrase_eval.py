"""Evaluating on the paraphrase test set: wordings of each action that no training text uses.

    motionclip eval --checkpoint RUN --data DIR --source bandai-namco --paraphrases [FILE] [--evaluator EVAL]

The training texts of Bandai-Namco clips are a few templated phrasings per label (core/data/texts.py);
users type their own words. `train/paraphrases.tsv` holds at least 8 hand-written wordings per action of
Bandai-Namco datasets 1 and 2 (different verbs, word order, body-part names, casual phrasing), never used
for training (a test checks that none equals a training phrasing). Two kinds of figures, each on the
training-style texts and on the paraphrases:

- Retrieval, in the judged model's own space (no generation): the split's windows are drawn as in
  `eval --evaluator`; each window's text is its own training text, or one of its action's paraphrases
  (drawn with the repeat's seed). Texts go through the model's text encoder, windows through its motion
  encoder; both unit-normalised. R-precision top-1/2/3 over shuffled batches of 32: for each text, a hit
  when no motion *of another action* is nearer than its own motion by more than k - 1 places (motions of the
  same action are not counted as competitors: several windows share an action, and a paraphrase names
  the action only). MM-Dist: mean Euclidean distance between a text and its motion (unit vectors: 0 to 2).
- Generation (with `--evaluator`): the standard table of `eval --evaluator` with the model generating from
  each window's paraphrase instead of its own text (the evaluator still reads the window's own text), and
  the liveliness / evaluator-recognition report with each action's paraphrases as the prompts.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from motionclip.core.errors import MotionClipError

DEFAULT_PARAPHRASES = Path(__file__).resolve().parent / "paraphrases.tsv"
MIN_PER_ACTION = 8


def load_paraphrases(path: str | Path | None = None) -> dict[str, list[str]]:
    """action -> its paraphrases, from a TSV file (lines `action<TAB>text`; `#` starts a comment line)."""
    path = Path(path) if path else DEFAULT_PARAPHRASES
    if not path.is_file():
        raise MotionClipError(f"paraphrase file not found: {path}; give a TSV file with lines 'action<TAB>text'")
    out: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise MotionClipError(f"{path}: line {n}: expected 'action<TAB>text' (one tab, both filled in), "
                                  f"got {line!r}")
        out.setdefault(parts[0].strip(), []).append(parts[1].strip())
    if not out:
        raise MotionClipError(f"{path}: no paraphrases in it; add lines 'action<TAB>text'")
    return out


def paraphrase_for(paraphrases: dict[str, list[str]], action: str, rng: random.Random) -> str:
    return rng.choice(paraphrases[action])


def keep_paraphrased(windows, paraphrases: dict[str, list[str]]) -> None:
    """Keep only the windows of clips whose action has paraphrases (a t2m_eval._Windows, in place)."""
    ds = windows.ds
    keep = {i for i, e in enumerate(ds.entries) if e.get("action") in paraphrases}
    ds.windows = [w for w in ds.windows if w.clip in keep]
    if not ds.windows:
        raise MotionClipError(f"no window of the split has an action with paraphrases (actions with paraphrases: "
                              f"{', '.join(sorted(paraphrases))}); pass --source bandai-namco or another --paraphrases "
                              f"file")


def paraphrase_items(items: list[dict[str, Any]], paraphrases: dict[str, list[str]], seed: int) -> list[str]:
    """One paraphrase of each item's action, drawn with `seed`."""
    rng = random.Random(seed)
    return [paraphrase_for(paraphrases, it["action"], rng) for it in items]


def action_r_precision(text: torch.Tensor, motion: torch.Tensor, actions: Sequence[str], top_k: int = 3) -> list[float]:
    """Like R-precision, but motions of the text's own action are not competitors -> [top1..topk]."""
    d = torch.cdist(text.double(), motion.double())
    same = torch.tensor([[a == b for b in actions] for a in actions])
    rank = ((d < d.diagonal()[:, None]) & ~same).sum(1)
    return [float((rank < k).double().mean()) for k in range(1, top_k + 1)]


@torch.no_grad()
def _model_latents(model, items: list[dict[str, Any]], batch: int = 32) -> torch.Tensor:
    from motionclip.core.data.windows import collate_motion

    out = []
    for s in range(0, len(items), batch):
        b = collate_motion(items[s:s + batch])
        b = {k: (v.to(model.device) if torch.is_tensor(v) else v) for k, v in b.items()}
        out.append(model.model.encode(b["rot6d"], b["trans"], b["mask"]).float().cpu())
    return torch.nn.functional.normalize(torch.cat(out), dim=-1)


def retrieval_scores(text_emb: torch.Tensor, motion_emb: torch.Tensor, actions: list[str], seed: int,
                     batch_size: int = 32) -> dict[str, float]:
    """R-precision (same action not a competitor) top-1/2/3 over shuffled batches, and MM-Dist, of unit vectors."""
    t = torch.nn.functional.normalize(text_emb.float(), dim=-1)
    m = torch.nn.functional.normalize(motion_emb.float(), dim=-1)
    perm = torch.randperm(len(actions), generator=torch.Generator().manual_seed(seed)).tolist()
    hits = [action_r_precision(t[idx], m[idx], [actions[i] for i in idx])
            for idx in (perm[s:s + batch_size] for s in range(0, len(perm) - batch_size + 1, batch_size))]
    if not hits:
        raise MotionClipError(f"{len(actions)} windows are fewer than one retrieval batch of {batch_size}")
    out = {f"r_precision_top{k + 1}": float(np.mean([h[k] for h in hits])) for k in range(3)}
    out["mm_dist"] = float((t - m).norm(dim=-1).mean())
    return out


@torch.no_grad()
def retrieval_report(rows: Sequence[tuple[str, Any]], data: str | Path, paraphrases: dict[str, list[str]],
                     split: str = "test", source: str | None = "bandai-namco", repeats: int = 5,
                     window: tuple[int, int] = (30, 90), stride: int = 15) -> dict[str, Any]:
    """rows: (name, MotionModel). Retrieval in each model's own space on training-style texts and on paraphrases."""
    from motionclip.train.t2m_eval import _summary, _Windows

    windows = _Windows(data, split, window, stride, source)
    keep_paraphrased(windows, paraphrases)
    runs: dict[str, dict[str, dict[str, list[float]]]] = {n: {"training": {}, "paraphrase": {}} for n, _ in rows}
    for r in range(repeats):
        items = windows.draw(r)
        actions = [it["action"] for it in items]
        texts = {"training": [it["text"] for it in items], "paraphrase": paraphrase_items(items, paraphrases, r)}
        for name, model in rows:
            motion = _model_latents(model, items)
            for kind, tx in texts.items():
                emb = model.encoder.encode_text(tx).float()
                for k, v in retrieval_scores(emb, motion, actions, seed=r).items():
                    runs[name][kind].setdefault(k, []).append(v)
    return {"data": str(data), "split": split, "source": source, "repeats": repeats, "windows": len(windows.ds),
            "rows": {n: {kind: {k: _summary(v) for k, v in m.items()} for kind, m in kinds.items()}
                     for n, kinds in runs.items()}}


def format_retrieval(result: dict[str, Any]) -> str:
    cols = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "mm_dist")
    head = ["R-prec top-1 ↑", "R-prec top-2 ↑", "R-prec top-3 ↑", "MM-Dist ↓"]
    lines = [f"Retrieval in the model's own space, split {result['split']!r} ({result['source'] or 'all sources'}): "
             f"{result['windows']} windows, {result['repeats']} repeats; mean ± 95% CI.", "",
             "| | texts | " + " | ".join(head) + " |", "| --- | --- |" + " --- |" * len(cols)]
    for name, kinds in result["rows"].items():
        for kind, m in kinds.items():
            cells = [f"{m[c]['mean']:.3f} ± {m[c]['ci95']:.3f}" for c in cols]
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class ParaphrasePrompts:
    """A MotionModel that generates from an action's paraphrases instead of its plain prompt: request i of an
    action (seed s) uses paraphrase s mod n. For train/liveliness.moves_report."""

    def __init__(self, model, paraphrases: dict[str, list[str]]) -> None:
        from motionclip.train.evaluate import action_prompt

        self._model = model
        self._by_prompt = {action_prompt(a): ps for a, ps in paraphrases.items()}

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def generate_batch(self, requests: list[dict[str, Any]]):
        swapped = []
        for q in requests:
            ps = self._by_prompt.get(q["prompt"])
            swapped.append({**q, "prompt": ps[q["seed"] % len(ps)]} if ps else q)
        return self._model.generate_batch(swapped)


def moves_summary(moves: dict[str, Any], actions: Sequence[str]) -> dict[str, Any]:
    """The liveliness / recognition figures of a moves report, averaged over `actions` (those with paraphrases)."""
    rows = {a: r for a, r in moves["per_action"].items() if a in actions}
    ratios = [r["main_ratio"] for r in rows.values() if r["main_ratio"] is not None]
    out: dict[str, Any] = {"actions": len(rows), "main_ratio_mean": float(np.mean(ratios)) if ratios else None,
                           "in_target": sum(bool(r["in_target"]) for r in rows.values())}
    ev = moves.get("evaluator")
    if ev:
        top1 = [ev["generated_top1"][a] for a in rows]
        out["recognised_top1_mean"] = float(np.mean(top1)) if top1 else None
        out["real_top1_mean"] = float(np.mean([ev["real_top1"][a] for a in rows])) if rows else None
    return out


def evaluate_paraphrases(model, data, paraphrases: dict[str, list[str]], split: str = "test",
                         source: str | None = "bandai-namco", evaluator=None, repeats: int = 5, stride: int = 15,
                         seeds: int = MIN_PER_ACTION, progress: bool = False, t2m: bool = True,
                         reconstruction: tuple[float, float] | None = None) -> dict[str, Any]:
    """Retrieval and generation figures of one MotionModel on training-style texts and on paraphrases
    (t2m: with an evaluator, also the standard table of motions generated for every window; reconstruction:
    the model's (MPJPE, pelvis-aligned MPJPE) when known, else measured here)."""
    from motionclip.train.liveliness import moves_report

    name = f"{model.run_dir.name} ({model.encoder.name})"
    result: dict[str, Any] = {"model": name, "paraphrase_actions": sorted(paraphrases),
                              "retrieval": retrieval_report([(name, model)], data, paraphrases, split, source, repeats,
                                                            stride=stride)}
    plain = moves_report(model, data, split=split, source=source, evaluator=evaluator, seeds=seeds,
                         reconstruction=reconstruction)
    rec = (plain["reconstruction"]["mpjpe_mm"], plain["reconstruction"]["mpjpe_pelvis_aligned_mm"])
    para = moves_report(ParaphrasePrompts(model, paraphrases), data, split=split, source=source, evaluator=evaluator,
                        seeds=seeds, reconstruction=rec)
    actions = [a for a in plain["actions"] if a in paraphrases]
    result["generation"] = {"training": moves_summary(plain, actions), "paraphrase": moves_summary(para, actions)}
    result["moves"] = {"training": plain, "paraphrase": para}
    if evaluator is not None and t2m:
        from motionclip.train.t2m_eval import evaluate_rows

        result["t2m"] = {kind: evaluate_rows([(name, model)], evaluator, data, split=split, source=source,
                                             repeats=repeats, stride=stride, progress=progress,
                                             paraphrases=paraphrases if kind == "paraphrase" else None)
                         for kind in ("training", "paraphrase")}
    return result


def format_generation(result: dict[str, Any]) -> str:
    gen, t2m = result["generation"], result.get("t2m")
    lines = [f"Generation, {result['model']}: per action with paraphrases ({gen['training']['actions']} actions), the "
             f"plain prompt ('training') or each of its paraphrases; the independent evaluator's top-1 of the generated "
             f"motions (mean over actions), the main limb's generated / real speed (mean), actions in 0.6-1.5.", "",
             "| texts | evaluator top-1 ↑ | main-limb ratio | in target | t2m R-prec top-1 ↑ | top-3 ↑ | MM-Dist ↓ | FID ↓ |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def f(v, d=3):
        return "-" if v is None else f"{v:.{d}f}"

    for kind, g in gen.items():
        row = t2m[kind]["rows"][result["model"]] if t2m else None
        t = [f"{row[c]['mean']:.3f} ± {row[c]['ci95']:.3f}" if row else "-"
             for c in ("r_precision_top1", "r_precision_top3", "mm_dist", "fid")]
        lines.append(f"| {kind} | {f(g.get('recognised_top1_mean'))} | {f(g['main_ratio_mean'], 2)} | "
                     f"{g['in_target']} / {g['actions']} | " + " | ".join(t) + " |")
    return "\n".join(lines)


def cmd_eval_paraphrases(args) -> int:
    import json

    from motionclip.core.encoders import load_encoder
    from motionclip.core.inference import MotionModel, pick_device

    paraphrases = load_paraphrases(None if args.paraphrases == "default" else args.paraphrases)
    device = pick_device(args.device)
    encoder = load_encoder(args.text_encoder, device=device, text_only=True) if args.text_encoder else None
    model = MotionModel(args.checkpoint, device=device, encoder=encoder)
    evaluator = None
    if args.evaluator:
        from motionclip.train.evaluator import load_evaluator

        evaluator = load_evaluator(args.evaluator, device=device)
    result = evaluate_paraphrases(model, args.data, paraphrases, split=args.split, source=args.source,
                                  evaluator=evaluator, repeats=args.repeats, stride=args.stride, seeds=args.seeds)
    text = format_retrieval(result["retrieval"]) + "\n\n" + format_generation(result)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "paraphrases.json").write_text(json.dumps(result, indent=1))
        (out / "paraphrases.md").write_text(text + "\n")
    print(json.dumps(result, indent=1) if args.json else text)
    return 0
