"""OpenAI CLIP behind the TextEncoder interface, through the `clip` package (clip-anytorch).

Weights come only from local files, never from the network:
  - ClipEncoder.from_cache("ViT-B/32"): the file clip.load("ViT-B/32") would have downloaded,
    ~/.cache/clip/ViT-B-32.pt (or $MOTIONCLIP_CLIP_DIR/ViT-B-32.pt);
  - ClipEncoder.from_file(path): OpenAI's .pt (a TorchScript archive, whose tensors are read as data:
    its code is never run), torch.save(model.state_dict()) (weights_only) or a .safetensors file;
  - build_random_clip("tiny" | "ViT-B/32") + ClipEncoder.from_model(): random weights with the
    package's own CLIP class, for tests ("tiny") and timing benchmarks (real ViT-B/32 sizes).

Text: clip's own tokenizer (77 tokens, long prompts truncated). Because CLIP's text attention is
causal and the embedding is read at the end-of-text token, padding after the longest prompt of a
batch cannot change the result, so each batch is trimmed to its longest prompt (much faster than 77).
Images: [N, 3, H, W] in [0, 1] -> shorter side resized to the model's resolution (bicubic),
centre crop, CLIP's mean/std -> visual tower.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import EncoderError, TextEncoder, hash_tensors

DEFAULT_MODEL = "ViT-B/32"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_META_KEYS = ("input_resolution", "context_length", "vocab_size")  # non-weights inside OpenAI's archives

# Constructor arguments of clip.model.CLIP for random models. Widths are multiples of 64 so that
# clip.model.build_model (which infers heads = width // 64) rebuilds the same model from a saved file.
RANDOM_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
                 context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                 transformer_layers=2),
    "ViT-B/32": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
}

# (embed, resolution, patch, vision width, vision layers, text width, text layers) -> OpenAI's model name
_KNOWN_ARCHS = {
    (512, 224, 32, 768, 12, 512, 12): "ViT-B/32",
    (512, 224, 16, 768, 12, 512, 12): "ViT-B/16",
    (768, 224, 14, 1024, 24, 768, 12): "ViT-L/14",
    (768, 336, 14, 1024, 24, 768, 12): "ViT-L/14@336px",
}


def import_clip():
    """The `clip` module, or an EncoderError saying what to install."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pkg_resources.*")
            import clip  # noqa: F401
            import clip.model  # noqa: F401
    except ImportError as exc:
        raise EncoderError(f"the CLIP encoder needs the `clip` package ({exc}): "
                           f"pip install 'motionclip[train]' (or: pip install clip-anytorch 'setuptools<81')") from None
    return clip


def clip_cache_dir() -> Path:
    """Where clip.load keeps its downloads: ~/.cache/clip (override with $MOTIONCLIP_CLIP_DIR)."""
    return Path(os.environ.get("MOTIONCLIP_CLIP_DIR") or Path.home() / ".cache" / "clip").expanduser()


def known_models() -> list[str]:
    return list(import_clip().available_models())


def _model_url(model: str) -> str:
    urls = import_clip().clip._MODELS
    if model not in urls:
        raise EncoderError(f"unknown CLIP model {model!r}; known: {', '.join(urls)} (or give a file path)")
    return urls[model]


def clip_weights_path(model: str = DEFAULT_MODEL, cache_dir: str | Path | None = None) -> Path:
    """The file clip.load(model) would download, e.g. ~/.cache/clip/ViT-B-32.pt."""
    return Path(cache_dir or clip_cache_dir()) / os.path.basename(_model_url(model))


def build_random_clip(size: str = "tiny", seed: int = 0) -> nn.Module:
    """A clip.model.CLIP with random weights (for tests and timing only: it understands nothing).

    "tiny": embed 64, 2+2 layers of width 64, 32 px images (~3.3 M weights, mostly the 49408-token
    vocabulary); "ViT-B/32": OpenAI's ViT-B/32 sizes (~151 M weights). Same seed, same weights;
    the global random state is left untouched."""
    if size not in RANDOM_SIZES:
        raise EncoderError(f"unknown random CLIP size {size!r}; choose one of {', '.join(RANDOM_SIZES)}")
    clip = import_clip()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = clip.model.CLIP(**RANDOM_SIZES[size])
    return model.float().eval()


def arch_name(model: nn.Module) -> str:
    """OpenAI's name for this architecture ("ViT-B/32"), or a descriptive one for other sizes."""
    embed = int(model.text_projection.shape[1])
    tw, tl = int(model.transformer.width), int(model.transformer.layers)
    v = model.visual
    if hasattr(v, "conv1") and hasattr(v, "transformer"):
        key = (embed, int(v.input_resolution), int(v.conv1.weight.shape[-1]), int(v.transformer.width),
               int(v.transformer.layers), tw, tl)
        if key in _KNOWN_ARCHS:
            return _KNOWN_ARCHS[key]
    return f"custom-e{embed}-t{tw}x{tl}"


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """OpenAI's TorchScript archive, a plain state dict or a .safetensors file, read as tensors only
    (torch_weights: the archive's code is never run, a state dict loads with weights_only)."""
    from .torch_weights import read_weights

    sd = read_weights(path)
    if isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if sd and all(k.startswith("model.") for k in sd):
        sd = {k[len("model."):]: v for k, v in sd.items()}  # saved from a ClipEncoder
    if "text_projection" not in sd:
        raise ValueError("no CLIP weights in it (no text_projection)")
    # A TorchScript module's plain tensor attributes (the text transformer's causal mask) are no weights.
    return {k: v for k, v in sd.items() if not k.endswith("attn_mask")}


def _text_only_error() -> EncoderError:
    return EncoderError("this CLIP was loaded text_only (visual tower dropped to save memory); "
                        "load it without text_only to encode images")


class _NoVisualTower(nn.Module):
    """Stands in for CLIP's visual tower after text_only: holds no weights, keeps the two attributes
    the rest of CLIP reads (conv1.weight.dtype for CLIP.dtype, input_resolution), refuses images."""

    def __init__(self, input_resolution: int) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.conv1 = nn.Module()
        self.conv1.register_buffer("weight", torch.empty(0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        raise _text_only_error()


class ClipEncoder(TextEncoder):
    """A clip.model.CLIP as a TextEncoder (text, and images while the visual tower is kept)."""

    def __init__(self, model: nn.Module, name: str, text_only: bool = False) -> None:
        super().__init__()
        self.model = model.float()
        self.name = name
        self.dim = int(model.text_projection.shape[1])
        self.context_length = int(model.context_length)
        if text_only:
            self.drop_visual()
        self.freeze()

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: nn.Module, name: str = "clip-random:tiny", text_only: bool = False,
                   device: str | torch.device | None = None) -> "ClipEncoder":
        enc = cls(model, name, text_only=text_only)
        return enc.to(device) if device is not None else enc

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device | None = None, text_only: bool = False,
                  name: str | None = None) -> "ClipEncoder":
        """OpenAI's CLIP .pt, a torch.save(model.state_dict()) of a clip.model.CLIP, or its .safetensors."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise EncoderError(f"CLIP weights file not found: {path}")
        from ..safe_pickle import UnsafePickleError

        clip = import_clip()
        try:
            sd = _read_state_dict(path)
            weights = {k: v for k, v in sd.items() if k not in _META_KEYS}
            model = clip.model.build_model(dict(sd))  # infers the sizes; converts to fp16 on the way
            model.float().load_state_dict(weights)    # reload in fp32: a saved fp32 model round-trips exactly
        except UnsafePickleError as exc:
            raise EncoderError(str(exc)) from None
        except Exception as exc:
            raise EncoderError(f"{path}: not a CLIP checkpoint ({type(exc).__name__}: {exc}); expected OpenAI's "
                               f"CLIP .pt file, torch.save(clip_model.state_dict()) or its .safetensors") from None
        del sd, weights
        enc = cls(model, name or f"clip:{arch_name(model)}", text_only=text_only)  # drops the tower on CPU first
        return enc.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @classmethod
    def from_cache(cls, model: str = DEFAULT_MODEL, device: str | torch.device | None = None,
                   text_only: bool = False, cache_dir: str | Path | None = None) -> "ClipEncoder":
        """The weights clip.load(model) would download, read from the clip cache directory."""
        path = clip_weights_path(model, cache_dir)
        if not path.is_file():
            raise EncoderError(
                f"CLIP {model} weights not found: expected the file {path}. This machine loads CLIP only from "
                f"local files: get {path.name} (what clip.load({model!r}) downloads: {_model_url(model)}) and put "
                f"it at {path} (or set MOTIONCLIP_CLIP_DIR to its folder), or give a path: clip:/path/to/{path.name}")
        return cls.from_file(path, device=device, text_only=text_only, name=f"clip:{model}")

    # ---- towers and identity -------------------------------------------------------------
    @property
    def has_image(self) -> bool:
        return not isinstance(self.model.visual, _NoVisualTower)

    def drop_visual(self) -> "ClipEncoder":
        """Free the visual tower (serving needs only text)."""
        self.model.visual = _NoVisualTower(int(self.model.visual.input_resolution)).to(self.device)
        return self

    def _fingerprint_items(self) -> Iterable[tuple[str, Tensor]]:
        # Only what encode_text uses, so a text_only copy has the same fingerprint as the full model.
        return [(k, t) for k, t in self.model.state_dict(keep_vars=True).items()
                if not k.startswith("visual.") and k != "logit_scale"]

    @property
    def image_fingerprint(self) -> str:
        """Content hash of the visual tower (keys the rendered-frame embedding cache)."""
        if not self.has_image:
            raise _text_only_error()
        return hash_tensors((k, t) for k, t in self.model.state_dict().items() if k.startswith("visual."))

    # ---- encoding ------------------------------------------------------------------------
    def _encode_text(self, texts: list[str]) -> Tensor:
        clip = import_clip()
        tokens = clip.tokenize(texts, context_length=self.context_length, truncate=True)  # [N, 77] int
        n = int(tokens.argmax(dim=-1).max()) + 1  # end-of-text has the highest id: longest prompt's length
        return self.model.encode_text(tokens[:, :n].to(self.device))  # [N, D]

    def _encode_image(self, images: Tensor) -> Tensor:
        if not self.has_image:
            raise _text_only_error()
        res = int(self.model.visual.input_resolution)
        h, w = images.shape[-2:]
        if (h, w) != (res, res):  # shorter side -> res, then centre crop (as clip's own preprocessing)
            s = res / min(h, w)
            nh, nw = max(res, round(h * s)), max(res, round(w * s))
            images = F.interpolate(images, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
            top, left = (nh - res) // 2, (nw - res) // 2
            images = images[..., top:top + res, left:left + res].clamp(0, 1)
        mean = torch.tensor(CLIP_MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=images.device).view(1, 3, 1, 1)
        return self.model.encode_image((images - mean) / std)  # [N, D]
