"""Throwaway databases on a server: what the tests and benchmarks run in, one per run.

One place that creates and drops them, so the connection string of the new
database is built by libpq's own parsing whatever form the server's has
(TCP URL, unix-socket URL of the embedded server, key=value).
"""

from __future__ import annotations

import uuid
from contextlib import closing

import psycopg2
from psycopg2 import sql

from petal_labeller.store.connection import database_name, with_options


def create_database(server_url: str, prefix: str = "petal_scratch") -> str:
    """Create an empty database with a unique name; return its connection string."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
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
