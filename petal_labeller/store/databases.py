"""Databases on a server: throwaway ones the tests and benchmarks run in, and lasting ones.

One place that creates and drops them, so the connection string of the new
database is built by libpq's own parsing whatever form the server's has
(TCP URL, unix-socket URL of the embedded server, key=value).
"""

from __future__ import annotations

import uuid
from contextlib import closing

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from petal_labeller.store.connection import (
    DatabaseUnavailable,
    database_name,
    redact,
    with_options,
)


def create_database(server_url: str, prefix: str = "petal_scratch") -> str:
    """Create an empty database with a unique name; return its connection string."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_options(server_url, dbname=name)


def ensure_database(server_url: str, name: str) -> str:
    """The connection string of database `name` on the server, created if missing.

    For a database that outlives a run (Airflow's metadata on a laptop): a second
    call, or two at once, finds the one already there.
    """
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except psycopg2.errors.DuplicateDatabase:
                    pass  # created by a concurrent call since the check
                except psycopg2.errors.InsufficientPrivilege as exc:
                    raise DatabaseUnavailable(
                        f"cannot create database {name!r} on {redact(server_url)}: "
                        "permission denied (create it, or name one that exists)"
                    ) from exc
    return with_options(server_url, dbname=name)


def drop_database(server_url: str, url: str) -> None:
    """Drop the database `url` names, closing any session still on it."""
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database_name(url))
                )
            )
