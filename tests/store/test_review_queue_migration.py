"""Migration 0009 (issue 24 item 1): papers decided before the queue was recorded count as
queued, so their reviewers can still correct a decision after the upgrade."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg2

from petal_labeller.store import migrations
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.models import register_model_version
from petal_labeller.store.reviews import ReviewDecision, apply_reviews
from petal_labeller.store.taxonomy import load_taxonomy
from tests.review.conftest import TREE


def test_reviews_made_before_0009_count_as_queued(database_url):
    conn = psycopg2.connect(database_url)
    try:
        migrations.upgrade(conn, until="0008")
        load_taxonomy(conn, TREE)
        register_model_version(conn, "v1", base_model="t", artefact_uri="x", promote=True)
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO papers (doi, title, source) VALUES ('10.5555/a', 'A', 't') "
                "RETURNING id"
            )
            (paper,) = cur.fetchone()
            cur.execute(
                """INSERT INTO paper_reviews (paper_id, reviewer, reviewed_at, model_version,
                       accepted, labels, source) VALUES (%s, 'ana', now(), 'v1', true,
                       '{protect}', 'old')""",
                (paper,),
            )
            cur.execute(
                """INSERT INTO paper_labels (paper_id, label_id, origin, curated_by, labelled_at)
                   VALUES (%s, 'protect', 'curator', 'ana', now())""",
                (paper,),
            )
        conn.commit()
        assert "0009_review_queue" in migrations.upgrade(conn)
        # After the upgrade: today's upsert writes columns of later migrations.
        upsert_model_labels(conn, [(paper, "protect", 0.6)], "v1")
        with conn.cursor() as cur:
            cur.execute("SELECT paper_id, model_version FROM review_queue")
            assert cur.fetchall() == [(paper, "v1")]
        now = datetime.now(UTC)
        fix = ReviewDecision(paper, "ana", now, "v1", False, (), ("heat",), ("protect", "heat"))
        report = apply_reviews(conn, [fix], "correction")
        assert (report.applied, report.refused) == (1, ())
    finally:
        conn.close()
