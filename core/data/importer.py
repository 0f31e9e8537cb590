"""`motionclip data import`: motion files and folders -> the canonical SMPL dataset.

Every good file is imported; every bad one is listed with its reason, and costs only itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import MotionClipError
from ..io import READ_FORMATS, load_source_motion, read_format
from ..io.retarget import Mapping
from ..skeleton import Skeleton, neutral_skeleton
from .dataset_dir import DEFAULT_SPLITS, DatasetIndex, split_for
from .texts import load_user_texts, texts_for

MIN_FRAMES = 8  # shorter clips are of no use for training windows


@dataclass
class ImportResult:
    imported: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _is_motion_json(path: Path) -> bool:
    """In folders, .json / .txt files are labels or notes unless they hold a motion."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return '"Frames"' in head or '"motionclip-json"' in head


def collect_files(paths: list[str | Path], format: str | None = None) -> tuple[list[Path], list[tuple[str, str]]]:
    """Motion files from files and folders (recursively). Returns (files, problems)."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if not f.is_file() or f.name.startswith("."):
                    continue
                suffix = f.suffix.lower()
                if format:
                    if READ_FORMATS.get(suffix) == format or (format == "deepmimic" and suffix in (".txt", ".json")):
                        files.append(f)
                elif suffix in (".bvh", ".npz", ".motion"):
                    files.append(f)
                elif suffix in (".json", ".txt") and _is_motion_json(f):
                    files.append(f)
        elif p.is_file():
            files.append(p)
        else:
            problems.append((str(p), "no such file or folder"))
    return files, problems


def import_files(paths: list[str | Path], out: str | Path, *, fps: float = 30.0, format: str | None = None,
                 mapping: Mapping | None = None, texts_file: str | Path | None = None, up: str | None = None,
                 canonicalize: bool = True, extra_frames: str = "error",
                 splits: tuple[float, float, float] = DEFAULT_SPLITS, split_seed: int = 0,
                 split_by: str | None = None, skeleton: Skeleton | None = None,
                 progress: Callable[[Any], Any] | None = None) -> ImportResult:
    """Import motion files into the dataset at `out` (created, or added to)."""
    skeleton = skeleton or neutral_skeleton()
    user = load_user_texts(texts_file) if texts_file else None
    files, problems = collect_files(paths, format)
    result = ImportResult(failed=list(problems))
    if not files and not problems:
        raise MotionClipError(f"no motion files found in {', '.join(map(str, paths))} "
                              f"(readable: {', '.join(sorted(READ_FORMATS))})")
    index = DatasetIndex.open_or_create(out, fps)
    iterator = progress(files) if progress else files
    try:
        for path in iterator:
            try:
                result.imported.append(_import_one(path, index, fps=fps, format=format, mapping=mapping, user=user,
                                                   up=up, canonicalize=canonicalize, extra_frames=extra_frames,
                                                   splits=splits, split_seed=split_seed, split_by=split_by,
                                                   skeleton=skeleton))
            except Exception as exc:  # noqa: BLE001 - any failure costs only its own file
                result.failed.append((str(path), _reason(exc, path)))
    finally:
        # Publish what was imported, even when interrupted: each listed clip is complete.
        if result.imported:
            _publish(index.save, Path(out) / "index.json")
    if result.failed:
        report = [{"file": f, "error": e} for f, e in result.failed]
        _publish(lambda: _write_errors(Path(out), report), Path(out) / "import_errors.json")
    return result


def _reason(exc: Exception, path: Path) -> str:
    """What went wrong with one file, as one line without the file's own path in front."""
    if isinstance(exc, MemoryError):
        msg = "reading it needs more memory than this machine can give"
    elif isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
        msg = f"cannot read or write{where}: {exc.strerror}"
    elif isinstance(exc, (MotionClipError, OSError)):
        msg = str(exc)
    else:
        msg = f"cannot be imported ({type(exc).__name__}: {exc})"
    msg = " ".join(msg.split())
    return msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else msg


def _write_errors(out: Path, report: list[dict[str, str]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "import_errors.json").write_text(json.dumps(report, indent=1))


def _publish(write: Callable[[], None], target: Path) -> None:
    try:
        write()
    except OSError as exc:
        raise MotionClipError(f"{target}: cannot write ({exc.strerror or exc}); free some space or choose "
                              f"another --out") from None


def _import_one(path: Path, index: DatasetIndex, *, fps: float, format: str | None, mapping: Mapping | None,
                user: dict[str, list[str]] | None, up: str | None, canonicalize: bool, extra_frames: str,
                splits: tuple[float, float, float], split_seed: int, split_by: str | None,
                skeleton: Skeleton) -> dict[str, Any]:
    fmt = read_format(path, format) if format or path.suffix.lower() in READ_FORMATS else None
    motion, report = load_source_motion(path, format=fmt, mapping=mapping, skeleton=skeleton, up=up,
                                        extra_frames=extra_frames)
    texts, labels = texts_for(path, user)
    if not texts:
        sidecar = "" if path.suffix.lower() == ".txt" else f", or put them in {path.with_suffix('.txt').name} next to it, one per line"
        raise MotionClipError(f"{path}: no text label found; give texts with --texts FILE (CSV with columns "
                              f"file,text, or JSON {{file: [texts]}}){sidecar}")
    if abs(motion.fps - fps) > 1e-6:
        motion = motion.resample(fps)
    if motion.num_frames < MIN_FRAMES:
        raise MotionClipError(f"{path}: only {motion.num_frames} frames at {fps:g} fps; a clip needs at least {MIN_FRAMES}")
    if canonicalize:
        motion = motion.canonicalize(skeleton)
    clip_id = index.unique_id(path.stem, str(path))
    motion.meta.update(labels)
    motion.meta["texts"] = texts
    extra: dict[str, Any] = {"format": motion.meta.get("format", fmt or path.suffix.lstrip(".")),
                             "source_fps": motion.meta.get("source_fps", motion.fps), **labels}
    if report is not None:
        extra["retarget"] = report.as_dict()
    try:  # the index is strict JSON: no NaN / Infinity from a degenerate source
        json.dumps([extra, motion.meta], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MotionClipError(f"{path}: its measurements or metadata are not plain finite JSON values ({exc})") from None
    # The split follows the clip id, or a label the clip shares with others (e.g. its style), so
    # that a whole group is held out together.
    key = f"{split_by}={labels[split_by]}" if split_by and labels.get(split_by) else clip_id
    return index.add(clip_id, motion, texts, source=str(path), split=split_for(key, splits, split_seed), **extra)
