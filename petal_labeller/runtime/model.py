"""The loaded model: encoder pass, each scorer, the combination, the chosen labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petal_labeller.runtime.combine import StackCombiner, cap_by_parent, choose_labels
from petal_labeller.runtime.network import LabellerNet, load_encoder
from petal_labeller.runtime.scorers import VenueScorer, knn_scores, sigmoid, zero_shot_scores
from petal_labeller.runtime.text import CHARS_PER_TOKEN_BOUND, paper_text
from petal_labeller.runtime.tfidf import TfidfScorer
from petal_labeller.runtime.validate import check_label_records

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "int8")
SCORE_DECIMALS = 6


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
        # The walks below follow parents: a cycle would loop for ever, so refuse it first.
        check_label_records(self.labels)
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


def check_precision(requested: str) -> str:
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


def apply_precision(model: LoadedModel, requested: str) -> None:
    """Switch to the requested fast path and prove it runs; fall back to fp32 if not."""
    precision = check_precision(requested)
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
