"""MiniLM in plain torch (core/encoders/minilm_fast.py) against the sentence-transformers model it stands in for."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from motionclip.core.encoders import load_encoder
from motionclip.core.encoders.minilm import MiniLMEncoder, _load_fast, minilm_path

TEXTS = ["a person waves", "A Person WALKS forward, then turns around!!", "someone does a cartwheel " * 80,
         "héllo wörld, ünïcode 東京", "x"]


@pytest.fixture(scope="module")
def both():
    return MiniLMEncoder(device="cpu", fast=True), MiniLMEncoder(device="cpu")


def test_same_tokens_embeddings_and_identity(both) -> None:
    fast, st = both
    assert getattr(fast.st, "is_fast", False) and not getattr(st.st, "is_fast", False)
    ids_fast, ids_st = fast.st.tokenize(TEXTS)["input_ids"], st.st.tokenize(TEXTS)["input_ids"]
    assert ids_fast.shape == (len(TEXTS), 256) and torch.equal(ids_fast, ids_st)  # the long one cut at 256 tokens
    a, b = fast.encode_text(TEXTS), st.encode_text(TEXTS)
    assert a.shape == (len(TEXTS), 384) and (a - b).abs().max() < 1e-5
    assert fast.identity() == st.identity()
    assert list(fast.state_dict()) == list(st.state_dict())


def test_serving_loads_fast_and_training_gets_the_full_model() -> None:
    enc = load_encoder("minilm", device="cpu", text_only=True)
    assert getattr(enc.st, "is_fast", False)
    fingerprint = enc.fingerprint
    enc.unfreeze()  # a MoCLIP student: the sentence-transformers model, trainable, with dropout
    assert not getattr(enc.st, "is_fast", False) and enc.trainable and enc.fingerprint == fingerprint
    assert any(isinstance(m, torch.nn.Dropout) for m in enc.st.modules())
    assert getattr(load_encoder("minilm", device="cpu", text_only=True).st, "is_fast", False)  # shared one untouched


def test_a_folder_it_cannot_read_falls_back(tmp_path) -> None:
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_text((minilm_path() / name).read_text())
    assert _load_fast(tmp_path, "cpu") is None  # no model.safetensors
    cfg = json.loads((minilm_path() / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    assert _load_fast(tmp_path, "cpu") is None


def test_generating_does_not_import_sentence_transformers(tmp_path) -> None:
    code = ("import sys; from motionclip.core.cli import main; "
            f"main(['generate', 'a person waves', '--frames', '20', '--out', {str(tmp_path / 'w.bvh')!r}, "
            "'--device', 'cpu']); print('LOADED', [m for m in ('sentence_transformers', 'transformers', 'sklearn', "
            "'scipy', 'pandas', 'fastapi') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "LOADED []" in r.stdout, r.stdout
    assert (tmp_path / "w.bvh").read_text().startswith("HIERARCHY")
