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
    with pytest.raises(MotionClipError, match="unknown Bandai-Namco content"):
        bandai_texts("fly", "normal")


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
