"""Connections: the configured server, or an embedded PostgreSQL when none is configured."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions

from petal_labeller import config

log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or is misconfigured; the message is one line for users."""


def embedded_url(data_dir: Path | None = None) -> str:
    """Start (or reuse) the embedded server under PETAL_HOME and return its URL.

    pgserver runs a real PostgreSQL binary shipped in a wheel, so a laptop needs
    no system install; the server keeps running for later commands.
    """
    data_dir = data_dir or config.petal_home() / "pgdata"
    try:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir; on headless machines without
            # XDG_RUNTIME_DIR it warns and falls back to /tmp, which is fine for a lock file.
            warnings.simplefilter("ignore")
            import pgserver  # imported lazily: only the embedded path needs it

            data_dir.mkdir(parents=True, exist_ok=True)
            server = pgserver.get_server(str(data_dir), cleanup_mode=None)
            return server.get_uri()
    except Exception as exc:  # pgserver raises plain exceptions from initdb/pg_ctl
        raise DatabaseUnavailable(
            f"cannot start embedded PostgreSQL in {data_dir}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve_url(url: str | None = None) -> str:
    """The URL to use: explicit, then PETAL_DATABASE_URL, then the embedded server."""
    return url or config.database_url() or embedded_url()


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """Open a connection, turning every driver failure into one clear line."""
    target = resolve_url(url)
    try:
        return psycopg2.connect(target, connect_timeout=10)
    except psycopg2.Error as exc:
        message = f"cannot connect to {redact(target)}: {_first_line(exc)}"
        raise DatabaseUnavailable(message) from exc


@contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.connection]:
    """A connection whose work commits on success and rolls back on any error."""
    conn = connect(url)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
