"""motionclip for Blender: text to SMPL skeleton animation from a local motionclip backend.

Installs as a Blender 4.2+ extension (blender_manifest.toml) and as a legacy add-on (bl_info)
on older Blender. Talks to the backend over HTTP with the standard library only; the backend
(torch and the model) runs in its own process.
"""

bl_info = {
    "name": "motionclip: Text to Motion",
    "author": "motionclip authors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "3D View > Sidebar > MotionCLIP",
    "description": "Generate, blend, edit and recognise SMPL skeleton animation from text with a local backend",
    "category": "Animation",
}

if "ui" in locals():  # script reload (F8 / Reload Scripts)
    import importlib

    for _m in (protocol_loader, client, rig, body, jobs, envsetup, backend, connection, setup_ui, ui,  # noqa: F821
               panels, preferences):  # noqa: F821
        importlib.reload(_m)
else:
    from . import backend, body, client, connection, envsetup, jobs, protocol_loader, rig, setup_ui, ui  # noqa: F401
    from . import panels, preferences  # noqa: F401  (after ui: they draw with ui's helpers)


def register():
    ui.register()


def unregister():
    ui.unregister()
