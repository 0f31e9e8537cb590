"""Start-up of the command line, cold: each run is a new process, as a user types it.

    python benchmarks/bench_cli.py [--runs 5] [--device cpu]

Prints the median (and range) wall time of `motionclip --help` (target <= 0.3 s) and of
`motionclip generate "a person waves" --out FILE` with the built-in model (target <= 3 s), each
run in its own subprocess through the installed `motionclip` entry point, and the median CPU time
(user + system) of those processes: on a machine shared with other work the wall time grows with
the wait for a core, the CPU time does not (on an idle machine they are about equal). The last
line runs `generate` with one torch thread (OMP_NUM_THREADS=1): its CPU time is the work itself,
without the time a second thread spends spinning while it waits for a core.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def motionclip() -> list[str]:
    exe = Path(sys.executable).with_name("motionclip")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "motionclip.core.cli"]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each run."""
    wall, cpu = [], []
    for _ in range(runs):
        c0, t0 = _children_cpu(), time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
        wall.append(time.perf_counter() - t0)
        cpu.append(_children_cpu() - c0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return wall, cpu


def line(what: str, times: tuple[list[float], list[float]], target: float) -> str:
    wall, cpu = times
    med = statistics.median(wall)
    return (f"{what}: median {med:.2f} s wall over {len(wall)} cold runs (min {min(wall):.2f}, max {max(wall):.2f}), "
            f"median {statistics.median(cpu):.2f} s CPU; target <= {target:g} s: {'met' if med <= target else 'not met'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="cold runs of each command (default 5)")
    ap.add_argument("--device", default="cpu", help="device for generate (default cpu)")
    args = ap.parse_args(argv)
    exe = motionclip()
    timed(exe + ["--help"], 1)  # the first run after an install also fills the byte-code caches
    print(line("motionclip --help", timed(exe + ["--help"], args.runs), 0.3), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = exe + ["generate", "a person waves", "--out", str(Path(tmp) / "wave.bvh"), "--device", args.device]
        timed(cmd, 1)
        print(line("motionclip generate (built-in model)", timed(cmd, args.runs), 3.0), flush=True)
        one = timed(cmd, args.runs, env={"OMP_NUM_THREADS": "1"})
        print(line("motionclip generate (built-in model), one torch thread", one, 3.0), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
