"""Run directories: everything needed to rebuild a trained model, and nothing pickled.

    RUN/config.json          model config, text-encoder identity, training config, data, metrics
    RUN/model.safetensors    the model's weights (frozen text-encoder weights are not stored)
    RUN/checkpoints/last.*   resume state: weights + optimizer tensors (safetensors) and counters (JSON)
    RUN/metrics.csv, RUN/tb/ logs (CSV and TensorBoard)

Every file is written to a temporary name and renamed, so a killed run never leaves a corrupt file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import MotionClipError, read_json
from .motion import atomic_write_bytes, atomic_write_text

RUN_FORMAT = "motionclip-run"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"


class RunError(MotionClipError):
    pass


def save_weights(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None,
                 half: bool = False) -> None:
    from safetensors.torch import save

    out = {k: (v.detach().to("cpu", torch.float16 if half and v.is_floating_point() else v.dtype)).contiguous()
           for k, v in tensors.items()}
    atomic_write_bytes(Path(path), save(out, metadata=metadata))


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (float16 ones widened to float32) and metadata of a safetensors file, with clear errors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: missing; the run directory is incomplete (was training interrupted before its first "
                       f"checkpoint?)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt / truncated files
        raise RunError(f"{path}: not a readable safetensors file ({exc}); the file is corrupt or truncated - "
                       f"retrain, or restore it from a copy") from None
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in tensors.items()}, meta


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps({"format": RUN_FORMAT, "version": 1, **config}, indent=1))


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.exists():
        raise RunError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run directory (no {CONFIG}); give the folder `motionclip train` wrote")
    config = read_json(path, RunError)
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise RunError(f"{path}: not a motionclip run config (expected \"format\": \"{RUN_FORMAT}\")")
    for key in ("model", "encoder"):
        if key not in config:
            raise RunError(f"{path}: missing {key!r}")
    return config


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], origin: str) -> None:
    """Strict load with a message that names what is missing or unexpected."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
        if wrong:
            parts.append(f"wrong shapes {wrong[:4]}")
        raise RunError(f"{origin}: the weights do not fit the model in config.json ({'; '.join(parts)}); "
                       f"the run directory mixes files from different runs")
    model.load_state_dict(tensors, strict=True)


def load_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode, run config) from a run directory."""
    from .models.motionclip import MotionCLIP, MotionCLIPConfig

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.get("kind") in ("moclip", "evaluator"):
        use = "a text encoder: --encoder moclip:RUN" if config["kind"] == "moclip" else "--evaluator of motionclip eval"
        raise RunError(f"{run_dir}: a {config['kind']} run, not a MotionCLIP motion model; use it as {use}")
    model = MotionCLIP(MotionCLIPConfig.from_dict(config["model"]))
    tensors, _ = load_weights(run_dir / WEIGHTS)
    load_state_into(model, tensors, str(run_dir / WEIGHTS))
    return model.to(device).eval(), config


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, half: bool = False) -> Path:
    """A clean copy of a run for shipping: config.json and the weights (float16 with ``half``),
    without checkpoints, optimizer state or logs. Loads first, so a broken run is never exported."""
    run_dir, out = Path(run_dir), Path(out)
    config = read_config(run_dir)
    model, _ = load_model(run_dir)
    if out.resolve() == run_dir.resolve():
        raise RunError(f"{out}: export into a different folder than the run itself")
    out.mkdir(parents=True, exist_ok=True)
    save_weights(model.state_dict(), out / WEIGHTS, metadata={"exported_from": run_dir.name,
                                                               "dtype": "float16" if half else "float32"}, half=half)
    shipped = {k: v for k, v in config.items() if k not in ("format", "version")}
    if isinstance(shipped.get("data"), dict) and shipped["data"].get("path"):
        # the trainer's local dataset path means nothing on another machine: keep its folder name only
        shipped["data"] = dict(shipped["data"], path=Path(str(shipped["data"]["path"])).name)
    write_config(out, shipped)
    return out
