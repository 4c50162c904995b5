"""Metrics against values worked out by hand on tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petal_labeller.model import metrics

# Two papers, four labels. Paper 0 ranks labels 2,0,1,3; paper 1 ranks 3,2,1,0.
SCORES = np.array([[0.8, 0.3, 0.9, 0.1], [0.1, 0.2, 0.6, 0.7]])
GOLD = np.array([[1, 0, 0, 1], [0, 0, 1, 1]], dtype=float)
PREDICTED = np.array([[1, 0, 1, 0], [0, 0, 1, 1]], dtype=float)


def test_precision_at_k_by_hand():
    # P@1: paper 0 top is label 2 (miss), paper 1 top is label 3 (hit) -> 0.5
    assert metrics.precision_at_k(SCORES, GOLD, 1) == pytest.approx(0.5)
    # P@3: paper 0 {2,0,1} has 1 hit -> 1/3; paper 1 {3,2,1} has 2 hits -> 2/3
    assert metrics.precision_at_k(SCORES, GOLD, 3) == pytest.approx(0.5)


def test_ndcg_at_3_by_hand():
    d = [1 / math.log2(i + 2) for i in range(3)]
    paper0 = d[1] / (d[0] + d[1])  # hit at rank 2 of 2 relevant
    paper1 = (d[0] + d[1]) / (d[0] + d[1])  # hits at ranks 1 and 2
    assert metrics.ndcg_at_k(SCORES, GOLD, 3) == pytest.approx((paper0 + paper1) / 2)


def test_papers_without_gold_labels_are_skipped_by_ranking_metrics():
    scores = np.vstack([SCORES, [[0.9, 0.1, 0.1, 0.1]]])
    gold = np.vstack([GOLD, [[0, 0, 0, 0]]])
    assert metrics.precision_at_k(scores, gold, 1) == pytest.approx(0.5)


def test_f1_by_hand():
    # tp = 3 (p0 label0, p1 labels 2 and 3), fp = 1 (p0 label2), fn = 1 (p0 label3)
    assert metrics.micro_f1(PREDICTED, GOLD) == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    # per label: 0 -> 1.0, 1 -> no gold (skipped), 2 -> tp1 fp1 -> 2/3, 3 -> tp1 fn1 -> 2/3
    assert metrics.per_label_f1(PREDICTED, GOLD).tolist() == pytest.approx([1.0, 0.0, 2 / 3, 2 / 3])
    assert metrics.macro_f1(PREDICTED, GOLD) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_all_metrics_reports_f1_per_level():
    result = metrics.all_metrics(SCORES, PREDICTED, GOLD, levels=[1, 1, 2, 2])
    assert result["F1_level1"] == pytest.approx(1.0)  # label 0 right, label 1 untouched
    # level 2: tp 2, fp 1, fn 1
    assert result["F1_level2"] == pytest.approx(4 / 6)
    assert result["labels_per_paper"] == 2.0
    assert {"P@1", "P@3", "P@5", "nDCG@3", "nDCG@5", "micro_F1", "macro_F1"} <= set(result)
