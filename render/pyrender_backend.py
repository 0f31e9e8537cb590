"""The pyrender renderer: offscreen OpenGL through EGL (default) or OSMesa, no display needed.

PyOpenGL picks its platform when it is first imported, from $PYOPENGL_PLATFORM; this module sets
it before importing pyrender: "egl" when libEGL is present, else "osmesa" when libOSMesa is, else a
RenderError saying which system packages to install. A platform set by the user is kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from .bodies import Body, PosedFrames, RenderError, vertex_normals
from .scene import SceneSpec
from .shared_scene import look_along

PLATFORMS = ("egl", "osmesa")
APT_HINT = ("apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 (EGL, the default), or "
            "apt-get install libosmesa6 and pip install 'PyOpenGL==3.1.10' with PYOPENGL_PLATFORM=osmesa")


def _loadable(name: str, find: Callable[[str], str | None]) -> bool:
    path = find(name)
    if not path:
        return False
    try:
        ctypes.CDLL(path)
    except OSError:
        return False
    return True


def choose_platform(env: dict | None = None, find: Callable[[str], str | None] = ctypes.util.find_library) -> str:
    """The PyOpenGL platform to use: $PYOPENGL_PLATFORM when set, else egl, else osmesa."""
    env = os.environ if env is None else env
    wanted = (env.get("PYOPENGL_PLATFORM") or "").strip().lower()
    if wanted:
        if wanted not in PLATFORMS:
            raise RenderError(f"PYOPENGL_PLATFORM={wanted!r} cannot render offscreen; use egl or osmesa "
                              f"(or unset it to choose automatically)")
        lib = "EGL" if wanted == "egl" else "OSMesa"
        if not _loadable(lib, find):
            raise RenderError(f"PYOPENGL_PLATFORM={wanted} but lib{lib} is not installed: {APT_HINT}")
        return wanted
    if _loadable("EGL", find):
        return "egl"
    if _loadable("OSMesa", find):
        return "osmesa"
    raise RenderError(f"pyrender needs EGL or OSMesa for offscreen rendering and neither is installed: {APT_HINT}; "
                      f"or use --renderer blender")


def import_pyrender():
    """pyrender, imported with an offscreen platform chosen (see choose_platform)."""
    current = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if "pyrender" in sys.modules and current in PLATFORMS:
        return sys.modules["pyrender"]
    if "OpenGL" in sys.modules and current not in PLATFORMS:
        raise RenderError("PyOpenGL (or pyrender) was imported in this process before an offscreen platform was "
                          "chosen, so it would need a display; set PYOPENGL_PLATFORM=egl (or osmesa) in the "
                          "environment, or import motionclip.render before pyrender / OpenGL")
    platform = choose_platform()
    if "OpenGL" in sys.modules and os.environ.get("PYOPENGL_PLATFORM", "").lower() != platform:
        raise RenderError("PyOpenGL was already imported for another platform in this process; set "
                          f"PYOPENGL_PLATFORM={platform} before anything imports OpenGL")
    os.environ["PYOPENGL_PLATFORM"] = platform
    _load_triton_first()
    try:
        import pyrender
    except ImportError as exc:
        raise RenderError(f"the pyrender renderer needs the pyrender package ({exc}): pip install "
                          f"'motionclip[render]'") from None
    return pyrender


def _load_triton_first() -> None:
    """Import triton (torch's GPU compiler, which bundles its own LLVM) before Mesa loads libLLVM.

    Mesa's software rasteriser links libLLVM; once it has, loading triton's libtriton (which the
    `clip` package pulls in through torchvision) crashes the process. Loaded in the other order, both
    work, so a process that renders and then runs CLIP (embed-frames, a user's script) stays up."""
    import importlib.util

    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    try:
        import triton  # noqa: F401
    except Exception:  # a broken triton is torch's problem, not rendering's
        pass


SHADER_DIR = Path(__file__).with_name("shaders")
SHADINGS = ("lambert", "pbr")


# One offscreen context per process, shared by every PyrenderRenderer and resized as needed:
# pyrender's OffscreenRenderer.delete() calls eglTerminate on the (shared) EGL display, which would
# end every other context of the process too.
_SHARED: dict = {}


def _shared_offscreen(pr, platform: str, width: int, height: int):
    r = _SHARED.get("renderer")
    if r is None:
        try:
            r = pr.OffscreenRenderer(width, height)
        except Exception as exc:  # EGL / OSMesa context creation failures come as assorted errors
            raise RenderError(f"pyrender could not open an offscreen OpenGL context with PYOPENGL_PLATFORM="
                              f"{platform} ({type(exc).__name__}: {exc}). {APT_HINT}") from None
        _SHARED["renderer"] = r
    if (r.viewport_width, r.viewport_height) != (width, height):
        r.viewport_width, r.viewport_height = width, height
        plat = getattr(r, "_platform", None)
        if plat is not None and not plat.supports_framebuffers():
            # OSMesa: pyrender would rebuild the context inside render(), after our shaders are set.
            r.delete()
            r._create()
    return r


def _use_shading(r, shading: str) -> None:
    """Point the context's renderer at our Lambert shaders or pyrender's own (one cache each)."""
    inner = getattr(r, "_renderer", None)
    if not hasattr(inner, "_program_cache"):
        return
    caches = _SHARED.get("caches")
    if caches is None or caches[0] is not inner:  # a new context: new caches
        from pyrender.shader_program import ShaderProgramCache

        caches = (inner, {"pbr": inner._program_cache, "lambert": ShaderProgramCache(shader_dir=str(SHADER_DIR))})
        _SHARED["caches"] = caches
    inner._program_cache = caches[1][shading]


class PyrenderRenderer:
    """Renders posed bodies with pyrender, in the process's one offscreen OpenGL context.

    shading: "lambert" (default): our shaders in render/shaders, pyrender's diffuse term without its
    physically based specular model, about twice as fast on Mesa's software rasteriser; "pbr":
    pyrender's own shaders."""

    name = "pyrender"

    def __init__(self, shading: str = "lambert") -> None:
        if shading not in SHADINGS:
            raise RenderError(f"unknown pyrender shading {shading!r}; choose one of {', '.join(SHADINGS)}")
        self.shading = shading
        self.pyrender = import_pyrender()
        self.platform = os.environ.get("PYOPENGL_PLATFORM", "")

    def _offscreen(self, width: int, height: int):
        r = _shared_offscreen(self.pyrender, self.platform, width, height)
        _use_shading(r, self.shading)
        return r

    def render(self, body: Body, posed: PosedFrames, spec: SceneSpec,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        """uint8 [N, H, W, 3], one image per posed frame."""
        pr = self.pyrender
        r = self._offscreen(spec.width, spec.height)
        scene = pr.Scene(bg_color=[*map(float, spec.background), 1.0], ambient_light=[0.3, 0.3, 0.3])
        material = pr.MetallicRoughnessMaterial(baseColorFactor=[*map(float, spec.body_color), 1.0],
                                                metallicFactor=0.0, roughnessFactor=0.7, doubleSided=True)
        if spec.floor is not None:
            y, x0, x1, z0, z1 = spec.floor
            quad = np.array([[x0, y, z0], [x0, y, z1], [x1, y, z1], [x1, y, z0]], np.float32)
            floor = pr.Primitive(positions=quad, normals=np.tile([0.0, 1.0, 0.0], (4, 1)).astype(np.float32),
                                 indices=np.array([[0, 1, 2], [0, 2, 3]], np.uint32),
                                 material=pr.MetallicRoughnessMaterial(
                                     baseColorFactor=[*map(float, spec.floor_color), 1.0], metallicFactor=0.0,
                                     roughnessFactor=1.0, doubleSided=True))
            scene.add(pr.Mesh([floor]))
        scene.add(pr.DirectionalLight(color=np.ones(3), intensity=spec.light_intensity),
                  pose=look_along(spec.light_dir))
        # A weaker fill light from the camera's side, so the shadowed side is not black.
        cam_back = spec.cameras[0, :3, 2]
        scene.add(pr.DirectionalLight(color=np.ones(3), intensity=spec.light_intensity * 0.35),
                  pose=look_along(-cam_back))
        cam = scene.add(pr.PerspectiveCamera(yfov=spec.yfov, aspectRatio=spec.width / spec.height,
                                             znear=0.05, zfar=200.0), pose=spec.cameras[0])
        normals = vertex_normals(posed.vertices, body.faces)
        faces = body.faces.astype(np.uint32)
        out = np.empty((len(posed.vertices), spec.height, spec.width, 3), np.uint8)
        node = None
        for i, verts in enumerate(posed.vertices):
            prim = pr.Primitive(positions=verts, normals=normals[i], indices=faces, material=material)
            if node is not None:
                scene.remove_node(node)
            node = scene.add(pr.Mesh([prim]))
            scene.set_pose(cam, spec.cameras[i])
            color, _ = r.render(scene)
            out[i] = color[..., :3]
            if progress is not None:
                progress(1)
        return out

    def close(self) -> None:
        """Nothing to free per renderer: the process's context lives until the process ends."""
