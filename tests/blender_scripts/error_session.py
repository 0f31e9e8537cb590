"""Press every button of the built add-on into each of its error paths, in Blender, and dump what
each did as JSON.

    .venv-blender/bin/python error_session.py ADDON.zip SERVER_URL TOKEN DEAD_URL OUT.json      (bpy module)
    blender -b --python error_session.py -- ADDON.zip SERVER_URL TOKEN DEAD_URL OUT.json        (Blender binary)

SERVER_URL is a real `motionclip serve --token TOKEN`; nothing listens at DEAD_URL. The paths: no
server, a request the server refuses (a prompt over its length limit), a wrong token, too many
frames for the model, an empty prompt, Recognise / Edit with nothing (or no armature) selected,
empty Labels / From, and Start / Install Backend with no Backend Python set. For each: what the
operator's execute returned (its class's execute is wrapped to see it: in background mode an
ERROR report reaches Python as a RuntimeError, whatever execute returned), the report, the
panel's state and whether the scene changed. Then the panel's status drawing, into a recording
layout at several region widths and UI scales. Standard library + bpy only.
"""

from __future__ import annotations

import json
import os
import sys
import types
import urllib.request

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_common  # noqa: E402

returned: dict[str, list] = {}


def record_returns(*modules) -> None:
    """Wrap each operator's execute to keep what it returned (Blender looks it up at each call)."""
    def wrap(execute, name):
        def wrapped(self, context):  # exactly (self, context): Blender passes as many as it declares
            result = execute(self, context)
            returned.setdefault(name, []).append(sorted(result))
            return result
        return wrapped

    for cls in (c for m in modules for c in m.classes):
        if issubclass(cls, bpy.types.Operator):
            cls.execute = wrap(cls.execute, cls.bl_idname)


def scene_state() -> dict:
    return {"objects": sorted(ob.name for ob in bpy.data.objects), "actions": sorted(a.name for a in bpy.data.actions)}


def press(op: str) -> dict:
    """Press a button as a script does; what happened."""
    name = f"motionclip.{op}"
    before, n = scene_state(), len(returned.get(name, []))
    out: dict = {"raised": None, "report": None}
    try:
        out["result"] = sorted(getattr(bpy.ops.motionclip, op)())
    except Exception as exc:  # an ERROR report surfaces as RuntimeError("Error: <message>")
        out["raised"], out["report"] = type(exc).__name__, str(exc)
    calls = returned.get(name, [])
    out["returned"] = calls[n] if len(calls) > n else None   # None: execute raised
    st = bpy.context.window_manager.motionclip_job
    out.update(error=st.error, status=st.status, server=st.server, running=st.running,
               labels=[i.label for i in st.labels], scene_changed=scene_state() != before)
    return out


class Recorder:
    """Stands in for a UILayout: records each label (text, icon, inside an alert box)."""

    def __init__(self, log: list, alert: bool = False):
        self.log, self.alert = log, alert

    def column(self, align=False):
        return Recorder(self.log, self.alert)

    row = column

    def box(self):
        return Recorder(self.log, self.alert)

    def label(self, text="", icon="NONE"):
        self.log.append([text, icon, bool(self.alert)])

    def operator(self, idname, text="", icon="NONE"):
        self.log.append(["operator:" + idname, icon, bool(self.alert)])


def draw_status(drawing, width: int, scale: float) -> dict:
    log: list = []
    context = types.SimpleNamespace(window_manager=bpy.context.window_manager,
                                    region=types.SimpleNamespace(width=width),
                                    preferences=types.SimpleNamespace(system=types.SimpleNamespace(ui_scale=scale)))
    drawing._draw_status(Recorder(log), context)
    return {"width": width, "scale": scale, "columns": drawing.text_columns(context), "labels": log}


def session(out: dict, zip_path: str, url: str, token: str, dead_url: str) -> None:
    module = blender_common.install(zip_path)
    out["module"] = module
    ui, drawing = sys.modules[module + ".ui"], sys.modules[module + ".drawing"]
    record_returns(ui, sys.modules[module + ".backend_ops"])
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.backend_url, prefs.token = url, token
    scene = bpy.context.scene
    s = scene.motionclip
    s.prompt, s.length_mode, s.frames = "a person jumps", "FRAMES", 24

    # Connected first, so that a stale "Connected" line would show under the errors below.
    out["connected"] = press("check_connection")

    prefs.backend_url = dead_url
    out["no_server"] = press("generate")
    out["no_server_check"] = press("check_connection")
    prefs.backend_url = url

    s.prompt = "a person walks forward " * 20  # over the server's prompt limit: a 422 on "prompt"
    out["server_refuses"] = press("generate")
    s.prompt = "a person jumps"

    prefs.token = "not-the-token"
    out["bad_token"] = press("generate")
    out["bad_token_check"] = press("check_connection")
    prefs.token = token

    req = urllib.request.Request(url + "/health", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        max_frames = json.loads(resp.read())["max_frames"]
    out["max_frames"] = max_frames
    s.frames = max_frames + 1
    out["too_many_frames"] = press("generate")
    s.length_mode, s.seconds = "SECONDS", (max_frames + 24) / (scene.render.fps / scene.render.fps_base)
    out["too_many_seconds"] = press("generate")
    s.length_mode, s.frames = "FRAMES", 24

    s.prompt = "   "
    out["empty_prompt"] = press("generate")
    s.prompt = "a person jumps"

    # The factory scene's active object is its cube: not an SMPL armature.
    out["active_not_armature"] = {"active": getattr(bpy.context.active_object, "name", None),
                                  **press("recognize")}
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    bpy.context.view_layer.objects.active = None
    out["nothing_selected_recognize"] = press("recognize")
    out["nothing_selected_edit"] = press("edit")
    s.labels = " , ,"
    out["empty_labels"] = press("recognize")
    s.labels = "walk, run"
    s.edit_from = ""
    out["empty_from"] = press("edit")
    s.edit_from = "walk"

    prefs.backend_mode, prefs.python_path = "PYTHON", ""
    out["no_python"] = press("start_backend")
    out["no_python_install"] = press("install_backend")
    prefs.python_path = "/nonexistent/bin/python"
    out["missing_python"] = press("start_backend")
    backend = sys.modules[module + ".backend"]
    out["backend_running"] = backend.running()

    # The panel's status lines after an error with a "Connected" line left from before it.
    st = bpy.context.window_manager.motionclip_job
    st.status, st.error = "Generating: failed after 0.1 s", out["no_server"]["error"]
    st.server = "Connected: http://127.0.0.1:8765, model built-in (all-MiniLM-L6-v2, cpu)"
    out["draw_error"] = [draw_status(drawing, w, k) for w, k in ((230, 1.0), (300, 1.0), (420, 1.0), (600, 2.0),
                                                           (1000, 1.0))]
    st.error = ""
    out["draw_connected"] = draw_status(drawing, 300, 1.0)
    out["wrap_path"] = drawing.wrap("Backend Python /a/very/long/path/to/some/virtual/environment/bin/python3: "
                               "no such file", 20)

    bpy.ops.preferences.addon_disable(module=module)


if __name__ == "__main__":
    blender_common.run_session(session)
