"""What the Blender session scripts share: their arguments, installing the built add-on, pressing
its buttons, the 3D View's regions and writing what they saw as JSON. A script imports it after
`sys.path.insert(0, <this folder>)`. Standard library + bpy only.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Callable

import bpy


def script_args() -> list[str]:
    """The script's own arguments: those after `--` under the Blender binary, all of them under the bpy module."""
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


def install(zip_path: str) -> str:
    """Install and enable the zip (an extension on Blender 4.2+, a legacy add-on before); its module name."""
    if bpy.app.version >= (4, 2, 0):
        res = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
        assert "FINISHED" in res, res
        return "bl_ext.user_default.motionclip_blender"
    res = bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
    assert "FINISHED" in res, res
    res = bpy.ops.preferences.addon_enable(module="motionclip_blender")
    assert "FINISHED" in res, res
    return "motionclip_blender"


def press(op: str, extra: tuple[str, ...] = (), **kw) -> dict:
    """Press a button as a script does: what it returned or raised, and the job's status and error (and
    the `extra` fields of the job state) after it."""
    out: dict = {"raised": None}
    try:
        out["result"] = sorted(getattr(bpy.ops.motionclip, op)("EXEC_DEFAULT", **kw))
    except Exception as exc:  # an ERROR report reaches a script as RuntimeError
        out["raised"] = str(exc)
    st = bpy.context.window_manager.motionclip_job
    out.update({name: getattr(st, name) for name in ("status", "error") + tuple(extra)})
    return out


def run_session(session: Callable[..., None]) -> None:
    """Call session(out, *args) with the script's arguments but the last, the JSON file `out` is written
    to (with the traceback under "exception" if the session raised); exit 1 if it did, else 0."""
    *args, out_path = script_args()
    out: dict = {"blender": bpy.app.version_string}
    try:
        session(out, *args)
    except Exception:
        out["exception"] = traceback.format_exc()
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    sys.exit(1 if "exception" in out else 0)


def write_state(folder: str, name: str, data: dict) -> None:
    """Write folder/name as JSON in one step (a caller polling for it never reads half a file)."""
    tmp = os.path.join(folder, name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, os.path.join(folder, name))


def view3d():
    """The first window, its largest 3D View, and that view's main and sidebar regions."""
    win = bpy.context.window_manager.windows[0]
    area = max((a for a in win.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    regions = {r.type: r for r in area.regions}
    return win, area, regions["WINDOW"], regions["UI"]
