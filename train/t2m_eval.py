"""Standard text-to-motion metrics, judged by the project's own evaluator (train/evaluator.py).

    motionclip eval --checkpoint RUN --data DIR --evaluator EVAL [--text-encoder SPEC] [--repeats 5] [--out DIR]

For each repeat r (r = 0 .. R-1) the split's windows are drawn again (random lengths in
[min, max] frames and one of each clip's texts, seeded by r). For every window the model
generates a motion of the same length from the window's text; the real windows are scored by
the same evaluator as the reference row ("ground truth"). Then, as in the HumanML3D protocol:

- R-precision top-1/2/3: the items are shuffled (seed r) and cut into batches of 32 (the last,
  incomplete one dropped); for each text, the 32 motions of its batch are ranked by Euclidean
  distance in the evaluator's space; a hit when its own motion is among the first k.
- MM-Dist: mean distance between each text and its motion.
- FID: Frechet distance between the evaluated motions' embeddings and the reference
  statistics (the real windows of an independent draw, seed 1000).
- Diversity: mean distance over all pairs of the evaluated motions (the protocol samples 300
  pairs; a small test split allows all of them).
- MultiModality: for `mm_prompts` texts, `mm_samples` motions each (generation seeds), mean
  pairwise distance within each text's motions (models only).
- Recognition top-1/5 (the model's own latent against "a person <action>" prompts over all
  actions of the source) and reconstruction MPJPE (mm) of the windows (models only).

Each figure is reported as mean, standard deviation and 95% confidence interval over the repeats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from motionclip.core.errors import MotionClipError

METRICS = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "fid", "mm_dist", "diversity",
           "multimodality", "recognition_top1", "recognition_top5", "mpjpe_mm")
LABELS = {"r_precision_top1": "R-prec top-1 ↑", "r_precision_top2": "R-prec top-2 ↑", "r_precision_top3": "R-prec top-3 ↑",
          "fid": "FID ↓", "mm_dist": "MM-Dist ↓", "diversity": "Diversity →", "multimodality": "MultiModality ↑",
          "recognition_top1": "Recog. top-1 ↑", "recognition_top5": "Recog. top-5 ↑", "mpjpe_mm": "MPJPE mm ↓"}
REFERENCE_SEED = 1000


def _pairwise(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a.double(), b.double())


def r_precision(text: torch.Tensor, motion: torch.Tensor, top_k: int = 3) -> list[float]:
    """For each text, is its own motion (same row) among the k nearest motions of the batch? -> [top1..topk]."""
    d = _pairwise(text, motion)  # [B, B]
    rank = (d < d.diagonal()[:, None]).sum(1)  # motions strictly nearer than the true one
    return [float((rank < k).double().mean()) for k in range(1, top_k + 1)]


def fid(a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    from scipy import linalg

    mu_a, cov_a = a.mean(0), np.cov(a, rowvar=False)
    diff = mu_a - mu_b
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: offset the diagonals (as the reference code does)
        off = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + off) @ (cov_b + off))
    covmean = covmean.real
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def diversity(emb: torch.Tensor) -> float:
    d = _pairwise(emb, emb)
    n = emb.shape[0]
    return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0


def _summary(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "ci95": 1.96 * std / math.sqrt(len(v)), "runs": len(v)}


class _Windows:
    """The split's windows, drawn again per repeat (lengths, crops, texts seeded by the repeat)."""

    def __init__(self, data: str | Path, split: str, window: tuple[int, int], stride: int, source: str | None) -> None:
        from motionclip.core.data.windows import MotionWindows

        self.ds = MotionWindows(data, split, window=window, stride=stride, mirror_prob=0.0)
        if source:
            keep = {i for i, e in enumerate(self.ds.entries) if e.get("text_source") == source}
            self.ds.windows = [w for w in self.ds.windows if w.clip in keep]
            if not self.ds.windows:
                raise MotionClipError(f"{data}: split {split!r} has no window from source {source!r}")

    def draw(self, seed: int) -> list[dict[str, Any]]:
        self.ds.set_epoch(seed)
        items = [self.ds[i] for i in range(len(self.ds))]
        for it, w in zip(items, self.ds.windows):
            it["action"] = self.ds.entries[w.clip].get("action")
        return items


@torch.no_grad()
def _embed_items(evaluator, items: list[dict[str, Any]], batch: int = 64) -> torch.Tensor:
    from motionclip.core.data.windows import collate_motion

    out = []
    for s in range(0, len(items), batch):
        b = collate_motion(items[s:s + batch])
        out.append(evaluator.encode_motion(b["rot6d"], b["trans"], b["mask"]).float().cpu())
    return torch.cat(out)


def _motion_item(m, skeleton) -> dict[str, Any]:
    m = m.canonicalize(skeleton, floor=False)
    return {"rot6d": m.rot6d(), "trans": m.trans, "length": m.num_frames, "text": "", "clip_id": "", "mirrored": False}


def embed_motions(evaluator, motions: Sequence, skeleton=None, batch: int = 64) -> torch.Tensor:
    """Motions of any lengths (canonicalised here, as the evaluator's windows are) -> [N, dim] embeddings, CPU."""
    from motionclip.core.skeleton import neutral_skeleton

    skeleton = skeleton or neutral_skeleton()
    return _embed_items(evaluator, [_motion_item(m, skeleton) for m in motions], batch)


@torch.no_grad()
def _model_extras(model, items: list[dict[str, Any]], actions: list[str], label_emb: torch.Tensor) -> dict[str, float]:
    """Recognition top-1/5 of the items with an action label, and reconstruction MPJPE (mm)."""
    from motionclip.core.data.windows import collate_motion
    from motionclip.core.rotations import rot6d_to_matrix
    from motionclip.core.skeleton import forward_kinematics

    top1 = top5 = n_rec = 0
    err_sum, err_n = 0.0, 0
    rest = model.skeleton.rest_joints.to(model.device)
    for s in range(0, len(items), 32):
        chunk = items[s:s + 32]
        b = collate_motion(chunk)
        b = {k: (v.to(model.device) if torch.is_tensor(v) else v) for k, v in b.items()}
        z = model.model.encode(b["rot6d"], b["trans"], b["mask"])
        rot6d, trans = model.model.decode(z, b["mask"])
        mask = b["mask"]
        a = forward_kinematics(rot6d_to_matrix(rot6d[mask].float()), rest, trans[mask].float())[0]
        t = forward_kinematics(rot6d_to_matrix(b["rot6d"][mask]), rest, b["trans"][mask])[0]
        err_sum += float((a - t).norm(dim=-1).mean(-1).sum()) * 1000
        err_n += int(mask.sum())
        zn = torch.nn.functional.normalize(z.float(), dim=-1)
        for it, zi in zip(chunk, zn):
            if it.get("action") in actions:
                order = torch.argsort(label_emb @ zi, descending=True).tolist()
                truth = actions.index(it["action"])
                top1 += int(order[0] == truth)
                top5 += int(truth in order[:5])
                n_rec += 1
    out = {"mpjpe_mm": err_sum / max(err_n, 1)}
    if n_rec:
        out.update(recognition_top1=top1 / n_rec, recognition_top5=top5 / n_rec)
    return out


@torch.no_grad()
def evaluate_rows(rows: Sequence[tuple[str, Any]], evaluator, data: str | Path, split: str = "test",
                  source: str | None = None, repeats: int = 5, window: tuple[int, int] = (30, 90), stride: int = 15,
                  batch_size: int = 32, mm_prompts: int = 10, mm_samples: int = 10, progress: bool = True,
                  paraphrases: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """rows: (name, MotionModel or None for the real motions). Returns per-row, per-metric runs and summaries.

    paraphrases (action -> wordings, train/paraphrase_eval.py): only windows of those actions; the models
    generate from one of the action's paraphrases (drawn per repeat) while the evaluator reads the window's
    own text."""
    from motionclip.core.data.dataset_dir import DatasetIndex
    from motionclip.core.skeleton import neutral_skeleton

    skeleton = neutral_skeleton()
    windows = _Windows(data, split, window, stride, source)
    if paraphrases is not None:
        from motionclip.train.paraphrase_eval import keep_paraphrased

        keep_paraphrased(windows, paraphrases)
    n_items = len(windows.ds)
    if n_items < batch_size:
        raise MotionClipError(f"{data}: split {split!r} gives {n_items} windows, fewer than one R-precision batch of "
                              f"{batch_size}; lower --stride or the window lengths")
    ref_items = windows.draw(REFERENCE_SEED)
    ref = _embed_items(evaluator, ref_items).numpy().astype(np.float64)
    ref_mu, ref_cov = ref.mean(0), np.cov(ref, rowvar=False)
    index = DatasetIndex.load(data)
    actions = sorted({e["action"] for e in index.entries() if "action" in e
                      and (source is None or e.get("text_source") == source)})
    runs: dict[str, dict[str, list[float]]] = {name: {} for name, _ in rows}
    label_embs = _label_embeddings(rows, actions)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=repeats * len(rows), desc="evaluating", unit="row")
    for r in range(repeats):
        items = windows.draw(r)
        texts = [it["text"] for it in items]
        text_emb = evaluator.encode_text(texts).float().cpu()
        if paraphrases is not None:
            from motionclip.train.paraphrase_eval import paraphrase_items

            texts = paraphrase_items(items, paraphrases, r)  # what the models generate from
        perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(r)).tolist()
        mm_texts = list(dict.fromkeys(texts[i] for i in perm))[:mm_prompts]
        for name, model in rows:
            if model is None:
                motion_emb = _embed_items(evaluator, items)
            else:
                gen = [_motion_item(model.generate(t, frames=int(it["length"]), seed=r * 100_003 + i), skeleton)
                       for i, (t, it) in enumerate(zip(texts, items))]
                motion_emb = _embed_items(evaluator, gen)
            res: dict[str, float] = {}
            hits = []
            for s in range(0, len(perm) - batch_size + 1, batch_size):
                idx = perm[s:s + batch_size]
                hits.append(r_precision(text_emb[idx], motion_emb[idx]))
            for k in range(3):
                res[f"r_precision_top{k + 1}"] = float(np.mean([h[k] for h in hits]))
            res["mm_dist"] = float((text_emb - motion_emb).norm(dim=-1).mean())
            res["fid"] = fid(motion_emb.numpy().astype(np.float64), ref_mu, ref_cov)
            res["diversity"] = diversity(motion_emb)
            if model is not None:
                res["multimodality"] = _multimodality(model, evaluator, items, texts, mm_texts, mm_samples, r, skeleton)
                res.update(_model_extras(model, items, actions, label_embs.get(name, torch.zeros(0))))
            for k, v in res.items():
                runs[name].setdefault(k, []).append(v)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return {"data": str(data), "split": split, "source": source, "repeats": repeats, "windows": n_items,
            "texts": "paraphrase" if paraphrases is not None else "training",
            "window_frames": list(window), "stride": stride, "batch_size": batch_size, "actions": len(actions),
            "rows": {name: {"runs": m, **{k: _summary(v) for k, v in m.items()}} for name, m in runs.items()}}


def _label_embeddings(rows: Sequence[tuple[str, Any]], actions: list[str]) -> dict[str, torch.Tensor]:
    """Each model row's normalized text embeddings of the action prompts (for its action recognition)."""
    from motionclip.train.evaluate import action_prompt

    label_embs = {}
    for name, model in rows:
        if model is not None and actions:
            label_embs[name] = torch.nn.functional.normalize(
                model.encoder.encode_text([action_prompt(a) for a in actions], to_cpu=False).float(), dim=-1
            ).to(model.device)
    return label_embs


def _multimodality(model, evaluator, items, texts: list[str], mm_texts: list[str], mm_samples: int, r: int,
                   skeleton) -> float:
    """Mean diversity of `mm_samples` generations of each of mm_texts (repeat r's seeds)."""
    mm = []
    for j, t in enumerate(mm_texts):
        n_frames = int(items[texts.index(t)]["length"])
        ms = [_motion_item(model.generate(t, frames=n_frames, seed=r * 100_003 + 50_000 + j * 101 + k), skeleton)
              for k in range(mm_samples)]
        mm.append(diversity(_embed_items(evaluator, ms)))
    return float(np.mean(mm))


def format_markdown(result: dict[str, Any], columns: Sequence[str] = METRICS) -> str:
    rows = result["rows"]
    cols = [c for c in columns if any(c in r for r in rows.values())]
    lines = [f"Split {result['split']!r} of {result['data']}" + (f" ({result['source']})" if result.get("source") else "")
             + f": {result['windows']} windows of {result['window_frames'][0]}-{result['window_frames'][1]} frames, "
             f"{result['repeats']} repeats; mean ± 95% confidence interval over the repeats.", "",
             "| | " + " | ".join(LABELS[c] for c in cols) + " |", "| --- |" + " --- |" * len(cols)]
    for name, r in rows.items():
        cells = []
        for c in cols:
            if c in r:
                digits = 1 if c == "mpjpe_mm" else 3
                cells.append(f"{r[c]['mean']:.{digits}f} ± {r[c]['ci95']:.{digits}f}")
            else:
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path, columns: Sequence[str] = METRICS) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    cols = [c for c in columns if any(c in r for r in rows.values())]
    ncol = 4
    nrow = math.ceil(len(cols) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    names = list(rows)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, c in zip(axes.flat, cols):
        xs = [i for i, n in enumerate(names) if c in rows[n]]
        ax.bar(xs, [rows[names[i]][c]["mean"] for i in xs], yerr=[rows[names[i]][c]["ci95"] for i in xs],
               color=[colours[i % len(colours)] for i in xs], capsize=4)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_title(LABELS[c], fontsize=10)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.suptitle(f"{result['split']} split of {Path(result['data']).name}: mean and 95% CI over {result['repeats']} repeats",
                 fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(result: dict[str, Any]) -> str:
    """The standard table, then (when measured) the liveliness / per-action classification report."""
    text = format_markdown(result)
    if result.get("moves"):
        from motionclip.train.liveliness import format_report

        text += "\n\n" + format_report(result["moves"])
    return text


def write_outputs(result: dict[str, Any], out: str | Path, stem: str = "eval") -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md", "plot": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(result, indent=1))
    paths["markdown"].write_text(_markdown(result) + "\n")
    plot(result, paths["plot"])
    return paths


# --- command line: options of `motionclip eval` -------------------------------------------------------------

def cmd_eval_t2m(args) -> int:
    """`motionclip eval ... --evaluator EVAL`: the standard metrics, with the real motions as the reference row."""
    from motionclip.core.encoders import load_encoder
    from motionclip.core.inference import MotionModel, pick_device
    from motionclip.train.evaluator import load_evaluator

    device = pick_device(args.device)
    encoder = load_encoder(args.text_encoder, device=device, text_only=True) if args.text_encoder else None
    model = MotionModel(args.checkpoint, device=device, encoder=encoder)
    evaluator = load_evaluator(args.evaluator, device=device)
    name = f"{model.run_dir.name} ({model.encoder.name})"
    result = evaluate_rows([("ground truth", None), (name, model)], evaluator, args.data, split=args.split,
                           source=args.source, repeats=args.repeats, stride=args.stride, progress=not args.json)
    result["evaluator"] = str(args.evaluator)
    # "It moves" (train/liveliness.py): liveliness, per-action classification by the evaluator, FID / diversity
    # against the real clips, reconstruction (plain and pelvis-aligned).
    from motionclip.train.liveliness import moves_report

    result["moves"] = moves_report(model, args.data, split=args.split, source=args.source, evaluator=evaluator,
                                   seeds=args.seeds)
    if args.out:
        paths = write_outputs(result, args.out)
        if not args.json:
            print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(json.dumps(result, indent=1) if args.json else _markdown(result))
    return 0
