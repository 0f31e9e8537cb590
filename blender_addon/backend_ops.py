"""The operators that look after the backend: check the connection, start, stop, and install into a
Python the user chose (Set Up Backend, which makes its own environment, is in setup_ui.py)."""

from __future__ import annotations

import bpy

from . import backend, connection, jobs, setup_ui
from .client import BackendError
from .ui import _JobOperator, make_client, prefs, server_line


class MOTIONCLIP_OT_check_connection(_JobOperator, bpy.types.Operator):
    """Ask the backend who it is"""
    bl_idname = "motionclip.check_connection"
    bl_label = "Check Connection"

    def execute(self, context):
        try:
            client = make_client(context)
        except BackendError as exc:
            return self.fail(context, exc)

        def apply(health):
            jobs.state(bpy.context).server = server_line(client, health)
            connection.check(client, wait=bpy.app.background)
            return f"Connected to {client.url}"

        return self.launch(context, "Connecting", client.health, apply)


class MOTIONCLIP_OT_start_backend(_JobOperator, bpy.types.Operator):
    """Start `motionclip serve` on Backend URL's port, from the environment Set Up Backend made or the
    Python set in the preferences (stopped when Blender quits)"""
    bl_idname = "motionclip.start_backend"
    bl_label = "Start Backend"

    def execute(self, context):
        p = prefs(context)
        try:
            backend.check_model(p.checkpoint)
            host, port = backend.local_address(p.backend_url)
            backend.start(setup_ui.backend_python(p), host, port, p.checkpoint, p.token)
            client = make_client(context)
        except (backend.BackendProcessError, BackendError, OSError) as exc:
            return self.fail(context, exc)

        def apply(health):
            jobs.state(bpy.context).server = server_line(client, health)
            connection.check(client, wait=bpy.app.background)
            return f"Backend running at {client.url}"

        return self.launch(context, "Starting backend", lambda: backend.wait_ready(client), apply)


class MOTIONCLIP_OT_stop_backend(bpy.types.Operator):
    """Stop the backend this Blender started"""
    bl_idname = "motionclip.stop_backend"
    bl_label = "Stop Backend"

    def execute(self, context):
        jobs.state(context).status = "Backend stopped" if backend.stop() else "No backend was running"
        return {"FINISHED"}


class MOTIONCLIP_OT_install_backend(_JobOperator, bpy.types.Operator):
    """pip-install the backend bundled in this add-on into the backend Python (downloads torch: minutes)"""
    bl_idname = "motionclip.install_backend"
    bl_label = "Install Backend"

    def execute(self, context):
        python = prefs(context).python_path
        try:
            backend.resolve_python(python)
        except backend.BackendProcessError as exc:
            return self.fail(context, exc)
        return self.launch(context, "Installing backend", lambda: backend.install(python), lambda tail: tail)


def autostart() -> str:
    """What Blender does with the backend when it starts (or the add-on is enabled): start it when Start With
    Blender is on, it is set up, and nothing answers at Backend URL yet. Returns what it did, for the console."""
    p = prefs()
    if p is None or not p.start_with_blender:
        return "not started (Start With Blender is off)"
    if p.backend_mode == "URL":
        return "not started (Backend is a Running Server you start yourself)"
    if backend.running():
        return "already running"
    try:
        backend.resolve_python(setup_ui.backend_python(p))
        backend.check_model(p.checkpoint)
        host, port = backend.local_address(p.backend_url)
    except backend.BackendProcessError as exc:
        return f"not started: {exc}"
    if backend.answers(host, port):
        return f"not started: something already answers at {p.backend_url}"
    bpy.ops.motionclip.start_backend()
    return f"starting at {p.backend_url}"


def on_start() -> None:
    """The timer register() sets in a Blender with a window: autostart once, never failing Blender."""
    try:
        print(f"motionclip: backend: {autostart()}")
    except Exception as exc:  # the panel still offers Start Backend
        print(f"motionclip: backend not started: {exc}")


classes = (
    MOTIONCLIP_OT_check_connection,
    MOTIONCLIP_OT_start_backend,
    MOTIONCLIP_OT_stop_backend,
    MOTIONCLIP_OT_install_backend,
)
