import threading

import psycopg2
import pytest

from petal_labeller.store import migrations
from petal_labeller.store.connection import connect


def _tables(conn) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in cur.fetchall()}


def test_upgrade_creates_every_table_and_twice_is_a_no_op(database_url):
    conn = connect(database_url)
    first = migrations.upgrade(conn)
    assert first == [m.version for m in migrations.available()]
    assert {
        "schema_migrations",
        "papers",
        "taxonomy_labels",
        "paper_labels",
        "paper_labelling",
        "model_versions",
        "labelling_runs",
    } <= _tables(conn)
    assert migrations.upgrade(conn) == []
    assert migrations.pending(conn) == []
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM schema_migrations")
        assert cur.fetchone()[0] == len(first)


def test_concurrent_upgrades_apply_each_migration_once(database_url):
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        conn = connect(database_url)
        try:
            results.append(migrations.upgrade(conn))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, len(migrations.available())]


def test_edited_migration_is_refused(database_url):
    conn = connect(database_url)
    migrations.upgrade(conn)
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE schema_migrations SET checksum = 'edited'")
    with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
        migrations.upgrade(conn)
    assert conn.status == psycopg2.extensions.STATUS_READY
