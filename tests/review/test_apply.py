"""`petal review apply`: decisions become curator labels, once, all or nothing."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.review import build_queue, read_decisions
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.reviews import ReviewDecision, apply_reviews
from petal_labeller.store.unit import StoreError
from tests.review.conftest import TREE, curator_labels


def _write(tmp_path, lines, name="decisions.jsonl"):
    path = tmp_path / name
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def apply_cli(database_url):
    def run(*args, code=0):
        args = ["--database-url", database_url, "review", "apply", *args]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == code, result.output
        return result

    return run


def _table(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_accept_remove_add_become_curator_labels_with_who_and_when(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    path = _write(
        tmp_path,
        [
            {**store["papers"]["sure"], "accept": True, "reviewer": "ana"},
            {**store["papers"]["torn"], "remove": ["heat"], "add": ["cold"],
             "reviewed_at": "2026-11-20T10:00:00Z"},
            {**store["papers"]["deep"], "remove": ["heat", "protect"], "add": ["swim"]},
        ],
    )  # fmt: skip
    result = apply_cli(str(path), "--reviewer", "bo")
    assert "3 applied" in result.output
    assert curator_labels(conn, ids["sure"]) == [("move", "ana"), ("swim", "ana")]
    assert curator_labels(conn, ids["torn"]) == [("cold", "bo"), ("protect", "bo")]
    # Adding a level-2 label brings its parent: the curator labels are closed upwards.
    assert curator_labels(conn, ids["deep"]) == [("move", "bo"), ("swim", "bo")]
    when = _table(
        conn,
        f"SELECT DISTINCT labelled_at FROM paper_labels "
        f"WHERE paper_id = {ids['torn']} AND origin = 'curator'",
    )
    assert when == [(datetime(2026, 11, 20, 10, tzinfo=UTC),)]
    review = _table(
        conn, f"SELECT reviewer, accepted, removed, added, labels, model_version "
              f"FROM paper_reviews WHERE paper_id = {ids['torn']}"
    )  # fmt: skip
    assert review == [("bo", False, ["heat"], ["cold"], ["protect", "cold"], "v1")]


def test_applying_the_same_file_twice_changes_nothing(store, tmp_path, apply_cli):
    conn = store["conn"]
    path = _write(tmp_path, [{**store["papers"]["torn"], "accept": True, "remove": ["heat"]}])
    apply_cli(str(path), "--reviewer", "ana")
    everything = "SELECT * FROM paper_labels ORDER BY paper_id, label_id, origin, model_version"
    labels_before = _table(conn, everything)
    reviews_before = _table(conn, "SELECT * FROM paper_reviews")
    result = apply_cli(str(path), "--reviewer", "ana")
    assert "0 applied, 1 already so" in result.output
    assert _table(conn, everything) == labels_before
    assert _table(conn, "SELECT * FROM paper_reviews") == reviews_before


def test_bad_lines_are_rejected_with_line_numbers_and_the_rest_applied(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    path = _write(
        tmp_path,
        [
            {**store["papers"]["sure"], "accept": True},  # 1: good
            "{not json",  # 2
            {**store["papers"]["torn"], "add": ["nope"]},  # 3: unknown label
            {"paper_id": 999999, "accept": True},  # 4: no such paper
            {**store["papers"]["deep"], "remove": ["swim"]},  # 5: not a model label
            {**store["papers"]["deep"], "accept": True},  # 6: second decision for one paper
            {**store["papers"]["sure"], "accept": True},  # 7: second decision for one paper
            {**store["papers"]["torn"], "accept": "maybe"},  # 8
            {**store["papers"]["torn"], "remove": ["protect", "heat"]},  # 9: no label left
            {**store["papers"]["fish"], "accept": True, "doi": "10.5555/other"},  # 10: wrong DOI
            {"paper_id": "x1", "accept": True},  # 11
            {**store["papers"]["deep"], "reviewer": "ana"},  # 12: no decision yet: skipped
            {**store["papers"]["beetle"], "accept": True, "model_version": "v9"},  # 13
        ],
    )
    rejects = tmp_path / "rejects.jsonl"
    result = apply_cli(str(path), "--reviewer", "ana", "--rejects", str(rejects), code=1)
    assert "1 applied" in result.output and "1 lines without a decision" in result.output
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rejected] == [
        (2, None), (3, "add"), (4, "paper_id"), (5, "remove"), (6, "paper_id"),
        (7, "paper_id"), (8, "accept"), (9, "remove"), (10, "doi"), (11, "paper_id"),
        (13, "model_version"),
    ]  # fmt: skip
    assert "unknown label ids ['nope']" in rejected[1]["reason"]
    assert rejected[1]["record"] == json.dumps({**store["papers"]["torn"], "add": ["nope"]})
    assert curator_labels(conn, ids["sure"]) == [("move", "ana"), ("swim", "ana")]
    assert curator_labels(conn, ids["torn"]) == []


def test_removing_a_parent_but_keeping_its_child_is_rejected(store, tmp_path, apply_cli):
    path = _write(tmp_path, [{**store["papers"]["deep"], "remove": ["protect"]}])
    result = apply_cli(str(path), "--reviewer", "ana", code=1)
    assert "['protect'] stay implied by a kept label's ancestry" in result.output


def test_a_review_time_outside_1900_to_now_is_that_lines_error(store, tmp_path, apply_cli):
    path = _write(
        tmp_path,
        [
            {**store["papers"]["sure"], "accept": True, "reviewed_at": "9999-12-31"},
            {**store["papers"]["torn"], "accept": True, "reviewed_at": "2026-11-20T10:00:00Z"},
        ],
    )
    result = apply_cli(str(path), "--reviewer", "ana", code=1)
    assert "rejected line 1" in result.output and "field 'reviewed_at'" in result.output
    assert "1 applied" in result.output


def test_a_line_without_a_reviewer_is_rejected(store, tmp_path, apply_cli):
    path = _write(tmp_path, [{**store["papers"]["sure"], "accept": True}])
    result = apply_cli(str(path), code=1)
    assert "field 'reviewer'" in result.output


def test_a_failed_write_leaves_every_table_as_it_was(store):
    conn, ids = store["conn"], store["ids"]
    now = datetime.now(UTC)
    good = ReviewDecision(ids["sure"], "ana", now, "v1", True, (), (), ("move", "swim"))
    # Not in the taxonomy: only a caller skipping validation could send it.
    bad = ReviewDecision(ids["torn"], "ana", now, "v1", True, (), (), ("ghost",))
    with pytest.raises(StoreError, match="ghost"):
        apply_reviews(conn, [good, bad], "test")
    assert curator_labels(conn, ids["sure"]) == []
    assert _table(conn, "SELECT count(*) FROM paper_reviews") == [(0,)]


def test_model_labels_never_overwrite_curator_labels(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    path = _write(tmp_path, [{**store["papers"]["torn"], "remove": ["heat"], "add": ["cold"]}])
    apply_cli(str(path), "--reviewer", "ana")
    # The next labelling run writes different model labels for the same paper.
    upsert_model_labels(conn, [(ids["torn"], "heat", 0.9), (ids["torn"], "move", 0.8)], "v1")
    assert curator_labels(conn, ids["torn"]) == [("cold", "ana"), ("protect", "ana")]
    model = _table(
        conn,
        f"SELECT label_id FROM paper_labels WHERE paper_id = {ids['torn']} "
        "AND origin = 'model' ORDER BY label_id",
    )
    assert model == [("heat",), ("move",)]


def test_the_queue_csv_filled_in_a_spreadsheet_applies(store, tmp_path, apply_cli):
    from petal_labeller.review import write_queue

    conn = store["conn"]
    sheet = tmp_path / "queue.csv"
    write_queue(build_queue(conn, TREE, limit=3), sheet, "csv")
    rows = list(csv.DictReader(sheet.open(encoding="utf-8", newline="")))
    rows[0].update(reviewer="ana", accept="yes", remove="heat", add="cold; protect")
    rows[1].update(reviewer="bo", accept="x")
    with open(sheet, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = apply_cli(str(sheet))
    assert "2 applied" in result.output and "1 lines without a decision" in result.output
    torn = int(rows[0]["paper_id"])
    assert curator_labels(conn, torn) == [("cold", "ana"), ("protect", "ana")]


def test_reading_decisions_names_the_model_the_paper_was_queued_with(store, tmp_path):
    path = _write(tmp_path, [{**store["papers"]["sure"], "accept": True, "reviewer": "a"}])
    read = read_decisions(store["conn"], path, TREE)
    assert [d.model_version for _, d in read.decisions] == ["v1"]
    assert not read.rejections


def test_a_huge_line_is_one_rejected_line_and_the_next_line_still_counts(
    store, tmp_path, apply_cli, monkeypatch
):
    import petal_labeller.review.decisions as review

    monkeypatch.setattr(review, "MAX_LINE_BYTES", 64)
    ids = store["ids"]
    path = _write(
        tmp_path,
        [
            {**store["papers"]["deep"], "accept": True, "note": "x" * 500},
            {**store["papers"]["sure"], "accept": True},
        ],
    )
    result = apply_cli(str(path), "--reviewer", "ana", code=1)
    assert "rejected line 1: line longer than 64 bytes" in result.output
    assert "1 applied" in result.output
    assert curator_labels(store["conn"], ids["sure"]) == [("move", "ana"), ("swim", "ana")]
