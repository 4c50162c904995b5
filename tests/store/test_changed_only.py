"""A new model version writes only the papers whose labels change (issue 26 item 3).

Unchanged (same label set, every score within SCORE_TOLERANCE): the paper gets the new
version's mark, naming the version whose rows hold its labels, and no label row. Every
reader of "the labels of version V" sees them through the mark.
"""

import pytest

from petal_labeller.pipeline.validate import CheckedOutput
from petal_labeller.pipeline.write import RunRecord, write_labels
from petal_labeller.store import labels as store_labels
from petal_labeller.store.labels import (
    SCORE_TOLERANCE,
    export_papers,
    model_labels,
    paper_view,
    run_papers,
    upsert_model_labels,
)
from petal_labeller.store.models import register_model_version
from petal_labeller.store.papers import count_pending, import_papers
from petal_labeller.store.promotions import labelled_sample
from petal_labeller.store.reviews import review_candidates
from petal_labeller.store.runs import get_run, start_run
from tests.store.conftest import paper


@pytest.fixture
def three(db_conn, stored_tree, write_jsonl) -> list[int]:
    """Three uncurated papers labelled by v1 (run-1); v2 registered with runs run-2, run-3."""
    import_papers(db_conn, write_jsonl([paper(1), paper(2), paper(3)]), stored_tree)
    with db_conn.cursor() as cur:
        cur.execute("SELECT id FROM papers ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
    for version in ("v1", "v2"):
        register_model_version(
            db_conn, version, base_model="m", artefact_uri=f"file:///m/{version}.tar.gz"
        )
    start_run(db_conn, "run-1", "v1")
    for run_id in ("run-2", "run-3"):
        start_run(db_conn, run_id, "v2")
    a, b, _ = ids
    upsert_model_labels(
        db_conn,
        [(a, "protect", 0.9), (a, "non_living", 0.7), (b, "move", 0.8)],
        "v1",
        "run-1",
        paper_ids=ids,  # c: no label at all
    )
    return ids


def _rows(conn, version: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_labels WHERE model_version = %s", (version,))
        return cur.fetchone()[0]


def _carried(conn, version: str) -> dict[int, str | None]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT paper_id, labels_version FROM paper_labelling WHERE model_version = %s",
            (version,),
        )
        return dict(cur.fetchall())


def test_identical_labels_write_no_row_and_no_paper_changes(db_conn, three):
    a, b, c = three
    tiny = SCORE_TOLERANCE / 2  # scores moved by less than rounding
    rows = [(a, "protect", 0.9 + tiny), (a, "non_living", 0.7), (b, "move", 0.8 - tiny)]

    report = upsert_model_labels(db_conn, rows, "v2", "run-2", paper_ids=three)

    assert (report.papers, report.changed, report.carried) == (3, 0, 3)
    assert (report.inserted, report.updated, report.deleted) == (0, 0, 0)
    assert _rows(db_conn, "v2") == 0
    assert _carried(db_conn, "v2") == {a: "v1", b: "v1", c: "v1"}
    # Not pending for v2 any more: the relabel is done.
    assert count_pending(db_conn, "1970-01-01", "9999-01-01", "v2") == 0


def test_changed_papers_alone_are_written(db_conn, three):
    a, b, c = three
    rows = [
        (a, "protect", 0.9), (a, "non_living", 0.7),  # same
        (b, "move", 0.8 - 3 * SCORE_TOLERANCE),  # score moved beyond rounding
        (c, "move", 0.6),  # a label where there was none
    ]  # fmt: skip

    report = upsert_model_labels(db_conn, rows, "v2", "run-2", paper_ids=three)

    assert (report.changed, report.carried, report.inserted) == (2, 1, 2)
    assert {row[0] for row in model_labels(db_conn, "v2")} == {b, c}
    assert _carried(db_conn, "v2") == {a: "v1", b: None, c: None}


def test_a_label_set_change_is_a_change(db_conn, three):
    a, b, c = three
    rows = [(a, "protect", 0.9), (b, "move", 0.8)]  # a lost non_living

    report = upsert_model_labels(db_conn, rows, "v2", "run-2", paper_ids=three)

    assert (report.changed, report.carried) == (1, 2)
    assert _carried(db_conn, "v2") == {a: None, b: "v1", c: "v1"}


def test_readers_see_carried_labels_as_the_new_versions(db_conn, three):
    a, b, c = three
    rows = [(a, "protect", 0.9), (a, "non_living", 0.7), (b, "move", 0.55)]
    upsert_model_labels(db_conn, rows, "v2", "run-2", paper_ids=three)

    exported = {
        p["paper_id"]: p["predicted"]
        for p in export_papers(db_conn, where=store_labels.ExportFilter(model_version="v2"))
    }
    assert {item["label"] for item in exported[a]} == {"protect", "non_living"}
    assert all(item["model_version"] == "v2" for item in exported[a])
    assert [(i["label"], round(i["score"], 2)) for i in exported[b]] == [("move", 0.55)]

    candidates = {c_.paper_id: c_.scores for c_ in review_candidates(db_conn, "v2")}
    assert set(candidates[a]) == {"protect", "non_living"}
    assert candidates[c] == {}

    total, sample = labelled_sample(db_conn, "v2", 10)
    assert total == 3
    assert {record["paper_id"]: chosen for record, chosen in sample}[a] == [
        "non_living", "protect",
    ]  # fmt: skip

    view = paper_view(db_conn, a)
    assert {(m["model_version"], m["label"]) for m in view["model"]} >= {
        ("v2", "protect"), ("v2", "non_living"), ("v1", "protect"),
    }  # fmt: skip
    assert {m["model_version"]: m["carried_from"] for m in view["labelled_by"]}["v2"] == "v1"

    papers = {p["paper_id"]: p for p in run_papers(db_conn, "run-2", 10)}
    assert papers[a]["carried_from"] == "v1" and len(papers[a]["labels"]) == 2
    assert papers[b]["carried_from"] is None


def test_carried_chain_resolves_to_the_rows_holder(db_conn, three):
    a, b, _ = three
    same = [(a, "protect", 0.9), (a, "non_living", 0.7), (b, "move", 0.8)]
    register_model_version(db_conn, "v3", base_model="m", artefact_uri="file:///m/v3.tar.gz")
    start_run(db_conn, "run-4", "v3")
    upsert_model_labels(db_conn, same, "v2", "run-2", paper_ids=three)

    report = upsert_model_labels(db_conn, same, "v3", "run-4", paper_ids=three)

    assert (report.changed, report.carried) == (0, 3)
    assert set(_carried(db_conn, "v3").values()) == {"v1"}


def test_rewriting_a_carried_paper_with_new_labels_gives_it_its_own_rows(db_conn, three):
    a, b, _ = three
    same = [(a, "protect", 0.9), (a, "non_living", 0.7), (b, "move", 0.8)]
    upsert_model_labels(db_conn, same, "v2", "run-2", paper_ids=three)
    again = upsert_model_labels(db_conn, same, "v2", "run-2", paper_ids=three)
    assert (again.changed, again.inserted) == (0, 0)

    report = upsert_model_labels(db_conn, [(b, "active", 0.6)], "v2", "run-3", paper_ids=[b])

    assert report.changed == 1
    assert _carried(db_conn, "v2")[b] is None
    assert [row[1] for row in model_labels(db_conn, "v2", paper_id=b)] == ["active"]


def test_the_run_row_records_how_many_papers_changed(db_conn, three, migrated_database_url):
    a, b, _ = three
    checked = CheckedOutput(
        rows=[(a, "protect", 0.9), (a, "non_living", 0.7), (b, "move", 0.3)],
        labelled=three,
        rejected=[],
    )

    summary = write_labels(
        RunRecord("relabel-1", "v2", database_url=migrated_database_url), checked,
        papers_selected=3,
    )  # fmt: skip

    assert (summary.papers_labelled, summary.papers_changed) == (3, 1)
    assert get_run(db_conn, "relabel-1").papers_changed == 1
