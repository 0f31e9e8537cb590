"""Text in the sidebar: whole messages wrapped to the region's width, the job's status and the live
connection line."""

from __future__ import annotations

import textwrap

from . import connection, jobs, setup_ui
from .client import DEFAULT_URL
from .ui import prefs


def wrap(text: str, width: int = 40) -> list[str]:
    """The whole of ``text`` in lines of at most ``width`` characters (a panel label does not wrap
    by itself and cuts what does not fit); a word longer than a line (a path, a URL) is split."""
    lines = []
    for para in text.splitlines():
        lines += textwrap.wrap(para, max(1, width), break_long_words=True, break_on_hyphens=False) or [""]
    return lines


# A label's characters average about 6.5 px at UI scale 1 (Blender's 11 pt UI font); the sidebar's
# tab strip, the panel's margins, a box's padding and the line's icon take about 70 px.
CHAR_PX, LABEL_MARGIN_PX = 6.5, 70


def text_columns(context) -> int:
    """How many characters of label text fit on a line of the region being drawn."""
    width = getattr(getattr(context, "region", None), "width", 0) or 0
    if width <= 1:
        return 40
    scale = float(getattr(getattr(context.preferences, "system", None), "ui_scale", 1.0) or 1.0)
    return max(16, int((width - LABEL_MARGIN_PX * scale) / (CHAR_PX * scale)))


def _lines(layout, text: str, width: int, icon: str) -> None:
    for i, line in enumerate(wrap(text, width)):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


def _draw_status(layout, context, server: bool = True):
    """The job's progress or outcome. An error is shown whole, wrapped to the region's width, and
    without the backend's "Connected" line under it (it may be the reason it failed); ``server``:
    with that line when there is no error (the sidebar has the live connection line instead)."""
    st = jobs.state(context)
    width = text_columns(context)
    col = layout.column(align=True)
    if st.running:
        setup_ui.draw_progress(col, st, width, wrap)
    elif st.status:
        _lines(col, st.status, width, "INFO")
    if st.error:
        box = col.box()
        box.alert = True
        _lines(box.column(align=True), st.error, width, "ERROR")
    elif st.server and server:
        _lines(col, st.server, width, "LINKED")


def _draw_connection(layout, context) -> None:
    """The live indicator: what the last /health check said about Backend URL."""
    p = prefs(context)
    url = (p.backend_url if p else DEFAULT_URL).strip().rstrip("/")
    st = connection.state
    if st.url != url or st.ok is None:
        text, icon = f"Checking {url}...", "SORTTIME"
    elif st.ok:
        text, icon = st.text, "CHECKMARK"
    else:  # the reason's first sentence (what to do is in the status line when a button fails)
        text, icon = f"Not connected: {st.text.split('. ')[0]}", "CANCEL"
    _lines(layout, text, text_columns(context), icon)
