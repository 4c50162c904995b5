"""One scoring of gold labels: closed upwards, the same in the gate, the CLI and training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from petal_labeller.model.evaluate import evaluate_artefact
from petal_labeller.model.scoring import gold_matrix, score, score_results
from petal_labeller.pipeline.training import evaluate as gate_evaluate
from petal_labeller.taxonomy import Label, Taxonomy

TREE = Taxonomy(
    [
        Label("protect", "Protect from harm", 1, None),
        Label("heat", "Protect from temperature", 2, "protect"),
        Label("move", "Move", 1, None),
    ]
)


def test_gold_labels_are_closed_upwards():
    gold = gold_matrix([["heat"], ["move"]], TREE)
    np.testing.assert_array_equal(gold, [[1, 1, 0], [0, 0, 1]])


def test_a_correct_ancestor_is_not_a_false_positive():
    # The curator gave only "heat"; the model chose "heat" and (closed) "protect".
    scores = np.array([[0.9, 0.8, 0.1]])
    chosen = np.array([[1.0, 1.0, 0.0]])
    metrics = score(scores, chosen, [["heat"]], TREE)
    assert metrics["micro_F1"] == pytest.approx(1.0)
    assert metrics["P@1"] == pytest.approx(1.0)


def test_score_results_reads_served_outputs_and_refuses_a_count_mismatch():
    results = [{"scores": {"protect": 0.9, "heat": 0.7, "move": 0.2}, "labels": ["protect"]}]
    metrics = score_results(results, [["heat"]], TREE)
    # Chose 1 of the 2 closed gold labels, no false positive.
    assert metrics["micro_F1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="1 results for 2"):
        score_results(results, [["heat"], ["move"]], TREE)


@pytest.mark.slow
def test_gate_and_cli_report_the_same_numbers_for_one_model(tiny_model_tar, tmp_path):
    """Papers whose curator labels lack a parent: both paths close them the same way."""
    from petal_labeller.config import SHARED_DATA_DIR

    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    papers = []
    for line in (SHARED_DATA_DIR / "labelled_papers.jsonl").open(encoding="utf-8"):
        record = json.loads(line)
        if taxonomy.close_upwards(record["labels"]) != sorted(
            set(record["labels"]), key=taxonomy.ids.index
        ):
            papers.append(record)
        if len(papers) == 8:
            break
    assert papers, "the shared data has papers with a label but not its parent"
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in papers), encoding="utf-8")

    gate = gate_evaluate(tiny_model_tar, path, taxonomy, tmp_path)
    cli = evaluate_artefact(tiny_model_tar, path)["model"]
    for name in ("P@1", "P@3", "micro_F1", "macro_F1", "nDCG@3"):
        assert gate[name] == pytest.approx(cli[name], abs=1e-4), name
