"""Run directories: everything needed to rebuild a trained model, and nothing pickled.

    RUN/config.json          model config, text-encoder identity, training config, data, metrics, latent_norm,
                             and the SHA-256 of each weights file ("sha256"), checked on load
    RUN/model.safetensors    the model's weights (frozen text-encoder weights are not stored)
    RUN/checkpoints/last.*   resume state: weights + optimizer tensors (safetensors) and counters (metadata)
    RUN/metrics.csv, RUN/tb/ logs (CSV and TensorBoard)

A checkpoint is one commit (commit_run): every new file is first written in full beside its final name
(NAME.next), config.json.next last; then the weights are renamed into place and config.json last. A kill
before config.json.next exists leaves the old run; after it, the new one: readers take config.json.next
when it, not config.json, names the weights in place, and the next trainer start finishes the renames
(recover_run). So weights, latent_norm and the rest of config.json always belong together.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import MotionClipError, read_json
from .files import atomic_write_bytes, atomic_write_text

RUN_FORMAT = "motionclip-run"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SHA256 = "sha256"  # config.json: {relative file name: hex SHA-256} of the weights files written with it
PENDING = ".next"  # suffix of a commit's files before they are renamed into place
RECORDED = "recorded"  # load_weights: check against the SHA-256 the run's config.json records
# Test hook: MOTIONCLIP_CRASH_AT=POINT[@N] ends the process (exit 75) the N-th time it reaches POINT
# (see crash_point), so tests can kill a trainer at exact places of a commit.
CRASH_ENV = "MOTIONCLIP_CRASH_AT"
CRASH_EXIT = 75
_crash_counts: dict[str, int] = {}


class RunError(MotionClipError):
    pass


def crash_point(name: str) -> None:
    """End the process here when MOTIONCLIP_CRASH_AT names this point (a test hook; a no-op otherwise)."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    point, _, nth = spec.partition("@")
    if point == name:
        _crash_counts[name] = _crash_counts.get(name, 0) + 1
        if _crash_counts[name] >= int(nth or 1):
            os._exit(CRASH_EXIT)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                  half: bool = False) -> bytes:
    from safetensors.torch import save

    out = {k: (v.detach().to("cpu", torch.float16 if half and v.is_floating_point() else v.dtype)).contiguous()
           for k, v in tensors.items()}
    return save(out, metadata=metadata)


def save_weights(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None,
                 half: bool = False) -> None:
    atomic_write_bytes(Path(path), weights_bytes(tensors, metadata, half))


def recorded_sha256(path: Path) -> str | None:
    """The SHA-256 that the run directory holding `path` (RUN/model.safetensors) records for it, if any."""
    path = Path(path)
    if path.name != WEIGHTS or not (path.parent / CONFIG).is_file():
        return None
    return read_config(path.parent).get(SHA256, {}).get(WEIGHTS)


def check_sha256(path: Path, expected: str | None, config_path: Path | None = None) -> None:
    if not expected:
        return  # written before SHA-256s were recorded: nothing to check against
    got = file_sha256(path)
    if got != expected:
        where = config_path or Path(path).parent / CONFIG
        raise RunError(f"{path}: its SHA-256 {got[:16]}... differs from the {expected[:16]}... recorded in {where}: "
                       f"the file was changed or damaged after training wrote it. Restore the run directory from a "
                       f"copy or retrain it (if you changed the weights on purpose, delete the \"{SHA256}\" entry "
                       f"of {where.name})")


def load_weights(path: Path, sha256: str | None = RECORDED) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors (float16 ones widened to float32) and metadata of a safetensors file, with clear errors.
    sha256: the file's expected SHA-256; by default the one its run's config.json records (None: no check)."""
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
    check_sha256(path, recorded_sha256(path) if sha256 == RECORDED else sha256)
    return {k: v.float() if v.dtype == torch.float16 else v for k, v in tensors.items()}, meta


def _config_text(config: dict[str, Any]) -> str:
    return json.dumps({"format": RUN_FORMAT, "version": 1, **config}, indent=1)


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """config.json alone (a run's settings before its first checkpoint); checkpoints go through commit_run."""
    atomic_write_text(Path(run_dir) / CONFIG, _config_text(config))


def _write_durable(path: Path, data: bytes) -> None:
    """Write `data` in full to `path` by way of .NAME.tmp (flushed to disk, then renamed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(data[:len(data) // 2])
        f.flush()
        crash_point(f"write:{path.name}")  # a kill in the middle of a write
        f.write(data[len(data) // 2:])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def commit_run(run_dir: Path, files: dict[str, bytes], config: dict[str, Any]) -> None:
    """Write weights files (names relative to the run) and config.json as one unit; config.json records each
    file's SHA-256. A kill at any point leaves the old set or the new one (see the module's docstring)."""
    run = Path(run_dir)
    pending = run / (CONFIG + PENDING)
    pending.unlink(missing_ok=True)
    config = {**config, SHA256: {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    for name, data in files.items():
        _write_durable(run / (name + PENDING), data)
    crash_point("commit:weights-written")
    _write_durable(pending, _config_text(config).encode("utf-8"))
    crash_point("commit:config-written")
    _finish_commit(run, list(files))


def _finish_commit(run: Path, names: list[str]) -> None:
    for name in names:
        if (run / (name + PENDING)).is_file():
            os.replace(run / (name + PENDING), run / name)
            crash_point(f"commit:renamed:{name}")
    os.replace(run / (CONFIG + PENDING), run / CONFIG)
    _sync_dirs(run, run / "checkpoints")


def _sync_dirs(*folders: Path) -> None:
    """Flush the renames themselves to disk (the files were flushed before them)."""
    for folder in folders:
        if folder.is_dir():
            try:
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                pass  # a filesystem that cannot sync a directory: the renames are still atomic


def recover_run(run_dir: Path) -> list[str]:
    """Finish a commit a kill interrupted (its config.json.next is complete) or drop one that never reached
    that point, and delete temporary files; returns what was done. For the trainer, before it starts."""
    run = Path(run_dir)
    done: list[str] = []
    pending = run / (CONFIG + PENDING)
    if pending.is_file():
        try:
            names = list(json.loads(pending.read_text())[SHA256])
        except (ValueError, KeyError, TypeError):
            names = None  # not written by commit_run: leave the run as it is
        if names is not None:
            _finish_commit(run, names)
            done.append(f"finished the interrupted checkpoint ({', '.join(names)})")
    for folder in (run, run / "checkpoints"):
        for stray in sorted(folder.glob(f"*{PENDING}")) + sorted(folder.glob("*.tmp")) + sorted(folder.glob(".*.tmp")):
            if stray.is_file():
                stray.unlink()
                done.append(f"removed {stray.relative_to(run)}")
    return done


def _check_config(config: dict[str, Any], path: Path) -> None:
    """Types of the sections the loaders and trainers read: an edited or damaged file gets a clear error."""
    fix = "the file was edited or damaged; restore it from a copy, or fix that field"
    for key in ("model", "encoder"):
        if key not in config:
            raise RunError(f"{path}: missing {key!r}; {fix}")
    for key in ("model", "encoder", "train", "data", "metrics", SHA256):
        if key in config and not isinstance(config[key], dict):
            raise RunError(f"{path}: {key!r} must be a JSON object, got {json.dumps(config[key])[:40]}; {fix}")
    if not isinstance(config["encoder"].get("name", config["encoder"].get("spec")), str):
        raise RunError(f"{path}: 'encoder' names no text encoder (\"name\"); {fix}")
    numbers = {"latent_norm": config.get("latent_norm"), "data.fps": config.get("data", {}).get("fps")}
    for key, v in numbers.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise RunError(f"{path}: {key} must be a positive number, got {json.dumps(v)[:40]}; {fix}")
    for name, digest in config.get(SHA256, {}).items():
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise RunError(f"{path}: sha256 of {name} must be 64 hex digits, got {json.dumps(digest)[:40]}; {fix}")


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """A run's config.json, checked; while a checkpoint's renames are unfinished, the config of the
    weights in place (config.json.next once the new weights are in)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.exists():
        raise RunError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run directory (no {CONFIG}); give the folder `motionclip train` wrote")
    config = read_json(path, RunError)
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise RunError(f"{path}: not a motionclip run config (expected \"format\": \"{RUN_FORMAT}\")")
    _check_config(config, path)
    pending = run_dir / (CONFIG + PENDING)
    if pending.is_file() and (run_dir / WEIGHTS).is_file():
        try:
            newer = json.loads(pending.read_text())
            want = newer[SHA256][WEIGHTS]
        except (ValueError, KeyError, TypeError):
            return config
        if want != config.get(SHA256, {}).get(WEIGHTS) and file_sha256(run_dir / WEIGHTS) == want:
            _check_config(newer, pending)
            return newer
    return config


def require_section(run_dir: str | os.PathLike, key: str) -> dict[str, Any]:
    """config.json's section `key` (e.g. "train" to resume), with a clear error when it is missing."""
    config = read_config(run_dir)
    if key not in config:
        raise RunError(f"{Path(run_dir) / CONFIG}: missing {key!r}; the file was edited or damaged; restore it "
                       f"from a copy, or fix that field")
    return config[key]


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], origin: str, assign: bool = False) -> None:
    """Strict load with a message that names what is missing or unexpected. assign: the tensors become the
    model's own (for a model built on the meta device, without random initial values)."""
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
    if assign:
        tensors = {k: _as_own(v, own[k].dtype) for k, v in tensors.items()}
    model.load_state_dict(tensors, strict=True, assign=assign)


def _as_own(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`t` as a model's own tensor would be: in `dtype`, contiguous, 64-byte aligned as torch allocates. A file's
    tensors may lie at any alignment, and the CPU kernels can round differently on such data; copied only then
    (each copy of a large tensor is a parallel region, which costs on a busy machine)."""
    if t.dtype == dtype and t.is_contiguous() and t.data_ptr() % 64 == 0:
        return t
    return t.to(dtype, copy=True).contiguous()


def load_model(run_dir: str | os.PathLike, device: str | torch.device = "cpu"):
    """(model in eval mode, run config) from a run directory."""
    from .models.motionclip import MotionCLIP, MotionCLIPConfig

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if config.get("kind") in ("moclip", "evaluator"):
        use = "a text encoder: --encoder moclip:RUN" if config["kind"] == "moclip" else "--evaluator of motionclip eval"
        raise RunError(f"{run_dir}: a {config['kind']} run, not a MotionCLIP motion model; use it as {use}")
    model_config = MotionCLIPConfig.from_dict(config["model"])
    tensors, _ = load_weights(run_dir / WEIGHTS, config.get(SHA256, {}).get(WEIGHTS))
    with torch.device("meta"):  # shapes only: the random initial values would be overwritten at once
        model = MotionCLIP(model_config)
    load_state_into(model, tensors, str(run_dir / WEIGHTS), assign=True)
    model.derive_buffers()  # the buffers not stored with the weights (positions), made on the CPU
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
    weights = weights_bytes(model.state_dict(), metadata={"exported_from": run_dir.name,
                                                          "dtype": "float16" if half else "float32"}, half=half)
    shipped = {k: v for k, v in config.items() if k not in ("format", "version", SHA256)}
    if isinstance(shipped.get("data"), dict) and shipped["data"].get("path"):
        # the trainer's local dataset path means nothing on another machine: keep its folder name only
        shipped["data"] = dict(shipped["data"], path=Path(str(shipped["data"]["path"])).name)
    commit_run(out, {WEIGHTS: weights}, shipped)
    return out
