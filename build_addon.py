#!/usr/bin/env python3
"""Build the installable Blender add-on: dist/motionclip_blender-<version>.zip.

One zip for both kinds of Blender: a single top-level folder ``motionclip_blender/`` holding
``blender_manifest.toml`` (Blender 4.2+ installs it as an extension) and ``__init__.py`` with
``bl_info`` (older Blender installs it as a legacy add-on). Inside:

    motionclip_blender/            the add-on (blender_addon/*.py, the manifest)
    motionclip_blender/protocol.py the backend's wire protocol, core/protocol.py, copied as is
    motionclip_blender/shared_scene.py  the scene set-up both headless Blender pipelines share,
                                   render/shared_scene.py, copied as is
    motionclip_blender/backend/    the backend as a wheel, motionclip-<version>-py3-none-any.whl
                                   (core/, train/, render/ as motionclip.core / .train / .render,
                                   written here from pyproject.toml), and bundle.json saying which
                                   wheel it is and whether it holds the built-in model: "Set up
                                   backend" pip-installs the wheel into a virtual environment

The file list is ``CONTENTS`` below, and nowhere else. Standard library only (Python 3.11+:
tomllib reads pyproject.toml). The add-on's code is GPL-3.0-or-later (it imports bpy); the
backend package is MIT; the built-in model (core/assets/model) is CC BY-NC 4.0 (its model
card says why), and ``--without-model`` leaves it out: the backend then needs a checkpoint.

    python build_addon.py [--out dist] [--without-model]
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import json
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
    ("blender_addon/LICENSE", "LICENSE"),
    ("blender_addon/backend.py", "backend.py"),
    ("blender_addon/batch.py", "batch.py"),
    ("blender_addon/body.py", "body.py"),
    ("blender_addon/client.py", "client.py"),
    ("blender_addon/jobs.py", "jobs.py"),
    ("blender_addon/protocol_loader.py", "protocol_loader.py"),
    ("blender_addon/rig.py", "rig.py"),
    ("blender_addon/scene.py", "scene.py"),
    ("blender_addon/ui.py", "ui.py"),
    ("blender_addon/connection.py", "connection.py"),
    ("blender_addon/envsetup.py", "envsetup.py"),
    ("blender_addon/setup_ui.py", "setup_ui.py"),
    ("blender_addon/panels.py", "panels.py"),
    ("blender_addon/preferences.py", "preferences.py"),
    ("blender_addon/backend_ops.py", "backend_ops.py"),
    ("blender_addon/drawing.py", "drawing.py"),
    ("core/protocol.py", "protocol.py"),
    ("render/shared_scene.py", "shared_scene.py"),
    ("core/assets/model/MODEL_CARD.md", "MODEL_CARD.md"),
)
# The backend's wheel: (folder in the repository, package in the wheel).
WHEEL_PACKAGES: tuple[tuple[str, str], ...] = (("core", "motionclip/core"), ("train", "motionclip/train"),
                                               ("render", "motionclip/render"))
MODEL_DIR = "core/assets/model"  # left out of the wheel by --without-model (its card stays in the add-on)
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


def files(with_model: bool = True) -> list[tuple[Path, str]]:
    """(source file, name in the zip) for everything the zip holds but the backend's wheel."""
    out = []
    for src, dst in CONTENTS:
        path = REPO / src
        if not with_model and path.is_relative_to(REPO / MODEL_DIR):
            continue
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


def _walk(path: Path):
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if f.is_file() and not SKIP_DIRS.intersection(rel.parts) and f.suffix not in SKIP_SUFFIXES:
            yield f, rel


def _requirement(req: str, extra: str | None) -> str:
    if extra is None:
        return req
    name, _, marker = req.partition(";")
    marker = f"({marker.strip()}) and extra == \"{extra}\"" if marker.strip() else f"extra == \"{extra}\""
    return f"{name.strip()}; {marker}"


def wheel_metadata() -> tuple[str, str, str]:
    """(version, METADATA, entry_points.txt) of the backend, from pyproject.toml."""
    try:
        import tomllib
    except ImportError:
        raise BuildError("build_addon.py needs Python 3.11 or later (tomllib reads pyproject.toml)") from None
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}",
             f"Summary: {project.get('description', '')}", f"Requires-Python: {project.get('requires-python', '>=3')}",
             f"License: {project.get('license', {}).get('text', '')}"]
    lines += [f"Requires-Dist: {_requirement(r, None)}" for r in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {_requirement(r, extra)}" for r in reqs]
    scripts = "".join(f"{k} = {v}\n" for k, v in project.get("scripts", {}).items())
    return project["version"], "\n".join(lines) + "\n", "[console_scripts]\n" + scripts


def build_wheel(with_model: bool = True) -> tuple[str, bytes]:
    """The backend as a pure-Python wheel (file name, bytes): pip installs it without building
    anything, so no build tools need downloading where the add-on sets the backend up."""
    version, metadata, entry_points = wheel_metadata()
    dist = f"motionclip-{version}.dist-info"
    members: list[tuple[str, bytes]] = []
    for src, pkg in WHEEL_PACKAGES:
        for f, rel in _walk(REPO / src):
            if not with_model and (REPO / src / rel).is_relative_to(REPO / MODEL_DIR):
                continue
            members.append((f"{pkg}/{rel.as_posix()}", f.read_bytes()))
    members += [(f"{dist}/METADATA", metadata.encode()), (f"{dist}/entry_points.txt", entry_points.encode()),
                (f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: motionclip build_addon.py\n"
                                  b"Root-Is-Purelib: true\nTag: py3-none-any\n")]
    record = []
    for name, data in members:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    members.append((f"{dist}/RECORD", ("\n".join(record) + "\n").encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data,
                        compress_type=zipfile.ZIP_DEFLATED)
    return f"motionclip-{version}-py3-none-any.whl", buf.getvalue()


def build(out_dir: Path = REPO / "dist", with_model: bool = True) -> Path:
    found = versions()
    if len(set(found.values())) != 1:
        raise BuildError("the versions disagree: " + ", ".join(f"{k} {v}" for k, v in found.items())
                         + "; set the same version in all three")
    version = found["pyproject.toml"]
    if with_model and not (REPO / MODEL_DIR / "config.json").is_file():
        raise BuildError(f"{MODEL_DIR}/config.json is missing: restore the built-in model, or build with "
                         "--without-model (the backend then needs a checkpoint)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}-{version}{'' if with_model else '-nomodel'}.zip"
    tmp = target.with_suffix(".zip.part")
    wheel_name, wheel = build_wheel(with_model)
    bundle = {"wheel": wheel_name, "version": version, "model": with_model,
              "model_licence": "CC-BY-NC-4.0" if with_model else None}
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for src, name in files(with_model):
            zf.write(src, name)
        zf.writestr(f"{PACKAGE}/backend/{wheel_name}", wheel, compress_type=zipfile.ZIP_STORED)
        zf.writestr(f"{PACKAGE}/backend/bundle.json", json.dumps(bundle, indent=1) + "\n")
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the Blender add-on zip (extension for Blender 4.2+, "
                                             "legacy add-on for older Blender) with the bundled backend.")
    ap.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    ap.add_argument("--without-model", action="store_true",
                    help="leave the built-in model (CC BY-NC 4.0) out: <name>-nomodel.zip, whose backend serves "
                         "only a checkpoint the user sets (Preferences > Add-ons > motionclip > Checkpoint)")
    args = ap.parse_args(argv)
    try:
        path = build(args.out, with_model=not args.without_model)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(path) as zf:
        n, size = len(zf.namelist()), sum(i.file_size for i in zf.infolist())
    print(f"{path}  ({n} files, {size / 1e6:.1f} MB unpacked, {path.stat().st_size / 1e6:.1f} MB zipped)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
