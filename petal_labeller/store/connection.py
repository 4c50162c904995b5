"""Connections: the configured server, or an embedded PostgreSQL when none is configured."""

from __future__ import annotations

import getpass
import logging
import os
import re
import subprocess
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
#: libpq keys holding secrets: password, sslpassword, and any later one so named
#: (PostgreSQL 18's oauth_client_secret among them).
_SECRET_KEY = re.compile(r"password|secret", re.IGNORECASE)


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


def stop_embedded(data_dir: Path | None = None) -> bool:
    """Stop the embedded server (fast shutdown: sessions are closed); False if it was not running.

    pgserver leaves the server running for later commands, so a laptop needs a way to stop
    it; `pg_ctl` from pgserver's own binaries is the one that matches its data folder.
    """
    data_dir = data_dir or config.petal_home() / "pgdata"
    if not (data_dir / "postmaster.pid").is_file():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the XDG_RUNTIME_DIR warning, as in embedded_url
        from pgserver._commands import POSTGRES_BIN_PATH

    stop = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"]
    # pg_ctl refuses root; pgserver then runs the server as the data folder's owner.
    owner = data_dir.stat().st_uid if os.geteuid() == 0 else None
    result = subprocess.run(stop, capture_output=True, text=True, timeout=120, user=owner)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise DatabaseUnavailable(
            f"cannot stop embedded PostgreSQL in {data_dir}: {reason[0] if reason else '?'}"
        )
    return True


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
        reason = _without_secrets(_first_line(exc), target)
        raise DatabaseUnavailable(f"cannot connect to {redact(target)}: {reason}") from exc


def secret_keys(params: dict[str, str]) -> list[str]:
    """The parameters of a parsed connection string whose values are secrets."""
    return [key for key in params if _SECRET_KEY.search(key)]


def _without_secrets(text: str, url: str) -> str:
    """`text` with every secret value of the connection string masked, should libpq echo one."""
    params = conninfo(url)
    for value in sorted((params[k] for k in secret_keys(params)), key=len, reverse=True):
        if value:
            text = text.replace(value, SECRET_MASK)
    return text


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


def sqlalchemy_url(url: str, hide_password: bool = False) -> str:
    """SQLAlchemy's URL (psycopg2 driver) for a libpq connection string, e.g. Airflow's metadata.

    A unix-socket folder (the embedded server's) cannot be a URL's host, so it goes in
    the query, where psycopg2 hands it back to libpq. The password is kept unless
    `hide_password` (for messages: it is then masked).
    """
    from sqlalchemy.engine import URL

    params = conninfo(url)
    host = params.get("host")
    socket = bool(host and host.startswith("/"))
    return URL.create(
        "postgresql+psycopg2",
        username=params.get("user"),
        password=params.get("password") or None,
        host=None if socket else host,
        port=None if socket else int(params.get("port", 5432)),
        database=database_name(url),
        query={"host": host, "port": params.get("port", "5432")} if socket else {},
    ).render_as_string(hide_password=hide_password)


def database_name(url: str) -> str:
    """The database a connection string names (libpq's default: the user name)."""
    params = conninfo(url)
    return params.get("dbname") or params.get("user") or getpass.getuser()


def redact(url: str) -> str:
    """The connection string with every secret (password, sslpassword, ...) hidden.

    Every form libpq accepts is parsed by libpq, so percent-encoded keys and quoted
    values are seen as libpq sees them; an unparseable string is never echoed,
    since any part of it might be a secret.
    """
    try:
        params = conninfo(url)
    except DatabaseUnavailable:
        return "<invalid connection string>"
    secrets = secret_keys(params)
    if not secrets:
        return url
    masked = {**params, **dict.fromkeys(secrets, SECRET_MASK)}
    if url.startswith(("postgresql://", "postgres://")):
        return _redacted_url(masked)
    return psycopg2.extensions.make_dsn(**masked)


def _redacted_url(params: dict[str, str]) -> str:
    """A URL rebuilt from parsed, already masked parameters, percent-encoded."""
    user = quote(params.get("user", ""), safe="")
    host, port, query = params.get("host", ""), params.get("port", ""), {}
    if host.startswith("/") or "," in host + port:  # socket folders, host lists: in the query
        query.update({"host": host, "port": port})
        host = port = ""
    elif ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = f"{user}:{SECRET_MASK}@" if "password" in params else (f"{user}@" if user else "")
    netloc = userinfo + host + (f":{port}" if port else "")
    skip = {"user", "password", "host", "port", "dbname"}
    query = {k: v for k, v in query.items() if v}
    query.update({k: v for k, v in params.items() if k not in skip})
    suffix = f"?{urlencode(query, safe='/*')}" if query else ""
    return f"postgresql://{netloc}/{quote(params.get('dbname', ''), safe='')}{suffix}"
