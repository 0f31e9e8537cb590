"""Inference with a trained MotionCLIP: text to motion, interpolation, editing, recognition.

The latent space is shared by motions and texts: a prompt's embedding, scaled to the size of
the latents the decoder saw in training (z is trained by direction only), decodes to a motion;
a motion's latent compared with label embeddings names its action.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .errors import MotionClipError
from .motion import Motion
from .rotations import rot6d_to_quat
from .run import load_model
from .skeleton import neutral_skeleton

MAX_PROMPT_CHARS = 500
MAX_FPS = 240.0


class InferenceError(MotionClipError):
    pass


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
        raise InferenceError(f"{what} is empty; describe a motion, e.g. \"a person waves with the left hand\"")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InferenceError(f"{what} is {len(prompt)} characters long; keep it under {MAX_PROMPT_CHARS}")
    return prompt.strip()


class MotionModel:
    """A trained MotionCLIP and its text encoder, loaded once."""

    def __init__(self, run_dir: str | Path | None = None, device: str | torch.device | None = "auto",
                 encoder=None):
        from .encoders import load_encoder

        self.device = pick_device(device)
        self.run_dir = Path(run_dir) if run_dir else builtin_run_dir()
        self.model, self.config = load_model(self.run_dir, self.device)
        identity = self.config["encoder"]
        if encoder is None:
            encoder = load_encoder(identity.get("spec") or identity["name"], device=self.device, text_only=True)
        encoder.check_identity(identity, what=f"the model in {self.run_dir}")
        self.encoder = encoder
        self.fps = float(self.config.get("data", {}).get("fps", 30.0))
        self.latent_norm = float(self.config.get("latent_norm") or 1.0)
        self.max_frames = int(self.model.config.max_frames)
        self.skeleton = neutral_skeleton()

    # --- latents -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def text_latents(self, texts: Sequence[str]) -> Tensor:
        """[N, D] latents for texts: unit embeddings scaled to the training latents' mean norm."""
        texts = [check_prompt(t) for t in texts]
        return self.encoder.encode_text(list(texts), to_cpu=False).to(self.device) * self.latent_norm

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
        if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
            raise InferenceError(f"fps must be in (0, {MAX_FPS:g}], got {fps}")
        if frames is not None and seconds is not None:
            raise InferenceError("give either frames or seconds, not both")
        if frames is None:
            seconds = 4.0 if seconds is None else float(seconds)
            if not (math.isfinite(seconds) and seconds > 0):
                raise InferenceError(f"seconds must be positive, got {seconds}")
            frames = int(round(seconds * fps))
        limit = int(self.max_frames / self.fps * fps)
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= limit:
            raise InferenceError(f"frames must be between 1 and {limit} ({self.max_frames / self.fps:g} s at {fps:g} fps), "
                                 f"got {frames}")
        return frames, fps

    @torch.no_grad()
    def decode(self, z: Tensor, frames: int, fps: float) -> list[Motion]:
        """Latents [N, D] -> motions of `frames` frames at `fps` (decoded at the model's rate)."""
        n_model = max(1, int(round((frames - 1) / fps * self.fps)) + 1)
        rot6d, trans = self.model.decode(z.to(self.device), n_model)
        quats = rot6d_to_quat(rot6d.float().cpu())
        out = []
        for q, t in zip(quats, trans.float().cpu()):
            m = Motion(q, t, self.fps, meta={"generator": str(self.run_dir)})
            if abs(fps - self.fps) > 1e-6 or m.num_frames != frames:
                positions = torch.linspace(0, m.num_frames - 1, frames, dtype=torch.float64)
                m = m.sample_at(positions, fps)
            out.append(m)
        return out

    # --- the four uses of the latent space --------------------------------------------------------------

    def generate(self, prompt: str, frames: int | None = None, seconds: float | None = None, fps: float | None = None,
                 seed: int | None = None, variation: float = 0.05) -> Motion:
        """Text -> motion. With a seed, the latent is nudged by seeded noise (`variation` of its size):
        the same seed gives the same motion, another seed a variant."""
        frames, fps = self.frames_for(frames, seconds, fps)
        z = self.text_latents([prompt])
        if seed is not None and variation > 0:
            g = torch.Generator().manual_seed(int(seed))
            noise = torch.randn(z.shape, generator=g).to(z)
            z = z + noise / noise.norm() * variation * self.latent_norm
        m = self.decode(z, frames, fps)[0]
        m.meta.update(prompt=prompt, seed=seed)
        return m

    def interpolate(self, a: str | Motion, b: str | Motion, alphas: Sequence[float], frames: int | None = None,
                    seconds: float | None = None, fps: float | None = None) -> list[Motion]:
        """Blend two prompts or clips: spherical interpolation of their latents, one motion per alpha."""
        frames, fps = self.frames_for(frames, seconds, fps)
        za, zb = (self.text_latents([x])[0] if isinstance(x, str) else self.motion_latents([x])[0] for x in (a, b))
        bad = [x for x in alphas if not (isinstance(x, (int, float)) and 0.0 <= x <= 1.0)]
        if bad:
            raise InferenceError(f"blend factors must be in [0, 1], got {bad}")
        z = torch.stack([_slerp(za, zb, float(t)) for t in alphas])
        return self.decode(z, frames, fps)

    def edit(self, motion: Motion, source: str, target: str, strength: float = 1.0) -> Motion:
        """Move a clip along a text direction, e.g. "walk" -> "walk happily" (latent arithmetic)."""
        if not math.isfinite(strength):
            raise InferenceError(f"strength must be a finite number, got {strength}")
        z = self.motion_latents([motion])
        e = self.text_latents([source, target])
        edited = self.decode(z + strength * (e[1] - e[0]), motion.num_frames, motion.fps)[0]
        edited.meta.update(edit={"from": source, "to": target, "strength": strength})
        return edited

    @torch.no_grad()
    def recognize(self, motion: Motion, labels: Sequence[str]) -> list[tuple[str, float]]:
        """Labels ranked by cosine similarity between the clip's latent and each label's embedding."""
        labels = [check_prompt(l, "label") for l in labels]
        if not labels:
            raise InferenceError("give at least one label")
        z = torch.nn.functional.normalize(self.motion_latents([motion]), dim=-1)[0]
        e = self.encoder.encode_text(labels, to_cpu=False).to(z)
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
