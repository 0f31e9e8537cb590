"""The Blender renderer: poses the body here, then renders it in a Blender subprocess.

Blender cannot share this environment (`bpy` pins numpy 1.26 and has no torch), so each job is a
folder (motion JSON, scene JSON, posed geometry as .npz) rendered by render/blender_script.py run
inside Blender, which writes RGBA PNGs that come back here. Engines: Workbench (default, fast,
studio light), Cycles and EEVEE.

Which Blender: the `blender` argument, else $MOTIONCLIP_BLENDER, else the project's
.venv-blender/bin/python (a Python with the bpy module), else `blender` on PATH. Either kind of path works:
a Blender executable runs `blender -b --python SCRIPT -- JOB`, a Python runs `python SCRIPT -- JOB`
(core/headless_blender.py, which `motionclip blender-batch` uses too).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from motionclip.core import headless_blender
from motionclip.core.headless_blender import INSTALL_HINT
from motionclip.core.io.json_motion import motion_to_dict
from motionclip.core.motion import Motion

from .bodies import Body, PosedFrames, RenderError
from .scene import SceneSpec

ENGINES = ("workbench", "cycles", "eevee")
SCRIPT = Path(__file__).with_name("blender_script.py")
CHUNK = 600  # frames per Blender run (bounds the job's size; the protocol caps a motion at 3600 frames)


def find_blender(blender: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """The command prefix that runs the render script inside Blender, and where it was found."""
    found = headless_blender.find_blender(blender, error=RenderError)
    return found.command(SCRIPT, factory_startup=True), found.where


class BlenderRenderer:
    """Renders posed bodies in a Blender subprocess (one run per chunk of up to 600 frames)."""

    name = "blender"

    def __init__(self, blender: str | os.PathLike | None = None, engine: str = "workbench",
                 samples: int = 32, timeout: float = 3600.0) -> None:
        if engine not in ENGINES:
            raise RenderError(f"unknown Blender engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.command, self.where = find_blender(blender)
        self.engine = engine
        self.samples = int(samples)
        self.timeout = float(timeout)
        self.last_log = ""

    def render(self, body: Body, posed: PosedFrames, spec: SceneSpec, motion: Motion | None = None,
               frames: Sequence[int] | None = None, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """uint8 [N, H, W, 3], one image per posed frame."""
        n = len(posed.vertices)
        frames = list(range(n)) if frames is None else [int(f) for f in frames]
        if motion is None:  # the job always carries the motion; a bare pose gets a still one
            motion = Motion.rest(max(frames) + 1)
        out = np.empty((n, spec.height, spec.width, 3), np.uint8)
        for s in range(0, n, CHUNK):
            sl = slice(s, min(n, s + CHUNK))
            out[sl] = self._render_chunk(body, posed, spec, motion, frames, sl, progress)
        return out

    def _render_chunk(self, body: Body, posed: PosedFrames, spec: SceneSpec, motion: Motion,
                      frames: list[int], sl: slice, progress) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="motionclip-blender-") as tmp:
            job = Path(tmp)
            chunk_frames = frames[sl]
            sub = motion.copy(quats=motion.quats[chunk_frames].clone(), trans=motion.trans[chunk_frames].clone())
            sub.meta = {**sub.meta, "source_frames": chunk_frames}
            (job / "motion.json").write_text(json.dumps(motion_to_dict(sub, body.skeleton)))
            cfg = {
                "width": spec.width, "height": spec.height, "yfov": spec.yfov, "engine": self.engine,
                "samples": self.samples, "body": body.name, "body_color": list(spec.body_color),
                "floor": list(spec.floor) if spec.floor else None, "floor_color": list(spec.floor_color),
                "light_dir": [float(x) for x in spec.light_dir], "light_intensity": spec.light_intensity,
                "fill_dir": [float(x) for x in -spec.cameras[0, :3, 2]], "frames": chunk_frames,
            }
            (job / "scene.json").write_text(json.dumps(cfg))
            np.savez(job / "geometry.npz", faces=body.faces.astype(np.int32),
                     vertices=posed.vertices[sl].astype(np.float32), joints=posed.joints[sl].astype(np.float32),
                     cameras=spec.cameras[sl].astype(np.float64))
            self._run(job, progress)
            return self._read_frames(job / "frames", len(chunk_frames), spec)

    def _run(self, job: Path, progress) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        cmd = [*self.command, str(job)]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                    errors="replace")
        except OSError as exc:
            raise RenderError(f"could not start Blender ({self.where}): {exc}. {INSTALL_HINT}") from None
        lines: list[str] = []
        error = None
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip())
                if line.startswith("MOTIONCLIP_FRAME") and progress is not None:
                    progress(1)
                elif line.startswith("MOTIONCLIP_ERROR"):
                    error = line[len("MOTIONCLIP_ERROR"):].strip()
            rc = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RenderError(f"Blender ({self.where}) ran past {self.timeout:.0f} s and was stopped") from None
        self.last_log = "\n".join(lines)
        if rc != 0:
            tail = "\n".join(lines[-15:])
            if error is None and any("No module named 'bpy'" in ln for ln in lines):
                error = f"{self.command[0]} has no bpy module. {INSTALL_HINT}"
            raise RenderError(f"Blender ({self.where}) failed with exit code {rc}: "
                              f"{error or 'see its output below'}\n{tail}")

    @staticmethod
    def _read_frames(folder: Path, n: int, spec: SceneSpec) -> np.ndarray:
        from PIL import Image

        bg = np.array(spec.background, np.float32) * 255.0
        out = np.empty((n, spec.height, spec.width, 3), np.uint8)
        for i in range(n):
            path = folder / f"{i:05d}.png"
            if not path.is_file():
                raise RenderError(f"Blender wrote no image for frame {i} ({path})")
            rgba = np.asarray(Image.open(path).convert("RGBA"), np.float32)
            a = rgba[..., 3:4] / 255.0
            out[i] = np.clip(rgba[..., :3] * a + bg * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)
        return out
