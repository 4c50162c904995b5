"""Issue 24 item 2: concurrent applies deciding the same paper are serialized per paper, so
a paper's curator labels always equal its review row's labels, whatever the interleaving.

Real concurrent sessions on the real PostgreSQL: one apply holds its transaction open
while the other starts, and rounds of two applies released together by a barrier.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg2

from petal_labeller.store.reviews import ApplyReport, ReviewDecision, apply_reviews

LOCK_WAIT_SECONDS = 10


def _decision(paper_id: int, reviewer: str, labels: tuple[str, ...]) -> ReviewDecision:
    added = tuple(label for label in labels if label in ("cold", "swim", "move"))
    return ReviewDecision(paper_id, reviewer, datetime.now(UTC), "v1", not added, (), added, labels)


def _state(conn, paper_id: int) -> tuple[set[str], tuple[str, set[str]] | None]:
    """(curator labels, (reviewer, review labels) or None), read in a fresh snapshot."""
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT label_id FROM paper_labels WHERE paper_id = %s AND origin = 'curator'",
            (paper_id,),
        )
        labels = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT reviewer, labels FROM paper_reviews WHERE paper_id = %s", (paper_id,))
        row = cur.fetchone()
    return labels, (row[0], set(row[1])) if row else None


def _waiting_on_a_lock(conn, pid: int) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = cur.fetchone()
    conn.rollback()
    return bool(row) and row[0] == "Lock"


def _in_thread(url: str, decisions: list[ReviewDecision], results: dict, key: str):
    """Apply on a connection of its own in a thread; the report (or error) lands in results."""
    conn = psycopg2.connect(url)
    results[f"{key}_pid"] = conn.get_backend_pid()

    def run() -> None:
        try:
            results[key] = apply_reviews(conn, decisions, key)
        except Exception as exc:  # reported to the test, which fails on it
            results[key] = exc
        finally:
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _held_then_raced(store, migrated_database_url, first, second) -> tuple[ApplyReport, dict]:
    """`first` applied and left open on one session; `second` started on another, then
    `first` commits. Returns the first report and the second's results."""
    holder = psycopg2.connect(migrated_database_url)
    watcher = psycopg2.connect(migrated_database_url)
    try:
        report = apply_reviews(holder, first, "first", commit=False)
        results: dict = {}
        thread = _in_thread(migrated_database_url, second, results, "second")
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while thread.is_alive() and not _waiting_on_a_lock(watcher, results["second_pid"]):
            assert time.monotonic() < deadline, "the second apply neither waited nor finished"
            time.sleep(0.02)
        holder.commit()
        thread.join(LOCK_WAIT_SECONDS)
        assert not thread.is_alive()
        return report, results
    finally:
        holder.close()
        watcher.close()


def test_a_conflicting_apply_waits_for_the_first_and_is_refused_naming_it(
    store, migrated_database_url
):
    conn, torn = store["conn"], store["ids"]["torn"]
    ana = [_decision(torn, "ana", ("protect", "heat"))]
    bo = [_decision(torn, "bo", ("protect", "cold"))]
    report, results = _held_then_raced(store, migrated_database_url, ana, bo)
    assert report.applied == 1
    second = results["second"]
    assert isinstance(second, ApplyReport), second
    assert second.applied == 0 and [r.paper_id for r in second.refused] == [torn]
    assert "decided by ana" in second.refused[0].reason
    assert _state(conn, torn) == ({"protect", "heat"}, ("ana", {"protect", "heat"}))


def test_the_same_reviewers_two_applies_end_as_the_last_one_everywhere(
    store, migrated_database_url
):
    conn, torn = store["conn"], store["ids"]["torn"]
    first = [_decision(torn, "ana", ("protect", "heat"))]
    last = [_decision(torn, "ana", ("protect", "cold"))]
    _, results = _held_then_raced(store, migrated_database_url, first, last)
    assert results["second"].applied == 1
    assert _state(conn, torn) == ({"protect", "cold"}, ("ana", {"protect", "cold"}))
    # Re-applying either is what it says: the last is already so, the first changes it back.
    assert apply_reviews(conn, last, "again").unchanged == 1
    assert apply_reviews(conn, first, "again").applied == 1
    assert _state(conn, torn) == ({"protect", "heat"}, ("ana", {"protect", "heat"}))


def _race(url: str, runs: dict[str, list[ReviewDecision]]) -> dict:
    """Each reviewer's decisions applied on its own session, all released by one barrier."""
    barrier = threading.Barrier(len(runs))
    results: dict = {}

    def run(who: str, decisions: list[ReviewDecision]) -> None:
        local = psycopg2.connect(url)
        try:
            barrier.wait(LOCK_WAIT_SECONDS)
            results[who] = apply_reviews(local, decisions, who)
        except Exception as exc:  # reported to the test, which fails on it
            results[who] = exc
        finally:
            local.close()

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOCK_WAIT_SECONDS * 3)
    return results


def test_applies_released_together_keep_labels_and_reviews_in_agreement(
    store, migrated_database_url
):
    """Rounds of two applies over all three queued papers, in opposite orders, at once."""
    conn, ids = store["conn"], store["ids"]
    papers = [ids["torn"], ids["deep"], ids["sure"]]
    choices = {"ana": ("protect", "heat"), "bo": ("move", "swim")}
    for round_number in range(6):
        with conn.cursor() as cur:  # a fresh start each round
            cur.execute("DELETE FROM paper_reviews")
            cur.execute("DELETE FROM paper_labels WHERE origin = 'curator' AND paper_id = ANY(%s)",
                        (papers,))  # fmt: skip
        conn.commit()
        runs = {
            "ana": [_decision(p, "ana", choices["ana"]) for p in papers],
            "bo": [_decision(p, "bo", choices["bo"]) for p in papers[::-1]],
        }
        results = _race(migrated_database_url, runs)
        assert all(isinstance(r, ApplyReport) for r in results.values()), results
        # Each paper went to exactly one of them; the other was refused naming the winner.
        assert sum(r.applied for r in results.values()) == len(papers), round_number
        assert sum(len(r.refused) for r in results.values()) == len(papers), round_number
        for paper in papers:
            labels, review = _state(conn, paper)
            assert review is not None and labels == review[1] == set(choices[review[0]])
