"""A stand-in for Blender's UILayout that records what a panel draws, for the Blender session
scripts: each label (text, icon, inside an alert box), operator, property, menu and progress bar,
in order. Standard library only."""

from __future__ import annotations

import types


class Recorder:
    def __init__(self, log: list, alert: bool = False):
        self.log, self.alert = log, alert
        self.scale_y = self.scale_x = 1.0
        self.enabled = self.active = True

    def column(self, align=False):
        return Recorder(self.log, self.alert)

    row = column

    def box(self):
        return Recorder(self.log, self.alert)

    def __setattr__(self, name, value):
        if name == "alert" and value and hasattr(self, "log"):
            object.__setattr__(self, name, True)
            return
        object.__setattr__(self, name, value)

    def label(self, text="", icon="NONE"):
        self.log.append([text, icon, bool(self.alert)])

    def operator(self, idname, text="", icon="NONE"):
        self.log.append(["operator:" + idname, text, bool(self.alert)])
        return types.SimpleNamespace()

    def prop(self, data, name, text=None, **kw):
        self.log.append(["prop:" + name, text, bool(self.alert)])

    def menu(self, idname, text="", icon="NONE"):
        self.log.append(["menu:" + idname, icon, bool(self.alert)])

    def progress(self, factor=0.0, type="BAR", text=""):
        self.log.append(["progress", f"{factor:.3f}", bool(self.alert)])

    def separator(self, **kw):
        pass


class _Self:
    """The panel (or preferences) ``self``: its layout, and ``data``'s attributes."""

    def __init__(self, layout, data):
        object.__setattr__(self, "layout", layout)
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name):
        return getattr(self._data, name)


def draw(panel_cls, context, data=None) -> list:
    """What ``panel_cls.draw`` draws in ``context``; ``data`` stands behind ``self`` (preferences)."""
    log: list = []
    panel_cls.draw(_Self(Recorder(log), data), context)
    return log


def texts(log: list) -> str:
    return " ".join(entry[0] for entry in log)
