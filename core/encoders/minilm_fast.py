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
import torch.nn.functional as F
from torch import Tensor, nn

MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length




class _Weights(nn.Module):
    """A layer's parameters, left uninitialised (the file fills them): `weight` [*shape], `bias` [shape[0]]."""

    def __init__(self, *shape: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(*shape), requires_grad=False)
        if bias:
            self.bias = nn.Parameter(torch.empty(shape[0]), requires_grad=False)

    def linear(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def norm(self, x: Tensor, eps: float) -> Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, eps)


def _holder(**parts: nn.Module) -> nn.Module:
    m = nn.Module()
    for name, part in parts.items():
        setattr(m, name, part)
    return m


class _Layer(nn.Module):
    """One BERT layer (post-LayerNorm), its modules named as in transformers' BertLayer."""

    def __init__(self, width: int, heads: int, inner: int, eps: float):
        super().__init__()
        self.heads, self.eps = heads, eps
        self.attention = _holder(self=_holder(query=_Weights(width, width), key=_Weights(width, width),
                                              value=_Weights(width, width)),
                                 output=_holder(dense=_Weights(width, width), LayerNorm=_Weights(width)))
        self.intermediate = _holder(dense=_Weights(inner, width))
        self.output = _holder(dense=_Weights(width, inner), LayerNorm=_Weights(width))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        n, length, width = x.shape
        att = self.attention
        q, k, v = (w.linear(x).view(n, length, self.heads, width // self.heads).transpose(1, 2)
                   for w in (att.self.query, att.self.key, att.self.value))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(n, length, width)
        x = att.output.LayerNorm.norm(att.output.dense.linear(a) + x, self.eps)
        h = F.gelu(self.intermediate.dense.linear(x))
        return self.output.LayerNorm.norm(self.output.dense.linear(h) + x, self.eps)


class _Bert(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        width, self.eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.embeddings = _holder(word_embeddings=_Weights(cfg["vocab_size"], width, bias=False),
                                  position_embeddings=_Weights(cfg["max_position_embeddings"], width, bias=False),
                                  token_type_embeddings=_Weights(cfg["type_vocab_size"], width, bias=False),
                                  LayerNorm=_Weights(width))
        self.encoder = _holder(layer=nn.ModuleList(
            _Layer(width, cfg["num_attention_heads"], cfg["intermediate_size"], self.eps)
            for _ in range(cfg["num_hidden_layers"])))
        # Unused by mean pooling; kept so the weights (and the fingerprint) are the file's, all of them.
        self.pooler = _holder(dense=_Weights(width, width))

    def forward(self, ids: Tensor, attention: Tensor) -> Tensor:
        e = self.embeddings
        x = (e.word_embeddings.weight[ids] + e.position_embeddings.weight[: ids.shape[1]][None]
             + e.token_type_embeddings.weight[0])
        x = e.LayerNorm.norm(x, self.eps)
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
        missing, unexpected = model.model.load_state_dict(weights, strict=False, assign=True)
        if missing or unexpected:
            raise ValueError(f"{path}: weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=cfg.get("pad_token_id", 0), pad_token="[PAD]")
        self.to(device)
        self.requires_grad_(False).eval()

    def get_sentence_embedding_dimension(self) -> int:
        return int(getattr(self, "0").model.embeddings.word_embeddings.weight.shape[1])

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
