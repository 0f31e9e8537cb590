"""Training MoCLIP: a student text encoder and a motion head against a frozen teacher encoder.

    motionclip train moclip --data DIR --out RUN [--teacher minilm|clip:...] [--config small|paper|FILE.json] [--resume]
    torchrun --nproc_per_node N -m motionclip.core.cli train moclip ...        (several GPUs / nodes)
    motionclip train finetune --init MOTIONCLIP_RUN --encoder moclip:RUN --data DIR --out RUN2 [--lr 1e-6]

Training runs through a list of phases; each names the parameter groups it trains ("head": the
motion head and the temperature; "student": the student text encoder) and their learning rates,
with a cosine schedule inside the phase. The published schedule is 35 epochs of the head alone
(lr 1e-4) then 15 epochs of everything (lr 1e-6). The teacher is frozen, in eval mode, outside
the optimizer, and its embeddings are computed once per text and cached; while the student is
frozen its embeddings are constants too and are computed once per phase.

The trainer machinery (DDP under torchrun, checkpoints with optimizer state in safetensors, exact
resume from (seed, epoch), metrics.csv and TensorBoard logs) is train/runs.py, shared by all trainers.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from motionclip.core.errors import read_json
from motionclip.core.models.moclip import MoCLIP, MotionHeadConfig, moclip_loss
from motionclip.train.epochs import EpochBatches, LossSums, train_val_windows
from motionclip.train.runs import ConfigBase, Dist, TrainError, barrier, gather_cat, open_run, text_lookup

GROUPS = ("head", "student")


def paper_phases() -> list[dict[str, Any]]:
    return [{"name": "head", "epochs": 35, "train": ["head"], "lr": 1e-4},
            {"name": "student", "epochs": 15, "train": ["head", "student"], "lr": 1e-6}]


@dataclass
class MoCLIPTrainConfig(ConfigBase):
    """MoCLIP training settings (a preset, a JSON file, or both with command-line overrides)."""

    LABEL = "MoCLIP training config"

    teacher: str = "minilm"  # text encoder spec of the teacher; the student starts as a copy of it
    head: dict[str, Any] = field(default_factory=dict)  # MotionHeadConfig fields (out_dim comes from the teacher)
    phases: list[dict[str, Any]] = field(default_factory=paper_phases)
    lambda_distill: float = 0.4  # weight of MSE(student, teacher)
    batch_size: int = 128  # global batch, split evenly over processes
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max gradient norm; 0 turns clipping off
    min_lr_ratio: float = 0.0  # the cosine schedule ends at this fraction of each phase's learning rate
    window: int = 90  # frames per window (at most)
    min_window: int = 30  # > 0: windows of random length in [min_window, window]
    stride: int = 0  # frames between window starts; 0 = half a window
    mirror_prob: float = 0.5  # mirroring augmentation (left/right swapped in the text too)
    seed: int = 0
    checkpoint_every: int = 1
    max_steps_per_epoch: int = 0  # > 0: cut epochs short (quick runs)
    text_cache: bool = True  # teacher embeddings computed once per text
    num_workers: int = 0
    amp: bool = True  # bfloat16 autocast on CUDA; no effect on CPU
    val_max_windows: int = 0  # > 0: validate on this many of the val split's windows (evenly spaced; quick curves)

    def __post_init__(self) -> None:
        self.check_ints("batch_size", "window", "checkpoint_every")
        if not (isinstance(self.lambda_distill, (int, float)) and math.isfinite(self.lambda_distill)
                and self.lambda_distill >= 0):
            raise TrainError(f"MoCLIP training config: lambda_distill must be a number >= 0, got {self.lambda_distill!r}")
        self.check_window()
        self.check_fraction("mirror_prob", "min_lr_ratio")
        self.check_ints("val_max_windows", minimum=0)
        if "out_dim" in self.head:
            raise TrainError("MoCLIP training config: head.out_dim is the teacher's dimension; leave it out")
        MotionHeadConfig.from_dict({**self.head, "out_dim": 8 * max(2, int(self.head.get("heads", 4)))})  # validates
        self.phases = [_check_phase(p, i) for i, p in enumerate(self.phases)]
        if not self.phases:
            raise TrainError("MoCLIP training config: phases is empty; give at least one phase")

    @property
    def epochs(self) -> int:
        return sum(p["epochs"] for p in self.phases)

    def phase_at(self, epoch: int) -> tuple[int, dict[str, Any], int]:
        """(phase index, phase, the phase's first epoch) of a 0-based epoch."""
        start = 0
        for i, p in enumerate(self.phases):
            if epoch < start + p["epochs"]:
                return i, p, start
            start += p["epochs"]
        raise TrainError(f"epoch {epoch} is past the last phase")


def _check_phase(p: Any, i: int) -> dict[str, Any]:
    where = f"MoCLIP training config: phases[{i}]"
    if not isinstance(p, dict):
        raise TrainError(f"{where} must be an object like {{\"epochs\": 35, \"train\": [\"head\"], \"lr\": 1e-4}}")
    unknown = sorted(set(p) - {"name", "epochs", "train", "lr", "student_layers"})
    if unknown:
        raise TrainError(f"{where}: unknown field(s) {unknown}; known: name, epochs, train, lr, student_layers")
    epochs = p.get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TrainError(f"{where}: epochs must be a positive integer, got {epochs!r}")
    train = p.get("train")
    if not isinstance(train, list) or not train or any(g not in GROUPS for g in train):
        raise TrainError(f"{where}: train must be a non-empty list of {list(GROUPS)}, got {train!r}")
    lr = p.get("lr")
    lrs = lr if isinstance(lr, dict) else {g: lr for g in train}
    for g in train:
        v = lrs.get(g)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise TrainError(f"{where}: lr for {g!r} must be a positive number, got {v!r}")
    out = {"name": str(p.get("name") or f"phase{i + 1}"), "epochs": epochs, "train": list(train),
           "lr": {g: float(lrs[g]) for g in train}}
    layers = p.get("student_layers")
    if layers is not None:  # progressive unfreezing: the student's top N transformer layers only
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1 or "student" not in train:
            raise TrainError(f"{where}: student_layers must be a positive whole number (the student's top layers "
                             f"that train) in a phase that trains the student, got {layers!r}")
        out["student_layers"] = layers
    return out


# "paper": MoCLIP's published settings. "small": sized for a 2-core CPU (a few minutes on a small
# dataset): fewer epochs, a smaller batch, and a student learning rate 10x the paper's because it
# gets about a hundredth of the paper's steps.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(batch_size=128, phases=paper_phases()),
    "small": dict(batch_size=32, window=90, min_window=30,
                  head=dict(part_dim=32, width=96, heads=4, limb_layers=1, time_layers=1, ff_dim=192),
                  phases=[{"name": "head", "epochs": 8, "train": ["head"], "lr": 3e-4},
                          {"name": "student", "epochs": 3, "train": ["head", "student"], "lr": 1e-5}]),
}


def load_moclip_config(spec: str | None, overrides: dict[str, Any]) -> MoCLIPTrainConfig:
    base: dict[str, Any] = {}
    if spec:
        if spec in TRAIN_PRESETS:
            base = json.loads(json.dumps(TRAIN_PRESETS[spec]))  # a deep copy
        elif spec.endswith(".json") or os.path.sep in spec:
            base = read_json(spec, TrainError, "MoCLIP training config file")
        else:
            raise TrainError(f"unknown MoCLIP training preset {spec!r}; presets: {', '.join(TRAIN_PRESETS)}, "
                             f"or a .json file")
    phase_epochs = overrides.pop("phase_epochs", None)
    base.update({k: v for k, v in overrides.items() if v is not None})
    cfg = MoCLIPTrainConfig.from_dict(base, spec or "MoCLIP training config")
    if phase_epochs:
        if len(phase_epochs) != len(cfg.phases):
            raise TrainError(f"--phase-epochs gives {len(phase_epochs)} numbers but the config has "
                             f"{len(cfg.phases)} phases ({', '.join(p['name'] for p in cfg.phases)})")
        cfg.phases = [_check_phase({**p, "epochs": n}, i) for i, (p, n) in enumerate(zip(cfg.phases, phase_epochs))]
    return cfg


def phase_lr(base: float, step_in_phase: int, phase_steps: int, min_ratio: float = 0.0) -> float:
    """Cosine from `base` (first step) down to base * min_ratio (after the last)."""
    t = min(step_in_phase, phase_steps) / max(phase_steps, 1)
    return base * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t)))


# --- training -----------------------------------------------------------------------------------------------

def _all_texts(data: Path, mirror: bool) -> list[str]:
    from motionclip.core.data.dataset_dir import DatasetIndex
    from motionclip.core.data.texts import mirror_text

    texts = [t for e in DatasetIndex.load(data).entries() for t in e["texts"]]
    if mirror:
        texts += [mirror_text(t) for t in texts]
    return list(dict.fromkeys(texts))


class _FrozenStudentTexts:
    """Embeddings of a frozen student: constants, computed once for every text in a fixed order (so the
    numbers do not depend on which texts share a batch: exact resume, DDP parity)."""

    def __init__(self, student, texts: list[str], batch_size: int = 64) -> None:
        with torch.no_grad():
            emb = student.encode_text(texts, batch_size=batch_size)
        self.index = {t: i for i, t in enumerate(texts)}
        self.emb = emb

    def __call__(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in texts if t not in self.index]
        if missing:
            raise TrainError(f"text {missing[0]!r} is not in the dataset's texts")
        return self.emb[torch.tensor([self.index[t] for t in texts])]


_gather = gather_cat


def _set_phase(model: MoCLIP, opt: torch.optim.Optimizer, phase: dict[str, Any]) -> None:
    model.set_trainable(phase["train"], phase.get("student_layers"))
    for g in opt.param_groups:
        if g["name"] not in phase["train"]:
            g["lr"] = 0.0


def train_moclip(data: str | Path, out: str | Path, cfg: MoCLIPTrainConfig, resume: bool = False,
                 progress: bool = True, until_epoch: int | None = None) -> dict[str, Any]:
    """Train MoCLIP; returns the final metrics. Writes the run directory at `out`.

    until_epoch: stop after this epoch (a checkpoint is written there; --resume continues)."""
    from motionclip.core.encoders import load_encoder
    from motionclip.core.encoders.moclip_student import make_student, student_name

    data = Path(data)
    stop = cfg.epochs if until_epoch is None else min(cfg.epochs, until_epoch)
    d, run, done = open_run(out, cfg, resume, progress, epochs=stop)
    if done is not None:
        return done

    teacher = load_encoder(cfg.teacher, device=d.device, text_only=True)  # frozen, eval mode
    teacher_texts = text_lookup(cfg, teacher, data, d, progress and d.main)
    student = make_student(cfg.teacher, device=d.device, name=student_name(run.path))
    train_set, val_set, sampler, loader = _data_loaders(data, cfg, d)
    steps = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)

    head_cfg = MotionHeadConfig.from_dict({**cfg.head, "out_dim": teacher.dim, "fps": train_set.index.fps})
    model = MoCLIP(student, head_cfg).to(d.device)
    groups = model.group_parameters()
    opt = torch.optim.AdamW([{"params": groups[g], "name": g, "lr": 0.0} for g in GROUPS],
                            weight_decay=cfg.weight_decay)
    start_epoch, step = run.load_checkpoint(model, opt) if resume else (0, 0)
    run_config = _run_config(cfg, data, d, teacher, model, train_set)
    run.start(run_config)

    metrics: dict[str, Any] = {}
    epochs = _Epochs(model, opt, cfg, d, teacher, teacher_texts, data, steps)
    for epoch in range(start_epoch, stop):
        phase = epochs.enter(epoch)
        torch.manual_seed(cfg.seed * 1000 + epoch)  # everything random in this epoch follows from (seed, epoch)
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        desc = f"epoch {epoch + 1}/{cfg.epochs} ({phase['name']})" if progress and d.main else None
        step, sums = epochs.run(EpochBatches(loader, steps, d, desc), step, epoch)
        seconds = time.perf_counter() - t0
        train_m = sums.means(d)
        val_m = validate_moclip(model, val_set, teacher_texts, cfg) if val_set is not None and d.main else {}
        metrics = {"epoch": epoch + 1, "step": step, "phase": phase["name"], **train_m, **val_m,
                   **{f"lr_{g['name']}": g["lr"] for g in opt.param_groups},
                   "seconds": round(seconds, 3), "samples_per_s": round(sums.n * cfg.batch_size / seconds, 2)}
        run.log(metrics)
        if epoch + 1 == stop or (epoch + 1) % cfg.checkpoint_every == 0:
            if d.main:
                run_config["student"]["fingerprint"] = student.fingerprint
                run_config["metrics"] = {k: v for k, v in metrics.items()}
            run.commit(model, opt, epoch + 1, step, run_config)
        barrier(d)
    run.close()
    return metrics


def _data_loaders(data: Path, cfg: MoCLIPTrainConfig, d: Dist):
    """The train and val windows (val is None when no clip is long enough; at most cfg.val_max_windows,
    evenly spaced), the sampler and the train loader."""
    from torch.utils.data import DataLoader, DistributedSampler

    from motionclip.core.data.windows import collate_motion

    train_set, val_set = train_val_windows(data, cfg)
    if val_set is not None and 0 < cfg.val_max_windows < len(val_set):
        every = len(val_set) / cfg.val_max_windows
        val_set.windows = [val_set.windows[int(i * every)] for i in range(cfg.val_max_windows)]
    if len(train_set) < cfg.batch_size:
        raise TrainError(f"{data}: the train split has {len(train_set)} windows, fewer than one batch of "
                         f"{cfg.batch_size}; lower --batch-size or add data")
    sampler = DistributedSampler(train_set, num_replicas=d.world, rank=d.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    loader = DataLoader(train_set, batch_size=cfg.batch_size // d.world, sampler=sampler, collate_fn=collate_motion,
                        num_workers=cfg.num_workers, drop_last=True)
    return train_set, val_set, sampler, loader


def _run_config(cfg: MoCLIPTrainConfig, data: Path, d: Dist, teacher, model: MoCLIP, train_set) -> dict[str, Any]:
    """What RUN/config.json records (the student's fingerprint and the metrics join at each checkpoint)."""
    from motionclip.core.encoders.moclip_student import RUN_KIND

    student = model.student
    return {
        "kind": RUN_KIND, "model": {"head": model.head.config.to_dict()},
        "encoder": {"spec": cfg.teacher, **teacher.identity()},  # the teacher
        "student": {"name": student.name, "dim": student.dim},
        "train": asdict(cfg), "data": {"path": str(data), "fps": train_set.index.fps, "train_windows": len(train_set)},
        "world_size": d.world,
        "parameters": {"head": model.head.num_parameters(), "student": sum(p.numel() for p in student.parameters())}}


class _Epochs:
    """What every optimizer step of a run uses, and the phase in place: its trainable parameters, the
    student's text embeddings (constants while the student is frozen) and, under DDP, the wrapper."""

    def __init__(self, model: MoCLIP, opt: torch.optim.Optimizer, cfg: MoCLIPTrainConfig, d: Dist, teacher,
                 teacher_texts, data: Path, steps: int) -> None:
        self.model, self.opt, self.cfg, self.d = model, opt, cfg, d
        self.teacher, self.teacher_texts, self.data, self.steps = teacher, teacher_texts, data, steps
        self.ddp, self.student_texts = model, None
        self.current: int | None = None  # the phase whose trainable set and text lookup are in place
        self.phase: dict[str, Any] = {}
        self.phase_start = 0

    def enter(self, epoch: int) -> dict[str, Any]:
        """Put the phase of a 0-based epoch in place (when it is not already); returns the phase."""
        k, phase, self.phase_start = self.cfg.phase_at(epoch)
        self.phase = phase
        if k == self.current:
            return phase
        model, student = self.model, self.model.student
        _set_phase(model, self.opt, phase)
        if "student" not in phase["train"]:
            self.student_texts = (self.teacher_texts if student.fingerprint == self.teacher.fingerprint
                                  else _FrozenStudentTexts(student, _all_texts(self.data, self.cfg.mirror_prob > 0)))
        else:
            self.student_texts = None
        if self.d.world > 1:  # DDP hooks follow requires_grad at wrap time: re-wrap for each phase. A text
            # encoder may hold weights its text path never uses (CLIP's own logit scale, BERT's pooler).
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                model, find_unused_parameters="student" in phase["train"])
        self.current = k
        return phase

    def run(self, batches: EpochBatches, step: int, epoch: int) -> tuple[int, LossSums]:
        """One epoch of optimizer steps in the entered phase; returns (step, the summed losses)."""
        cfg, d, opt, model, phase = self.cfg, self.d, self.opt, self.model, self.phase
        amp = cfg.amp and d.device.type == "cuda"
        phase_steps = phase["epochs"] * self.steps
        sums = LossSums()
        for i, batch in enumerate(batches):
            s_in_phase = (epoch - self.phase_start) * self.steps + i
            for g in opt.param_groups:
                base = phase["lr"].get(g["name"])
                g["lr"] = phase_lr(base, s_in_phase, phase_steps, cfg.min_lr_ratio) if base else 0.0
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
                out = self.ddp(batch, batch["text"] if self.student_texts is None else None)
            text = out["text"] if self.student_texts is None else self.student_texts(batch["text"]).to(d.device)
            # The loss over the global batch: every process gathers all embeddings (differentiably), so
            # the contrastive negatives and the gradients are those of one process with the whole batch.
            losses = moclip_loss(_gather(out["motion"], d), _gather(text, d),
                                 _gather(self.teacher_texts(batch["text"]).to(d.device), d), out["logit_scale"],
                                 cfg.lambda_distill)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], cfg.grad_clip)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(max=math.log(100.0))
            step += 1
            sums.add(losses)
            batches.done(losses["total"])
        return step, sums


@torch.no_grad()
def validate_moclip(model: MoCLIP, val_set, teacher_texts, cfg: MoCLIPTrainConfig, chunk: int = 32) -> dict[str, float]:
    """Validation losses over the whole val split, and motion-to-text / text-to-motion retrieval top-1
    within groups of `chunk` windows (the student's own embeddings; R-precision style)."""
    from motionclip.core.data.windows import collate_motion

    model.eval()
    dev = model.logit_scale.device
    motions, texts = [], []
    for s in range(0, len(val_set), cfg.batch_size):
        batch = collate_motion([val_set[i] for i in range(s, min(s + cfg.batch_size, len(val_set)))])
        batch = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in batch.items()}
        motions.append(model.encode_motion(batch).float())
        texts += batch["text"]
    m = torch.nn.functional.normalize(torch.cat(motions), dim=-1)
    s_emb = model.student.encode_text(texts, to_cpu=False).float()
    t_emb = teacher_texts(texts).to(dev)
    sums: dict[str, float] = {}
    r1_m2t = r1_t2m = 0.0
    groups = 0
    for a in range(0, len(texts), chunk):
        b = min(a + chunk, len(texts))
        if b - a < 2:
            continue
        losses = moclip_loss(m[a:b], s_emb[a:b], t_emb[a:b], model.logit_scale, cfg.lambda_distill)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        sim = m[a:b] @ torch.nn.functional.normalize(s_emb[a:b], dim=-1).T
        same = torch.tensor([[texts[a + i] == texts[a + j] for j in range(b - a)] for i in range(b - a)], device=dev)
        hit = same[torch.arange(b - a), sim.argmax(1)]  # a retrieved text identical to the true one counts
        r1_m2t += float(hit.float().mean())
        r1_t2m += float(same[sim.argmax(0), torch.arange(b - a)].float().mean())
        groups += 1
    out = {f"val_{k}": v / max(groups, 1) for k, v in sums.items()}
    out["val_r1_motion_to_text"] = r1_m2t / max(groups, 1)
    out["val_r1_text_to_motion"] = r1_t2m / max(groups, 1)
    return out
