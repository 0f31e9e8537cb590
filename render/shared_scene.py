"""Scene pieces shared by the renderers and both headless Blender pipelines.

One file, standard library and numpy only at import time, so that every side can use it:

- the look-at matrices (numpy): render/pyrender_backend.py (lights), render/bodies.py (capsules),
  and inside Blender render/blender_script.py and the add-on's scene.py (suns, cameras);
- the Blender scene set-up (bpy, imported inside the functions that need it): engine, world,
  materials, floor, sun, camera, for ``motionclip render --renderer blender`` and for
  ``motionclip blender-batch`` (blender_addon/batch.py).

Blender's Python cannot import the motionclip package, so the Blender-side scripts load this
file by path with ``load_module`` (render/blender_script.py: from its own folder; the add-on:
the copy build_addon.py puts in the zip, or ../render/ in a source checkout).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

X, Y, Z = np.eye(3)


def load_module(name: str, path: str | Path):
    """The Python file ``path`` as module ``name`` (registered in sys.modules: dataclasses look
    their module up by name); the way Blender-side scripts reach the project's shared files."""
    spec = importlib.util.spec_from_file_location(name, str(path))
    if spec is None:
        raise ImportError(f"{path}: cannot load it as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- look-at matrices (numpy)

def basis_z(direction, up=Y, fallback=X) -> np.ndarray:
    """3x3 rotation whose columns x, y, z are a right-handed frame with z along ``direction``
    and y as close to ``up`` as z allows (``fallback`` replaces ``up`` when z is within ~25 degrees
    of it, and the axis least along z replaces both when z is near both)."""
    z = np.asarray(direction, dtype=np.float64)
    z = z / np.linalg.norm(z)
    for helper in (np.asarray(up, np.float64), np.asarray(fallback, np.float64), np.eye(3)[np.argmin(abs(z))]):
        if abs(float(z @ helper)) < 0.9:
            break
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def look_along(direction, up=Y, fallback=X, position=None) -> np.ndarray:
    """4x4 pose of a camera or light looking along ``direction`` (both look down their -Z, in
    OpenGL, pyrender and Blender alike), optionally placed at ``position``."""
    M = np.eye(4)
    M[:3, :3] = basis_z(-np.asarray(direction, dtype=np.float64), up, fallback)
    if position is not None:
        M[:3, 3] = position
    return M


def align_z(direction, center, up=X, fallback=Y) -> np.ndarray:
    """4x4 transform taking +Z to ``direction`` and the origin to ``center``."""
    M = np.eye(4)
    M[:3, :3] = basis_z(direction, up, fallback)
    M[:3, 3] = center
    return M


# ---------------------------------------------------------------- Blender scene set-up (bpy)

ENGINES = {"workbench": ("BLENDER_WORKBENCH",), "eevee": ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"),
           "cycles": ("CYCLES",)}


def set_engine(scene, engine: str, samples: int = 16, *, shadows: bool = False, exposure: float = 0.0) -> str:
    """Select ``engine`` (workbench, eevee, cycles) under its name in this Blender (3.4 to 5.x)
    with the project's settings; ValueError when this Blender lacks it."""
    for ident in ENGINES[engine]:
        try:
            scene.render.engine = ident
            break
        except TypeError:
            continue
    else:
        raise ValueError(f"this Blender has no {engine} render engine")
    if engine == "workbench":
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        shading.show_shadows = shadows
        scene.view_settings.exposure = exposure
    elif engine == "cycles":
        scene.cycles.samples = int(samples)
        scene.cycles.use_denoising = False  # Debian's Blender has no denoiser; noise is fine at these sizes
        scene.cycles.device = "CPU"
    elif hasattr(scene, "eevee") and hasattr(scene.eevee, "taa_render_samples"):
        scene.eevee.taa_render_samples = int(samples)
    return scene.render.engine


def set_world(scene, name: str, color, strength: float = 1.0):
    """The scene's world (made if missing) lit in ``color`` (RGB 0-1)."""
    import bpy

    world = scene.world or bpy.data.worlds.new(name)
    scene.world = world
    world.color = tuple(color[:3])
    world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    if bg is not None:
        bg.inputs["Color"].default_value = (*color[:3], 1.0)
        bg.inputs["Strength"].default_value = float(strength)
    return world


def make_material(name: str, color, engine: str, roughness: float = 0.7):
    """A material of ``color``: the viewport colour (what Workbench draws) and, for the other
    engines, the Principled BSDF's base colour."""
    import bpy

    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = (color[0], color[1], color[2], 1.0)
    if engine != "workbench":
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = (color[0], color[1], color[2], 1.0)
            bsdf.inputs["Roughness"].default_value = roughness
    return mat


def add_object(scene, name: str, data, tag: str | None = None):
    import bpy

    ob = bpy.data.objects.new(name, data)
    scene.collection.objects.link(ob)
    if tag:
        ob[tag] = 1
    return ob


def add_floor(scene, name: str, corners, material, tag: str | None = None):
    """A quad through the four ``corners`` (Blender's Z-up coordinates)."""
    import bpy

    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(map(float, c)) for c in corners], [], [(0, 1, 2, 3)])
    mesh.update()
    mesh.materials.append(material)
    return add_object(scene, name, mesh, tag)


def add_sun(scene, name: str, direction, energy: float, tag: str | None = None):
    """A sun shining along ``direction`` (Z-up)."""
    import bpy

    light = bpy.data.lights.new(name, type="SUN")
    light.energy = float(energy)
    ob = add_object(scene, name, light, tag)
    ob.matrix_world = blender_matrix(look_along(direction, up=Z))
    return ob


def add_camera(scene, name: str, *, yfov: float | None = None, lens: float | None = None, tag: str | None = None):
    """A camera (vertical field of view ``yfov`` in radians, or focal length ``lens`` in mm),
    made the scene's camera."""
    import bpy

    data = bpy.data.cameras.new(name)
    if yfov is not None:
        data.sensor_fit = "VERTICAL"
        data.angle_y = float(yfov)
    if lens is not None:
        data.lens = float(lens)
    data.clip_start, data.clip_end = 0.05, 200.0
    cam = add_object(scene, name, data, tag)
    scene.camera = cam
    return cam


def blender_matrix(m):
    from mathutils import Matrix

    return Matrix([list(map(float, row)) for row in m])
