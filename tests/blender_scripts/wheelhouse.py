"""Local package sources for the add-on's backend set-up, without a network.

- ``repack(site_packages, name, out)``: a wheel made back from a pure-Python distribution
  installed in ``site_packages`` (its files as its RECORD lists them), for a --find-links folder.
- ``mirror(site_packages, out, skip)``: a folder of links to every entry of ``site_packages``
  but the distributions named in ``skip`` (the "Extra Site-Packages" an environment may see).

Standard library only.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import re
import zipfile
from pathlib import Path


def _dist_info(site: Path, name: str) -> Path:
    norm = re.sub(r"[-_.]+", "_", name).lower()
    for d in site.glob("*.dist-info"):
        if d.name.lower().split("-")[0] == norm:
            return d
    raise FileNotFoundError(f"{name} is not installed in {site}")


def repack(site: Path, name: str, out: Path) -> Path:
    """The installed pure-Python distribution ``name`` as a py3-none-any wheel in ``out``."""
    info = _dist_info(site, name)
    dist, version = info.name[: -len(".dist-info")].split("-", 1)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{dist}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with open(info / "RECORD", newline="", encoding="utf-8") as fh:
            rows = [r[0] for r in csv.reader(fh) if r]
        for rel in rows:
            path = (site / rel).resolve()
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith("/RECORD") or not path.is_file():
                continue
            data = path.read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{rel},sha256={digest},{len(data)}")
        record.append(f"{info.name}/RECORD,,")
        zf.writestr(f"{info.name}/RECORD", "\n".join(record) + "\n")
    return target


def mirror(site: Path, out: Path, skip: tuple[str, ...]) -> Path:
    """Links to everything in ``site`` but the distributions in ``skip`` (their packages, their
    dist-info, their editable-install hooks) and .pth files."""
    out.mkdir(parents=True, exist_ok=True)
    norm = tuple(re.sub(r"[-_.]+", "_", s).lower() for s in skip)
    for entry in site.iterdir():
        low = re.sub(r"[-_.]+", "_", entry.name).lower()
        if entry.suffix == ".pth" or entry.name == "__pycache__" or "editable" in low:
            continue
        if any(low == s or low.startswith(s + "_") for s in norm):
            continue
        (out / entry.name).symlink_to(entry)
    return out
