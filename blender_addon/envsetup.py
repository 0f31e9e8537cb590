"""Setting the backend up in one click: a virtual environment made with Blender's own Python
(it ships ``venv`` and ``ensurepip``), pip-installing PyTorch and the backend's wheel bundled in
the add-on into it, with every line pip prints kept in a log and counted for the panel's
progress. No bpy here: :class:`Setup` runs on the add-on's worker thread.

Steps: create the environment, upgrade pip, install PyTorch (the CPU build by default, from
PyTorch's own index), install the backend (its wheel with the ``serve`` extras: FastAPI, the
text encoders...). Starting the backend and connecting to it are the last two steps, run by the
add-on (ui/setup_ui) after these.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ADDON_DIR = Path(__file__).resolve().parent
BUNDLE_DIR = ADDON_DIR / "backend"
STEPS = ("Create environment", "Upgrade pip", "Install PyTorch", "Install backend", "Start backend", "Connect")
# How much of the whole each step is, for the progress bar (PyTorch is most of the download).
WEIGHTS = (0.08, 0.04, 0.45, 0.33, 0.07, 0.03)
TORCH_INDEX = {"CPU": "https://download.pytorch.org/whl/cpu", "CUDA": "https://download.pytorch.org/whl/cu126",
               "DEFAULT": ""}
MARKER = "motionclip-setup.json"  # written in the environment when the backend is installed
PTH_NAME = "motionclip-extra-site-packages.pth"


class SetupError(Exception):
    pass


@dataclass
class Options:
    """The advanced preferences that say where packages come from."""
    torch_variant: str = "CPU"      # CPU, CUDA or DEFAULT (the package index's own torch)
    torch_index: str = ""           # overrides TORCH_INDEX[torch_variant] (URLs separated by spaces)
    # What pip installs in the PyTorch step: torch with torchvision (the text encoders' CLIP needs it),
    # both from the same index so that they match (e.g. "torch==2.5.1 torchvision==0.20.1").
    torch_requirement: str = "torch torchvision"
    index_url: str = ""             # pip's index for everything else: URLs separated by spaces (empty: PyPI)
    find_links: str = ""            # pip --find-links (a folder of wheels or a URL)
    no_index: bool = False          # pip --no-index (only find_links)
    extra_site_packages: str = ""   # folders (os.pathsep-separated) the environment also sees


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def base_python() -> str:
    """Blender's own Python interpreter. sys.executable is Blender's bundled python on the official
    builds; a Blender built on the system's Python (Debian) reports a PATH lookup there, so the
    interpreter under sys.prefix of the running version comes first."""
    v = sys.version_info
    names = (["python.exe", "bin/python.exe"] if sys.platform == "win32"
             else [f"bin/python{v.major}.{v.minor}", f"bin/python{v.major}", "bin/python"])
    for name in names:
        cand = Path(sys.prefix) / name
        if cand.is_file():
            return str(cand)
    if Path(sys.executable).name.lower().startswith("python") and Path(sys.executable).is_file():
        return sys.executable
    raise SetupError(f"Blender's Python was not found under {sys.prefix}; in the add-on's preferences choose "
                     "Backend > This Python and point it to a Python 3.10+ with the backend installed")


def bundle() -> dict:
    """What the add-on carries (backend/bundle.json, written by build_addon.py), or, in a source
    checkout, the checkout itself."""
    try:
        info = json.loads((BUNDLE_DIR / "bundle.json").read_text(encoding="utf-8"))
        info["spec"] = str(BUNDLE_DIR / info["wheel"])
        return info
    except (OSError, ValueError, KeyError):
        pass
    repo = ADDON_DIR.parent
    if (repo / "pyproject.toml").is_file() and (repo / "core" / "protocol.py").is_file():
        return {"spec": str(repo), "model": (repo / "core/assets/model/config.json").is_file(), "wheel": None}
    raise SetupError(f"no bundled backend in {BUNDLE_DIR}: install the add-on from the zip build_addon.py makes")


def is_ready(env: Path) -> bool:
    return env_python(env).is_file() and (env / MARKER).is_file()


def pip_source_args(opts: Options, torch: bool = False) -> list[str]:
    """pip's options that say where packages come from: the first index URL is --index-url, the
    others --extra-index-url; --no-index leaves only Find Links."""
    args = []
    urls = (opts.torch_index.strip() or TORCH_INDEX.get(opts.torch_variant, "")) if torch else ""
    urls = (urls or opts.index_url).split()
    if opts.no_index:
        args.append("--no-index")
    elif urls:
        args += ["--index-url", urls[0]]
        for url in urls[1:]:
            args += ["--extra-index-url", url]
    if opts.find_links.strip():
        args += ["--find-links", os.path.expanduser(opts.find_links.strip())]
    return args


class PipCounter:
    """Counts what pip says it does: packages collected, already there, downloading, installing."""

    def __init__(self):
        self.collected = self.satisfied = self.to_install = self.installed = 0
        self.current = ""

    def feed(self, line: str) -> None:
        line = line.strip()
        if line.startswith("Collecting ") or line.startswith("Processing "):
            self.collected += 1
            self.current = line.split()[1].rsplit("/", 1)[-1]
        elif line.startswith("Requirement already satisfied:"):
            self.satisfied += 1
        elif line.startswith("Downloading ") or line.startswith("Using cached "):
            self.current = line.split(" ", 1)[1].rsplit("/", 1)[-1]
        elif line.startswith("Installing collected packages:"):
            self.to_install = len([p for p in line.split(":", 1)[1].split(",") if p.strip()])
        elif line.startswith("Successfully installed"):
            self.installed = len(line.split()) - 2

    def fraction(self) -> float:
        if self.installed:
            return 1.0
        if self.to_install:
            return 0.85
        return 0.7 * (1.0 - 1.0 / (1.0 + (self.collected + self.satisfied) / 8.0))

    def text(self) -> str:
        parts = [f"{self.collected} collected", f"{self.satisfied} already there"]
        if self.installed:
            parts.append(f"{self.installed} installed")
        elif self.to_install:
            parts.append(f"installing {self.to_install}")
        elif self.current:
            parts.append(self.current)
        return ", ".join(parts)


class Progress:
    """Shared between the worker (writes) and the panel's timer (reads plain values)."""

    def __init__(self):
        self.step, self.detail, self.counter = 0, "", None
        self.history: list[dict] = []   # one entry a step reached: its name, when, pip's counts at its end

    def enter(self, step: int, detail: str = "") -> None:
        self.close()
        self.step, self.detail, self.counter = step, detail, None
        self.history.append({"step": STEPS[step], "t": time.monotonic()})

    def close(self) -> None:
        """Keep the step's pip counts in its history entry."""
        if self.history and self.counter is not None:
            c = self.counter
            self.history[-1].update(collected=c.collected, satisfied=c.satisfied, to_install=c.to_install,
                                    installed=c.installed)

    def fraction(self) -> float:
        inner = self.counter.fraction() if self.counter is not None else 0.0
        return min(1.0, sum(WEIGHTS[:self.step]) + WEIGHTS[min(self.step, len(WEIGHTS) - 1)] * inner)

    def line(self) -> str:
        detail = self.counter.text() if self.counter is not None else self.detail
        head = f"Step {self.step + 1}/{len(STEPS)}: {STEPS[min(self.step, len(STEPS) - 1)]}"
        return f"{head}: {detail}" if detail else head


# What to do when a step fails (the message names the step and pip's own ERROR lines first).
HINTS = {
    0: "Blender's Python could not make a virtual environment; on Debian / Ubuntu install python3-venv "
       "(sudo apt install python3-venv), or choose Backend > This Python in the add-on's preferences",
    1: "check the network connection (or the Package Index / Find Links preferences) and press Set Up Backend again",
    2: "check the network connection, or the PyTorch Index / Find Links preferences, and press Set Up Backend again",
    3: "check the network connection, or the Package Index / Find Links preferences, and press Set Up Backend again",
}


class Setup:
    """Steps 1-4 into ``env``; ``cancel()`` from another thread stops the running command."""

    def __init__(self, env: Path, log: Path, opts: Options, progress: Progress | None = None):
        self.env, self.log, self.opts = Path(env), Path(log), opts
        self.progress = progress or Progress()
        self.cancelled = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()

    def run(self) -> Path:
        """Make the environment and install the backend; returns the environment's Python."""
        spec = bundle()
        self._extra_dirs()  # before anything is made
        self.env.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w", encoding="utf-8") as log:
            log.write(f"motionclip backend set-up, {time.strftime('%Y-%m-%d %H:%M:%S')}\nenvironment: {self.env}\n")
            self._log = log
            py = env_python(self.env)
            self._step(0, "")
            if not self._runs(py):
                self._run(0, [base_python(), "-m", "venv", "--clear", str(self.env)])
            self._link_site_packages()
            pip = [str(py), "-m", "pip", "install", "--progress-bar", "off", "--no-input"]
            self._step(1, "")
            self._run(1, pip + ["--upgrade", "pip"] + pip_source_args(self.opts))
            self._step(2, "")
            torch = self.opts.torch_requirement.split() or ["torch", "torchvision"]
            self._run(2, pip + torch + pip_source_args(self.opts, torch=True))
            self._step(3, "")
            self._run(3, pip + [spec["spec"] + "[serve]"] + pip_source_args(self.opts))
            self.progress.close()
            (self.env / MARKER).write_text(json.dumps({"backend": spec.get("wheel") or spec["spec"],
                                                       "model": bool(spec.get("model")),
                                                       "when": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
            log.write("backend installed\n")
        return py

    def _step(self, i: int, detail: str) -> None:
        if self.cancelled.is_set():
            raise SetupError("the set-up was cancelled; press Set Up Backend to go on where it stopped")
        self.progress.enter(i, detail)
        self._log.write(f"\n== Step {i + 1}/{len(STEPS)}: {STEPS[i]}\n")
        self._log.flush()

    def _runs(self, py: Path) -> bool:
        if not py.is_file():
            return False
        return subprocess.run([str(py), "-c", "import sys"], capture_output=True, env=_clean_env(),
                              **_no_window()).returncode == 0

    def _extra_dirs(self) -> list[str]:
        dirs = [os.path.expanduser(d.strip()) for d in self.opts.extra_site_packages.split(os.pathsep) if d.strip()]
        missing = [d for d in dirs if not Path(d).is_dir()]
        if missing:
            raise SetupError(f"Extra Site-Packages: no such folder {missing[0]}; fix it in the add-on's preferences "
                             "(Backend > Advanced) or clear it")
        return dirs

    def _link_site_packages(self) -> None:
        """The advanced "extra site-packages": a .pth file in the environment that lists them."""
        dirs = self._extra_dirs()
        ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
        out = subprocess.run([str(env_python(self.env)), "-c", ask],
                             capture_output=True, text=True, env=_clean_env(), **_no_window())
        pth = Path(out.stdout.strip()) / PTH_NAME
        if dirs:
            pth.write_text("\n".join(dirs) + "\n")
        elif pth.exists():
            pth.unlink()

    def _run(self, step: int, cmd: list[str]) -> None:
        self._log.write("$ " + " ".join(cmd) + "\n")
        self._log.flush()
        counter = PipCounter() if "pip" in cmd else None
        self.progress.counter = counter
        errors: list[str] = []
        tail: list[str] = []
        with self._lock:
            if self.cancelled.is_set():
                raise SetupError("the set-up was cancelled; press Set Up Backend to go on where it stopped")
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          encoding="utf-8", errors="replace", env=_clean_env(),
                                          stdin=subprocess.DEVNULL, **_no_window())
        for line in self._proc.stdout:
            self._log.write(line)
            self._log.flush()
            if counter is not None:
                counter.feed(line)
            if line.startswith("ERROR:") or "Error:" in line:
                errors.append(line.strip())
            tail = (tail + [line.strip()])[-3:]
        code = self._proc.wait()
        if self.cancelled.is_set():
            raise SetupError("the set-up was cancelled; press Set Up Backend to go on where it stopped")
        if code != 0:
            said = " | ".join(errors[-3:] or [t for t in tail if t])
            raise SetupError(f"{STEPS[step]} failed (exit {code}): {said}. {HINTS[step]}. The whole output is in "
                             f"{self.log} (Open Setup Log)")


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                                                            "PYTHONNOUSERSITE")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    return env


def _no_window() -> dict:
    return {"creationflags": subprocess.CREATE_NO_WINDOW} if sys.platform == "win32" else {}


def remove(env: Path) -> bool:
    """Delete the environment (the backend must be stopped first)."""
    import shutil

    if not env.exists():
        return False
    shutil.rmtree(env)
    return True


def size_mb(path: Path) -> float:
    total = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total / 1e6

