"""Papers out with curators on a review backend (0014), and papers called not relevant.

API:
- `record_tasks(conn, backend, batch, tasks, *, commit=True) -> int`: (external id,
  paper_id, model_version) for each task sent; a paper with an open task elsewhere
  is a StoreError naming it (never sent twice).
- `open_tasks(conn, backend, batch) -> dict[str, OpenTask]`: external id -> the task,
  for the tasks of the batch still waiting for an answer.
- `close_tasks(conn, backend, batch, closed, *, commit=True)`: (external id, status,
  who, when) for each answered task; only open tasks change.
- `mark_irrelevant(conn, marks, *, commit=True) -> int`: (paper_id, who, when): the
  paper is never labelled nor queued again; a paper already marked keeps its first mark.
- `expire_tasks(conn, backend, batch, external_ids=None, *, commit=True) -> list[str]`:
  the batch's open tasks (or those named) closed unanswered: the papers can be sent again.
- `open_batches(conn, backend) -> list[str]`: the batches with a task still open, oldest first.
- `batch_counts(conn, backend, batch) -> dict[str, int]`: tasks by status;
  `batch_tasks(conn, backend, batch) -> dict[str, int]`: external id -> paper_id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg2
import psycopg2.extensions
from psycopg2.extras import execute_values

from petal_labeller.store.unit import StoreError, one_line, write_unit

BACKENDS = ("label_studio", "ground_truth", "files")
CLOSED = ("answered", "not_sure", "irrelevant")


@dataclass(frozen=True)
class OpenTask:
    external_id: str
    paper_id: int
    model_version: str | None
    sent_at: datetime


def record_tasks(
    conn: psycopg2.extensions.connection,
    backend: str,
    batch: str,
    tasks: Iterable[tuple[str, int, str | None]],
    *,
    commit: bool = True,
) -> int:
    rows = [(backend, batch, external, paper, version) for external, paper, version in tasks]
    try:
        with write_unit(conn, commit), conn.cursor() as cur:
            execute_values(
                cur,
                """INSERT INTO review_tasks (backend, batch, external_id, paper_id, model_version)
                   VALUES %s""",
                rows,
            )
    except psycopg2.IntegrityError as exc:
        raise StoreError(f"review tasks not recorded: {one_line(exc)}") from exc
    return len(rows)


def open_tasks(
    conn: psycopg2.extensions.connection, backend: str, batch: str
) -> dict[str, OpenTask]:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT external_id, paper_id, model_version, sent_at FROM review_tasks
               WHERE backend = %s AND batch = %s AND status = 'sent'""",
            (backend, batch),
        )
        return {row[0]: OpenTask(*row) for row in cur.fetchall()}


def close_tasks(
    conn: psycopg2.extensions.connection,
    backend: str,
    batch: str,
    closed: Iterable[tuple[str, str, str, datetime]],
    *,
    commit: bool = True,
) -> int:
    rows = [(backend, batch, external, status, who, when) for external, status, who, when in closed]
    if any(row[3] not in CLOSED for row in rows):
        raise ValueError(f"a closed task's status is one of {CLOSED}")
    with write_unit(conn, commit), conn.cursor() as cur:
        execute_values(
            cur,
            """UPDATE review_tasks t SET status = v.status, answered_by = v.who,
                      answered_at = v.at::timestamptz
               FROM (VALUES %s) AS v (backend, batch, external_id, status, who, at)
               WHERE t.backend = v.backend AND t.batch = v.batch
                 AND t.external_id = v.external_id AND t.status = 'sent'""",
            rows,
        )
        return cur.rowcount


def expire_tasks(
    conn: psycopg2.extensions.connection,
    backend: str,
    batch: str,
    external_ids: Sequence[str] | None = None,
    *,
    commit: bool = True,
) -> list[str]:
    """Close the batch's open tasks (or those of `external_ids`) unanswered; their ids."""
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute(
            """UPDATE review_tasks SET status = 'expired'
               WHERE backend = %s AND batch = %s AND status = 'sent'
                 AND (%s::text[] IS NULL OR external_id = ANY(%s::text[]))
               RETURNING external_id""",
            (backend, batch, external_ids, external_ids),
        )
        return sorted(row[0] for row in cur.fetchall())


def mark_irrelevant(
    conn: psycopg2.extensions.connection,
    marks: Iterable[tuple[int, str, datetime]],
    *,
    commit: bool = True,
) -> int:
    rows = list(marks)
    if not rows:
        return 0
    with write_unit(conn, commit), conn.cursor() as cur:
        execute_values(
            cur,
            """UPDATE papers p SET irrelevant_by = v.who, irrelevant_at = v.at::timestamptz
               FROM (VALUES %s) AS v (id, who, at)
               WHERE p.id = v.id AND p.irrelevant_at IS NULL""",
            rows,
        )
        return cur.rowcount


def open_batches(conn: psycopg2.extensions.connection, backend: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT batch FROM review_tasks WHERE backend = %s AND status = 'sent'
               GROUP BY batch ORDER BY min(sent_at), batch""",
            (backend,),
        )
        return [row[0] for row in cur.fetchall()]


def batch_counts(conn: psycopg2.extensions.connection, backend: str, batch: str) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT status, count(*) FROM review_tasks WHERE backend = %s AND batch = %s
               GROUP BY status""",
            (backend, batch),
        )
        return dict(cur.fetchall())


def batch_tasks(conn: psycopg2.extensions.connection, backend: str, batch: str) -> dict[str, int]:
    """external id -> paper_id of every task the batch sent, open or closed."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT external_id, paper_id FROM review_tasks WHERE backend = %s AND batch = %s",
            (backend, batch),
        )
        return dict(cur.fetchall())
