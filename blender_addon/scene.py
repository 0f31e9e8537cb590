"""Scene set-up for rendering a generated motion: floor, camera that keeps the body in view,
light, engine and output settings, for Blender 3.4 to 5.x. The pieces (engine, world, materials,
floor, sun, camera) are the ones ``motionclip render --renderer blender`` uses too:
shared_scene.py (render/shared_scene.py in the source tree)."""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Vector

from .protocol_loader import shared_scene
from .rig import TAG

ENGINES = shared_scene.ENGINES
# The sun shines down and away from the default camera (the body faces -Y): 50 degrees from straight
# down, turned 30 degrees about Z.
SUN_DIRECTION = (-0.3830, 0.6634, -0.6428)
FLOOR_COLOR = (0.35, 0.37, 0.4)
WORLD_COLOR = (0.6, 0.65, 0.7)
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


def stage(scene, arm, first: int, last: int, engine: str = "workbench") -> None:
    """Floor under the feet, a camera framing the whole motion and tracking the pelvis, a sun.
    A camera or light the scene already has is kept."""
    lo, hi, floor_z = sample_extent(scene, arm, first, last)
    center = (lo + hi) / 2.0
    size = float(max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1.0))

    floor = bpy.data.objects.get("motionclip floor")
    if floor is None:
        mat = shared_scene.make_material("motionclip floor", FLOOR_COLOR, engine, roughness=1.0)
        floor = shared_scene.add_floor(scene, "motionclip floor", [(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)],
                                       mat, tag=TAG)
    floor.location = (center[0], center[1], floor_z - 0.04)
    floor.scale = (size * 4 + 20, size * 4 + 20, 1)

    if scene.camera is None:
        shared_scene.add_camera(scene, "motionclip camera", lens=35, tag=TAG)
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
        shared_scene.add_sun(scene, "motionclip sun", SUN_DIRECTION, 3.0, tag=TAG)


def set_engine(scene, engine: str, samples: int = 16) -> str:
    ident = shared_scene.set_engine(scene, engine, samples, shadows=True)
    shared_scene.set_world(scene, "motionclip world", WORLD_COLOR)
    return ident


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
