import json

import psycopg2.errors
import pytest

from petal_labeller.store.labels import curator_labels
from petal_labeller.store.papers import BATCH_SIZE, import_papers
from tests.store.conftest import paper


def _papers(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("SELECT doi, title, abstract, venue, url, source FROM papers ORDER BY id")
        return cur.fetchall()


def test_import_stores_papers_and_curator_labels(db_conn, stored_tree, write_jsonl):
    path = write_jsonl(
        [
            paper(1, labels=["protect", "non_living", "temperature"]),
            paper(2, doi=None, venue="Single Venue", abstract=None),
            paper(3, doi="https://doi.org/10.1234/UPPER.Case"),
        ]
    )
    report = import_papers(db_conn, path, stored_tree)
    assert (report.read, report.inserted, report.updated, report.rejected) == (3, 3, 0, 0)
    assert report.curator_labels == 3
    rows = _papers(db_conn)
    assert rows[0] == (
        "10.1234/paper.1",
        "Paper 1",
        "Abstract 1",
        ["Journal"],
        "https://example.org/1",
        "import:papers.jsonl",
    )
    assert rows[1][:4] == (None, "Paper 2", None, ["Single Venue"])
    assert rows[2][0] == "10.1234/upper.case"
    with db_conn.cursor() as cur:
        cur.execute("SELECT id FROM papers WHERE doi = '10.1234/paper.1'")
        assert curator_labels(db_conn, cur.fetchone()[0]) == [
            "protect",
            "non_living",
            "temperature",
        ]


def test_reimport_updates_in_place_and_keeps_ingested_at(db_conn, stored_tree, write_jsonl):
    import_papers(
        db_conn, write_jsonl([paper(1, labels=["move"]), paper(2, doi=None)]), stored_tree
    )
    with db_conn.cursor() as cur:
        cur.execute("SELECT id, ingested_at FROM papers ORDER BY id")
        before = cur.fetchall()
    again = write_jsonl(
        [
            paper(1, title="Paper 1, revised", labels=["protect"]),
            paper(2, doi=None, title="PAPER 2"),  # same paper: no DOI, same title ignoring case
        ],
        name="again.jsonl",
    )
    report = import_papers(db_conn, again, stored_tree)
    assert (report.inserted, report.updated) == (0, 2)
    with db_conn.cursor() as cur:
        cur.execute("SELECT id, ingested_at FROM papers ORDER BY id")
        assert cur.fetchall() == before
        cur.execute("SELECT title FROM papers ORDER BY id")
        assert [row[0] for row in cur.fetchall()] == ["Paper 1, revised", "PAPER 2"]
    assert curator_labels(db_conn, before[0][0]) == ["protect"]


def test_record_without_labels_key_keeps_curator_labels(db_conn, stored_tree, write_jsonl):
    import_papers(db_conn, write_jsonl([paper(1, labels=["move", "active"])]), stored_tree)
    import_papers(db_conn, write_jsonl([paper(1)], name="plain.jsonl"), stored_tree)
    with db_conn.cursor() as cur:
        cur.execute("SELECT id FROM papers")
        assert curator_labels(db_conn, cur.fetchone()[0]) == ["move", "active"]


BAD_LINES = [
    (paper(10, title=None), "title", "missing"),
    (paper(11, title="   "), "title", "missing"),
    (paper(12, title=42), "title", "must be a string"),
    (paper(13, abstract=["not", "text"]), "abstract", "must be a string"),
    (paper(14, venue=[1, 2]), "venue", "list of strings"),
    (paper(15, url={"href": "x"}), "url", "must be a string"),
    (paper(16, labels=["protect", "no_such_label"]), "labels", "no_such_label"),
    (paper(17, labels="protect"), "labels", "list of label id"),
    (paper(18, doi="not-a-doi"), "doi", "not a DOI"),
    (paper(19, doi=10.1234), "doi", "must be a string"),
    (paper(20, title="nul \u0000 inside"), "title", "NUL"),
    ('{"doi": null, "title": "lone \\ud800 surrogate"}', "title", "UTF-8"),
    (b'{"doi": null, "title": "Latin-1 \xe9t\xe9"}', None, "not valid UTF-8"),
    ('{"doi": "10.1/x", "title": ', None, "not valid JSON"),
    ("[1, 2, 3]", "record", "JSON object"),
    (paper(1, title="Same DOI again"), "doi", "duplicate of the paper on line 1"),
    (paper(2, doi="DOI:10.1234/PAPER.2"), "doi", "duplicate of the paper on line 2"),
    (paper(30, doi=None, title="no doi"), None, None),
    (paper(31, doi=None, title="No DOI"), "title", "duplicate of the paper on line 20"),
]


def test_bad_records_are_rejected_with_line_and_reason(db_conn, stored_tree, write_jsonl, tmp_path):
    records = [paper(1), paper(2), *[line for line, _, _ in BAD_LINES], "", paper(3)]
    path = write_jsonl(records)
    rejects = tmp_path / "rejects.jsonl"

    report = import_papers(db_conn, path, stored_tree, rejects)

    expected = [(n, field, why) for n, (_, field, why) in enumerate(BAD_LINES, start=3) if why]
    assert report.rejected == len(expected)
    assert report.inserted == 4  # papers 1, 2, 3 and "no doi"
    assert report.read == len(records) - 1  # the blank line is not a record
    written = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["field"]) for r in written] == [(n, f) for n, f, _ in expected]
    for record, (_, _, why) in zip(written, expected, strict=True):
        assert why in record["reason"]
        assert record["record"]
    titles = {row[1] for row in _papers(db_conn)}
    assert titles == {"Paper 1", "Paper 2", "Paper 3", "no doi"}


def test_sql_looking_text_is_stored_verbatim(db_conn, stored_tree, write_jsonl):
    title = "Robert'); DROP TABLE papers; -- \\ % %s $1"
    import_papers(
        db_conn, write_jsonl([paper(1, title=title, abstract="'; DELETE FROM papers")]), stored_tree
    )
    assert _papers(db_conn)[0][1:3] == (title, "'; DELETE FROM papers")


def test_failed_import_leaves_database_unchanged(db_conn, stored_tree, write_jsonl):
    import_papers(db_conn, write_jsonl([paper(1)]), stored_tree)
    with db_conn, db_conn.cursor() as cur:
        # A rule the validator does not know: the database refuses a record in the
        # second batch, after the first batch was already written.
        cur.execute("ALTER TABLE papers ADD CONSTRAINT no_boom CHECK (title <> 'boom')")
    records = [paper(n) for n in range(2, BATCH_SIZE + 500)]
    records[BATCH_SIZE + 100] = paper(0, title="boom")
    with pytest.raises(psycopg2.errors.CheckViolation, match="no_boom"):
        import_papers(db_conn, write_jsonl(records, name="boom.jsonl"), stored_tree)
    assert [row[1] for row in _papers(db_conn)] == ["Paper 1"]
