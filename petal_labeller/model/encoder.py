"""The frozen sentence encoder every recipe reads papers with, and its vector cache.

The encoder is never trained by the production recipe, so a text's pooled vector
is the same every time: cross-validation, learning curves and ablations refit on
overlapping papers and reuse the cached vectors instead of re-encoding.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from petal_labeller.model.config import TrainConfig

# Pooled vectors of the unmodified base encoder by (base model, pooling, max length, text).
_FROZEN_CACHE: dict[tuple[str, str, int, str], np.ndarray] = {}
_FROZEN_CACHE_LIMIT = 50_000


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine = dot product)."""
    norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return (vectors / norms).astype(np.float32)


def encoder_texts(records: list[dict[str, Any]], config: TrainConfig) -> list[str]:
    """What the encoder reads, cut as the runtime cuts it."""
    from petal_labeller.runtime.text import CHARS_PER_TOKEN_BOUND, paper_text

    max_chars = config.max_length * CHARS_PER_TOKEN_BOUND
    return [paper_text(r, config.include_venue, max_chars) for r in records]


def load_base_encoder(base_model: str, pooling: str) -> Any:
    """The base checkpoint as published, then without the pooler unless pooling reads it.

    Loading it whole matches every key, so transformers writes no load report (its
    "UNEXPECTED pooler" table, which Airflow shows as ERROR lines); a MISSING or
    mismatched key still reports. Dropping the unused pooler afterwards saves the same
    encoder as `add_pooling_layer=False` did, so artefacts load as before.
    """
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(base_model)
    if pooling != "pooler" and getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def frozen_network(config: TrainConfig, num_labels: int) -> tuple[Any, Any]:
    """(tokenizer, LabellerNet) over the base encoder, with an inert all-zero head."""
    import torch
    from transformers import AutoTokenizer

    from petal_labeller.runtime.network import LabellerNet

    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    encoder = load_base_encoder(config.base_model, config.pooling)
    net = LabellerNet(encoder, num_labels, config.pooling)
    torch.nn.init.zeros_(net.head.weight)  # no head scorer: keep its unused logits inert
    torch.nn.init.zeros_(net.head.bias)
    net.eval()
    return tokenizer, net


def pad_batch(tokenizer: Any, encoded: dict, rows) -> dict:
    return tokenizer.pad(
        {
            "input_ids": [encoded["input_ids"][i] for i in rows],
            "attention_mask": [encoded["attention_mask"][i] for i in rows],
        },
        return_tensors="pt",
    )


def _encode_missing(net, tokenizer, texts: list[str], keys: list, config: TrainConfig) -> None:
    import torch

    from petal_labeller.model.progress import Meter

    encoded = tokenizer(texts, truncation=True, max_length=config.max_length)
    # Length-sorted batches: the same vectors, far less padding.
    by_length = sorted(range(len(texts)), key=lambda j: len(encoded["input_ids"][j]))
    meter = Meter(f"encoding texts (max length {config.max_length})", len(texts))
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(by_length), config.eval_batch_size):
            rows = by_length[start : start + config.eval_batch_size]
            features = pad_batch(tokenizer, encoded, rows)
            vectors = net.pool(features["input_ids"], features["attention_mask"]).numpy()
            for j, vector in zip(rows, vectors, strict=True):
                _FROZEN_CACHE[keys[j]] = vector
            meter.update(start + len(rows))


def frozen_embeddings(net: Any, tokenizer: Any, texts: list[str], config: TrainConfig):
    """Pooled vectors of the (frozen, untouched) encoder, computed once per text."""
    keys = [(config.base_model, config.pooling, config.max_length, text) for text in texts]
    missing = sorted({i for i, key in enumerate(keys) if key not in _FROZEN_CACHE})
    if missing:
        if len(_FROZEN_CACHE) + len(missing) > _FROZEN_CACHE_LIMIT:
            _FROZEN_CACHE.clear()
        _encode_missing(
            net, tokenizer, [texts[i] for i in missing], [keys[i] for i in missing], config
        )
    return np.stack([_FROZEN_CACHE[key] for key in keys]).astype(np.float32)
