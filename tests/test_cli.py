"""The `motionclip` command as users run it: an installed entry point, help, conversions, errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from motionclip.core.cli import build_parser, main
from motionclip.core.io import save_motion

from test_skeleton_motion import random_motion

EXE = shutil.which("motionclip") or str(Path(sys.executable).parent / "motionclip")


def subcommands(parser=None, prefix=()):
    parser = parser or build_parser()
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from subcommands(sub, prefix + (name,))


def test_every_subcommand_has_help(capsys) -> None:
    cmds = list(subcommands())
    assert ("convert",) in cmds and ("data", "import") in cmds and ("data", "synth") in cmds
    for cmd in cmds:
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "usage: motionclip" in out and len(out) > 100


def test_installed_entry_point_converts(tmp_path) -> None:
    src = tmp_path / "in.json"
    save_motion(random_motion(frames=40), src)
    r = subprocess.run([EXE, "convert", str(src), str(tmp_path / "out.bvh"), "--fps", "20"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and (tmp_path / "out.bvh").read_text().startswith("HIERARCHY")
    assert "Frames: 27" in (tmp_path / "out.bvh").read_text()  # 1.3 s at 20 fps


@pytest.mark.parametrize("ext", [".bvh", ".npz", ".json", ".motion", ".npy"])
def test_convert_by_extension(tmp_path, ext) -> None:
    src = tmp_path / "in.bvh"
    save_motion(random_motion(frames=30), src)
    assert main(["convert", str(src), str(tmp_path / f"out{ext}")]) == 0
    assert (tmp_path / f"out{ext}").stat().st_size > 100


def test_convert_errors_are_one_line_and_exit_1(tmp_path, capsys) -> None:
    assert main(["convert", str(tmp_path / "missing.bvh"), str(tmp_path / "o.bvh")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.bvh" in err and "Traceback" not in err
    src = tmp_path / "in.bvh"
    save_motion(random_motion(frames=10), src)
    assert main(["convert", str(src), str(tmp_path / "o.fbx")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "o.bvh"), "--preset", "nope"]) == 1
    assert "unknown preset" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "o.bvh"), "--smpl-model", str(tmp_path / "SMPL_NEUTRAL.pkl")]) == 1
    assert "SMPL model not found" in capsys.readouterr().err


def test_unwritable_output(tmp_path, capsys) -> None:
    src = tmp_path / "in.bvh"
    save_motion(random_motion(frames=10), src)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["convert", str(src), str(blocker / "o.bvh")]) == 1
    assert "error:" in capsys.readouterr().err


def test_data_info_and_presets(tmp_path, capsys) -> None:
    src = tmp_path / "a.bvh"
    save_motion(random_motion(frames=40), src)
    (tmp_path / "a.txt").write_text("a person dances\n")
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(tmp_path / "ds"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["clips"] == 1 and info["fps"] == 30.0
    assert main(["data", "presets"]) == 0
    assert "bandai_namco" in capsys.readouterr().out
