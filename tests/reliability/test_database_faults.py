"""The database drops the writer's connection mid-write: tables end exactly before or after.

Real PostgreSQL; the fault is `pg_terminate_backend` from another session, the
same thing a server restart or a failover does to an open transaction.
"""

from __future__ import annotations

import random
import time
from contextlib import closing

import psycopg2
import pytest

from petal_labeller.pipeline.write import RunRecord, write_labels
from petal_labeller.store.connection import connect
from petal_labeller.store.papers import import_papers
from tests.reliability.conftest import (
    VERSION,
    Worker,
    backends,
    hold_label_lock,
    jsonl,
    query,
    seed_papers,
    snapshot,
    synthetic_output,
    taxonomy,
    terminate,
    wait_for,
)

#: Random kill trials per test; each is one write killed (or not) at a random moment.
TRIALS = 8


def _write(url: str, run_id: str, checked) -> object:
    return write_labels(
        RunRecord(run_id, VERSION, database_url=url), checked,
        papers_selected=len(checked.labelled),
    )  # fmt: skip


def test_connection_killed_while_the_write_is_open_leaves_the_tables_as_before(seeded_url):
    url = seeded_url
    seed_papers(url, 400)
    _write(url, "run-a", synthetic_output(url))
    before = snapshot(url)
    rescored = synthetic_output(url, labels_per_paper=3, salt=0.5)

    # Holding the writers' lock stops the writer after it has recorded its run,
    # COPYed every label into its temporary table and begun the merge.
    blocker = hold_label_lock(url, VERSION)
    try:
        worker = Worker(_write, url, "run-b", rescored)
        worker.start()
        waiting = wait_for(
            lambda: [pid for pid, _, wait, sql in backends(url, exclude={blocker.get_backend_pid()})
                     if wait == "Lock" and "pg_advisory_xact_lock" in sql]
        )  # fmt: skip
        assert terminate(url, waiting[0])
        worker.join(30)
    finally:
        blocker.close()

    assert isinstance(worker.error, psycopg2.OperationalError | psycopg2.InterfaceError)
    assert snapshot(url) == before

    # The retry (what Airflow does next) writes the whole run.
    _write(url, "run-b", rescored)
    after = snapshot(url)
    assert {(p, label) for p, label, *_ in after["paper_labels"]} == {
        (p, label) for p, label, _ in rescored.rows
    }
    assert ("run-b", VERSION, "success", 400, 400, len(rescored.rows), 0) in after["labelling_runs"]


def _core(state: dict) -> tuple:
    """What the labels say, independent of which run wrote them."""
    return (
        [(p, label, score) for p, label, _o, score, _v, _r in state["paper_labels"]],
        [(p, count) for p, _v, _r, count in state["paper_labelling"]],
    )


@pytest.mark.slow
def test_connections_killed_at_random_moments_never_leave_half_a_write(seeded_url):
    url = seeded_url
    seed_papers(url, 2500)
    outputs = [synthetic_output(url), synthetic_output(url, labels_per_paper=3, salt=0.5)]
    _write(url, "warm-up", outputs[0])  # the first write pays for caches and plans
    cores, seconds = [], []
    for i, checked in enumerate(outputs):
        started = time.monotonic()
        _write(url, f"clean-{i}", checked)
        seconds.append(time.monotonic() - started)
        cores.append(_core(snapshot(url)))
    clean_seconds = min(seconds)
    rng = random.Random(7)
    outcomes = {"killed": 0, "completed": 0}
    current = 1  # the database now holds outputs[1]

    # Every trial checks atomicity; trials go on (within a bound) until enough of them
    # were real kills, since on a loaded machine a write may outrun the random moment.
    for trial in range(3 * TRIALS):
        if trial >= TRIALS and outcomes["killed"] >= TRIALS // 2:
            break
        target = 1 - current
        run_id = f"trial-{trial}"
        worker = Worker(_write, url, run_id, outputs[target])
        worker.start()
        time.sleep(rng.uniform(0, clean_seconds))
        while worker.is_alive():
            victims = [pid for pid, *_ in backends(url)]
            if victims and any(terminate(url, pid) for pid in victims):
                break
            time.sleep(0.005)
        worker.join(60)
        state = snapshot(url)
        runs = {row[0]: row for row in state["labelling_runs"]}
        if worker.error is None:
            outcomes["completed"] += 1
            assert _core(state) == cores[target], f"trial {trial}: completed write is partial"
            assert runs[run_id][2] == "success"
            current = target
        else:
            outcomes["killed"] += 1
            assert isinstance(worker.error, psycopg2.Error), repr(worker.error)
            assert _core(state) == cores[current], f"trial {trial}: killed write left changes"
            assert run_id not in runs, f"trial {trial}: killed run left a run row"

    print(f"db-kill trials: {outcomes}, clean write {clean_seconds:.2f} s")
    assert outcomes["killed"] >= TRIALS // 2, outcomes


@pytest.mark.slow
def test_connection_killed_during_an_import_leaves_no_paper_behind(seeded_url, tmp_path):
    url = seeded_url
    records = [
        {"doi": f"10.7777/imp.{n}", "title": f"Imported paper {n}", "abstract": "Text " * 40}
        for n in range(6000)
    ]
    path = jsonl(tmp_path / "papers.jsonl", records)
    before = snapshot(url)
    rng = random.Random(11)
    killed = 0

    def run_import():
        conn = connect(url)
        try:
            return import_papers(conn, path, taxonomy())
        finally:
            conn.close()

    imported = "SELECT count(*) FROM papers WHERE doi LIKE '10.7777/%'"
    # On a quiet machine the import may outrun the random moment: a completed import must
    # be whole; it is then removed and the next trial kills sooner, until two were killed.
    for trial in range(10):
        worker = Worker(run_import)
        worker.start()
        time.sleep(rng.uniform(0, 0.3) / (1 + trial))
        while worker.is_alive():
            victims = [pid for pid, *_ in backends(url)]
            if victims and any(terminate(url, pid) for pid in victims):
                break
            time.sleep(0.005)
        worker.join(60)
        count = query(url, imported)[0][0]
        if worker.error is None:
            assert count == 6000, f"trial {trial}: a completed import is partial"
            with closing(connect(url)) as conn, conn, conn.cursor() as cur:
                cur.execute("DELETE FROM papers WHERE doi LIKE '10.7777/%'")
        else:
            killed += 1
        assert snapshot(url) == before, f"trial {trial}"
        if killed >= 2:
            break
    assert killed, "no import was interrupted"
    report = run_import()
    assert report.imported == 6000 and not report.rejections
    assert query(url, imported) == [(6000,)]
