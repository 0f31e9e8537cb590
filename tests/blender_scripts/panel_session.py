"""What the sidebar panel shows and offers, in Blender, against a real server; dumps it as JSON.

    .venv-blender/bin/python panel_session.py ADDON.zip SERVER_URL DEAD_URL OUT.json      (bpy module)
    blender -b --python panel_session.py -- ADDON.zip SERVER_URL DEAD_URL OUT.json        (Blender binary)

The live connection line (a real /health check on its thread) for a server and for nothing; the
panel with a backend (no set-up box) and while a job runs (its progress and one Cancel, no
Generate); a long prompt shown whole; recent prompts after two Generates and the prompt menu's
examples; Use Prompt; the new armature's place (the 3D cursor, moved out of the factory cube);
the model's limits panel; the preferences (licences, one Backend URL); old preferences with a Port
migrated; and the set-up's refusals that need no environment (a remote URL, a missing Extra
Site-Packages folder, no log yet, Start Backend before the set-up). Standard library + bpy only.
"""

from __future__ import annotations

import os
import sys

import bpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_common  # noqa: E402
import recorder  # noqa: E402


def session(out: dict, zip_path: str, url: str, dead_url: str) -> None:
    module = blender_common.install(zip_path)
    m = {name: sys.modules[f"{module}.{name}"] for name in ("ui", "panels", "connection", "jobs", "setup_ui",
                                                            "preferences")}
    ui, panels, connection, jobs = m["ui"], m["panels"], m["connection"], m["jobs"]
    p = bpy.context.preferences.addons[module].preferences
    out["pref_names"] = sorted(k for k in type(p).__annotations__)
    main_panel = panels.MOTIONCLIP_PT_main

    # The live connection line, for nothing listening and for the server.
    p.backend_url, p.backend_mode = dead_url, "URL"
    connection.check(ui.make_client(bpy.context), wait=True)
    out["dead"] = recorder.draw(main_panel, bpy.context)
    p.backend_mode = "MANAGED"  # and nothing set up: the set-up box
    out["dead_managed"] = recorder.draw(main_panel, bpy.context)
    p.backend_url = url
    connection.check(ui.make_client(bpy.context), wait=True)
    out["live"] = recorder.draw(main_panel, bpy.context)

    # Two Generates: recent prompts, most recent first; the new armature's place.
    s = bpy.context.scene.motionclip
    s.length_mode, s.frames, s.target = "FRAMES", 24, "NEW"
    cursor = bpy.context.scene.cursor.location
    out["cursor"] = list(cursor)
    out["cube"] = "Cube" in bpy.data.objects
    for prompt in ("a person jumps", "a person waves"):
        s.prompt = prompt
        out.setdefault("generate", []).append(blender_common.press("generate"))
        out.setdefault("locations", []).append(list(bpy.context.active_object.location))
    bpy.context.scene.cursor.location = (-4.0, 3.0, 0.0)  # open floor: exactly at the cursor
    s.prompt = "a person jumps"
    out["generate"].append(blender_common.press("generate"))
    out["locations"].append(list(bpy.context.active_object.location))
    out["recent"] = ui.recent_prompts()
    out["menu"] = recorder.draw(panels.MOTIONCLIP_MT_prompts, bpy.context)
    out["use_prompt"] = blender_common.press("use_prompt", prompt=panels.EXAMPLES[2])
    out["prompt_after_use"] = s.prompt
    out["use_prompt_empty"] = blender_common.press("use_prompt", prompt="  ")

    # A long prompt is shown whole under its field.
    s.prompt = "a person walks forward slowly, stops, looks to the left, then waves with the right hand twice"
    out["long_prompt"] = recorder.draw(main_panel, bpy.context)
    out["long_prompt_text"] = s.prompt

    # While a job runs: its status, progress and one Cancel in place of Generate.
    job = jobs.Job("Generating", lambda: None, lambda r: None)
    jobs._current = job
    st = bpy.context.window_manager.motionclip_job
    st.running, st.status = True, "Generating... 1.2 s"
    out["running"] = recorder.draw(main_panel, bpy.context)
    out["running_prefs"] = recorder.draw(type(p), bpy.context, p)
    out["cancel"] = blender_common.press("cancel")
    out["after_cancel"] = {"busy": jobs.busy(), "running": st.running}

    out["model_notes"] = recorder.draw(panels.MOTIONCLIP_PT_model, bpy.context)
    out["prefs"] = recorder.draw(type(p), bpy.context, p)

    # Preferences saved by the version with a Port field.
    p.property_unset("backend_mode")  # never chosen, as in preferences saved before it existed
    p.python_path, p.port = "/usr/bin/python3", 9123
    out["migrate_python"] = [m["preferences"].migrate_prefs(p), p.backend_url, p.backend_mode, p.is_property_set("port")]
    p.python_path, p.backend_url, p.backend_mode, p.port = "", url, "MANAGED", 9124
    out["migrate_url"] = [m["preferences"].migrate_prefs(p), p.backend_url, p.backend_mode, p.is_property_set("port")]
    out["migrate_none"] = m["preferences"].migrate_prefs(p)

    # The set-up's refusals that come before any environment is made.
    out["start_before_setup"] = blender_common.press("start_backend")
    p.backend_url = "http://192.0.2.1:8765"
    out["setup_remote"] = blender_common.press("setup_backend")
    out["start_remote"] = blender_common.press("start_backend")
    p.backend_url = dead_url
    out_dir = os.path.dirname(blender_common.script_args()[-1])  # beside OUT.json
    p.extra_site_packages = os.path.join(out_dir, "no-such-site-packages")
    out["setup_missing_extra"] = blender_common.press("setup_backend")
    out["env_made"] = m["setup_ui"].env_dir().exists()
    p.extra_site_packages = ""
    out["log_before_setup"] = blender_common.press("open_log", which="SETUP")
    env = m["setup_ui"].env_dir()
    env.write_text("not a folder")  # something in the way that cannot be deleted as a folder
    out["remove_blocked"] = blender_common.press("remove_backend_env")
    env.unlink()
    out["remove_nothing"] = blender_common.press("remove_backend_env")
    bpy.ops.preferences.addon_disable(module=module)


if __name__ == "__main__":
    blender_common.run_session(session)
