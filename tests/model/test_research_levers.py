"""The round-three research scorers (benchmarks/ablation) pick what their docstrings say:
a wrong pair or a leaked test paper would make every number in docs/quality-research.md
about something else."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.ablation import contrastive, scorers, self_training
from benchmarks.ablation import data as data_module
from benchmarks.ablation import embeddings as emb


@pytest.fixture(scope="module")
def data():
    return data_module.load()


def test_triplets_come_from_the_training_papers_and_pair_by_label(data):
    train, _ = data_module.folds(len(data.papers))[0]
    triplets = contrastive.training_triplets(data, train, seed=0)
    texts = [emb.paper_text(p, "title_abstract") for p in data.papers]
    row_of = {text: i for i, text in enumerate(texts)}
    allowed = set(train.tolist())
    assert len(triplets) > 0.9 * len(train)
    siblings_seen = 0
    for anchor, positive, negative in triplets:
        a, p, n = row_of[anchor], row_of[positive], row_of[negative]
        assert {a, p, n} <= allowed, "a test paper went into the tuning"
        assert a != p
        shared = set(contrastive.most_specific_labels(data, a)) & set(data.papers[p]["labels"])
        assert shared, "the positive shares none of the anchor's most specific labels"
        assert set(contrastive.most_specific_labels(data, a)) - set(data.papers[n]["labels"])
        parents = {data.taxonomy[label].parent for label in shared}
        if {data.taxonomy[label].parent for label in data.papers[n]["labels"]} & parents:
            siblings_seen += 1
    assert siblings_seen > 0.5 * len(triplets), "hard negatives should mostly be siblings"


def test_prototypes_are_unit_means_of_their_papers():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    gold = np.array([[1, 0], [1, 1], [0, 1]], dtype=np.float32)
    proto = scorers.label_prototypes(x, gold, None)
    np.testing.assert_allclose(proto[0], [2**-0.5, 2**-0.5])
    np.testing.assert_allclose(proto[1], np.array([1.0, 2.0]) / 5**0.5)
    named = scorers.label_prototypes(x, gold, np.array([[-10.0, 0.0], [0.0, 0.0]]))
    assert named[0][0] < 0, "the name's vector is added before normalising"


def test_pseudo_labels_keep_the_top_label_and_confident_picks_the_surest():
    scores = np.array([[0.2, 0.1, 0.05], [0.9, 0.6, 0.1], [0.4, 0.7, 0.55]])
    labels = self_training.pseudo_labels(scores, 0.5)
    np.testing.assert_array_equal(labels, [[1, 0, 0], [1, 1, 0], [0, 1, 1]])
    assert self_training.confident(scores, 0.5).tolist() == [1, 2]
    assert sorted(self_training.confident(scores, 1.0).tolist()) == [0, 1, 2]
