#!/usr/bin/env bash
# Set up a fresh Debian / Ubuntu machine: system packages, the project's Python environment
# (.venv, with torch), and Blender as a Python module in its own environment (.venv-blender;
# bpy pins numpy 1.26, so it cannot share .venv). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "== system packages"
$SUDO apt-get update -q
# python3-venv: virtual environments; assimp-testmodels: CMU BVH clips the tests import;
# blender + python3-numpy: a real `blender -b` (3.4 on Debian 12) for the add-on and batch tests;
# ffmpeg: MP4 frame counts (ffprobe); xvfb xdotool imagemagick: the Blender window, screenshots;
# libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 (EGL) and libosmesa6 (fallback): offscreen pyrender
$SUDO apt-get install -y -q python3-venv assimp-testmodels blender python3-numpy ffmpeg xvfb xdotool imagemagick \
    libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libosmesa6 >/dev/null
PY="${PYTHON:-python3}"
echo "== .venv (motionclip and torch; pip resolves the torch build)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[dev]"
# pyrender pins PyOpenGL 3.1.0, which cannot use OSMesa; 3.1.10 drives both EGL and OSMesa (pip
# prints a note about the pin).
.venv/bin/pip install -q "PyOpenGL==3.1.10"
echo "== .venv-blender (Blender 5.0 as a Python module, for the Blender checks)"
[ -x .venv-blender/bin/python ] || "$PY" -m venv .venv-blender
.venv-blender/bin/pip install -q --upgrade pip
.venv-blender/bin/pip install -q "bpy==5.0.1"
echo "== done: try  .venv/bin/motionclip --help"
