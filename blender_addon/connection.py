"""The panel's live connection indicator: every few seconds a timer asks the backend's /health on
a thread of its own (at most one at a time, a short timeout) and the panel draws the last
answer. Blender never waits on it. Not used in background mode (no event loop there):
``check(client, wait=True)`` asks once, for scripts and tests.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import bpy

INTERVAL = 3.0      # seconds between checks
TIMEOUT = 2.0       # seconds one check may take


class _State:
    def __init__(self):
        self.url = ""            # the address the answer is about
        self.ok: bool | None = None   # None: not asked yet
        self.text = ""
        self.checked = 0.0       # time.monotonic() of the answer
        self.version = 0         # bumped on each change (the timer redraws then)
        self.thread: threading.Thread | None = None


state = _State()
_factory: Callable | None = None
_seen = [0]


def _ask(client) -> None:
    try:
        health = client.health(timeout=TIMEOUT)
        model = health.model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        ok, text = True, f"Connected: {client.url} (model {model}, {health.device})"
    except Exception as exc:  # any failure is "not connected", with the client's own message
        ok, text = False, str(exc) or type(exc).__name__
    if (client.url, ok, text) != (state.url, state.ok, state.text):
        state.version += 1
    state.url, state.ok, state.text, state.checked = client.url, ok, text, time.monotonic()


def check(client, wait: bool = False) -> None:
    """Ask /health on a thread (unless one is still asking); ``wait`` joins it."""
    if state.url != client.url:  # a new address: what was known is about another one
        state.url, state.ok, state.text = client.url, None, f"Checking {client.url}..."
        state.version += 1
    if state.thread is None or not state.thread.is_alive():
        state.thread = threading.Thread(target=_ask, args=(client,), name="motionclip: health", daemon=True)
        state.thread.start()
    if wait:
        state.thread.join(TIMEOUT + 5.0)


def connected(url: str) -> bool:
    return state.ok is True and state.url == url.strip().rstrip("/")


def _tick() -> float | None:
    if _factory is None:
        return None
    try:
        check(_factory())
    except Exception as exc:  # a URL that is not one: shown, checked again later
        if state.text != str(exc):
            state.url, state.ok, state.text = "", False, str(exc)
            state.version += 1
    if _seen[0] != state.version:
        _seen[0] = state.version
        for window in getattr(bpy.context.window_manager, "windows", []):
            for area in window.screen.areas:
                if area.type in ("VIEW_3D", "PREFERENCES"):
                    area.tag_redraw()
    return INTERVAL


def start(factory: Callable) -> None:
    """Check every INTERVAL seconds with ``factory()``'s client (made on the main thread)."""
    global _factory
    _factory = factory
    if not bpy.app.background and not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.5, persistent=True)


def stop() -> None:
    global _factory
    _factory = None
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
