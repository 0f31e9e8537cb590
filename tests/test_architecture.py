"""The walls between the parts, read from the source with `ast`:

- core/ (the library) imports neither train/ nor render/; only the command registry in core/cli.py
  names their modules, as strings, and imports one when its subcommand runs;
- blender_addon/ imports only the standard library, Blender's modules (bpy and what ships beside
  it), numpy, and its own modules: it runs inside Blender, where nothing else is installed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The repository's folders install as motionclip.core / motionclip.train / motionclip.render.
PACKAGE_OF = {"core": "motionclip.core", "train": "motionclip.train", "render": "motionclip.render"}
BLENDER_MODULES = {"bpy", "mathutils", "addon_utils", "bpy_extras", "bmesh"}


def imports(path: Path, package: str, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    parts = package.split(".") + list(path.relative_to(root).parts[1:-1])  # the file's own package
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(parts[: len(parts) - node.level + 1])
                names = [f"{base}.{node.module}" if node.module else f"{base}.{a.name}" for a in node.names]
            else:
                names = [node.module]
            out += [(node.lineno, n) for n in names]
    return out


def module_strings(path: Path) -> list[tuple[int, str]]:
    """String constants that name a module of train/ or render/ (what importlib.import_module would take)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [(n.lineno, n.value) for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and n.value.startswith(("motionclip.train", "motionclip.render"))]


def core_crossings(root: Path = REPO) -> list[str]:
    """Every place a core/ module imports (or, outside the registry, names) a train/ or render/ module."""
    out = []
    for path in sorted((root / "core").rglob("*.py")):
        where = path.relative_to(root)
        for line, name in imports(path, "motionclip.core", root):
            if name.split(".")[:2] in (["motionclip", "train"], ["motionclip", "render"]) or \
                    name.split(".")[0] in ("train", "render"):
                out.append(f"{where}:{line}: imports {name}")
        if path != root / "core" / "cli.py":
            out += [f"{where}:{line}: names module {s!r}" for line, s in module_strings(path)]
    return out


def carried_files() -> dict[str, Path]:
    """The backend's files that build_addon.py copies beside the add-on's modules (name in the zip: source)."""
    sys.path.insert(0, str(REPO))
    try:
        import build_addon
    finally:
        sys.path.remove(str(REPO))
    return {dst: REPO / src for src, dst in build_addon.CONTENTS
            if "/" not in dst and dst.endswith(".py") and not src.startswith("blender_addon/")}


def addon_violations(path: Path, root: Path = REPO) -> list[str]:
    """Imports of an add-on module that Blender's Python would not have (its own modules include the
    backend files the zip carries beside them)."""
    own = {p.stem for p in path.parent.glob("*.py")} | {Path(name).stem for name in carried_files()}
    allowed = set(sys.stdlib_module_names) | BLENDER_MODULES | {"numpy"} | own
    return [f"{path.name}:{line}: imports {name}" for line, name in imports(path, "blender_addon", root)
            if not name.startswith("blender_addon") and name.split(".")[0] not in allowed]


def test_imports_are_resolved() -> None:
    """The reader above sees relative imports as the modules they are (so the walls below can fail)."""
    found = {name for _, name in imports(REPO / "core" / "cli_model.py", "motionclip.core")}
    assert "motionclip.core.argtypes" in found and "motionclip.core.netconf" in found
    found = {name for _, name in imports(REPO / "core" / "io" / "__init__.py", "motionclip.core")}
    assert "motionclip.core.errors" in found and "motionclip.core.io.retarget" in found


def test_core_imports_neither_train_nor_render() -> None:
    assert len(list((REPO / "core").rglob("*.py"))) > 20
    crossings = core_crossings()
    assert not crossings, "core/ must not depend on train/ or render/:\n" + "\n".join(crossings)


def test_only_the_registry_names_command_modules() -> None:
    from motionclip.core.cli import COMMANDS

    named = {target.partition(":")[0] for _, _, target in COMMANDS}
    assert {"motionclip.train.cli", "motionclip.render.cli", "motionclip.render.gallery"} <= named
    for module in named:
        _, part, *rest = module.split(".")
        assert (REPO / part / Path(*rest).with_suffix(".py")).is_file(), module


@pytest.mark.parametrize("path", sorted((REPO / "blender_addon").glob("*.py")) + sorted(carried_files().values()),
                         ids=lambda p: p.name)
def test_blender_addon_imports_only_stdlib_bpy_numpy_and_itself(path: Path) -> None:
    bad = addon_violations(path) if path.parent.name == "blender_addon" else [
        f"{path.name}:{line}: imports {name}" for line, name in imports(path, "", REPO)
        if name.split(".")[0] not in set(sys.stdlib_module_names) | BLENDER_MODULES | {"numpy"}]
    assert not bad, "the add-on runs inside Blender with only the standard library, bpy and numpy:\n" + "\n".join(bad)


def test_the_wall_checks_catch_crossings(tmp_path) -> None:
    """A core module that imports render (relatively or by name), and an add-on module that imports torch
    or the core package, are all found."""
    (tmp_path / "core" / "io").mkdir(parents=True)
    (tmp_path / "core" / "cli.py").write_text("COMMANDS = ['motionclip.render.cli:add_render']\n")
    (tmp_path / "core" / "io" / "bad.py").write_text("from ...render.video import write_mp4\nimport torch\n")
    (tmp_path / "core" / "lazy.py").write_text("def f():\n    import motionclip.train.moclip\n"
                                              "    return __import__('motionclip.render.cli')\n")
    assert core_crossings(tmp_path) == [
        "core/io/bad.py:1: imports motionclip.render.video",
        "core/lazy.py:2: imports motionclip.train.moclip",
        "core/lazy.py:3: names module 'motionclip.render.cli'"]
    (tmp_path / "blender_addon").mkdir()
    (tmp_path / "blender_addon" / "ok.py").write_text("import json\nimport bpy\nimport numpy as np\nfrom . import ok\n")
    (tmp_path / "blender_addon" / "bad.py").write_text("import torch\nfrom motionclip.core import protocol\n")
    assert addon_violations(tmp_path / "blender_addon" / "ok.py", tmp_path) == []
    assert addon_violations(tmp_path / "blender_addon" / "bad.py", tmp_path) == [
        "bad.py:1: imports torch", "bad.py:2: imports motionclip.core"]
