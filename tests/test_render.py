"""Rendering with pyrender (offscreen EGL): pixels, bodies, videos, the CLI and its errors.

The pictures are checked for what a person would look at: the body is inside the frame on every
frame of a clip that travels, the background has the asked-for colour, a video has the motion's
frame count and frame rate. The Blender renderer's checks are in test_render_blender.py (slow).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

for _module in ("pyrender", "mannequin", "imageio_ffmpeg"):  # not imported here: pyrender must not pick a platform
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed (pip install 'motionclip[render]')", allow_module_level=True)

from motionclip.core.cli import main  # noqa: E402
from motionclip.core.data.synth import generate_clip  # noqa: E402
from motionclip.core.io.json_motion import write_json  # noqa: E402
from motionclip.core.motion import Motion  # noqa: E402
from motionclip.core.skeleton import neutral_skeleton  # noqa: E402
from motionclip.render import RenderError, SceneOptions, make_body, render_frames  # noqa: E402
from motionclip.render.bodies import MannequinBody, _import_mannequin  # noqa: E402
from motionclip.render.pyrender_backend import choose_platform  # noqa: E402
from motionclip.render.scene import make_scene, project  # noqa: E402
from motionclip.render.video import probe_video  # noqa: E402


def _pyrender_works() -> bool:
    try:
        choose_platform()
    except RenderError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _pyrender_works(), reason="no EGL / OSMesa library for offscreen rendering")


@pytest.fixture(scope="module")
def walk() -> Motion:
    """A walk that travels about a metre and a half (2 s at 30 fps)."""
    m, _ = generate_clip("walk", np.random.default_rng(3), duration=2.0, direction="forward")
    return m


@pytest.fixture(scope="module")
def bodies() -> dict:
    return {"skeleton": make_body("skeleton"), "mannequin": make_body("mannequin")}


def body_mask(img: np.ndarray, bg=(255, 255, 255), tol: int = 12) -> np.ndarray:
    return (np.abs(img.astype(int) - np.array(bg)).max(-1) > tol)


@pytest.mark.parametrize("camera", ["fit", "follow", "frame"])
def test_body_stays_in_frame_over_the_whole_clip(walk, bodies, camera) -> None:
    travel = float((walk.trans[-1] - walk.trans[0]).norm())
    assert travel > 1.0  # the clip really travels: a camera fitted to one frame would lose the body
    body = bodies["mannequin"]
    opts = SceneOptions(size=96, camera=camera, floor=False)
    frames = list(range(0, walk.num_frames, 3))
    images = render_frames(walk, frames, body=body, options=opts)
    assert images.shape == (len(frames), 96, 96, 3) and images.dtype == np.uint8
    posed = body.pose(walk, frames)
    spec = make_scene(posed.vertices, posed.joints, opts, body.color)
    for i, img in enumerate(images):
        mask = body_mask(img)
        assert mask.sum() > 150, f"frame {frames[i]}: almost no body pixels ({mask.sum()})"
        border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        assert not border.any(), f"frame {frames[i]} ({camera}): the body touches the image border"
        # Every vertex projects inside the picture, and the body fills a fair share of it.
        px = project(posed.vertices[i], spec.cameras[i], spec.yfov, 96, 96)
        assert (px >= 0).all() and (px <= 96).all()
        ys, xs = np.nonzero(mask)
        if camera == "frame":
            assert ys.max() - ys.min() > 0.7 * 96  # fitted to this frame alone: the body is big
    if camera == "fit":  # one fixed camera: walking toward it, the body grows
        heights = [np.ptp(np.nonzero(body_mask(im))[0]) for im in images]
        assert heights[-1] != heights[0]


def test_background_colour_and_default_white(walk, bodies) -> None:
    body = bodies["skeleton"]
    img = render_frames(walk, [10], body=body, options=SceneOptions(size=64, floor=False))[0]
    corners = img[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all(), corners  # plain body on white: the look of MotionCLIP's frames
    bg = (0.2, 0.4, 0.6)
    img = render_frames(walk, [10], body=body, options=SceneOptions(size=64, floor=False, background=bg))[0]
    want = np.round(np.array(bg) * 255)
    for c in img[[0, 0, -1, -1], [0, -1, 0, -1]]:
        assert np.abs(c.astype(int) - want).max() <= 1, (c, want)
    # The body itself is drawn in another colour than the background.
    assert body_mask(img, want).sum() > 30


def test_floor_is_drawn_under_the_body(walk, bodies) -> None:
    body = bodies["skeleton"]
    with_floor = render_frames(walk, [0], body=body, options=SceneOptions(size=64, floor=True))[0]
    without = render_frames(walk, [0], body=body, options=SceneOptions(size=64, floor=False))[0]
    floor_px = body_mask(with_floor) & ~body_mask(without)
    assert floor_px.sum() > 200  # a grey floor plane fills much of the lower picture
    assert floor_px[48:].sum() > floor_px[:16].sum()


def test_lambert_shading_matches_pyrender_shaders(walk, bodies) -> None:
    """Our Lambert shaders (the default) draw the same silhouette as pyrender's own, with shading."""
    opts = SceneOptions(size=96, floor=False, camera="frame")
    body = bodies["mannequin"]
    ours = render_frames(walk, [12], body=body, options=opts)[0]
    theirs = render_frames(walk, [12], body=body, options=opts, renderer_options={"shading": "pbr"})[0]
    a, b = body_mask(ours), body_mask(theirs)
    assert (a & b).sum() / (a | b).sum() > 0.97
    lum = ours[a].astype(float).mean(-1)
    assert lum.max() - lum.min() > 60  # lit and shadowed sides, not a flat silhouette
    assert abs(lum.mean() - theirs[b].astype(float).mean(-1).mean()) < 25  # about as bright
    with pytest.raises(RenderError, match="unknown pyrender shading"):
        render_frames(walk, [0], body=body, options=opts, renderer_options={"shading": "toon"})


def test_mannequin_skinning_matches_mannequin_x() -> None:
    """Our skinning of the full-resolution mannequin gives mannequin-x's own vertices."""
    rng = np.random.default_rng(0)
    aa = torch.tensor(rng.normal(0, 0.4, size=(3, 24, 3)), dtype=torch.float32)
    trans = torch.tensor(rng.normal(0, 0.3, size=(3, 3)), dtype=torch.float32)
    motion = Motion.from_axis_angle(aa, trans, 30.0)
    body = MannequinBody(max_faces=0)
    ours = body.pose(motion).vertices
    m = _import_mannequin()("wooden")
    theirs = m.vertices(body.mannequin_pose(motion, torch.arange(3)))
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-4)
    # The mannequin's joints are where our forward kinematics puts SMPL's, within the 1-2 cm by which
    # our neutral skeleton (the same calibration, made left/right symmetric) differs from it. Body
    # joints only: its hand joints sit at the wrists, SMPL's at the knuckles.
    jt = m.joint_transforms(body.mannequin_pose(motion, torch.arange(3)))[:, :22, :3, 3]
    fk = motion.joints(neutral_skeleton())[:, :22].numpy()
    assert np.abs(jt - fk).max() < 0.025


def test_decimated_mannequin_keeps_the_silhouette(walk) -> None:
    full = MannequinBody(max_faces=0)
    small = make_body("mannequin")
    assert small.num_faces <= 12000 < full.num_faces
    opts = SceneOptions(size=128, floor=False, camera="frame")
    a = body_mask(render_frames(walk, [20], body=full, options=opts)[0])
    b = body_mask(render_frames(walk, [20], body=small, options=opts)[0])
    assert (a & b).sum() / (a | b).sum() > 0.9


def test_smpl_body_through_smplx(tmp_path, walk, monkeypatch) -> None:
    """--body smpl reads an SMPL file through smplx. No licensed file exists here, so the test writes an
    SMPL-format file whose template is the mannequin's mesh, skinned to SMPL's 24 joints; the SMPL
    body must then cover the same pixels as the mannequin."""
    pytest.importorskip("smplx")
    path = write_mannequin_as_smpl(tmp_path / "SMPL_NEUTRAL.npz")
    smpl = make_body("smpl", smpl_model=path)
    assert smpl.name == "smpl" and smpl.num_faces > 1000
    opts = SceneOptions(size=128, floor=False, camera="frame")
    a = body_mask(render_frames(walk, [5, 30], body=smpl, options=opts)[1])
    b = body_mask(render_frames(walk, [5, 30], body=make_body("mannequin"), options=opts)[1])
    assert (a & b).sum() / (a | b).sum() > 0.85
    monkeypatch.delenv("MOTIONCLIP_SMPL_MODEL", raising=False)
    with pytest.raises(RenderError, match="needs your SMPL / SMPL-H / SMPL-X model file"):
        make_body("smpl")


def write_mannequin_as_smpl(path: Path) -> Path:
    """An SMPL-layout .npz (v_template, f, J_regressor, weights, kintree_table, shapedirs, posedirs)
    holding the decimated mannequin mesh, its skin weights folded onto SMPL's 24 joints, and 24
    extra unused vertices at the neutral skeleton's joints that the regressor picks exactly."""
    from motionclip.core.protocol import PARENTS
    from motionclip.render.bodies import _mannequin_mesh

    verts, faces, weights, _, names = _mannequin_mesh(8000)
    w24 = np.zeros((len(verts), 24), np.float64)
    for j, name in enumerate(names):
        col = j if j < 24 else (22 if name.startswith("L_") else 23)
        w24[:, col] += weights[:, j]
    joints = neutral_skeleton().rest_joints.double().numpy()
    v = np.concatenate([verts.astype(np.float64), joints])
    w = np.concatenate([w24, np.eye(24)])
    reg = np.zeros((24, len(v)))
    reg[np.arange(24), len(verts) + np.arange(24)] = 1.0
    kintree = np.array([[4294967295, *PARENTS[1:]], list(range(24))], dtype=np.int64)
    np.savez(path, v_template=v, f=faces.astype(np.uint32), J_regressor=reg, weights=w, kintree_table=kintree,
             shapedirs=np.zeros((len(v), 3, 10)), posedirs=np.zeros((len(v), 3, 207)))
    return path


def test_video_frame_count_and_rate(tmp_path, walk) -> None:
    src = tmp_path / "walk.json"
    write_json(walk.crop(0, 45), src)
    out = tmp_path / "walk.mp4"
    assert main(["render", str(src), "--out", str(out), "--size", "64", "--body", "skeleton", "--quiet"]) == 0
    info = probe_video(out)
    assert info == {"frames": 45, "fps": 30.0, "size": (64, 64)}
    # Every 3rd frame: 15 frames that play at 10 fps, the same duration.
    out2 = tmp_path / "every3.mp4"
    assert main(["render", str(src), "--out", str(out2), "--size", "66x50", "--body", "skeleton", "--frames",
                 "0:45:3", "--quiet"]) == 0
    assert probe_video(out2) == {"frames": 15, "fps": 10.0, "size": (66, 50)}
    gif = tmp_path / "walk.gif"
    assert main(["render", str(src), "--out", str(gif), "--size", "48", "--body", "skeleton", "--fps", "15",
                 "--quiet"]) == 0
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 23  # 1.5 s at 15 fps
        assert im.info["duration"] == 70  # GIF delays are in 1/100 s: 7/100 s is the nearest to 1/15 s


def test_frames_folder_and_contact_sheet(tmp_path, walk) -> None:
    from PIL import Image

    src = tmp_path / "walk.motion"
    walk.save(src)
    folder = tmp_path / "frames"
    assert main(["render", str(src), "--out", str(folder), "--size", "40", "--frames", "0,10,20", "--body",
                 "skeleton", "--quiet"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["frame_00000.png", "frame_00010.png", "frame_00020.png"]
    sheet = tmp_path / "sheet.png"
    assert main(["render", str(src), "--out", str(sheet), "--contact-sheet", "--size", "40", "--body", "skeleton",
                 "--quiet"]) == 0
    with Image.open(sheet) as im:
        w, h = im.size
    assert (w, h) == (4 * 40 + 5 * 2, 4 * 40 + 5 * 2)  # 16 frames in a 4 x 4 grid, 2-pixel gaps


def one_line_error(capsys, argv, *needles) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


def test_bad_input_gets_clear_errors(tmp_path, walk, capsys) -> None:
    good = tmp_path / "walk.motion"
    walk.save(good)
    bad = tmp_path / "broken.bvh"
    bad.write_text("HIERARCHY\nROOT hips {\n")
    one_line_error(capsys, ["render", str(bad), "--out", str(tmp_path / "a.mp4")], "cannot read the motion file",
                   "broken.bvh")
    one_line_error(capsys, ["render", str(tmp_path / "missing.bvh"), "--out", str(tmp_path / "a.mp4")], "not found")
    one_line_error(capsys, ["render", str(good), "--out", str(tmp_path / "a.mp4"), "--renderer", "povray"],
                   "unknown renderer 'povray'", "pyrender")
    one_line_error(capsys, ["render", str(good), "--out", str(tmp_path / "a.mp4"), "--body", "robot"],
                   "unknown body 'robot'", "mannequin")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(capsys, ["render", str(good), "--out", str(blocker / "a.mp4")], "is a file, not a folder")
    one_line_error(capsys, ["render", str(good), "--out", str(tmp_path / "a.avi")], "FILE.mp4")
    one_line_error(capsys, ["render", str(good), "--out", str(tmp_path / "a.mp4"), "--frames", "0,999"],
                   "frame 999 is out of range")
    one_line_error(capsys, ["render", str(good), "--out", str(tmp_path / "s.mp4"), "--contact-sheet"], "FILE.png")
    # several frames into one PNG: refused before anything is rendered (no progress bar, no file)
    one_line_error(capsys, ["render", str(good), "--out", str(tmp_path / "one.png")], "one PNG holds one frame",
                   "--contact-sheet")
    assert not (tmp_path / "one.png").exists()
    missing = tmp_path / "nowhere" / "blender"
    one_line_error(capsys, ["render", str(good), "--out", str(tmp_path / "a.mp4"), "--renderer", "blender",
                            "--blender", str(missing)], "Blender not found", str(missing))
    assert not (tmp_path / "a.mp4").exists()


def test_no_egl_and_no_osmesa_is_a_clear_error() -> None:
    with pytest.raises(RenderError, match="neither is installed.*libegl1"):
        choose_platform(env={}, find=lambda name: None)
    with pytest.raises(RenderError, match="PYOPENGL_PLATFORM=osmesa but libOSMesa is not installed"):
        choose_platform(env={"PYOPENGL_PLATFORM": "osmesa"}, find=lambda name: None)
    with pytest.raises(RenderError, match="cannot render offscreen"):
        choose_platform(env={"PYOPENGL_PLATFORM": "glx"})
    # Without EGL but with OSMesa, OSMesa is chosen.
    import ctypes.util

    real = ctypes.util.find_library
    assert choose_platform(env={}, find=lambda n: real("c") if n == "OSMesa" else None) == "osmesa"


def test_render_api_errors(walk) -> None:
    with pytest.raises(RenderError, match="out of range"):
        render_frames(walk, [walk.num_frames], body="skeleton")
    with pytest.raises(RenderError, match="empty"):
        render_frames(walk, [], body="skeleton")
    with pytest.raises(RenderError, match="unknown camera"):
        render_frames(walk, [0], body="skeleton", camera="drone")
    with pytest.raises(RenderError, match="image size"):
        render_frames(walk, [0], body="skeleton", size=4)


def test_render_help(capsys) -> None:
    for cmd in ("render", "embed-frames"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "--renderer" in capsys.readouterr().out


def _run_python(code: str, env: dict | None = None) -> "subprocess.CompletedProcess":
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=600)


def test_render_then_clip_in_one_process() -> None:
    """Rendering first, then loading CLIP (which imports triton) must not crash the process: Mesa's
    LLVM and triton's clash unless triton is loaded first, which the renderer makes sure of."""
    pytest.importorskip("clip")
    code = (
        "import numpy as np, torch\n"
        "from motionclip.core.motion import Motion\n"
        "from motionclip.render import render_frames\n"
        "img = render_frames(Motion.rest(2), [0], body='skeleton', size=32)\n"
        "from motionclip.core.encoders import load_encoder\n"
        "enc = load_encoder('clip-random:tiny', device='cpu')\n"
        "print(enc.encode_image(torch.from_numpy(img).permute(0, 3, 1, 2)).shape)\n"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch.Size([1, 64])" in proc.stdout


@pytest.mark.slow
def test_osmesa_draws_what_egl_draws(tmp_path, walk) -> None:
    """The OSMesa fallback (its own process: PyOpenGL picks the platform once) gives EGL's picture, but
    for anti-aliasing (OSMesa has no multisampling): the masks leave out the faint edge pixels."""
    import ctypes.util

    if not ctypes.util.find_library("OSMesa"):
        pytest.skip("libOSMesa is not installed (apt-get install libosmesa6)")
    src = tmp_path / "walk.motion"
    walk.save(src)
    out = tmp_path / "osmesa.npy"
    code = (
        "import numpy as np\n"
        "from motionclip.core.motion import Motion\n"
        "from motionclip.render import render_frames, SceneOptions\n"
        f"m = Motion.load({str(src)!r})\n"
        "img = render_frames(m, [0, 20], body='mannequin', options=SceneOptions(size=96, floor=False))\n"
        f"np.save({str(out)!r}, img)\n"
    )
    proc = _run_python(code, {"PYOPENGL_PLATFORM": "osmesa"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    osmesa = np.load(out)
    egl = render_frames(walk, [0, 20], body="mannequin", options=SceneOptions(size=96, floor=False))
    for a, b in zip(osmesa, egl):
        ma, mb = body_mask(a, tol=60), body_mask(b, tol=60)
        assert ma.sum() > 300 and (ma & mb).sum() / (ma | mb).sum() > 0.92
