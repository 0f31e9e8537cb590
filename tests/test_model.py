"""The MotionCLIP auto-encoder: shapes, variable lengths, configs, gradients, a small overfit."""

from __future__ import annotations

import json

import pytest
import torch

from motionclip.core.errors import MotionClipError
from motionclip.core.losses import motionclip_loss
from motionclip.core.models import PRESETS, MotionCLIP, MotionCLIPConfig, config_from_preset, lengths_to_mask
from motionclip.core.rotations import axis_angle_to_rot6d
from motionclip.core.skeleton import neutral_skeleton

IDENTITY = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def tiny(**kw) -> MotionCLIP:
    torch.manual_seed(0)
    cfg = dict(latent_dim=32, enc_layers=1, dec_layers=1, heads=2, ff_dim=64, dropout=0.1, max_frames=100)
    return MotionCLIP(MotionCLIPConfig(**{**cfg, **kw}))


def motions(lengths: list[int], T: int | None = None, seed: int = 0) -> dict:
    """Smooth random motions in the batch format; padding is the identity, as collate_motion pads."""
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    B = len(lengths)
    t = torch.linspace(0, 1, T)[None, :, None, None]
    aa = 0.6 * torch.sin(6.0 * t * torch.rand(B, 1, 24, 3, generator=g) + 3 * torch.rand(B, 1, 24, 3, generator=g))
    mask = lengths_to_mask(lengths, T)
    rot6d = torch.where(mask[..., None, None], axis_angle_to_rot6d(aa), IDENTITY)
    trans = torch.where(mask[..., None], torch.cumsum(0.02 * torch.randn(B, T, 3, generator=g), 1), 0.0)
    return {"rot6d": rot6d, "trans": trans, "mask": mask, "length": torch.tensor(lengths),
            "text": ["a person moves"] * B}


@pytest.mark.parametrize("lengths", [[1], [7, 7], [60, 13, 1], [100, 50]])
def test_shapes(lengths):
    model = tiny()
    batch = motions(lengths)
    out = model(batch)
    B, T = len(lengths), max(lengths)
    assert out["z"].shape == (B, 32)
    assert out["rot6d"].shape == (B, T, 24, 6) and out["trans"].shape == (B, T, 3)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_latent_ignores_padding():
    model = tiny().eval()
    batch = motions([9, 4, 6], T=12, seed=1)
    garbage = ~batch["mask"]
    batch["rot6d"][garbage] = float("nan")  # whatever padding holds
    batch["trans"][garbage] = 1e6
    with torch.no_grad():
        z = model.encode(batch["rot6d"], batch["trans"], batch["mask"])
        for b, n in enumerate([9, 4, 6]):
            alone = model.encode(batch["rot6d"][b:b + 1, :n], batch["trans"][b:b + 1, :n])
            torch.testing.assert_close(z[b:b + 1], alone, atol=1e-5, rtol=1e-5)
    # Deterministic in eval mode.
    with torch.no_grad():
        torch.testing.assert_close(model.encode(batch["rot6d"], batch["trans"], batch["mask"]), z, atol=0, rtol=0)


def test_decode_lengths_and_padding():
    model = tiny().eval()
    z = torch.randn(3, 32)
    lengths = [5, 2, 8]
    with torch.no_grad():
        rot6d, trans = model.decode(z, lengths)
        assert rot6d.shape == (3, 8, 24, 6)
        pad = ~lengths_to_mask(lengths)
        assert torch.equal(rot6d[pad], IDENTITY.expand(int(pad.sum()), 24, 6))
        assert torch.equal(trans[pad], torch.zeros(int(pad.sum()), 3))
        # A mask, a tensor of lengths and a longer mask all give the same real frames.
        for frames in (lengths_to_mask(lengths), torch.tensor(lengths), lengths_to_mask(lengths, 11)):
            r, t = model.decode(z, frames)
            torch.testing.assert_close(r[:, :8], rot6d, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(t[:, :8], trans, atol=1e-5, rtol=1e-5)
        # One length for all; the item alone decodes the same.
        r, _ = model.decode(z[1:2], 2)
        torch.testing.assert_close(r, rot6d[1:2, :2], atol=1e-5, rtol=1e-5)


def test_length_limits():
    model = tiny(max_frames=20)
    model.decode(torch.randn(1, 32), 20)
    with pytest.raises(MotionClipError, match="max_frames"):
        model.decode(torch.randn(1, 32), 21)
    with pytest.raises(MotionClipError, match="at least one frame"):
        model.decode(torch.randn(2, 32), [3, 0])
    with pytest.raises(MotionClipError, match="rot6d"):
        model.encode(torch.randn(1, 5, 22, 6), torch.randn(1, 5, 3))


def test_presets_and_config_round_trip():
    paper = config_from_preset("paper")
    assert (paper.latent_dim, paper.enc_layers, paper.dec_layers, paper.heads, paper.ff_dim) == (512, 8, 8, 4, 1024)
    small = config_from_preset("small", latent_dim=384)
    assert small.latent_dim == 384 and small.enc_layers < paper.enc_layers
    assert set(PRESETS) >= {"paper", "small"}
    assert MotionCLIPConfig.from_dict(json.loads(json.dumps(small.to_dict()))) == small
    print(f"\nparameters: paper {MotionCLIP(paper).num_parameters():,}, "
          f"small@384 {MotionCLIP(small).num_parameters():,}")


@pytest.mark.parametrize("bad, field", [
    (dict(latent_dim=30, heads=4), "heads"),
    (dict(enc_layers=0), "enc_layers"),
    (dict(dec_layers=True), "dec_layers"),
    (dict(dropout=1.0), "dropout"),
    (dict(activation="tanh"), "activation"),
    (dict(max_frames=2.5), "max_frames"),
    (dict(root="relative"), "root"),
])
def test_bad_config_is_named(bad, field):
    with pytest.raises(MotionClipError, match=field):
        MotionCLIPConfig(**bad)


def test_unknown_preset_and_field():
    with pytest.raises(MotionClipError, match="paper, small"):
        config_from_preset("huge")
    with pytest.raises(MotionClipError, match="latent"):
        MotionCLIPConfig.from_dict({"latent": 512})


def test_gradient_reaches_every_parameter():
    model = tiny(enc_layers=2, dec_layers=2)
    batch = motions([10, 6])
    out = model(batch)
    loss = motionclip_loss(batch, out, neutral_skeleton(), text_emb=torch.randn(2, 32))["total"]
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_overfits_one_batch():
    model = tiny(latent_dim=64, enc_layers=2, dec_layers=2, heads=4, ff_dim=128, dropout=0.0)
    batch = motions([24, 20, 16, 12], seed=5)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    skel = neutral_skeleton()
    history = []
    for _ in range(150):
        loss = motionclip_loss(batch, model(batch), skel)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < history[0] / 20, (history[0], history[-1])


def test_velocity_root_round_trip_and_reconstruction_target():
    """The velocity root representation loses nothing a canonical window has: features -> trajectory
    gives back the translation (x/z relative to the first frame, absolute height)."""
    m = tiny(root="velocity")
    trans = motions([40, 25])["trans"] + torch.tensor([0.0, 0.9, 0.0])
    back = m._root_from_features(m._root_features(trans))
    expect = trans.clone()
    expect[..., [0, 2]] -= trans[:, :1, [0, 2]]
    assert torch.allclose(back, expect, atol=1e-5)
    feats = m._root_features(trans)
    assert torch.all(feats[:, 0, [0, 2]] == 0) and torch.allclose(feats[..., 1], trans[..., 1])
    # a long straight walk has constant features, unlike absolute coordinates that grow
    walk = torch.stack([torch.zeros(90), torch.full((90,), 0.9), torch.arange(90) * 0.05], -1)[None]
    assert torch.allclose(m._root_features(walk)[0, 1:, 2], torch.full((89,), 1.5))
    assert tiny(root="absolute")._root_features(walk) is walk


def test_velocity_root_decodes_a_trajectory_from_the_origin():
    m = tiny(root="velocity").eval()
    rot6d, trans = m.decode(torch.randn(3, 32), [50, 20, 1])
    assert torch.all(trans[:, 0, [0, 2]] == 0) and torch.all(trans[1, 20:] == 0)


def test_state_dict_round_trip():
    model = tiny().eval()
    state = model.state_dict()
    assert not any("positions" in k or "identity" in k for k in state)  # derived from the config
    again = MotionCLIP(MotionCLIPConfig.from_dict(model.config.to_dict()))
    again.load_state_dict(state, strict=True)
    again.eval()
    batch = motions([8, 5], seed=6)
    with torch.no_grad():
        a, b = model(batch), again(batch)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    model = tiny().eval()
    batch = motions([8, 5], seed=7)
    with torch.no_grad():
        cpu = model(batch)
        gpu = model.cuda()({k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()})
    for k in cpu:
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], atol=1e-4, rtol=1e-4)


# --- the built-in recipe's options: normalisation, pre-LN, narrow layers, clean queries -------------------

def test_normalisation_round_trip_and_statistics():
    """Features are z-scored by the stored statistics and decoded back to real units exactly."""
    model = tiny(normalize=True, root="velocity", dropout=0.0)
    batch = motions([30, 20], seed=2)
    raw = model.features(batch["rot6d"], batch["trans"], normalized=False)  # [B, T, F]
    real = raw[batch["mask"]]
    mean, std = real.mean(0), real.std(0) + 1e-3
    model.set_normalization(mean, std)
    z = model.features(batch["rot6d"], batch["trans"])
    assert torch.allclose(z, (raw - mean) / std.clamp(min=0.01), atol=1e-5)
    assert abs(float(z[batch["mask"]].mean())) < 0.05  # z-scored over the real frames
    rot6d, trans = model._from_features(z)  # the inverse: back to the input (the root from its velocities)
    m = batch["mask"][0]
    assert torch.allclose(rot6d[0][m], batch["rot6d"][0][m], atol=1e-5)
    assert torch.allclose(trans[0][m][:, [0, 2]] - trans[0][0, [0, 2]],
                          batch["trans"][0][m][:, [0, 2]] - batch["trans"][0][0, [0, 2]], atol=1e-4)
    # the statistics travel with the weights
    other = tiny(normalize=True, root="velocity", dropout=0.0)
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.feat_mean, model.feat_mean) and torch.equal(other.feat_std, model.feat_std)
    with pytest.raises(MotionClipError, match="normalize=True"):
        tiny().set_normalization(mean, std)
    with pytest.raises(MotionClipError, match="NaN"):
        model.set_normalization(mean * float("nan"), std)


def test_forward_gives_the_loss_its_own_features():
    """rc and vel are taken on the model's (z-scored) features, rcxyz on real joint positions."""
    model = tiny(normalize=True, root="velocity", dropout=0.0)
    model.set_normalization(torch.zeros(147), torch.full((147,), 0.5))
    batch = motions([12, 12])
    out = model(batch)
    assert torch.allclose(out["target_feats"], model.features(batch["rot6d"], batch["trans"]))
    losses = motionclip_loss(batch, out, neutral_skeleton())
    expect = torch.nn.functional.mse_loss(out["feats"], out["target_feats"])
    assert torch.allclose(losses["rc"], expect)


def test_narrow_pre_ln_model_and_its_fast_decoder():
    from motionclip.core.fast_decode import FastDecoder

    model = tiny(width=16, norm_first=True, query_dropout=0.0, normalize=True, root="velocity")
    assert model.config.model_width == 16 and model(motions([9]))["z"].shape == (1, 32)
    assert model.query_dropout.p == 0.0 and model.pos_dropout.p == 0.1
    assert tiny().query_dropout.p == 0.1  # older configs: the queries keep the layers' dropout
    model.set_normalization(torch.randn(147) * 0.1, torch.rand(147) + 0.5)
    model.eval()
    fast = FastDecoder.verified(model)
    assert fast is not None  # the exact shortcut covers pre-LN layers and the latent projection
    z = torch.randn(3, 32) * 5
    for a, b in zip(model.decode(z, torch.tensor([20, 7, 1])), fast.decode(z, torch.tensor([20, 7, 1]))):
        assert torch.allclose(a, b, atol=1e-5)
    builtin = config_from_preset("builtin", latent_dim=384)
    assert builtin.normalize and builtin.norm_first and builtin.query_dropout == 0.0 and builtin.model_width == 256


@pytest.mark.parametrize("bad, field", [
    (dict(width=-1), "width"), (dict(width=30, heads=4), "heads"), (dict(norm_first=1), "norm_first"),
    (dict(normalize="yes"), "normalize"), (dict(query_dropout=1.0), "query_dropout"),
])
def test_bad_recipe_options_are_named(bad, field):
    with pytest.raises(MotionClipError, match=field):
        MotionCLIPConfig(**bad)
