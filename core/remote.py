"""A running `motionclip serve` as a model: RemoteModel answers MotionModel's calls over HTTP.

    model = RemoteModel("http://127.0.0.1:8765", token=None)
    model.generate("a person waves", seconds=3)            -> Motion
    model.interpolate("walk", "run", [0.25, 0.75])         -> [Motion, Motion]
    model.edit(motion, "walk", "walk happily")             -> Motion
    model.recognize(motion, ["walk", "run"])               -> [("walk", 0.41), ("run", 0.12)]

Requests go through the standard-library client (core/client.py); values are checked against the
wire protocol before they are sent, and motions travel as the protocol's MotionData.
"""

from __future__ import annotations

from typing import Sequence

from .client import ClientError, ServerClient, check
from .protocol import EditRequest, GenerateRequest, InterpolateRequest, MotionData, ProtocolError, RecognizeRequest


def _to_motion(data: MotionData):
    from .io.json_motion import data_to_motion

    return data_to_motion(data, "the server's answer")


def _to_data(motion, field: str) -> MotionData:
    """A Motion as the wire type, checked against the protocol's limits before sending."""
    from .io.json_motion import motion_to_data

    try:
        return MotionData.from_json(motion_to_data(motion).to_json(), field)
    except ProtocolError as exc:
        raise ClientError(f"{exc.field}: {exc.message}") from None


class RemoteModel:
    """MotionModel's generate / generate_batch / interpolate / edit / recognize, run by a server."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0):
        self.client = ServerClient(url, token=token, timeout=timeout)
        self.name = self.client.url

    def health(self):
        return self.client.health()

    def generate(self, prompt: str, frames: int | None = None, seconds: float | None = None, fps: float | None = None,
                 seed: int | None = None):
        req = check(GenerateRequest, dict(prompt=prompt, frames=frames, seconds=seconds, fps=fps, seed=seed))
        return _to_motion(self.client.generate(req))

    def generate_batch(self, requests: Sequence[dict]) -> list:
        """One request after another (the server batches concurrent requests on its side)."""
        return [self.generate(r.get("prompt"), r.get("frames"), r.get("seconds"), r.get("fps"), r.get("seed"))
                for r in requests]

    def interpolate(self, a, b, alphas: Sequence[float], frames: int | None = None, seconds: float | None = None,
                    fps: float | None = None) -> list:
        ends = {key: x if isinstance(x, str) else _to_data(x, key).to_json() for key, x in (("a", a), ("b", b))}
        req = check(InterpolateRequest, dict(**ends, alphas=list(alphas), frames=frames, seconds=seconds, fps=fps))
        return [_to_motion(m) for m in self.client.interpolate(req)]

    def edit(self, motion, source: str, target: str, strength: float = 1.0):
        req = check(EditRequest, dict(motion=_to_data(motion, "motion").to_json(), source=source, target=target,
                                      strength=strength))
        return _to_motion(self.client.edit(req))

    def recognize(self, motion, labels: Sequence[str]) -> list[tuple[str, float]]:
        """Every label ranked, best first (as MotionModel.recognize)."""
        labels = list(labels)
        req = check(RecognizeRequest, dict(motion=_to_data(motion, "motion").to_json(), labels=labels,
                                           top=len(labels) or None))
        return [(label, float(score)) for label, score in self.client.recognize(req).ranked]
