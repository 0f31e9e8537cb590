"""The Blender renderer against pyrender: same pose, same silhouette (slow: Blender runs as a subprocess).

Run for each Blender present: Blender 5 as the bpy module (.venv-blender) and Debian's `blender`
3.4 binary. Skipped, with the reason, where neither exists.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

for _module in ("pyrender", "mannequin"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed", allow_module_level=True)

from motionclip.core.cli import main  # noqa: E402
from motionclip.core.data.synth import generate_clip  # noqa: E402
from motionclip.render import RenderError, SceneOptions, make_body, render_frames  # noqa: E402
from motionclip.render.video import probe_video  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
BLENDERS = {"bpy-5": REPO / ".venv-blender" / "bin" / "python", "blender-3.4": shutil.which("blender")}


def _blender(name: str) -> str:
    path = BLENDERS[name]
    if not path or not Path(path).exists():
        pytest.skip(f"{name} is not installed here ({path})")
    return str(path)


@pytest.fixture(scope="module")
def wave():
    m, _ = generate_clip("wave", np.random.default_rng(0), duration=2.0)
    return m


def mask(img: np.ndarray) -> np.ndarray:
    return np.abs(img.astype(int) - 255).max(-1) > 12


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("name", list(BLENDERS))
@pytest.mark.parametrize("body", ["mannequin", "skeleton"])
def test_blender_and_pyrender_silhouettes_agree(wave, name, body) -> None:
    blender = _blender(name)
    frames = [0, 30, 55]
    opts = SceneOptions(size=128, floor=False, camera="frame")
    b = make_body(body)
    ours = render_frames(wave, frames, body=b, options=opts)
    theirs = render_frames(wave, frames, body=b, options=opts, renderer="blender",
                           renderer_options={"blender": blender})
    assert theirs.shape == ours.shape == (3, 128, 128, 3)
    for i in range(3):
        corners = theirs[i][[0, 0, -1, -1], [0, -1, 0, -1]]
        assert (corners == 255).all(), corners  # white background composited behind Blender's transparent film
        m_ours, m_theirs = mask(ours[i]), mask(theirs[i])
        assert m_theirs.sum() > 500
        assert iou(m_ours, m_theirs) > 0.9, (name, body, frames[i], iou(m_ours, m_theirs))


@pytest.mark.parametrize("name,engine", [("bpy-5", "cycles"), ("blender-3.4", "eevee"), ("blender-3.4", "cycles")])
def test_other_engines_draw_the_same_body(wave, name, engine) -> None:
    blender = _blender(name)
    opts = SceneOptions(size=96, floor=True, camera="fit")
    b = make_body("mannequin")
    ours = render_frames(wave, [40], body=b, options=SceneOptions(size=96, floor=False, camera="fit"))[0]
    img = render_frames(wave, [40], body=b, options=opts, renderer="blender",
                        renderer_options={"blender": blender, "engine": engine, "samples": 4})[0]
    floor_free = render_frames(wave, [40], body=b, options=SceneOptions(size=96, floor=False, camera="fit"),
                               renderer="blender", renderer_options={"blender": blender, "engine": engine,
                                                                     "samples": 4})[0]
    assert iou(mask(ours), mask(floor_free)) > 0.85
    assert (mask(img) & ~mask(floor_free)).sum() > 300  # the floor is drawn


def test_blender_video_from_the_cli(wave, tmp_path) -> None:
    _blender("bpy-5")
    src = tmp_path / "wave.motion"
    wave.crop(0, 12).save(src)
    out = tmp_path / "wave.mp4"
    assert main(["render", str(src), "--out", str(out), "--renderer", "blender", "--blender",
                 str(BLENDERS["bpy-5"]), "--size", "64", "--quiet"]) == 0
    assert probe_video(out) == {"frames": 12, "fps": 30.0, "size": (64, 64)}


def test_a_python_without_bpy_is_a_clear_error(wave) -> None:
    with pytest.raises(RenderError, match="no bpy module"):
        render_frames(wave, [0], body="skeleton", size=32, renderer="blender",
                      renderer_options={"blender": sys.executable})
