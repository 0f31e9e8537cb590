"""Import a BVH with Blender's own importer and dump what Blender made of it as JSON.

Run with the Blender-side interpreter (bpy as a Python module), not the project's:

    .venv-blender/bin/python tests/blender_scripts/check_bvh_import.py IN.bvh OUT.json

Standard library + bpy only: this environment has neither torch nor motionclip.

JSON written:
    bones           number of bones of the imported armature
    bone_names      their names, in the armature's order
    frame_start / frame_end   the scene's frame range after the import
    fps, fps_base, scene_fps  scene.render.fps, .fps_base and fps / fps_base
    action_frame_range        first and last keyed frame of the armature's action
    key_frames                the distinct keyed frames (sorted)
    frames          the frames sampled below (first..last keyed frame)
    heads           [frame][bone] = world-space head (x, y, z), Blender's Z-up coordinates
    blender_version
"""

from __future__ import annotations

import json
import sys
import time


def _keyed_frames(action) -> list[float]:
    """All keyframe times of an action: Blender 5 slotted actions (layers / strips /
    channel bags) or the legacy `Action.fcurves` (Blender < 5)."""
    fcurves = []
    if hasattr(action, "layers") and len(action.layers):
        for layer in action.layers:
            for strip in layer.strips:
                for bag in getattr(strip, "channelbags", []):
                    fcurves.extend(bag.fcurves)
    if not fcurves and hasattr(action, "fcurves"):
        fcurves = list(action.fcurves)
    frames = set()
    for fc in fcurves:
        for kp in fc.keyframe_points:
            frames.add(round(kp.co[0], 6))
    return sorted(frames)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_bvh_import.py IN.bvh OUT.json", file=sys.stderr)
        return 2
    in_path, out_path = argv
    t0 = time.time()
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    # Start from a one-frame scene so that the importer's "update scene duration" (which
    # only ever extends the range) shows what it sets rather than the default 1..250.
    scene.frame_start = 1
    scene.frame_end = 1
    result = bpy.ops.import_anim.bvh(
        filepath=in_path,
        target="ARMATURE",
        global_scale=1.0,
        frame_start=1,
        use_fps_scale=False,
        update_scene_fps=True,
        update_scene_duration=True,
        use_cyclic=False,
        rotate_mode="NATIVE",
        axis_forward="-Z",
        axis_up="Y",
    )
    if "FINISHED" not in result:
        print(f"import failed: {result}", file=sys.stderr)
        return 1

    arms = [ob for ob in scene.objects if ob.type == "ARMATURE"]
    if len(arms) != 1:
        print(f"expected one armature after the import, found {len(arms)}", file=sys.stderr)
        return 1
    arm = arms[0]
    action = arm.animation_data.action if arm.animation_data else None
    if action is None:
        print("the imported armature has no action", file=sys.stderr)
        return 1
    keyed = _keyed_frames(action)
    first, last = int(round(action.frame_range[0])), int(round(action.frame_range[1]))

    pose_bones = list(arm.pose.bones)
    frames = list(range(first, last + 1))
    heads = []
    for f in frames:
        scene.frame_set(f)
        mw = arm.matrix_world
        heads.append([list(mw @ pb.head) for pb in pose_bones])

    out = {
        "blender_version": bpy.app.version_string,
        "bones": len(arm.data.bones),
        "bone_names": [pb.name for pb in pose_bones],
        "frame_start": scene.frame_start,
        "frame_end": scene.frame_end,
        "fps": scene.render.fps,
        "fps_base": scene.render.fps_base,
        "scene_fps": scene.render.fps / scene.render.fps_base,
        "action_frame_range": [action.frame_range[0], action.frame_range[1]],
        "key_frames": keyed,
        "frames": frames,
        "rotation_modes": sorted({pb.rotation_mode for pb in pose_bones}),
        "heads": heads,
        "seconds": time.time() - t0,
    }
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
