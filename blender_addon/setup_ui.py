"""The backend's one-click set-up inside Blender: where its environment lives, the Set Up Backend,
Open Setup Log and Remove Backend Environment operators, and the panel's set-up box and
progress lines. The work itself is envsetup.Setup on the add-on's worker thread (jobs.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import bpy
from bpy.props import EnumProperty

from . import backend, connection, envsetup, jobs
from .client import BackendError, Client

ADDON_ID = __package__
ENV_NAME, LOG_NAME = "backend-env", "setup.log"
last_progress: list = [None]   # the last set-up's envsetup.Progress (its steps and pip's counts)


def user_dir() -> Path:
    """The add-on's own writable folder: the extension's user folder on Blender 4.2+, else the user's
    datafiles folder (see the README for the paths on each system)."""
    if ADDON_ID.startswith("bl_ext.") and hasattr(bpy.utils, "extension_path_user"):
        return Path(bpy.utils.extension_path_user(ADDON_ID, create=True))
    return Path(bpy.utils.user_resource("DATAFILES", path="motionclip_blender", create=True))


def env_dir() -> Path:
    return user_dir() / ENV_NAME


def log_path() -> Path:
    return user_dir() / LOG_NAME


def prefs(context=None):
    addon = (context or bpy.context).preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def options(p) -> envsetup.Options:
    return envsetup.Options(torch_variant=p.torch_variant, torch_index=p.torch_index,
                            torch_requirement=p.torch_requirement, index_url=p.index_url, find_links=p.find_links,
                            no_index=p.no_index, extra_site_packages=p.extra_site_packages)


def backend_python(p) -> str:
    """The Python a local backend runs from: the set-up environment, or the user's own."""
    if p.backend_mode != "MANAGED":
        return p.python_path
    env = env_dir()
    if not envsetup.is_ready(env):
        raise backend.BackendProcessError("the backend is not set up yet: press Set Up Backend in the MotionCLIP "
                                          "panel (3D View > Sidebar > MotionCLIP), or choose Backend > This Python "
                                          "in Preferences > Add-ons > motionclip")
    return str(envsetup.env_python(env))


def needs_setup(context) -> bool:
    """No backend to talk to: the add-on's own is not set up and nothing answers at the URL."""
    p = prefs(context)
    return (p is not None and p.backend_mode == "MANAGED" and not envsetup.is_ready(env_dir())
            and not connection.connected(p.backend_url))


def _fail(op, context, error) -> set[str]:
    text = jobs.message(error)
    jobs.show_error(jobs.state(context), text, f"{op.bl_label}: failed")
    jobs.redraw()
    op.report({"ERROR"}, text)
    return {"CANCELLED"}


class MOTIONCLIP_OT_setup_backend(bpy.types.Operator):
    """Make a Python environment for the backend with Blender's own Python, install PyTorch and the
    bundled backend into it (downloads once), start it and connect"""
    bl_idname = "motionclip.setup_backend"
    bl_label = "Set Up Backend"

    @classmethod
    def poll(cls, context):
        return not jobs.busy()

    def execute(self, context):
        from .ui import server_line

        p = prefs(context)
        try:
            backend.check_model(p.checkpoint)
            host, port = backend.local_address(p.backend_url)
            client = Client(p.backend_url, p.token, p.timeout)
            backend.stop()  # a set-up again replaces the backend this Blender started
        except (backend.BackendProcessError, BackendError) as exc:
            return _fail(self, context, exc)
        progress = envsetup.Progress()
        setup = envsetup.Setup(env_dir(), log_path(), options(p), progress)
        last_progress[0] = progress
        checkpoint, token, t0 = p.checkpoint, p.token, time.monotonic()

        def work():  # worker thread: no bpy
            python = setup.run()
            progress.enter(4, f"motionclip serve on port {port}")
            backend.start(str(python), host, port, checkpoint, token)
            progress.enter(5, client.url)
            health = backend.wait_ready(client)
            progress.detail = "connected"
            return health

        def apply(health):
            jobs.state(bpy.context).server = server_line(client, health)
            connection.check(client, wait=bpy.app.background)
            return f"Backend set up and running at {client.url} ({time.monotonic() - t0:.0f} s)"

        def cancel():
            setup.cancel()
            backend.stop()

        try:
            ok = jobs.start("Setting up backend", work, apply, progress=progress, on_cancel=cancel)
        except RuntimeError as exc:
            return _fail(self, context, exc)
        if ok is False:
            self.report({"ERROR"}, jobs.state(context).error)
            return {"CANCELLED"}
        return {"FINISHED"}


def show_text(context, name: str, content: str):
    """``content`` in a text datablock ``name``, shown in a Text Editor (an open one, else a new
    window) when Blender has a window."""
    text = bpy.data.texts.get(name) or bpy.data.texts.new(name)
    text.clear()
    text.write(content)
    if bpy.app.background or context.window is None:
        return text
    screen_areas = [a for w in context.window_manager.windows for a in w.screen.areas]
    area = next((a for a in screen_areas if a.type == "TEXT_EDITOR"), None)
    if area is None:
        before = set(context.window_manager.windows[:])
        bpy.ops.wm.window_new()
        new = [w for w in context.window_manager.windows if w not in before]
        if new:
            area = max(new[0].screen.areas, key=lambda a: a.width * a.height)
            area.type = "TEXT_EDITOR"
    if area is not None:
        area.spaces.active.text = text
    return text


class MOTIONCLIP_OT_open_log(bpy.types.Operator):
    """Open the set-up's log (every line pip printed) or the backend's log in Blender's Text Editor"""
    bl_idname = "motionclip.open_log"
    bl_label = "Open Log"

    which: EnumProperty(name="Log", default="SETUP", items=[("SETUP", "Setup Log", "The backend set-up's log"),
                                                              ("BACKEND", "Backend Log", "The running backend's log")])

    def execute(self, context):
        path = log_path() if self.which == "SETUP" else backend.LOG_FILE
        try:
            content = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            what = "Set Up Backend" if self.which == "SETUP" else "Start Backend"
            self.report({"ERROR"}, f"there is no log at {path} yet: it is written when you press {what}")
            return {"CANCELLED"}
        show_text(context, f"motionclip {path.name}", content)
        return {"FINISHED"}


class MOTIONCLIP_OT_remove_env(bpy.types.Operator):
    """Stop the backend and delete the environment Set Up Backend made (PyTorch and the backend); the
    add-on and its settings stay"""
    bl_idname = "motionclip.remove_backend_env"
    bl_label = "Remove Backend Environment"

    @classmethod
    def poll(cls, context):
        return not jobs.busy()

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def execute(self, context):
        env = env_dir()
        backend.stop()
        size = envsetup.size_mb(env) if env.exists() else 0.0
        try:
            removed = envsetup.remove(env)
        except OSError as exc:
            self.report({"ERROR"}, f"could not delete {env}: {exc}; close what uses it and try again, or delete "
                                   "the folder yourself")
            return {"CANCELLED"}
        st = jobs.state(context)
        st.status = f"Removed {env} ({size:.0f} MB)" if removed else f"Nothing to remove at {env}"
        st.server = ""
        return {"FINISHED"}


def draw_progress(layout, st, width: int, wrap) -> None:
    """A running job: its status, a progress bar and detail when it has them, and one Cancel."""
    col = layout.column(align=True)
    col.label(text=st.status, icon="SORTTIME")
    if st.detail:
        if hasattr(col, "progress"):  # Blender 4.0+
            col.progress(factor=st.fraction, type="BAR", text=f"{st.fraction * 100:.0f} %")
        else:
            row = col.row()
            row.enabled = False
            row.prop(st, "percent", slider=True)
        for line in wrap(st.detail, width):
            col.label(text=line)
    row = layout.row(align=True)
    row.scale_y = 1.4
    row.operator("motionclip.cancel", text="Cancel", icon="X")
    if st.status.startswith("Setting up"):
        row.operator(MOTIONCLIP_OT_open_log.bl_idname, text="Log", icon="TEXT").which = "SETUP"


SETUP_TEXT = ("The model runs in a backend on this computer. This installs it once into a Python environment "
              "made with Blender's own Python (PyTorch {variant}: {size} to download), then starts it and connects.")
DOWNLOAD = {"CPU": "about 0.4 GB", "CUDA": "about 3 GB", "DEFAULT": "0.4 to 3 GB"}


def draw_setup_box(layout, context, width: int, wrap) -> None:
    p = prefs(context)
    box = layout.box()
    box.label(text="No backend yet", icon="INFO")
    row = box.row()
    row.scale_y = 1.5
    row.operator(MOTIONCLIP_OT_setup_backend.bl_idname, icon="IMPORT")
    box.row().prop(p, "torch_variant", expand=True)
    col = box.column(align=True)
    variant = {"CPU": "CPU", "CUDA": "for NVIDIA GPUs", "DEFAULT": "from the package index"}[p.torch_variant]
    for line in wrap(SETUP_TEXT.format(size=DOWNLOAD[p.torch_variant], variant=variant), width):
        col.label(text=line)
    for i, line in enumerate(wrap(f"Into {env_dir()}", width)):
        col.label(text=line, icon="FILE_FOLDER" if i == 0 else "BLANK1")
    if log_path().is_file():
        box.operator(MOTIONCLIP_OT_open_log.bl_idname, text="Open Setup Log", icon="TEXT").which = "SETUP"
    for line in wrap("A server running already, or your own Python? Preferences > Add-ons > motionclip > "
                     "Backend.", width):
        box.label(text=line)


classes = (MOTIONCLIP_OT_setup_backend, MOTIONCLIP_OT_open_log, MOTIONCLIP_OT_remove_env)
