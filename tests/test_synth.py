"""The synthetic motion library: conventions, plausibility, labels that match the motion, the dataset writer."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest
import torch

from motionclip.core import rotations as R
from motionclip.core.data.dataset_dir import SPLIT_NAMES, DatasetIndex
from motionclip.core.data.synth import ACTIONS, SLOW, FAST, TEXTS, generate_clip, synthesize
from motionclip.core.motion import Motion, facing_from_joints
from motionclip.core.skeleton import JOINT_NAMES, NEUTRAL_SOLE_Y, neutral_skeleton

J = {n: i for i, n in enumerate(JOINT_NAMES)}
SKEL = neutral_skeleton()
FLOOR = float(SKEL.rest_joints[:, 1].min() - NEUTRAL_SOLE_Y)  # height of the lowest joint of a foot on the floor
FEET = [J[n] for n in ("L_Ankle", "R_Ankle", "L_Foot", "R_Foot")]
AIRBORNE = {"run", "jump_in_place", "jump_forward", "jumping_jacks", "hop"}  # leave the floor on purpose
SIDED = ["wave", "kick", "punch", "raise_one_arm", "turn", "side_step", "side_bend", "throw", "hop"]
REQUIRED = ["walk", "run", "jump_in_place", "jump_forward", "squat", "wave", "kick", "punch", "bow", "turn", "clap",
            "raise_both_arms", "raise_one_arm", "jumping_jacks", "sit_down", "stand_up", "side_step", "march",
            "arm_circles", "look_around", "nod"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def clip(action: str, seed: int = 0, **params):
    motion, texts = generate_clip(action, np.random.default_rng(seed), **params)
    return motion, texts, motion.joints(SKEL).numpy()


def _fk(**local) -> np.ndarray:
    """Rest-pose joint positions with some joints rotated (axis-angle per joint name)."""
    aa = torch.zeros(24, 3)
    for name, v in local.items():
        aa[J[name]] = torch.tensor(v)
    return SKEL.forward_kinematics(R.axis_angle_to_matrix(aa))[0].numpy()


def test_joint_conventions_the_library_relies_on():
    rest = _fk()
    bent = _fk(L_Knee=[1.0, 0, 0])  # knee flexion about +X: the shin swings backward (-Z) and up
    assert bent[J["L_Ankle"], 2] < rest[J["L_Ankle"], 2] - 0.2 and bent[J["L_Ankle"], 1] > rest[J["L_Ankle"], 1]
    hip = _fk(L_Hip=[-1.0, 0, 0])  # hip flexion about -X: the foot comes forward
    assert hip[J["L_Ankle"], 2] > rest[J["L_Ankle"], 2] + 0.5
    for side, sign in (("L", -1.0), ("R", 1.0)):  # arms down: left shoulder -Z, right +Z
        down = _fk(**{f"{side}_Shoulder": [0, 0, sign * 1.25]})
        assert down[J[f"{side}_Wrist"], 1] < down[J[f"{side}_Shoulder"], 1] - 0.45
        assert abs(down[J[f"{side}_Wrist"], 0]) > abs(down[J[f"{side}_Shoulder"], 0])  # still outside the body
        flexed = _fk(**{f"{side}_Elbow": [0, sign * 1.0, 0]})  # elbow flexion: left -Y, right +Y, forearm forward
        assert flexed[J[f"{side}_Wrist"], 2] > rest[J[f"{side}_Wrist"], 2] + 0.15
    assert _fk(Spine1=[0.5, 0, 0])[J["Head"], 2] > rest[J["Head"], 2] + 0.1  # trunk bends forward about +X
    turned = _fk(Pelvis=[0, np.pi / 2, 0])  # +Y yaw turns the body to its left (+X)
    assert facing_from_joints(torch.from_numpy(turned))[0] > 0.99


def test_registry_has_the_actions_and_phrasings():
    assert len(ACTIONS) >= 20
    assert set(REQUIRED) <= set(ACTIONS)
    assert set(TEXTS) == set(ACTIONS)
    for name, templates in TEXTS.items():
        assert len(templates) >= 4, name
        # At most two phrasings without a tempo word, so any 3 of them say "slowly" when the clip is slow.
        assert sum(not re.search(r"\{(adv|adv_end|pace)\}", t) for t in templates) <= 2, name


@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_action_is_finite_grounded_and_plausible(action):
    for seed in (0, 1):
        motion, texts, j = clip(action, seed)
        dmin, dmax = ACTIONS[action][1]
        assert motion.fps == 30.0 and dmin - 0.02 <= motion.duration <= dmax + 0.02
        assert motion.duration == pytest.approx(motion.meta["duration"], abs=1e-5)
        assert motion.num_frames == round(motion.meta["duration"] * 30) + 1
        assert motion.meta["action"] == action
        assert torch.isfinite(motion.quats).all() and torch.isfinite(motion.trans).all() and np.isfinite(j).all()
        # Canonical: starts at the origin facing +Z, lowest joint of the clip on the floor.
        assert np.abs(j[0, 0, [0, 2]]).max() < 1e-4
        assert facing_from_joints(torch.from_numpy(j[0]))[2] > 0.999
        assert j[..., 1].min() == pytest.approx(FLOOR, abs=1e-4)
        lowest_foot = j[:, FEET, 1].min(1)
        assert lowest_foot[0] < FLOOR + 0.03  # starts standing on the floor
        if action not in AIRBORNE:  # a foot on the floor in every frame
            assert lowest_foot.max() < FLOOR + 0.03, lowest_foot.max()
        else:  # and leaves it at some point
            assert lowest_foot.max() > FLOOR + 0.04
        # Head above the pelvis, above the knees; no joint under the floor.
        assert (j[:, J["Head"], 1] > j[:, J["Pelvis"], 1] + 0.3).all()
        assert (j[:, J["Pelvis"], 1] > j[:, [J["L_Knee"], J["R_Knee"]], 1].max(1) + 0.02).all()
        # Joint limits: knees and elbows hinge one way only and never hyperextend.
        aa = motion.axis_angle().numpy()
        for knee in ("L_Knee", "R_Knee"):
            assert aa[:, J[knee], 0].min() > -0.02 and aa[:, J[knee], 0].max() < 2.3
            assert np.abs(aa[:, J[knee], 1:]).max() < 1e-4
        assert aa[:, J["L_Elbow"], 1].max() < 1e-4 and aa[:, J["R_Elbow"], 1].min() > -1e-4
        assert np.abs(aa[:, [J["L_Elbow"], J["R_Elbow"]]][..., [0, 2]]).max() < 1e-4
        assert np.abs(aa[:, [J["L_Elbow"], J["R_Elbow"]], 1]).max() < 2.6
        # No obvious self-intersection: wrists stay off the trunk axis, feet apart, hands do not pass each other.
        for wrist in ("L_Wrist", "R_Wrist"):
            assert _segment_distance(j[:, J[wrist]], j[:, J["Pelvis"]], j[:, J["Neck"]]).min() > 0.12
        assert np.linalg.norm(j[:, J["L_Ankle"]] - j[:, J["R_Ankle"]], axis=-1).min() > 0.12
        # Smooth: no joint jumps between frames, and no body-part speed beyond a sprinter's foot.
        speed = np.linalg.norm(np.diff(j, axis=0), axis=-1) * motion.fps
        assert speed.max() < 12.0, speed.max()
        step = np.linalg.norm(np.diff(j, 2, axis=0), axis=-1) * motion.fps ** 2
        assert step.max() < 250.0, step.max()
        # Phrasings: 3-4 distinct, complete sentences.
        assert 3 <= len(texts) <= 4 and len(set(texts)) == len(texts)
        assert all(t.strip() == t and "{" not in t and "}" not in t and "  " not in t for t in texts)


def _segment_distance(p, a, b):
    ab = b - a
    u = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)[..., None]
    return np.linalg.norm(p - (a + u * ab), axis=-1)


def test_arms_start_hanging_at_the_sides():
    for action in ("walk", "wave", "squat", "clap", "nod"):
        _, _, j = clip(action, 3)
        for side in ("L", "R"):
            wrist, shoulder = j[0, J[f"{side}_Wrist"]], j[0, J[f"{side}_Shoulder"]]
            assert wrist[1] < shoulder[1] - 0.4, action  # hanging, not a T-pose
            assert abs(wrist[0]) > 0.12 and abs(wrist[0] - shoulder[0]) < 0.2, action  # beside the body


def test_unknown_action_and_bad_parameters_raise():
    with pytest.raises(ValueError, match="known actions: .*walk.*wave"):
        generate_clip("moonwalk", np.random.default_rng(0))
    with pytest.raises(ValueError, match="side"):
        generate_clip("wave", np.random.default_rng(0), side="up")
    with pytest.raises(ValueError, match="direction"):
        generate_clip("walk", np.random.default_rng(0), direction="sideways")
    with pytest.raises(ValueError, match="unknown parameter"):
        generate_clip("walk", np.random.default_rng(0), speed=2.0)


def test_same_seed_same_clip_different_seed_different_clip():
    a, ta = generate_clip("wave", np.random.default_rng(7))
    b, tb = generate_clip("wave", np.random.default_rng(7))
    assert torch.equal(a.quats, b.quats) and torch.equal(a.trans, b.trans) and ta == tb and a.meta == b.meta
    c, _ = generate_clip("wave", np.random.default_rng(8))
    assert a.num_frames != c.num_frames or not torch.allclose(a.quats, c.quats, atol=1e-3)
    # Posture noise: two clips with identical parameters still differ.
    fixed = dict(tempo=1.0, amplitude=1.0, side="left", duration=3.0)
    d, _ = generate_clip("wave", np.random.default_rng(1), **fixed)
    e, _ = generate_clip("wave", np.random.default_rng(2), **fixed)
    assert d.num_frames == e.num_frames and (d.quats - e.quats).abs().max() > 0.01


@pytest.mark.parametrize("side", ["left", "right"])
def test_wave_moves_the_waving_hand_only(side):
    waving, still = ("L", "R") if side == "left" else ("R", "L")
    for seed in range(3):
        motion, texts, j = clip("wave", seed, side=side)
        travel = {s: np.linalg.norm(np.diff(j[:, J[f"{s}_Wrist"]], axis=0), axis=-1).sum() for s in ("L", "R")}
        assert travel[waving] > 8 * travel[still], travel
        assert j[:, J[f"{waving}_Wrist"], 1].max() > j[:, J["Head"], 1].max()  # the hand goes up by the head
        assert j[:, J[f"{still}_Wrist"], 1].max() < j[:, J["Pelvis"], 1].max() + 0.05  # the other hangs
        assert motion.meta["side"] == side
        assert all(side in t and ("right" if side == "left" else "left") not in t for t in texts)


@pytest.mark.parametrize("action", SIDED)
def test_texts_name_the_side_that_moves(action):
    for side in ("left", "right"):
        other = "right" if side == "left" else "left"
        for seed in range(3):
            motion, texts = generate_clip(action, np.random.default_rng(seed), side=side)
            assert motion.meta["side"] == side
            for t in texts:
                assert re.search(rf"\b{side}\b", t) and not re.search(rf"\b{other}\b", t), t


def test_sided_actions_move_the_named_side():
    _, _, j = clip("kick", 0, side="right")
    assert j[:, J["R_Ankle"], 1].max() > j[:, J["L_Ankle"], 1].max() + 0.2
    assert j[:, J["R_Ankle"], 2].max() > 0.4  # the foot goes forward
    _, _, j = clip("punch", 0, side="left")
    t = j[:, J["L_Wrist"], 2].argmax()  # full extension: the fist well ahead of the guarding one, at chin height
    assert j[t, J["L_Wrist"], 2] > j[t, J["R_Wrist"], 2] + 0.25
    assert abs(j[t, J["L_Wrist"], 1] - j[t, J["L_Shoulder"], 1]) < 0.15
    _, _, j = clip("raise_one_arm", 0, side="left")
    assert j[:, J["L_Wrist"], 1].max() > j[:, J["Head"], 1].max() + 0.2 > j[:, J["R_Wrist"], 1].max()
    _, _, j = clip("throw", 0, side="right")
    assert j[:, J["R_Wrist"], 1].max() > j[:, J["Head"], 1].min() > j[:, J["L_Wrist"], 1].max()
    _, _, j = clip("hop", 0, side="left")  # hopping on the left foot: the right one stays off the floor
    assert j[20:-20, J["R_Ankle"], 1].min() > j[20:-20, J["L_Ankle"], 1].min() + 0.1
    for side, sign in (("left", 1), ("right", -1)):  # left is +X after canonicalisation
        _, _, j = clip("side_step", 0, side=side)
        assert sign * (j[-1, 0, 0] - j[0, 0, 0]) > 0.25 and abs(j[-1, 0, 2] - j[0, 0, 2]) < 0.1
        _, _, j = clip("side_bend", 0, side=side)
        assert (sign * (j[:, J["Neck"], 0] - j[:, J["Pelvis"], 0])).max() > 0.1
        motion, _, j = clip("turn", 0, side=side)
        end = facing_from_joints(torch.from_numpy(j[-1])).numpy()
        assert sign * end[0] > 0.9 if motion.meta["angle_deg"] == 90 else end[2] < -0.9
        assert np.abs(j[:, 0, [0, 2]]).max() < 0.05  # in place


def test_walk_speed_is_plausible_and_run_is_faster():
    for seed in range(4):
        for tempo, amp in ((0.75, 0.8), (1.0, 1.0), (1.3, 1.2)):
            walk, texts, j = clip("walk", seed, direction="forward", tempo=tempo, amplitude=amp)
            speed = (j[-1, 0, 2] - j[0, 0, 2]) / walk.duration
            assert 0.5 <= speed <= 2.0, speed
            assert abs(j[-1, 0, 0] - j[0, 0, 0]) < 0.15 * walk.duration  # straight ahead
            run, _, jr = clip("run", seed, direction="forward", tempo=tempo, amplitude=amp)
            assert (jr[-1, 0, 2] - jr[0, 0, 2]) / run.duration > 1.2 * speed
    back, _, j = clip("walk", 0, direction="backward")
    assert (j[-1, 0, 2] - j[0, 0, 2]) / back.duration < -0.3
    curve, _, j = clip("walk", 0, direction="left", duration=5.0)
    assert facing_from_joints(torch.from_numpy(j[-1]))[0] > 0.5 and j[-1, 0, 0] > 0.3


def test_walking_feet_do_not_slide():
    motion, _, j = clip("walk", 2, direction="forward")
    heel = float(SKEL.rest_joints[J["L_Ankle"], 1] - SKEL.rest_joints[J["L_Foot"], 1])
    low = np.minimum(j[:, [J["L_Ankle"], J["R_Ankle"]], 1] - heel, j[:, [J["L_Foot"], J["R_Foot"]], 1])  # heel or toe
    lower = low.argmin(1)[1:]  # the foot bearing weight
    ankles = j[:, [J["L_Ankle"], J["R_Ankle"]]][..., [0, 2]]
    slide = np.linalg.norm(np.diff(ankles, axis=0), axis=-1)[np.arange(len(lower)), lower] * motion.fps
    root = np.linalg.norm(j[-1, 0, [0, 2]] - j[0, 0, [0, 2]]) / motion.duration
    assert np.median(slide) < 0.1 * root and slide.mean() < 0.25 * root


def test_jumps_lift_the_pelvis_and_squats_lower_it():
    for seed in range(3):
        _, texts, j = clip("jump_in_place", seed)
        assert j[:, 0, 1].max() > j[0, 0, 1] + 0.08
        assert j[:, FEET, 1].min(1).max() > FLOOR + 0.08  # both feet in the air
        assert np.abs(j[:, 0, [0, 2]]).max() < 0.3
        motion, _, j = clip("jump_forward", seed)
        assert j[-1, 0, 2] > 0.3 * motion.meta["jumps"] and j[:, 0, 1].max() > j[0, 0, 1] + 0.08
    _, _, j = clip("squat", 0)
    assert j[:, 0, 1].min() < j[0, 0, 1] - 0.15
    _, _, sit = clip("sit_down", 0)
    _, _, stand = clip("stand_up", 0)
    assert sit[-1, 0, 1] < sit[0, 0, 1] - 0.25 and stand[-1, 0, 1] > stand[0, 0, 1] + 0.25


def test_tempo_words_match_the_tempo():
    for action in ACTIONS:
        slow, fast, normal = (generate_clip(action, np.random.default_rng(0), tempo=t)[1]
                              for t in (SLOW - 0.1, FAST + 0.1, 1.0))
        assert any(re.search(r"\bslow(ly)?\b", t) for t in slow), (action, slow)
        assert any(re.search(r"\b(quickly|fast)\b", t) for t in fast), (action, fast)
        assert not any(re.search(r"\b(slow|slowly|quickly|fast)\b", t) for t in normal), (action, normal)
        assert not any(re.search(r"\b(quickly|fast)\b", t) for t in slow)


def test_slower_tempo_takes_longer():
    """Tempo really changes the speed: a slow squat goes down fewer times in the same time than a fast one."""
    def dips(tempo):
        _, _, j = clip("squat", 0, tempo=tempo, duration=6.0)
        y = j[:, 0, 1]
        return int(((y[1:] < y[0] - 0.1) & (y[:-1] >= y[0] - 0.1)).sum())
    assert dips(1.4) > dips(0.7) >= 1


def test_synthesize_writes_a_readable_dataset(tmp_path, capsys):
    n = len(ACTIONS) + 3
    entries = synthesize(tmp_path / "ds", n, seed=5, progress=False)
    assert capsys.readouterr().err == ""  # no progress bar when asked not to
    index = DatasetIndex.load(tmp_path / "ds")
    assert len(entries) == n == len(index.clips)
    assert {e["action"] for e in entries} == set(ACTIONS)  # every action gets clips
    for k, e in enumerate(entries):
        action = list(ACTIONS)[k % len(ACTIONS)]
        assert e["id"] == f"synth_{action}_5_{k}" and e["source"] == f"synth:{action}" and e["action"] == action
        assert e["split"] in SPLIT_NAMES and len(e["texts"]) >= 3
        m = index.load_clip(e["id"])
        assert isinstance(m, Motion) and m.num_frames == e["frames"] and m.fps == 30.0
        assert m.meta["action"] == action and m.meta["seed"] == 5
    data = json.loads((tmp_path / "ds" / "index.json").read_text())
    assert data["format"] == "motionclip-dataset" and len(data["clips"]) == n
    assert {c["split"] for c in data["clips"]} <= set(SPLIT_NAMES)


def test_synthesize_is_deterministic_and_rerunnable(tmp_path, capsys):
    kw = dict(actions=["wave", "walk", "jump_in_place"], fps=20.0)
    a = synthesize(tmp_path / "a", 5, seed=3, progress=True, **kw)
    assert "synthesizing" in capsys.readouterr().err  # the tqdm bar
    b = synthesize(tmp_path / "b", 5, seed=3, progress=False, **kw)
    c = synthesize(tmp_path / "c", 5, seed=4, progress=False, **kw)
    assert [e["action"] for e in a] == ["wave", "walk", "jump_in_place", "wave", "walk"]
    for ea, eb, ec in zip(a, b, c):
        fa, fb, fc = (_members(tmp_path / d / "clips" / f"{e['id']}.motion")
                      for d, e in (("a", ea), ("b", eb), ("c", ec)))
        assert fa == fb and ea["texts"] == eb["texts"]  # byte for byte: arrays and header
        assert fa["quats.npy"] != fc["quats.npy"]
    assert DatasetIndex.load(tmp_path / "a").fps == 20.0
    again = synthesize(tmp_path / "a", 5, seed=3, progress=False, **kw)  # same clips, rewritten in place
    assert [e["id"] for e in again] == [e["id"] for e in a] and len(DatasetIndex.load(tmp_path / "a").clips) == 5
    synthesize(tmp_path / "a", 2, seed=9, progress=False, **kw)  # another seed adds clips
    assert len(DatasetIndex.load(tmp_path / "a").clips) == 7


def _members(path) -> dict[str, bytes]:
    """The contents of a .motion file (a zip), without the zip's own file timestamps."""
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_synthesize_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="positive number of clips"):
        synthesize(tmp_path / "x", 0, progress=False)
    with pytest.raises(ValueError, match="known actions"):
        synthesize(tmp_path / "x", 3, actions=["walk", "fly"], progress=False)
    assert not (tmp_path / "x" / "index.json").exists()
