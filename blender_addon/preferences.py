"""The add-on's preferences: where the backend is (one Backend URL), which backend (set up by the
add-on, a Python you choose, or a server you run), the set-up's package sources, the licences,
and the migration of preferences saved by older versions."""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import backend, envsetup, setup_ui
from .client import DEFAULT_URL, is_local
from .backend_ops import (MOTIONCLIP_OT_check_connection, MOTIONCLIP_OT_install_backend, MOTIONCLIP_OT_start_backend,
                          MOTIONCLIP_OT_stop_backend)
from .drawing import _draw_connection, _draw_status, _lines, text_columns
from .ui import ADDON_ID

BACKEND_MODES = [
    ("MANAGED", "Set Up by the Add-on", "A Python environment the add-on makes with Blender's own Python "
                                       "(Set Up Backend), started from Blender"),
    ("PYTHON", "This Python", "A Python interpreter you choose, with the backend installed (or to install it into)"),
    ("URL", "Running Server", "A server you start yourself (motionclip serve), here or on another machine: only "
                              "Backend URL is used")]


class MOTIONCLIP_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_url: StringProperty(name="Backend URL", default=DEFAULT_URL,
                                description="Where the backend listens: the add-on sends its requests there and "
                                            "starts a local backend on this address's port")
    token: StringProperty(name="Token", default="", subtype="PASSWORD",
                          description="Token the server was started with (--token); empty for none")
    timeout: FloatProperty(name="Timeout (s)", default=120.0, min=1.0, max=3600.0,
                           description="How long to wait for one answer")
    backend_mode: EnumProperty(name="Backend", default="MANAGED", items=BACKEND_MODES)
    python_path: StringProperty(name="Backend Python", default="", subtype="FILE_PATH",
                                description="A Python interpreter with the backend installed (or to install it into)")
    start_with_blender: BoolProperty(name="Start With Blender", default=True,
                                     description="Start the backend when Blender starts (or this add-on is "
                                                 "enabled) once it is set up, unless something already answers "
                                                 "at Backend URL")
    checkpoint: StringProperty(name="Checkpoint", default="", subtype="DIR_PATH",
                               description="Run directory to serve; empty for the built-in model")
    torch_variant: EnumProperty(name="PyTorch", default="CPU", items=[
        ("CPU", "CPU", "PyTorch's CPU build (smaller download; runs everywhere)"),
        ("CUDA", "NVIDIA GPU (CUDA)", "PyTorch's CUDA build, for an NVIDIA GPU (a download of several GB)"),
        ("DEFAULT", "Package Index's", "Whatever torch the package index has (on macOS the same as CPU)")])
    show_advanced: BoolProperty(name="Advanced", default=False)
    torch_index: StringProperty(name="PyTorch Index", default="",
                                description="Index URL(s) for PyTorch, separated by spaces; empty: PyTorch's own "
                                            "index for the chosen build (CPU: https://download.pytorch.org/whl/cpu)")
    torch_requirement: StringProperty(name="PyTorch Packages", default="torch torchvision",
                                      description="What pip installs from the PyTorch index, separated by spaces, "
                                                  "e.g. torch==2.5.1 torchvision==0.20.1 (they must match)")
    index_url: StringProperty(name="Package Index", default="",
                              description="Index URL(s) for everything else, separated by spaces; empty: PyPI")
    find_links: StringProperty(name="Find Links", default="", subtype="DIR_PATH",
                               description="A folder of wheels (or a URL) pip also looks in")
    no_index: BoolProperty(name="No Index (Find Links Only)", default=False,
                           description="Install only from Find Links (an offline folder of wheels)")
    extra_site_packages: StringProperty(name="Extra Site-Packages", default="",
                                        description="Folders of installed packages the environment also sees "
                                                    f"(separated by '{os.pathsep}'); for development: packages "
                                                    "found there are not downloaded")
    recent_prompts: StringProperty(name="Recent Prompts", default="[]", options={"HIDDEN"})
    # Read once from preferences saved by older versions (see migrate_prefs), then unset; not used.
    port: IntProperty(name="Port (old)", default=8765, min=1, max=65535, options={"HIDDEN"})

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "backend_url")
        col.prop(self, "token")
        col.prop(self, "timeout")
        box = layout.box()
        box.prop(self, "backend_mode", expand=True)
        width = text_columns(context)
        if self.backend_mode == "MANAGED":
            _draw_managed(box, self, width)
        elif self.backend_mode == "PYTHON":
            box.prop(self, "python_path")
            box.prop(self, "checkpoint")
        else:
            _lines(box, "Start the server yourself (motionclip serve [--port 8765] [--token T]) and set Backend URL "
                        "to its address.", width, "INFO")
        if self.backend_mode != "URL":
            box.prop(self, "start_with_blender")
        row = box.row()
        if self.backend_mode != "URL":
            if backend.running():
                row.operator(MOTIONCLIP_OT_stop_backend.bl_idname, icon="CANCEL")
            else:
                row.operator(MOTIONCLIP_OT_start_backend.bl_idname, icon="PLAY")
        if self.backend_mode == "PYTHON":
            row.operator(MOTIONCLIP_OT_install_backend.bl_idname, icon="IMPORT")
        row.operator(MOTIONCLIP_OT_check_connection.bl_idname, icon="URL")
        row.operator(setup_ui.MOTIONCLIP_OT_open_log.bl_idname, text="Backend Log", icon="TEXT").which = "BACKEND"
        _draw_connection(box, context)
        _draw_status(box, context)
        _draw_licences(layout.box(), width)


def _draw_managed(box, p, width: int) -> None:
    env = setup_ui.env_dir()
    ready = envsetup.is_ready(env)
    _lines(box, f"Environment: {env} ({'set up' if ready else 'not set up yet'})", width,
           "CHECKMARK" if ready else "INFO")
    box.prop(p, "torch_variant")
    box.prop(p, "checkpoint")
    row = box.row()
    row.operator(setup_ui.MOTIONCLIP_OT_setup_backend.bl_idname, text="Set Up Again" if ready else None,
                 icon="IMPORT")
    row.operator(setup_ui.MOTIONCLIP_OT_open_log.bl_idname, text="Setup Log", icon="TEXT").which = "SETUP"
    row.operator(setup_ui.MOTIONCLIP_OT_remove_env.bl_idname, text="Remove", icon="TRASH")
    box.prop(p, "show_advanced", icon="TRIA_DOWN" if p.show_advanced else "TRIA_RIGHT", emboss=False)
    if p.show_advanced:
        col = box.column()
        for name in ("torch_index", "torch_requirement", "index_url", "find_links", "no_index",
                     "extra_site_packages"):
            col.prop(p, name)


LICENCE_TEXT = (
    "Licences: this add-on's code is GPL-3.0-or-later; the backend package is MIT. The built-in model was trained "
    "on the Bandai-Namco Research motion datasets (CC BY-NC 4.0): use it for non-commercial purposes only and "
    "credit Bandai Namco Research. For commercial work, train a model on data you may use that way (motionclip "
    "train autoencoder) and set Checkpoint. Its model card, MODEL_CARD.md, is in the add-on's folder.")
NO_MODEL_TEXT = ("This build carries no built-in model (build_addon.py --without-model): set Checkpoint to a trained "
                 "run folder before starting the backend. This add-on's code is GPL-3.0-or-later; the backend "
                 "package is MIT.")


def _draw_licences(box, width: int) -> None:
    try:
        has_model = bool(envsetup.bundle().get("model"))
    except envsetup.SetupError:
        has_model = True
    _lines(box, LICENCE_TEXT if has_model else NO_MODEL_TEXT, width, "INFO")


def migrate_prefs(p) -> str | None:
    """Preferences saved by the version with separate Port and Backend URL fields: one URL now.
    The old Start Backend put the backend on Port and then sent requests to 127.0.0.1:Port, so a
    user who had a Backend Python set gets that address (and Backend: This Python); otherwise
    Backend URL, where requests went, stays. The old Port is then unset."""
    if not p.is_property_set("port"):
        return None
    old_port, note = int(p.port), None
    if p.python_path.strip():
        if not p.is_property_set("backend_mode"):
            p.backend_mode = "PYTHON"
        if is_local(p.backend_url):
            p.backend_url = f"http://127.0.0.1:{old_port}"
            note = f"Port {old_port} merged into Backend URL {p.backend_url}"
    p.property_unset("port")
    return note
