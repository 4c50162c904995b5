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


def test_the_next_training_run_uses_reviewed_papers_and_counts_them(db_conn, tmp_path):
    """A paper a curator reviewed is exported for training with the curator's labels."""
    from petal_labeller.pipeline.training import export_training_set
    from petal_labeller.review import read_decisions
    from petal_labeller.store.labels import upsert_model_labels
    from petal_labeller.store.models import register_model_version
    from petal_labeller.store.papers import import_papers
    from petal_labeller.store.reviews import apply_reviews, record_queue
    from petal_labeller.store.taxonomy import load_taxonomy
    from tests.review.conftest import TREE

    records = [
        {"doi": f"10.5555/extra{n}", "title": f"Curated {n}", "labels": ["move"]}
        for n in range(12)  # extra6, 8 and 10 fall in the held-out split
    ] + [{"doi": "10.5555/torn", "title": "Heat shock proteins"}]
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    load_taxonomy(db_conn, TREE)
    import_papers(db_conn, path, TREE)
    register_model_version(db_conn, "v1", base_model="t", artefact_uri="x", promote=True)
    with db_conn.cursor() as cur:
        cur.execute("SELECT id FROM papers WHERE doi = '10.5555/torn'")
        (torn,) = cur.fetchone()
    upsert_model_labels(db_conn, [(torn, "protect", 0.5), (torn, "heat", 0.3)], "v1")
    record_queue(db_conn, [(torn, "v1", ["protect", "heat"])])  # as `petal review queue` does
    before = export_training_set(tmp_path / "before")
    assert (before.train_papers, before.reviewed_papers) == (9, 0)

    decisions = tmp_path / "decisions.jsonl"
    line = {"paper_id": torn, "doi": "10.5555/torn", "reviewer": "ana", "remove": ["heat"],
            "add": ["cold"]}  # fmt: skip
    decisions.write_text(json.dumps(line) + "\n", encoding="utf-8")
    apply_reviews(db_conn, [d for _, d in read_decisions(db_conn, decisions, TREE).decisions], "t")

    after = export_training_set(tmp_path / "after")
    assert (after.train_papers, after.reviewed_papers) == (10, 1)
    exported = [json.loads(row) for row in after.papers_path.open(encoding="utf-8")]
    reviewed = next(p for p in exported if p["doi"] == "10.5555/torn")
    assert reviewed["labels"] == ["protect", "cold"]
