"""What a motion file may ask of its reader, checked before anything is allocated.

Every reader (BVH, AMASS npz, DeepMimic, our JSON and .motion) checks a file against these limits
before it reads or builds arrays, so a small hostile file (a zip bomb, a header that declares a
billion frames, a frame rate of 1e-6 that resampling would turn into 10^8 frames) fails at once
with a `LimitError` that names the file, the value and the limit, instead of exhausting memory.
The limits are far above any real capture: 200,000 frames is 27 minutes at 120 fps.
"""

from __future__ import annotations

import json
import math
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MotionClipError

MAX_FILE_BYTES = 1 << 30          # any motion file on disk (a long BVH is text: ~100 bytes a frame per joint)
MAX_JSON_BYTES = 64 << 20         # a JSON / DeepMimic motion (parsed into Python lists: ~10x its size in memory)
MAX_JSON_DEPTH = 32               # nesting of JSON arrays / objects (a motion needs 4)
MAX_ZIP_ENTRIES = 64              # members of an .npz / .motion archive
MAX_ZIP_ENTRY_BYTES = 512 << 20   # one member, decompressed, as the archive declares it
MAX_HEADER_BYTES = 1 << 20        # the JSON header of a .motion file
MAX_COMPRESSION_RATIO = 100       # decompressed / compressed size of a member over 1 MiB (motion data: under 5)
MAX_FRAMES = 200_000              # frames in a source file, and after resampling
MAX_JOINTS = 512                  # joints in a BVH hierarchy
MAX_CHANNELS_PER_JOINT = 6        # BVH channels of one joint (3 rotations + 3 positions)
MAX_VALUES = 50_000_000           # numbers in one motion array (frames x channels): 400 MB as float64
MIN_FPS, MAX_FPS = 1.0, 1000.0    # frame rate of a source file
MAX_ABS_VALUE = 1e9               # any BVH offset, position or angle (beyond float32's range: 3.4e38)

LIMIT_NAMES = ("MAX_FILE_BYTES", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_ZIP_ENTRIES", "MAX_ZIP_ENTRY_BYTES",
               "MAX_HEADER_BYTES", "MAX_COMPRESSION_RATIO", "MAX_FRAMES", "MAX_JOINTS", "MAX_CHANNELS_PER_JOINT", "MAX_VALUES", "MIN_FPS",
               "MAX_FPS", "MAX_ABS_VALUE")


class LimitError(MotionClipError):
    """A file beyond one of the limits above; the message names the file, the value and the limit."""


def beyond(origin: Any, what: str, value: Any, limit_name: str, unit: str = "") -> LimitError:
    limit = globals()[limit_name]
    return LimitError(f"{origin}: {what} is {value}{unit}; the limit is {limit:,}{unit} ({limit_name} in "
                      f"motionclip/core/io/limits.py)")


def check_count(origin: Any, what: str, n: int, limit_name: str) -> int:
    if n > globals()[limit_name]:
        raise beyond(origin, what, f"{n:,}", limit_name)
    return n


def check_fps(origin: Any, fps: Any, what: str = "the frame rate") -> float:
    """A finite frame rate within MIN_FPS..MAX_FPS (as float), or a LimitError naming the file."""
    try:
        fps = float(fps)
    except (TypeError, ValueError, OverflowError):
        raise LimitError(f"{origin}: {what} must be a number of frames per second, got {str(fps)[:40]!r}") from None
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise LimitError(f"{origin}: {what} is {fps:g} fps; readable files have {MIN_FPS:g} to {MAX_FPS:g} fps "
                         f"(MIN_FPS / MAX_FPS in motionclip/core/io/limits.py)")
    return fps


def read_bytes(path: Path, limit_name: str = "MAX_FILE_BYTES") -> bytes:
    """The file's bytes, refusing files larger than the limit before reading them."""
    size = path.stat().st_size
    if size > globals()[limit_name]:
        raise beyond(path, "the file size", f"{size:,}", limit_name, " bytes")
    with open(path, "rb") as f:
        return f.read(size + 1)


# --- JSON -------------------------------------------------------------------------------------------------

def json_depth(obj: Any) -> int:
    """Deepest nesting of lists / dicts in a parsed JSON value (walked without recursion)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _parse_int(text: str) -> int | float:
    # Long integers become floats (too large ones: inf, refused as non-finite) instead of failing
    # Python's limit on integer digits.
    return int(text) if len(text) <= 18 else float(text)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows; motion data must be finite numbers")


def loads_json(raw: bytes, origin: Any, error: type[MotionClipError] = MotionClipError) -> Any:
    """JSON from bytes with the limits: size, nesting, UTF-8, no NaN / Infinity, no 5,000-digit integers."""
    if len(raw) > MAX_JSON_BYTES:
        raise beyond(origin, "the JSON size", f"{len(raw):,}", "MAX_JSON_BYTES", " bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{origin}: not UTF-8 text (byte {exc.start}); a JSON motion is UTF-8 text") from None
    if not text.strip():
        raise error(f"{origin}: the file is empty; expected a JSON motion")
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise error(f"{origin}: line {exc.lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:  # the parser's own guard, at about a thousand levels
        raise beyond(origin, "the JSON nesting depth", f"over {sys.getrecursionlimit()}", "MAX_JSON_DEPTH") from None
    except ValueError as exc:
        raise error(f"{origin}: unusable JSON ({exc})") from None
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise beyond(origin, "the JSON nesting depth", depth, "MAX_JSON_DEPTH")
    return data


def read_json_file(path: Path, error: type[MotionClipError] = MotionClipError) -> Any:
    return loads_json(read_bytes(path, "MAX_JSON_BYTES"), path, error)


# --- zip archives (.npz, .motion) --------------------------------------------------------------------------

def open_zip(path: Path, error: type[MotionClipError], what: str) -> zipfile.ZipFile:
    """The archive, with its member count and every member's declared size checked."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise error(f"{path}: not a readable {what} (not a zip archive: {exc})") from None
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        zf.close()
        raise beyond(path, "the number of archive members", len(infos), "MAX_ZIP_ENTRIES")
    for info in infos:
        if info.file_size > MAX_ZIP_ENTRY_BYTES:
            zf.close()
            raise beyond(path, f"member {info.filename!r} (decompressed)", f"{info.file_size:,}",
                         "MAX_ZIP_ENTRY_BYTES", " bytes")
    return zf


def read_member(zf: zipfile.ZipFile, name: str, path: Path, error: type[MotionClipError], limit: int) -> bytes:
    """One member's bytes, never more than `limit` (nor its declared size: a lying header fails its CRC)."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise LimitError(f"{path}: member {name!r} is {info.file_size:,} bytes; the limit is {limit:,} bytes")
    try:
        with zf.open(info) as f:
            return f.read(limit + 1)
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise error(f"{path}: member {name!r} cannot be read ({exc}); the file is damaged") from None


def read_npy(zf: zipfile.ZipFile, name: str, path: Path, error: type[MotionClipError],
             max_dims: int = 4, frames: bool = False) -> np.ndarray:
    """A numeric array from an .npy member: its header (dtype, shape) is checked against the limits and
    against the member's declared size before the array is allocated and read. With `frames`, the first
    dimension counts frames and is held to MAX_FRAMES."""
    size = zf.getinfo(name).file_size
    try:
        with zf.open(name) as f:
            dtype, shape, fortran = _npy_header(f, name, path, error, max_dims)
            if frames and shape:
                check_count(path, f"the number of frames in {name!r} {list(shape)}", shape[0], "MAX_FRAMES")
            count = math.prod(shape)
            if count > MAX_VALUES:
                raise beyond(path, f"the size of array {name!r} {list(shape)}", f"{count:,} values", "MAX_VALUES")
            if count * dtype.itemsize > size:
                raise error(f"{path}: array {name!r} declares {list(shape)} {dtype} ({count * dtype.itemsize:,} "
                            f"bytes) but its member holds {size:,} bytes; the file is damaged")
            _check_ratio(zf.getinfo(name), path)
            arr = np.empty(count, dtype=dtype)
            view, got = memoryview(arr.view(np.uint8).reshape(-1)), 0
            while got < len(view):
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
    except MotionClipError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise error(f"{path}: array {name!r} cannot be read ({exc}); the file is damaged") from None
    if got != count * dtype.itemsize:
        raise error(f"{path}: array {name!r} holds {got:,} bytes of data but its header declares "
                    f"{list(shape)} {dtype} ({count * dtype.itemsize:,} bytes); the file is truncated")
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def _check_ratio(info: zipfile.ZipInfo, path: Path) -> None:
    if info.file_size > 1 << 20 and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        ratio = info.file_size / max(info.compress_size, 1)
        raise LimitError(f"{path}: member {info.filename!r} expands {ratio:,.0f} times ({info.compress_size:,} to "
                         f"{info.file_size:,} bytes); the limit is {MAX_COMPRESSION_RATIO} times (MAX_COMPRESSION_RATIO "
                         f"in motionclip/core/io/limits.py): a zip bomb, or a motion of constant values")


def _npy_header(f, name: str, path: Path, error: type[MotionClipError], max_dims: int):
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise error(f"{path}: array {name!r} is in .npy format version {version}; expected 1.0 or 2.0")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    if dtype.hasobject or dtype.kind not in "biuf":
        raise error(f"{path}: array {name!r} holds {dtype} values; expected numbers (object and text "
                    f"arrays are not read)")
    if len(shape) > max_dims:
        raise error(f"{path}: array {name!r} has {len(shape)} dimensions {list(shape)}; expected at most {max_dims}")
    return dtype, shape, fortran


def npy_members(zf: zipfile.ZipFile) -> list[str]:
    return [n for n in zf.namelist() if n.endswith(".npy")]
