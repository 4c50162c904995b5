"""Helpers for the fault-injection tests: a seeded PeTaL database and exact table snapshots.

A snapshot leaves out the clocks (`labelled_at`, `started_at`, ...), so "the
database is exactly as before" compares what a run can change, row for row.
"""

from __future__ import annotations

import functools
import threading
import time
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.pipeline.validate import CheckedOutput
from petal_labeller.store.connection import connect, database_name
from petal_labeller.taxonomy import Taxonomy

VERSION = "v-fault"
INGEST_DAY = "2026-11-02 12:00:00+00"
SINCE, UNTIL = "2026-11-02T00:00:00+00:00", "2026-11-03T00:00:00+00:00"

SNAPSHOT_QUERIES = {
    "papers": "SELECT id, doi, title, abstract, venue, url, source FROM papers ORDER BY id",
    "paper_labels": (
        "SELECT paper_id, label_id, origin, score, model_version, run_id FROM paper_labels "
        "ORDER BY paper_id, label_id, origin, model_version"
    ),
    "paper_labelling": (
        "SELECT paper_id, model_version, run_id, label_count FROM paper_labelling "
        "ORDER BY paper_id, model_version"
    ),
    "labelling_runs": (
        "SELECT run_id, model_version, status, papers_selected, papers_labelled, "
        "labels_written, papers_rejected FROM labelling_runs ORDER BY run_id"
    ),
}


@functools.cache
def taxonomy() -> Taxonomy:
    return Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json")


def query(url: str, sql: str, params: tuple | None = None) -> list[tuple]:
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row a labelling run or an import may touch, without timestamps."""
    with closing(connect(url)) as conn, conn.cursor() as cur:
        result = {}
        for table, sql in SNAPSHOT_QUERIES.items():
            cur.execute(sql)
            result[table] = cur.fetchall()
        return result


def seed_papers(url: str, count: int, *, ingested_at: str = INGEST_DAY, start: int = 0) -> None:
    """`count` synthetic papers ingested at one moment (generated server-side: fast)."""
    with closing(connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO papers (doi, title, abstract, venue, source, ingested_at)
               SELECT '10.5555/seed.' || n, 'Seeded paper ' || n,
                      'How organism ' || n || ' moves, senses and protects itself.',
                      ARRAY['Journal of Tests'], 'test:seed', %s
               FROM generate_series(%s, %s) AS n""",
            (ingested_at, start, start + count - 1),
        )


def synthetic_output(url: str, labels_per_paper: int = 4, salt: float = 0.0) -> CheckedOutput:
    """Checked inference output for every paper: deterministic labels and scores in [0, 1]."""
    ids = taxonomy().ids
    paper_ids = [row[0] for row in query(url, "SELECT id FROM papers ORDER BY id")]
    checked = CheckedOutput()
    for paper_id in paper_ids:
        for k in range(labels_per_paper):
            label = ids[(paper_id * 7 + k * 13) % len(ids)]
            score = round(((paper_id * 31 + k * 17) % 97) / 97 * (1 - salt) + salt / 2, 6)
            checked.rows.append((paper_id, label, score))
        checked.labelled.append(paper_id)
    # One label per (paper, label): the model never repeats a label for a paper.
    checked.rows = list({(p, label): (p, label, s) for p, label, s in checked.rows}.values())
    return checked


@pytest.fixture
def seeded_url(migrated_database_url: str) -> str:
    """A migrated database with the full PeTaL taxonomy and a registered production model."""
    from petal_labeller.store.models import register_model_version
    from petal_labeller.store.taxonomy import load_taxonomy

    with closing(connect(migrated_database_url)) as conn:
        load_taxonomy(conn, taxonomy())
        register_model_version(
            conn, VERSION, base_model="test", artefact_uri="/nonexistent", promote=True
        )
    return migrated_database_url


def backends(url: str, *, exclude: set[int] = frozenset()) -> list[tuple]:
    """(pid, state, wait_event_type, query) of the other sessions on this test's database."""
    dbname = database_name(url)
    return [
        row
        for row in query(
            url,
            """SELECT pid, state, wait_event_type, query FROM pg_stat_activity
               WHERE datname = %s AND pid <> pg_backend_pid()""",
            (dbname,),
        )
        if row[0] not in exclude
    ]


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.02):
    """Poll until `predicate()` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def terminate(url: str, pid: int) -> bool:
    return query(url, "SELECT pg_terminate_backend(%s)", (pid,))[0][0]


class Worker(threading.Thread):
    """Runs a function in a thread and keeps its result or exception for the test."""

    def __init__(self, target, *args, **kwargs):
        super().__init__(daemon=True)
        self._call = (target, args, kwargs)
        self.result = None
        self.error: BaseException | None = None

    def run(self) -> None:
        target, args, kwargs = self._call
        try:
            self.result = target(*args, **kwargs)
        except BaseException as exc:
            self.error = exc


def advisory_key(version: str) -> str:
    """The lock upsert_model_labels takes per model version (see store.labels)."""
    return f"petal-labels:{version}"


def hold_label_lock(url: str, version: str) -> psycopg2.extensions.connection:
    """A session holding the label writers' advisory lock, so a writer blocks mid-transaction."""
    conn = connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (advisory_key(version),))
    return conn


def jsonl(path: Path, records: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path
