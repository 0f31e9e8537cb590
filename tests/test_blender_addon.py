"""The Blender add-on end to end: the built zip, a real server, real Blender.

A tiny model is trained through the real trainer (synthetic data, random tiny CLIP: no real
weights exist on this machine), served by `motionclip serve` on a free loopback port, and the
zip that build_addon.py makes is installed into Blender, which then generates through its
panel's operators (tests/blender_scripts/addon_session.py dumps what Blender made):

- bpy 5.0 (the PyPI module, .venv-blender): installs as an extension; fast suite.
- Debian's Blender 3.4 (`blender -b`): installs as a legacy add-on; slow suite.
- `motionclip blender-batch`: tests/test_blender_batch.py (it uses this file's server).

What Blender keyed is compared with the server's own answer to the same request: the keyed
pose quaternions against B^-1 C L C^-1 B (B the bone's rest orientation, C the Y-up to Z-up
turn), and, independently of that formula, every posed bone's world rotation and head against
the project's forward kinematics of the answer, within 1e-4.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from motionclip.core.protocol import JOINT_NAMES, PARENTS
from motionclip.core.skeleton import forward_kinematics

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import build_addon  # noqa: E402

SESSION = REPO / "tests" / "blender_scripts" / "addon_session.py"
BLENDER_PYTHON = Path(os.environ.get("MOTIONCLIP_BLENDER_PYTHON", REPO / ".venv-blender" / "bin" / "python"))
DEBIAN_BLENDER = shutil.which("blender")
# The session's request (tests/blender_scripts/addon_session.py).
PROMPT_1, PROMPT_2, FRAMES, START, FPS, SEED = "a person jumps", "a person waves with the left hand", 48, 10, 24, 7
C = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # SMPL Y up -> Blender Z up
TOL = 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(tiny_run: Path, log: Path, token: str = ""):
    """`motionclip serve` on a free port, as a user starts it; yields its URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "motionclip"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(exe), "serve", "--checkpoint", str(tiny_run), "--port", str(port),
                                 "--device", "cpu"] + (["--token", token] if token else []),
                                stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            pytest.fail(f"motionclip serve exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                break
        except urllib.error.HTTPError:  # a 401 without the token: it is up
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"motionclip serve did not answer within 180 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="session")
def server(tiny_run, tmp_path_factory):
    yield from serve(tiny_run, tmp_path_factory.mktemp("server") / "serve.log")


TOKEN = "s3cret-test-token"


@pytest.fixture(scope="session")
def token_server(tiny_run, tmp_path_factory):
    """The same, started with --token TOKEN."""
    yield from serve(tiny_run, tmp_path_factory.mktemp("token_server") / "serve.log", TOKEN)


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    return build_addon.build(tmp_path_factory.mktemp("dist"))


def post(url: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


# ---------------------------------------------------------------- comparisons

def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(q.shape[:-1] + (3, 3))


def check_against_answer(dumped: dict, answer: dict, start: int) -> None:
    """Blender's armature and action against the server's answer (see the module docstring)."""
    frames = len(answer["rotations"])
    # Skeleton: SMPL's 24 bones, names and hierarchy; rest heads at the answer's rest skeleton, Z up.
    assert sorted(dumped["bones"]) == sorted(JOINT_NAMES)
    assert dumped["parents"] == {n: (JOINT_NAMES[p] if p >= 0 else None) for n, p in zip(JOINT_NAMES, PARENTS)}
    off = np.asarray(answer["rest_offsets"], dtype=np.float64)
    rest_pos = np.zeros((24, 3))
    for j, p in enumerate(PARENTS):
        rest_pos[j] = off[j] if p < 0 else rest_pos[p] + off[j]
    rest = {n: np.asarray(dumped["rest"][n]) for n in JOINT_NAMES}
    heads = np.array([rest[n][:3, 3] for n in JOINT_NAMES])
    np.testing.assert_allclose(heads, rest_pos @ C.T, atol=1e-5)
    assert dumped["rotation_modes"] == ["QUATERNION"]

    # Action: frame range, one key per frame on each of 24x4 rotation + 3 root location channels.
    assert dumped["frame_range"] == [start, start + frames - 1]
    assert dumped["scene_range"] == [start, start + frames - 1]
    curves = {(c["path"], c["index"]): np.asarray(c["co"]).reshape(-1, 2) for c in dumped["fcurves"]}
    assert len(curves) == 24 * 4 + 3
    expected_frames = start + np.arange(frames)
    for key, co in curves.items():
        assert co.shape == (frames, 2), key
        np.testing.assert_array_equal(co[:, 0], expected_frames, err_msg=str(key))

    # Keyed values: pose quaternion = B^-1 (C L C^-1) B, root location = B0^-1 C trans.
    L = quat_to_matrix(np.asarray(answer["rotations"], dtype=np.float64))        # [T, 24, 3, 3] Y up
    trans = np.asarray(answer["trans"], dtype=np.float64)
    worst = 0.0
    for j, name in enumerate(JOINT_NAMES):
        q = np.stack([curves[(f'pose.bones["{name}"].rotation_quaternion', i)][:, 1] for i in range(4)], -1)
        B = rest[name][:3, :3]
        expected = B.T @ C @ L[:, j] @ C.T @ B
        worst = max(worst, float(np.abs(quat_to_matrix(q) - expected).max()))
    assert worst < TOL, f"keyed rotations differ from the answer by {worst:.2e}"
    loc = np.stack([curves[('pose.bones["Pelvis"].location', i)][:, 1] for i in range(3)], -1)
    np.testing.assert_allclose(loc, trans @ C.T @ rest["Pelvis"][:3, :3], atol=TOL)

    # Playback: posed bones (Blender's own evaluation) against the project's FK of the answer.
    pos, glob = forward_kinematics(torch.from_numpy(L), torch.from_numpy(rest_pos), torch.from_numpy(trans))
    pos, glob = pos.numpy() @ C.T, C @ glob.numpy() @ C.T                         # Z up
    assert len(dumped["posed"]) == frames
    rot_err = pos_err = 0.0
    for t, posed in enumerate(dumped["posed"]):
        for j, name in enumerate(JOINT_NAMES):
            M = np.asarray(posed[name])
            rot_err = max(rot_err, float(np.abs(M[:3, :3] @ rest[name][:3, :3].T - glob[t, j]).max()))
            pos_err = max(pos_err, float(np.abs(M[:3, 3] - pos[t, j]).max()))
    assert rot_err < TOL and pos_err < TOL, (rot_err, pos_err)
    # The motion really moves (a rest pose would compare equal too).
    assert np.ptp(pos[:, :, :], axis=0).max() > 0.05


def check_session(d: dict, url: str) -> None:
    assert "exception" not in d, d.get("exception")
    # Installed and enabled, with its panel, operators and settings.
    assert d["enabled"]
    reg = d["registered"]
    assert reg["panel_class"] and reg["scene_settings"] and reg["job_state"]
    assert {"generate", "recognize", "edit", "cancel"} <= set(reg["operators"])

    # Generate: the answer the server gives to the same request.
    assert d["generate_error"] is None
    answer = post(url, "/generate", {"prompt": PROMPT_1, "frames": FRAMES, "fps": float(FPS), "seed": SEED})
    assert answer["fps"] == FPS and len(answer["rotations"]) == FRAMES
    first = d["first"]
    assert first["action"] == PROMPT_1
    assert first["children"] == [f"{first['name']}_body"]
    check_against_answer(first, answer, START)
    assert d["job_after_first"]["error"] == ""

    # Undo removes the armature, its body and the action.
    before = set(d["objects_before"])
    assert set(d["after_undo"]["objects"]) == before and d["after_undo"]["armatures"] == []
    assert d["after_undo"]["actions"] == []

    # Regenerate: the same armature gets a new action; the old one is gone; nothing else is added.
    assert d["regenerate_errors"] == [None, None]
    r = d["regenerate"]
    assert r["same_object"] and r["armatures"] == r["before"]["armatures"] and len(r["armatures"]) == 1
    assert r["objects"] == r["before"]["objects"] == len(before) + 2
    assert r["actions"] == [PROMPT_2]
    second = post(url, "/generate", {"prompt": PROMPT_2, "frames": FRAMES, "fps": float(FPS), "seed": SEED + 1})
    check_against_answer(r["second"], second, START)

    # Server down: the panel's state holds the error, the operator fails, nothing else changed.
    down = d["server_down"]
    assert "cannot reach the backend" in down["panel_error"] and "nothing is listening" in down["panel_error"]
    assert down["operator_error"] and "cannot reach the backend" in down["operator_error"]
    assert "failed" in down["panel_status"] and not down["running"]
    assert down["after"] == down["before"]

    # Recognise: every candidate label ranked, best first.
    rec = d["recognize"]
    assert rec["error"] is None
    assert sorted(l for l, _ in rec["labels"]) == ["jump", "walk", "wave"]
    scores = [s for _, s in rec["labels"]]
    assert scores == sorted(scores, reverse=True)

    # Blend: the server's interpolation at 0.25 on the same armature; edit: a new action from it.
    blend = d["blend"]
    assert blend["error"] is None and blend["armatures"] == ["SMPL"]
    assert blend["action"] == f"{PROMPT_1} | {PROMPT_2} 0.25"[:60]
    assert blend["frame_range"] == [START, START + FRAMES - 1]
    edit = d["edit"]
    assert edit["error"] is None and edit["armatures"] == ["SMPL"]
    assert edit["action"].endswith("(walk -> run)") and edit["actions"] == [edit["action"]]
    assert edit["frame_range"] == [START, START + FRAMES - 1]

    # Disabled: nothing of the add-on stays registered.
    after = d["after_disable"]
    assert after == {"types": [], "scene_settings": False, "job_state": False, "operators": [],
                     "panel_class": False}
    assert not d["enabled_after_disable"]


# ---------------------------------------------------------------- tests

def test_zip_holds_the_addon_protocol_and_backend(addon_zip) -> None:
    with zipfile.ZipFile(addon_zip) as zf:
        names = set(zf.namelist())
        version = build_addon.versions()["pyproject.toml"]
        wheel = f"motionclip_blender/backend/motionclip-{version}-py3-none-any.whl"
        assert {"motionclip_blender/__init__.py", "motionclip_blender/blender_manifest.toml",
                "motionclip_blender/batch.py", "motionclip_blender/protocol.py", "motionclip_blender/LICENSE",
                "motionclip_blender/MODEL_CARD.md", "motionclip_blender/backend/bundle.json", wheel} <= names
        # The wire protocol is the backend's own file, byte for byte.
        assert zf.read("motionclip_blender/protocol.py") == (REPO / "core" / "protocol.py").read_bytes()
        # So are the scene pieces both headless Blender pipelines share.
        assert zf.read("motionclip_blender/shared_scene.py") == (REPO / "render" / "shared_scene.py").read_bytes()
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        assert all(n.startswith("motionclip_blender/") for n in names)
        manifest = zf.read("motionclip_blender/blender_manifest.toml").decode()
        bundle = json.loads(zf.read("motionclip_blender/backend/bundle.json"))
        whl = zipfile.ZipFile(io.BytesIO(zf.read(wheel)))
    assert 'id = "motionclip_blender"' in manifest
    assert bundle == {"wheel": Path(wheel).name, "version": version, "model": True, "model_licence": "CC-BY-NC-4.0"}
    # The wheel: the package as pip installs it (motionclip.core / .train / .render), the model, the metadata.
    inner = set(whl.namelist())
    assert {"motionclip/core/protocol.py", "motionclip/core/cli.py", "motionclip/core/server/app.py",
            "motionclip/core/io/limits.py", "motionclip/train/__init__.py",
            "motionclip/core/assets/model/config.json", "motionclip/core/assets/model/model.safetensors",
            f"motionclip-{version}.dist-info/METADATA", f"motionclip-{version}.dist-info/RECORD",
            f"motionclip-{version}.dist-info/WHEEL", f"motionclip-{version}.dist-info/entry_points.txt"} <= inner
    assert whl.read("motionclip/core/protocol.py") == (REPO / "core" / "protocol.py").read_bytes()
    meta = whl.read(f"motionclip-{version}.dist-info/METADATA").decode()
    assert "Name: motionclip" in meta and "License: MIT" in meta and "Requires-Dist: torch>=2.1" in meta
    assert 'Requires-Dist: fastapi>=0.110; extra == "serve"' in meta
    assert "motionclip = motionclip.core.cli:main" in whl.read(f"motionclip-{version}.dist-info/entry_points.txt").decode()
    record = whl.read(f"motionclip-{version}.dist-info/RECORD").decode().splitlines()
    assert len(record) == len(inner) and all(",sha256=" in r for r in record if not r.endswith("RECORD,,"))
    assert addon_zip.name == f"motionclip_blender-{version}.zip"
    # The add-on itself never imports torch or the backend.
    for f in (REPO / "blender_addon").glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(torch|numpy\.torch|motionclip)\b", f.read_text(), re.M), f


def test_manifest_states_the_licences_truthfully(addon_zip) -> None:
    """The add-on's code is GPL-3.0-or-later (it imports bpy), with the licence's text in the zip; the
    backend's wheel says MIT; the model's CC BY-NC terms come with it (bundle.json, its model card)."""
    import tomllib

    manifest = tomllib.loads((REPO / "blender_addon" / "blender_manifest.toml").read_text())
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    with zipfile.ZipFile(addon_zip) as zf:
        licence = zf.read("motionclip_blender/LICENSE").decode()
        card = zf.read("motionclip_blender/MODEL_CARD.md").decode()
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 3, 29 June 2007" in licence
    assert "CC BY-NC 4.0" in card and "non-commercial" in card
    assert (REPO / "core/assets/model/MODEL_CARD.md").read_text() == card


def test_build_without_model(tmp_path) -> None:
    """`build_addon.py --without-model`: a -nomodel zip whose wheel has no model (and no model card
    in the add-on); bundle.json says so, so the add-on asks for a checkpoint."""
    proc = subprocess.run([sys.executable, str(REPO / "build_addon.py"), "--out", str(tmp_path), "--without-model"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    version = build_addon.versions()["pyproject.toml"]
    path = tmp_path / f"motionclip_blender-{version}-nomodel.zip"
    assert str(path) in proc.stdout
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        bundle = json.loads(zf.read("motionclip_blender/backend/bundle.json"))
        whl = zipfile.ZipFile(io.BytesIO(zf.read(f"motionclip_blender/backend/{bundle['wheel']}")))
    assert bundle["model"] is False and bundle["model_licence"] is None
    assert "motionclip_blender/MODEL_CARD.md" not in names and "motionclip_blender/LICENSE" in names
    inner = whl.namelist()
    assert "motionclip/core/cli.py" in inner and not any("assets/model" in n for n in inner)
    assert path.stat().st_size < 1_000_000  # the model is most of the full zip


def test_bpy_extension_generates_against_real_server(addon_zip, server, tmp_path) -> None:
    out = tmp_path / "session.json"
    d, proc = run_blender([SESSION, addon_zip, server, dead_url(), out], out, tmp_path)
    assert d["blender"].startswith("5.") and d["module"] == "bl_ext.user_default.motionclip_blender"
    check_session(d, server)
    assert proc.returncode == 0


@pytest.mark.slow
def test_debian_blender_legacy_addon_generates(addon_zip, server, tmp_path) -> None:
    out = tmp_path / "session.json"
    d, proc = run_blender([SESSION, addon_zip, server, dead_url(), out], out, tmp_path, debian=True)
    assert d["module"] == "motionclip_blender"
    check_session(d, server)
    assert proc.returncode == 0


ERROR_SESSION = REPO / "tests" / "blender_scripts" / "error_session.py"


def check_error_paths(d: dict, output: str) -> None:
    """Every button's error path (tests/blender_scripts/error_session.py): the operator returns
    CANCELLED, its report and the panel hold the whole message (the cause and what to do), the
    stale "Connected" line is gone, nothing in the scene changed, and nothing crashed."""
    assert "exception" not in d, d.get("exception")
    assert d["connected"]["returned"] == ["FINISHED"] and d["connected"]["server"].startswith("Connected: ")
    unreachable = ["cannot reach the backend", "nothing is listening", "motionclip serve", "fix the URL"]
    token = ["refused the token", "the token sent does not match",
             "set Token in Preferences > Add-ons > motionclip", "--token"]
    no_python = ["no Backend Python is set", "Preferences > Add-ons > motionclip", "Install Backend",
                 "motionclip serve"]
    expected = {  # the path -> what its message must say: the cause, then what to do
        "no_server": unreachable, "no_server_check": unreachable,
        "server_refuses": ["HTTP 422", "prompt:", "shorten the Prompt (at most 300 characters)"],
        "bad_token": token, "bad_token_check": token,
        "too_many_frames": ["HTTP 422", "frames:", f"got {d['max_frames'] + 1}",
                            "lower Frames in the MotionCLIP panel and press Generate again"],
        "too_many_seconds": ["HTTP 422", "seconds:", "lower Seconds in the MotionCLIP panel"],
        "empty_prompt": ["the Prompt is empty", "in the Prompt field", "press Generate"],
        "active_not_armature": ["'Cube' is not an SMPL armature", "press Recognise again"],
        "nothing_selected_recognize": ["nothing is selected", "select one", "press Recognise again"],
        "nothing_selected_edit": ["nothing is selected", "select one", "press Edit Motion again"],
        "empty_labels": ["the Labels field is empty", "separated by commas"],
        "empty_from": ["From is empty", "press Edit Motion"],
        "no_python": no_python, "no_python_install": no_python,
        "missing_python": ["/nonexistent/bin/python: no such file", "point Backend Python to a Python"],
    }
    for path, words in expected.items():
        r = d[path]
        assert r["returned"] == ["CANCELLED"], (path, r)  # None would mean execute raised
        # Blender turns the ERROR report into a RuntimeError for a script: the whole message, nothing else.
        assert r["raised"] == "RuntimeError" and r["report"].strip() == f"Error: {r['error']}", (path, r)
        for w in words:
            assert w in r["error"], (path, w, r["error"])
        assert "Traceback" not in r["error"] and "Recursion" not in r["error"], (path, r["error"])
        assert "failed" in r["status"] and r["server"] == "" and not r["running"], (path, r)
        assert not r["scene_changed"] and r["labels"] == [], (path, r)
    assert not d["backend_running"]

    # The panel: the whole error, wrapped to the region (several words a line, none too long), with
    # the status line above it and no "Connected" line under it.
    error = d["no_server"]["error"]
    columns = {(dr["width"], dr["scale"]): dr["columns"] for dr in d["draw_error"]}
    assert columns[(230, 1.0)] < columns[(300, 1.0)] < columns[(420, 1.0)] < columns[(1000, 1.0)]
    assert columns[(600, 2.0)] == columns[(300, 1.0)]  # the same width in UI units at twice the scale
    for dr in d["draw_error"]:
        labels = dr["labels"]
        status = [text for text, _, alert in labels if not alert]
        boxed = [text for text, _, alert in labels if alert]
        assert " ".join(status) == "Generating: failed after 0.1 s" and labels[0][1] == "INFO", dr
        assert labels[len(status):] == [[t, "ERROR" if i == 0 else "BLANK1", True] for i, t in enumerate(boxed)], dr
        assert "".join(boxed).replace(" ", "") == error.replace(" ", ""), dr       # all of it, in order
        assert all(len(t) <= dr["columns"] for t in status + boxed), dr
        assert len(error.split()) >= 3 * len(boxed), dr                              # not a word a line
        assert not any("Connected" in t for t in status + boxed), dr                 # no stale "Connected"
    drawn = d["draw_connected"]["labels"]
    assert drawn[1][1] == "LINKED" and drawn[1][0].startswith("Connected: ")       # shown when no error
    assert all(len(t) <= 20 for t in d["wrap_path"]) and "".join(d["wrap_path"]).replace(" ", "") == \
        "BackendPython/a/very/long/path/to/some/virtual/environment/bin/python3:nosuchfile"
    # Nothing crashed on the way: no traceback anywhere in Blender's output.
    assert "Traceback" not in output and "RecursionError" not in output, output[-3000:]


def test_bpy_error_paths_never_crash(addon_zip, token_server, tmp_path) -> None:
    out = tmp_path / "errors.json"
    d, proc = run_blender([ERROR_SESSION, addon_zip, token_server, TOKEN, dead_url(), out], out, tmp_path)
    assert d["blender"].startswith("5.")
    check_error_paths(d, proc.stdout + proc.stderr)
    assert proc.returncode == 0


@pytest.mark.slow
def test_debian_blender_error_paths_never_crash(addon_zip, token_server, tmp_path) -> None:
    out = tmp_path / "errors.json"
    d, proc = run_blender([ERROR_SESSION, addon_zip, token_server, TOKEN, dead_url(), out], out, tmp_path, debian=True)
    assert d["module"] == "motionclip_blender" and d["blender"].startswith("3.")
    check_error_paths(d, proc.stdout + proc.stderr)
    assert proc.returncode == 0


def test_zip_passes_blenders_extension_validator(addon_zip) -> None:
    """Blender's own `extension validate` (the bl_pkg command-line tool shipped with bpy 5)."""
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON}")
    tool = next(BLENDER_PYTHON.parent.parent.glob("lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/"
                                                  "blender_ext.py"), None)
    if tool is None:
        pytest.skip("this bpy has no bl_pkg/cli/blender_ext.py")
    proc = subprocess.run([str(BLENDER_PYTHON), str(tool), "validate", str(addon_zip)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr


START_BACKEND = r'''
import json, sys, bpy
zip_path, python, run, port, out = sys.argv[1:]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
module = "bl_ext.user_default.motionclip_blender"
p = bpy.context.preferences.addons[module].preferences
p.backend_mode, p.python_path, p.checkpoint = "PYTHON", python, run
p.backend_url = f"http://127.0.0.1:{port}"   # the backend starts on this address's port
ok = bpy.ops.motionclip.start_backend()
st = bpy.context.window_manager.motionclip_job
backend = sys.modules[module + ".backend"]
pid = backend._process.pid if backend._process else None
res = {"op": sorted(ok), "status": st.status, "server": st.server, "error": st.error, "url": p.backend_url,
       "running": backend.running(), "pid": pid}
bpy.ops.preferences.addon_disable(module=module)   # unregistering stops the backend
res["running_after_disable"] = backend.running()
json.dump(res, open(out, "w"))
'''


def test_start_backend_button_launches_and_stops_the_server(addon_zip, tiny_run, tmp_path) -> None:
    """Preferences > Start Backend runs `motionclip serve` from the Python the user points to; the
    add-on waits for /health, shows the connection, and stops the server when it is disabled."""
    out, port = tmp_path / "start.json", free_port()
    d, proc = run_blender(["-c", START_BACKEND, addon_zip, sys.executable, tiny_run, port, out], out, tmp_path)
    assert d["op"] == ["FINISHED"] and d["error"] == "", d
    assert d["url"] == f"http://127.0.0.1:{port}" and d["status"] == f"Backend running at {d['url']}"
    assert "clip-random:tiny" in d["server"] and d["running"]
    assert not d["running_after_disable"]
    with pytest.raises(OSError):  # nothing listens there any more
        urllib.request.urlopen(d["url"] + "/health", timeout=2)


AUTOSTART_SESSION = REPO / "tests" / "blender_scripts" / "autostart_session.py"


def test_backend_starts_with_blender_only_when_it_can(addon_zip, tiny_run, tmp_path) -> None:
    """Start With Blender: every reason not to start is said, a set-up backend starts, a second call
    leaves it alone, an error never reaches Blender, and background Blender schedules nothing."""
    out = tmp_path / "autostart.json"
    d, proc = run_blender([AUTOSTART_SESSION, "branches", addon_zip, sys.executable, tiny_run, out], out, tmp_path)
    assert "exception" not in d, d.get("exception")
    said = d["said"]
    assert d["default_on"] and not d["scheduled_in_background"], d
    assert said["off"] == "not started (Start With Blender is off)"
    assert said["remote"] == "not started (Backend is a Running Server you start yourself)"
    assert said["not_set_up"].startswith("not started: the backend is not set up yet: press Set Up Backend")
    assert said["no_python"].startswith("not started: no Backend Python is set")
    assert said["not_local"].startswith("not started: Backend URL 'http://192.0.2.1:8765' is not on this machine")
    assert said["port_taken"].startswith("not started: something already answers at http://127.0.0.1:")
    assert not d["running_before"]
    assert said["start"].startswith("starting at http://127.0.0.1:") and d["running"], d
    assert d["status"].startswith("Backend running at http://127.0.0.1:"), d
    assert said["again"] == "already running"
    assert d["on_start_survived"] and "motionclip: backend not started: division by zero" in proc.stdout
    assert not d["running_after_disable"]


@pytest.mark.slow
def test_backend_starts_when_blender_starts_in_a_window(addon_zip, tiny_run, tmp_path) -> None:
    """In a real window, registering the add-on with a set-up backend starts it with no button pressed."""
    out, port = tmp_path / "window.json", free_port()
    if DEBIAN_BLENDER is None or shutil.which("Xvfb") is None:
        pytest.skip("needs Debian's blender and Xvfb")
    with blender_window(AUTOSTART_SESSION, ["window", addon_zip, sys.executable, tiny_run, port, out], tmp_path,
                        "1280x800x24") as (_, _, blender, log):
        d = wait_for(out, blender, log, seconds=300)
        blender.wait(60)
    assert d["health"] and "clip-random:tiny" in json.dumps(d["health"]), (d, log.read_text()[-2000:])
    assert d["started_by_addon"] and not d["running_after_disable"], d
    assert "motionclip: backend: starting at http://127.0.0.1:" in log.read_text()


GUI_SESSION = REPO / "tests" / "blender_scripts" / "gui_session.py"


def free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number in :90-:199")


def wait_for(path: Path, proc: subprocess.Popen, log: Path, seconds: float = 300) -> dict:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"Blender exited ({proc.returncode}) before {path.name}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {path.name} from Blender within {seconds:.0f} s: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    return json.loads(path.read_text())


def screenshot(display: str, out: Path):
    subprocess.run(["import", "-display", display, "-window", "root", str(out)], check=True, timeout=60)
    from PIL import Image

    return np.asarray(Image.open(out).convert("RGB")).astype(np.int32)


@contextlib.contextmanager
def blender_window(script: Path, args: list, tmp_path: Path, screen: str):
    """Debian's Blender in a real window on a fresh Xvfb display (`screen`: WxHxDEPTH), running script
    with args (its output in tmp_path/blender.log); yields (display, env, blender, log). Both are
    stopped after."""
    n = free_display()
    display = f":{n}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", screen, "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "blender.log"
    env = {**debian_env(tmp_path), "DISPLAY": display}
    blender = None
    try:
        deadline = time.monotonic() + 30
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            assert xvfb.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        with open(log, "wb") as fh:
            blender = subprocess.Popen([DEBIAN_BLENDER, "--factory-startup", "--python", str(script), "--",
                                        *map(str, args)], env=env, cwd=tmp_path, stdout=fh, stderr=subprocess.STDOUT)
        yield display, env, blender, log
    finally:
        if blender is not None and blender.poll() is None:
            blender.kill()
        xvfb.terminate()
        xvfb.wait(10)


@pytest.mark.slow
def test_real_blender_window_generates_and_shows_the_panel(addon_zip, server, tmp_path) -> None:
    """Debian's Blender 3.4 in a real window on Xvfb: press Generate in the sidebar, see the armature
    keyed and the panel's status line, and take a screenshot (kept in $MOTIONCLIP_SCREENSHOT_DIR when
    set). The operator returns at once while the request runs on the add-on's worker thread."""
    tools = [shutil.which(t) for t in ("blender", "Xvfb", "xdotool", "import")]
    if None in tools:
        pytest.skip("needs blender, Xvfb, xdotool and ImageMagick's import (apt-get install blender "
                    "python3-numpy xvfb xdotool imagemagick)")
    state = tmp_path / "state"
    state.mkdir()
    with blender_window(GUI_SESSION, [addon_zip, server, state], tmp_path, "1280x800x24") as window:
        display, env, blender, log = window
        ready = wait_for(state / "ready.json", blender, log)
        assert "exception" not in ready, ready["exception"]
        # Generate returned at once and the request went on in the background; then the result was keyed.
        assert ready["operator"] == ["FINISHED"] and ready["running_after_press"]
        assert ready["error"] == "" and ready["bones"] == 24 and ready["armature"] == "SMPL"
        assert ready["action"] == "a person walks forward and waves" and ready["frame_range"] == [1.0, 96.0]
        assert ready["status"].startswith('SMPL (new): "a person walks forward and waves", 96 frames at 24 fps')
        # Close the first-run splash (a click on the status bar), then click the sidebar's last tab (the add-on's) as a user would.
        xdo = ["xdotool"]
        subprocess.run(xdo + ["mousemove", "640", "790", "sleep", "0.3", "click", "1", "sleep", "0.5"],
                       env=env, check=True, timeout=30)
        win_h = ready["window"][1]
        x0, y0, w, h = ready["sidebar"]
        before = screenshot(display, tmp_path / "before.png")
        top, bottom = win_h - (y0 + h), win_h - y0        # Blender's y runs upwards
        col = before[top:bottom, x0 + w - 21].sum(-1)       # a column through the tab strip
        strip = int(np.bincount(col).argmax())              # the strip's own colour, below the tabs
        # the tabs end where the strip's colour runs on for 50 pixels
        end = next((i for i in range(len(col) - 50) if (col[i:i + 50] == strip).all()), 0)
        assert end > 20, "no sidebar tabs found"
        click_y = top + end - 12
        subprocess.run(xdo + ["mousemove", str(x0 + w - 12), str(click_y), "click", "1", "sleep", "0.3",
                              "mousemove", "640", "600"], env=env, check=True, timeout=30)
        (state / "clicked").touch()
        shown = wait_for(state / "shown.json", blender, log, 60)
        assert shown["panel_draws"] > ready["panel_draws"], (ready, shown)  # the MotionCLIP tab is on screen now
        time.sleep(0.5)
        after = screenshot(display, tmp_path / "blender_panel.png")
        side = (slice(top, bottom), slice(x0, x0 + w - 25))
        assert np.abs(after[side] - before[side]).sum(-1).astype(bool).mean() > 0.05  # the sidebar changed
        assert len(np.unique(after.reshape(-1, 3), axis=0)) > 500                      # a real picture
        keep = os.environ.get("MOTIONCLIP_SCREENSHOT_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp_path / "blender_panel.png", Path(keep) / "blender_panel.png")
        (state / "shot.done").touch()
        assert blender.wait(60) == 0, log.read_text()[-3000:]


# ---------------------------------------------------------------- one-click backend set-up

SETUP_SESSION = REPO / "tests" / "blender_scripts" / "setup_session.py"
sys.path.insert(0, str(REPO / "tests" / "blender_scripts"))
import wheelhouse  # noqa: E402


def site_packages() -> Path:
    """Where this test run's packages really are (a venv may see another through a .pth file)."""
    return Path(torch.__file__).resolve().parent.parent


def blender_env(tmp_path: Path) -> dict:
    """Blender's environment for a test: a throwaway user folder, and pip configured only by the
    add-on's preferences (no pip.conf, no PIP_FIND_LINKS of this machine)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("PIP_")}
    env.update(BLENDER_USER_RESOURCES=str(tmp_path / "user"), PIP_CONFIG_FILE=os.devnull)
    return env


def debian_env(tmp_path: Path) -> dict:
    """Debian's Blender 3.4's environment for a test: blender_env with its own throwaway user folders
    (scripts/ for the legacy add-on, config/, datafiles/)."""
    env = {k: v for k, v in blender_env(tmp_path).items() if k != "BLENDER_USER_RESOURCES"}
    env.update(BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"), BLENDER_USER_CONFIG=str(tmp_path / "config"),
               BLENDER_USER_DATAFILES=str(tmp_path / "datafiles"))
    return env


def run_blender(argv: list, out: Path, tmp_path: Path, debian: bool = False, timeout: int = 600):
    """Run a script (argv: the script, or "-c" and code, then its arguments) in the Blender-side Python
    (the bpy module), or in Debian's `blender -b` 3.4 with its own throwaway user folders; skips when
    that Blender is missing. The JSON the script wrote to `out`, and the finished process."""
    if debian:
        if DEBIAN_BLENDER is None:
            pytest.skip("no `blender` on PATH (apt-get install blender python3-numpy)")
        env = debian_env(tmp_path)
        cmd = [DEBIAN_BLENDER, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(argv[0]), "--",
               *map(str, argv[1:])]
    else:
        if not BLENDER_PYTHON.exists():
            pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON} (python3 -m venv .venv-blender && "
                        ".venv-blender/bin/pip install bpy==5.0.1)")
        env, cmd = blender_env(tmp_path), [str(BLENDER_PYTHON), *map(str, argv)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc


def run_setup_session(addon_zip: Path, tmp_path: Path, prefs: dict) -> dict:
    broken = tmp_path / "no-wheels"
    broken.mkdir()
    config = tmp_path / "setup.json"
    config.write_text(json.dumps({"url": dead_url(), "prefs": prefs, "broken_links": str(broken)}))
    out = tmp_path / "setup_out.json"
    d, proc = run_blender([SETUP_SESSION, addon_zip, config, out], out, tmp_path, timeout=1800)
    assert "exception" not in d, d["exception"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return d


def check_setup_session(d: dict) -> None:
    """The set-up flow as tests/blender_scripts/setup_session.py saw it."""
    texts = lambda log: " ".join(e[0] for e in log)  # noqa: E731
    # No backend yet: the panel offers the set-up instead of Generate; the defaults are the managed CPU set-up.
    assert d["defaults"] == {"mode": "MANAGED", "torch_variant": "CPU", "python_path": ""}
    nob = d["panel_no_backend"]
    assert "No backend yet" in texts(nob) and ["operator:motionclip.setup_backend", "", False] in nob
    assert not any(e[0] == "operator:motionclip.generate" for e in nob)
    assert f"{nob[0][0]} {nob[1][0]}".startswith("Nothing answers at http://127.0.0.1:") and nob[0][1] == "CANCEL"
    # The environment lives in the add-on's own user folder.
    assert d["env"].endswith("motionclip_blender/backend-env") and "/extensions/" in d["env"]

    # From a folder without the packages: it fails at the PyTorch step with pip's words, the hint and the log.
    b = d["broken"]
    assert b["raised"] and "Install PyTorch failed (exit 1)" in b["error"], b
    assert "No matching distribution found for torch" in b["error"] and "Open Setup Log" in b["error"]
    assert "check the network connection" in b["error"] and d["log"] in b["error"]
    assert d["broken_history"] == ["Create environment", "Upgrade pip", "Install PyTorch"]
    assert d["broken_open_log"]["raised"] is None and "No matching distribution found for torch" in d["broken_log_text"]
    assert "No backend yet" in texts(d["panel_after_failure"])          # still offered, the error under it
    assert any(e[2] and "Install PyTorch failed" in e[0] for e in d["panel_after_failure"])
    assert d["remove_after_failure"]["result"] == ["FINISHED"] and not d["env_exists_after_remove"]
    assert d["remove_after_failure"]["status"].startswith("Removed ")

    # The real set-up: every step, pip's counts, the backend started from the new environment, connected.
    s = d["setup"]
    assert s["raised"] is None and s["error"] == "", s
    assert s["status"].startswith("Backend set up and running at ") and s["server"].startswith("Connected: ")
    steps = [h["step"] for h in d["history"]]
    assert steps == ["Create environment", "Upgrade pip", "Install PyTorch", "Install backend", "Start backend",
                     "Connect"]
    backend_step = d["history"][3]
    assert backend_step["installed"] >= 1 and backend_step["collected"] >= 1, backend_step
    assert d["ready"] and d["backend_running"]
    env_python = d["backend_args"][0]
    assert env_python.startswith(d["env"]) and d["backend_args"][1:4] == ["-m", "motionclip.core.cli", "serve"]
    assert d["connection"]["ok"] is True and d["connection"]["text"].startswith("Connected: ")
    # The backend runs from the wheel installed in the environment, not from this checkout.
    cli, prefix = d["installed_at"]
    assert cli.startswith(d["env"]) and "site-packages/motionclip/core/cli.py" in cli and prefix == d["env"]
    ready = d["panel_ready"]
    assert any(e[0] == "operator:motionclip.generate" for e in ready) and "No backend yet" not in texts(ready)
    assert any(e[1] == "CHECKMARK" and e[0].startswith("Connected: ") for e in ready)

    # The first Generate: a new armature beside the factory cube (at the cursor, moved out of it).
    g = d["generate"]
    assert g["raised"] is None and g["error"] == "", g
    assert d["armature"]["type"] == "ARMATURE" and d["armature"]["action"] == "a person walks forward"
    assert d["armature"]["location"] == [1.5, 0.0, 0.0]
    assert d["open_log"]["raised"] is None and "Successfully installed" in d["log_text_tail"]
    assert "backend installed" in d["log_text_tail"] and not d["running_after_disable"]
    stopped = d["panel_stopped"]
    assert any(e[0] == "operator:motionclip.start_backend" for e in stopped) and "No backend yet" not in texts(stopped)
    assert d["restart"]["raised"] is None and d["restart"]["status"].startswith("Backend running at http://127.0.0.1:")
    assert d["restart_running"] and d["restart_args"][0] == env_python
    print(f"\nset-up: {d['times']['setup_s']:.1f} s to a connected backend, {d['times']['to_first_motion_s']:.1f} s "
          f"to the first motion; environment {d['env_mb']:.0f} MB; {d['log_lines']} log lines; steps "
          + ", ".join(f"{h['step']} at {h['t'] - d['history'][0]['t']:.1f} s" for h in d["history"]))


def test_setup_backend_in_one_click(addon_zip, tmp_path) -> None:
    """Set Up Backend in bpy 5.0: a real virtual environment made with Blender's Python, pip
    installing the bundled backend wheel from a local folder (--no-index), PyTorch and the other
    dependencies seen through Extra Site-Packages (links to this run's packages, without motionclip),
    the backend started from the new environment, connected, and the first Generate."""
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON}")
    site = site_packages()
    links = tmp_path / "wheels"
    for name in ("setuptools", "pip"):  # the environment's own copies are older than torch needs
        wheelhouse.repack(site, name, links)
    extra = wheelhouse.mirror(site, tmp_path / "site", skip=("motionclip", "setuptools", "pip"))
    d = run_setup_session(addon_zip, tmp_path, {"find_links": str(links), "no_index": True,
                                                 "extra_site_packages": str(extra)})
    check_setup_session(d)


PANEL_SESSION = REPO / "tests" / "blender_scripts" / "panel_session.py"


def check_panel_session(d: dict, url: str) -> None:
    """tests/blender_scripts/panel_session.py: what the panel shows and offers."""
    assert "exception" not in d, d.get("exception")
    texts = lambda log: " ".join(e[0] for e in log)  # noqa: E731
    ops = lambda log, op: [e for e in log if e[0] == f"operator:motionclip.{op}"]  # noqa: E731
    # One address: Backend URL; no Port.
    assert {"backend_url", "backend_mode", "torch_variant"} <= set(d["pref_names"])
    # The live connection line: a real /health check each way.
    dead = d["dead"]                                                    # Backend: Running Server
    assert dead[0][1] == "CANCEL" and "No backend yet" not in texts(dead), dead
    assert texts(dead[:3]).startswith("Not connected: cannot reach the backend at http") and \
        "nothing is listening there" in texts(dead) and "Start it" not in texts(dead)   # the first sentence
    assert "No backend yet" in texts(d["dead_managed"]) and d["dead_managed"][0][0].startswith("Nothing answers at")
    live = d["live"]
    assert live[0][1] == "CHECKMARK" and f"{live[0][0]} {live[1][0]}" == f"Connected: {url} (model run, cpu)", live
    assert "No backend yet" not in texts(live) and ops(live, "generate")
    assert ["menu:MOTIONCLIP_MT_prompts", "COLLAPSEMENU", False] in live
    # New armatures: at the 3D cursor, moved beside the factory cube and then beside the first one.
    assert d["cube"] and d["cursor"] == [0.0, 0.0, 0.0]
    assert all(g["raised"] is None for g in d["generate"]), d["generate"]
    first, second, third = d["locations"]
    assert first == [1.5, 0.0, 0.0] and second[0] > 2.0 and second[1:] == [0.0, 0.0]
    assert third == [-4.0, 3.0, 0.0]
    assert "at (1.50, 0.00, 0.00)" in d["generate"][0]["status"]
    # Recent prompts (most recent first, once each) and examples in the prompt menu; Use Prompt.
    assert d["recent"] == ["a person jumps", "a person waves"]
    menu = [e[0] for e in d["menu"]]
    assert menu.count("operator:motionclip.use_prompt") == 2 + 6 and "Recent" in menu and "Examples" in menu
    assert d["use_prompt"]["result"] == ["FINISHED"] and d["prompt_after_use"] == "a person waves with the right hand"
    assert "no prompt given" in d["use_prompt_empty"]["raised"]
    # A long prompt is shown whole under the field.
    long_lines = [e[0] for e in d["long_prompt"]
                  if e[1] == "NONE" and e[0] and not e[0].startswith(("prop:", "operator:", "menu:"))]
    assert " ".join(long_lines).find(d["long_prompt_text"]) >= 0, long_lines
    # While a job runs: its status and exactly one Cancel, no Generate; in the preferences too.
    run = d["running"]
    assert len(ops(run, "cancel")) == 1 and not ops(run, "generate") and "Generating... 1.2 s" in texts(run)
    assert len(ops(d["running_prefs"], "cancel")) == 1
    assert d["cancel"]["result"] == ["FINISHED"] and d["after_cancel"] == {"busy": False, "running": False}
    # The model's limits, and the licences in the preferences.
    notes = texts(d["model_notes"])
    assert "Best at 4 seconds" in notes and "short strides" in notes and "Non-commercial" in notes
    prefs = texts(d["prefs"])
    assert "GPL-3.0-or-later" in prefs and "CC BY-NC 4.0" in prefs and "non-commercial purposes only" in prefs
    assert "prop:backend_url" in prefs and "prop:port" not in prefs
    # Old preferences: the Port a Start Backend used becomes the URL; otherwise the URL stays.
    note, new_url, mode, left = d["migrate_python"]
    assert note == "Port 9123 merged into Backend URL http://127.0.0.1:9123" and new_url == "http://127.0.0.1:9123"
    assert mode == "PYTHON" and left is False
    assert d["migrate_url"] == [None, url, "MANAGED", False] and d["migrate_none"] is None
    # Refusals before anything is made.
    assert "the backend is not set up yet: press Set Up Backend" in d["start_before_setup"]["raised"]
    for key in ("setup_remote", "start_remote"):
        assert "is not on this machine" in d[key]["raised"] and "http://127.0.0.1:8765" in d[key]["raised"], d[key]
    assert "Extra Site-Packages: no such folder" in d["setup_missing_extra"]["raised"] and not d["env_made"]
    no_log, blocked, nothing = d["log_before_setup"], d["remove_blocked"], d["remove_nothing"]
    assert "there is no log at" in no_log["raised"] and "Set Up Backend" in no_log["raised"]
    assert "could not delete" in blocked["raised"] and "delete the folder yourself" in blocked["raised"]
    assert nothing["result"] == ["FINISHED"] and nothing["status"].startswith("Nothing to remove")


def test_bpy_panel_shows_connection_prompts_and_one_cancel(addon_zip, server, tmp_path) -> None:
    out = tmp_path / "panel.json"
    d, proc = run_blender([PANEL_SESSION, addon_zip, server, dead_url(), out], out, tmp_path)
    check_panel_session(d, server)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in output, output[-6000:]


NO_MODEL = r'''
import json, sys, bpy
sys.path.insert(0, sys.argv[-1])
import recorder
zip_path, out = sys.argv[1:3]
bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
module = "bl_ext.user_default.motionclip_blender"
p = bpy.context.preferences.addons[module].preferences
res = {}
for op in ("setup_backend", "start_backend"):
    try:
        getattr(bpy.ops.motionclip, op)()
        res[op] = None
    except RuntimeError as exc:
        res[op] = str(exc)
res["env_made"] = sys.modules[module + ".setup_ui"].env_dir().exists()
res["prefs"] = " ".join(e[0] for e in recorder.draw(type(p), bpy.context, p))
json.dump(res, open(out, "w"))
'''


def test_addon_without_model_asks_for_a_checkpoint(tmp_path) -> None:
    """The add-on built with --without-model: Set Up Backend and Start Backend say the backend needs a
    checkpoint and where to set it (nothing is made), and the preferences say the build has no model."""
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON}")
    zip_path = build_addon.build(tmp_path / "dist", with_model=False)
    out = tmp_path / "nomodel.json"
    d, proc = run_blender(["-c", NO_MODEL, zip_path, out, REPO / "tests" / "blender_scripts"], out, tmp_path)
    for op in ("setup_backend", "start_backend"):
        assert "built without the built-in model" in d[op] and "set Checkpoint in Preferences > Add-ons > motionclip" \
            in d[op], d
    assert not d["env_made"]
    assert "This build carries no built-in model" in d["prefs"] and "CC BY-NC" not in d["prefs"]


# ---------------------------------------------------------------- the set-up's logic outside Blender
# (blender_addon/envsetup.py imports no bpy: loaded here on its own)

_spec = importlib.util.spec_from_file_location("motionclip_addon_envsetup", REPO / "blender_addon" / "envsetup.py")
envsetup = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = envsetup
_spec.loader.exec_module(envsetup)

# pip 24's output for a small install (abridged from a real run).
PIP_OUTPUT = """\
Looking in indexes: https://download.pytorch.org/whl/cpu
Collecting torch
  Downloading https://download.pytorch.org/whl/cpu/torch-2.5.1%2Bcpu-cp311-cp311-linux_x86_64.whl (174.7 MB)
Collecting filelock (from torch)
  Using cached https://download.pytorch.org/whl/filelock-3.13.1-py3-none-any.whl (11 kB)
Requirement already satisfied: typing-extensions>=4.8.0 in ./env/lib/python3.11/site-packages (from torch) (4.12.2)
Processing ./wheels/sympy-1.13.1-py3-none-any.whl (from torch)
Installing collected packages: sympy, filelock, torch
Successfully installed filelock-3.13.1 sympy-1.13.1 torch-2.5.1+cpu
"""


def test_pip_output_is_counted() -> None:
    c = envsetup.PipCounter()
    seen = []
    for line in PIP_OUTPUT.splitlines():
        c.feed(line)
        seen.append((c.collected, c.satisfied, c.to_install, c.installed, round(c.fraction(), 3)))
    assert (c.collected, c.satisfied, c.to_install, c.installed) == (3, 1, 3, 3)
    assert c.text() == "3 collected, 1 already there, 3 installed"
    fractions = [f for *_, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[3] < 0.7
    c2 = envsetup.PipCounter()
    for line in PIP_OUTPUT.splitlines()[:3]:
        c2.feed(line)
    assert c2.text() == "1 collected, 0 already there, torch-2.5.1%2Bcpu-cp311-cp311-linux_x86_64.whl (174.7 MB)"


def test_progress_runs_over_the_steps() -> None:
    p = envsetup.Progress()
    p.enter(0)
    assert p.line() == "Step 1/6: Create environment" and p.fraction() == 0.0
    p.enter(2)
    p.counter = envsetup.PipCounter()
    for line in PIP_OUTPUT.splitlines():
        p.counter.feed(line)
    assert p.line() == "Step 3/6: Install PyTorch: 3 collected, 1 already there, 3 installed"
    assert p.fraction() == pytest.approx(sum(envsetup.WEIGHTS[:3]))
    p.enter(5, "http://127.0.0.1:8765")
    assert p.line() == "Step 6/6: Connect: http://127.0.0.1:8765"
    assert [h["step"] for h in p.history] == ["Create environment", "Install PyTorch", "Connect"]
    assert p.history[1]["installed"] == 3 and p.history[1]["collected"] == 3


def test_where_packages_come_from() -> None:
    O = envsetup.Options
    assert envsetup.pip_source_args(O(), torch=True) == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert envsetup.pip_source_args(O(torch_variant="CUDA"), torch=True)[1].startswith(
        "https://download.pytorch.org/whl/cu")
    assert envsetup.pip_source_args(O()) == []                           # PyPI
    assert envsetup.pip_source_args(O(torch_variant="DEFAULT", index_url="https://mirror/simple"), torch=True) == \
        ["--index-url", "https://mirror/simple"]
    assert envsetup.pip_source_args(O(index_url="file:///a file:///b", find_links="~/wheels")) == \
        ["--index-url", "file:///a", "--extra-index-url", "file:///b", "--find-links",
         os.path.expanduser("~/wheels")]
    assert envsetup.pip_source_args(O(no_index=True, find_links="/w"), torch=True) == ["--no-index", "--find-links", "/w"]
    assert envsetup.pip_source_args(O(torch_index="https://t/simple"), torch=True) == ["--index-url", "https://t/simple"]


def test_blenders_python_is_found_or_named(monkeypatch, tmp_path) -> None:
    assert Path(envsetup.base_python()).is_file()
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "blender"))
    with pytest.raises(envsetup.SetupError, match="Blender's Python was not found under .*This Python"):
        envsetup.base_python()


def test_env_python_and_readiness(tmp_path) -> None:
    py = envsetup.env_python(tmp_path)
    assert py == tmp_path / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    assert not envsetup.is_ready(tmp_path)
    py.parent.mkdir(parents=True)
    py.write_text("")
    assert not envsetup.is_ready(tmp_path)                              # installed only when the marker is there
    (tmp_path / envsetup.MARKER).write_text("{}")
    assert envsetup.is_ready(tmp_path)
    assert envsetup.remove(tmp_path) and not tmp_path.exists() and not envsetup.remove(tmp_path)


def test_setup_refuses_a_missing_extra_folder_before_making_anything(tmp_path) -> None:
    opts = envsetup.Options(extra_site_packages=str(tmp_path / "nope"))
    setup = envsetup.Setup(tmp_path / "env", tmp_path / "setup.log", opts)
    with pytest.raises(envsetup.SetupError, match="Extra Site-Packages: no such folder .*nope"):
        setup.run()
    assert not (tmp_path / "env").exists()


def test_cancelled_setup_stops_before_the_next_step(tmp_path) -> None:
    setup = envsetup.Setup(tmp_path / "env", tmp_path / "setup.log", envsetup.Options())
    setup.cancel()
    with pytest.raises(envsetup.SetupError, match="cancelled; press Set Up Backend"):
        setup.run()
    assert not (tmp_path / "env").exists()


# ---------------------------------------------------------------- the panel's states in a real window

GUI_STATES = REPO / "tests" / "blender_scripts" / "gui_states.py"
STATES = ("no_backend", "setting_up", "ready", "generating", "error")


class HangingBackend:
    """A server whose /health is the real backend's and whose requests never get an answer (until
    closed): a Generate stays in flight for as long as a screenshot needs."""

    def __init__(self, health_url: str):
        import http.server
        import threading

        release = self.release = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                try:
                    with urllib.request.urlopen(health_url + "/health", timeout=5) as resp:
                        body, code = resp.read(), resp.status
                except OSError as exc:
                    body, code = json.dumps({"error": {"message": str(exc)}}).encode(), 503
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                release.wait(300)
                self.send_response(503)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()


def click_sidebar_tab(display: str, env: dict, ready: dict, shot: Path) -> None:
    """Close the first-run splash, then click the sidebar's last tab (the add-on's) as a user would."""
    xdo = ["xdotool"]
    win_w, win_h = ready["window"]
    subprocess.run(xdo + ["mousemove", str(win_w // 2), str(win_h - 10), "sleep", "0.3", "click", "1", "sleep", "0.5"],
                   env=env, check=True, timeout=30)
    x0, y0, w, h = ready["sidebar"]
    before = screenshot(display, shot)
    top, bottom = win_h - (y0 + h), win_h - y0        # Blender's y runs upwards
    col = before[top:bottom, x0 + w - 21].sum(-1)       # a column through the tab strip
    strip = int(np.bincount(col).argmax())              # the strip's own colour, below the tabs
    end = next((i for i in range(len(col) - 50) if (col[i:i + 50] == strip).all()), 0)
    assert end > 20, "no sidebar tabs found"
    subprocess.run(xdo + ["mousemove", str(x0 + w - 12), str(top + end - 12), "click", "1", "sleep", "0.3",
                          "mousemove", str(win_w // 2), str(win_h - 200)], env=env, check=True, timeout=30)


def save_crop(full: Path, out: Path, ready: dict) -> None:
    """The right part of the window (the viewport's edge and the sidebar), as a small palette PNG."""
    from PIL import Image

    win_w, win_h = ready["window"]
    x0 = ready["sidebar"][0]
    img = Image.open(full).convert("RGB").crop((max(0, x0 - 420), 0, win_w, win_h))
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


@pytest.mark.slow
def test_real_blender_window_shows_each_state_of_the_panel(addon_zip, tmp_path) -> None:
    """Debian's Blender 3.4 in a real window on Xvfb goes through the panel's states (no backend,
    setting up, ready, generating, error) with the set-up done for real from local folders (as in
    test_setup_backend_in_one_click), and a screenshot of each; $MOTIONCLIP_SCREENSHOT_DIR keeps
    them (the README's docs/addon/)."""
    tools = [shutil.which(t) for t in ("blender", "Xvfb", "xdotool", "import")]
    if None in tools:
        pytest.skip("needs blender, Xvfb, xdotool and ImageMagick's import (apt-get install blender "
                    "python3-numpy xvfb xdotool imagemagick)")
    site = site_packages()
    links = tmp_path / "wheels"
    for name in ("setuptools", "pip"):
        wheelhouse.repack(site, name, links)
    extra = wheelhouse.mirror(site, tmp_path / "site", skip=("motionclip", "setuptools", "pip"))
    url = dead_url()
    hang = HangingBackend(url)
    config = tmp_path / "gui.json"
    config.write_text(json.dumps({"url": url, "hang_url": hang.url, "dead_url": dead_url(),
                                  "prefs": {"find_links": str(links), "no_index": True,
                                            "extra_site_packages": str(extra)}}))
    state = tmp_path / "state"
    state.mkdir()
    keep = os.environ.get("MOTIONCLIP_SCREENSHOT_DIR")
    with blender_window(GUI_STATES, [addon_zip, config, state], tmp_path, "1280x1024x24") as window, \
            contextlib.closing(hang):
        display, env, blender, log = window
        first = wait_for(state / "no_backend.json", blender, log)
        for _ in range(5):  # the first click may only close the splash screen
            click_sidebar_tab(display, env, first, tmp_path / "before.png")
            deadline = time.monotonic() + 6
            while not (state / "no_backend_shown.json").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            if (state / "no_backend_shown.json").exists():
                break
        seen: dict[str, dict] = {}
        shots: dict[str, np.ndarray] = {}
        for i, name in enumerate(STATES):
            failed = state / "failed.json"
            d = wait_for(state / (f"{name}.json" if name != "no_backend" else "no_backend_shown.json"), blender, log,
                         900)
            assert not failed.exists(), failed.read_text()
            x0, y0, w, h = first["sidebar"]   # the pointer over the panel's header and back: Blender lays it out again
            subprocess.run(["xdotool", "mousemove", str(x0 + 60), str(first["window"][1] - (y0 + h) + 12), "sleep", "0.4",
                            "mousemove", str(first["window"][0] // 3), str(first["window"][1] - 200), "sleep", "0.6"],
                           env=env, check=True, timeout=30)
            full = tmp_path / f"{name}.png"
            shots[name] = screenshot(display, full)
            seen[name] = d
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                save_crop(full, Path(keep) / f"{i + 1}-{name.replace('_', '-')}.png", first)
            (state / f"{name}.done").touch()
        assert blender.wait(120) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    # What each state was when its screenshot was taken.
    nb = seen["no_backend"]
    assert nb["panel_draws"] > first["panel_draws"] and nb["connection"][1] is False and not nb["running"]
    su = seen["setting_up"]
    assert su["running"] and su["status"].startswith("Setting up backend... ") and su["detail"].startswith("Step ")
    assert 0.1 < su["fraction"] < 1.0 and "collected" in su["detail"], su
    rd = seen["ready"]
    assert rd["error"] == "" and rd["connection"][1] is True and rd["armature"]["location"] == [1.5, 0.0, 0.0], rd
    assert rd["status"].startswith('SMPL (new): "a person walks forward and waves"')
    gen = seen["generating"]
    assert gen["running"] and gen["status"].startswith("Generating... ") and gen["connection"][1] is True, gen
    err = seen["error"]
    assert not err["running"] and "cannot reach the backend" in err["error"] and err["connection"][1] is False
    assert err["info"]["cancel"] == ["FINISHED"] and not err["info"]["after_cancel"]["running"]
    # Each screenshot shows a different panel (the sidebar's pixels changed from state to state).
    x0, y0, w, h = first["sidebar"]
    top, bottom = first["window"][1] - (y0 + h), first["window"][1] - y0
    side = (slice(top, bottom), slice(x0, x0 + w - 25))
    for a, b in zip(STATES, STATES[1:]):
        assert np.abs(shots[a][side] - shots[b][side]).sum(-1).astype(bool).mean() > 0.01, (a, b)


@pytest.mark.slow
def test_debian_blender_panel_shows_connection_prompts_and_one_cancel(addon_zip, server, tmp_path) -> None:
    """The same panel checks in Debian's `blender -b` 3.4 (a legacy add-on; its user folder is datafiles/)."""
    out = tmp_path / "panel.json"
    d, proc = run_blender([PANEL_SESSION, addon_zip, server, dead_url(), out], out, tmp_path, debian=True)
    assert d["blender"].startswith("3.")
    check_panel_session(d, server)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in output, output[-6000:]
