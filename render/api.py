"""One entry point for every renderer and body: render_frames(motion, frames) -> uint8 [N, H, W, 3]."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from motionclip.core.errors import MotionClipError
from motionclip.core.motion import Motion

from .bodies import BODIES, DEFAULT_MAX_FACES, Body, RenderError, make_body
from .scene import SceneOptions, make_scene

RENDERERS = ("pyrender", "blender")


def load_motion_file(path: str | os.PathLike) -> Motion:
    """A motion from any readable file (BVH, AMASS npz, JSON, .motion, DeepMimic), or a RenderError."""
    from motionclip.core.io import load_source_motion

    path = Path(path)
    if not path.exists():
        raise RenderError(f"motion file not found: {path}")
    try:
        return load_source_motion(path)[0]
    except MotionClipError as exc:  # its message starts with the path
        raise RenderError(f"cannot read the motion file {exc}") from None
    except (OSError, ValueError, KeyError, EOFError) as exc:  # damaged files of any format
        raise RenderError(f"cannot read the motion file {path} ({type(exc).__name__}: {exc})") from None


_RENDERER_CACHE: dict[tuple, Any] = {}


def get_renderer(name: str = "pyrender", **kwargs: Any):
    """A renderer instance by name (kept per process and reused: an OpenGL context is costly)."""
    if name not in RENDERERS:
        raise RenderError(f"unknown renderer {name!r}; choose one of {', '.join(RENDERERS)}")
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _RENDERER_CACHE:
        if name == "pyrender":
            from .pyrender_backend import PyrenderRenderer
            _RENDERER_CACHE[key] = PyrenderRenderer(**kwargs)
        else:
            from .blender_backend import BlenderRenderer
            _RENDERER_CACHE[key] = BlenderRenderer(**kwargs)
    return _RENDERER_CACHE[key]


def render_frames(motion: Motion, frame_indices: Sequence[int] | None = None, size: int | tuple[int, int] = 224,
                  body: str | Body = "mannequin", camera: str = "fit", renderer: str = "pyrender",
                  options: SceneOptions | None = None, smpl_model: str | os.PathLike | None = None,
                  max_faces: int = DEFAULT_MAX_FACES, renderer_options: dict[str, Any] | None = None,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Render frames of a motion: uint8 RGB images [N, H, W, 3].

    frame_indices: which frames (default: all). size: pixels (square) or (width, height).
    body: "mannequin" (default, no licensed file), "smpl" (your model file: smpl_model or
    $MOTIONCLIP_SMPL_MODEL) or "skeleton", or a Body. camera: "fit" (fixed, fitted to the whole
    clip) or "follow" (moves with the body). renderer: "pyrender" or "blender".
    options: a SceneOptions for everything else (its size and camera win over the arguments).
    """
    if renderer not in RENDERERS:
        raise RenderError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")
    if not isinstance(body, Body) and body not in BODIES:
        raise RenderError(f"unknown body {body!r}; choose one of {', '.join(BODIES)}")
    opts = options or SceneOptions(size=size, camera=camera)
    b = make_body(body, smpl_model=smpl_model, max_faces=max_faces) if not isinstance(body, Body) else body
    posed = b.pose(motion, frame_indices)
    spec = make_scene(posed.vertices, posed.joints, opts, b.color)
    r = get_renderer(renderer, **(renderer_options or {}))
    if renderer == "blender":
        return r.render(b, posed, spec, progress=progress, motion=motion, frames=frame_indices)
    return r.render(b, posed, spec, progress=progress)
