"""`load_model`, the one way to load a model artefact, a folder or a `model.tar.gz`: the
artefact check first (`validate.py`), then every weight, shapes checked against labels.json
as each file loads. SageMaker's `handlers.model_fn` is this function under its toolkit name."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import AutoTokenizer

from petal_labeller import config
from petal_labeller.runtime.archive import unpack
from petal_labeller.runtime.combine import StackCombiner
from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.runtime.model import LoadedModel, apply_precision
from petal_labeller.runtime.network import LabellerNet, load_encoder
from petal_labeller.runtime.scorers import VenueScorer
from petal_labeller.runtime.tfidf import TfidfScorer
from petal_labeller.runtime.validate import (
    HEAD_FILE,
    KNN_FILE,
    ArtefactSpec,
    check_folder,
    read_json,
)


def _arrays(model_dir: Path, name: str) -> dict[str, Any]:
    """A safetensors file's tensors; a damaged file is the artefact's error, named."""
    try:
        return load_file(str(model_dir / name))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtefactError(f"model artefact {model_dir}: cannot read {name}: {exc}") from None


def _load_tfidf(model_dir: Path, num_labels: int) -> TfidfScorer:
    spec = read_json(model_dir, "tfidf.json")
    arrays = _arrays(model_dir, "tfidf.safetensors")
    try:
        weight = arrays["weight"].numpy()
        scorer = TfidfScorer(spec, arrays["idf"].numpy(), weight, arrays["bias"].numpy())
    except (KeyError, TypeError, AttributeError) as exc:
        raise ArtefactError(f"model artefact {model_dir}: tfidf files lack {exc}") from None
    if weight.shape != (num_labels, scorer.n_features):
        raise ArtefactError(
            f"model artefact {model_dir}: tfidf.safetensors weight is {tuple(weight.shape)}, "
            f"expected ({num_labels}, {scorer.n_features}) from labels.json and tfidf.json"
        )
    return scorer


def _load_stack(model_dir: Path, num_labels: int) -> tuple[StackCombiner, np.ndarray, VenueScorer]:
    """The stack's combiner, label-name embeddings and venue table."""
    spec = read_json(model_dir, "stack.json")
    arrays = {k: v.numpy() for k, v in _arrays(model_dir, "stack.safetensors").items()}
    try:
        combiner = StackCombiner.from_arrays(spec["bases"], arrays)
        venues, table = list(spec["venues"]), arrays["venue_table"]
        label_vectors = arrays["label_vectors"]
    except (KeyError, TypeError) as exc:
        raise ArtefactError(f"model artefact {model_dir}: stack files lack {exc}") from exc
    shapes_ok = (
        combiner.mean.shape == (len(combiner.bases), num_labels)
        and label_vectors.shape[0] == num_labels
        and table.shape == (len(venues), num_labels)
        and combiner.coef.shape == combiner.scaler_mean.shape == (3 * len(combiner.bases) + 4,)
    )
    if not shapes_ok:
        raise ArtefactError(
            f"model artefact {model_dir}: stack.safetensors does not fit {num_labels} labels "
            f"and bases {combiner.bases}"
        )
    return combiner, label_vectors, VenueScorer(venues, table, combiner.prior)


def _load_net(model_dir: Path, spec: ArtefactSpec) -> LabellerNet:
    """Encoder and head; without a head scorer its logits are computed but kept inert."""
    num_labels = len(spec.labels)
    head = None
    if spec.settings.get("scorers", {"head": 1.0}).get("head") or (model_dir / HEAD_FILE).is_file():
        head = _arrays(model_dir, HEAD_FILE)
        rows = None if head.get("weight") is None else head["weight"].shape[0]
        if rows != num_labels:
            raise ArtefactError(
                f"model artefact {model_dir}: labels.json lists {num_labels} labels "
                f"but {HEAD_FILE} has {rows} outputs"
            )
    pooling = spec.settings.get("pooling", "mean")
    try:
        net = LabellerNet(load_encoder(model_dir, pooling), num_labels, pooling)
    except (OSError, ValueError, KeyError) as exc:
        raise ArtefactError(f"model artefact {model_dir}: cannot load the encoder: {exc}") from None
    if head is not None:
        try:
            net.head.load_state_dict(head)
        except RuntimeError as exc:
            raise ArtefactError(f"model artefact {model_dir}: {HEAD_FILE}: {exc}") from None
    else:
        torch.nn.init.zeros_(net.head.weight)
        torch.nn.init.zeros_(net.head.bias)
    return net.eval()


def _load_knn(model_dir: Path, num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    bank = _arrays(model_dir, KNN_FILE)
    try:
        embeddings, labels = bank["embeddings"].numpy(), bank["labels"].float().numpy()
    except KeyError as exc:
        raise ArtefactError(f"model artefact {model_dir}: {KNN_FILE} lacks {exc}") from None
    if labels.ndim != 2 or labels.shape[1] != num_labels:
        raise ArtefactError(
            f"model artefact {model_dir}: {KNN_FILE} has {labels.shape[-1]} label columns "
            f"but labels.json lists {num_labels} labels"
        )
    if labels.shape[0] != embeddings.shape[0]:
        raise ArtefactError(f"model artefact {model_dir}: {KNN_FILE} rows do not match")
    return embeddings, labels


def load_model(
    artefact: str | Path,
    precision: str | None = None,
    batch_size: int | None = None,
    *,
    cache: bool = False,
) -> LoadedModel:
    """Load a model artefact: its folder as it is, or its `model.tar.gz` checked and unpacked.

    A tarball is unpacked into a temporary folder that goes once the model is in memory;
    with `cache=True` it is unpacked once per worker and version and reused (`cache.py`).
    """
    path = Path(artefact)
    if path.is_dir():
        return _load_folder(path, precision, batch_size)
    if cache:
        from petal_labeller.runtime import cache as artefacts

        artefacts.default_root()  # every cache setting is checked before anything is unpacked
        with artefacts.cached_artefact(path) as folder:
            return _load_folder(folder, precision, batch_size)
    if not path.is_file():
        raise FileNotFoundError(f"model artefact {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="petal-model-") as tmp:
        return _load_folder(unpack(path, tmp), precision, batch_size)


def _load_folder(model_dir: Path, precision: str | None, batch_size: int | None) -> LoadedModel:
    """Check the artefact folder, then load it: tokenizer, encoder, head, scorers, thresholds."""
    # Settings before any loading: a bad one fails at once, not after the encoder loaded.
    if batch_size is None:
        batch_size = config.get("PETAL_INFERENCE_BATCH_SIZE")
    batch_size = config.bounded("PETAL_INFERENCE_BATCH_SIZE", batch_size, "batch size")
    precision = precision or config.get("PETAL_INFERENCE_PRECISION")
    spec = check_folder(model_dir)
    num_labels, scorers = len(spec.labels), spec.settings.get("scorers", {"head": 1.0})
    knn_bank = knn_labels = tfidf = None
    stack = label_vectors = venue = None
    if scorers.get("knn"):
        knn_bank, knn_labels = _load_knn(model_dir, num_labels)
    if scorers.get("tfidf"):
        tfidf = _load_tfidf(model_dir, num_labels)
    if spec.stacked:
        stack, label_vectors, venue = _load_stack(model_dir, num_labels)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError, KeyError) as exc:
        raise ArtefactError(
            f"model artefact {model_dir}: cannot load the tokenizer: {exc}"
        ) from None
    model = LoadedModel(
        model_dir=model_dir,
        tokenizer=tokenizer,
        net=_load_net(model_dir, spec),
        settings=spec.settings,
        labels=spec.labels,
        thresholds=spec.thresholds,
        knn_bank=knn_bank,
        knn_labels=knn_labels,
        tfidf=tfidf,
        zeroshot=label_vectors,
        venue=venue,
        stack=stack,
        check_papers=spec.check_papers,
        batch_size=batch_size,
    )
    apply_precision(model, precision)
    return model
