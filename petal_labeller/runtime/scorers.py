"""Base scorers in pure numpy, shared with training: kNN transfer, label names, venues."""

from __future__ import annotations

from typing import Any

import numpy as np

from petal_labeller.runtime.text import paper_venues


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
