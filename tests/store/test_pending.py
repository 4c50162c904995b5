from datetime import UTC, datetime, timedelta

import pytest

from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.models import promote, register_model_version
from petal_labeller.store.papers import import_papers, pending_papers
from tests.store.conftest import paper

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def dated_papers(db_conn, stored_tree, write_jsonl) -> list[int]:
    """Five papers ingested one day apart from T0."""
    import_papers(db_conn, write_jsonl([paper(n) for n in range(5)]), stored_tree)
    with db_conn, db_conn.cursor() as cur:
        cur.execute("UPDATE papers SET ingested_at = %s + (id - 1) * interval '1 day'", (T0,))
        cur.execute("SELECT id FROM papers ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def test_window_is_half_open_and_rows_carry_the_paper(db_conn, dated_papers):
    found = list(pending_papers(db_conn, T0 + timedelta(days=1), T0 + timedelta(days=3), "v1"))
    assert [row["paper_id"] for row in found] == dated_papers[1:3]
    assert found[0] | {"ingested_at": None} == {
        "paper_id": dated_papers[1],
        "doi": "10.1234/paper.1",
        "title": "Paper 1",
        "abstract": "Abstract 1",
        "venue": ["Journal"],
        "url": "https://example.org/1",
        "ingested_at": None,
    }


def test_iso_strings_and_naive_datetimes_are_utc(db_conn, dated_papers):
    found = pending_papers(db_conn, "2026-01-02T00:00:00Z", datetime(2026, 1, 3), "v1")
    assert [row["paper_id"] for row in found] == [dated_papers[1]]


def test_papers_labelled_by_the_version_are_not_pending(db_conn, dated_papers):
    register_model_version(db_conn, "v1", base_model="m", artefact_uri="file:///v1")
    register_model_version(db_conn, "v2", base_model="m", artefact_uri="file:///v2", promote=True)
    first, second = dated_papers[:2]
    # `second` got no label above threshold but was labelled all the same.
    upsert_model_labels(db_conn, [(first, "move", 0.9)], "v1", paper_ids=[second])
    window = (T0, T0 + timedelta(days=10))

    assert [r["paper_id"] for r in pending_papers(db_conn, *window, "v1")] == dated_papers[2:]
    # Default: the production model (v2), which has labelled nothing yet.
    assert [r["paper_id"] for r in pending_papers(db_conn, *window)] == dated_papers
    promote(db_conn, "v1")
    assert [r["paper_id"] for r in pending_papers(db_conn, *window)] == dated_papers[2:]


def test_no_production_model_means_everything_is_pending(db_conn, dated_papers):
    assert len(list(pending_papers(db_conn, T0, T0 + timedelta(days=10)))) == 5


def test_limit_and_streaming_through_a_server_side_cursor(db_conn, dated_papers):
    rows = pending_papers(db_conn, T0, T0 + timedelta(days=10), "v1", limit=3)
    first = next(rows)
    with db_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_cursors WHERE name LIKE 'pending_%'")
        assert cur.fetchone()[0] == 1  # rows come from a named (server-side) cursor
    assert [first["paper_id"], *(r["paper_id"] for r in rows)] == dated_papers[:3]
