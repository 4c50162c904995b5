"""The held-out split and the quality gate of retraining."""

from __future__ import annotations

import json

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.pipeline.training import is_heldout, quality_gate


def test_heldout_split_is_stable_and_about_the_right_size():
    papers = [json.loads(line) for line in (SHARED_DATA_DIR / "labelled_papers.jsonl").open()]
    heldout = [paper["doi"] for paper in papers if is_heldout(paper)]
    assert 0.10 < len(heldout) / len(papers) < 0.20
    # Membership depends on the paper alone, not on its position or its neighbours.
    assert heldout == [paper["doi"] for paper in reversed(papers) if is_heldout(paper)][::-1]
    assert is_heldout({"doi": None, "title": "A Title"}) == is_heldout({"title": "  a title "})


def test_gate_promotes_only_a_better_candidate_and_says_why():
    better = quality_gate({"micro_F1": 0.52}, {"micro_F1": 0.50})
    assert better.promote and "0.5200 beats production micro_F1=0.5000" in better.reason
    tie = quality_gate({"micro_F1": 0.50}, {"micro_F1": 0.50})
    assert not tie.promote and "does not beat" in tie.reason
    assert not quality_gate({"micro_F1": 0.51}, {"micro_F1": 0.50}, min_gain=0.02).promote
    first = quality_gate({"micro_F1": 0.10}, None)
    assert first.promote and "no production model" in first.reason
