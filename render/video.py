"""Rendered frames to files: MP4 (ffmpeg from the imageio-ffmpeg package), GIF, a folder of PNGs,
and a contact sheet (a grid of frames in one PNG).

Every file is written beside its destination under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .bodies import RenderError

IMAGE_SUFFIXES = (".png",)


def output_kind(path: str | os.PathLike, contact_sheet: bool = False) -> str:
    """"mp4", "gif", "png" (a contact sheet or one image) or "dir", from the path's suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if contact_sheet:
        if suffix not in IMAGE_SUFFIXES:
            raise RenderError(f"--contact-sheet writes one PNG: give --out FILE.png, not {p}")
        return "png"
    if suffix in (".mp4", ".gif", ".png"):
        return suffix[1:]
    if suffix and not p.is_dir():
        raise RenderError(f"cannot write {p}: give FILE.mp4, FILE.gif, FILE.png (with --contact-sheet) or a folder "
                          f"for PNG frames")
    return "dir"


def check_writable(path: str | os.PathLike, kind: str) -> None:
    """Fail before rendering when the output cannot be written (a missing or read-only folder)."""
    p = Path(path)
    folder = p if kind == "dir" else p.parent
    probe = folder
    while not probe.exists():  # the nearest existing ancestor decides whether we can create the rest
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RenderError(f"cannot write {p}: {probe} is a file, not a folder")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise RenderError(f"cannot write frames into {p}: it is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RenderError(f"cannot write {p}: the folder {probe} is not writable; choose another --out")
    if kind != "dir" and p.is_dir():
        raise RenderError(f"cannot write {p}: it is a folder")


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    return Path(tmp)


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float, quality: int = 8) -> Path:
    """H.264 MP4 (yuv420p, plays everywhere); odd sizes are padded by one white pixel."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise RenderError(f"writing MP4 needs the imageio-ffmpeg package ({exc}): pip install "
                          f"'motionclip[render]'") from None
    path = Path(path)
    frames = _even(frames)
    n, h, w, _ = frames.shape
    tmp = _temp_beside(path)
    try:
        writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=float(fps), codec="libx264", quality=quality,
                                             pix_fmt_out="yuv420p", macro_block_size=1,
                                             output_params=["-movflags", "+faststart"])
        writer.send(None)
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _even(frames: np.ndarray) -> np.ndarray:
    n, h, w, c = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    out = np.full((n, h + h % 2, w + w % 2, c), 255, np.uint8)
    out[:, :h, :w] = frames
    return out


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> Path:
    from PIL import Image

    path = Path(path)
    images = [Image.fromarray(f) for f in frames]
    tmp = _temp_beside(path)
    try:
        # GIF frame delays are whole hundredths of a second: the nearest one to 1 / fps.
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=max(20, 10 * int(round(100.0 / fps))), optimize=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    from PIL import Image

    path = Path(path)
    tmp = _temp_beside(path)
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_frames_dir(frames: np.ndarray, folder: str | os.PathLike, frame_numbers=None) -> list[Path]:
    """frame_00000.png ... named by the motion's frame numbers."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    numbers = range(len(frames)) if frame_numbers is None else frame_numbers
    return [write_png(f, folder / f"frame_{int(k):05d}.png") for f, k in zip(frames, numbers)]


def contact_sheet(frames: np.ndarray, columns: int | None = None, pad: int = 2,
                  background: int = 255) -> np.ndarray:
    """A grid of frames [H', W', 3]: `columns` per row (default: about square)."""
    n, h, w, c = frames.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    sheet = np.full((rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad, c), background, np.uint8)
    for i, f in enumerate(frames):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        sheet[y:y + h, x:x + w] = f
    return sheet


def probe_video(path: str | os.PathLike) -> dict:
    """Frame count, frame rate and size of a video file, as ffmpeg reads it."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    count = sum(1 for _ in gen)
    return {"frames": count, "fps": float(meta["fps"]), "size": tuple(meta["size"])}
