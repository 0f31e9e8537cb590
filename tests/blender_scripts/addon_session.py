"""Drive the built add-on inside Blender the way a user would, and dump what happened as JSON.

    .venv-blender/bin/python addon_session.py ADDON.zip SERVER_URL DEAD_URL OUT.json      (bpy module)
    blender -b --python addon_session.py -- ADDON.zip SERVER_URL DEAD_URL OUT.json        (Blender binary)

Blender 4.2+ installs the zip as an extension, older Blender as a legacy add-on. Steps: install
and enable; Generate (24 fps scene, 48 frames from frame 10, seed 7); undo; Generate again and
regenerate on the same armature with another prompt; Generate with the server down; Recognise;
disable. Standard library + bpy only (no numpy needed, no motionclip).
"""

from __future__ import annotations

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_common  # noqa: E402

PROMPT_1, PROMPT_2 = "a person jumps", "a person waves with the left hand"
FRAMES, START, FPS, SEED = 48, 10, 24, 7


def fcurves_of(ob):
    action = ob.animation_data.action
    if hasattr(action, "slots"):
        from bpy_extras import anim_utils
        bag = anim_utils.action_get_channelbag_for_slot(action, ob.animation_data.action_slot)
        return list(bag.fcurves)
    return list(action.fcurves)


def keys(fc) -> list[float]:
    co = [0.0] * (2 * len(fc.keyframe_points))
    fc.keyframe_points.foreach_get("co", co)
    return co


def armatures():
    return sorted(ob.name for ob in bpy.data.objects if ob.type == "ARMATURE")


def snapshot() -> dict:
    """What a failed request must leave alone."""
    out = {"objects": sorted(ob.name for ob in bpy.data.objects), "actions": sorted(a.name for a in bpy.data.actions)}
    for ob in bpy.data.objects:
        if ob.type == "ARMATURE" and ob.animation_data and ob.animation_data.action:
            out[ob.name] = [ob.animation_data.action.name, sum(sum(keys(fc)) for fc in fcurves_of(ob))]
    return out


def dump(ob) -> dict:
    scene = bpy.context.scene
    action = ob.animation_data.action
    curves = [{"path": fc.data_path, "index": fc.array_index, "co": keys(fc)} for fc in fcurves_of(ob)]
    posed = []
    first, last = int(round(action.frame_range[0])), int(round(action.frame_range[1]))
    for f in range(first, last + 1):
        scene.frame_set(f)
        posed.append({pb.name: [list(row) for row in pb.matrix] for pb in ob.pose.bones})
    return {
        "name": ob.name,
        "bones": [b.name for b in ob.data.bones],
        "parents": {b.name: (b.parent.name if b.parent else None) for b in ob.data.bones},
        "rest": {b.name: [list(row) for row in b.matrix_local] for b in ob.data.bones},
        "rotation_modes": sorted({pb.rotation_mode for pb in ob.pose.bones}),
        "action": action.name,
        "frame_range": [action.frame_range[0], action.frame_range[1]],
        "fcurves": curves,
        "posed": posed,
        "scene_range": [scene.frame_start, scene.frame_end],
        "children": sorted(c.name for c in ob.children),
    }


def registered() -> dict:
    return {
        "types": sorted(n for n in dir(bpy.types) if n.startswith("MOTIONCLIP_")),
        "scene_settings": hasattr(bpy.types.Scene, "motionclip"),
        "job_state": hasattr(bpy.types.WindowManager, "motionclip_job"),
        "operators": sorted(n for n in dir(bpy.ops.motionclip)),
        "panel_class": getattr(bpy.types, "MOTIONCLIP_PT_main", None) is not None,
    }


def generate() -> str | None:
    try:
        bpy.ops.motionclip.generate()
        return None
    except RuntimeError as exc:  # an operator's ERROR report surfaces as RuntimeError in background
        return str(exc)


def session(out: dict, zip_path: str, url: str, dead_url: str) -> None:
    module = blender_common.install(zip_path)
    out["module"] = module
    out["enabled"] = module in bpy.context.preferences.addons
    out["registered"] = registered()
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.backend_url = url
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    s = scene.motionclip
    s.prompt, s.length_mode, s.frames, s.seed, s.start_frame = PROMPT_1, "FRAMES", FRAMES, SEED, START
    s.target, s.body = "AUTO", True
    out["objects_before"] = sorted(ob.name for ob in bpy.data.objects)

    out["generate_error"] = generate()
    arm = bpy.context.active_object
    out["first"] = dump(arm)
    out["job_after_first"] = {"status": bpy.context.window_manager.motionclip_job.status,
                              "error": bpy.context.window_manager.motionclip_job.error}

    bpy.ops.ed.undo()
    s = bpy.context.scene.motionclip  # undo reloads the scene: references from before are stale
    out["after_undo"] = {"objects": sorted(ob.name for ob in bpy.data.objects), "armatures": armatures(),
                         "actions": sorted(a.name for a in bpy.data.actions)}

    # Generate again (a new armature, since undo removed the first), then regenerate on it.
    out["regenerate_errors"] = [generate()]
    arm = bpy.context.active_object
    before = {"armatures": armatures(), "action": arm.animation_data.action.name,
              "objects": len(bpy.data.objects)}
    s.prompt, s.seed = PROMPT_2, SEED + 1
    out["regenerate_errors"].append(generate())
    arm2 = bpy.context.active_object
    out["regenerate"] = {"before": before, "same_object": arm2 == arm, "armatures": armatures(),
                         "objects": len(bpy.data.objects), "actions": sorted(a.name for a in bpy.data.actions),
                         "second": dump(arm2)}

    # The server goes away: an error in the panel's state, nothing else changes.
    prefs.backend_url = dead_url
    snap = snapshot()
    err = generate()
    st = bpy.context.window_manager.motionclip_job
    out["server_down"] = {"operator_error": err, "panel_error": st.error, "panel_status": st.status,
                          "running": st.running, "before": snap, "after": snapshot()}
    prefs.backend_url = url

    # Recognise the selected armature's action.
    s.labels = "jump, wave, walk"
    try:
        bpy.ops.motionclip.recognize()
        rec_err = None
    except RuntimeError as exc:
        rec_err = str(exc)
    out["recognize"] = {"error": rec_err, "labels": [[i.label, i.score] for i in st.labels]}

    # Blend two prompts (interpolation), then edit the result by a text direction.
    s = bpy.context.scene.motionclip
    s.prompt, s.prompt_b, s.blend, s.seed = PROMPT_1, PROMPT_2, 0.25, SEED
    blend_err = generate()
    arm = bpy.context.active_object
    out["blend"] = {"error": blend_err, "action": arm.animation_data.action.name,
                    "frame_range": list(arm.animation_data.action.frame_range), "armatures": armatures()}
    s.prompt_b = ""
    s.edit_from, s.edit_to, s.edit_strength = "walk", "run", 1.0
    try:
        bpy.ops.motionclip.edit()
        edit_err = None
    except RuntimeError as exc:
        edit_err = str(exc)
    out["edit"] = {"error": edit_err, "action": arm.animation_data.action.name,
                   "frame_range": list(arm.animation_data.action.frame_range), "armatures": armatures(),
                   "actions": sorted(a.name for a in bpy.data.actions)}

    bpy.ops.preferences.addon_disable(module=module)
    out["after_disable"] = registered()
    out["enabled_after_disable"] = module in bpy.context.preferences.addons


if __name__ == "__main__":
    blender_common.run_session(session)
