"""Hostile motion files: how many cost only themselves, and the memory the worst one takes.

    python benchmarks/hostile_inputs.py [--table]

Makes the corpus of tests/hostile_files.py (plus one good file per format) in a temporary folder and
1. runs `motionclip data import` on all of it in a child process with an address-space limit (what
   importing torch maps, plus 1 GiB) and a timeout: counts the hostile files that cost only themselves
   (one stderr line names the file, listed in import_errors.json, no traceback, every good clip imported);
2. imports each file alone in a forked child and reads the child's peak resident memory (ru_maxrss),
   printing the worst input under 10 MB (and with --table, every file).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
# One thread for BLAS / OpenMP before torch loads: the forked children below then cannot inherit a
# thread pool's locks.
os.environ.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"})

import numpy as np  # noqa: E402

from hostile_files import import_footprint, make_corpus, run_limited  # noqa: E402
from motionclip.core.io import limits as L  # noqa: E402


def cost_only_themselves(bad: list[Path], good: list[Path], stderr: str, errors: list[dict], imported: set[str]
                         ) -> list[Path]:
    lines = [ln.strip() for ln in stderr.splitlines()]
    listed = {e["file"] for e in errors}
    all_good = {str(g) for g in good} <= imported
    return [b for b in bad if all_good and str(b) in listed
            and sum(ln.startswith(f"{b}: ") for ln in lines) == 1]


def peak_rss_alone(path: Path | None, texts: Path, out: Path) -> tuple[int, str]:
    """Peak resident memory (bytes) of a forked child that imports just this file (None: nothing, which
    measures what the child inherits), and its outcome."""
    from motionclip.core.data.importer import import_files

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        signal.alarm(120)  # a hang ends the child (reported as no outcome) instead of the benchmark
        try:
            res = import_files([path], out, texts_file=texts) if path else None
            msg = "nothing" if res is None else res.failed[0][1] if res.failed else "imported"
        except BaseException as exc:  # noqa: BLE001 - reported, not raised
            msg = f"ESCAPED {type(exc).__name__}: {exc}"
        os.write(w, msg.encode()[:4000])
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_maxrss * 1024, msg


def at_the_limits(path: Path) -> Path:
    """A valid npz as small as the limits allow for the most frames: sparse poses that compress ~95 times."""
    rng = np.random.default_rng(0)
    poses, trans = np.zeros((L.MAX_FRAMES, 72)), np.zeros((L.MAX_FRAMES, 3))
    for a, density in ((poses, 0.007), (trans, 0.05)):
        mask = rng.random(a.shape) < density
        a[mask] = rng.random(int(mask.sum())) * 0.1
    np.savez_compressed(path, poses=poses, trans=trans, mocap_framerate=np.float64(30))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", action="store_true", help="print every file's peak memory and outcome")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(Path(tmp) / "corpus")
        limit = import_footprint() + (1 << 30)
        out = Path(tmp) / "dataset"
        t0 = time.perf_counter()
        proc = run_limited(["data", "import", *map(str, corpus.good + corpus.bad), "--out", str(out),
                            "--texts", str(corpus.texts), "--quiet"], limit, timeout=600)
        took = time.perf_counter() - t0
        errors = json.loads((out / "import_errors.json").read_text()) if (out / "import_errors.json").exists() else []
        index = json.loads((out / "index.json").read_text()) if (out / "index.json").exists() else {"clips": []}
        imported = {c["source"] for c in index["clips"]}
        ok = cost_only_themselves(corpus.bad, corpus.good, proc.stderr, errors, imported)
        print(f"hostile files: {len(corpus.bad)} (+ {len(corpus.good)} good), total "
              f"{sum(p.stat().st_size for p in corpus.bad) / 1e6:.1f} MB on disk")
        print(f"`motionclip data import` under RLIMIT_AS {limit / 2**30:.2f} GiB: exit {proc.returncode} in {took:.1f} s, "
              f"{len(ok)}/{len(corpus.bad)} cost only themselves, good imported "
              f"{len(imported & set(map(str, corpus.good)))}/{len(corpus.good)}, traceback: "
              f"{'yes' if 'Traceback' in proc.stderr else 'no'}")
        from motionclip.core.data import importer  # noqa: F401 - imported before forking

        base, _ = peak_rss_alone(None, corpus.texts, Path(tmp) / "base")
        rows = []
        for i, p in enumerate(corpus.good + corpus.bad):
            peak, msg = peak_rss_alone(p, corpus.texts, Path(tmp) / f"one{i}")
            rows.append((peak, p, msg))
        small = [r for r in rows if r[1].stat().st_size < 10e6 and r[1] in corpus.bad]
        worst = max(small, key=lambda r: r[0])
        good_peak = max(r[0] for r in rows if r[1] in corpus.good)
        print(f"peak resident memory, one file per forked child ({base / 2**20:.0f} MiB inherited): worst good file "
              f"{good_peak / 2**20:.0f} MiB; worst hostile file under 10 MB: {worst[1].name} "
              f"({worst[1].stat().st_size / 1e6:.2f} MB) {worst[0] / 2**20:.0f} MiB "
              f"({(worst[0] - base) / 2**20:+.0f} MiB over what it inherited)")
        big = at_the_limits(Path(tmp) / "at_limits.npz")
        (Path(tmp) / "at_limits.csv").write_text("file,text\nat_limits,a person stands still\n")
        peak, msg = peak_rss_alone(big, Path(tmp) / "at_limits.csv", Path(tmp) / "big")
        print(f"a file at the limits ({big.stat().st_size / 1e6:.1f} MB npz, {L.MAX_FRAMES:,} frames, expanding "
              f"~95 times): {msg}, peak {peak / 2**20:.0f} MiB")
        escaped = [r for r in rows if r[2].startswith("ESCAPED")]
        print(f"errors escaping the importer: {len(escaped)}")
        if args.table:
            print(f"\n{'file':28} {'bytes':>10} {'peak MiB':>9}  outcome")
            for peak, p, msg in sorted(rows, key=lambda r: -r[0]):
                print(f"{p.name:28} {p.stat().st_size:>10,} {peak / 2**20:>9.0f}  {msg[:90]}")
    return 0 if len(ok) == len(corpus.bad) and not escaped else 1


if __name__ == "__main__":
    raise SystemExit(main())
