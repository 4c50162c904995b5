"""Labelling runs: one row per labelling of a data interval, with its counts and outcome.

API:
- `start_run(conn, run_id, model_version, *, interval_start=None, interval_end=None,
  airflow_run_id=None, started_at=None, commit=True) -> LabellingRun`: status
  `running`, started at `started_at` (default now). Starting the same `run_id`
  again (a retried task) resets it instead of failing.
- `finish_run(conn, run_id, status="success", *, papers_selected=None,
  papers_labelled=None, labels_written=None, papers_rejected=None, papers_changed=None,
  error=None, commit=True) -> LabellingRun`: status `success` or `failed`, finished at the
  wall-clock time of the call (not the transaction's start).
- `fail_run(conn, run_id, model_version, error, *, ...) -> bool`: record a run that
  wrote no labels, unless it already ended (success, or failed with its first error).
- `get_run(conn, run_id)`, `list_runs(conn, limit=20, offset=0)` (newest first),
  `count_runs(conn)`.
- `redact_error(text)`: an error message fit to store and show: secrets masked, bounded.
- `mark_alert(conn, run_id, sent, error=None) -> bool`: record whether the run's failure
  alert went out ('sent') or not ('failed', with the notifier's redacted reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg2.extensions

from petal_labeller.store.unit import StoreError, write_unit

STATUSES = ("running", "success", "failed")
#: Stored error text is cut to this many characters.
MAX_ERROR_CHARS = 2000
_KEY_CHAR = r"(?:[\w-]|%[0-9a-f]{2})"


def _spelled(word: str) -> str:
    """A pattern for `word` with any of its letters percent-encoded, in either case."""
    return "".join(
        f"(?:{re.escape(ch)}|%{ord(ch.lower()):02x}|%{ord(ch.upper()):02x})" for ch in word
    )


_SECRET_WORDS = "|".join(
    _spelled(word) for word in ("password", "passwd", "secret", "token", "apikey", "api_key",
                                "api-key", "credential")
)  # fmt: skip
_SECRET_PATTERNS = (
    # user:password@ in any URL (database, broker, SMTP).
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s]*@"), r"\g<keep>***@"),
    # key=value and key: value pairs whose key names a secret, the key maybe
    # percent-encoded (libpq decodes `ssl%70assword`), the value maybe quoted.
    (
        re.compile(
            rf"(?P<keep>(?<![\w%-]){_KEY_CHAR}*(?:{_SECRET_WORDS}){_KEY_CHAR}*['\"]?\s*[=:]\s*)"
            r"(?:'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s'\",;&]+)",
            re.IGNORECASE,
        ),
        r"\g<keep>***",
    ),
    # AWS access key ids.
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "***"),
)
_COLUMNS = (
    "run_id, airflow_run_id, model_version, interval_start, interval_end, status, "
    "papers_selected, papers_labelled, labels_written, papers_rejected, error, "
    "started_at, finished_at, dry_run, labels_proposed, alert_status, alert_error, "
    "papers_changed"
)


@dataclass(frozen=True)
class LabellingRun:
    run_id: str
    airflow_run_id: str | None
    model_version: str | None
    interval_start: datetime | None
    interval_end: datetime | None
    status: str
    papers_selected: int | None
    papers_labelled: int | None
    labels_written: int | None
    papers_rejected: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    dry_run: bool = False
    labels_proposed: int | None = None  # what a dry run would have written
    alert_status: str | None = None  # 'sent' / 'failed' once a failure alert was due
    alert_error: str | None = None
    #: Papers whose labels this run changed (new ones included); None before migration 0011.
    papers_changed: int | None = None


def _get(cur, run_id: str) -> LabellingRun | None:
    cur.execute(f"SELECT {_COLUMNS} FROM labelling_runs WHERE run_id = %s", (run_id,))
    row = cur.fetchone()
    return LabellingRun(*row) if row else None


def start_run(
    conn: psycopg2.extensions.connection,
    run_id: str,
    model_version: str,
    *,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    airflow_run_id: str | None = None,
    started_at: datetime | None = None,
    dry_run: bool = False,
    commit: bool = True,
) -> LabellingRun:
    """Record that labelling began (or began again) for `run_id`; a dry run is marked so."""
    with write_unit(conn, commit), conn.cursor() as cur:
        _check_model(cur, run_id, model_version)
        cur.execute(
            """INSERT INTO labelling_runs (run_id, airflow_run_id, model_version,
                   interval_start, interval_end, started_at, dry_run)
               VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()), %s)
               ON CONFLICT (run_id) DO UPDATE SET airflow_run_id = EXCLUDED.airflow_run_id,
                   model_version = EXCLUDED.model_version,
                   interval_start = EXCLUDED.interval_start, interval_end = EXCLUDED.interval_end,
                   status = 'running', papers_selected = NULL, papers_labelled = NULL,
                   labels_written = NULL, papers_rejected = NULL, error = NULL,
                   labels_proposed = NULL, papers_changed = NULL, dry_run = EXCLUDED.dry_run,
                   started_at = EXCLUDED.started_at, finished_at = NULL""",
            (
                run_id,
                airflow_run_id,
                model_version,
                interval_start,
                interval_end,
                started_at,
                dry_run,
            ),
        )
        return _get(cur, run_id)  # type: ignore[return-value]


def _check_model(cur, run_id: str, model_version: str | None) -> None:
    if model_version is None:
        return
    cur.execute("SELECT 1 FROM model_versions WHERE version = %s", (model_version,))
    if cur.fetchone() is None:
        raise StoreError(f"run {run_id!r}: model version {model_version!r} is not registered")


def finish_run(
    conn: psycopg2.extensions.connection,
    run_id: str,
    status: str = "success",
    *,
    papers_selected: int | None = None,
    papers_labelled: int | None = None,
    labels_written: int | None = None,
    papers_rejected: int | None = None,
    labels_proposed: int | None = None,
    papers_changed: int | None = None,
    error: str | None = None,
    commit: bool = True,
) -> LabellingRun:
    """Record the outcome and counts of a run; counts left as None keep their stored value.

    `labels_proposed` is what a dry run would have written (it writes none);
    `papers_changed` how many papers got labels different from those they had.

    `finished_at` is `clock_timestamp()`: `now()` is the transaction's start, which
    for a run started in the same transaction would equal `started_at`.
    """
    if status not in ("success", "failed"):
        raise StoreError(
            f"run {run_id!r}: field 'status' must be success or failed, not {status!r}"
        )
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute(
            """UPDATE labelling_runs SET status = %s, error = %s, finished_at = clock_timestamp(),
                   papers_selected = coalesce(%s, papers_selected),
                   papers_labelled = coalesce(%s, papers_labelled),
                   labels_written = coalesce(%s, labels_written),
                   papers_rejected = coalesce(%s, papers_rejected),
                   labels_proposed = coalesce(%s, labels_proposed),
                   papers_changed = coalesce(%s, papers_changed)
               WHERE run_id = %s""",
            (
                status,
                redact_error(error) if error else None,
                papers_selected,
                papers_labelled,
                labels_written,
                papers_rejected,
                labels_proposed,
                papers_changed,
                run_id,
            ),
        )
        if cur.rowcount == 0:
            raise StoreError(f"run {run_id!r} was never started")
        return _get(cur, run_id)  # type: ignore[return-value]


def fail_run(
    conn: psycopg2.extensions.connection,
    run_id: str,
    model_version: str | None,
    error: str,
    *,
    interval_start: datetime | None = None,
    interval_end: datetime | None = None,
    airflow_run_id: str | None = None,
    started_at: datetime | None = None,
    commit: bool = True,
) -> bool:
    """Record a run that wrote no labels; False if it had already ended.

    A run that succeeded stays a success, and a run already recorded as failed
    keeps its first error (the task that failed knows more than the cleanup
    that notices it later). `model_version` may be None when the run failed
    before it could resolve one.
    """
    with write_unit(conn, commit), conn.cursor() as cur:
        _check_model(cur, run_id, model_version)
        cur.execute(
            """INSERT INTO labelling_runs (run_id, airflow_run_id, model_version,
                   interval_start, interval_end, status, error, started_at, finished_at)
               VALUES (%s, %s, %s, %s, %s, 'failed', %s, coalesce(%s, now()), clock_timestamp())
               ON CONFLICT (run_id) DO UPDATE SET status = 'failed', error = EXCLUDED.error,
                   finished_at = EXCLUDED.finished_at,
                   model_version = coalesce(EXCLUDED.model_version, labelling_runs.model_version)
               WHERE labelling_runs.status = 'running'""",
            (
                run_id,
                airflow_run_id,
                model_version,
                interval_start,
                interval_end,
                redact_error(error),
                started_at,
            ),
        )
        return cur.rowcount == 1


def redact_error(text: str) -> str:
    """The error with passwords, tokens and AWS key ids masked, on at most MAX_ERROR_CHARS."""
    text = text[: 4 * MAX_ERROR_CHARS]  # what is kept, with room: the patterns are not linear
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def get_run(conn: psycopg2.extensions.connection, run_id: str) -> LabellingRun | None:
    with conn.cursor() as cur:
        return _get(cur, run_id)


def list_runs(
    conn: psycopg2.extensions.connection, limit: int = 20, offset: int = 0
) -> list[LabellingRun]:
    """Newest first; `offset` pages through older runs."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM labelling_runs ORDER BY started_at DESC, run_id "
            "LIMIT %s OFFSET %s",
            (limit, offset),
        )
        return [LabellingRun(*row) for row in cur.fetchall()]


def count_runs(conn: psycopg2.extensions.connection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM labelling_runs")
        return cur.fetchone()[0]


def mark_alert(
    conn: psycopg2.extensions.connection,
    run_id: str,
    sent: bool,
    error: str | None = None,
    *,
    commit: bool = True,
) -> bool:
    """Record the fate of the run's failure alert; False if the run has no row.

    A lost alert must be visible where the failure is (the PeTaL page), not only
    in a log line nobody reads.
    """
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute(
            "UPDATE labelling_runs SET alert_status = %s, alert_error = %s WHERE run_id = %s",
            ("sent" if sent else "failed", redact_error(error) if error else None, run_id),
        )
        return cur.rowcount == 1
