"""SageMaker inference handler for the PeTaL labeller (batch transform, serve app, local backend).

This file is copied into every artefact as `code/inference.py` and runs inside a
SageMaker container, so it is SELF-CONTAINED: it imports only the standard
library, numpy, torch, transformers and safetensors, never `petal_labeller`.
The training code imports `LabellerNet` and the scoring functions from here, so
training, evaluation and serving share one code path.

Request: `application/jsonlines`, one paper a line (`doi`, `title`, `abstract`,
`venue`, optional `paper_id`). Response: one line per input line, same order:
`{"doi", "title", "paper_id"?, "scores": {label: prob, ...every label}, "labels": [...]}`
or `{"line": N, "paper_id"?, "error": "..."}` for a bad line.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

log = logging.getLogger(__name__)

JSONLINES = "application/jsonlines"
JSONLINES_ALIASES = (JSONLINES, "application/jsonl", "application/x-jsonlines")

#: Files every artefact must hold (the tokenizer may add more, e.g. vocab.txt).
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer_config.json",
    "labeller.json",
    "labels.json",
    "thresholds.json",
)
#: The classification head: only where labeller.json's scorers use it (not the stack).
HEAD_FILE = "head.safetensors"
KNN_FILE = "knn.safetensors"
TFIDF_FILES = ("tfidf.json", "tfidf.safetensors")
STACK_FILES = ("stack.json", "stack.safetensors")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
# Tokenizing a multi-megabyte abstract only to truncate it wastes seconds; no
# word-piece is shorter than one character, so this many characters always
# covers max_length tokens.
CHARS_PER_TOKEN_BOUND = 16
SCORE_DECIMALS = 6


class ArtefactError(ValueError):
    """The model folder is incomplete or inconsistent; the message names the file."""


class PaperError(ValueError):
    """One input record cannot be labelled; the message names the field."""


# Text ------------------------------------------------------------------------
def validate_paper(record: Any) -> dict[str, Any]:
    """Check one paper's fields and return it; raise PaperError naming the bad field."""
    if not isinstance(record, dict):
        raise PaperError(f"record must be a JSON object, got {type(record).__name__}")
    for name in ("doi", "title", "abstract", "url"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise PaperError(f"field {name!r} must be a string or null, got {type(value).__name__}")
    venue = record.get("venue")
    venue_ok = isinstance(venue, list) and all(isinstance(v, str) for v in venue)
    if venue is not None and not isinstance(venue, str) and not venue_ok:
        raise PaperError("field 'venue' must be a string, a list of strings or null")
    if not (record.get("title") or "").strip() and not (record.get("abstract") or "").strip():
        raise PaperError("fields 'title' and 'abstract' are both empty")
    return record


def paper_text(record: dict[str, Any], include_venue: bool = True, max_chars: int = 0) -> str:
    """Title, venue, abstract as one string; venue before the abstract so truncation keeps it."""
    parts = [(record.get("title") or "").strip()]
    venue = record.get("venue")
    if include_venue and venue:
        parts.append(venue.strip() if isinstance(venue, str) else "; ".join(v for v in venue if v))
    parts.append((record.get("abstract") or "").strip())
    text = ". ".join(part.rstrip(". ") for part in parts if part)
    return text[:max_chars] if max_chars else text


# Network ---------------------------------------------------------------------
class LabellerNet(torch.nn.Module):
    """A transformers encoder, a pooling of its tokens and a linear multi-label head.

    pooling: "mean" (what sentence-transformers checkpoints were trained for),
    "cls" (the raw [CLS] vector) or "pooler" (BertForSequenceClassification's
    dense+tanh over [CLS], the v0.1 recipe).
    """

    def __init__(
        self, encoder: torch.nn.Module, num_labels: int, pooling: str = "mean", dropout: float = 0.1
    ):
        super().__init__()
        if pooling not in ("mean", "cls", "pooler"):
            raise ValueError(f"pooling must be mean, cls or pooler, not {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "pooler":
            return out.pooler_output.float()
        hidden = out.last_hidden_state.float()
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        pooled = self.pool(input_ids, attention_mask)
        return pooled, self.head(self.dropout(pooled))


def load_encoder(name_or_path: str | Path, pooling: str) -> torch.nn.Module:
    """The transformers encoder, with the BERT pooler only where pooling needs it."""
    kwargs = {} if pooling == "pooler" else {"add_pooling_layer": False}
    try:
        return AutoModel.from_pretrained(str(name_or_path), **kwargs)
    except TypeError:  # encoders without a pooler do not take the argument
        return AutoModel.from_pretrained(str(name_or_path))


# Scoring (pure numpy, shared with training) ----------------------------------
def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))


def knn_scores(
    query: np.ndarray, bank: np.ndarray, bank_labels: np.ndarray, k: int, temperature: float
) -> np.ndarray:
    """Label transfer from the k most similar training papers (k <= 0: all), softmax on cosine."""
    query = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
    sims = query @ bank.T
    if k <= 0 or k >= bank.shape[0]:
        # The whole bank: weights are then smooth in the similarities, so a
        # tiny precision change cannot swap a neighbour in or out of the top k.
        top = np.broadcast_to(np.arange(bank.shape[0]), sims.shape)
    else:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    weights = np.exp((top_sims - top_sims.max(axis=1, keepdims=True)) / temperature)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkl->nl", weights, bank_labels[top])


def cap_by_parent(scores: np.ndarray, parent_index: np.ndarray, order: np.ndarray) -> np.ndarray:
    """No label scores above its parent (columns visited parents first)."""
    capped = scores.copy()
    for column in order:
        parent = parent_index[column]
        if parent >= 0:
            np.minimum(capped[:, column], capped[:, parent], out=capped[:, column])
    return capped


def choose_labels(
    scores: np.ndarray, thresholds: np.ndarray, ancestors: list[list[int]], min_labels: int = 1
) -> list[list[int]]:
    """Labels over threshold, at least `min_labels` best ones, closed upwards over the tree."""
    chosen_rows = []
    for row in scores:
        chosen = set(np.flatnonzero(row >= thresholds).tolist())
        if len(chosen) < min_labels:
            chosen.update(np.argsort(-row, kind="stable")[:min_labels].tolist())
        for column in list(chosen):
            chosen.update(ancestors[column])
        chosen_rows.append(sorted(chosen, key=lambda c: (-row[c], c)))
    return chosen_rows


# TF-IDF linear scorer --------------------------------------------------------
class _Analyzer:
    """One fitted scikit-learn TfidfVectorizer's analyzer: text -> {column: count}.

    "word": lowercase, token pattern, English stop words removed before n-grams.
    "char_wb": lowercase, each whitespace-separated word padded with one space
    and cut into n-grams that never cross a word boundary (scikit-learn's
    `_char_wb_ngrams`, short words counted once).
    """

    TOKEN = re.compile(r"(?u)\b\w\w+\b")

    def __init__(self, block: dict[str, Any], offset: int):
        self.kind = str(block.get("analyzer", "word"))
        if self.kind not in ("word", "char_wb"):
            raise ArtefactError(f"tfidf.json: unknown analyzer {self.kind!r}")
        self.vocabulary = {term: offset + i for i, term in enumerate(block["terms"])}
        self.stop_words = frozenset(block.get("stop_words") or ())
        self.ngram_min = int(block.get("ngram_min", 1))
        self.ngram_max = int(block.get("ngram_max", 2))

    def grams(self, text: str) -> list[str]:
        text = text.lower()
        if self.kind == "char_wb":
            grams = []
            for word in text.split():
                padded = f" {word} "
                for n in range(self.ngram_min, self.ngram_max + 1):
                    grams.extend(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
                    if len(padded) <= n:  # the whole padded word once, as scikit-learn does
                        break
            return grams
        tokens = [t for t in self.TOKEN.findall(text) if t not in self.stop_words]
        return [
            " ".join(tokens[start : start + n])
            for n in range(self.ngram_min, self.ngram_max + 1)
            for start in range(len(tokens) - n + 1)
        ]

    def counts(self, text: str) -> dict[int, int]:
        counts: dict[int, int] = {}
        vocabulary = self.vocabulary
        for gram in self.grams(text):
            column = vocabulary.get(gram)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        return counts


class TfidfScorer:
    """Fitted scikit-learn TfidfVectorizers (horizontally stacked) + one-vs-rest linear SVMs.

    scikit-learn cannot be assumed inside the SageMaker container, so this
    re-implements exactly the transforms the training side fitted (analyzer,
    sublinear tf, idf, L2 norm per vectorizer); tests/model/test_tfidf.py checks
    it against scikit-learn. `spec["blocks"]` lists the vectorizers; an older
    spec without it is one word vectorizer.
    """

    def __init__(self, spec: dict[str, Any], idf: np.ndarray, weight: np.ndarray, bias: np.ndarray):
        blocks = spec.get("blocks") or [{**spec, "analyzer": "word", "ngram_min": 1}]
        self.analyzers, offset = [], 0
        for block in blocks:
            self.analyzers.append(_Analyzer(block, offset))
            offset += len(block["terms"])
        self.n_features = offset
        self.scale = float(spec.get("scale", 1.0))
        self.idf, self.weight, self.bias = idf, weight, bias

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, tf-idf values, each vectorizer's part L2-normalised) of one text."""
        all_columns, all_values = [], []
        for analyzer in self.analyzers:
            counts = analyzer.counts(text)
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            values = np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            values = (values + 1.0) * self.idf[columns]
            norm = np.linalg.norm(values)
            all_columns.append(columns)
            all_values.append(values / norm if norm else values)
        return np.concatenate(all_columns), np.concatenate(all_values)

    def margins(self, texts: list[str]) -> np.ndarray:
        out = np.tile(self.bias, (len(texts), 1)).astype(np.float32)
        for row, text in enumerate(texts):
            columns, values = self.features(text)
            if len(columns):
                out[row] += self.weight[:, columns] @ values.astype(np.float32)
        return out

    def scores(self, texts: list[str]) -> np.ndarray:
        """SVM margins squashed into (0, 1) so they blend with probabilities."""
        return sigmoid(self.scale * self.margins(texts))


# Stacked combiner --------------------------------------------------------------
def paper_venues(record: dict[str, Any]) -> list[str]:
    """The venue field as a list of strings (one string, a list, or nothing)."""
    venue = record.get("venue")
    if not venue:
        return []
    return [venue] if isinstance(venue, str) else [v for v in venue if isinstance(v, str)]


class VenueScorer:
    """P(label | venue) from the training papers, shrunk to the prior; mean over a paper's
    known venues, the prior when it has none."""

    def __init__(self, venues: list[str], table: np.ndarray, prior: np.ndarray):
        self.row = {venue: i for i, venue in enumerate(venues)}
        self.table, self.prior = table, prior

    def scores(self, records: list[dict[str, Any]]) -> np.ndarray:
        out = np.tile(self.prior, (len(records), 1)).astype(np.float32)
        for i, record in enumerate(records):
            rows = [self.row[v] for v in paper_venues(record) if v in self.row]
            if rows:
                out[i] = self.table[rows].mean(axis=0)
        return out


def zero_shot_scores(pooled: np.ndarray, label_vectors: np.ndarray) -> np.ndarray:
    """Cosine between each paper and each label's path name ("Move > Swim > ...")."""
    query = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return query @ label_vectors.T


RANK_CAP = 30


@dataclass
class StackCombiner:
    """A logistic regression over (paper, label) pairs, fed each base scorer's score.

    Features per pair, for each base in `bases` order: the raw score, the score
    z-scored by the label's out-of-fold mean and std, log1p of the label's rank
    within the paper (capped); then log prior and the label's level one-hot.
    Label-agnostic, so 630 papers x 131 labels train 16 weights, not 131 x 16.
    """

    bases: list[str]
    mean: np.ndarray  # (bases, labels)
    std: np.ndarray  # (bases, labels)
    prior: np.ndarray  # (labels,)
    levels: np.ndarray  # (labels,) 1, 2 or 3
    scaler_mean: np.ndarray  # (features,)
    scaler_scale: np.ndarray  # (features,)
    coef: np.ndarray  # (features,)
    intercept: float

    def features(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        n = parts[self.bases[0]].shape[0]
        columns = []
        for b, name in enumerate(self.bases):
            s = np.asarray(parts[name], dtype=np.float64)
            columns.append(s.reshape(-1))
            columns.append(((s - self.mean[b]) / self.std[b]).reshape(-1))
            ranks = np.argsort(np.argsort(-s, axis=1, kind="stable"), axis=1)
            columns.append(np.log1p(np.minimum(ranks, RANK_CAP)).reshape(-1))
        columns.append(np.tile(np.log(self.prior + 1e-3), n))
        for level in (1, 2, 3):
            columns.append(np.tile((self.levels == level).astype(np.float64), n))
        return np.stack(columns, axis=1)

    def probabilities(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        n = parts[self.bases[0]].shape[0]
        x = (self.features(parts) - self.scaler_mean) / self.scaler_scale
        return sigmoid(x @ self.coef + self.intercept).reshape(n, -1).astype(np.float32)

    ARRAYS = ("mean", "std", "prior", "levels", "scaler_mean", "scaler_scale", "coef")

    @classmethod
    def from_arrays(cls, bases: list[str], arrays: dict[str, np.ndarray]) -> StackCombiner:
        values = {name: np.asarray(arrays[name], dtype=np.float32) for name in cls.ARRAYS}
        return cls(bases=list(bases), intercept=float(arrays["intercept"][0]), **values)

    def arrays(self) -> dict[str, np.ndarray]:
        """What stack.safetensors holds (float32, as numpy)."""
        out = {
            name: np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            for name in self.ARRAYS
        }
        out["intercept"] = np.array([self.intercept], dtype=np.float32)
        return out


# The loaded model --------------------------------------------------------------
@dataclass
class LoadedModel:
    """Everything model_fn loads once: tokenizer, network, kNN bank, labels, thresholds."""

    model_dir: Path
    tokenizer: Any
    net: LabellerNet
    settings: dict[str, Any]
    labels: list[dict[str, Any]]
    thresholds: np.ndarray
    knn_bank: np.ndarray | None = None
    knn_labels: np.ndarray | None = None
    tfidf: TfidfScorer | None = None
    zeroshot: np.ndarray | None = None  # (labels, dim) label-name embeddings
    venue: VenueScorer | None = None
    stack: StackCombiner | None = None
    precision: str = "fp32"
    batch_size: int = 32
    label_ids: list[str] = field(init=False)
    parent_index: np.ndarray = field(init=False)
    order: np.ndarray = field(init=False)
    ancestors: list[list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.label_ids = [str(label["id"]) for label in self.labels]
        position = {label_id: i for i, label_id in enumerate(self.label_ids)}
        self.parent_index = np.array(
            [position.get(label.get("parent"), -1) for label in self.labels], dtype=np.int64
        )
        depth = [self._depth(i) for i in range(len(self.labels))]
        self.order = np.argsort(depth, kind="stable")
        self.ancestors = []
        for i in range(len(self.labels)):
            chain, parent = [], self.parent_index[i]
            while parent >= 0:
                chain.append(int(parent))
                parent = self.parent_index[parent]
            self.ancestors.append(chain)

    def _depth(self, column: int) -> int:
        depth, parent = 0, self.parent_index[column]
        while parent >= 0 and depth <= len(self.labels):
            depth, parent = depth + 1, self.parent_index[parent]
        return depth

    @property
    def max_length(self) -> int:
        return int(self.settings["max_length"])

    @property
    def stacked(self) -> bool:
        return self.settings.get("combiner", "blend") == "stack"

    def texts(self, records: list[dict[str, Any]]) -> list[str]:
        """What the encoder reads."""
        max_chars = self.max_length * CHARS_PER_TOKEN_BOUND
        venue = bool(self.settings.get("include_venue", True))
        return [paper_text(r, include_venue=venue, max_chars=max_chars) for r in records]

    def tfidf_texts(self, records: list[dict[str, Any]]) -> list[str]:
        """What the TF-IDF scorer reads: the stack always gives it the venue too."""
        if "tfidf_include_venue" not in self.settings:
            return self.texts(records)
        max_chars = self.max_length * CHARS_PER_TOKEN_BOUND
        venue = bool(self.settings["tfidf_include_venue"])
        return [paper_text(r, include_venue=venue, max_chars=max_chars) for r in records]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Pooled embeddings and head logits, in input order, via length-sorted batches."""
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = encoded["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        hidden = self.net.head.in_features
        pooled = np.zeros((len(texts), hidden), dtype=np.float32)
        logits = np.zeros((len(texts), self.net.head.out_features), dtype=np.float32)
        self.net.eval()
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            features = self.tokenizer.pad(
                {
                    "input_ids": [ids[i] for i in batch],
                    "attention_mask": [encoded["attention_mask"][i] for i in batch],
                },
                return_tensors="pt",
            )
            with torch.inference_mode(), self._autocast():
                vectors = self.net.pool(features["input_ids"], features["attention_mask"])
            # The head stays fp32: it is tiny and keeps scores close to the fp32 model.
            with torch.inference_mode():
                vectors = vectors.float()
                pooled[batch] = vectors.numpy()
                logits[batch] = self.net.head(vectors).numpy()
        return pooled, logits

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def components(
        self,
        texts: list[str],
        pooled: np.ndarray,
        logits: np.ndarray,
        records: list[dict[str, Any]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each scorer's scores before combining: in [0, 1] for the blend, SVM margins for
        the stack (which was fit on margins). `records` feed the venue scorer."""
        weights = self.settings.get("scorers", {"head": 1.0})
        if self.stacked:
            parts = {
                "tfidf": lambda: self.tfidf.margins(self.tfidf_texts(records)),
                "knn": lambda: knn_scores(
                    pooled,
                    self.knn_bank,
                    self.knn_labels,
                    int(self.settings["knn"]["k"]),
                    float(self.settings["knn"]["temperature"]),
                ),
                "zeroshot": lambda: zero_shot_scores(pooled, self.zeroshot),
                "venue": lambda: self.venue.scores(records),
            }
            return {name: parts[name]() for name in weights if weights[name]}
        parts = {}
        if weights.get("head", 0.0):
            parts["head"] = sigmoid(logits)
        if weights.get("knn", 0.0):
            knn = self.settings["knn"]
            parts["knn"] = knn_scores(
                pooled, self.knn_bank, self.knn_labels, int(knn["k"]), float(knn["temperature"])
            )
        if weights.get("tfidf", 0.0):
            parts["tfidf"] = self.tfidf.scores(texts)
        return parts

    def blend(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """Weighted sum of the scorers (or the stack's probabilities), then the hierarchy cap."""
        if self.stacked:
            scores = self.stack.probabilities(parts)
        else:
            weights = self.settings.get("scorers", {"head": 1.0})
            scores = sum(weights[name] * part for name, part in parts.items() if weights.get(name))
            scores = np.asarray(scores, dtype=np.float32)
        if self.settings.get("hierarchy", "cap") == "cap":
            scores = cap_by_parent(scores, self.parent_index, self.order)
        return scores

    def score(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Final hierarchy-consistent scores, one row per record, columns in label order."""
        if not records:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        texts = self.texts(records)
        pooled, logits = self.encode(texts)  # one encoder pass, shared by every scorer
        return self.blend(self.components(texts, pooled, logits, records))

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        scores = self.score(records)
        chosen = choose_labels(
            scores, self.thresholds, self.ancestors, int(self.settings.get("min_labels", 1))
        )
        results = []
        for record, row, columns in zip(records, scores, chosen, strict=True):
            result: dict[str, Any] = {"doi": record.get("doi"), "title": record.get("title")}
            if "paper_id" in record:
                result["paper_id"] = record["paper_id"]
            result["scores"] = {
                label_id: round(float(value), SCORE_DECIMALS)
                for label_id, value in zip(self.label_ids, row, strict=True)
            }
            result["labels"] = [self.label_ids[c] for c in columns]
            results.append(result)
        return results


# Loading ---------------------------------------------------------------------
def _read_json(model_dir: Path, name: str) -> Any:
    try:
        return json.loads((model_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"model artefact {model_dir}: cannot read {name}: {exc}") from exc


def check_label_records(labels: Any, source: str = "labels.json") -> list[dict[str, Any]]:
    """The label list must be a tree of unique ids whose parents are listed."""
    if not isinstance(labels, list) or not labels:
        raise ArtefactError(f"{source}: expected a non-empty JSON list of label records")
    ids = set()
    for index, label in enumerate(labels):
        if not isinstance(label, dict) or not isinstance(label.get("id"), str):
            raise ArtefactError(f"{source}: record {index} has no string field 'id'")
        if label["id"] in ids:
            raise ArtefactError(f"{source}: label {label['id']!r} is listed twice")
        ids.add(label["id"])
    for label in labels:
        if label.get("parent") is not None and label["parent"] not in ids:
            raise ArtefactError(
                f"{source}: label {label['id']!r} has unknown parent {label['parent']!r}"
            )
    return labels


def _thresholds(spec: Any, label_ids: list[str]) -> np.ndarray:
    if not isinstance(spec, dict) or "global" not in spec:
        raise ArtefactError("thresholds.json: expected an object with field 'global'")
    values = np.full(len(label_ids), float(spec["global"]), dtype=np.float32)
    per_label = spec.get("per_label") or {}
    unknown = sorted(set(per_label) - set(label_ids))
    if unknown:
        raise ArtefactError(f"thresholds.json: thresholds for labels not in labels.json: {unknown}")
    for i, label_id in enumerate(label_ids):
        if label_id in per_label:
            values[i] = float(per_label[label_id])
    return values


def _check_precision(requested: str) -> str:
    """Pick the fast CPU path: bf16 autocast where the CPU has native bf16, else fp32.

    int8 dynamic quantization is available on request but never chosen by
    itself: it moved kNN scores by more than 0.01 in our tests.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested != "auto":
        return requested
    try:
        native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native_bf16 = False
    return "bf16" if native_bf16 else "fp32"


def _apply_precision(model: LoadedModel, requested: str) -> None:
    """Switch to the requested fast path and prove it runs; fall back to fp32 if not."""
    precision = _check_precision(requested)
    if precision == "int8":
        try:
            model.net.encoder = torch.ao.quantization.quantize_dynamic(
                model.net.encoder, {torch.nn.Linear}, dtype=torch.qint8
            )
        except (RuntimeError, AssertionError, AttributeError) as exc:
            log.warning("int8 dynamic quantization unavailable (%s); using fp32", exc)
            precision = "fp32"
    model.precision = precision
    if precision == "fp32":
        return
    try:
        model.encode(["warm-up text for the fast path"])
    except RuntimeError as exc:  # e.g. a CPU or build without bf16 kernels
        log.warning("%s inference failed (%s); falling back to fp32", precision, exc)
        model.precision = "fp32"
        if precision == "int8":
            model.net.encoder = load_encoder(model.model_dir, model.net.pooling)


def _load_tfidf(model_dir: Path, num_labels: int) -> TfidfScorer:
    for name in TFIDF_FILES:
        if not (model_dir / name).is_file():
            raise ArtefactError(f"model artefact {model_dir}: missing file {name}")
    spec = _read_json(model_dir, "tfidf.json")
    arrays = load_file(str(model_dir / "tfidf.safetensors"))
    weight = arrays["weight"].numpy()
    scorer = TfidfScorer(spec, arrays["idf"].numpy(), weight, arrays["bias"].numpy())
    if weight.shape != (num_labels, scorer.n_features):
        raise ArtefactError(
            f"model artefact {model_dir}: tfidf.safetensors weight is {tuple(weight.shape)}, "
            f"expected ({num_labels}, {scorer.n_features}) from labels.json and tfidf.json"
        )
    return scorer


def _load_stack(model_dir: Path, num_labels: int) -> tuple[StackCombiner, np.ndarray, VenueScorer]:
    """The stack's combiner, label-name embeddings and venue table."""
    for name in STACK_FILES:
        if not (model_dir / name).is_file():
            raise ArtefactError(f"model artefact {model_dir}: missing file {name}")
    spec = _read_json(model_dir, "stack.json")
    arrays = {k: v.numpy() for k, v in load_file(str(model_dir / "stack.safetensors")).items()}
    try:
        combiner = StackCombiner.from_arrays(spec["bases"], arrays)
        venues, table = list(spec["venues"]), arrays["venue_table"]
        label_vectors = arrays["label_vectors"]
    except KeyError as exc:
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


def model_fn(
    model_dir: str | Path, precision: str | None = None, batch_size: int | None = None
) -> LoadedModel:
    """Load the artefact once per container: tokenizer, encoder, head, kNN bank, thresholds."""
    model_dir = Path(model_dir)
    for name in REQUIRED_FILES:
        if not (model_dir / name).is_file():
            raise ArtefactError(f"model artefact {model_dir}: missing file {name}")
    settings = _read_json(model_dir, "labeller.json")
    labels = check_label_records(_read_json(model_dir, "labels.json"))
    label_ids = [label["id"] for label in labels]
    scorers = settings.get("scorers", {"head": 1.0})
    stacked = settings.get("combiner", "blend") == "stack"
    head = None
    if scorers.get("head", 0.0) or (model_dir / HEAD_FILE).is_file():
        if not (model_dir / HEAD_FILE).is_file():
            raise ArtefactError(f"model artefact {model_dir}: missing file {HEAD_FILE}")
        head = load_file(str(model_dir / HEAD_FILE))
        if head.get("weight") is None or head["weight"].shape[0] != len(labels):
            rows = None if head.get("weight") is None else head["weight"].shape[0]
            raise ArtefactError(
                f"model artefact {model_dir}: labels.json lists {len(labels)} labels "
                f"but head.safetensors has {rows} outputs"
            )
    pooling = settings.get("pooling", "mean")
    net = LabellerNet(load_encoder(model_dir, pooling), len(labels), pooling)
    if head is not None:
        net.head.load_state_dict(head)
    else:  # no head scorer: its logits are computed but never used; keep them inert
        torch.nn.init.zeros_(net.head.weight)
        torch.nn.init.zeros_(net.head.bias)
    net.eval()
    knn_bank = knn_labels = None
    if scorers.get("knn", 0.0):
        if not (model_dir / KNN_FILE).is_file():
            raise ArtefactError(f"model artefact {model_dir}: missing file {KNN_FILE}")
        bank = load_file(str(model_dir / KNN_FILE))
        knn_bank, knn_labels = bank["embeddings"].numpy(), bank["labels"].float().numpy()
        if knn_labels.shape[1] != len(labels):
            raise ArtefactError(
                f"model artefact {model_dir}: {KNN_FILE} has {knn_labels.shape[1]} label "
                f"columns but labels.json lists {len(labels)} labels"
            )
    tfidf = None
    if scorers.get("tfidf", 0.0):
        tfidf = _load_tfidf(model_dir, len(labels))
    stack = label_vectors = venue = None
    if stacked:
        stack, label_vectors, venue = _load_stack(model_dir, len(labels))
    model = LoadedModel(
        model_dir=model_dir,
        tokenizer=AutoTokenizer.from_pretrained(str(model_dir)),
        net=net,
        settings=settings,
        labels=labels,
        thresholds=_thresholds(_read_json(model_dir, "thresholds.json"), label_ids),
        knn_bank=knn_bank,
        knn_labels=knn_labels,
        tfidf=tfidf,
        zeroshot=label_vectors,
        venue=venue,
        stack=stack,
        batch_size=int(batch_size or os.environ.get("PETAL_INFERENCE_BATCH_SIZE", 32)),
    )
    _apply_precision(model, precision or os.environ.get("PETAL_INFERENCE_PRECISION", "auto"))
    return model


# SageMaker handler functions ---------------------------------------------------
def input_fn(
    body: bytes | str, content_type: str = JSONLINES, first_line: int = 1
) -> list[dict[str, Any]]:
    """Split a jsonlines body into items: {"line", "record"} or {"line", "error"}.

    Each line is decoded and validated on its own, so one bad line (invalid
    JSON, non-UTF-8 bytes, a wrong field) never loses the others.
    """
    media_type = (content_type or JSONLINES).split(";")[0].strip().lower()
    if media_type not in JSONLINES_ALIASES:
        raise ValueError(f"unsupported content type {content_type!r}; send {JSONLINES}")
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    lines = raw.split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()  # the newline that ends the last record
    items = []
    for number, line in enumerate(lines, start=first_line):
        item: dict[str, Any] = {"line": number}
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            item["error"] = f"not valid UTF-8 (byte {line[exc.start]:#04x} at offset {exc.start})"
            items.append(item)
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            item["error"] = f"not valid JSON: {exc}"
            items.append(item)
            continue
        if isinstance(record, dict) and "paper_id" in record:
            item["paper_id"] = record["paper_id"]
        try:
            item["record"] = validate_paper(record)
        except PaperError as exc:
            item["error"] = str(exc)
        items.append(item)
    return items


def predict_fn(data: list[dict[str, Any]], model: LoadedModel) -> list[dict[str, Any]]:
    """Label every valid item in batches; bad items pass through as error lines."""
    good = [item for item in data if "record" in item]
    predictions = iter(model.predict([item["record"] for item in good]))
    output = []
    for item in data:
        if "record" in item:
            output.append(next(predictions))
        else:
            error = {"line": item["line"]}
            if "paper_id" in item:
                error["paper_id"] = item["paper_id"]
            error["error"] = item["error"]
            output.append(error)
    return output


def output_fn(prediction: list[dict[str, Any]], accept: str = JSONLINES) -> str:
    """One JSON object a line, in input order."""
    media_type = (accept or JSONLINES).split(";")[0].strip().lower()
    if media_type not in (*JSONLINES_ALIASES, "*/*"):
        raise ValueError(f"unsupported accept type {accept!r}; ask for {JSONLINES}")
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in prediction)
