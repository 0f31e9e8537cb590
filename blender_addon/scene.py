"""Scene set-up for rendering a generated motion: floor, camera that keeps the body in view,
light, engine and output settings, for Blender 3.4 to 5.x."""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Vector

from .rig import TAG

ENGINES = {"workbench": ("BLENDER_WORKBENCH",), "eevee": ("BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"),
           "cycles": ("CYCLES",)}
_FEET = ("L_Ankle", "R_Ankle", "L_Foot", "R_Foot")


def sample_extent(scene, arm, first: int, last: int, step: int = 3) -> tuple[np.ndarray, np.ndarray, float]:
    """Lowest foot height and the bounding box (min, max corners) of all joints over the frames."""
    pts, feet = [], []
    current = scene.frame_current
    for f in list(range(first, last + 1, step)) + [last]:
        scene.frame_set(f)
        mw = arm.matrix_world
        for pb in arm.pose.bones:
            p = mw @ pb.head
            pts.append(tuple(p))
            if pb.name in _FEET:
                feet.append(p.z)
    scene.frame_set(current)
    pts = np.array(pts)
    return pts.min(0), pts.max(0), float(min(feet)) if feet else float(pts[:, 2].min())


def _tagged(name: str, data, scene):
    ob = bpy.data.objects.get(name)
    if ob is None:
        ob = bpy.data.objects.new(name, data)
        scene.collection.objects.link(ob)
        ob[TAG] = 1
    return ob


def stage(scene, arm, first: int, last: int) -> None:
    """Floor under the feet, a camera framing the whole motion and tracking the pelvis, a sun.
    A camera or light the scene already has is kept."""
    lo, hi, floor_z = sample_extent(scene, arm, first, last)
    center = (lo + hi) / 2.0
    size = float(max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1.0))

    floor = bpy.data.objects.get("motionclip floor")
    if floor is None:
        mesh = bpy.data.meshes.new("motionclip floor")
        mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
        floor = _tagged("motionclip floor", mesh, scene)
        mat = bpy.data.materials.new("motionclip floor")
        mat.diffuse_color = (0.35, 0.37, 0.4, 1.0)
        mesh.materials.append(mat)
    floor.location = (center[0], center[1], floor_z - 0.04)
    floor.scale = (size * 4 + 20, size * 4 + 20, 1)

    if scene.camera is None:
        cam = _tagged("motionclip camera", bpy.data.cameras.new("motionclip camera"), scene)
        cam.data.lens = 35
        scene.camera = cam
    cam = scene.camera
    if cam.get(TAG):
        # The body faces -Y in Blender (SMPL's +Z): look at it from the front, a little to the side and above.
        dist = 1.3 * size + 1.8
        cam.location = Vector((center[0] + 0.45 * dist, center[1] - dist, center[2] + 0.35 * dist))
        track = cam.constraints.get("motionclip track") or cam.constraints.new("TRACK_TO")
        track.name = "motionclip track"
        track.target, track.subtarget = arm, "Pelvis"
        track.track_axis, track.up_axis = "TRACK_NEGATIVE_Z", "UP_Y"

    if not any(ob.type == "LIGHT" for ob in scene.objects):
        sun = _tagged("motionclip sun", bpy.data.lights.new("motionclip sun", "SUN"), scene)
        sun.data.energy = 3.0
        sun.rotation_euler = (math.radians(50), 0.0, math.radians(30))


def set_engine(scene, engine: str, samples: int = 16) -> str:
    for ident in ENGINES[engine]:
        try:
            scene.render.engine = ident
            break
        except TypeError:
            continue
    else:
        raise ValueError(f"this Blender has no {engine} engine")
    if engine == "workbench":
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        shading.show_shadows = True
    elif engine == "cycles":
        scene.cycles.samples = samples
        scene.cycles.use_denoising = False  # Debian's Blender has no denoiser; noise is fine at this size
        scene.cycles.device = "CPU"
    elif hasattr(scene, "eevee") and hasattr(scene.eevee, "taa_render_samples"):
        scene.eevee.taa_render_samples = samples
    if scene.world is None:
        scene.world = bpy.data.worlds.new("motionclip world")
    scene.world.color = (0.6, 0.65, 0.7)
    return scene.render.engine


def set_output(scene, fmt: str, path: str, resolution: tuple[int, int]) -> None:
    """Render output: 'mp4' (H.264 in MPEG-4) at ``path``, or 'png' frames with ``path`` as prefix."""
    r = scene.render
    r.resolution_x, r.resolution_y = resolution
    r.resolution_percentage = 100
    ims = r.image_settings
    if fmt == "mp4":
        if hasattr(ims, "media_type"):  # Blender 5
            ims.media_type = "VIDEO"
        ims.file_format = "FFMPEG"
        r.ffmpeg.format = "MPEG4"
        r.ffmpeg.codec = "H264"
        r.ffmpeg.constant_rate_factor = "MEDIUM"
        r.use_file_extension = False
    else:
        if hasattr(ims, "media_type"):
            ims.media_type = "IMAGE"
        ims.file_format = "PNG"
        r.use_file_extension = True
    r.filepath = path
