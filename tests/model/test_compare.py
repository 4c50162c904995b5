"""The paired bootstrap and the label churn on constructed score sets."""

from __future__ import annotations

import numpy as np
import pytest

from petal_labeller.model.compare import (
    COMPARED_METRICS,
    Comparison,
    Outputs,
    _resampled,
    compare,
    label_churn,
    paired_bootstrap,
    point_metrics,
    resample_counts,
)

PAPERS, LABELS = 150, 20


def _gold(rng: np.random.Generator) -> np.ndarray:
    gold = (rng.random((PAPERS, LABELS)) < 0.15).astype(np.float32)
    gold[:5] = 0  # papers without gold: skipped by the ranking metrics
    return gold


def _noisy(gold: np.ndarray, rng: np.random.Generator, signal: float) -> Outputs:
    """Scores that follow the gold labels by `signal`, the top-scored labels chosen."""
    scores = (signal * gold + rng.random(gold.shape)).astype(np.float32) / (1 + signal)
    chosen = (scores > np.quantile(scores, 0.85)).astype(np.float32)
    return Outputs(scores, chosen)


def test_identical_models_gain_nothing_and_the_interval_spans_zero():
    rng = np.random.default_rng(1)
    gold = _gold(rng)
    model = _noisy(gold, rng, 0.5)
    gains = paired_bootstrap(model, Outputs(model.scores.copy(), model.chosen.copy()), gold)
    assert set(gains) == set(COMPARED_METRICS)
    for gain in gains.values():
        assert gain.gain == 0 and gain.low <= 0 <= gain.high
        assert gain.candidate == gain.production > 0


def test_a_clearly_better_model_has_a_lower_bound_above_zero():
    rng = np.random.default_rng(2)
    gold = _gold(rng)
    better, worse = _noisy(gold, rng, 2.0), _noisy(gold, rng, 0.2)
    gains = paired_bootstrap(better, worse, gold)
    for name, gain in gains.items():
        assert 0 < gain.low < gain.gain < gain.high, name
    reverse = paired_bootstrap(worse, better, gold)
    assert all(gain.high < 0 for gain in reverse.values())


def test_two_equally_good_models_get_an_interval_that_spans_zero():
    """Different noise, same skill: the point gain is not 0, the interval says it is noise."""
    rng = np.random.default_rng(3)
    gold = _gold(rng)
    gains = paired_bootstrap(_noisy(gold, rng, 0.8), _noisy(gold, rng, 0.8), gold)
    assert any(gain.gain != 0 for gain in gains.values())
    assert all(gain.low < 0 < gain.high for gain in gains.values())


def test_each_resample_is_the_metric_functions_on_the_drawn_papers():
    rng = np.random.default_rng(4)
    gold = _gold(rng)
    model = _noisy(gold, rng, 1.0)
    counts = resample_counts(PAPERS, resamples=3, seed=7)
    values = _resampled(model, gold, counts)
    for row in range(3):
        drawn = np.repeat(np.arange(PAPERS), counts[row])
        expected = point_metrics(Outputs(model.scores[drawn], model.chosen[drawn]), gold[drawn])
        for name in COMPARED_METRICS:
            # float32 inputs: the metric functions sum in float32
            assert values[name][row] == pytest.approx(expected[name], abs=1e-6), name
    everyone = _resampled(model, gold, np.ones((1, PAPERS), dtype=int))
    for name, value in point_metrics(model, gold).items():
        assert everyone[name][0] == pytest.approx(value, abs=1e-6)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    rng = np.random.default_rng(5)
    gold = _gold(rng)
    a, b = _noisy(gold, rng, 1.0), _noisy(gold, rng, 0.9)
    first, again = paired_bootstrap(a, b, gold, seed=0), paired_bootstrap(a, b, gold, seed=0)
    assert first == again
    assert paired_bootstrap(a, b, gold, seed=1)["micro_F1"].low != first["micro_F1"].low


def test_churn_counts_papers_and_labels_exactly():
    old = np.zeros((5, 4))
    old[0, [0, 1]] = old[1, 2] = old[2, 3] = 1
    new = old.copy()
    new[0, 1] = 0  # paper 0 loses a label
    new[3, [0, 2]] = 1  # paper 3 gains two
    new[2, 3], new[2, 0] = 0, 1  # paper 2 swaps one for another
    churn = label_churn(new, old)
    assert (churn.papers, churn.changed, churn.labels_added, churn.labels_removed) == (5, 3, 3, 2)
    assert churn.fraction == pytest.approx(0.6) and not churn.sample
    assert label_churn(old, old.copy()).changed == 0
    with pytest.raises(ValueError, match="shape"):
        label_churn(new[:4], old)


def test_a_comparison_survives_its_json_form():
    rng = np.random.default_rng(6)
    gold = _gold(rng)
    comparison = compare(_noisy(gold, rng, 1.0), _noisy(gold, rng, 0.5), gold, resamples=200)
    data = comparison.as_dict()
    assert data["papers"] == PAPERS and data["resamples"] == 200
    assert Comparison.from_dict(data).as_dict() == data
