"""Connections: the configured server, or an embedded PostgreSQL when none is configured."""

from __future__ import annotations

import logging
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
    import pgserver  # imported lazily: only the embedded path needs it

    data_dir = data_dir or config.petal_home() / "pgdata"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode=None)
    return server.get_uri()


def resolve_url(url: str | None = None) -> str:
    """The URL to use: explicit, then PETAL_DATABASE_URL, then the embedded server."""
    return url or config.database_url() or embedded_url()


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """Open a connection, turning every driver failure into one clear line."""
    target = resolve_url(url)
    try:
        return psycopg2.connect(target, connect_timeout=10)
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot connect to {redact(target)}: {reason}") from exc


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
