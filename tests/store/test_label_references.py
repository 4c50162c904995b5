"""paper_labels' references are PostgreSQL's own foreign keys (migration 0005, issue 13 item 5).

What the schema promises: a label row names an existing paper and taxonomy label,
a model row an existing labelling mark; deleting a paper or a mark takes its
labels with it; a label in use cannot be deleted; a delete of a referenced row
waits for the transaction writing a reference to it. test_schema.py covers the
writes and deletes through the same keys; this file the keys themselves, what
deletes cascade where, the lock, and upgrading a database written under 0001's triggers.
"""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest

from petal_labeller.store.connection import connect
from petal_labeller.store.labels import model_labels, upsert_model_labels
from petal_labeller.store.migrations import upgrade
from petal_labeller.store.models import register_model_version
from petal_labeller.store.papers import import_papers
from petal_labeller.store.taxonomy import load_taxonomy
from petal_labeller.store.unit import StoreError
from tests.store.conftest import paper


def _seed(conn, tree, write_jsonl) -> tuple[int, int]:
    """Two papers: the first with a curator label; model labels of v1 (and v2) on both."""
    load_taxonomy(conn, tree)
    import_papers(conn, write_jsonl([paper(1, labels=["move"]), paper(2)]), tree)
    for version in ("v1", "v2"):
        register_model_version(conn, version, base_model="m", artefact_uri=f"file:///{version}")
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM papers ORDER BY id")
        first, second = (row[0] for row in cur.fetchall())
    _write_model_labels(conn, [(first, "protect", 0.9), (second, "move", 0.4)], "v1")
    _write_model_labels(conn, [(first, "move", 0.7), (second, "active", 0.2)], "v2")
    return first, second


def _write_model_labels(conn, rows: list[tuple[int, str, float]], version: str) -> None:
    """Plain INSERTs, not `upsert_model_labels`: they work on the schema of any migration
    (the upgrade test seeds an 0004 database, older than the columns the upsert writes)."""
    with conn, conn.cursor() as cur:
        for paper_id, label_id, score in rows:
            cur.execute(
                "INSERT INTO paper_labelling (paper_id, model_version, label_count) "
                "VALUES (%s, %s, 1)",
                (paper_id, version),
            )
            cur.execute(
                "INSERT INTO paper_labels (paper_id, label_id, origin, score, model_version) "
                "VALUES (%s, %s, 'model', %s, %s)",
                (paper_id, label_id, score, version),
            )


def _rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT paper_id, label_id, origin, model_version FROM paper_labels "
            "ORDER BY paper_id, origin, label_id"
        )
        return cur.fetchall()


def _execute(conn, sql: str, params: tuple = ()) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(sql, params)


def test_references_are_native_foreign_keys_and_no_trigger_is_left(db_conn):
    with db_conn.cursor() as cur:
        cur.execute(
            """SELECT conname, confdeltype FROM pg_constraint
               WHERE conrelid = 'paper_labels'::regclass AND contype = 'f' ORDER BY conname"""
        )
        keys = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal")
        user_triggers = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'paper_labels_%%'")
        functions = cur.fetchone()[0]
    # c = cascade, a = no action (a label in use is refused at the end of the statement).
    assert keys == {
        "paper_labels_label_fkey": "a",
        "paper_labels_labelling_fkey": "c",
        "paper_labels_paper_fkey": "c",
    }
    assert user_triggers == 0 and functions == 0


def test_deleting_a_paper_takes_curator_and_model_labels_and_marks(db_conn, tree, write_jsonl):
    first, second = _seed(db_conn, tree, write_jsonl)
    _execute(db_conn, "DELETE FROM papers WHERE id = %s", (first,))
    assert {row[0] for row in _rows(db_conn)} == {second}
    with db_conn.cursor() as cur:
        cur.execute("SELECT DISTINCT paper_id FROM paper_labelling")
        assert [row[0] for row in cur.fetchall()] == [second]


def test_deleting_one_versions_mark_keeps_other_versions_and_curator_labels(
    db_conn, tree, write_jsonl
):
    first, _ = _seed(db_conn, tree, write_jsonl)
    _execute(
        db_conn,
        "DELETE FROM paper_labelling WHERE paper_id = %s AND model_version = 'v1'",
        (first,),
    )
    assert [row for row in _rows(db_conn) if row[0] == first] == [
        (first, "move", "curator", None),
        (first, "move", "model", "v2"),
    ]


def test_a_model_row_needs_its_versions_mark_not_just_its_paper(db_conn, tree, write_jsonl):
    _, second = _seed(db_conn, tree, write_jsonl)
    register_model_version(db_conn, "v3", base_model="m", artefact_uri="file:///v3")
    with pytest.raises(psycopg2.errors.ForeignKeyViolation, match="paper_labelling"):
        _execute(
            db_conn,
            "UPDATE paper_labels SET model_version = 'v3' WHERE paper_id = %s "
            "AND model_version = 'v1'",
            (second,),
        )
    # Moving a curator label to a paper that does not exist is refused as well.
    with pytest.raises(psycopg2.errors.ForeignKeyViolation, match="papers"):
        _execute(
            db_conn,
            "UPDATE paper_labels SET paper_id = paper_id + 1000 WHERE origin = 'curator'",
        )
    assert len(_rows(db_conn)) == 5  # every refused statement left the rows as they were


def test_a_bad_row_in_a_bulk_upsert_writes_nothing(db_conn, tree, write_jsonl):
    first, second = _seed(db_conn, tree, write_jsonl)
    before = model_labels(db_conn)
    with pytest.raises(StoreError, match=r"Key \(label_id\)=\(gone\)"):
        upsert_model_labels(db_conn, [(first, "active", 0.5), (second, "gone", 0.5)], "v1")
    with pytest.raises(StoreError, match=r"Key \(paper_id\)=\(999999\)"):
        upsert_model_labels(db_conn, [(first, "active", 0.5), (999999, "move", 0.5)], "v1")
    assert model_labels(db_conn) == before


def test_a_label_in_use_cannot_be_deleted_by_a_new_taxonomy(db_conn, tree, write_jsonl):
    _seed(db_conn, tree, write_jsonl)
    with pytest.raises(psycopg2.errors.ForeignKeyViolation, match="paper_labels"):
        _execute(db_conn, "DELETE FROM taxonomy_labels WHERE id = 'active'")
    _execute(db_conn, "DELETE FROM taxonomy_labels WHERE id = 'temperature'")  # unused


def test_deleting_a_paper_waits_for_a_transaction_writing_its_labels(
    db_conn, tree, write_jsonl, migrated_database_url
):
    first, _ = _seed(db_conn, tree, write_jsonl)
    writer = db_conn
    upsert_model_labels(writer, [(first, "active", 0.3)], "v1", commit=False)  # still open
    deleter = connect(migrated_database_url)
    try:
        with pytest.raises(psycopg2.errors.LockNotAvailable), deleter, deleter.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '300ms'")
            cur.execute("DELETE FROM papers WHERE id = %s", (first,))
    finally:
        deleter.close()
    writer.commit()
    assert (first, "active", "model", "v1") in _rows(writer)


def test_upgrading_a_database_written_under_the_triggers_keeps_every_row(
    database_url, tree, write_jsonl
):
    conn = connect(database_url)
    try:
        upgrade(conn, until="0004")
        first, second = _seed(conn, tree, write_jsonl)
        before = _rows(conn)
        assert upgrade(conn, until="0005") == ["0005_native_label_references"]
        assert _rows(conn) == before
        _execute(conn, "DELETE FROM papers WHERE id = %s", (second,))
        assert {row[0] for row in _rows(conn)} == {first}
    finally:
        conn.close()
