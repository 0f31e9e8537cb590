"""`motionclip gallery`: contact sheets, figures and Markdown for a few prompts, and its errors.

The figures are checked on synthetic clips whose motion is known (a walk steps, a wave swings one
hand, raised arms go above the head); the command runs on a tiny model trained for a few steps.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import train_tiny
from motionclip.core.cli import main
from motionclip.core.data.synth import generate_clip
from motionclip.render.gallery import DEFAULT_PROMPTS, MARK_BEGIN, MARK_END, motion_figures, sheet_frames

PROMPTS = ["a person walks forward", "a person waves with the right hand"]


def _render_skip_reason() -> str | None:
    for module in ("pyrender", "mannequin", "PIL"):  # not imported here: pyrender must not pick a platform
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'motionclip[render]')"
    from motionclip.render import RenderError
    from motionclip.render.pyrender_backend import choose_platform

    try:
        choose_platform()
    except RenderError as exc:
        return f"no EGL / OSMesa library for offscreen rendering: {exc}"
    return None


needs_render = pytest.mark.skipif(_render_skip_reason() is not None, reason=str(_render_skip_reason()))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny model trained for a few steps through the real trainer (random tiny CLIP encoder)."""
    return train_tiny(tmp_path_factory.mktemp("gallery_model"), clips=12, epochs=1, max_steps_per_epoch=3)


def test_default_prompts_and_sheet_frames() -> None:
    assert len(DEFAULT_PROMPTS) == 8 and len(set(DEFAULT_PROMPTS)) == 8
    assert sheet_frames(120, 8) == [0, 17, 34, 51, 68, 85, 102, 119]
    assert sheet_frames(5, 8) == [0, 1, 2, 3, 4] and sheet_frames(10, 1) == [0]


def test_figures_tell_moving_from_still() -> None:
    rng = np.random.default_rng(0)
    walk, _ = generate_clip("walk", rng, duration=3.0, direction="forward")
    wave, _ = generate_clip("wave", rng, duration=3.0, side="right")
    raised, _ = generate_clip("raise_both_arms", np.random.default_rng(5), duration=3.0)
    still = walk.copy(quats=walk.quats[:1].repeat(walk.num_frames, 1, 1), trans=walk.trans[:1].repeat(walk.num_frames, 1))
    fw, fv, fr, fs = (motion_figures(m) for m in (walk, wave, raised, still))
    for f in (fw, fv, fr, fs):
        assert all(math.isfinite(v) for v in f.values()), f
    assert fw["ankle_speed_m_s"] > 0.3 and fw["root_speed_m_s"] > 0.5 and fw["travel_m"] > 1.0, fw
    assert fs["ankle_speed_m_s"] == 0 and fs["root_speed_m_s"] == 0 and fs["travel_m"] == 0, fs
    assert fw["wrist_above_head_m"] < 0  # a walker's hands hang below the head
    assert fv["r_wrist_speed_m_s"] > 2 * fv["l_wrist_speed_m_s"], fv  # one hand waves
    assert raised.meta["variant"] == "overhead" and fr["wrist_above_head_m"] > 0.1, fr


@needs_render
def test_gallery_writes_sheets_figures_and_markdown(tiny_run, tmp_path, capsys) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\n" + "\n".join(PROMPTS) + "\n\n")
    readme = tmp_path / "README.md"
    # a mention of the marker inside prose is not the marker line
    readme.write_text(f"# project\n\n## Gallery\n\nThe list goes under `{MARK_BEGIN}`.\n\n{MARK_BEGIN}\n\n## Next\n")
    out = tmp_path / "gallery"
    size, n = 48, 4
    rc = main(["gallery", "--out", str(out), "--checkpoint", str(tiny_run), "--prompts", str(prompts),
               "--seconds", "1", "--frames-per-sheet", str(n), "--size", str(size), "--device", "cpu",
               "--readme", str(readme)])
    assert rc == 0
    from PIL import Image

    info = json.loads((out / "gallery.json").read_text())
    assert [e["prompt"] for e in info["prompts"]] == PROMPTS
    for e in info["prompts"]:
        path = out / e["image"]
        img = np.asarray(Image.open(path).convert("RGB"))
        # one row of n frames with a 2-pixel border around and between them
        assert img.shape == (size + 4, n * size + (n + 1) * 2, 3), (path, img.shape)
        for k in range(n):  # every frame has a body (or floor) drawn on the white background
            tile = img[2:2 + size, 2 + k * (size + 2): 2 + k * (size + 2) + size]
            drawn = (np.abs(tile.astype(int) - 255).max(-1) > 12).mean()
            assert 0.02 < drawn < 0.98, (path, k, drawn)
        assert len(e["sheet_frames"]) == n and e["frames"] == 30
        for key in ("ankle_speed_m_s", "wrist_speed_m_s", "l_wrist_speed_m_s", "r_wrist_speed_m_s", "root_speed_m_s", "travel_m",
                    "wrist_above_head_m"):
            assert math.isfinite(e[key]), (key, e)
        assert path.stat().st_size < 60_000
    md = (out / "README.md").read_text()
    snippet = (out / "snippet.md").read_text()
    for e in info["prompts"]:
        assert f"**{e['prompt']}**" in md and f"]({e['image']})" in md
        assert f"/{e['image']})" in snippet
    text = readme.read_text()
    assert text.count(MARK_BEGIN) == 2 and text.count(MARK_END) == 1 and text.endswith("## Next\n")
    assert text.index(f"`{MARK_BEGIN}`.\n\n{MARK_BEGIN}\n**a person walks forward**") > 0
    assert "](gallery/01-a-person-walks-forward.png)" in text
    # Run again: the README's block is replaced, not repeated.
    assert main(["gallery", "--out", str(out), "--checkpoint", str(tiny_run), "--prompts", str(prompts),
                 "--seconds", "1", "--frames-per-sheet", "2", "--size", "32", "--device", "cpu",
                 "--readme", str(readme)]) == 0
    assert readme.read_text().count("**a person walks forward**") == 1


@pytest.mark.parametrize("content", [None, "", "\n  \n# only a comment\n"])
def test_bad_prompts_file_is_one_line_error(tmp_path, capsys, content) -> None:
    path = tmp_path / "prompts.txt"
    if content is not None:
        path.write_text(content)
    rc = main(["gallery", "--out", str(tmp_path / "g"), "--prompts", str(path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.strip().splitlines()) == 1 and str(path) in err, err
    assert ("not found" if content is None else "no prompt") in err
    assert not (tmp_path / "g").exists()  # nothing written


def test_gallery_help() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["gallery", "--help"])
    assert exc.value.code == 0
