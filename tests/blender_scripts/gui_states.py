"""Drive the add-on's panel through its states in Blender's real window, for screenshots.

    blender --factory-startup --python gui_states.py -- ADDON.zip CONFIG.json STATE_DIR

Run under a display (Xvfb in the tests). CONFIG: {"url": where the set-up's backend will listen,
"prefs": the set-up's package sources, "hang_url": a server whose /health answers and whose
requests never do, "dead_url": nothing listening}. For each state the script writes
STATE_DIR/<state>.json once the panel shows it, and goes on when the caller has taken its
screenshot and created STATE_DIR/<state>.done:

1. no_backend  - nothing at the URL, nothing set up: the set-up box (the caller first clicks the
                 MotionCLIP tab, as often as it takes: Blender 3.4 has no API to choose a sidebar
                 tab; the state is written once the panel draws itself)
2. setting_up  - Set Up Backend pressed: the progress bar and pip's counts while it installs
3. ready       - set up, started, connected, and a first Generate keyed beside the cube
4. generating  - a request in flight (to hang_url): its status and one Cancel, then Cancel
5. error       - Generate with nothing listening: the whole error

Every wait is on a timer: Blender's UI never blocks. Standard library + bpy only.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_common  # noqa: E402
from blender_common import view3d  # noqa: E402

ARGS = blender_common.script_args()
ZIP, CONFIG, STATE = ARGS[0], json.loads(open(ARGS[1], encoding="utf-8").read()), ARGS[2]
info: dict = {"blender": bpy.app.version_string}
draws = [0]
phase = ["start"]
mark = [0.0]
M: dict = {}


def write(name: str, data: dict) -> None:
    blender_common.write_state(STATE, name, data)


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(STATE, name))


def redraw() -> None:
    for a in bpy.context.window_manager.windows[0].screen.areas:
        a.tag_redraw()


def press(op: str) -> list:
    win, area, _, ui = view3d()
    with bpy.context.temp_override(window=win, area=area, region=ui):
        return sorted(getattr(bpy.ops.motionclip, op)())


def job() -> dict:
    st = bpy.context.window_manager.motionclip_job
    c = M["connection"].state
    return {"running": st.running, "status": st.status, "detail": st.detail, "fraction": st.fraction,
            "error": st.error, "server": st.server, "connection": [c.url, c.ok, c.text], "panel_draws": draws[0]}


def connection_is(url_key: str, ok: bool) -> bool:
    """The add-on's connection line is about CONFIG[url_key] and says it is reachable (ok) or not."""
    c = M["connection"].state
    return c.url == CONFIG[url_key].rstrip("/") and c.ok is ok


def goto(name: str) -> float:
    phase[0], mark[0] = name, time.monotonic()
    return 0.1


def shown(state: str, then: str) -> float:
    """Wait for the caller's screenshot of ``state``."""
    if exists(state + ".done"):
        return goto(then)
    return 0.2


def start() -> float:
    module = blender_common.install(ZIP)
    M.update({n: sys.modules[f"{module}.{n}"] for n in ("connection", "jobs", "setup_ui")})
    M["prefs"] = bpy.context.preferences.addons[module].preferences
    panel = sys.modules[f"{module}.panels"].MOTIONCLIP_PT_main
    original = panel.draw

    def counted(self, context):
        draws[0] += 1
        return original(self, context)

    panel.draw = counted
    M["prefs"].backend_url = CONFIG["url"]
    if "Light" in bpy.data.objects:
        bpy.data.objects.remove(bpy.data.objects["Light"])
    s = bpy.context.scene.motionclip
    s.prompt, s.length_mode, s.seconds, s.seed = "a person walks forward and waves", "SECONDS", 4.0, 3
    win, area, _, ui = view3d()
    area.spaces.active.show_region_ui = True
    return goto("wait_no_backend")


def wait_no_backend() -> float:
    if not connection_is("url", False):
        return 0.2
    win, area, view, ui = view3d()
    if hasattr(ui, "active_panel_category"):
        try:
            ui.active_panel_category = "MotionCLIP"
        except TypeError:
            pass
    redraw()
    info.update(window=[win.width, win.height], sidebar=[ui.x, ui.y, ui.width, ui.height], **job())
    write("no_backend.json", info)
    return goto("wait_click")


def wait_click() -> float:
    """Until the caller's click on the MotionCLIP tab shows the panel (it draws itself)."""
    redraw()
    if draws[0] == 0:
        mark[0] = time.monotonic()
        return 0.2
    if time.monotonic() - mark[0] < 1.0:
        return 0.2
    write("no_backend_shown.json", job())
    return goto("shot_no_backend")


def press_setup() -> float:
    for key, value in CONFIG["prefs"].items():
        setattr(M["prefs"], key, value)
    info["setup_pressed"] = press("setup_backend")
    return goto("wait_setting_up")


def wait_setting_up() -> float:
    st = job()
    progress = M["setup_ui"].last_progress[0]
    if st["running"] and progress is not None and progress.step >= 2 and progress.counter is not None \
            and time.monotonic() - mark[0] > 1.0:
        write("setting_up.json", st)
        return goto("shot_setting_up")
    if not st["running"] and time.monotonic() - mark[0] > 1.0:
        write("setting_up.json", st)  # finished or failed before it could be seen: the caller says which
        return goto("shot_setting_up")
    return 0.1


def wait_setup_end() -> float:
    st = job()
    if st["running"]:
        return 0.2
    if st["error"]:
        write("ready.json", st)
        return goto("shot_ready")
    info["generate"] = press("generate")
    return goto("wait_generated")


def wait_generated() -> float:
    st = job()
    c = M["connection"].state
    if st["running"] or c.ok is not True:
        return 0.2
    arm = bpy.context.active_object
    if arm is not None and arm.type == "ARMATURE":  # the default view shows it beside the cube
        bpy.context.scene.frame_set(int(sum(arm.animation_data.action.frame_range) / 2))
        st["armature"] = {"name": arm.name, "location": list(arm.location)}
    redraw()
    if time.monotonic() - mark[0] < 2.0:
        return 0.2
    write("ready.json", st)
    return goto("shot_ready")


def press_hang() -> float:
    M["prefs"].backend_url = CONFIG["hang_url"]
    return goto("wait_hang_connected")


def wait_hang_connected() -> float:
    if not connection_is("hang_url", True):
        return 0.2
    info["hang_generate"] = press("generate")
    return goto("wait_generating")


def wait_generating() -> float:
    if time.monotonic() - mark[0] < 2.5:
        redraw()
        return 0.2
    write("generating.json", job())
    return goto("shot_generating")


def cancel_and_break() -> float:
    info["cancel"] = press("cancel")
    info["after_cancel"] = job()
    M["prefs"].backend_url = CONFIG["dead_url"]
    return goto("wait_dead")


def wait_dead() -> float:
    if not connection_is("dead_url", False):
        return 0.2
    try:
        info["error_generate"] = press("generate")
    except RuntimeError as exc:
        info["error_generate"] = str(exc)
    return goto("wait_error")


def wait_error() -> float:
    st = job()
    if st["running"] or time.monotonic() - mark[0] < 2.0:
        redraw()
        return 0.2
    st["info"] = {k: v for k, v in info.items() if k not in ("window", "sidebar")}
    write("error.json", st)
    return goto("shot_error")


def finish() -> None:
    M["setup_ui"].backend.stop()
    bpy.ops.wm.quit_blender()


PHASES = {
    "start": start, "wait_no_backend": wait_no_backend, "wait_click": wait_click,
    "shot_no_backend": lambda: shown("no_backend", "press_setup"),
    "press_setup": press_setup, "wait_setting_up": wait_setting_up,
    "shot_setting_up": lambda: shown("setting_up", "wait_setup_end"),
    "wait_setup_end": wait_setup_end, "wait_generated": wait_generated,
    "shot_ready": lambda: shown("ready", "press_hang"),
    "press_hang": press_hang, "wait_hang_connected": wait_hang_connected, "wait_generating": wait_generating,
    "shot_generating": lambda: shown("generating", "cancel_and_break"),
    "cancel_and_break": cancel_and_break, "wait_dead": wait_dead, "wait_error": wait_error,
    "shot_error": lambda: shown("error", "finish"),
}


def tick():
    if phase[0] == "finish":
        finish()
        return None
    try:
        return PHASES[phase[0]]()
    except Exception:
        info["exception"] = traceback.format_exc()
        info["phase"] = phase[0]
        write("failed.json", info)
        return None


bpy.app.timers.register(tick, first_interval=1.0)
