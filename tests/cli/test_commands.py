"""Every `petal` command end to end against a fresh real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.config import SHARED_DATA_DIR
from petal_labeller.store.connection import connect
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.models import register_model_version

TAXONOMY = SHARED_DATA_DIR / "taxonomy.json"
PAPERS = SHARED_DATA_DIR / "labelled_papers.jsonl"


@pytest.fixture
def petal(database_url):
    """Run `petal ARGS...` in-process against the test database; returns click's Result."""
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(
            main, ["--database-url", database_url, *args], catch_exceptions=False
        )
        assert result.exit_code == code, result.output
        return result

    return run


@pytest.fixture
def loaded(petal, tmp_path) -> Path:
    """Schema, the shared taxonomy and 30 shared papers (first 10 labelled)."""
    petal("db", "upgrade")
    petal("taxonomy", "load", str(TAXONOMY))
    subset = tmp_path / "subset.jsonl"
    lines = PAPERS.read_bytes().splitlines(keepends=True)[:30]
    records = [json.loads(line) for line in lines]
    for record in records[10:]:
        del record["labels"]
    subset.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    petal("papers", "import", str(subset))
    return subset


def test_db_upgrade_twice(petal):
    assert "applied" in (out := petal("db", "upgrade").stdout) and "0001_initial," in out
    assert petal("db", "upgrade").stdout.strip() == "schema is up to date"


def test_taxonomy_load_and_show(petal):
    petal("db", "upgrade")
    loaded = petal("taxonomy", "load", str(TAXONOMY)).stdout
    assert "loaded 131 labels (10 level-1, 27 level-2, 94 level-3)" in loaded
    shown = petal("taxonomy", "show").stdout.splitlines()
    assert len(shown) == 131
    assert shown[:3] == ["attach  (Attach)", "  attach_permanently  (Attach permanently)", shown[2]]
    assert any(line.startswith("    ") for line in shown)  # level 3 is indented twice


def test_import_all_good_exits_zero(petal, loaded):
    result = petal("papers", "import", str(PAPERS))
    assert "read 996 records: 966 new, 30 updated, 0 rejected; 4661 curator labels" in result.stdout


def test_import_with_rejects_exits_one_and_writes_the_rejects_file(petal, loaded, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        b'{"doi": "10.5555/good", "title": "Good"}\n'
        b'{"doi": "nonsense", "title": "Bad DOI"}\n'
        b'{"doi": null, "title": "x", "labels": ["made_up"]}\n'
        b"\xff\xfe not utf-8\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    result = petal("papers", "import", str(bad), "--rejects", str(rejects), code=1)
    assert "1 new, 0 updated, 3 rejected" in result.stdout
    assert "rejected line 2: field 'doi'" in result.stderr
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in written] == [(2, "doi"), (3, "labels"), (4, None)]


def test_import_before_taxonomy_is_one_clear_error(petal, tmp_path):
    petal("db", "upgrade")
    path = tmp_path / "p.jsonl"
    path.write_text('{"title": "x"}\n')
    result = petal("papers", "import", str(path), code=2)
    assert (
        result.stderr.strip()
        == "error: no taxonomy in the database: run `petal taxonomy load PATH` first"
    )


def test_missing_schema_says_to_upgrade(petal):
    result = petal("stats", code=2)
    assert "run `petal db upgrade` first" in result.stderr


def test_pending_lists_the_window_as_jsonl(petal, loaded, database_url):
    rows = [
        json.loads(line)
        for line in petal(
            "papers", "pending", "--since", "2000-01-01", "--until", "2100-01-01T00:00:00+00:00"
        ).stdout.splitlines()
    ]
    assert len(rows) == 30
    assert set(rows[0]) == {"paper_id", "doi", "title", "abstract", "venue", "url", "ingested_at"}
    assert petal("papers", "pending", "--since", "2100-01-01", "--until", "2100-01-02").stdout == ""
    conn = connect(database_url)
    register_model_version(conn, "v1", base_model="m", artefact_uri="file:///v1", promote=True)
    upsert_model_labels(conn, [(rows[0]["paper_id"], "move", 0.7)], "v1")
    conn.close()
    window = ("--since", "2000-01-01", "--until", "2100-01-01")
    assert len(petal("papers", "pending", *window).stdout.splitlines()) == 29
    assert (
        len(petal("papers", "pending", *window, "--model-version", "v2").stdout.splitlines()) == 30
    )
    assert len(petal("papers", "pending", *window, "--limit", "5").stdout.splitlines()) == 5


def test_labels_export_to_stdout_and_file(petal, loaded, database_url, tmp_path):
    conn = connect(database_url)
    register_model_version(conn, "v1", base_model="m", artefact_uri="file:///v1")
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM papers ORDER BY id LIMIT 1")
        first = cur.fetchone()[0]
    upsert_model_labels(conn, [(first, "move", 0.75), (first, "attach", 0.5)], "v1")
    conn.close()

    lines = petal("labels", "export").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 30
    source = [json.loads(line) for line in loaded.read_text().splitlines()]
    assert records[0]["title"] == source[0]["title"]
    assert set(records[0]["labels"]) == set(source[0]["labels"])
    assert records[0]["predicted"] == [
        {"label": "move", "score": 0.75, "model_version": "v1"},
        {"label": "attach", "score": 0.5, "model_version": "v1"},
    ]
    assert records[20]["labels"] == [] and records[20]["predicted"] == []

    out = tmp_path / "export.jsonl"
    result = petal("labels", "export", "--output", str(out))
    assert f"wrote 30 papers to {out}" in result.stderr
    assert out.read_text().splitlines() == lines


def test_stats_counts(petal, loaded):
    out = petal("stats").stdout
    assert "papers:                  30" in out
    assert "labelled by curators:    10" in out
    assert "labelled by a model:     0 (0 labels)" in out
    assert "  (none)" in out


def test_demo_against_a_fresh_database(petal):
    first = petal("demo", "--papers", "40", "--labelled", "10", "--no-label").stdout
    assert "schema: applied 0001_initial" in first
    assert "taxonomy: 131 labels" in first
    assert "papers: 40 imported" in first and "10 with curator labels" in first
    assert "store now: 40 papers, 10 labelled by curators" in first
    again = petal("demo", "--papers", "40", "--labelled", "10", "--no-label").stdout
    assert "schema: up to date" in again and "0 new, 40 already there" in again


def _petal_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "petal_labeller.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_unreachable_database_is_one_line_without_traceback():
    result = _petal_process("--database-url", "postgresql://nobody@127.0.0.1:1/none", "stats")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot connect to postgresql://nobody@127.0.0.1:1/none")


def test_password_is_not_shown():
    result = _petal_process(
        "--database-url", "postgresql://u:hunter2@127.0.0.1:1/none", "db", "upgrade"
    )
    assert result.returncode == 2
    assert "hunter2" not in result.stderr and "u:***@" in result.stderr
