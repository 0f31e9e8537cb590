"""The backend's one-click set-up, in Blender, from a local package source, and the first
Generate after it; dumps what happened as JSON.

    .venv-blender/bin/python setup_session.py ADDON.zip CONFIG.json OUT.json      (bpy module)
    blender -b --python setup_session.py -- ADDON.zip CONFIG.json OUT.json        (Blender binary)

CONFIG: {"url": a free loopback URL, "prefs": {the advanced set-up preferences: find_links,
no_index, index_url, torch_index, torch_requirement, extra_site_packages}, "broken_links": a
folder with no wheels}. Steps: install and enable the add-on; the panel with no backend; Set Up
Backend from the empty folder (it must fail at the PyTorch step with pip's own error); Open Setup
Log; Remove Backend Environment; Set Up Backend from the configured source (time from the press
on); the panel after it; Generate; Open Setup Log; Stop; disable. Standard library + bpy only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_common  # noqa: E402
import recorder  # noqa: E402


def press(op: str, **kw) -> dict:
    return blender_common.press(op, ("server", "running"), **kw)


def panel(module: str) -> list:
    return recorder.draw(sys.modules[module + ".panels"].MOTIONCLIP_PT_main, bpy.context)


def session(out: dict, zip_path: str, config_path: str) -> None:
    config = json.loads(open(config_path, encoding="utf-8").read())
    module = blender_common.install(zip_path)
    out["module"] = module
    setup_ui = sys.modules[module + ".setup_ui"]
    backend = sys.modules[module + ".backend"]
    connection = sys.modules[module + ".connection"]
    p = bpy.context.preferences.addons[module].preferences
    p.backend_url = config["url"]
    env = setup_ui.env_dir()
    out["env"], out["log"] = str(env), str(setup_ui.log_path())
    out["defaults"] = {"mode": p.backend_mode, "torch_variant": p.torch_variant, "python_path": p.python_path}
    out["panel_no_backend"] = panel(module)

    # A source without the packages: the set-up stops at the PyTorch step with pip's own words.
    p.find_links, p.no_index = config["broken_links"], True
    out["broken"] = press("setup_backend")
    out["broken_history"] = [h["step"] for h in setup_ui.last_progress[0].history]
    out["broken_open_log"] = press("open_log", which="SETUP")
    text = bpy.data.texts.get("motionclip setup.log")
    out["broken_log_text"] = text.as_string() if text else None
    out["panel_after_failure"] = panel(module)
    out["remove_after_failure"] = press("remove_backend_env")
    out["env_exists_after_remove"] = env.exists()

    for key, value in config["prefs"].items():
        setattr(p, key, value)
    t0 = time.monotonic()
    out["setup"] = press("setup_backend")
    t_setup = time.monotonic() - t0
    out["history"] = setup_ui.last_progress[0].history
    out["ready"] = setup_ui.envsetup.is_ready(env)
    out["backend_running"] = backend.running()
    out["backend_args"] = list(backend._process.args) if backend._process else None
    out["connection"] = {"ok": connection.state.ok, "url": connection.state.url, "text": connection.state.text}
    out["panel_ready"] = panel(module)

    s = bpy.context.scene.motionclip
    s.prompt, s.length_mode, s.seconds = "a person walks forward", "SECONDS", 2.0
    out["generate"] = press("generate")
    t_first = time.monotonic() - t0
    arm = bpy.context.active_object
    out["armature"] = {"name": arm.name, "type": arm.type, "location": list(arm.location),
                       "action": arm.animation_data.action.name if arm.animation_data else None}
    out["times"] = {"setup_s": t_setup, "to_first_motion_s": t_first}
    py = setup_ui.envsetup.env_python(env)
    where = subprocess.run([str(py), "-c", "import motionclip.core.cli as c, sys; print(c.__file__); "
                            "print(sys.prefix)"], capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")})
    out["installed_at"] = where.stdout.split()
    out["env_mb"] = setup_ui.envsetup.size_mb(env)
    out["open_log"] = press("open_log", which="SETUP")
    text = bpy.data.texts.get("motionclip setup.log")
    out["log_text_tail"] = text.as_string()[-4000:] if text else None
    out["log_lines"] = len(text.as_string().splitlines()) if text else 0

    # As after a restart of Blender: set up, not running; the panel offers Start Backend, which
    # starts it from the environment again.
    backend.stop()
    connection.check(sys.modules[module + ".ui"].make_client(bpy.context), wait=True)
    out["panel_stopped"] = panel(module)
    out["restart"] = press("start_backend")
    out["restart_args"] = list(backend._process.args) if backend._process else None
    out["restart_running"] = backend.running()
    bpy.ops.preferences.addon_disable(module=module)
    out["running_after_disable"] = backend.running()


if __name__ == "__main__":
    blender_common.run_session(session)
