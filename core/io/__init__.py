"""Motion files in and out, by extension (or an explicit format).

Readable: .bvh (any skeleton, retargeted to SMPL), .npz (AMASS-style), .txt / .json (DeepMimic
clips, or our own JSON motion), .motion (our lossless format).
Writable: .bvh (SMPL skeleton), .npz (AMASS-style), .json, .motion, .npy (HumanML3D joints).
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

from ..errors import MotionClipError
from ..motion import MOTION_SUFFIX, Motion
from ..skeleton import Skeleton
from .limits import LimitError, read_json_file
from .retarget import Mapping, RetargetReport, retarget

READ_FORMATS = {".bvh": "bvh", ".npz": "amass", ".txt": "deepmimic", ".json": "json", MOTION_SUFFIX: "motion"}
WRITE_FORMATS = {".bvh": "bvh", ".npz": "amass", ".json": "json", MOTION_SUFFIX: "motion", ".npy": "humanml3d"}


class FormatError(MotionClipError):
    pass


def read_format(path: Path, format: str | None = None) -> str:
    if format:
        if format not in READ_FORMATS.values():
            raise FormatError(f"unknown input format {format!r}; choose one of {', '.join(sorted(set(READ_FORMATS.values())))}")
        return format
    fmt = READ_FORMATS.get(path.suffix.lower())
    if fmt is None:
        hint = " (.npy holds joint positions only, which cannot be turned back into rotations)" if path.suffix == ".npy" else ""
        raise FormatError(f"{path}: cannot tell the format from the extension {path.suffix!r}{hint}; "
                          f"readable: {', '.join(sorted(READ_FORMATS))}, or give --format")
    return fmt


# What a damaged file can make numpy, torch, zipfile or the parsers raise: each becomes one FormatError line.
_DAMAGE = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, RuntimeError, EOFError,
           LookupError, zipfile.BadZipFile, struct.error)


def load_source_motion(path: str | Path, format: str | None = None, mapping: Mapping | None = None,
                       skeleton: Skeleton | None = None, up: str | None = None,
                       extra_frames: str = "error") -> tuple[Motion, RetargetReport | None]:
    """Read a motion file as an SMPL Motion. Retargeted formats also return what the retarget measured.

    Whatever is wrong with the file, the error is a MotionClipError whose one-line message starts with
    the file's path: the caller can report it and go on with the next file.
    """
    path = Path(path)
    try:
        return _load(path, format, mapping, skeleton, up, extra_frames)
    except MotionClipError as exc:
        raise _naming(exc, path) from None
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise FormatError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    except MemoryError:
        raise LimitError(f"{path}: reading it needs more memory than this machine can give") from None
    except RecursionError:
        raise FormatError(f"{path}: nested too deeply to read") from None
    except _DAMAGE as exc:
        raise FormatError(f"{path}: not a readable {_format_name(path, format)} file ({type(exc).__name__}: "
                          f"{_one_line(exc)}); the file is damaged or not the format its extension says") from None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _naming(exc: MotionClipError, path: Path) -> MotionClipError:
    """The error as one line that starts with the file's path."""
    text = _one_line(exc, 1000)
    if text.startswith(str(path)) and text == str(exc):
        return exc
    if not text.startswith(str(path)):
        text = f"{path}: {text}"
    try:
        return type(exc)(text)
    except TypeError:
        return FormatError(text)


def _format_name(path: Path, format: str | None) -> str:
    return format or READ_FORMATS.get(path.suffix.lower(), path.suffix or "motion")


def _load(path: Path, format: str | None, mapping: Mapping | None, skeleton: Skeleton | None, up: str | None,
          extra_frames: str) -> tuple[Motion, RetargetReport | None]:
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    fmt = read_format(path, format)
    if fmt == "bvh":
        from .bvh import read_bvh

        clip = read_bvh(path, extra_frames=extra_frames)
        motion, report = retarget(clip, mapping, skeleton, up)
        motion.meta.update(format="bvh", source_frames=clip.num_frames)
        return motion, report
    if fmt == "amass":
        from .amass import read_amass

        motion = read_amass(path, up=up or "z", skeleton=skeleton)
        motion.meta.update(format="amass", source_frames=motion.num_frames)
        return motion, None
    if fmt == "motion":
        return Motion.load(path), None
    # JSON: our own motion, or a DeepMimic clip.
    data = read_json_file(path, FormatError)
    from .deepmimic import is_deepmimic, needs_retiming, read_deepmimic, uniform_positions
    from .json_motion import dict_to_motion

    if fmt == "deepmimic" or is_deepmimic(data):
        clip = read_deepmimic(path, data)
        if mapping is None:
            from .retarget import presets

            mapping = presets()["deepmimic"]
        motion, report = retarget(clip, mapping, skeleton, up)
        if needs_retiming(clip):
            motion = motion.sample_at(uniform_positions(clip), clip.fps)
        motion.meta.update(format="deepmimic", source_frames=clip.num_frames)
        return motion, report
    return dict_to_motion(data, str(path)), None


def load_motion(path: str | Path, **kwargs) -> Motion:
    return load_source_motion(path, **kwargs)[0]


def save_motion(motion: Motion, path: str | Path, format: str | None = None, skeleton: Skeleton | None = None) -> Path:
    """Write a motion; the format comes from the extension unless given."""
    path = Path(path)
    fmt = format or WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None or fmt not in WRITE_FORMATS.values():
        raise FormatError(f"{path}: cannot write format {(format or path.suffix)!r}; writable: "
                          f"{', '.join(f'{k} ({v})' for k, v in sorted(WRITE_FORMATS.items()))}")
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FormatError(f"{path}: cannot create the folder ({exc.strerror})") from None
    try:
        return _write(motion, path, fmt, skeleton)
    except PermissionError:
        raise  # the command line says which path to choose instead
    except OSError as exc:  # a full disk, an I/O error: name the file being written
        raise FormatError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _write(motion: Motion, path: Path, fmt: str, skeleton: Skeleton | None) -> Path:
    if fmt == "bvh":
        from .bvh import write_bvh

        return write_bvh(motion, path, skeleton)
    if fmt == "amass":
        from .amass import write_amass

        return write_amass(motion, path, skeleton=skeleton)
    if fmt == "json":
        from .json_motion import write_json

        return write_json(motion, path, skeleton)
    if fmt == "humanml3d":
        from .humanml3d import write_humanml3d

        return write_humanml3d(motion, path, skeleton)
    return motion.save(path)


__all__ = ["load_source_motion", "load_motion", "save_motion", "FormatError", "READ_FORMATS", "WRITE_FORMATS",
           "Mapping", "retarget", "RetargetReport"]
