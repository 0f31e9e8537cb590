"""Import + retarget speed in source frames/s (target: >= 50,000 on CMU 01_03, 2-core CPU).

    python benchmarks/bench_import.py [FILE.bvh ...] [--repeat N]

Times the whole path a user runs: parse the BVH, retarget to SMPL, measure the retarget error.
Defaults to CMU 01_03 from Debian's assimp-testmodels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from motionclip.core.io import load_source_motion

DEFAULT = Path("/usr/share/assimp/models/BVH/01_03.bvh")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, default=[DEFAULT])
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args(argv)
    for f in args.files:
        if not f.exists():
            print(f"{f}: not found (apt-get install assimp-testmodels for CMU 01_03)", file=sys.stderr)
            return 2
        load_source_motion(f)  # warm-up: imports, first-call allocations
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            motion, report = load_source_motion(f)
            times.append(time.perf_counter() - t0)
        src_frames = int(motion.meta["source_frames"])
        med = statistics.median(times)
        print(f"{f.name}: {src_frames} source frames, median {med * 1000:.1f} ms over {args.repeat} runs "
              f"-> {src_frames / med:,.0f} source frames/s (best {src_frames / min(times):,.0f}); "
              f"bone-direction error {report.bone_dir_err_deg:.2f} deg mean")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
