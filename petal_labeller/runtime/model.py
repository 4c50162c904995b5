"""The loaded model: encoder pass, each scorer, the combination, the chosen labels."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petal_labeller.runtime.combine import (
    StackCombiner,
    apply_hierarchy,
    choose_labels,
    parents_first,
)
from petal_labeller.runtime.network import LabellerNet, load_encoder
from petal_labeller.runtime.precision import check_precision, verified_precision
from petal_labeller.runtime.scorers import VenueScorer, knn_scores, sigmoid, zero_shot_scores
from petal_labeller.runtime.text import CHARS_PER_TOKEN_BOUND, paper_text
from petal_labeller.runtime.tfidf import TfidfScorer
from petal_labeller.runtime.validate import check_label_records

log = logging.getLogger(__name__)

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
    #: check_papers.json's real papers for the precision check (None: an older artefact).
    check_papers: list[dict[str, Any]] | None = None
    precision: str = "fp32"
    batch_size: int = 32
    label_ids: list[str] = field(init=False)
    parent_index: np.ndarray = field(init=False)
    order: np.ndarray = field(init=False)
    ancestors: list[list[int]] = field(init=False)

    def __post_init__(self) -> None:
        # range(0, n, -1) is empty: a batch size below 1 skipped the encoder, scores off.
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch size {self.batch_size!r} must be at least 1")
        # The walks below follow parents: a cycle would loop for ever, so refuse it first.
        check_label_records(self.labels)
        self.label_ids = [str(label["id"]) for label in self.labels]
        position = {label_id: i for i, label_id in enumerate(self.label_ids)}
        self.parent_index = np.array(
            [position.get(label.get("parent"), -1) for label in self.labels], dtype=np.int64
        )
        self.order = parents_first(self.parent_index)
        self.ancestors = []
        for i in range(len(self.labels)):
            chain, parent = [], self.parent_index[i]
            while parent >= 0:
                chain.append(int(parent))
                parent = self.parent_index[parent]
            self.ancestors.append(chain)

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
            return {
                name: self.stack_component(name, pooled, records)
                for name in weights
                if weights[name]
            }
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

    def stack_component(
        self, name: str, pooled: np.ndarray, records: list[dict[str, Any]]
    ) -> np.ndarray:
        """One base scorer of the stack: "tfidf" (SVM margins), "knn", "zeroshot" or "venue"."""
        if name == "tfidf":
            return self.tfidf.margins(self.tfidf_texts(records))
        if name == "knn":
            knn = self.settings["knn"]
            return knn_scores(
                pooled, self.knn_bank, self.knn_labels, int(knn["k"]), float(knn["temperature"])
            )
        if name == "zeroshot":
            return zero_shot_scores(pooled, self.zeroshot)
        if name == "venue":
            return self.venue.scores(records)
        raise KeyError(f"unknown stack base scorer {name!r}")

    def blend(self, parts: dict[str, np.ndarray]) -> np.ndarray:
        """Weighted sum of the scorers (or the stack's probabilities), then the hierarchy
        (labeller.json "hierarchy"; artefacts from before it was written were capped)."""
        if self.stacked:
            scores = self.stack.probabilities(parts)
        else:
            weights = self.settings.get("scorers", {"head": 1.0})
            scores = sum(weights[name] * part for name, part in parts.items() if weights.get(name))
            scores = np.asarray(scores, dtype=np.float32)
        mode = self.settings.get("hierarchy", "cap")
        return apply_hierarchy(scores, mode, self.parent_index, self.order)

    def score(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Final hierarchy-consistent scores, one row per record, columns in label order."""
        if not records:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        texts = self.texts(records)
        pooled, logits = self.encode(texts)  # one encoder pass, shared by every scorer
        return self.blend(self.components(texts, pooled, logits, records))

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.results(records, self.score(records))

    def results(self, records: list[dict[str, Any]], scores: np.ndarray) -> list[dict[str, Any]]:
        """One response object per record: scores rounded, labels chosen over the tree."""
        chosen = choose_labels(
            scores, self.thresholds, self.ancestors, int(self.settings.get("min_labels", 1))
        )
        label_ids = self.label_ids
        results = []
        # .tolist() gives the same doubles as float(value) per element, without a
        # numpy scalar per (paper, label): the same output, less per-score Python.
        for record, row, columns in zip(records, scores.tolist(), chosen, strict=True):
            result: dict[str, Any] = {"doi": record.get("doi"), "title": record.get("title")}
            if "paper_id" in record:
                result["paper_id"] = record["paper_id"]
            result["scores"] = dict(
                zip(label_ids, [round(value, SCORE_DECIMALS) for value in row], strict=True)
            )
            result["labels"] = [label_ids[c] for c in columns]
            results.append(result)
        return results


def apply_precision(model: LoadedModel, requested: str) -> None:
    """Switch to the requested fast path and prove it runs; fall back to fp32 if not.

    `auto`'s bf16 is also checked against fp32 on the artefact's check papers
    (`precision.verified_precision`) and dropped if it moves a score too far.
    """
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
        return
    if requested == "auto":
        model.precision = verified_precision(model, precision)
