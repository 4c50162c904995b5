"""The references of paper_labels hold for any writer, not just our functions."""

import psycopg2.errors
import pytest

from petal_labeller.store.labels import model_labels, upsert_model_labels
from petal_labeller.store.models import register_model_version
from petal_labeller.store.papers import import_papers
from petal_labeller.store.unit import StoreError
from tests.store.conftest import paper


@pytest.fixture
def labelled(db_conn, stored_tree, write_jsonl) -> tuple[int, int]:
    import_papers(db_conn, write_jsonl([paper(1, labels=["move"]), paper(2)]), stored_tree)
    register_model_version(db_conn, "v1", base_model="m", artefact_uri="file:///v1")
    with db_conn.cursor() as cur:
        cur.execute("SELECT id FROM papers ORDER BY id")
        first, second = (row[0] for row in cur.fetchall())
    upsert_model_labels(
        db_conn,
        [(first, "protect", 0.9), (second, "move", 0.4), (second, "temperature", 0.3)],
        "v1",
    )
    return first, second


def _execute(conn, sql: str, params: tuple = ()) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(sql, params)


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        (
            "INSERT INTO paper_labels (paper_id, label_id, origin) VALUES (%s, 'nope', 'curator')",
            "nope",
        ),
        (
            "INSERT INTO paper_labels (paper_id, label_id, origin) "
            "VALUES (%s + 1000, 'move', 'curator')",
            "papers",
        ),
        (
            "INSERT INTO paper_labels (paper_id, label_id, origin, score, model_version) "
            "VALUES (%s, 'move', 'model', 0.5, 'v2')",
            "paper_labelling",
        ),
        ("UPDATE paper_labels SET label_id = 'nope' WHERE paper_id = %s", "nope"),
    ],
)
def test_direct_writes_with_dangling_references_fail(db_conn, labelled, sql, needle):
    with pytest.raises(psycopg2.errors.ForeignKeyViolation) as caught:
        _execute(db_conn, sql, (labelled[0],))
    assert needle in f"{caught.value.diag.message_primary} {caught.value.diag.message_detail}"


def test_deleting_a_paper_deletes_its_labels(db_conn, labelled):
    first, second = labelled
    _execute(db_conn, "DELETE FROM papers WHERE id = %s", (first,))
    with db_conn.cursor() as cur:
        cur.execute("SELECT DISTINCT paper_id FROM paper_labels")
        assert [row[0] for row in cur.fetchall()] == [second]


def test_deleting_a_labelling_mark_deletes_that_versions_labels(db_conn, labelled):
    first, _ = labelled
    _execute(db_conn, "DELETE FROM paper_labelling WHERE paper_id = %s", (first,))
    assert model_labels(db_conn, paper_id=first) == []
    with db_conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM paper_labels WHERE paper_id = %s AND origin = 'curator'", (first,)
        )
        assert cur.fetchone()[0] == 1


def test_deleting_a_label_in_use_is_refused(db_conn, labelled):
    with pytest.raises(psycopg2.errors.ForeignKeyViolation, match="paper_labels"):
        _execute(db_conn, "DELETE FROM taxonomy_labels WHERE id = 'temperature'")
    _execute(db_conn, "DELETE FROM taxonomy_labels WHERE id = 'active'")  # unused: fine


def test_label_ids_with_copy_special_characters_are_not_misread(db_conn, labelled):
    first, _ = labelled
    with pytest.raises(StoreError, match=r"Key \(label_id\)=\(mo\\ve\ttab\)"):
        upsert_model_labels(db_conn, [(first, "mo\\ve\ttab", 0.5)], "v1")
