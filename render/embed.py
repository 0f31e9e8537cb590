"""embed-frames: render chosen frames of every clip of a dataset and cache their CLIP image embeddings.

Frames per clip ("policy"):
    middle     the middle frame of each training window (window / stride as the trainer's
               defaults: 60 and 30 frames), or of the whole clip when it is shorter
    random:K   K distinct frames, drawn from (seed, clip id): the same on every run

Each chosen frame is rendered twice, as is and mirrored (left and right swapped, as the trainer's
mirroring augmentation does), each picture fitted to the body alone (camera "frame"), plain body on
white without a floor: the look of MotionCLIP's training frames. Render workers are separate
processes (one OpenGL context each); the main process runs the CLIP image tower on their pictures
and writes one file per clip as it goes, so an interrupted run resumes where it stopped, and writes
the completeness marker only when every clip is done (see motionclip.render.cache).
"""

from __future__ import annotations

import multiprocessing as mp
import random
import sys
import time
import zlib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionclip.core.errors import MotionClipError

from . import cache as C
from .bodies import BODIES, RenderError


@dataclass
class EmbedSettings:
    policy: str = "middle"
    window: int = 60
    stride: int = 30
    seed: int = 0
    mirror: bool = True
    renderer: str = "pyrender"
    engine: str = "workbench"  # Blender's engine (when renderer is blender)
    shading: str = "lambert"  # pyrender's shading (when renderer is pyrender)
    body: str = "mannequin"
    size: int = 224
    azimuth: float = 30.0
    elevation: float = 12.0

    def __post_init__(self) -> None:
        parse_policy(self.policy)
        if self.renderer not in ("pyrender", "blender"):
            raise RenderError(f"unknown renderer {self.renderer!r}; choose pyrender or blender")
        if self.shading not in ("lambert", "pbr"):
            raise RenderError(f"unknown pyrender shading {self.shading!r}; choose lambert or pbr")
        if self.engine not in ("workbench", "cycles", "eevee"):
            raise RenderError(f"unknown Blender engine {self.engine!r}; choose workbench, cycles or eevee")
        if self.body not in BODIES:
            raise RenderError(f"unknown body {self.body!r}; choose one of {', '.join(BODIES)}")
        for name in ("window", "stride", "size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise RenderError(f"{name} must be a positive integer, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_policy(policy: str) -> tuple[str, int]:
    kind, _, arg = str(policy).partition(":")
    if kind == "middle" and not arg:
        return "middle", 0
    if kind == "random":
        try:
            k = int(arg)
        except ValueError:
            k = 0
        if k >= 1:
            return "random", k
    raise RenderError(f"unknown frame policy {policy!r}: use middle or random:K (K >= 1 frames per clip)")


def choose_frames(num_frames: int, clip_id: str, s: EmbedSettings) -> list[int]:
    """The frame numbers of a clip to render under the settings' policy."""
    kind, k = parse_policy(s.policy)
    if kind == "middle":
        if num_frames <= s.window:
            return [num_frames // 2]
        starts = list(range(0, num_frames - s.window + 1, s.stride))
        if starts[-1] != num_frames - s.window:
            starts.append(num_frames - s.window)
        return sorted({st + s.window // 2 for st in starts})
    rng = random.Random(zlib.crc32(f"{s.seed}:{clip_id}".encode()))
    return sorted(rng.sample(range(num_frames), min(k, num_frames)))


# ------------------------------------------------------------------------------------------ workers

_WORKER: dict[str, Any] = {}


def _init_worker(settings: dict[str, Any], dataset: str, smpl_model: str | None, renderer_options: dict) -> None:
    torch.set_num_threads(1)
    _WORKER.update(settings=EmbedSettings(**settings), dataset=dataset, smpl_model=smpl_model,
                   renderer_options=renderer_options, body=None)


def _render_clip(clip_id: str, frames: list[int]) -> tuple[str, list[int], np.ndarray, np.ndarray | None]:
    """(clip id, frames, images [M, H, W, 3], mirrored images or None) in a worker."""
    from motionclip.core.data.dataset_dir import DatasetIndex
    from motionclip.core.skeleton import neutral_skeleton

    from .api import render_frames
    from .bodies import make_body
    from .scene import SceneOptions

    s: EmbedSettings = _WORKER["settings"]
    if _WORKER["body"] is None:
        _WORKER["body"] = make_body(s.body, smpl_model=_WORKER["smpl_model"])
    body = _WORKER["body"]
    motion = DatasetIndex.load(_WORKER["dataset"]).load_clip(clip_id)
    opts = SceneOptions(size=s.size, camera="frame", floor=False, azimuth=s.azimuth, elevation=s.elevation)
    kw = dict(body=body, renderer=s.renderer, options=opts, renderer_options=_WORKER["renderer_options"])
    images = render_frames(motion, frames, **kw)
    mirrored = render_frames(motion.mirror(neutral_skeleton()), frames, **kw) if s.mirror else None
    return clip_id, frames, images, mirrored


# ------------------------------------------------------------------------------------------ driver

def default_workers() -> int:
    """Render processes by default: none on a small CPU-only machine, where CLIP and the renderer
    would only fight over the cores (measured on 2 cores: one worker process was slower than
    none); otherwise half the cores, up to 4, rendering while CLIP runs on the GPU or the rest."""
    import os

    cpus = os.cpu_count() or 1
    if cpus <= 2 and not torch.cuda.is_available():
        return 0
    return max(1, min(4, cpus // 2))


@dataclass
class EmbedReport:
    folder: Path
    clips: int
    done_before: int
    rendered: int
    images: int
    seconds: float
    failed: dict[str, str]
    complete: bool


def embed_frames(data: str | Path, encoder: str | Any = "clip:ViT-B/32", settings: EmbedSettings | None = None,
                 workers: int | None = None, batch_size: int = 32, smpl_model: str | None = None,
                 renderer_options: dict | None = None, progress: bool = True,
                 device: str | None = None) -> EmbedReport:
    """Fill DATA/cache/images-... for every clip; returns what was done. See the module docstring.

    encoder: a spec for motionclip.core.encoders.load_encoder, or a loaded encoder with an image tower.
    workers: render processes (0 renders in this process; None: default_workers())."""
    from motionclip.core.data.dataset_dir import DatasetIndex

    settings = settings or EmbedSettings()
    workers = default_workers() if workers is None else int(workers)
    data = Path(data)
    index = DatasetIndex.load(data)
    enc = _image_encoder(encoder, device, settings, renderer_options)
    sdict = settings.to_dict()
    fp = enc.image_fingerprint
    folder = C.cache_folder(data, enc.name, fp, sdict)
    folder.mkdir(parents=True, exist_ok=True)
    C.atomic_write_text(folder / C.SETTINGS, __import__("json").dumps(
        {"format": C.FORMAT, "encoder": enc.name, "fingerprint": fp, "settings": sdict}, indent=1))
    hashes = C.clip_hashes(data)
    todo: list[tuple[str, list[int]]] = []
    for e in index.entries():
        if C.read_clip(folder, e["id"], hashes[e["id"]], sdict) is None:
            todo.append((e["id"], choose_frames(int(e["frames"]), e["id"], settings)))
    total_images = sum(len(f) for _, f in todo) * (2 if settings.mirror else 1)
    done_before = len(hashes) - len(todo)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total_images, desc=f"embed-frames ({enc.name}, {settings.body}, {settings.renderer})",
                   unit="img", file=sys.stderr)
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    rendered = images = 0

    def finish(clip_id: str, frames: list[int], imgs: np.ndarray, mimgs: np.ndarray | None) -> None:
        nonlocal rendered, images
        emb = _encode(enc, imgs, batch_size)
        memb = _encode(enc, mimgs, batch_size) if mimgs is not None else None
        C.write_clip(folder, clip_id, hashes[clip_id], frames, emb, memb, sdict)
        rendered += 1
        images += len(imgs) + (len(mimgs) if mimgs is not None else 0)
        if bar is not None:
            bar.update(len(imgs) + (len(mimgs) if mimgs is not None else 0))

    renderer_options = dict(renderer_options or {})
    if settings.renderer == "blender":
        renderer_options["engine"] = settings.engine
    else:
        renderer_options["shading"] = settings.shading
    init = (sdict, str(data), smpl_model, renderer_options)
    if workers <= 0:
        _render_here(todo, init, finish, failed)
    else:
        _render_in_workers(todo, workers, init, finish, failed)
    if bar is not None:
        bar.close()
    complete = False
    if not failed:
        C.mark_complete(folder, enc.name, fp, enc.dim, sdict, hashes)
        complete = True
    return EmbedReport(folder, len(hashes), done_before, rendered, images, time.perf_counter() - t0, failed, complete)


def _image_encoder(encoder: str | Any, device: str | None, settings: EmbedSettings, renderer_options: dict | None):
    """The loaded encoder, once it is known to have an image tower and the renderer to be there."""
    from motionclip.core.encoders import load_encoder

    enc = load_encoder(encoder, device=device) if isinstance(encoder, str) else encoder
    if not enc.has_image:
        raise RenderError(f"encoder {enc.name} has no image tower: embed-frames needs a CLIP encoder "
                          f"(clip:ViT-B/32, clip:/path/to/ViT-B-32.pt, or clip-random:ViT-B/32 for timing only)")
    if settings.renderer == "blender":  # a missing Blender fails before any work
        from .blender_backend import find_blender
        find_blender((renderer_options or {}).get("blender"))
    return enc


def _render_here(todo: list[tuple[str, list[int]]], init: tuple, finish, failed: dict[str, str]) -> None:
    """Render the clips in this process, one after the other; a clip that fails is noted in `failed`."""
    _init_worker(*init)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for clip_id, frames in todo:
        try:
            finish(*_render_clip(clip_id, frames))
        except MotionClipError as exc:
            failed[clip_id] = str(exc)


def _render_in_workers(todo: list[tuple[str, list[int]]], workers: int, init: tuple, finish,
                       failed: dict[str, str]) -> None:
    """Render the clips in `workers` processes, two clips queued per worker; failures go to `failed`."""
    ctx = mp.get_context("spawn")  # a fresh process per worker: its own OpenGL context, no forked torch
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        pending: dict[Any, str] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                clip_id, frames = queue.pop(0)
                pending[pool.submit(_render_clip, clip_id, frames)] = clip_id
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                clip_id = pending.pop(fut)
                try:
                    finish(*fut.result())
                except MotionClipError as exc:
                    failed[clip_id] = str(exc)
                except Exception as exc:  # a worker crash (e.g. OpenGL) loses only that clip
                    failed[clip_id] = f"{type(exc).__name__}: {exc}"


def _encode(enc, images: np.ndarray, batch_size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # uint8 [N, 3, H, W]
    with torch.no_grad():
        return enc.encode_image(x, batch_size=batch_size).float().cpu()
