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


def _comparison(low: float, gain: float, high: float, changed: int = 10, store=None):
    from petal_labeller.model.compare import Churn, Comparison, Gain

    return Comparison(
        gains={"micro_F1": Gain(0.5 + gain, 0.5, gain, low, high)},
        heldout_churn=Churn(papers=100, changed=changed, labels_added=0, labels_removed=0),
        store_churn=store,
    )


def test_the_gate_judges_the_interval_not_the_point_gain():
    points = ({"micro_F1": 0.52}, {"micro_F1": 0.50})
    clear = quality_gate(*points, comparison=_comparison(0.004, 0.02, 0.04))
    assert clear.promote and not clear.ask and "clearly better" in clear.reason
    noise = quality_gate(*points, comparison=_comparison(-0.01, 0.02, 0.05))
    assert not noise.promote and noise.ask and "may be noise" in noise.reason
    assert "interval -0.0100 to +0.0500" in noise.reason
    margin = quality_gate(*points, min_gain=0.01, comparison=_comparison(0.004, 0.02, 0.04))
    assert not margin.promote and margin.ask
    worse = quality_gate(*points, comparison=_comparison(-0.06, -0.04, -0.01))
    assert not worse.promote and not worse.ask and "clearly worse" in worse.reason
    identical = quality_gate(*points, comparison=_comparison(0.0, 0.0, 0.0, changed=0))
    assert identical.ask and not identical.promote
    first = quality_gate({"micro_F1": 0.1}, None, comparison=_comparison(-1, 0, 1))
    assert first.promote and not first.ask


def test_a_clear_gain_that_changes_too_many_labels_asks():
    from petal_labeller.model.compare import Churn

    points = ({"micro_F1": 0.52}, {"micro_F1": 0.50})
    many = quality_gate(*points, comparison=_comparison(0.01, 0.02, 0.04, changed=40))
    assert many.ask and "too many labels" in many.reason and "churn 40.0%" in many.reason
    store = Churn(papers=200, changed=120, labels_added=1, labels_removed=1, sample=True)
    in_store = quality_gate(*points, comparison=_comparison(0.01, 0.02, 0.04, store=store))
    assert in_store.ask and "churn 60.0%" in in_store.reason
    allowed = quality_gate(
        *points, comparison=_comparison(0.01, 0.02, 0.04, changed=40), max_churn=0.5
    )
    assert allowed.promote


def test_a_dry_relabel_counts_the_store_papers_whose_labels_would_change(
    db_conn, migrated_database_url, tiny_model_tar, tiny_training_data, tmp_path
):
    """The store holds the tiny model's own labels for four papers and other labels for two."""
    from petal_labeller.pipeline.churn import store_churn
    from petal_labeller.runtime.load import load_model
    from petal_labeller.store.labels import upsert_model_labels
    from petal_labeller.store.models import register_model_version
    from petal_labeller.store.papers import import_papers
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    papers_path, taxonomy_path = tiny_training_data
    taxonomy = Taxonomy.load(taxonomy_path)
    lines = papers_path.read_text(encoding="utf-8").splitlines()[:6]
    path = tmp_path / "six.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    load_taxonomy(db_conn, taxonomy)
    import_papers(db_conn, path, taxonomy)
    register_model_version(db_conn, "prod", base_model="t", artefact_uri="x", promote=True)
    with db_conn.cursor() as cur:
        cur.execute("SELECT id, doi, title, abstract, venue, url FROM papers ORDER BY id")
        fields = ("paper_id", "doi", "title", "abstract", "venue", "url")
        records = [dict(zip(fields, row, strict=True)) for row in cur.fetchall()]
    results = load_model(tiny_model_tar).predict(records)
    other = [label for label in taxonomy.ids if taxonomy.level(label) == 1]
    rows = []
    for n, (record, result) in enumerate(zip(records, results, strict=True)):
        labels = list(result["labels"])
        if n >= 4:  # a set the candidate will not choose: one more top-level label
            labels.append(next(label for label in other if label not in labels))
        rows += [(record["paper_id"], label, 0.5) for label in labels]
    upsert_model_labels(db_conn, rows, "prod", paper_ids=[r["paper_id"] for r in records])

    churn = store_churn(tiny_model_tar, "prod", sample=10, database_url=migrated_database_url)
    assert (churn.papers, churn.changed, churn.labels_added, churn.labels_removed) == (6, 2, 0, 2)
    assert not churn.sample and churn.population == 6
    sampled = store_churn(tiny_model_tar, "prod", sample=3, database_url=migrated_database_url)
    assert sampled.sample and (sampled.papers, sampled.population) == (3, 6)
    assert store_churn(tiny_model_tar, "none", database_url=migrated_database_url) is None
