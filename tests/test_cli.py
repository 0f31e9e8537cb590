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


# ----------------------------------------------------------------------------------- the command registry

SHOW_MODULES = """
import sys
from motionclip.core.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MODULES", " ".join(sorted(sys.modules)))
"""


def _modules_after(*argv: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", SHOW_MODULES, *argv], capture_output=True, text=True, timeout=120)
    line = next(l for l in r.stdout.splitlines() if l.startswith("MODULES "))
    return set(line.split()[1:])


def test_only_the_chosen_subcommand_is_imported() -> None:
    top = _modules_after("--help")
    assert "motionclip.core.cli" in top
    assert not {"torch", "numpy", "motionclip.core.cli_model", "motionclip.train.cli", "motionclip.render.cli"} & top
    gen = _modules_after("generate", "--help")
    assert "motionclip.core.cli_model" in gen
    assert not {"torch", "motionclip.train.cli", "motionclip.render.cli", "motionclip.core.server_cli"} & gen
    ren = _modules_after("render", "--help")
    assert "motionclip.render.cli" in ren and "motionclip.train.cli" not in ren


def test_registry_fills_every_command_and_lists_it_in_help(capsys) -> None:
    from motionclip.core.cli import COMMANDS, build_parser

    top = " ".join(build_parser([]).format_help().split())
    for name, help_line, _ in COMMANDS:
        assert name in top and help_line in top
    full = build_parser()
    choices = next(a for a in full._actions if a.__class__.__name__ == "_SubParsersAction").choices
    assert list(choices) == [name for name, _, _ in COMMANDS]
    assert all(len(p._actions) > 1 for p in choices.values())  # more than -h: each was filled


def test_help_is_generated_from_what_exists(capsys) -> None:
    from motionclip.train.autoencoder import TRAIN_PRESETS

    for cmd in (["train", "--help"], ["train", "autoencoder", "--help"]):
        with pytest.raises(SystemExit):
            main(cmd)
    out = " ".join(capsys.readouterr().out.split())
    assert "later" not in out and "autoencoder, moclip, finetune, evaluator" in out
    assert f"training preset ({', '.join(TRAIN_PRESETS)})" in out


def test_unknown_command_and_bad_values_are_argparse_errors(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["genrate", "x"])
    assert exc.value.code == 2 and "invalid choice: 'genrate'" in capsys.readouterr().err
    for argv, message in ((["serve", "--port", "70000"], "must be between 0 and 65535"),
                          (["data", "import", "a.bvh", "--out", "d", "--splits", "1,2"], "three non-negative ratios"),
                          (["train", "moclip", "--data", "d", "--out", "r", "--phase-epochs", "3,x"],
                           "comma-separated whole numbers"),
                          (["render", "a.bvh", "--out", "a.mp4", "--size", "4"], "8..4096 pixels"),
                          (["gallery", "--out", "g", "--seconds", "-1"], "must be positive"),
                          (["recognize", "m.bvh", "--labels", "a", "--top", "0"], "must be positive")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and f"usage: motionclip {argv[0]}" in err, (argv, err)


# ----------------------------------------------------------------------------------- local or server, chosen once

@pytest.fixture(scope="module")
def builtin_server():
    from test_server import ServerProcess, _motionclip

    srv = ServerProcess(_motionclip() + ["serve", "--port", "0", "--device", "cpu", "--workers", "1"])
    try:
        yield srv
    finally:
        srv.stop()


def test_remote_model_answers_as_the_local_model(builtin_server) -> None:
    from motionclip.core.inference import MotionModel, RemoteModel

    local, remote = MotionModel(None, device="cpu"), RemoteModel(builtin_server.url)
    assert remote.health().model == "built-in"
    a, b = local.generate("a person waves", frames=40, seed=3), remote.generate("a person waves", frames=40, seed=3)
    assert b.num_frames == 40 and b.fps == a.fps
    assert np.allclose(a.quats.abs().numpy(), b.quats.abs().numpy(), atol=1e-3)
    [c] = remote.interpolate("a person walks", a, [0.5], frames=30)
    assert c.num_frames == 30
    e = remote.edit(a, "wave", "wave happily", strength=0.5)
    assert e.num_frames == 40
    labels = ["a person waves", "a person kicks", "a person sits"]
    assert [l for l, _ in remote.recognize(a, labels)] == [l for l, _ in local.recognize(a, labels)]
    assert [m.num_frames for m in remote.generate_batch([dict(prompt="a person jumps", frames=20)])] == [20]


def test_cli_commands_through_the_server(builtin_server, tmp_path, capsys) -> None:
    url = ["--server", builtin_server.url]
    assert main(["generate", "a person waves", "--frames", "30", "--out", str(tmp_path / "w.bvh"), *url]) == 0
    assert main(["interpolate", "a person walks", str(tmp_path / "w.bvh"), "--alpha", "0.2,0.8", "--frames", "30",
                 "--out", str(tmp_path / "i.bvh"), *url]) == 0
    assert (tmp_path / "i_0.2.bvh").is_file() and (tmp_path / "i_0.8.bvh").is_file()
    assert main(["edit", str(tmp_path / "w.bvh"), "--from", "wave", "--to", "wave happily",
                 "--out", str(tmp_path / "e.json"), *url]) == 0
    capsys.readouterr()
    assert main(["recognize", str(tmp_path / "w.bvh"), "--labels", "waves,kicks,sits", "--top", "2", "--json",
                 *url]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert len(ranked) == 2 and ranked[0]["score"] >= ranked[1]["score"]


def test_server_errors_name_what_to_do(tmp_path, capsys) -> None:
    out = str(tmp_path / "w.bvh")
    assert main(["generate", "a person waves", "--out", out, "--server", "ftp://example"]) == 1
    assert "not an http:// address" in capsys.readouterr().err
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["generate", "a person waves", "--out", out, "--server", f"http://127.0.0.1:{port}"]) == 1
    assert "no answer from a motionclip server" in capsys.readouterr().err
    assert main(["generate", "a person waves", "--frames", "0", "--out", out, "--server", f"http://127.0.0.1:{port}"]) == 1
    assert "frames" in capsys.readouterr().err and not Path(out).exists()
