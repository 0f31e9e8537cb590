"""Reopen what `motionclip blender-batch` wrote, as a user would, and dump what Blender sees.

    blender -b --python check_batch_outputs.py -- OUT.json FILE...
    .venv-blender/bin/python check_batch_outputs.py -- OUT.json FILE...

A .blend is opened; an .fbx is imported into an empty scene with the importer's default settings,
a .bvh with its defaults but Forward Y, Up Z (as the README says). Per file: the objects by type,
the scene's camera, frame range, render output, the SMPL armature's bone names, the keyed frames of its action (first, last, keys per F-curve) and every
bone's world head position on the first and last keyed frames.
"""

import json
import sys

import bpy


def fcurves(action):
    if hasattr(action, "layers") and len(action.layers):  # Blender 4.4+ slotted actions
        out = []
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    out.extend(bag.fcurves)
        return out
    return list(action.fcurves)


def heads(scene, arm, frame):
    scene.frame_set(frame)
    mw = arm.matrix_world
    return {pb.name: list(mw @ pb.head) for pb in arm.pose.bones}


def describe(path):
    if path.endswith(".blend"):
        bpy.ops.wm.open_mainfile(filepath=path)
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        # BVH: the axes the batch's README states (Blender's exporter writes its own Z-up axes).
        res = (bpy.ops.import_scene.fbx(filepath=path) if path.endswith(".fbx")
               else bpy.ops.import_anim.bvh(filepath=path, axis_forward="Y", axis_up="Z"))
        assert "FINISHED" in res, res
    scene = bpy.context.scene
    d = {"objects": sorted([ob.type, ob.name] for ob in scene.objects),
         "camera": scene.camera.name if scene.camera else None,
         "frame_range": [scene.frame_start, scene.frame_end], "fps": scene.render.fps / scene.render.fps_base,
         "engine": scene.render.engine, "resolution": [scene.render.resolution_x, scene.render.resolution_y],
         "render_output": bpy.path.abspath(scene.render.filepath),
         "ffmpeg": scene.render.image_settings.file_format == "FFMPEG"}
    arms = [ob for ob in scene.objects if ob.type == "ARMATURE"]
    d["armatures"] = len(arms)
    if arms:
        arm = arms[0]
        d["bones"] = [b.name for b in arm.data.bones]
        action = arm.animation_data.action if arm.animation_data else None
        if action is not None:
            curves = fcurves(action)
            frames = sorted({k.co[0] for fc in curves for k in fc.keyframe_points})
            d["keys"] = {"first": frames[0], "last": frames[-1], "frames": len(frames),
                         "per_curve": sorted({len(fc.keyframe_points) for fc in curves}), "curves": len(curves)}
            first, last = int(round(frames[0])), int(round(frames[-1]))
            d["heads_first"], d["heads_last"] = heads(scene, arm, first), heads(scene, arm, last)
        d["body_meshes"] = [ob.name for ob in scene.objects if ob.type == "MESH" and ob.parent == arm]
    return d


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    out, files = argv[0], argv[1:]
    result = {"blender": bpy.app.version_string, "files": {}}
    for f in files:
        result["files"][f] = describe(f)
    with open(out, "w") as fh:
        json.dump(result, fh)


main()
