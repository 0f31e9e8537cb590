"""The backend starting with Blender (Preferences > Start With Blender).

    <bpy python> autostart_session.py branches ADDON.zip PYTHON RUN OUT.json
    blender --factory-startup --python autostart_session.py -- window ADDON.zip PYTHON RUN PORT OUT.json

branches (background): every answer of backend_ops.autostart() (off, Running Server, not set up, no
Python, not local, port taken, started, already running) and on_start() surviving an error; and that a
background Blender schedules nothing. window (a real window, under Xvfb in the tests): install the
add-on (its register() is what a Blender start runs), set the preferences to PYTHON + RUN on PORT as
saved ones would be, and wait, without pressing anything, until the backend answers; OUT.json says
what happened, then Blender quits. Standard library + bpy only.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_common  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def branches(out: dict, _mode: str, zip_path: str, python: str, run: str) -> None:
    module = blender_common.install(zip_path)
    ops, backend = sys.modules[module + ".backend_ops"], sys.modules[module + ".backend"]
    p = bpy.context.preferences.addons[module].preferences
    out["default_on"] = p.start_with_blender
    out["scheduled_in_background"] = bpy.app.timers.is_registered(ops.on_start)
    said = out["said"] = {}
    p.start_with_blender = False
    said["off"] = ops.autostart()
    p.start_with_blender = True
    p.backend_mode = "URL"
    said["remote"] = ops.autostart()
    p.backend_mode = "MANAGED"  # nothing set up in this throwaway user folder
    said["not_set_up"] = ops.autostart()
    p.backend_mode, p.python_path, p.checkpoint = "PYTHON", "", run
    said["no_python"] = ops.autostart()
    p.python_path, p.backend_url = python, "http://192.0.2.1:8765"
    said["not_local"] = ops.autostart()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        p.backend_url = f"http://127.0.0.1:{taken.getsockname()[1]}"
        said["port_taken"] = ops.autostart()
    out["running_before"] = backend.running()
    p.backend_url = f"http://127.0.0.1:{free_port()}"
    said["start"] = ops.autostart()
    out["status"] = bpy.context.window_manager.motionclip_job.status
    out["running"] = backend.running()
    said["again"] = ops.autostart()
    real = ops.autostart
    ops.autostart = lambda: 1 / 0
    try:
        ops.on_start()
        out["on_start_survived"] = True
    finally:
        ops.autostart = real
    bpy.ops.preferences.addon_disable(module=module)
    out["running_after_disable"] = backend.running()


def window(zip_path: str, python: str, run: str, port: str, out_path: str) -> None:
    out: dict = {"blender": bpy.app.version_string}
    module = blender_common.install(zip_path)  # register() schedules the start for after this script
    p = bpy.context.preferences.addons[module].preferences  # as saved preferences would have it
    p.backend_mode, p.python_path, p.checkpoint = "PYTHON", python, run
    p.backend_url = url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()

    def wait():
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                out["health"] = json.loads(resp.read())
        except OSError:
            if time.monotonic() - t0 < 180:
                return 0.5
            out["health"] = None
        backend = sys.modules[module + ".backend"]
        out["started_by_addon"] = backend.running()
        out["status"] = bpy.context.window_manager.motionclip_job.status
        bpy.ops.preferences.addon_disable(module=module)  # stops the backend it started
        out["running_after_disable"] = backend.running()
        with open(out_path, "w", encoding="utf-8") as fh:
            json.dump(out, fh)
        bpy.ops.wm.quit_blender()
        return None

    bpy.app.timers.register(wait, first_interval=0.5)


ARGS = blender_common.script_args()
if ARGS[0] == "branches":
    blender_common.run_session(branches)
else:
    window(*ARGS[1:])
