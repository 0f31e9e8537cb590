"""Background work without freezing Blender: the network call runs on a worker thread, and its
result is applied on the main thread from a ``bpy.app.timers`` callback (bpy is never touched
from the worker). When Blender runs in background (``blender -b``, the bpy module) there is no
event loop to wait on, so the work runs synchronously.

One job at a time; its state is mirrored into ``WindowManager.motionclip_job`` (not saved into
.blend files) for the panel to draw.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable

import bpy

POLL_SECONDS = 0.1


class Job:
    def __init__(self, label: str, work: Callable[[], Any], apply: Callable[[Any], str | None],
                 progress: Any = None, on_cancel: Callable[[], None] | None = None):
        self.label, self.work, self.apply = label, work, apply
        self.progress, self.on_cancel = progress, on_cancel  # progress: .line() and .fraction()
        self.started = time.monotonic()
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.cancelled = False
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # reported on the main thread
            self.error = exc
        finally:
            self.done.set()


_current: Job | None = None


def state(context=None):
    return (context or bpy.context).window_manager.motionclip_job


def busy() -> bool:
    return _current is not None and not _current.done.is_set() and not _current.cancelled


def redraw() -> None:
    # Data changed from a timer sends no notifier: ask every editor (viewport, outliner,
    # timeline, properties, the panel itself) to redraw.
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            area.tag_redraw()


def _finish(job: Job) -> bool:
    """Apply a finished job on the main thread; True when it succeeded."""
    st = state()
    st.running = False
    st.detail = ""
    elapsed = time.monotonic() - job.started
    if job.error is not None:
        show_error(st, message(job.error), f"{job.label}: failed after {elapsed:.1f} s")
        redraw()
        return False
    try:
        note = job.apply(job.result)
    except Exception as exc:
        show_error(st, message(exc), f"{job.label}: failed")
        traceback.print_exc()
        redraw()
        return False
    st.error = ""
    st.status = note or f"{job.label}: done in {elapsed:.1f} s"
    redraw()
    return True


# Errors whose message is written for a person (what went wrong and what to do): shown as is.
# Anything else is unexpected and keeps its type name.
READABLE = ("BackendError", "BackendProcessError", "SetupError", "RigError", "ProtocolError", "ValueError")


def message(exc: BaseException | str) -> str:
    if isinstance(exc, str):
        return exc
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in READABLE else f"{type(exc).__name__}: {text}"


def show_error(st, text: str, status: str) -> None:
    """An error replaces what the panel said before: the status line and the backend's
    "Connected: ..." line (which may no longer hold) go, the whole message stays."""
    st.error = text
    st.status = status
    st.server = ""


def _tick() -> float | None:
    global _current
    job = _current
    if job is None:
        return None
    if job.cancelled:
        _current = None
        return None
    if not job.done.is_set():
        show_progress(state(), job)
        redraw()
        return POLL_SECONDS
    _current = None
    _finish(job)
    return None


def show_progress(st, job: Job) -> None:
    elapsed = f"{time.monotonic() - job.started:.0f} s" if job.progress is not None else \
        f"{time.monotonic() - job.started:.1f} s"
    st.status = f"{job.label}... {elapsed}"
    st.detail = job.progress.line() if job.progress is not None else ""
    st.fraction = job.progress.fraction() if job.progress is not None else 0.0
    st.percent = 100.0 * st.fraction


def current() -> Job | None:
    return _current if busy() else None


def start(label: str, work: Callable[[], Any], apply: Callable[[Any], str | None], progress: Any = None,
          on_cancel: Callable[[], None] | None = None) -> bool | None:
    """Run ``work`` (no bpy inside!) and then ``apply(result)`` on the main thread; ``progress``
    (an object with ``line()`` and ``fraction()``, written by the worker) is shown while it runs,
    ``on_cancel`` stops the work when Cancel is pressed.

    In background mode both run now and the return value says whether it succeeded; otherwise
    the worker starts and None is returned (the panel shows progress and the outcome)."""
    global _current
    if busy():
        raise RuntimeError(f"{_current.label} is still running; wait or press Cancel")
    st = state()
    st.error = ""
    st.status, st.detail, st.fraction = f"{label}...", "", 0.0
    job = Job(label, work, apply, progress, on_cancel)
    if bpy.app.background:
        job.run()
        return _finish(job)
    st.running = True
    _current = job
    job.thread = threading.Thread(target=job.run, name=f"motionclip: {label}", daemon=True)
    job.thread.start()
    bpy.app.timers.register(_tick, first_interval=POLL_SECONDS)
    return None


def cancel() -> bool:
    """Forget the running job: its answer, when it comes, is dropped and nothing changes."""
    global _current
    job = _current
    if job is None or job.done.is_set():
        return False
    job.cancelled = True
    _current = None
    if job.on_cancel is not None:
        job.on_cancel()
    st = state()
    st.running = False
    st.status, st.detail = f"{job.label}: cancelled", ""
    redraw()
    return True


def shutdown() -> None:
    """Called on unregister: drop any job and its timer."""
    global _current
    if _current is not None:
        _current.cancelled = True
        if _current.on_cancel is not None:
            _current.on_cancel()
    _current = None
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
