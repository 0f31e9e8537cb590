"""Rendering: motions to pictures and videos, headless, and the CLIP image embeddings of rendered frames.

    from motionclip.render import render_frames
    images = render_frames(motion, [0, 30, 59], size=224, body="mannequin", renderer="pyrender")

Renderers: pyrender (offscreen EGL / OSMesa) and Blender (a subprocess: `blender -b` or a Python
with the `bpy` module). Bodies: mannequin (mannequin-x, no licensed file), smpl (your model file),
skeleton (capsules). Nothing here imports bpy.
"""

from .api import RENDERERS, get_renderer, load_motion_file, render_frames
from .bodies import BODIES, Body, RenderError, make_body
from .scene import CAMERAS, SceneOptions

__all__ = ["render_frames", "get_renderer", "load_motion_file", "make_body", "Body", "RenderError",
           "SceneOptions", "RENDERERS", "BODIES", "CAMERAS"]
