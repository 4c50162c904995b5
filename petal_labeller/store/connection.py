"""Connections: the configured server, or an embedded PostgreSQL when none is configured."""

from __future__ import annotations

import getpass
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg2
import psycopg2.extensions

from petal_labeller import config

log = logging.getLogger(__name__)

#: What a password is replaced with wherever a connection string is shown.
SECRET_MASK = "***"


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
    conninfo(target)  # refuse a malformed string before libpq can echo parts of it
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


def conninfo(url: str) -> dict[str, str]:
    """The connection string's parameters, parsed by libpq itself (URL or key=value form).

    libpq's parser is the only one that agrees with libpq on every form it accepts
    (`postgresql:/db`, `?host=/socket`, `password=` as a query parameter, key=value
    strings), so building and redacting strings by hand would miss some of them.
    """
    try:
        return psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError as exc:
        # libpq quotes the offending piece of the string, which may be the password.
        reason = re.sub(r'"[^"]*"', '"..."', _first_line(exc))
        raise DatabaseUnavailable(f"invalid PostgreSQL connection string: {reason}") from exc


def with_options(url: str, **options: str | int | None) -> str:
    """The same connection with some parameters replaced (e.g. `dbname`, `password`).

    Returns libpq's key=value form; a None value removes the parameter.
    """
    params: dict[str, object] = {**conninfo(url), **options}
    return psycopg2.extensions.make_dsn(**{k: v for k, v in params.items() if v is not None})


def database_name(url: str) -> str:
    """The database a connection string names (libpq's default: the user name)."""
    params = conninfo(url)
    return params.get("dbname") or params.get("user") or getpass.getuser()


def redact(url: str) -> str:
    """The connection string with its password hidden, for messages and logs.

    Every form libpq accepts is parsed by libpq; an unparseable string is never
    echoed, since any part of it might be a secret.
    """
    try:
        params = conninfo(url)
    except DatabaseUnavailable:
        return "<invalid connection string>"
    if "password" not in params:
        return url
    if url.startswith(("postgresql://", "postgres://")):
        return _redacted_url(params)
    return psycopg2.extensions.make_dsn(**{**params, "password": SECRET_MASK})


def _redacted_url(params: dict[str, str]) -> str:
    """A URL rebuilt from parsed parameters, password masked, others percent-encoded."""
    user = quote(params.get("user", ""), safe="")
    host, port, query = params.get("host", ""), params.get("port", ""), {}
    if host.startswith("/") or "," in host + port:  # socket folders, host lists: in the query
        query.update({"host": host, "port": port})
        host = port = ""
    elif ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{user}:{SECRET_MASK}@{host}" + (f":{port}" if port else "")
    skip = {"user", "password", "host", "port", "dbname"}
    query = {k: v for k, v in query.items() if v}
    query.update({k: v for k, v in params.items() if k not in skip})
    suffix = f"?{urlencode(query, safe='/')}" if query else ""
    return f"postgresql://{netloc}/{quote(params.get('dbname', ''), safe='')}{suffix}"
