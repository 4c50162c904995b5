"""Answers from a review backend become curator labels through `petal review apply`'s checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg2
import pytest

from petal_labeller.review.answers import Answer, AnswerError, apply_answers
from petal_labeller.review.publish import record_sent
from petal_labeller.review.selection import select_papers
from petal_labeller.store import review_tasks
from petal_labeller.store.papers import count_pending, pending_papers
from petal_labeller.store.reviews import review_candidates
from petal_labeller.store.unit import StoreError
from tests.review.conftest import TREE, curator_labels

WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
JOB = "petal-review-1"


@pytest.fixture
def sent(store):
    """The three model-labelled papers out as tasks of one Ground Truth job (task = paper id)."""
    conn = store["conn"]
    records = select_papers(conn, TREE, 3, "uncertain", neighbours=0)
    record_sent(conn, "ground_truth", JOB, records, [str(r["paper_id"]) for r in records])
    return {**store, "task": {k: str(i) for k, i in store["ids"].items()}}


def answer(sent, key, verdict="labels", labels=(), reviewer="ana", **fields) -> Answer:
    return Answer(
        task=sent["task"][key], verdict=verdict, labels=tuple(labels), reviewer=reviewer,
        answered_at=WHEN, paper_id=sent["ids"][key], **fields,
    )  # fmt: skip


def collect(sent, answers):
    return apply_answers(sent["conn"], "ground_truth", JOB, answers, TREE)


def _status(conn, paper_id):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT status, answered_by, answered_at FROM review_tasks WHERE paper_id = %s",
            (paper_id,),
        )
        return cur.fetchone()


def _reasons(report) -> list[tuple[str | None, str]]:
    return [(r.field, r.reason) for r in report.rejects.first]


def test_ticked_labels_become_curator_labels_closed_upwards_with_who_and_when(sent):
    conn, ids = sent["conn"], sent["ids"]
    report = collect(
        sent,
        [
            answer(sent, "torn", labels=["cold"]),
            answer(sent, "sure", labels=["move", "swim"], reviewer="bo"),
        ],
    )
    assert (report.answered, report.curated, report.rejects.count) == (2, 2, 0)
    assert curator_labels(conn, ids["torn"]) == [("cold", "ana"), ("protect", "ana")]
    assert curator_labels(conn, ids["sure"]) == [("move", "bo"), ("swim", "bo")]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT removed, added, reviewed_at, source FROM paper_reviews WHERE paper_id = %s",
            (ids["torn"],),
        )
        assert cur.fetchone() == (["heat"], ["cold"], WHEN, f"ground_truth:{JOB}")
    assert _status(conn, ids["torn"]) == ("answered", "ana", WHEN)
    assert _status(conn, ids["deep"])[0] == "sent"  # unanswered: still out


def test_a_second_collect_adds_nothing(sent):
    answers = [answer(sent, "torn", labels=["heat"])]
    assert collect(sent, answers).curated == 1
    again = collect(sent, answers)
    assert (again.curated, again.answered, again.already, again.rejects.count) == (0, 0, 1, 0)


def test_not_biomimicry_relevant_is_never_labelled_or_queued_again(sent):
    conn, ids = sent["conn"], sent["ids"]
    report = collect(sent, [answer(sent, "deep", "irrelevant")])
    assert report.irrelevant == 1
    with conn.cursor() as cur:
        cur.execute("SELECT irrelevant_by, irrelevant_at FROM papers WHERE id = %s", (ids["deep"],))
        assert cur.fetchone() == ("ana", WHEN)
    assert _status(conn, ids["deep"])[0] == "irrelevant"
    assert curator_labels(conn, ids["deep"]) == []
    assert ids["deep"] not in {c.paper_id for c in review_candidates(conn, "v1")}
    # The labelling query skips it, whichever model asks.
    pending = {p["paper_id"] for p in pending_papers(conn, "2000-01-01", "2100-01-01", "v9")}
    assert ids["deep"] not in pending and ids["torn"] in pending
    assert count_pending(conn, "2000-01-01", "2100-01-01", "v9") == len(pending)


def test_not_sure_returns_the_paper_to_the_queue(sent):
    conn, ids = sent["conn"], sent["ids"]
    assert ids["torn"] not in {c.paper_id for c in review_candidates(conn, "v1")}  # out
    report = collect(sent, [answer(sent, "torn", "not_sure")])
    assert report.not_sure == 1
    assert _status(conn, ids["torn"])[0] == "not_sure"
    assert ids["torn"] in {c.paper_id for c in review_candidates(conn, "v1")}
    assert curator_labels(conn, ids["torn"]) == []


def test_a_paper_out_with_curators_is_not_sent_twice(sent):
    conn = sent["conn"]
    assert select_papers(conn, TREE, 3, "uncertain", neighbours=0) == []
    with pytest.raises(StoreError, match="review_tasks_open"):
        review_tasks.record_tasks(conn, "label_studio", "7", [("1", sent["ids"]["torn"], "v1")])


def test_hostile_answers_are_each_their_own_reject_naming_task_paper_and_field(sent):
    conn, ids, task = sent["conn"], sent["ids"], sent["task"]
    report = collect(
        sent,
        [
            answer(sent, "torn", labels=["heat"]),  # the one good answer
            answer(sent, "torn", labels=["cold"], reviewer="bo"),  # a second answer for it
            Answer("999999", "labels", ("heat",), "ana", WHEN),  # no such task
            Answer(task["deep"], "labels", ("swim",), "ana", WHEN, paper_id=ids["sure"]),
            answer(sent, "sure", labels=[]),  # nothing ticked: no labels left
            AnswerError(task["sure"], "labels", "unknown label ids ['<script>']"),
        ],
    )
    assert report.curated == 1
    assert curator_labels(conn, ids["torn"]) == [("heat", "ana"), ("protect", "ana")]
    reasons = _reasons(report)
    torn, deep, sure = (f"task {task[k]} (paper {ids[k]})" for k in ("torn", "deep", "sure"))
    assert reasons[0] == (
        "task",
        f"{torn}: paper {ids['torn']} was answered already by answer 1 (ana)",
    )
    assert (
        reasons[1][0] == "task"
        and "no task '999999' was sent in ground_truth batch" in reasons[1][1]
    )
    assert reasons[2] == (
        "paper_id",
        f"{deep}: names paper {ids['sure']}, but the task was sent for paper {ids['deep']}",
    )
    assert reasons[3] == (
        "labels",
        f"{sure}: field 'labels': leaves the paper without labels; add the right ones",
    )
    assert reasons[4] == (
        "labels",
        f"{sure}: field 'labels': unknown label ids ['<script>']",
    )
    assert [_status(conn, ids[k])[0] for k in ("torn", "deep", "sure")] == [
        "answered",
        "sent",
        "sent",
    ]


def test_an_answer_never_replaces_another_curators_labels(sent):
    conn, ids = sent["conn"], sent["ids"]
    with conn, conn.cursor() as cur:  # a curator labelled it by import meanwhile
        cur.execute(
            "INSERT INTO paper_labels (paper_id, label_id, origin) VALUES (%s, 'move', 'curator')",
            (ids["torn"],),
        )
    report = collect(sent, [answer(sent, "torn", labels=["heat"])])
    assert report.curated == 0
    ((field, reason),) = _reasons(report)
    assert field == "reviewer" and "already has curator labels ['move'] from an import" in reason
    assert curator_labels(conn, ids["torn"]) == [("move", None)]
    assert _status(conn, ids["torn"])[0] == "sent"  # still open: it can be answered again


def test_answers_apply_in_one_transaction(sent):
    conn, ids = sent["conn"], sent["ids"]
    with conn, conn.cursor() as cur:  # the last write of a collect fails in the database
        cur.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
               CREATE TRIGGER refuse BEFORE UPDATE ON review_tasks
               FOR EACH ROW EXECUTE FUNCTION refuse()"""
        )
    with pytest.raises(psycopg2.Error, match="disk full"):
        collect(sent, [answer(sent, "torn", labels=["heat"]), answer(sent, "deep", "irrelevant")])
    assert curator_labels(conn, ids["torn"]) == []
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM papers WHERE irrelevant_at IS NOT NULL")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT count(*) FROM paper_reviews")
        assert cur.fetchone() == (0,)


def test_the_queue_page_counts_leave_irrelevant_papers_out(sent):
    from petal_labeller.store import uncertain
    from petal_labeller.store.reviews import review_counts

    collect(sent, [answer(sent, "deep", "irrelevant")])
    assert review_counts(sent["conn"], "v1").waiting == 2
    assert uncertain.review_counts(sent["conn"], "v1", 3).waiting == 2
    assert sent["ids"]["deep"] not in {
        c.paper_id for _, c in uncertain.most_uncertain_head(sent["conn"], "v1", 10)
    }


def _statuses(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT status FROM review_tasks")
        return [s for (s,) in cur.fetchall()]


def test_files_backend_collects_a_filled_in_queue_file(store, tmp_path):
    """The curators' copy of the queue file, as `petal review apply` reads it."""
    from petal_labeller.review.publish import collect_files, publish_files

    conn, ids = store["conn"], store["ids"]
    records = select_papers(conn, TREE, 2, "uncertain", neighbours=0)
    path = tmp_path / "batch.jsonl"
    publish_files(conn, records, path)
    answers = path.with_name("batch.answers.jsonl")
    filled = [{**r, "reviewer": "ana", "accept": True} for r in records]
    answers.write_text("".join(json.dumps(r) + "\n" for r in filled), encoding="utf-8")
    report = collect_files(conn, "batch.jsonl", answers, TREE)
    assert report.curated == 2 and report.answered == 2
    assert curator_labels(conn, ids["torn"]) == [("heat", "ana"), ("protect", "ana")]
    assert _statuses(conn) == ["answered"]
