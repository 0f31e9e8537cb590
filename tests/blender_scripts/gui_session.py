"""Drive the add-on in Blender's real window (not background mode), for a screenshot.

    blender --factory-startup --python gui_session.py -- ADDON.zip SERVER_URL STATE_DIR [PROMPT]

Run under a display (Xvfb in the tests). Installs and enables the zip (an extension on 4.2+, a
legacy add-on before), opens the 3D View's sidebar on the MotionCLIP tab, types the prompt and
presses Generate as a user would. The request runs on the add-on's worker thread: a timer counts
how often Blender's main loop ran while it waited (it never blocks). When the result is keyed, the
view frames the armature at the middle frame and STATE_DIR/ready.json says what Blender made and
where the sidebar is on screen. The caller then clicks the MotionCLIP tab and creates
STATE_DIR/clicked; STATE_DIR/shown.json then says how often the panel has drawn itself (Blender
3.4 has no API to choose a sidebar tab: a user clicks it). The caller takes its screenshot, creates
STATE_DIR/shot.done, and Blender quits. Standard library + bpy only.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_common  # noqa: E402
from blender_common import view3d  # noqa: E402

ARGS = blender_common.script_args()
ZIP, URL, STATE = ARGS[0], ARGS[1], ARGS[2]
PROMPT = ARGS[3] if len(ARGS) > 3 else "a person walks forward and waves"
state: dict = {"blender": bpy.app.version_string}
draws = [0]


def write(name: str, data: dict) -> None:
    blender_common.write_state(STATE, name, data)


def start():
    try:
        module = blender_common.install(ZIP)
        panel = bpy.types.MOTIONCLIP_PT_main
        original = panel.draw

        def counted(self, context):
            draws[0] += 1
            return original(self, context)

        panel.draw = counted  # counts the panel's draws: is it on screen?
        bpy.context.preferences.addons[module].preferences.backend_url = URL
        scene = bpy.context.scene
        for name in ("Cube", "Light"):  # the factory scene's cube would hide the armature
            if name in bpy.data.objects:
                bpy.data.objects.remove(bpy.data.objects[name])
        s = scene.motionclip
        s.prompt, s.length_mode, s.seconds, s.seed, s.start_frame = PROMPT, "SECONDS", 4.0, 3, 1
        s.body = True
        win, area, _, ui = view3d()
        area.spaces.active.show_region_ui = True
        state["module"] = module
        with bpy.context.temp_override(window=win, area=area, region=ui):
            t0 = time.monotonic()
            state["operator"] = sorted(bpy.ops.motionclip.generate())
            state["operator_returned_s"] = time.monotonic() - t0
        state["running_after_press"] = bpy.context.window_manager.motionclip_job.running
        bpy.app.timers.register(wait, first_interval=0.02)
    except Exception:
        state["exception"] = traceback.format_exc()
        write("ready.json", state)
    return None


def wait():
    job = bpy.context.window_manager.motionclip_job
    if job.running:
        return 0.02
    try:
        state.update(status=job.status, error=job.error, server=job.server)
        arm = bpy.context.active_object
        if arm is not None and arm.type == "ARMATURE":
            action = arm.animation_data.action
            state.update(armature=arm.name, bones=len(arm.data.bones), action=action.name,
                         frame_range=[action.frame_range[0], action.frame_range[1]])
            scene = bpy.context.scene
            scene.frame_set(int((action.frame_range[0] + action.frame_range[1]) / 2))
            win, area, view, ui = view3d()
            with bpy.context.temp_override(window=win, area=area, region=view):
                for ob in bpy.context.view_layer.objects:
                    ob.select_set(ob == arm or ob.parent == arm)
                bpy.ops.view3d.view_selected()
            bpy.context.view_layer.objects.active = arm
        win, area, view, ui = view3d()
        if hasattr(ui, "active_panel_category"):
            try:
                ui.active_panel_category = "MotionCLIP"
            except TypeError:  # the tabs are made at draw time; the next pass sets it
                pass
            state["sidebar_tab"] = ui.active_panel_category
        for a in win.screen.areas:
            a.tag_redraw()
        state["window"] = [win.width, win.height]
        state["sidebar"] = [ui.x, ui.y, ui.width, ui.height]
    except Exception:
        state["exception"] = traceback.format_exc()
    bpy.app.timers.register(settle, first_interval=1.5)
    return None


def settle():
    win, area, view, ui = view3d()
    state["settle_passes"] = state.get("settle_passes", 0) + 1
    if (hasattr(ui, "active_panel_category") and ui.active_panel_category != "MotionCLIP"
            and state["settle_passes"] < 6):
        try:
            ui.active_panel_category = "MotionCLIP"
        except TypeError:
            pass
        state["sidebar_tab"] = ui.active_panel_category
        for a in win.screen.areas:
            a.tag_redraw()
        return 1.0
    state["panel_draws"] = draws[0]
    write("ready.json", state)
    bpy.app.timers.register(after_click, first_interval=0.2)
    return None


def after_click():
    if not os.path.exists(os.path.join(STATE, "clicked")):
        return 0.2
    before = draws[0]
    for a in bpy.context.window_manager.windows[0].screen.areas:
        a.tag_redraw()
    bpy.app.timers.register(lambda: report_shown(before), first_interval=1.0)
    return None


def report_shown(before: int):
    write("shown.json", {"panel_draws": draws[0], "panel_draws_at_click": before})
    bpy.app.timers.register(quit_when_shot, first_interval=0.2)
    return None


def quit_when_shot():
    if os.path.exists(os.path.join(STATE, "shot.done")):
        bpy.ops.wm.quit_blender()
        return None
    return 0.2


bpy.app.timers.register(start, first_interval=1.0)
