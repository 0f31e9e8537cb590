"""Runs INSIDE Blender: renders a job directory written by motionclip.render.blender_backend.

    blender -b --factory-startup --python-exit-code 3 --python blender_script.py -- JOB_DIR
    python-with-bpy blender_script.py -- JOB_DIR

Needs only bpy and numpy (never torch, never the motionclip package): Blender's own Python runs it.
The job directory holds
    motion.json     the rendered frames of the motion (motionclip-json), checked with the wire
                    protocol's own parser
    scene.json      image size, field of view, engine, colours, floor, light, frame numbers
    geometry.npz    faces [F, 3], posed vertices [N, V, 3], SMPL joints [N, 24, 3] and cameras
                    [N, 4, 4] (OpenGL camera-to-world), all in SMPL's Y-up metres
and it writes frames/00000.png ... (RGBA, transparent background), one per posed frame, printing
"MOTIONCLIP_FRAME i" after each. Y-up is turned into Blender's Z-up by the protocol's own
y_up_to_z_up_vector, applied as a matrix to everything at once. Engine, world, materials, floor,
suns and camera come from shared_scene.py (beside this file), as for `motionclip blender-batch`.
"""

import json
import os
import sys
import time

import numpy as np

import bpy

# The scene pieces both headless Blender pipelines share (numpy and bpy only), beside this file;
# appended to the path, so it shadows nothing.
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
import shared_scene  # noqa: E402


def _protocol():
    """core/protocol.py (standard library only), loaded by path: the package itself is not imported."""
    here = os.path.dirname(os.path.abspath(__file__))
    return shared_scene.load_module("motionclip_protocol", os.path.join(os.path.dirname(here), "core", "protocol.py"))


def fail(message):
    print("MOTIONCLIP_ERROR " + message, flush=True)
    sys.exit(3)


def y_to_z_matrix(protocol):
    """3x3 matrix of the protocol's Y-up -> Z-up conversion (its columns: the images of the axes)."""
    cols = [protocol.y_up_to_z_up_vector(tuple(e)) for e in np.eye(3)]
    return np.array(cols, dtype=np.float64).T


def smooth(mesh):
    values = [True] * len(mesh.polygons)
    if hasattr(mesh, "shade_smooth"):  # Blender 4.1+
        mesh.shade_smooth()
    else:
        mesh.polygons.foreach_set("use_smooth", values)


def set_up(scene, cfg, C):
    """Engine, film and colour settings, the floor, the world and lights, the camera (returned)."""
    engine = cfg["engine"]
    try:
        # Workbench's studio light is dimmer than the sun + world of the other engines (and of
        # pyrender): one stop of exposure brings the colours to about the same brightness.
        shared_scene.set_engine(scene, engine, int(cfg.get("samples", 32)),
                                exposure=float(cfg.get("workbench_exposure", 1.0)) if engine == "workbench" else 0.0)
    except ValueError as exc:
        fail(str(exc))
    scene.render.resolution_x, scene.render.resolution_y = cfg["width"], cfg["height"]
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True  # the backend puts the background colour behind
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"  # colours as given, not Filmic / AgX
    if cfg.get("floor"):
        y, x0, x1, z0, z1 = cfg["floor"]
        quad = np.array([(x0, y, z0), (x0, y, z1), (x1, y, z1), (x1, y, z0)], dtype=np.float64) @ C.T
        shared_scene.add_floor(scene, "floor", quad, shared_scene.make_material("floor", cfg["floor_color"], engine))
    if engine != "workbench":
        shared_scene.set_world(scene, "world", (0.35, 0.35, 0.35), 1.0)
        for direction, strength in ((cfg["light_dir"], cfg["light_intensity"]),
                                    (cfg["fill_dir"], cfg["light_intensity"] * 0.35)):
            shared_scene.add_sun(scene, "sun", np.array(direction, dtype=np.float64) @ C.T, strength)
    return shared_scene.add_camera(scene, "camera", yfov=cfg["yfov"])


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        fail("usage: blender -b --python blender_script.py -- JOB_DIR")
    job = argv[0]
    protocol = _protocol()
    with open(os.path.join(job, "scene.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(job, "motion.json")) as f:
        motion = protocol.MotionData.from_json(json.load(f), "motion.json")
    geo = np.load(os.path.join(job, "geometry.npz"), allow_pickle=False)
    faces, verts, cams = geo["faces"], geo["vertices"], geo["cameras"]
    frames = cfg["frames"]  # the source motion's frame numbers; motion.json holds just these frames
    if not (len(frames) == len(verts) == len(cams) == motion.num_frames):
        fail("geometry.npz holds %d posed frames and %d cameras; motion.json %d frames; scene.json %d frame numbers"
             % (len(verts), len(cams), motion.num_frames, len(frames)))

    C = y_to_z_matrix(protocol)
    C4 = np.eye(4)
    C4[:3, :3] = C

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    cam = set_up(scene, cfg, C)

    # The body: one mesh whose vertex positions are replaced every frame.
    nv = verts.shape[1]
    first = (verts[0].astype(np.float64) @ C.T)
    mesh = bpy.data.meshes.new("body")
    mesh.from_pydata([tuple(v) for v in first], [], [tuple(int(i) for i in f) for f in faces])
    mesh.update()
    smooth(mesh)
    mesh.materials.append(shared_scene.make_material("body", cfg["body_color"], cfg["engine"]))
    shared_scene.add_object(scene, "body", mesh)

    out_dir = os.path.join(job, "frames")
    os.makedirs(out_dir, exist_ok=True)
    co = np.empty(nv * 3, dtype=np.float32)
    t0 = time.time()
    for i in range(len(frames)):
        co[:] = (verts[i].astype(np.float64) @ C.T).astype(np.float32).ravel()
        mesh.vertices.foreach_set("co", co)
        mesh.update()
        # An OpenGL camera is a Blender camera: both look down -Z.
        cam.matrix_world = shared_scene.blender_matrix(C4 @ cams[i])
        scene.render.filepath = os.path.join(out_dir, "%05d.png" % i)
        bpy.ops.render.render(write_still=True)
        print("MOTIONCLIP_FRAME %d" % i, flush=True)
    print("MOTIONCLIP_DONE %d frames in %.2f s (Blender %s, %s)"
          % (len(frames), time.time() - t0, bpy.app.version_string, scene.render.engine), flush=True)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as exc:  # one line the backend can show, then a non-zero exit
        import traceback

        traceback.print_exc()
        fail("%s: %s" % (type(exc).__name__, exc))
