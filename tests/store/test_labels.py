import psycopg2.errors
import pytest

from petal_labeller.store.labels import curator_labels, model_labels, upsert_model_labels
from petal_labeller.store.models import register_model_version
from petal_labeller.store.papers import import_papers
from petal_labeller.store.runs import start_run
from petal_labeller.store.unit import StoreError
from tests.store.conftest import paper


@pytest.fixture
def paper_ids(db_conn, stored_tree, write_jsonl) -> list[int]:
    records = [paper(1, labels=["protect", "non_living"]), paper(2), paper(3)]
    import_papers(db_conn, write_jsonl(records), stored_tree)
    with db_conn.cursor() as cur:
        cur.execute("SELECT id FROM papers ORDER BY id")
        return [row[0] for row in cur.fetchall()]


@pytest.fixture
def version(db_conn) -> str:
    register_model_version(db_conn, "v1", base_model="minilm", artefact_uri="file:///m/v1.tar.gz")
    for run_id in ("run-a", "run-b"):
        start_run(db_conn, run_id, "v1")
    return "v1"


def _all_label_rows(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT paper_id, label_id, origin, score, model_version, run_id, labelled_at "
            "FROM paper_labels ORDER BY paper_id, origin, label_id"
        )
        return cur.fetchall()


def test_upsert_writes_rows_and_same_run_twice_gives_same_rows(db_conn, paper_ids, version):
    a, b, _ = paper_ids
    rows = [(a, "protect", 0.9), (a, "move", 0.6), (b, "temperature", 0.75)]
    report = upsert_model_labels(db_conn, rows, version, "run-a")
    assert (report.papers, report.inserted, report.updated, report.deleted) == (2, 3, 0, 0)
    first = _all_label_rows(db_conn)

    again = upsert_model_labels(db_conn, rows, version, "run-a")

    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert _all_label_rows(db_conn) == first
    assert model_labels(db_conn, version) == [
        (a, "move", 0.6, "v1", "run-a"),
        (a, "protect", 0.9, "v1", "run-a"),
        (b, "temperature", 0.75, "v1", "run-a"),
    ]


def test_newer_run_replaces_that_papers_model_labels(db_conn, paper_ids, version):
    a, b, _ = paper_ids
    upsert_model_labels(
        db_conn, [(a, "protect", 0.9), (a, "move", 0.6), (b, "move", 0.7)], version, "run-a"
    )

    report = upsert_model_labels(
        db_conn, [(a, "protect", 0.8), (a, "active", 0.55)], version, "run-b"
    )

    assert (report.inserted, report.updated, report.deleted) == (1, 1, 1)
    assert model_labels(db_conn, version) == [
        (a, "active", 0.55, "v1", "run-b"),
        (a, "protect", 0.8, "v1", "run-b"),
        (b, "move", 0.7, "v1", "run-a"),  # paper b was not in the newer batch: untouched
    ]


def test_paper_given_no_label_loses_old_ones(db_conn, paper_ids, version):
    a, b, _ = paper_ids
    upsert_model_labels(db_conn, [(a, "move", 0.6), (b, "move", 0.7)], version, "run-a")
    upsert_model_labels(db_conn, [(b, "move", 0.7)], version, "run-b", paper_ids=[a, b])
    assert model_labels(db_conn, version, paper_id=a) == []


def test_other_model_versions_are_kept(db_conn, paper_ids, version):
    a, _, _ = paper_ids
    register_model_version(db_conn, "v2", base_model="minilm", artefact_uri="file:///m/v2")
    upsert_model_labels(db_conn, [(a, "move", 0.6)], "v1")
    upsert_model_labels(db_conn, [(a, "protect", 0.9)], "v2")
    assert model_labels(db_conn, paper_id=a) == [
        (a, "move", 0.6, "v1", None),
        (a, "protect", 0.9, "v2", None),
    ]


def test_curator_labels_are_never_overwritten(db_conn, paper_ids, version):
    a, _, _ = paper_ids
    with db_conn.cursor() as cur:
        cur.execute("SELECT * FROM paper_labels WHERE origin = 'curator' ORDER BY label_id")
        curated = cur.fetchall()

    upsert_model_labels(db_conn, [(a, "protect", 0.1), (a, "non_living", 0.2)], version, "run-a")
    upsert_model_labels(
        db_conn, [(a, "move", 0.3)], version, "run-b"
    )  # deletes the model rows only

    with db_conn.cursor() as cur:
        cur.execute("SELECT * FROM paper_labels WHERE origin = 'curator' ORDER BY label_id")
        assert cur.fetchall() == curated
    assert curator_labels(db_conn, a) == ["protect", "non_living"]
    assert model_labels(db_conn, version, paper_id=a) == [(a, "move", 0.3, "v1", "run-b")]


def test_unknown_label_mid_batch_rolls_everything_back(db_conn, paper_ids, version):
    a, b, c = paper_ids
    upsert_model_labels(db_conn, [(a, "move", 0.6)], version, "run-a")
    before = _all_label_rows(db_conn)
    rows = [(b, "move", 0.5)] * 0 + [
        (b, "move", 0.5),
        (c, "no_such_label", 0.5),
        (a, "protect", 0.9),
    ]

    with pytest.raises(StoreError, match="no_such_label"):
        upsert_model_labels(db_conn, rows, version, "run-b")

    assert _all_label_rows(db_conn) == before
    with db_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_labelling")
        assert cur.fetchone()[0] == 1


def test_failure_raised_by_the_server_mid_write_rolls_back(db_conn, paper_ids, version):
    a, b, c = paper_ids
    upsert_model_labels(db_conn, [(a, "move", 0.6)], version, "run-a")
    before = _all_label_rows(db_conn)
    # A trigger fails the write after some rows of the batch were already inserted.
    with db_conn, db_conn.cursor() as cur:
        cur.execute(
            """CREATE FUNCTION fail_on_third() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 IF (SELECT count(*) FROM paper_labels WHERE run_id = 'run-b') >= 2 THEN
                   RAISE EXCEPTION 'injected failure';
                 END IF;
                 RETURN NEW;
               END $$;
               CREATE TRIGGER fail_on_third AFTER INSERT ON paper_labels
               FOR EACH ROW EXECUTE FUNCTION fail_on_third()"""
        )
    rows = [(b, "move", 0.5), (b, "protect", 0.5), (c, "move", 0.5), (c, "active", 0.5)]

    with pytest.raises(psycopg2.errors.RaiseException, match="injected failure"):
        upsert_model_labels(db_conn, rows, version, "run-b")

    assert _all_label_rows(db_conn) == before


def test_bad_score_is_refused_naming_the_row(db_conn, paper_ids, version):
    a, b, _ = paper_ids
    with pytest.raises(StoreError, match=r"label row 1 .*'score' 1.5"):
        upsert_model_labels(db_conn, [(a, "move", 0.5), (b, "move", 1.5)], version)
    assert model_labels(db_conn) == []


@pytest.mark.parametrize(
    ("paper_index", "label", "version_name", "run", "needle"),
    [
        (None, "move", "v1", None, "papers"),
        (0, "move", "v9", None, "model_versions"),
        (0, "move", "v1", "never-started", "labelling_runs"),
    ],
)
def test_unknown_references_are_refused(
    db_conn, paper_ids, version, paper_index, label, version_name, run, needle
):
    paper_id = paper_ids[paper_index] if paper_index is not None else 999_999
    with pytest.raises(StoreError, match=needle):
        upsert_model_labels(db_conn, [(paper_id, label, 0.5)], version_name, run)


def test_caller_can_hold_the_transaction(db_conn, paper_ids, version):
    a, _, _ = paper_ids
    upsert_model_labels(db_conn, [(a, "move", 0.6)], version, "run-a", commit=False)
    db_conn.rollback()
    assert model_labels(db_conn) == []
