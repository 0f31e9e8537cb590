#!/usr/bin/env python3
"""Build the installable Blender add-on: dist/motionclip_blender-<version>.zip.

One zip for both kinds of Blender: a single top-level folder ``motionclip_blender/`` holding
``blender_manifest.toml`` (Blender 4.2+ installs it as an extension) and ``__init__.py`` with
``bl_info`` (older Blender installs it as a legacy add-on). Inside:

    motionclip_blender/            the add-on (blender_addon/*.py, the manifest)
    motionclip_blender/protocol.py the backend's wire protocol, core/protocol.py, copied as is
    motionclip_blender/shared_scene.py  the scene set-up both headless Blender pipelines share,
                                   render/shared_scene.py, copied as is
    motionclip_blender/backend/    the backend's source (core/, train/, render/, pyproject.toml,
                                   README.md): "Install Backend" pip-installs it into a Python
                                   the user chooses, "Start Backend" runs it

The file list is ``CONTENTS`` below, and nowhere else. Standard library only.

    python build_addon.py [--out dist]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
PACKAGE = "motionclip_blender"  # the folder in the zip, the legacy module name and the extension id

# (path in the repository, path inside PACKAGE/ in the zip); folders are copied recursively.
CONTENTS: tuple[tuple[str, str], ...] = (
    ("blender_addon/__init__.py", "__init__.py"),
    ("blender_addon/blender_manifest.toml", "blender_manifest.toml"),
    ("blender_addon/backend.py", "backend.py"),
    ("blender_addon/batch.py", "batch.py"),
    ("blender_addon/body.py", "body.py"),
    ("blender_addon/client.py", "client.py"),
    ("blender_addon/jobs.py", "jobs.py"),
    ("blender_addon/protocol_loader.py", "protocol_loader.py"),
    ("blender_addon/rig.py", "rig.py"),
    ("blender_addon/scene.py", "scene.py"),
    ("blender_addon/ui.py", "ui.py"),
    ("core/protocol.py", "protocol.py"),
    ("render/shared_scene.py", "shared_scene.py"),
    ("core", "backend/core"),
    ("train", "backend/train"),
    ("render", "backend/render"),
    ("pyproject.toml", "backend/pyproject.toml"),
    ("README.md", "backend/README.md"),
)
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


class BuildError(Exception):
    pass


def versions() -> dict[str, str]:
    """The version as pyproject.toml, the manifest and bl_info state it (they must agree)."""
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    manifest = (REPO / "blender_addon" / "blender_manifest.toml").read_text(encoding="utf-8")
    init = (REPO / "blender_addon" / "__init__.py").read_text(encoding="utf-8")
    found = {}
    m = re.search(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', pyproject, re.M | re.S)
    found["pyproject.toml"] = m.group(1) if m else "?"
    m = re.search(r'^version\s*=\s*"([^"]+)"', manifest, re.M)
    found["blender_manifest.toml"] = m.group(1) if m else "?"
    for node in ast.walk(ast.parse(init)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "bl_info" for t in node.targets):
            info = ast.literal_eval(node.value)
            found["bl_info"] = ".".join(str(v) for v in info["version"])
    return found


def files() -> list[tuple[Path, str]]:
    """(source file, name in the zip) for everything the zip holds."""
    out = []
    for src, dst in CONTENTS:
        path = REPO / src
        if not path.exists():
            raise BuildError(f"{src}: listed in build_addon.CONTENTS but missing from {REPO}")
        if path.is_file():
            out.append((path, f"{PACKAGE}/{dst}"))
            continue
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(path)
            if f.is_file() and not SKIP_DIRS.intersection(rel.parts) and f.suffix not in SKIP_SUFFIXES:
                out.append((f, f"{PACKAGE}/{dst}/{rel.as_posix()}"))
    return out


def build(out_dir: Path = REPO / "dist") -> Path:
    found = versions()
    if len(set(found.values())) != 1:
        raise BuildError("the versions disagree: " + ", ".join(f"{k} {v}" for k, v in found.items())
                         + "; set the same version in all three")
    version = found["pyproject.toml"]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}-{version}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for src, name in files():
            zf.write(src, name)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the Blender add-on zip (extension for Blender 4.2+, "
                                             "legacy add-on for older Blender) with the bundled backend.")
    ap.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    args = ap.parse_args(argv)
    try:
        path = build(args.out)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(path) as zf:
        n, size = len(zf.namelist()), sum(i.file_size for i in zf.infolist())
    print(f"{path}  ({n} files, {size / 1e6:.1f} MB unpacked, {path.stat().st_size / 1e6:.1f} MB zipped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
