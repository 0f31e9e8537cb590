"""embed-frames and the image loss: the cache is complete only when it is, resumes, and the trainer uses it.

CLIP weights cannot be downloaded here, so the encoder is the package's own CLIP with random weights
(clip-random:tiny, 32-pixel images): the real code path, meaningless embeddings.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch

for _module in ("pyrender", "mannequin", "clip"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed", allow_module_level=True)

from motionclip.core.cli import main  # noqa: E402
from motionclip.core.data.dataset_dir import DatasetIndex  # noqa: E402
from motionclip.core.data.synth import synthesize  # noqa: E402
from motionclip.render import RenderError  # noqa: E402
from motionclip.render import cache as C  # noqa: E402
from motionclip.render import embed as E  # noqa: E402
from motionclip.render.pyrender_backend import choose_platform  # noqa: E402
from motionclip.train.autoencoder import load_train_config, train_autoencoder  # noqa: E402

try:
    choose_platform()
except RenderError:
    pytest.skip("no EGL / OSMesa library for offscreen rendering", allow_module_level=True)

SMALL = dict(size=48, body="skeleton")
TINY = dict(model="small", model_overrides={"enc_layers": 1, "dec_layers": 1, "ff_dim": 64, "heads": 2},
            encoder="clip-random:tiny", epochs=4, batch_size=8, window=60, max_steps_per_epoch=4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embed") / "data"
    synthesize(root, clips=10, seed=1, progress=False)
    return root


@pytest.fixture(scope="module")
def encoder():
    from motionclip.core.encoders import load_encoder

    return load_encoder("clip-random:tiny", device="cpu")


def test_frame_policies() -> None:
    s = E.EmbedSettings(policy="middle", window=60, stride=30)
    assert E.choose_frames(40, "a", s) == [20]
    assert E.choose_frames(150, "a", s) == [30, 60, 90, 120]  # windows at 0, 30, 60, 90 and the last, 90
    r = E.EmbedSettings(policy="random:3", seed=5)
    a, b = E.choose_frames(200, "clip_a", r), E.choose_frames(200, "clip_a", r)
    assert a == b and len(set(a)) == 3 and all(0 <= f < 200 for f in a)
    assert E.choose_frames(200, "clip_b", r) != a
    assert E.choose_frames(2, "clip_a", r) == [0, 1]
    for bad in ("first", "random:0", "random:x", "middle:2"):
        with pytest.raises(RenderError, match="frame policy"):
            E.EmbedSettings(policy=bad)


def test_embed_frames_complete_resume_and_failure(dataset, encoder, monkeypatch) -> None:
    settings = E.EmbedSettings(**SMALL)
    index = DatasetIndex.load(dataset)
    ids = [e["id"] for e in index.entries()]
    report = E.embed_frames(dataset, encoder, settings, workers=0, progress=False)
    assert report.complete and not report.failed and report.rendered == len(ids)
    folder = report.folder
    info = json.loads((folder / C.COMPLETE).read_text())
    assert set(info["clips"]) == set(ids) and info["dim"] == encoder.dim
    emb = C.ImageEmbeddings(folder)
    for e in index.entries():
        data = emb.clips[e["id"]]
        frames = E.choose_frames(int(e["frames"]), e["id"], settings)
        assert data["frames"].tolist() == frames
        assert data["embeddings"].shape == data["mirrored"].shape == (len(frames), encoder.dim)
        torch.testing.assert_close(data["embeddings"].norm(dim=-1), torch.ones(len(frames)))
    # Embeddings are what the encoder makes of the rendered pictures (checked on one clip).
    from motionclip.render import render_frames
    from motionclip.render.scene import SceneOptions

    cid = ids[0]
    f = emb.clips[cid]["frames"].tolist()
    pics = render_frames(index.load_clip(cid), f, body="skeleton",
                         options=SceneOptions(size=48, camera="frame", floor=False))
    again = encoder.encode_image(torch.from_numpy(pics).permute(0, 3, 1, 2))
    torch.testing.assert_close(again, emb.clips[cid]["embeddings"], atol=1e-4, rtol=0)
    # The mirrored pictures differ from the plain ones (left and right swapped).
    assert not torch.allclose(emb.clips[cid]["mirrored"], emb.clips[cid]["embeddings"])

    # A second run finds everything done.
    again = E.embed_frames(dataset, encoder, settings, workers=0, progress=False)
    assert again.done_before == len(ids) and again.rendered == 0 and again.complete

    # An interrupted run: the marker is gone and one clip is missing -> only that clip is redone.
    (folder / C.COMPLETE).unlink()
    (folder / "clips" / f"{ids[3]}.safetensors").unlink()
    assert C.find_complete(dataset, encoder.name, encoder.image_fingerprint) is None
    resumed = E.embed_frames(dataset, encoder, settings, workers=0, progress=False)
    assert resumed.rendered == 1 and resumed.done_before == len(ids) - 1 and resumed.complete

    # A clip that fails: the others are kept, no marker, so the cache does not look complete.
    (folder / C.COMPLETE).unlink()
    for cid in ids[:2]:
        (folder / "clips" / f"{cid}.safetensors").unlink()
    real = E._render_clip

    def flaky(clip_id, frames):
        if clip_id == ids[0]:
            raise RenderError(f"cannot render {clip_id}")
        return real(clip_id, frames)

    monkeypatch.setattr(E, "_render_clip", flaky)
    broken = E.embed_frames(dataset, encoder, settings, workers=0, progress=False)
    assert not broken.complete and set(broken.failed) == {ids[0]} and broken.rendered == 1
    assert not (folder / C.COMPLETE).exists()
    assert C.find_complete(dataset, encoder.name, encoder.image_fingerprint) is None
    monkeypatch.setattr(E, "_render_clip", real)
    assert E.embed_frames(dataset, encoder, settings, workers=0, progress=False).complete

    # A clip whose file changes makes the old cache stale for the trainer.
    m = index.load_clip(ids[5])
    m.save(index.clip_path(ids[5]))  # same motion, rewritten
    found = C.find_complete(dataset, encoder.name, encoder.image_fingerprint)
    changed = m.copy(trans=m.trans + 0.01)
    changed.save(index.clip_path(ids[5]))
    assert C.find_complete(dataset, encoder.name, encoder.image_fingerprint) is None
    m.save(index.clip_path(ids[5]))
    assert C.find_complete(dataset, encoder.name, encoder.image_fingerprint) == found


def test_window_lookup_picks_frames_inside_the_window(dataset, encoder) -> None:
    settings = E.EmbedSettings(**SMALL)
    E.embed_frames(dataset, encoder, settings, workers=0, progress=False)
    emb, why = C.load_for_training(dataset, encoder)
    assert emb is not None, why
    cid = max(emb.clips, key=lambda c: len(emb.clips[c]["frames"]))
    frames = emb.clips[cid]["frames"].tolist()
    assert len(frames) >= 2
    k = 1
    start = frames[k] - 30
    row = emb.lookup(cid, start, 60)
    torch.testing.assert_close(row, emb.clips[cid]["embeddings"][k])
    torch.testing.assert_close(emb.lookup(cid, start, 60, mirrored=True), emb.clips[cid]["mirrored"][k])
    batch = {"clip_id": [cid, cid], "start": torch.tensor([start, start]), "length": torch.tensor([60, 60]),
             "mirrored": torch.tensor([False, True])}
    assert emb.batch(batch).shape == (2, encoder.dim)


def test_embed_frames_cli_with_a_worker_process(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    synthesize(data, clips=3, seed=2, progress=False)
    argv = ["embed-frames", "--data", str(data), "--encoder", "clip-random:tiny", "--size", "32", "--body",
            "skeleton", "--policy", "random:2", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "3 rendered now" in out and "complete" in out
    assert main(argv) == 0
    assert "3 already cached, 0 rendered now" in capsys.readouterr().out
    # Errors: an encoder without an image tower, a folder that is not a dataset, a bad policy.
    assert main(["embed-frames", "--data", str(tmp_path / "nothing"), "--encoder", "clip-random:tiny"]) == 1
    assert "not a dataset" in capsys.readouterr().err
    assert main(["embed-frames", "--data", str(data), "--policy", "random:none", "--encoder", "clip-random:tiny"]) == 1
    assert "frame policy" in capsys.readouterr().err


def test_embed_frames_needs_an_image_tower(dataset) -> None:
    class TextOnly:
        name, dim, has_image = "text-only", 8, False

    with pytest.raises(RenderError, match="no image tower"):
        E.embed_frames(dataset, TextOnly(), E.EmbedSettings(**SMALL), workers=0, progress=False)


def _metrics(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_trainer_uses_the_image_loss_only_with_a_cache(dataset, encoder, tmp_path) -> None:
    E.embed_frames(dataset, encoder, E.EmbedSettings(**SMALL), workers=0, progress=False)
    # Image term alone (the pose terms would swamp it at these sizes): it must fall as the latents learn.
    only_image = {"rc": 0.0, "rcxyz": 0.0, "vel": 0.0, "text": 0.0, "image": 1.0}
    cfg = load_train_config(None, {**TINY, "loss": only_image, "lr": 3e-3})
    train_autoencoder(dataset, tmp_path / "with", cfg, progress=False)
    rows = _metrics(tmp_path / "with")
    config = json.loads((tmp_path / "with" / "config.json").read_text())
    assert config["image_loss"]["on"] is True
    image = [float(r["train_image"]) for r in rows]
    assert all(0.0 < v < 2.0 for v in image)
    assert image[-1] < image[0] - 0.05, image
    assert float(rows[-1]["train_total"]) == pytest.approx(image[-1], rel=1e-5)
    assert "val_image" in rows[-1]

    # Without the cache (turned off, or another dataset), the image term is absent.
    cfg_off = load_train_config(None, {**TINY, "image_cache": False})
    train_autoencoder(dataset, tmp_path / "off", cfg_off, progress=False)
    assert "train_image" not in _metrics(tmp_path / "off")[-1]
    assert json.loads((tmp_path / "off" / "config.json").read_text())["image_loss"]["on"] is False

    other = tmp_path / "other"
    synthesize(other, clips=10, seed=1, progress=False)
    train_autoencoder(other, tmp_path / "nocache", load_train_config(None, TINY), progress=False)
    off = json.loads((tmp_path / "nocache" / "config.json").read_text())["image_loss"]
    assert off["on"] is False and "motionclip embed-frames" in off["source"]
    assert "train_image" not in _metrics(tmp_path / "nocache")[-1]
