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
y_up_to_z_up_vector, applied as a matrix to everything at once.
"""

import importlib.util
import json
import os
import sys
import time

import numpy as np

import bpy


def _protocol():
    """core/protocol.py (standard library only), loaded by path: the package itself is not imported."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(os.path.dirname(here), "core", "protocol.py")
    spec = importlib.util.spec_from_file_location("motionclip_protocol", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def fail(message):
    print("MOTIONCLIP_ERROR " + message, flush=True)
    sys.exit(3)


def y_to_z_matrix(protocol):
    """3x3 matrix of the protocol's Y-up -> Z-up conversion (its columns: the images of the axes)."""
    cols = [protocol.y_up_to_z_up_vector(tuple(e)) for e in np.eye(3)]
    return np.array(cols, dtype=np.float64).T


def set_engine(scene, engine):
    names = {"workbench": ["BLENDER_WORKBENCH"], "cycles": ["CYCLES"],
             "eevee": ["BLENDER_EEVEE_NEXT", "BLENDER_EEVEE"]}[engine]
    for name in names:
        try:
            scene.render.engine = name
            return name
        except TypeError:
            continue
    fail("this Blender has no %s render engine" % engine)


def make_material(name, color, engine):
    mat = bpy.data.materials.new(name)
    mat.diffuse_color = (color[0], color[1], color[2], 1.0)  # Workbench's MATERIAL colour
    if engine != "workbench":
        mat.use_nodes = True
        bsdf = mat.node_tree.nodes.get("Principled BSDF")
        if bsdf is not None:
            bsdf.inputs["Base Color"].default_value = (color[0], color[1], color[2], 1.0)
            bsdf.inputs["Roughness"].default_value = 0.7
    return mat


def smooth(mesh):
    values = [True] * len(mesh.polygons)
    if hasattr(mesh, "shade_smooth"):  # Blender 4.1+
        mesh.shade_smooth()
    else:
        mesh.polygons.foreach_set("use_smooth", values)


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
    engine = cfg["engine"]

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    set_engine(scene, engine)
    scene.render.resolution_x, scene.render.resolution_y = cfg["width"], cfg["height"]
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True  # the backend puts the background colour behind
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"  # colours as given, not Filmic / AgX
    if engine == "workbench":
        shading = scene.display.shading
        shading.light = "STUDIO"
        shading.color_type = "MATERIAL"
        # Workbench's studio light is dimmer than the sun + world of the other engines (and of
        # pyrender): one stop of exposure brings the colours to about the same brightness.
        scene.view_settings.exposure = float(cfg.get("workbench_exposure", 1.0))
    elif engine == "cycles":
        scene.cycles.samples = int(cfg.get("samples", 32))
        scene.cycles.use_denoising = False
        scene.cycles.device = "CPU"
    else:
        if hasattr(scene.eevee, "taa_render_samples"):
            scene.eevee.taa_render_samples = int(cfg.get("samples", 16))

    # The body: one mesh whose vertex positions are replaced every frame.
    nv = verts.shape[1]
    first = (verts[0].astype(np.float64) @ C.T)
    mesh = bpy.data.meshes.new("body")
    mesh.from_pydata([tuple(v) for v in first], [], [tuple(int(i) for i in f) for f in faces])
    mesh.update()
    smooth(mesh)
    mesh.materials.append(make_material("body", cfg["body_color"], engine))
    body = bpy.data.objects.new("body", mesh)
    scene.collection.objects.link(body)

    if cfg.get("floor"):
        y, x0, x1, z0, z1 = cfg["floor"]
        quad = [(x0, y, z0), (x0, y, z1), (x1, y, z1), (x1, y, z0)]
        fm = bpy.data.meshes.new("floor")
        fm.from_pydata([tuple(np.array(q) @ C.T) for q in quad], [], [(0, 1, 2, 3)])
        fm.update()
        fm.materials.append(make_material("floor", cfg["floor_color"], engine))
        floor = bpy.data.objects.new("floor", fm)
        scene.collection.objects.link(floor)

    if engine != "workbench":
        world = bpy.data.worlds.new("world")
        world.color = (0.35, 0.35, 0.35)
        world.use_nodes = True
        bg = world.node_tree.nodes.get("Background")
        if bg is not None:
            bg.inputs["Color"].default_value = (0.35, 0.35, 0.35, 1.0)
            bg.inputs["Strength"].default_value = 1.0
        scene.world = world
        for direction, strength in ((cfg["light_dir"], cfg["light_intensity"]),
                                    (cfg["fill_dir"], cfg["light_intensity"] * 0.35)):
            sun = bpy.data.lights.new("sun", type="SUN")
            sun.energy = float(strength)
            obj = bpy.data.objects.new("sun", sun)
            d = np.array(direction, dtype=np.float64) @ C.T  # the light travels along d: its -Z
            obj.matrix_world = _look_along(d)
            scene.collection.objects.link(obj)

    cam_data = bpy.data.cameras.new("camera")
    cam_data.sensor_fit = "VERTICAL"
    cam_data.angle_y = float(cfg["yfov"])
    cam_data.clip_start, cam_data.clip_end = 0.05, 200.0
    cam = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam

    out_dir = os.path.join(job, "frames")
    os.makedirs(out_dir, exist_ok=True)
    co = np.empty(nv * 3, dtype=np.float32)
    t0 = time.time()
    for i in range(len(frames)):
        co[:] = (verts[i].astype(np.float64) @ C.T).astype(np.float32).ravel()
        mesh.vertices.foreach_set("co", co)
        mesh.update()
        cam.matrix_world = _matrix(C4 @ cams[i])  # an OpenGL camera is a Blender camera: both look down -Z
        scene.render.filepath = os.path.join(out_dir, "%05d.png" % i)
        bpy.ops.render.render(write_still=True)
        print("MOTIONCLIP_FRAME %d" % i, flush=True)
    print("MOTIONCLIP_DONE %d frames in %.2f s (Blender %s, %s)"
          % (len(frames), time.time() - t0, bpy.app.version_string, scene.render.engine), flush=True)


def _matrix(m):
    from mathutils import Matrix

    return Matrix([list(map(float, row)) for row in m])


def _look_along(d):
    z = -d / np.linalg.norm(d)
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    M = np.eye(4)
    M[:3, :3] = np.stack([x, y, z], axis=1)
    return _matrix(M)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as exc:  # one line the backend can show, then a non-zero exit
        import traceback

        traceback.print_exc()
        fail("%s: %s" % (type(exc).__name__, exc))
