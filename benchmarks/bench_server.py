"""The local server under load: p50 / p95 latency and generations/s with 1 and 8 concurrent clients,
and the server's resident memory (targets on a 2-core CPU: >= 20 generations/s and p95 <= 1 s with
8 clients, <= 1.5 GB resident).

    python benchmarks/bench_server.py [--checkpoint RUN] [--requests 200] [--frames 120] [--clients 1,8]

Starts the real server (`motionclip serve --port 0`) as a subprocess and sends POST /generate from
client threads, each on its own keep-alive HTTP connection, every request a prompt the server has
not seen (so the text-embedding cache does not help). The model: --checkpoint, else the built-in
model (core/assets/model) when installed, else a run trained here for a few steps through the real
trainer with the built-in model's recipe (--preset builtin: the offline MiniLM encoder and the
built-in's architecture; "small" is the larger small preset): timing does not depend on how well
the weights are trained.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["a person walks forward", "someone waves with the left hand", "a man jumps in place", "a person kicks",
           "a woman bows politely", "someone runs in a circle", "a person sits down", "a person claps happily"]


def motionclip() -> list[str]:
    exe = Path(sys.executable).with_name("motionclip")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "motionclip.core.cli"]


def train_timing_run(folder: Path, preset: str) -> Path:
    """A run with the preset's architecture and the MiniLM encoder, trained for a few steps (real trainer)."""
    subprocess.run(motionclip() + ["data", "synth", "--out", str(folder / "data"), "--clips", "24", "--seed", "0",
                                   "--quiet"], check=True)
    subprocess.run(motionclip() + ["train", "autoencoder", "--data", str(folder / "data"), "--out", str(folder / "run"),
                                   "--config", preset, "--encoder", "minilm", "--epochs", "1",
                                   "--max-steps-per-epoch", "3", "--quiet"], check=True)
    return folder / "run"


class Server:
    def __init__(self, run: Path, extra: list[str]):
        self.proc = subprocess.Popen(motionclip() + ["serve", "--checkpoint", str(run), "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        ready = threading.Event()
        self.host, self.port = "127.0.0.1", 0

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                if "listening on http://" in line:
                    self.host, port = line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)
                    self.port = int(port)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        t0 = time.perf_counter()
        if not ready.wait(600) or not self.port:
            self.proc.kill()
            raise SystemExit("the server did not start:\n" + "".join(self.lines))
        self.start_s = time.perf_counter() - t0

    def memory(self) -> tuple[float, float]:
        """(resident, peak resident) in MB, from /proc (Linux) or psutil."""
        status = Path(f"/proc/{self.proc.pid}/status")
        if status.is_file():
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
        import psutil
        rss = psutil.Process(self.proc.pid).memory_info().rss / 2**20
        return rss, rss

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(60)


def load(server: Server, clients: int, requests: int, frames: int, tag: str) -> dict:
    """`requests` generations from `clients` threads; latencies and throughput."""
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = json.dumps({"prompt": f"{PROMPTS[i % len(PROMPTS)]} ({tag} {i})", "frames": frames, "seed": i})
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/generate", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
                continue
            dt = time.perf_counter() - t0
            if resp.status != 200 or b'"rotations"' not in data:
                errors.append(f"HTTP {resp.status}: {data[:200]!r}")
            else:
                latencies.append(dt)
        conn.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"clients": clients, "requests": requests, "ok": len(latencies), "errors": errors,
            "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000 if latencies else float("nan"),
            "gen_per_s": len(latencies) / wall}


def model_ceiling(run: Path, frames: int, seconds: float = 8.0, workers: int = 2) -> float:
    """Generations/s of the model alone in this process, as the server runs it on a CPU (`workers` threads,
    one torch thread each, batches of 8 new prompts): the peer of the server's 8-client figure."""
    import torch

    from motionclip.core.inference import MotionModel

    torch.set_num_threads(1)
    model = MotionModel(run, device="cpu")
    model.generate_batch([dict(prompt="warm up", frames=frames)] * 8)
    done, stop, lock = [0], time.perf_counter() + seconds, threading.Lock()

    def work(w: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            model.generate_batch([dict(prompt=f"{PROMPTS[k]} (ceiling {w} {i})", frames=frames, seed=k)
                                  for k in range(8)])
            i += 1
            with lock:
                done[0] += 8

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="a run directory (default: the built-in model, else a timing run)")
    ap.add_argument("--preset", default="builtin", help="training preset of the timing run (default builtin)")
    ap.add_argument("--requests", type=int, default=200, help="generations per client count (default 200)")
    ap.add_argument("--frames", type=int, default=120, help="frames per generation (default 120, 4 s at 30 fps)")
    ap.add_argument("--clients", default="1,8", help="client counts, comma-separated (default 1,8)")
    ap.add_argument("--server-args", default="", help="extra `motionclip serve` options, e.g. '--max-batch 16'")
    ap.add_argument("--no-ceiling", action="store_true", help="skip timing the model alone in this process")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run = args.checkpoint
        if run is None:
            builtin = REPO / "core" / "assets" / "model"
            if (builtin / "config.json").is_file():
                run = builtin
            else:
                print(f"no built-in model installed: training a timing run ({args.preset} preset, MiniLM encoder, "
                      "3 steps)", flush=True)
                run = train_timing_run(Path(tmp), args.preset)
        config = json.loads((Path(run) / "config.json").read_text())
        m = config["model"]
        print(f"model: {run}: {m.get('enc_layers')}+{m.get('dec_layers')} layers, latent {m.get('latent_dim')}, "
              f"ffn {m.get('ff_dim')}, encoder {config['encoder'].get('spec') or config['encoder'].get('name')}")
        import os
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
              f"({os.cpu_count()} CPUs; other programs running slow the figures down)")
        server = Server(Path(run), args.server_args.split())
        rss0, _ = server.memory()
        print(f"server started in {server.start_s:.1f} s (model load + warm-up); resident memory {rss0:.0f} MB")
        try:
            load(server, 2, 16, args.frames, "warm-up")
            rows = []
            for clients in (int(c) for c in args.clients.split(",")):
                with urlopen_health(server) as health:
                    before = health.get("stats", {})
                r = load(server, clients, args.requests, args.frames, f"c{clients}")
                with urlopen_health(server) as health:
                    after = health.get("stats", {})
                rows.append(r)
                passes = after.get("batches", 0) - before.get("batches", 0)
                print(f"{clients} client(s), {r['requests']} x {args.frames}-frame generations: "
                      f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, {r['gen_per_s']:.1f} generations/s, "
                      f"{len(r['errors'])} errors" + (f" (first: {r['errors'][0]})" if r["errors"] else "")
                      + (f"; {(after['generated'] - before['generated']) / passes:.1f} generations per forward pass"
                         if passes else ""), flush=True)
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            rss, peak = server.memory()
            print(f"server resident memory: {rss:.0f} MB now, {peak:.0f} MB peak (target <= 1536 MB)")
            eight = next((r for r in rows if r["clients"] == 8), None)
            if eight:
                ok = eight["gen_per_s"] >= 20 and eight["p95_ms"] <= 1000 and not eight["errors"] and peak <= 1536
                print(f"targets (8 clients: >= 20 generations/s, p95 <= 1000 ms, no error; <= 1536 MB): "
                      f"{'met' if ok else 'NOT met'}")
        finally:
            rc = server.stop()
            print(f"server stopped (exit code {rc})")
        if not args.no_ceiling:
            ceiling = model_ceiling(Path(run), args.frames)
            eight = next((r for r in rows if r["clients"] == 8), rows[-1])
            print(f"the model alone in this process (2 threads, batches of 8, no HTTP), right after: {ceiling:.1f} "
                  f"generations/s; the server reached {eight['gen_per_s'] / ceiling:.2f}x of it with "
                  f"{eight['clients']} clients")


class urlopen_health:
    def __init__(self, server: Server):
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=30)

    def __enter__(self) -> dict:
        self.conn.request("GET", "/health")
        return json.loads(self.conn.getresponse().read())

    def __exit__(self, *exc) -> None:
        self.conn.close()


if __name__ == "__main__":
    main()
