"""The PeTaL page's counts and "Needs review" head come from bounded SQL (issue 24 item 10),
and say what the slow way said: the stored uncertainty is the review queue's own measure,
the head is the queue's head, and the counts are the counts. No timing here: the
benchmark (`python -m benchmarks petal_page`) measures the time."""

from __future__ import annotations

import random

import pytest

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.model.uncertainty import paper_uncertainty
from petal_labeller.store.labels import refresh_uncertainty, upsert_model_labels
from petal_labeller.store.models import register_model_version
from petal_labeller.store.runs import start_run
from petal_labeller.store.taxonomy import load_taxonomy
from petal_labeller.taxonomy import Taxonomy

PAPERS = 300


def _random_scores(rng: random.Random, taxonomy: Taxonomy, children: dict) -> dict[str, float]:
    """Chosen labels closed upwards, scores on a 4-decimal grid with ties, children at most
    their parent (as the model writes them), sometimes nothing at all."""
    scores: dict[str, float] = {}
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        parent, score = None, 1.0
        for _ in range(rng.randint(1, 3)):
            options = children.get(parent)
            if not options:
                break
            parent = rng.choice(options)
            score = min(score, rng.choice([0.5, 0.25, round(rng.uniform(0.05, 1.0), 2)]))
            scores[parent] = max(scores.get(parent, 0.0), score)
    return scores


@pytest.fixture
def store(db_conn):
    """PAPERS uncurated papers labelled by v1 with random label sets; the tree and scores."""
    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    load_taxonomy(db_conn, taxonomy)
    children: dict = {}
    for label_id in taxonomy.ids:
        children.setdefault(taxonomy.parent(label_id), []).append(label_id)
    register_model_version(db_conn, "v1", base_model="m", artefact_uri="x", promote=True)
    start_run(db_conn, "run-1", "v1")
    with db_conn, db_conn.cursor() as cur:
        cur.execute(
            "INSERT INTO papers (doi, title, source) SELECT '10.5555/p.' || i, 'Paper ' || i, "
            "'test' FROM generate_series(1, %s) i RETURNING id",
            (PAPERS,),
        )
        ids = sorted(row[0] for row in cur.fetchall())
    rng = random.Random(11)
    scores = {paper_id: _random_scores(rng, taxonomy, children) for paper_id in ids}
    rows = [(p, label, s) for p, chosen in scores.items() for label, s in chosen.items()]
    upsert_model_labels(db_conn, rows, "v1", "run-1", paper_ids=ids)
    return taxonomy, scores


def _stored(conn) -> dict[int, float]:
    with conn.cursor() as cur:
        cur.execute("SELECT paper_id, uncertainty FROM paper_labelling WHERE model_version = 'v1'")
        return {paper_id: float(u) for paper_id, u in cur.fetchall()}


def test_the_stored_uncertainty_is_the_review_queues_measure(db_conn, store):
    taxonomy, scores = store
    stored = _stored(db_conn)
    assert set(stored) == set(scores)
    for paper_id, chosen in scores.items():
        assert stored[paper_id] == pytest.approx(paper_uncertainty(chosen, taxonomy), abs=1e-4)
    assert refresh_uncertainty(db_conn) == 0, "the upsert already scored every mark"


def test_the_page_says_what_the_old_walks_said(db_conn, store):
    from petal_labeller.airflow.ui.data import dashboard
    from petal_labeller.pipeline.stage import EARLIEST, LATEST
    from petal_labeller.review import needs_review
    from petal_labeller.store.papers import pending_papers
    from petal_labeller.store.reviews import review_counts

    taxonomy, scores = store
    ids = sorted(scores)
    with db_conn, db_conn.cursor() as cur:
        # Some papers waiting for the model, some curated, one reviewed.
        cur.execute(
            "INSERT INTO papers (doi, title, source) VALUES ('10.5555/new.1', 'New', 't'), "
            "('10.5555/new.2', 'New 2', 't')"
        )
        cur.execute(
            "INSERT INTO paper_labels (paper_id, label_id, origin) "
            "SELECT id, %s, 'curator' FROM papers WHERE id = ANY(%s)",
            (taxonomy.ids[0], ids[:5]),
        )
        cur.execute(
            """INSERT INTO paper_reviews (paper_id, reviewer, reviewed_at, model_version,
                   accepted, labels, source) VALUES (%s, 'ana', now(), 'v1', true, %s, 't')""",
            (ids[5], [taxonomy.ids[0]]),
        )

    page = dashboard(db_conn)

    assert page["waiting"] == sum(1 for _ in pending_papers(db_conn, EARLIEST, LATEST, "v1")) == 2
    old = needs_review(db_conn, taxonomy, "v1", 10)
    counts = review_counts(db_conn, "v1")
    head = page["needs_review"]
    assert (head["waiting"], head["reviewed"]) == (counts.waiting, counts.reviewed)
    assert head["waiting"] == PAPERS - 6
    assert [(p["paper_id"], p["uncertainty"], p["labels"]) for p in head["papers"]] == [
        (p["paper_id"], p["uncertainty"], p["labels"]) for p in old["papers"]
    ]


def test_the_counts_are_the_counts(db_conn, store):
    from petal_labeller.store.stats import collect_stats

    _, scores = store
    stats = collect_stats(db_conn)
    labels = sum(len(chosen) for chosen in scores.values())
    assert (stats.papers, stats.model_labelled, stats.model_labels) == (PAPERS, PAPERS, labels)
    assert sum(label.model for label in stats.per_label) == labels
    (version,) = stats.per_version
    assert (version.papers_labelled, version.labels, version.runs) == (PAPERS, labels, 1)


def test_migration_0012_scores_the_marks_written_before_it(database_url):
    from contextlib import closing

    import psycopg2

    from petal_labeller.store import migrations

    taxonomy = Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")
    level1 = [i for i in taxonomy.ids if taxonomy.parent(i) is None][:2]
    child = next(i for i in taxonomy.ids if taxonomy.parent(i) == level1[0])
    with closing(psycopg2.connect(database_url)) as conn:
        migrations.upgrade(conn, until="0011")
        load_taxonomy(conn, taxonomy)
        register_model_version(conn, "v1", base_model="m", artefact_uri="x")
        with conn, conn.cursor() as cur:  # plain INSERTs: the 0011 schema has no uncertainty
            cur.execute(
                "INSERT INTO papers (doi, title, source) VALUES ('10.5555/a', 'A', 't'), "
                "('10.5555/b', 'B', 't') RETURNING id"
            )
            a, b = sorted(row[0] for row in cur.fetchall())
            for paper_id, count in ((a, 2), (b, 0)):
                cur.execute(
                    "INSERT INTO paper_labelling (paper_id, model_version, label_count) "
                    "VALUES (%s, 'v1', %s)",
                    (paper_id, count),
                )
            for label_id, score in ((level1[0], 0.8), (child, 0.4)):
                cur.execute(
                    "INSERT INTO paper_labels (paper_id, label_id, origin, score, model_version)"
                    " VALUES (%s, %s, 'model', %s, 'v1')",
                    (a, label_id, score),
                )

        assert "0012_page_indexes" in migrations.upgrade(conn)

        expected = paper_uncertainty({level1[0]: 0.8, child: 0.4}, taxonomy)
        assert _stored(conn) == {a: pytest.approx(expected, abs=1e-4), b: 1.0}
        assert refresh_uncertainty(conn) == 0, "the migration and the upsert agree"
