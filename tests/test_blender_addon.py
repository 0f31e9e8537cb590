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
TINY = dict(model="small", model_overrides={"enc_layers": 1, "dec_layers": 1, "ff_dim": 64, "heads": 2},
            encoder="clip-random:tiny", epochs=2, batch_size=8, window=60, max_steps_per_epoch=4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    from motionclip.core.data.synth import synthesize
    from motionclip.train.autoencoder import load_train_config, train_autoencoder

    root = tmp_path_factory.mktemp("addon_model")
    synthesize(root / "data", clips=24, seed=0, progress=False)
    train_autoencoder(root / "data", root / "run", load_train_config(None, TINY), progress=False)
    return root / "run"


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
        assert {"motionclip_blender/__init__.py", "motionclip_blender/blender_manifest.toml",
                "motionclip_blender/batch.py", "motionclip_blender/protocol.py",
                "motionclip_blender/backend/pyproject.toml", "motionclip_blender/backend/core/protocol.py",
                "motionclip_blender/backend/core/server/app.py", "motionclip_blender/backend/core/cli.py"} <= names
        # The wire protocol is the backend's own file, byte for byte.
        assert zf.read("motionclip_blender/protocol.py") == (REPO / "core" / "protocol.py").read_bytes()
        # So are the scene pieces both headless Blender pipelines share.
        assert zf.read("motionclip_blender/shared_scene.py") == (REPO / "render" / "shared_scene.py").read_bytes()
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        assert all(n.startswith("motionclip_blender/") for n in names)
        manifest = zf.read("motionclip_blender/blender_manifest.toml").decode()
    assert 'id = "motionclip_blender"' in manifest
    assert addon_zip.name == f"motionclip_blender-{build_addon.versions()['pyproject.toml']}.zip"
    # The add-on itself never imports torch or the backend.
    for f in (REPO / "blender_addon").glob("*.py"):
        assert not re.search(r"^\s*(import|from)\s+(torch|numpy\.torch|motionclip)\b", f.read_text(), re.M), f


def test_bpy_extension_generates_against_real_server(addon_zip, server, tmp_path) -> None:
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON} (python3 -m venv .venv-blender && "
                    ".venv-blender/bin/pip install bpy==5.0.1)")
    out = tmp_path / "session.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")  # a throwaway user folder for the extension
    proc = subprocess.run([str(BLENDER_PYTHON), str(SESSION), str(addon_zip), server, dead_url(), str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["blender"].startswith("5.") and d["module"] == "bl_ext.user_default.motionclip_blender"
    check_session(d, server)
    assert proc.returncode == 0


@pytest.mark.slow
def test_debian_blender_legacy_addon_generates(addon_zip, server, tmp_path) -> None:
    if DEBIAN_BLENDER is None:
        pytest.skip("no `blender` on PATH (apt-get install blender python3-numpy)")
    out = tmp_path / "session.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"), BLENDER_USER_CONFIG=str(tmp_path / "config"))
    proc = subprocess.run([DEBIAN_BLENDER, "-b", "--factory-startup", "--python-exit-code", "1", "--python",
                           str(SESSION), "--", str(addon_zip), server, dead_url(), str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(out.read_text())
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
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON}")
    out = tmp_path / "errors.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")
    proc = subprocess.run([str(BLENDER_PYTHON), str(ERROR_SESSION), str(addon_zip), token_server, TOKEN, dead_url(),
                           str(out)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["blender"].startswith("5.")
    check_error_paths(d, proc.stdout + proc.stderr)
    assert proc.returncode == 0


@pytest.mark.slow
def test_debian_blender_error_paths_never_crash(addon_zip, token_server, tmp_path) -> None:
    if DEBIAN_BLENDER is None:
        pytest.skip("no `blender` on PATH (apt-get install blender python3-numpy)")
    out = tmp_path / "errors.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"), BLENDER_USER_CONFIG=str(tmp_path / "config"))
    proc = subprocess.run([DEBIAN_BLENDER, "-b", "--factory-startup", "--python-exit-code", "1", "--python",
                           str(ERROR_SESSION), "--", str(addon_zip), token_server, TOKEN, dead_url(), str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(out.read_text())
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
p.python_path, p.checkpoint, p.port = python, run, int(port)
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
    if not BLENDER_PYTHON.exists():
        pytest.skip(f"no Blender-side Python at {BLENDER_PYTHON}")
    out, port = tmp_path / "start.json", free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["BLENDER_USER_RESOURCES"] = str(tmp_path / "user")
    proc = subprocess.run([str(BLENDER_PYTHON), "-c", START_BACKEND, str(addon_zip), sys.executable, str(tiny_run),
                           str(port), str(out)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["op"] == ["FINISHED"] and d["error"] == "", d
    assert d["url"] == f"http://127.0.0.1:{port}" and d["status"] == f"Backend running at {d['url']}"
    assert "clip-random:tiny" in d["server"] and d["running"]
    assert not d["running_after_disable"]
    with pytest.raises(OSError):  # nothing listens there any more
        urllib.request.urlopen(d["url"] + "/health", timeout=2)


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


@pytest.mark.slow
def test_real_blender_window_generates_and_shows_the_panel(addon_zip, server, tmp_path) -> None:
    """Debian's Blender 3.4 in a real window on Xvfb: press Generate in the sidebar, see the armature
    keyed and the panel's status line, and take a screenshot (kept in $MOTIONCLIP_SCREENSHOT_DIR when
    set). The operator returns at once while the request runs on the add-on's worker thread."""
    tools = [shutil.which(t) for t in ("blender", "Xvfb", "xdotool", "import")]
    if None in tools:
        pytest.skip("needs blender, Xvfb, xdotool and ImageMagick's import (apt-get install blender "
                    "python3-numpy xvfb xdotool imagemagick)")
    n = free_display()
    display = f":{n}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "blender.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(DISPLAY=display, BLENDER_USER_SCRIPTS=str(tmp_path / "scripts"),
               BLENDER_USER_CONFIG=str(tmp_path / "config"))
    blender = None
    try:
        deadline = time.monotonic() + 30
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            assert xvfb.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        with open(log, "wb") as fh:
            blender = subprocess.Popen([DEBIAN_BLENDER, "--factory-startup", "--python", str(GUI_SESSION), "--",
                                        str(addon_zip), server, str(state)], env=env, cwd=tmp_path,
                                       stdout=fh, stderr=subprocess.STDOUT)
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
    finally:
        if blender is not None and blender.poll() is None:
            blender.kill()
        xvfb.terminate()
        xvfb.wait(10)
