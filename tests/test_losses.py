"""MotionCLIP's losses against values worked out by hand, masking, weights and optional terms."""

from __future__ import annotations

import math

import pytest
import torch

from motionclip.core.errors import MotionClipError
from motionclip.core.losses import LossWeights, motionclip_loss
from motionclip.core.rotations import axis_angle_to_rot6d
from motionclip.core.skeleton import Skeleton, neutral_skeleton

F = 24 * 6 + 3  # features per frame in the pose representation
IDENTITY = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
RZ90 = torch.tensor([0.0, 1.0, 0.0, -1.0, 0.0, 0.0])  # 90 degrees about Z: columns (0,1,0), (-1,0,0)


def still(B: int = 1, T: int = 2) -> dict:
    """B motions of T frames at the identity pose, standing at the origin."""
    return {"rot6d": IDENTITY.repeat(B, T, 24, 1), "trans": torch.zeros(B, T, 3),
            "mask": torch.ones(B, T, dtype=torch.bool), "z": torch.ones(B, 4)}


def output_of(batch: dict) -> dict:
    return {"z": batch["z"].clone(), "rot6d": batch["rot6d"].clone(), "trans": batch["trans"].clone()}


def close(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-7)


def test_identical_motion_costs_nothing():
    g = torch.Generator().manual_seed(0)
    batch = still(2, 3)
    batch["rot6d"] = axis_angle_to_rot6d(0.5 * torch.randn(2, 3, 24, 3, generator=g))
    batch["trans"] = torch.randn(2, 3, 3, generator=g)
    losses = motionclip_loss(batch, output_of(batch), neutral_skeleton(), text_emb=batch["z"] * 3)
    for k in ("rc", "rcxyz", "vel", "text", "total"):
        assert float(losses[k]) == pytest.approx(0.0, abs=1e-6), k


def test_constant_translation_offset():
    batch = still(1, 2)
    out = output_of(batch)
    out["trans"][..., 0] += 0.3  # every frame, and so every joint, moved 0.3 m along X
    losses = motionclip_loss(batch, out, neutral_skeleton())
    assert close(losses["rc"], 0.09 / F)  # 2 frames x one feature off by 0.3, over 2 x 147 features
    assert close(losses["rcxyz"], 0.09 / 3)  # x of every joint off by 0.3; y, z exact
    assert close(losses["vel"], 0.0)  # a constant offset does not change velocity


def test_offset_on_one_frame_is_a_velocity_error():
    batch = still(1, 2)
    out = output_of(batch)
    out["trans"][0, 1, 0] += 0.3
    losses = motionclip_loss(batch, out, neutral_skeleton())
    assert close(losses["rc"], 0.09 / (2 * F))
    assert close(losses["vel"], 0.09 / F)  # one step, one feature off by 0.3
    assert close(losses["rcxyz"], 24 * 0.09 / (2 * 24 * 3))


def test_rotated_hip_moves_the_leg():
    # A rest skeleton where only the left leg sticks out: knee, ankle and foot all 1 m below the
    # hip (at the origin). Turning the hip 90 degrees about Z takes them from (0,-1,0) to (1,0,0).
    rest = torch.zeros(24, 3)
    rest[[4, 7, 10], 1] = -1.0
    batch = still(1, 1)
    out = output_of(batch)
    out["rot6d"][0, 0, 1] = RZ90
    losses = motionclip_loss(batch, out, Skeleton(rest, 0.0))
    assert close(losses["rc"], 4.0 / F)  # four 6D entries off by 1
    assert close(losses["rcxyz"], 3 * 2.0 / (24 * 3))  # three joints each off by (1, 1, 0)
    assert close(losses["vel"], 0.0)  # one frame: no velocity


def test_cosine_terms():
    batch = still(2, 1)
    out = output_of(batch)
    out["z"] = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    text = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # cos 0 and cos 1/sqrt(2)
    expected = (1.0 + (1.0 - 1.0 / math.sqrt(2.0))) / 2.0
    losses = motionclip_loss(batch, out, neutral_skeleton(), text_emb=text, image_emb=5.0 * text)
    assert close(losses["text"], expected)
    assert close(losses["image"], expected)  # the length of an embedding does not matter


def test_image_term_absent_when_none():
    batch = still(1, 2)
    out = output_of(batch)
    out["trans"] += 0.1
    z = torch.tensor([[1.0, 2.0, 0.0, 0.0]])
    out["z"] = z
    without = motionclip_loss(batch, out, neutral_skeleton(), text_emb=z)
    assert "image" not in without
    image = torch.tensor([[0.0, 0.0, 1.0, 0.0]])  # orthogonal: image term 1
    with_image = motionclip_loss(batch, out, neutral_skeleton(), text_emb=z, image_emb=image)
    assert close(with_image["image"], 1.0)
    assert close(with_image["total"], float(without["total"]) + 1.0)
    neither = motionclip_loss(batch, out, neutral_skeleton())
    assert "text" not in neither and "image" not in neither


def test_weights_scale_the_total():
    g = torch.Generator().manual_seed(1)
    batch = still(2, 4)
    out = output_of(batch)
    out["rot6d"] = out["rot6d"] + 0.1 * torch.randn(out["rot6d"].shape, generator=g)
    out["trans"] = torch.randn(2, 4, 3, generator=g)
    out["z"] = torch.randn(2, 4, generator=g)
    text, image = torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    w = LossWeights(rc=2.0, rcxyz=3.0, vel=5.0, text=7.0, image=11.0)
    losses = motionclip_loss(batch, out, neutral_skeleton(), text_emb=text, image_emb=image, weights=w)
    by_hand = sum(getattr(w, k) * float(losses[k]) for k in ("rc", "rcxyz", "vel", "text", "image"))
    assert close(losses["total"], by_hand)
    only_rc = motionclip_loss(batch, out, neutral_skeleton(), text_emb=text, image_emb=image,
                              weights=LossWeights(rc=1.0, rcxyz=0.0, vel=0.0, text=0.0, image=0.0))
    assert close(only_rc["total"], losses["rc"])
    paper = motionclip_loss(batch, out, neutral_skeleton(), text_emb=text, image_emb=image)
    assert close(paper["total"], 100 * float(paper["rc"] + paper["rcxyz"] + paper["vel"]) + float(paper["text"] + paper["image"]))


def _garbage(shape, g: torch.Generator) -> torch.Tensor:
    x = 1e6 * torch.randn(shape, generator=g)
    x.view(-1)[::7] = float("nan")
    return x


def _random_pair(lengths: list[int], T: int, seed: int) -> tuple[dict, dict]:
    """A batch and a model output that differ on real frames; padded frames hold garbage (NaN, huge)."""
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    batch = {"rot6d": axis_angle_to_rot6d(torch.randn(B, T, 24, 3, generator=g)),
             "trans": torch.randn(B, T, 3, generator=g), "mask": mask, "z": torch.randn(B, 8, generator=g)}
    out = {"rot6d": batch["rot6d"] + 0.2 * torch.randn(B, T, 24, 6, generator=g),
           "trans": batch["trans"] + 0.2 * torch.randn(B, T, 3, generator=g), "z": torch.randn(B, 8, generator=g)}
    for d in (batch, out):
        for k in ("rot6d", "trans"):
            d[k][~mask] = _garbage(d[k][~mask].shape, g)
    return batch, out


def _append_garbage(d: dict, n: int, g: torch.Generator) -> dict:
    d = dict(d)
    for k in ("rot6d", "trans"):
        d[k] = torch.cat([d[k], _garbage((d[k].shape[0], n) + d[k].shape[2:], g)], dim=1)
    if "mask" in d:
        d["mask"] = torch.cat([d["mask"], torch.zeros(d["mask"].shape[0], n, dtype=torch.bool)], dim=1)
    return d


def test_padding_changes_nothing():
    batch, out = _random_pair([3, 2, 1], 3, seed=2)
    text, image = torch.randn(3, 8), torch.randn(3, 8)
    base = motionclip_loss(batch, out, neutral_skeleton(), text_emb=text, image_emb=image)
    g = torch.Generator().manual_seed(3)
    padded = motionclip_loss(_append_garbage(batch, 4, g), _append_garbage(out, 4, g), neutral_skeleton(),
                             text_emb=text, image_emb=image)
    for k in base:
        assert torch.isfinite(padded[k]), k
        assert float(padded[k]) == pytest.approx(float(base[k]), rel=1e-6), k
    # Pooled means: rc over the 6 real frames, vel over the 3 steps that join two real frames.
    m = batch["mask"]
    pred = torch.cat([out["rot6d"].flatten(2), out["trans"]], -1)
    target = torch.cat([batch["rot6d"].flatten(2), batch["trans"]], -1)
    assert close(base["rc"], ((pred - target)[m] ** 2).sum() / (6 * F))
    step = (pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])
    assert close(base["vel"], (step[m[:, 1:] & m[:, :-1]] ** 2).sum() / (3 * F))


def test_padded_frames_get_no_gradient():
    batch, out = _random_pair([3, 1], 4, seed=4)
    out = {k: v.requires_grad_() for k, v in out.items()}
    motionclip_loss(batch, out, neutral_skeleton(), text_emb=torch.randn(2, 8))["total"].backward()
    pad = ~batch["mask"]
    for k in ("rot6d", "trans"):
        assert torch.isfinite(out[k].grad).all()
        assert (out[k].grad[pad] == 0).all() and (out[k].grad[~pad] != 0).any()


def test_vertices_hook_replaces_joints():
    batch = still(1, 2)
    out = output_of(batch)
    out["trans"][..., 0] += 0.3
    seen = []

    def five_points_at_root(rotmats, trans):  # [N, 24, 3, 3], [N, 3] -> [N, 5, 3]
        seen.append(rotmats.shape)
        return trans[:, None, :].expand(-1, 5, -1)

    losses = motionclip_loss(batch, out, None, vertices_fn=five_points_at_root)
    assert seen and seen[0] == (2, 24, 3, 3)
    assert close(losses["rcxyz"], 0.09 / 3)
    with pytest.raises(MotionClipError, match="skeleton"):
        motionclip_loss(batch, out, None)


def test_bad_input_is_named():
    batch = still(2, 2)
    with pytest.raises(MotionClipError, match="latent_dim"):
        motionclip_loss(batch, output_of(batch), neutral_skeleton(), text_emb=torch.randn(2, 5))
    with pytest.raises(MotionClipError, match="rc"):
        LossWeights(rc=-1.0)
    with pytest.raises(MotionClipError, match="image"):
        LossWeights(image=float("nan"))
    empty = {**batch, "mask": torch.zeros(2, 2, dtype=torch.bool)}
    with pytest.raises(MotionClipError, match="no real frame"):
        motionclip_loss(empty, output_of(batch), neutral_skeleton())
