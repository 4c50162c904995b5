"""Versioned SQL migrations: `NNNN_name.sql` files in this folder, applied in order.

`upgrade(conn)` applies the files not yet recorded in `schema_migrations`, all in
one transaction under an advisory lock, so two processes upgrading at once
apply each file once and a failing file leaves the schema as it was. A file
that was applied and later edited is refused (its checksum no longer matches).
Plain SQL files instead of Alembic: the schema is small, and SQL is what a
reviewer of the store wants to read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import psycopg2.extensions

#: Advisory lock key for schema changes ("petal" as an integer), shared by every upgrader.
LOCK_KEY = 0x706574616C


class MigrationError(RuntimeError):
    """The schema in the database does not match the migration files."""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    folder = resources.files(__package__)
    files = sorted(
        entry
        for entry in folder.iterdir()
        if entry.name.endswith(".sql") and entry.name[:4].isdigit()
    )
    return [
        Migration(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in files
    ]


def applied(conn: psycopg2.extensions.connection) -> dict[str, str]:
    """Version -> checksum of the migrations recorded in the database ({} before the first)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        cur.execute("SELECT version, checksum FROM schema_migrations")
        return dict(cur.fetchall())


def upgrade(conn: psycopg2.extensions.connection, until: str | None = None) -> list[str]:
    """Apply pending migrations in one transaction and commit; return the versions applied.

    Running it again applies nothing and returns []. `until` (a version, e.g.
    "0004") stops after that one: for tests and benchmarks of an earlier schema.
    """
    with conn, conn.cursor() as cur:
        # Transaction-scoped lock: released by the commit or rollback below.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        cur.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version     text PRIMARY KEY,
                   checksum    text NOT NULL,
                   applied_at  timestamptz NOT NULL DEFAULT now())"""
        )
        done = applied(conn)
        newly: list[str] = []
        for migration in available():
            if until is not None and migration.version[: len(until)] > until:
                break
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version} was changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                (migration.version, migration.checksum),
            )
            newly.append(migration.version)
    return newly


def pending(conn: psycopg2.extensions.connection) -> list[str]:
    """Versions shipped but not yet applied."""
    done = applied(conn)
    return [migration.version for migration in available() if migration.version not in done]
