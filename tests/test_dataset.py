"""Dataset import (files and folders, good and bad), texts, splits, windows and batches."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from motionclip.core.cli import main
from motionclip.core.data.dataset_dir import DatasetIndex, split_for
from motionclip.core.data.texts import bandai_texts, load_user_texts, mirror_text, texts_for
from motionclip.core.data.windows import MotionWindows, collate_motion
from motionclip.core.errors import MotionClipError
from motionclip.core.io import save_motion
from motionclip.core.skeleton import neutral_skeleton

from test_skeleton_motion import random_motion


def make_sources(root: Path) -> Path:
    """A folder of mixed sources: BVH with a sidecar text, AMASS npz, our JSON, and two broken files."""
    src = root / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(4):
        save_motion(random_motion(frames=90, seed=i), src / f"clip{i}.bvh")
        (src / f"clip{i}.txt").write_text(f"a person waves the left hand {i}\nsomeone raises the left arm {i}\n")
    save_motion(random_motion(frames=60, seed=9), src / "sub" / "amass.npz")
    save_motion(random_motion(frames=60, seed=10), src / "sub" / "ours.json")
    (src / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n")
    (src / "nolabel.bvh").write_text((src / "clip0.bvh").read_text())
    (src / "notes.json").write_text('{"comment": "not a motion"}')
    return src


def test_import_keeps_the_good_lists_the_bad(tmp_path, capsys) -> None:
    src = make_sources(tmp_path)
    texts = tmp_path / "texts.csv"
    texts.write_text("file,text\namass.npz,a person jumps\namass.npz,someone hops\nours,a person turns around\n")
    out = tmp_path / "ds"
    code = main(["data", "import", str(src), "--out", str(out), "--texts", str(texts), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1  # some files failed
    assert "imported 6 clip(s)" in captured.out
    assert "broken.bvh" in captured.err and "truncated" in captured.err
    assert "nolabel.bvh" in captured.err and "--texts" in captured.err
    assert "notes.json" not in captured.err  # not a motion: skipped, not an error
    index = DatasetIndex.load(out)
    assert sorted(index.clips) == ["amass", "clip0", "clip1", "clip2", "clip3", "ours"]
    assert index.clips["amass"]["texts"] == ["a person jumps", "someone hops"]
    assert index.clips["clip2"]["texts"] == ["a person waves the left hand 2", "someone raises the left arm 2"]
    assert index.clips["clip1"]["retarget"]["mapping"] == "smpl"
    for e in index.entries():
        m = index.load_clip(e["id"])
        assert m.num_frames == e["frames"] and m.fps == 30.0
        assert e["split"] in ("train", "val", "test") and e["split"] == split_for(e["id"])
        # canonical: starts at the origin on the floor
        assert float(m.joints()[0, 0, 0]) == pytest.approx(0, abs=1e-4)
    errors = json.loads((out / "import_errors.json").read_text())
    assert {Path(e["file"]).name for e in errors} == {"broken.bvh", "nolabel.bvh"}


def test_import_again_updates_instead_of_duplicating(tmp_path) -> None:
    src = make_sources(tmp_path)
    (src / "broken.bvh").unlink()
    (src / "nolabel.bvh").unlink()
    (src / "sub" / "amass.npz").unlink()
    (src / "sub" / "ours.json").unlink()
    out = tmp_path / "ds"
    assert main(["data", "import", str(src), "--out", str(out), "--quiet"]) == 0
    first = json.loads((out / "index.json").read_text())
    assert main(["data", "import", str(src), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "index.json").read_text()) == first
    with pytest.raises(SystemExit):
        main(["data", "import", str(src), "--out", str(out), "--fps", "0"])
    assert main(["data", "import", str(src), "--out", str(out), "--fps", "20", "--quiet"]) == 1  # fps mismatch


def test_splits_are_deterministic_and_by_clip() -> None:
    ids = [f"clip{i}" for i in range(2000)]
    splits = [split_for(i) for i in ids]
    assert splits == [split_for(i) for i in ids]
    share = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["val"] < 0.13 and 0.07 < share["test"] < 0.13
    assert split_for("clip7", seed=1) in ("train", "val", "test")


def test_bandai_texts_are_varied_natural_phrasings() -> None:
    t = bandai_texts("bow", "happy", n=6, seed="x")
    assert len(t) == 6 and len(set(t)) == 6
    assert all(any(w in s for w in ("bow",)) for s in t)
    assert all(any(w in s for w in ("happily", "cheerful", "happy")) for s in t)
    assert bandai_texts("walk", "normal", seed="y") == bandai_texts("walk", "normal", seed="y")
    # a label without phrasings of ours (a user's own cfg/) reads as its words
    t = bandai_texts("kick-high", "sleepy_slow", n=4, seed="z")
    assert all("kick high" in s and "sleepy slow" in s for s in t), t


def _bandai_layout(root: Path, dataset: str, contents: list[str], styles: list[str],
                   clips: dict[str, tuple[int, int]]) -> Path:
    """A folder shaped like a Bandai-Namco dataset: cfg/*_label.txt and data/<clip>.json labels."""
    (root / "cfg").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "cfg" / "content_label.txt").write_text("".join(f"{dataset}_{c}\n" for c in contents))
    (root / "cfg" / "style_label.txt").write_text("\n".join(f"{dataset}_{s}" for s in styles))  # no final newline
    for stem, (c, s) in clips.items():
        (root / "data" / f"{stem}.json").write_text(json.dumps({"content": c, "style": s}))
    return root / "data"


@pytest.mark.parametrize("dataset_name, contents, styles, clip, action, style, words", [
    ("dataset-1", ["walk", "bow", "byebye"], ["normal", "happy"], (1, 1), "bow", "happy", ("bow",)),
    ("dataset-2", ["walk", "walk-turn-left", "walk-turn-right", "run", "wave-both-hands", "wave-left-hand",
                   "wave-right-hand", "raise-up-both-hands", "raise-up-left-hand", "raise-up-right-hand"],
     ["active", "elderly", "exhausted"], (6, 1), "wave-right-hand", "elderly", ("wav", "right")),
])
def test_bandai_labels_of_both_datasets(tmp_path, dataset_name, contents, styles, clip, action, style, words) -> None:
    data = _bandai_layout(tmp_path, dataset_name, contents, styles, {"c1": clip})
    texts, labels = texts_for(data / "c1.bvh")
    assert labels == {"text_source": "bandai-namco", "action": action, "style": style}
    assert len(texts) >= 3 and all(all(w in t for w in words) for t in texts), texts


def test_dataset_2_phrasings_and_their_mirror_images() -> None:
    cases = {"walk-turn-left": ("turn", "left"), "wave-left-hand": ("wav", "left hand"),
             "wave-both-hands": ("wave", "both"), "raise-up-both-hands": ("both", ""),
             "raise-up-right-hand": ("right", "")}
    for content, (w1, w2) in cases.items():
        for t in bandai_texts(content, "elderly", n=8, seed="s"):
            assert w1 in t and w2 in t, (content, t)
    # mirroring a clip swaps its side: every mirrored phrasing of a right-hand clip is a left-hand
    # phrasing of ours, and the other way round (so raise-up-right-hand teaches raise-up-left-hand)
    pairs = [("wave-right-hand", "wave-left-hand"), ("raise-up-right-hand", "raise-up-left-hand"),
             ("walk-turn-left", "walk-turn-right")]
    for a, b in pairs:
        for x, y in ((a, b), (b, a)):
            mirrored = {mirror_text(t) for t in bandai_texts(x, "masculine", n=40, seed="m")}
            own = set(bandai_texts(y, "masculine", n=200, seed="m"))
            assert mirrored and mirrored <= own, (x, mirrored - own)


def test_a_users_own_labelled_folder_imports(tmp_path) -> None:
    """A cfg/ + data/ folder of the same shape with labels of its own (unknown to us) imports."""
    data = _bandai_layout(tmp_path / "mine", "studio-7", ["jump-twice", "spin"], ["sleepy", "normal"],
                          {"take_01": (0, 0), "take_02": (1, 1)})
    sample = Path(__file__).resolve().parent.parent / "core" / "assets" / "samples" / "cmu_01_01.bvh"
    for stem in ("take_01", "take_02"):
        shutil.copy(sample, data / f"{stem}.bvh")
    assert main(["data", "import", str(data), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    entries = {e["id"]: e for e in DatasetIndex.load(tmp_path / "ds").entries()}
    assert entries["take_01"]["action"] == "jump-twice" and entries["take_01"]["style"] == "sleepy"
    assert all("jump twice" in t and "sleepy" in t for t in entries["take_01"]["texts"])
    assert entries["take_02"]["action"] == "spin" and all("spin" in t for t in entries["take_02"]["texts"])


def test_a_label_outside_the_cfg_lists_names_the_file(tmp_path) -> None:
    data = _bandai_layout(tmp_path, "dataset-2", ["walk"], ["active"], {"c1": (3, 0)})
    with pytest.raises(MotionClipError, match=r"c1\.json.*content_label\.txt"):
        texts_for(data / "c1.bvh")


def test_bandai_labels_from_the_shared_folder(bandai_dir) -> None:
    texts, labels = texts_for(bandai_dir / "data" / "dataset-1_walk_angry_001.bvh")
    assert labels == {"text_source": "bandai-namco", "action": "walk", "style": "angry"}
    assert all("walk" in t for t in texts) and len(texts) >= 3


def test_split_by_a_shared_label_holds_out_whole_groups(bandai_dir, tmp_path) -> None:
    files = sorted((bandai_dir / "data").glob("dataset-1_*_00*.bvh"))
    files = [f for f in files if f.stem.split("_")[1] in ("walk", "bow")][:24]
    assert main(["data", "import", *map(str, files), "--out", str(tmp_path / "d"), "--split-by", "style",
                 "--quiet"]) == 0
    by_style: dict[str, set[str]] = {}
    for e in DatasetIndex.load(tmp_path / "d").entries():
        by_style.setdefault(e["style"], set()).add(e["split"])
        assert e["split"] == split_for(f"style={e['style']}")
    assert len(by_style) >= 8 and all(len(s) == 1 for s in by_style.values())
    assert len({next(iter(s)) for s in by_style.values()}) >= 2  # more than one split in use


def test_user_texts_errors(tmp_path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("name,caption\na,b\n")
    with pytest.raises(MotionClipError, match="columns 'file' and 'text'"):
        load_user_texts(bad)
    bad.write_text("file,text\na,\n")
    with pytest.raises(MotionClipError, match="line 2"):
        load_user_texts(bad)
    j = tmp_path / "t.json"
    j.write_text('{"a.bvh": ["x", "y"], "b": "z"}')
    assert load_user_texts(j) == {"a": ["x", "y"], "b": ["z"]}


def test_mirror_text() -> None:
    assert mirror_text("Left hand up, then the right foot; leftover") == "Right hand up, then the left foot; leftover"


@pytest.fixture
def dataset(tmp_path) -> Path:
    src = make_sources(tmp_path)
    out = tmp_path / "ds"
    main(["data", "import", str(src / "clip0.bvh"), str(src / "clip1.bvh"), str(src / "clip2.bvh"),
          "--out", str(out), "--splits", "1,0,0", "--quiet"])
    return out


def test_fixed_windows_and_collate(dataset) -> None:
    ds = MotionWindows(dataset, split="train", window=40, stride=20)
    # 3 clips of 90 frames: starts 0, 20, 40 and the end 50 -> 4 windows each
    assert len(ds) == 12
    item = ds[0]
    assert item["rot6d"].shape == (40, 24, 6) and item["trans"].shape == (40, 3)
    # each window starts with the pelvis at the origin (trans is relative to the rest pelvis)
    rest_pelvis = neutral_skeleton().rest_joints[0]
    assert torch.allclose(item["trans"][0, [0, 2]] + rest_pelvis[[0, 2]], torch.zeros(2), atol=1e-5)
    batch = next(iter(DataLoader(ds, batch_size=5, collate_fn=collate_motion)))
    assert batch["rot6d"].shape == (5, 40, 24, 6) and batch["mask"].all()


def test_variable_windows_are_masked(dataset) -> None:
    ds = MotionWindows(dataset, split="train", window=(20, 60), stride=30, seed=3)
    lengths = {ds[i]["length"] for i in range(len(ds))}
    assert len(lengths) > 3 and min(lengths) >= 20 and max(lengths) <= 60
    batch = collate_motion([ds[i] for i in range(6)])
    for b in range(6):
        n = int(batch["length"][b])
        assert batch["mask"][b, :n].all() and not batch["mask"][b, n:].any()
        # padding is the identity rotation, not garbage
        assert torch.allclose(batch["rot6d"][b, n:], torch.tensor([1.0, 0, 0, 0, 1, 0]).expand_as(batch["rot6d"][b, n:]))
    # reproducible for a seed and epoch; another epoch draws other lengths
    first = [ds[i]["length"] for i in range(len(ds))]
    assert first == [MotionWindows(dataset, "train", (20, 60), 30, seed=3)[i]["length"] for i in range(len(ds))]
    ds.set_epoch(1)
    assert [ds[i]["length"] for i in range(len(ds))] != first


def test_windows_equal_cropping_mirroring_and_canonicalising_each_clip(dataset) -> None:
    """The per-clip feature tables give the same windows as Motion.crop().mirror().canonicalize()."""
    ds = MotionWindows(dataset, split="train", window=(20, 60), stride=30, mirror_prob=0.5, seed=5)
    seen_mirrored = set()
    for i in range(len(ds)):
        it = ds[i]
        m = ds.index.load_clip(ds.entries[ds.windows[i].clip]["id"]).crop(it["start"], it["length"])
        if it["mirrored"]:
            m = m.mirror(ds.skeleton)
        m = m.canonicalize(ds.skeleton, floor=False)
        assert torch.allclose(it["rot6d"], m.rot6d(), atol=1e-5) and torch.allclose(it["trans"], m.trans, atol=1e-5)
        seen_mirrored.add(it["mirrored"])
    assert seen_mirrored == {True, False}


def test_same_length_batches_have_no_padding(dataset) -> None:
    from torch.utils.data import RandomSampler

    from motionclip.core.data.windows import SameLengthBatches

    ds = MotionWindows(dataset, split="train", window=(20, 60), stride=20, seed=2)
    sampler = SameLengthBatches(RandomSampler(ds, generator=torch.Generator().manual_seed(0)), 4, ds)
    batches = list(DataLoader(ds, batch_sampler=sampler, collate_fn=collate_motion))
    assert len(batches) == len(sampler) == len(ds) // 4
    lengths = [int(b["length"][0]) for b in batches]
    for b in batches:
        assert b["mask"].all() and len(set(b["length"].tolist())) == 1  # one length, no padding
    assert all(20 <= n <= 60 for n in lengths) and len(set(lengths)) > 1  # lengths vary between batches
    assert [int(b["length"][0]) for b in DataLoader(ds, batch_sampler=sampler, collate_fn=collate_motion)] == lengths


def test_mirroring_swaps_motion_and_text(dataset) -> None:
    plain = MotionWindows(dataset, split="train", window=40, mirror_prob=0.0)
    mirrored = MotionWindows(dataset, split="train", window=40, mirror_prob=1.0)
    a, b = plain[0], mirrored[0]
    assert b["mirrored"] and not a["mirrored"]
    assert "right" in b["text"] and "left" not in b["text"]
    assert not torch.allclose(a["rot6d"], b["rot6d"])


def test_empty_split_is_a_clear_error(dataset) -> None:
    with pytest.raises(MotionClipError, match="split 'test' has no clip"):
        MotionWindows(dataset, split="test", window=40)
    with pytest.raises(MotionClipError, match="not a dataset"):
        MotionWindows(dataset / "nope", window=40)
