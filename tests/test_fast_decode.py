"""The decoder's inference shortcut (core/fast_decode.py): its check against model.decode, recorded once per
weights file, torch version and code version in the user's cache folder, and made again when one changes."""

from __future__ import annotations

import json

import pytest
import torch

from motionclip.core import fast_decode
from motionclip.core.fast_decode import FastDecoder, record_path, verification_key
from test_model import tiny

SHA = "ab" * 32


@pytest.fixture
def model():
    m = tiny(width=16, norm_first=True, query_dropout=0.0, normalize=True, root="velocity")
    return m.eval()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONCLIP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def checks(monkeypatch) -> list:
    """The full checks that run (each call of FastDecoder._checked), counted."""
    calls, real = [], FastDecoder._checked.__func__

    def counted(cls, model, tol):
        calls.append(model)
        return real(cls, model, tol)

    monkeypatch.setattr(FastDecoder, "_checked", classmethod(counted))
    return calls


def test_a_passed_check_is_recorded_and_skipped_at_the_next_start(model, cache, checks) -> None:
    first = FastDecoder.verified(model, weights_sha256=SHA)
    assert isinstance(first, FastDecoder) and len(checks) == 1
    record = record_path(verification_key(model, 1e-4, SHA))
    assert record.parent == cache / "fast-decode" and record.is_file()
    assert json.loads(record.read_text())["weights_sha256"] == SHA
    second = FastDecoder.verified(model, weights_sha256=SHA)
    assert isinstance(second, FastDecoder) and len(checks) == 1  # no second check
    z = torch.randn(2, 32) * 5
    for a, b in zip(model.decode(z, torch.tensor([9, 4])), second.decode(z, torch.tensor([9, 4]))):
        assert torch.allclose(a, b, atol=1e-5)
    FastDecoder.verified(model)  # without the weights' SHA-256: always checked, nothing recorded
    assert len(checks) == 2 and len(list((cache / "fast-decode").iterdir())) == 1


@pytest.mark.parametrize("change", ["weights", "torch", "code", "config", "tolerance"])
def test_any_change_of_the_key_checks_again(model, cache, checks, monkeypatch, change) -> None:
    assert FastDecoder.verified(model, weights_sha256=SHA) is not None and len(checks) == 1
    sha, tol = SHA, 1e-4
    if change == "weights":
        sha = "cd" * 32
    elif change == "torch":
        monkeypatch.setattr(torch, "__version__", torch.__version__ + ".other")
    elif change == "code":
        edited = cache.parent / "fast_decode_edited.py"
        edited.write_text(open(fast_decode.__file__).read() + "\n# edited\n")
        monkeypatch.setattr(fast_decode, "__file__", str(edited))
    elif change == "config":
        model.config.root = "absolute"  # the same weights, another model
    else:
        tol = 1e-5
    assert FastDecoder.verified(model, tol=tol, weights_sha256=sha) is not None and len(checks) == 2
    assert len(list((cache / "fast-decode").iterdir())) == 2


def test_a_disagreeing_shortcut_falls_back_and_is_not_recorded(model, cache, checks, monkeypatch) -> None:
    real = model.decode
    monkeypatch.setattr(model, "decode", lambda z, frames: tuple(x + 1e-2 for x in real(z, frames)))
    assert FastDecoder.verified(model, weights_sha256=SHA) is None
    assert not (cache / "fast-decode").exists()
    monkeypatch.setattr(model, "decode", real)
    assert FastDecoder.verified(model, weights_sha256=SHA) is not None and len(checks) == 2  # checked again


def test_a_damaged_or_foreign_record_is_checked_again(model, cache, checks) -> None:
    key = verification_key(model, 1e-4, SHA)
    record = record_path(key)
    record.parent.mkdir(parents=True)
    for text in ("{not json", json.dumps({**key, "torch": "0.0"})):
        record.write_text(text)
        assert FastDecoder.verified(model, weights_sha256=SHA) is not None
        assert json.loads(record.read_text()) == json.loads(json.dumps(key))  # rewritten by the new check
    assert len(checks) == 2


def test_an_unwritable_cache_folder_only_costs_the_check(model, tmp_path, monkeypatch, checks) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("MOTIONCLIP_CACHE_DIR", str(blocked))  # a file where the folder would be
    for _ in range(2):
        assert FastDecoder.verified(model, weights_sha256=SHA) is not None
    assert len(checks) == 2


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch) -> None:
    from motionclip.core.files import user_cache_dir

    monkeypatch.delenv("MOTIONCLIP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "motionclip"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "motionclip"
