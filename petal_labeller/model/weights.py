"""Writing a fitted model's arrays into an artefact folder: safetensors and JSON, no pickle.

The file names and layouts are the ones `petal_labeller.runtime.load` reads
(see artefact.py for the whole folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from petal_labeller.model.artefact import write_json


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, str(path))


def save_encoder(model: Any, model_dir: Path) -> None:
    """The encoder (save_pretrained, safetensors) and its tokenizer."""
    model.net.encoder.save_pretrained(model_dir, safe_serialization=True)
    model.tokenizer.save_pretrained(model_dir)


def save_knn(model: Any, model_dir: Path) -> None:
    """knn.safetensors: the training papers' unit embeddings and 0/1 label rows."""
    arrays = {"embeddings": model.knn_bank, "labels": model.knn_labels.astype(np.uint8)}
    save_arrays(model_dir / "knn.safetensors", arrays)


def save_tfidf(fitted: Any, model_dir: Path) -> None:
    """tfidf.json (vocabularies, stop words) + tfidf.safetensors (idf, SVM weights, biases)."""
    write_json(model_dir / "tfidf.json", fitted.spec)
    save_arrays(model_dir / "tfidf.safetensors", fitted.arrays)
