"""all-MiniLM-L6-v2 for inference without sentence-transformers: the same BERT in plain torch.

Importing sentence-transformers (and with it transformers, scikit-learn, scipy) takes seconds;
a frozen encoder that only encodes prompts needs none of it. This module holds the same six-layer
BERT (384 wide, 12 heads, exact GELU, LayerNorm eps 1e-12), reads the same `model.safetensors`
and tokenises with the same `tokenizer.json` through the `tokenizers` library (Rust, quick to
import), then mean-pools over the tokens as the sentence-transformers model does. Its modules are
named as in the sentence-transformers model (`0.model.embeddings...`), so the weights' fingerprint,
and with it a checkpoint's encoder identity, is the same; tests/test_minilm_fast.py checks the
embeddings against sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length




class _Attention(nn.Module):
    def __init__(self, width: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.self = nn.Module()
        self.self.query, self.self.key, self.self.value = (nn.Linear(width, width) for _ in range(3))
        self.output = nn.Module()
        self.output.dense = nn.Linear(width, width)
        self.output.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        n, length, width = x.shape
        q, k, v = (f(x).view(n, length, self.heads, width // self.heads).transpose(1, 2)
                   for f in (self.self.query, self.self.key, self.self.value))
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        a = a.transpose(1, 2).reshape(n, length, width)
        return self.output.LayerNorm(self.output.dense(a) + x)


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, eps: float):
        super().__init__()
        self.attention = _Attention(width, heads, eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(width, inner)
        self.output = nn.Module()
        self.output.dense = nn.Linear(inner, width)
        self.output.LayerNorm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.attention(x, mask)
        h = torch.nn.functional.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(self.output.dense(h) + x)


class _Bert(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        width, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(cfg["vocab_size"], width, padding_idx=cfg.get("pad_token_id", 0))
        self.embeddings.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], width)
        self.embeddings.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], width)
        self.embeddings.LayerNorm = nn.LayerNorm(width, eps=eps)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(_Layer(width, cfg["num_attention_heads"], cfg["intermediate_size"], eps)
                                           for _ in range(cfg["num_hidden_layers"]))
        self.pooler = nn.Module()  # unused by mean pooling; kept so the weights (and fingerprint) are the same
        self.pooler.dense = nn.Linear(width, width)

    def forward(self, ids: Tensor, attention: Tensor) -> Tensor:
        e = self.embeddings
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = e.word_embeddings(ids) + e.position_embeddings(positions)[None] + e.token_type_embeddings.weight[0]
        x = e.LayerNorm(x)
        mask = torch.zeros(attention.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(attention == 0, torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x


class FastMiniLM(nn.Module):
    """The frozen sentence-transformers model's `0` (the BERT) as plain torch, with its tokenizer.
    Called like the sentence-transformers model: `tokenize(texts)` then `self(features)`."""

    is_fast = True  # MiniLMEncoder.unfreeze swaps in the sentence-transformers model to train

    def __init__(self, path: Path, device: str):
        super().__init__()
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu" \
                or cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: not the BERT this loader knows ({cfg.get('model_type')}, {cfg.get('hidden_act')})")
        model = nn.Module()
        model.model = _Bert(cfg)
        self.add_module("0", model)
        weights = {k: v for k, v in load_file(str(path / "model.safetensors")).items() if not k.endswith("position_ids")}
        missing, unexpected = model.model.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=cfg.get("pad_token_id", 0), pad_token="[PAD]")
        self.to(device)
        self.requires_grad_(False).eval()

    def get_sentence_embedding_dimension(self) -> int:
        return int(getattr(self, "0").model.embeddings.word_embeddings.embedding_dim)

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        enc = self.tokenizer.encode_batch(texts)
        return {"input_ids": torch.tensor([e.ids for e in enc]),
                "attention_mask": torch.tensor([e.attention_mask for e in enc])}

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        attention = features["attention_mask"]
        tokens = getattr(self, "0").model(features["input_ids"], attention)
        m = attention[..., None].to(tokens.dtype)
        pooled = (tokens * m).sum(1) / m.sum(1).clamp(min=1e-9)  # mean over the real tokens
        return {"sentence_embedding": torch.nn.functional.normalize(pooled, dim=-1)}
