"""Inference with a trained MotionCLIP: text to motion, interpolation, editing, recognition.

The latent space is shared by motions and texts: a prompt's embedding, scaled to the size of
the latents the decoder saw in training (z is trained by direction only), decodes to a motion;
a motion's latent compared with label embeddings names its action.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .errors import MotionClipError
from .motion import Motion
from .protocol import MAX_ALPHA, MAX_FPS, MAX_PROMPT_CHARS, MIN_ALPHA, MIN_FPS
from .rotations import rot6d_to_quat
from .run import SHA256, WEIGHTS, load_model
from .skeleton import neutral_skeleton
from .remote import RemoteModel  # the same calls, answered by a running server (core/remote.py)

# Limits come from the wire protocol, so the API, the CLI and the server agree.
__all__ = ["MotionModel", "RemoteModel", "InferenceError", "MAX_PROMPT_CHARS", "MAX_FPS", "MIN_FPS"]


class InferenceError(MotionClipError):
    """Bad input to inference; `field` names the request field at fault ("frames", "fps", ...) when known."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


def builtin_run_dir() -> Path:
    """The model shipped with the package (core/assets/model)."""
    path = Path(str(resources.files("motionclip.core") / "assets" / "model"))
    if not (path / "config.json").is_file():
        raise InferenceError("no built-in model is installed in this version; train one with "
                             "`motionclip train autoencoder` and pass its folder with --checkpoint RUN")
    return path


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InferenceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InferenceError(f"device {device!r} asked for, but no CUDA GPU is available; use --device cpu")
    return dev


def check_prompt(prompt: object, what: str = "prompt") -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InferenceError(f"{what} is empty; describe a motion, e.g. \"a person waves with the left hand\"", what)
    if len(prompt.strip()) > MAX_PROMPT_CHARS:
        raise InferenceError(f"{what} is {len(prompt.strip())} characters long; keep it under {MAX_PROMPT_CHARS}", what)
    return prompt.strip()


class MotionModel:
    """A trained MotionCLIP and its text encoder, loaded once."""

    def __init__(self, run_dir: str | Path | None = None, device: str | torch.device | None = "auto",
                 encoder=None, text_cache_size: int = 1024):
        from .encoders import load_run_encoder

        self.device = pick_device(device)
        self.run_dir = Path(run_dir) if run_dir else builtin_run_dir()
        # What /health and the add-on call it: the run's folder, or "built-in" for the shipped model.
        self.name = str(self.run_dir) if run_dir else "built-in"
        self.model, self.config = load_model(self.run_dir, self.device)
        identity = self.config["encoder"]
        if encoder is None:
            # The run's own spec, where a run may point (no weights file outside the CLIP cache).
            encoder = load_run_encoder(identity, self.run_dir, device=self.device, text_only=True)
        encoder.check_identity(identity, what=f"the model in {self.run_dir}")
        self.encoder = encoder
        self.fps = float(self.config.get("data", {}).get("fps", 30.0))
        self.latent_norm = float(self.config.get("latent_norm") or 1.0)
        self.max_frames = int(self.model.config.max_frames)
        self.skeleton = neutral_skeleton()
        # The decoder's exact inference shortcut (core/fast_decode.py), checked against the model itself once
        # per weights file (by the SHA-256 load_model checked), torch version and code version.
        from .fast_decode import FastDecoder

        sha = self.config.get(SHA256, {}).get(WEIGHTS)
        self.decoder = FastDecoder.verified(self.model, weights_sha256=sha) or self.model
        # LRU cache of unit text embeddings (a server sees the same prompts and labels again and again).
        self._text_cache: OrderedDict[str, Tensor] = OrderedDict()
        self._text_cache_size = int(text_cache_size)
        self._text_lock = threading.Lock()

    # --- latents -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str], what: str = "prompt") -> Tensor:
        """[N, D] unit text embeddings on the model's device; texts seen lately come from an LRU cache and
        the rest are encoded in one call."""
        texts = [check_prompt(t, what) for t in texts]
        with self._text_lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
            if missing:
                for t, e in zip(missing, self.encoder.encode_text(missing, to_cpu=False).to(self.device)):
                    self._text_cache[t] = e
            for t in texts:
                self._text_cache.move_to_end(t)
            out = torch.stack([self._text_cache[t] for t in texts])
            while len(self._text_cache) > max(self._text_cache_size, len(texts)):
                self._text_cache.popitem(last=False)
        return out

    @torch.no_grad()
    def text_latents(self, texts: Sequence[str]) -> Tensor:
        """[N, D] latents for texts: unit embeddings scaled to the training latents' mean norm."""
        return self.text_embeddings(texts) * self.latent_norm

    @torch.no_grad()
    def motion_latents(self, motions: Sequence[Motion]) -> Tensor:
        """[N, D] latents of motions (resampled to the model's rate and canonicalised first)."""
        from .data.windows import collate_motion

        items = []
        for m in motions:
            m = m.resample(self.fps) if abs(m.fps - self.fps) > 1e-6 else m
            if m.num_frames > self.max_frames:
                m = m.crop(0, self.max_frames)
            m = m.canonicalize(self.skeleton)
            items.append({"rot6d": m.rot6d(), "trans": m.trans, "length": m.num_frames, "text": "", "clip_id": "",
                          "mirrored": False})
        batch = collate_motion(items)
        return self.model.encode(batch["rot6d"].to(self.device), batch["trans"].to(self.device),
                                 batch["mask"].to(self.device))

    def frames_for(self, frames: int | None, seconds: float | None, fps: float | None) -> tuple[int, float]:
        """Validated output frame count and rate (defaults: 4 s at the model's rate)."""
        fps = float(fps) if fps is not None else self.fps
        if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
            raise InferenceError(f"fps must be in [{MIN_FPS:g}, {MAX_FPS:g}], got {fps}", "fps")
        if frames is not None and seconds is not None:
            raise InferenceError("give either frames or seconds, not both", "frames")
        field = "frames"
        if frames is None:
            seconds = 4.0 if seconds is None else float(seconds)
            if not (math.isfinite(seconds) and seconds > 0):
                raise InferenceError(f"seconds must be positive, got {seconds}", "seconds")
            frames, field = max(1, int(round(seconds * fps))), "seconds"
        limit = self.frame_limit(fps)
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= limit:
            raise InferenceError(f"frames must be between 1 and {limit} ({self.max_frames / self.fps:g} s at {fps:g} fps), "
                                 f"got {frames}", field)
        return frames, fps

    def frame_limit(self, fps: float | None = None) -> int:
        """The most frames this model makes at `fps` (default: its own rate)."""
        fps = self.fps if fps is None else float(fps)
        return int((self.max_frames - 1) / self.fps * fps + 1e-9) + 1

    @torch.no_grad()
    def decode(self, z: Tensor, frames: int | Sequence[int], fps: float | Sequence[float]) -> list[Motion]:
        """Latents [N, D] -> motions of `frames` frames at `fps` (one value for all, or one per latent),
        decoded at the model's rate in one call: different lengths are padded and masked."""
        n = z.shape[0]
        frames = [int(frames)] * n if isinstance(frames, int) else [int(f) for f in frames]
        fps = [float(fps)] * n if isinstance(fps, (int, float)) else [float(r) for r in fps]
        if len(frames) != n or len(fps) != n:
            raise InferenceError(f"decode: {n} latents but {len(frames)} lengths and {len(fps)} frame rates")
        n_model = [min(self.max_frames, max(1, int(round((f - 1) / r * self.fps)) + 1)) for f, r in zip(frames, fps)]
        lengths = n_model[0] if len(set(n_model)) == 1 else torch.tensor(n_model)
        rot6d, trans = self.decoder.decode(z.to(self.device), lengths)
        quats = rot6d_to_quat(rot6d.float().cpu())
        out = []
        for q, t, n_i, f, r in zip(quats, trans.float().cpu(), n_model, frames, fps):
            m = Motion(q[:n_i], t[:n_i], self.fps, meta={"generator": str(self.run_dir)})
            if abs(r - self.fps) > 1e-6 or m.num_frames != f:
                positions = torch.linspace(0, m.num_frames - 1, f, dtype=torch.float64)
                m = m.sample_at(positions, r)
            out.append(m)
        return out

    # --- the four uses of the latent space --------------------------------------------------------------

    def generate(self, prompt: str, frames: int | None = None, seconds: float | None = None, fps: float | None = None,
                 seed: int | None = None, variation: float = 0.05) -> Motion:
        """Text -> motion. With a seed, the latent is nudged by seeded noise (`variation` of its size):
        the same seed gives the same motion, another seed a variant."""
        return self.generate_batch([dict(prompt=prompt, frames=frames, seconds=seconds, fps=fps, seed=seed)],
                                   variation=variation)[0]

    def generate_batch(self, requests: Sequence[dict], variation: float = 0.05) -> list[Motion]:
        """Many generations in one text-encoder call and one decoder call. Each request is a dict with
        `prompt` and optional `frames`, `seconds`, `fps`, `seed` (as in `generate`); lengths may differ.
        The result for each request equals `generate` with the same arguments."""
        lengths = [self.frames_for(r.get("frames"), r.get("seconds"), r.get("fps")) for r in requests]
        prompts = [check_prompt(r.get("prompt")) for r in requests]
        z = self.text_latents(prompts)
        for i, r in enumerate(requests):
            if r.get("seed") is not None and variation > 0:
                g = torch.Generator().manual_seed(int(r["seed"]))
                noise = torch.randn(z.shape[1:], generator=g).to(z)
                z[i] = z[i] + noise / noise.norm() * variation * self.latent_norm
        motions = self.decode(z, [f for f, _ in lengths], [r for _, r in lengths])
        for m, p, r in zip(motions, prompts, requests):
            m.meta.update(prompt=p, seed=r.get("seed"))
        return motions

    def interpolate(self, a: str | Motion, b: str | Motion, alphas: Sequence[float], frames: int | None = None,
                    seconds: float | None = None, fps: float | None = None) -> list[Motion]:
        """Blend two prompts or clips: spherical interpolation of their latents, one motion per alpha."""
        frames, fps = self.frames_for(frames, seconds, fps)
        za, zb = (self.text_latents([x])[0] if isinstance(x, str) else self.motion_latents([x])[0] for x in (a, b))
        bad = [x for x in alphas if not (isinstance(x, (int, float)) and MIN_ALPHA <= x <= MAX_ALPHA)]
        if bad:
            raise InferenceError(f"blend factors must be in [{MIN_ALPHA:g}, {MAX_ALPHA:g}], got {bad}", "alphas")
        z = torch.stack([_slerp(za, zb, float(t)) for t in alphas])
        return self.decode(z, frames, fps)

    def edit(self, motion: Motion, source: str, target: str, strength: float = 1.0) -> Motion:
        """Move a clip along a text direction, e.g. "walk" -> "walk happily" (latent arithmetic)."""
        if not math.isfinite(strength):
            raise InferenceError(f"strength must be a finite number, got {strength}", "strength")
        if motion.num_frames > self.frame_limit(motion.fps):
            raise InferenceError(f"the motion is {motion.num_frames} frames at {motion.fps:g} fps; this model edits at "
                                 f"most {self.frame_limit(motion.fps)} ({self.max_frames / self.fps:g} s): trim it",
                                 "motion")
        z = self.motion_latents([motion])
        e = self.text_latents([source, target])
        edited = self.decode(z + strength * (e[1] - e[0]), motion.num_frames, motion.fps)[0]
        edited.meta.update(edit={"from": source, "to": target, "strength": strength})
        return edited

    @torch.no_grad()
    def recognize(self, motion: Motion, labels: Sequence[str]) -> list[tuple[str, float]]:
        """Labels ranked by cosine similarity between the clip's latent and each label's embedding."""
        labels = [check_prompt(l, "labels") for l in labels]
        if not labels:
            raise InferenceError("give at least one label", "labels")
        z = torch.nn.functional.normalize(self.motion_latents([motion]), dim=-1)[0]
        e = self.text_embeddings(labels, "labels").to(z)
        scores = (e @ z).tolist()
        return sorted(zip(labels, scores), key=lambda x: -x[1])


def _slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Interpolate direction spherically and norm linearly."""
    na, nb = a.norm(), b.norm()
    ua, ub = a / na, b / nb
    omega = torch.arccos(torch.clamp((ua * ub).sum(), -1.0, 1.0))
    if float(omega) < 1e-4:
        u = (1 - t) * ua + t * ub
    else:
        u = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return u / u.norm() * ((1 - t) * na + t * nb)
