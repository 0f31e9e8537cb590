"""The local server, tested as users run it: the real `motionclip serve` process on a loopback port.

A tiny model is trained through the real trainer (synthetic data, a random tiny CLIP: no real
weights exist offline). One server runs with the default options for the valid and invalid
requests, the load tests (100 concurrent requests; 200 slow connections) and the API fuzzing; a
second one, started through the same CLI entry point with the model patched to fail (prompts with
"explode" or "leak") or to be slow ("slowly"), runs with a token, a small job limit and a short
read timeout for the failure, busy, token, timeout and shutdown tests. A third, on 0.0.0.0, checks
that a remote bind needs a token or --allow-remote-without-token.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from conftest import train_tiny
from motionclip.core.client import ClientError, ServerClient
from motionclip.core.inference import MotionModel
from motionclip.core.io.json_motion import data_to_motion, motion_to_data
from motionclip.core.protocol import (JOINT_NAMES, MAX_BODY_BYTES, MAX_FRAMES, MAX_PROMPT_CHARS, PARENTS,
                                     PROTOCOL_VERSION, GenerateRequest, Length, MotionData, Motions)

TOKEN = "s3cret-token"

# The CLI entry point with the model patched: "explode" in a prompt raises inside the model (as a
# CUDA error or a bug would), "leak" raises an error naming files of the server's machine, "slowly"
# holds the model thread for a second.
PATCHED_MAIN = """
import sys, time
from motionclip.core import inference
real = inference.MotionModel.text_embeddings
def text_embeddings(self, texts, what="prompt"):
    if any("explode" in t for t in texts):
        raise RuntimeError("simulated failure inside the model")
    if any("leak" in t for t in texts):
        raise OSError(f"cannot read {self.run_dir.resolve()}/weights.bin or {sys.prefix}/lib/x.so")
    if any("slowly" in t for t in texts):
        time.sleep(1.0)
    return real(self, texts, what)
inference.MotionModel.text_embeddings = text_embeddings
from motionclip.core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _motionclip() -> list[str]:
    exe = Path(sys.executable).with_name("motionclip")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "motionclip.core.cli"]


class ServerProcess:
    """A `motionclip serve` subprocess; `url` once it announced where it listens."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, wait: bool = True):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.url: str | None = None
        self._started = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line)
                if "listening on http://" in line and self.url is None:
                    self.url = line.split("listening on ", 1)[1].split()[0]
                    self._started.set()
            self._started.set()

        threading.Thread(target=read, daemon=True).start()
        if wait:
            self.wait()

    def wait(self, timeout: float = 240.0) -> "ServerProcess":
        if not self._started.wait(timeout) or self.url is None:
            self.proc.kill()
            raise RuntimeError("the server did not start:\n" + "".join(self.lines))
        return self

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def request(self, method: str, path: str, body=None, headers: dict[str, str] | None = None,
                raw: bytes | None = None, timeout: float = 120.0) -> tuple[int, dict, dict]:
        """(status, JSON body, headers); `body` is sent as JSON, `raw` as is."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read()), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()), exc.headers

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("server"), clips=16, epochs=1, max_steps_per_epoch=3)


@pytest.fixture(scope="module")
def servers(run_dir):
    """Both servers, started side by side: the plain one, and the patched one with a token, --max-jobs 4 and
    --read-timeout 2."""
    plain = ServerProcess(_motionclip() + ["serve", "--checkpoint", str(run_dir), "--port", "0", "--device", "cpu"],
                          wait=False)
    patched = ServerProcess([sys.executable, "-c", PATCHED_MAIN, "serve", "--checkpoint", str(run_dir), "--port", "0",
                             "--device", "cpu", "--max-jobs", "4", "--read-timeout", "2"], env={"MOTIONCLIP_TOKEN": TOKEN},
                            wait=False)
    try:
        yield plain.wait(), patched.wait()
    finally:
        for srv in (plain, patched):
            srv.stop()


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


@pytest.fixture(scope="module")
def patched_server(servers):
    return servers[1]


@pytest.fixture(scope="module")
def model(run_dir) -> MotionModel:
    return MotionModel(run_dir, device="cpu")


def _clip(frames: int = 20) -> dict:
    q = torch.nn.functional.normalize(torch.randn(frames, 24, 4, generator=torch.Generator().manual_seed(1)), dim=-1)
    return MotionData(fps=30.0, rotations=q.tolist(), trans=torch.zeros(frames, 3).tolist()).to_json()


def _assert_error(status: int, body: dict, expected_status: int, field: str | None = None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"} and set(body["error"]) == {"field", "message"}, body
    assert isinstance(body["error"]["message"], str) and len(body["error"]["message"]) > 10, body
    if field is not None:
        assert body["error"]["field"] == field, body


# ----------------------------------------------------------------------------------------- valid requests

def test_health_and_schema(server, run_dir) -> None:
    health = ServerClient(server.url).health()
    assert health.status == "ok" and health.model == run_dir.name and health.text_encoder == "clip-random:tiny"
    assert health.device == "cpu" and health.protocol == PROTOCOL_VERSION and health.max_frames == 1000
    status, schema, _ = server.request("GET", "/openapi.json")
    assert status == 200 and {"/health", "/generate", "/interpolate", "/edit", "/recognize"} <= set(schema["paths"])
    assert {"GenerateRequest", "Motion", "Error"} <= set(schema["components"]["schemas"])
    assert "127.0.0.1" in server.url


def test_generate_matches_the_python_api(server, model) -> None:
    client = ServerClient(server.url)
    data = client.generate(GenerateRequest("a person walks forward", Length(frames=90), seed=7))
    body = data.to_json()
    assert body["joint_names"] == list(JOINT_NAMES) and body["parents"] == list(PARENTS)
    assert len(body["rest_offsets"]) == 24 and data.num_frames == 90 and data.fps == 30.0
    motion = data_to_motion(data)
    assert torch.allclose(motion.quats.norm(dim=-1), torch.ones(90, 24), atol=1e-5)
    local = model.generate("a person walks forward", frames=90, seed=7)
    assert torch.allclose(motion.quats, local.quats, atol=2e-5) and torch.allclose(motion.trans, local.trans, atol=2e-5)
    assert data.meta["prompt"] == "a person walks forward" and data.meta["seed"] == 7
    short = client.generate(GenerateRequest("a person jumps", Length(seconds=2.0, fps=24)))
    assert short.num_frames == 48 and short.fps == 24.0
    other_seed = client.generate(GenerateRequest("a person walks forward", Length(frames=90), seed=8))
    assert other_seed.rotations != data.rotations


def test_interpolate_edit_recognize(server, model) -> None:
    status, body, _ = server.request("POST", "/interpolate", {"a": "a person walks", "b": "a person jumps",
                                                              "alphas": [0.0, 0.5, 1.0], "frames": 40})
    assert status == 200, body
    motions = [data_to_motion(m) for m in Motions.from_json(body).motions]
    assert [m.num_frames for m in motions] == [40, 40, 40]
    assert torch.allclose(motions[0].quats, model.generate("a person walks", frames=40).quats, atol=2e-5)
    assert torch.allclose(motions[2].quats, model.generate("a person jumps", frames=40).quats, atol=2e-5)
    status, body, _ = server.request("POST", "/interpolate", {"a": _clip(30), "b": "a person waves", "seconds": 1})
    assert status == 200 and len(body["motions"]) == 1 and len(body["motions"][0]["rotations"]) == 30

    status, body, _ = server.request("POST", "/edit", {"motion": _clip(25), "source": "walk", "target": "run",
                                                       "strength": 0.5})
    assert status == 200, body
    edited = data_to_motion(MotionData.from_json(body))
    assert edited.num_frames == 25 and body["meta"]["edit"] == {"from": "walk", "to": "run", "strength": 0.5}

    status, body, _ = server.request("POST", "/recognize", {"motion": _clip(25), "labels": ["walk", "run", "wave"],
                                                            "top": 2})
    assert status == 200, body
    assert len(body["labels"]) == 2 and body["labels"][0]["score"] >= body["labels"][1]["score"]
    local = model.recognize(data_to_motion(MotionData.from_json(_clip(25))), ["walk", "run", "wave"])
    assert [d["label"] for d in body["labels"]] == [l for l, _ in local[:2]]


def test_cli_speaks_to_the_server(server, tmp_path) -> None:
    out = tmp_path / "wave.json"
    run = subprocess.run(_motionclip() + ["generate", "a person waves", "--frames", "45", "--out", str(out),
                                          "--server", server.url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    from motionclip.core.io import load_motion
    assert load_motion(out).num_frames == 45
    run = subprocess.run(_motionclip() + ["generate", "a person waves", "--frames", "2000", "--out", str(out),
                                          "--server", server.url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "HTTP 422" in run.stderr and "1000" in run.stderr, run.stderr


# ----------------------------------------------------------------------------------------- invalid requests

BAD_JSON = [
    ("not JSON", b'{"prompt": ', 400, ""),
    ("empty body", b"", 400, ""),
    ("not UTF-8", b'{"prompt": "\xff\xfe"}', 400, ""),
    ("a list, not an object", b'["a person walks"]', 400, ""),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, 400, ""),
    ("lone surrogate", b'{"prompt": "walk \\ud800"}', 422, "prompt"),
    ("huge integer", b'{"prompt": "walk", "frames": 1' + b"0" * 400 + b"}", 422, "frames"),
    ("NaN", b'{"prompt": "walk", "seconds": NaN}', 422, "seconds"),
]


@pytest.mark.parametrize("what, raw, status, field", BAD_JSON, ids=[b[0] for b in BAD_JSON])
def test_bad_json(server, what, raw, status, field) -> None:
    _assert_error(*server.request("POST", "/generate", raw=raw)[:2], status, field)


BAD_FIELDS = [
    ("/generate", {}, "prompt"),
    ("/generate", {"prompt": 5}, "prompt"),
    ("/generate", {"prompt": "   "}, "prompt"),
    ("/generate", {"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
    ("/generate", {"prompt": "walk\x00"}, "prompt"),
    ("/generate", {"prompt": "walk", "frames": "ten"}, "frames"),
    ("/generate", {"prompt": "walk", "frames": 0}, "frames"),
    ("/generate", {"prompt": "walk", "frames": 2.5}, "frames"),
    ("/generate", {"prompt": "walk", "frames": True}, "frames"),
    ("/generate", {"prompt": "walk", "frames": MAX_FRAMES + 1}, "frames"),
    ("/generate", {"prompt": "walk", "frames": 1001}, "frames"),          # over the model's own limit
    ("/generate", {"prompt": "walk", "seconds": 40}, "seconds"),          # likewise
    ("/generate", {"prompt": "walk", "frames": 10, "seconds": 1}, "frames"),
    ("/generate", {"prompt": "walk", "fps": 0}, "fps"),
    ("/generate", {"prompt": "walk", "fps": 1e9}, "fps"),
    ("/generate", {"prompt": "walk", "seed": -1}, "seed"),
    ("/generate", {"prompt": "walk", "temperature": 1}, "temperature"),
    ("/interpolate", {"a": "walk"}, "b"),
    ("/interpolate", {"a": "walk", "b": "run", "alphas": [1.5]}, "alphas"),
    ("/interpolate", {"a": "walk", "b": "run", "alphas": []}, "alphas"),
    ("/interpolate", {"a": "walk", "b": "run", "alphas": "0.5"}, "alphas"),
    ("/interpolate", {"a": "walk", "b": {"fps": 30, "rotations": [], "trans": []}}, "b.rotations"),
    ("/edit", {"source": "walk", "target": "run"}, "motion"),
    ("/edit", {"motion": _clip(5), "source": "walk"}, "target"),
    ("/edit", {"motion": _clip(5), "source": "walk", "target": "run", "strength": 50}, "strength"),
    ("/edit", {"motion": {**_clip(5), "fps": -3}, "source": "a", "target": "b"}, "fps"),
    ("/edit", {"motion": {**_clip(2), "rotations": [[[1, 0, 0, 0]] * 23] * 2}, "source": "a", "target": "b"},
     "motion.rotations[0]"),
    ("/edit", {"motion": {**_clip(2), "rotations": [[[0, 0, 0, 0]] * 24] * 2}, "source": "a", "target": "b"},
     "motion.rotations[0][0]"),
    ("/edit", {"motion": {**_clip(2), "trans": [[0, 0, "x"]] * 2}, "source": "a", "target": "b"}, "motion.trans[0]"),
    ("/edit", {"motion": {**_clip(2), "trans": [[0, 0, 1e300]] * 2}, "source": "a", "target": "b"},
     "motion.trans[0]"),
    ("/edit", {"motion": {**_clip(2), "joint_names": ["a"] * 24}, "source": "a", "target": "b"},
     "motion.joint_names"),
    ("/edit", {"motion": {**_clip(1100), "fps": 30}, "source": "a", "target": "b"}, "motion.rotations"),
    ("/recognize", {"motion": _clip(5), "labels": []}, "labels"),
    ("/recognize", {"motion": _clip(5), "labels": ["walk", 3]}, "labels"),
    ("/recognize", {"motion": _clip(5), "labels": ["walk"], "top": 0}, "top"),
    ("/recognize", {"motion": "walk", "labels": ["walk"]}, "motion"),
]


@pytest.mark.parametrize("path, body, field", BAD_FIELDS,
                         ids=[f"{p}-{f}-{i}" for i, (p, _, f) in enumerate(BAD_FIELDS)])
def test_bad_fields_name_the_field(server, path, body, field) -> None:
    status, answer, _ = server.request("POST", path, body)
    _assert_error(status, answer, 422, field)


def test_wrong_path_method_type_host_and_size(server) -> None:
    status, body, _ = server.request("GET", "/generat")
    _assert_error(status, body, 404)
    assert "/generate" in body["error"]["message"]
    status, body, _ = server.request("GET", "/generate")
    _assert_error(status, body, 405)
    assert "POST" in body["error"]["message"]
    _assert_error(*server.request("DELETE", "/health")[:2], 405)
    status, body, _ = server.request("POST", "/generate", raw=b"prompt=walk",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    _assert_error(status, body, 415, "Content-Type")
    status, body, _ = server.request("GET", "/health", headers={"Host": "attacker.example:8765"})
    _assert_error(status, body, 400, "Host")
    # a body over the limit, declared: refused before it is read (the answer comes with 1 KB sent)
    host, port = server.url.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/generate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders(b" " * 1024)
    resp = conn.getresponse()
    _assert_error(resp.status, json.loads(resp.read()), 413)
    conn.close()
    # ... and streamed without a length (chunked): refused once the limit is passed
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    chunk = b" " * (1 << 20)
    conn.request("POST", "/generate", body=iter([chunk] * (MAX_BODY_BYTES // len(chunk) + 2)),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    resp = conn.getresponse()
    _assert_error(resp.status, json.loads(resp.read()), 413)
    conn.close()
    assert server.request("GET", "/health")[0] == 200


# ----------------------------------------------------------------------------------------- load

def test_100_concurrent_requests(server) -> None:
    def one(i: int) -> tuple[int, int, int]:
        frames = 30 + (i % 7) * 20
        status, body, _ = server.request("POST", "/generate", {"prompt": f"a person walks {i % 13}", "frames": frames,
                                                               "seed": i})
        return status, frames, len(body.get("rotations", []))

    before = server.request("GET", "/health")[1]["stats"]
    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(one, range(100)))
    assert [r[0] for r in results] == [200] * 100, results
    assert all(frames == got for _, frames, got in results)
    status, health, _ = server.request("GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["jobs"] == 0
    batches = health["stats"]["batches"] - before["batches"]
    generated = health["stats"]["generated"] - before["generated"]
    assert generated == 100 and batches < 100  # requests were batched together


def test_batched_generation_equals_one_at_a_time(model) -> None:
    reqs = [dict(prompt="a person walks", frames=90, seed=1), dict(prompt="a person waves", frames=17),
            dict(prompt="a person walks", seconds=1.5, fps=24, seed=3), dict(prompt="a person kicks", frames=1)]
    batched = model.generate_batch(reqs)
    for r, m in zip(reqs, batched):
        alone = model.generate(**r)
        assert m.num_frames == alone.num_frames and m.fps == alone.fps
        # Batched and single matrix products round differently (about 1e-7, grown by the network); a wrong
        # mask or padding would differ by orders of magnitude more.
        assert torch.allclose(m.quats, alone.quats, atol=1e-4) and torch.allclose(m.trans, alone.trans, atol=1e-4)


def test_fast_decoder_equals_the_model(model) -> None:
    from motionclip.core.fast_decode import FastDecoder

    assert isinstance(model.decoder, FastDecoder)  # the shortcut passed its own check at load
    z = model.text_latents(["a person walks", "a person waves", "a person jumps"])
    for lengths in (90, torch.tensor([90, 33, 1])):
        with torch.inference_mode():
            fast, ref = model.decoder.decode(z, lengths), model.model.decode(z, lengths)
        for a, b in zip(fast, ref):
            assert torch.allclose(a, b, atol=1e-5)


def test_text_cache_is_bounded(run_dir) -> None:
    m = MotionModel(run_dir, device="cpu", text_cache_size=3)
    first = m.text_embeddings(["a", "b", "c", "d"])
    assert len(m._text_cache) == 4  # a request larger than the cache is served whole
    m.text_embeddings(["e"])
    assert list(m._text_cache) == ["c", "d", "e"]
    assert torch.allclose(m.text_embeddings(["a"]), first[:1], atol=1e-5)  # encoded again, alone


# ----------------------------------------------------------------------------------------- failures, token, limits

def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_token(patched_server) -> None:
    _assert_error(*patched_server.request("GET", "/health")[:2], 401, "Authorization")
    _assert_error(*patched_server.request("GET", "/health", headers={"Authorization": "Bearer nope"})[:2], 401)
    _assert_error(*patched_server.request("POST", "/generate", {"prompt": "walk"},
                                          headers={"Authorization": "Basic " + TOKEN})[:2], 401)
    assert patched_server.request("GET", "/health", headers=_auth())[0] == 200
    assert patched_server.request("GET", "/openapi.json")[0] == 200  # the schema is public
    with pytest.raises(ClientError, match="token"):
        ServerClient(patched_server.url, token="").health()
    assert ServerClient(patched_server.url, token=TOKEN).health().status == "ok"


def test_model_failure_is_a_500_and_the_server_goes_on(patched_server) -> None:
    prompts = ["a person walks", "it will explode", "a person waves", "a person runs"]  # --max-jobs 4
    bodies = [{"prompt": p, "frames": 30} for p in prompts]
    with ThreadPoolExecutor(len(bodies)) as pool:  # batched together: only the bad item fails
        results = list(pool.map(lambda b: patched_server.request("POST", "/generate", b, headers=_auth()), bodies))
    assert [r[0] for r in results] == [200, 500, 200, 200], results
    assert "simulated failure" in results[1][1]["error"]["message"]
    assert "still running" in results[1][1]["error"]["message"]
    status, body, _ = patched_server.request("POST", "/interpolate", {"a": "walk", "b": "explode"}, headers=_auth())
    _assert_error(status, body, 500)
    assert patched_server.request("POST", "/generate", {"prompt": "a person walks"}, headers=_auth())[0] == 200
    assert patched_server.request("GET", "/health", headers=_auth())[1]["status"] == "ok"
    assert "simulated failure inside the model" in patched_server.output  # logged with its traceback


def test_busy_server_answers_503(patched_server) -> None:
    body = {"prompt": "a person walks slowly", "frames": 30}
    with ThreadPoolExecutor(10) as pool:  # --max-jobs 4, and each batch holds the model for a second
        results = list(pool.map(lambda _: patched_server.request("POST", "/generate", body, headers=_auth()),
                                range(10)))
    statuses = sorted(r[0] for r in results)
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1 and set(statuses) <= {200, 503}, statuses
    busy = next(r for r in results if r[0] == 503)
    _assert_error(busy[0], busy[1], 503)
    assert "--max-jobs" in busy[1]["error"]["message"] and busy[2].get("Retry-After") == "1"


def test_port_in_use_and_bad_options(server, run_dir) -> None:
    port = server.url.rsplit(":", 1)[1]
    run = subprocess.run(_motionclip() + ["serve", "--checkpoint", str(run_dir), "--port", port],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "already in use" in run.stderr and "--port" in run.stderr, run.stderr
    run = subprocess.run(_motionclip() + ["serve", "--checkpoint", str(run_dir / "missing"), "--port", "0"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "missing" in run.stderr and "Traceback" not in run.stderr, run.stderr
    for value, says in (("0", "more than 0"), ("soon", "expected a number of seconds")):
        run = subprocess.run(_motionclip() + ["serve", "--read-timeout", value], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 2 and "--read-timeout" in run.stderr and says in run.stderr, run.stderr


# ----------------------------------------------------------------------------------------- slow clients, exposure

class SlowClients:
    """`n` connections that send a request a byte every half second: a third never finish their headers,
    a third send their headers and then nothing, a third trickle their body."""

    def __init__(self, url: str, n: int, extra_headers: str = ""):
        host, port = url.rsplit("/", 1)[1].split(":")
        head = ("POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: 1000\r\n{extra_headers}\r\n").encode()
        body = b'{"prompt": "' + b"a" * 986 + b'"}'
        self.socks: list[socket.socket] = []
        self.rest: list[bytes] = []
        self.kinds = [i % 3 for i in range(n)]  # 0: headers trickle, 1: headers then silence, 2: body trickle
        for kind in self.kinds:
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(head if kind else head[:20])
            s.setblocking(False)
            self.socks.append(s)
            self.rest.append(head[20:] if kind == 0 else (body if kind == 2 else b""))
        self.answers = [b""] * n  # what the server sent on each
        self.closed = [False] * n
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(0.5):
            for i, s in enumerate(self.socks):
                if self.rest[i] and not self.closed[i]:
                    try:
                        s.send(self.rest[i][:1])
                        self.rest[i] = self.rest[i][1:]
                    except OSError:
                        pass  # closed by the server: poll() reads what it said

    def poll(self) -> int:
        """Reads whatever the server sent; the number of connections it has not closed."""
        for i, s in enumerate(self.socks):
            while not self.closed[i]:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                self.closed[i] = not data
                self.answers[i] += data
        return self.closed.count(False)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.socks:
            s.close()


def test_slow_clients_do_not_starve_the_server(server) -> None:
    """200 connections sending a byte at a time hold no job slot (--max-jobs 128): real requests get 200."""
    slow = SlowClients(server.url, 200)
    try:
        time.sleep(1.0)
        assert slow.poll() == 200 and slow.answers == [b""] * 200  # all connected, none answered or closed
        health = server.request("GET", "/health")
        assert health[0] == 200 and health[1]["jobs"] == 0  # slow bodies take no job slot

        def one(i: int) -> int:
            return server.request("POST", "/generate", {"prompt": f"a person walks {i}", "frames": 30})[0]

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(one, range(60)))
        still_open = slow.poll()
        print(f"\nwith 200 slow clients connected: {statuses.count(200)} of {len(statuses)} real requests "
              f"answered 200; {still_open} slow clients still unanswered")
        assert statuses == [200] * len(statuses), statuses
        assert not any(a.startswith(b"HTTP/1.1 503") for a in slow.answers)
    finally:
        slow.close()
    assert server.request("GET", "/health")[1]["jobs"] == 0


def test_slow_and_idle_clients_time_out(patched_server) -> None:
    """--read-timeout 2 and --max-jobs 4: more slow clients than slots, a real request still gets 200, and
    each slow one is cut off: a slow body with 408, unfinished headers and an idle connection closed."""
    slow = SlowClients(patched_server.url, 12, extra_headers=f"Authorization: Bearer {TOKEN}\r\n")
    host, port = patched_server.url.rsplit("/", 1)[1].split(":")
    idle = socket.create_connection((host, int(port)), timeout=30)
    try:
        assert patched_server.request("POST", "/generate", {"prompt": "a person walks", "frames": 30},
                                      headers=_auth())[0] == 200
        deadline = time.monotonic() + 30
        while slow.poll() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert slow.poll() == 0, slow.answers
        for kind, answer in zip(slow.kinds, slow.answers):
            if kind == 0:
                assert answer == b"", answer  # no request: nothing to answer, the connection is closed
            else:
                assert answer.startswith(b"HTTP/1.1 408"), answer
                body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
                _assert_error(408, body, 408)
                assert "within 2 s" in body["error"]["message"]
        assert idle.recv(100) == b""  # closed by the server
    finally:
        slow.close()
        idle.close()
    assert "no complete request within 2 s; connection closed" in patched_server.output
    assert "was cut off" in patched_server.output


def test_client_leaving_mid_body_is_one_log_line(server) -> None:
    host, port = server.url.rsplit("/", 1)[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 5000\r\n\r\n" + b'{"prompt": "' + b"a" * 88)
    me = f"127.0.0.1:{s.getsockname()[1]} "
    time.sleep(0.3)
    s.close()
    deadline = time.monotonic() + 20
    while not any(me in line for line in server.lines) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # anything else it would log about this client comes now
    lines = [line for line in server.lines if me in line]
    assert len(lines) == 1 and "POST /generate: went away after sending 100 bytes of its body" in lines[0], lines
    assert "Traceback" not in server.output and "Exception" not in server.output
    assert server.request("GET", "/health")[0] == 200


def _post(url: str, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """POST with exactly these headers (urllib would add a form Content-Type)."""
    host, port = url.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", path, body=raw, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonp", ""])
def test_post_bodies_must_be_declared_json(server, ctype) -> None:
    raw = b'{"prompt": "a person waves", "frames": 10}'
    headers = {} if ctype is None else {"Content-Type": ctype}
    for path in ("/generate", "/recognize"):
        status, body = _post(server.url, path, raw, headers)
        _assert_error(status, body, 415, "Content-Type")
        assert "'Content-Type: application/json'" in body["error"]["message"]
        assert ("no Content-Type header was sent" if ctype is None else "not ") in body["error"]["message"]


def test_json_with_parameters_and_both_clients_are_accepted(server) -> None:
    raw = b'{"prompt": "a person waves", "frames": 10}'
    for ctype in ("application/json; charset=utf-8", "Application/JSON"):
        assert _post(server.url, "/generate", raw, {"Content-Type": ctype})[0] == 200
    assert ServerClient(server.url).generate(GenerateRequest("a person waves", Length(frames=10))).num_frames == 10
    # The Blender add-on's client (standard library only), loaded without Blender
    addon = Path(__file__).resolve().parent.parent / "blender_addon"
    spec = importlib.util.spec_from_file_location("motionclip_addon_under_test", addon / "__init__.py",
                                                  submodule_search_locations=[str(addon)])
    sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))  # the package, its __init__ not run
    addon_client = importlib.import_module(f"{spec.name}.client")
    assert addon_client.Client(server.url).generate("a person waves", frames=12).num_frames == 12


def test_answers_name_no_paths(server, patched_server, run_dir) -> None:
    forbidden = {str(run_dir), str(run_dir.resolve()), str(run_dir.parent.resolve()), sys.prefix, os.getcwd(),
                 str(Path.home()), str(Path(__file__).resolve().parent.parent)}
    answers = [server.request("GET", "/health"), server.request("GET", "/openapi.json"),
               server.request("POST", "/generate", {"prompt": "a person waves", "frames": 20}),
               server.request("POST", "/interpolate", {"a": "a person walks", "b": _clip(20), "alphas": [0.5]}),
               server.request("POST", "/edit", {"motion": _clip(20), "source": "walk", "target": "run"}),
               server.request("POST", "/recognize", {"motion": _clip(20), "labels": ["walk", "run"]}),
               server.request("POST", "/generate", {"prompt": "walk", "frames": 5000}),
               server.request("GET", "/nowhere")]
    leak = patched_server.request("POST", "/generate", {"prompt": "a leak", "frames": 20}, headers=_auth())
    assert leak[0] == 500 and "OSError: cannot read run/weights.bin or <path>" in leak[1]["error"]["message"], leak
    for status, body, _ in answers + [leak]:
        text = json.dumps(body)
        assert not any(p in text for p in forbidden), (status, text[:500])
    assert answers[0][1]["model"] == run_dir.name
    assert answers[2][1]["meta"]["generator"] == run_dir.name
    assert answers[3][1]["motions"][0]["meta"]["generator"] == run_dir.name
    assert answers[4][1]["meta"]["generator"] == run_dir.name


def test_remote_bind_needs_a_token_or_the_flag(run_dir) -> None:
    cmd = _motionclip() + ["serve", "--checkpoint", str(run_dir), "--host", "0.0.0.0", "--port", "0", "--device", "cpu"]
    env = {**os.environ, "MOTIONCLIP_TOKEN": ""}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "refusing to listen on 0.0.0.0 without a token" in run.stderr and "--token" in run.stderr
    assert "--allow-remote-without-token" in run.stderr
    srv = ServerProcess(cmd + ["--allow-remote-without-token"], env={"MOTIONCLIP_TOKEN": ""})
    try:
        assert "warning: listening on 0.0.0.0" in srv.output and "anyone who can reach it" in srv.output
        srv.url = srv.url.replace("0.0.0.0", "127.0.0.1")
        assert srv.request("GET", "/health", headers={"Host": "motionclip.lan:8765"})[0] == 200  # no loopback check
    finally:
        assert srv.stop() == 0


def test_serve_refuses_unsafe_options_before_it_listens(model) -> None:
    from motionclip.core.server import ServerError, ServerOptions, serve

    with pytest.raises(ServerError, match="refusing to listen on 0.0.0.0 without a token"):
        serve(model, ServerOptions(host="0.0.0.0", port=0))
    with pytest.raises(ServerError, match="read timeout must be more than 0"):
        serve(model, ServerOptions(port=0, read_timeout=0))


def test_every_503_says_when_to_retry(model) -> None:
    from motionclip.core.server import HTTPFailure, ModelWorker

    worker = ModelWorker(model, max_jobs=1)

    async def refusals() -> list[HTTPFailure]:
        out = []
        await worker.start()
        with worker.slot():
            with pytest.raises(HTTPFailure) as busy:
                with worker.slot():
                    pass
            out.append(busy.value)
        await worker.stop()
        with pytest.raises(HTTPFailure) as closing:
            with worker.slot():
                pass
        return out + [closing.value]

    busy, closing = asyncio.run(refusals())
    assert busy.status == 503 and busy.headers["Retry-After"] == "1" and "--max-jobs" in busy.message
    assert closing.status == 503 and closing.headers["Retry-After"] == "5" and "shutting down" in closing.message


def test_sigterm_finishes_the_request_in_flight_and_exits_cleanly(patched_server) -> None:
    result = {}
    t = threading.Thread(target=lambda: result.update(r=patched_server.request(
        "POST", "/generate", {"prompt": "a person walks slowly", "frames": 30}, headers=_auth())))
    t.start()
    time.sleep(0.4)  # the request is on the model thread now
    rc = patched_server.stop(signal.SIGTERM)
    t.join(30)
    assert rc == 0, patched_server.output
    assert result["r"][0] == 200
    assert "stopped (SIGTERM)" in patched_server.output


# ----------------------------------------------------------------------------------------- fuzzing

def _fuzz(url: str, examples: int, derandomize: bool) -> int:
    """Schemathesis cases from /openapi.json for every operation, valid and invalid bodies; returns the count.
    Checks: no 5xx, every status and content type documented, every answer fits its schema."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation.modes import GenerationMode

    checks = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
              schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        has_body = operation.method.upper() == "POST"  # GET /health has no input to make invalid
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[: 2 if has_body else 1]:
            @given(case=operation.as_strategy(mode))
            @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=derandomize, database=None)
            def run(case) -> None:
                nonlocal count
                count += 1
                case.call_and_validate(checks=checks)

            run()
    return count


def test_fuzz_api_quick(server) -> None:
    assert _fuzz(server.url, examples=6, derandomize=True) >= 30
    assert server.request("GET", "/health")[0] == 200


@pytest.mark.slow
def test_fuzz_api(server) -> None:
    assert _fuzz(server.url, examples=300, derandomize=False) >= 1000
    assert server.request("GET", "/health")[0] == 200


def test_sigint_exits_cleanly(server) -> None:
    """Last in this file: stops the plain server, as Ctrl+C in its terminal would."""
    assert server.request("GET", "/health")[0] == 200
    assert server.stop(signal.SIGINT) == 0 and "stopped (SIGINT)" in server.output, server.output
