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
    assert records[0]["paper_id"] == first
    assert records[0]["predicted"] == [
        {"label": "move", "score": 0.75, "model_version": "v1", "run_id": None},
        {"label": "attach", "score": 0.5, "model_version": "v1", "run_id": None},
    ]
    assert records[20]["labels"] == [] and records[20]["predicted"] == []

    out = tmp_path / "export.jsonl"
    result = petal("labels", "export", "--output", str(out))
    assert f"wrote 30 papers to {out}" in result.stderr
    assert out.read_text().splitlines() == lines


@pytest.fixture
def two_runs(loaded, database_url) -> list[int]:
    """Run r1 (v1) labels papers 1-3, run r2 (v2) paper 1; papers 1-2 ingested in
    November 2026. Returns the 30 paper ids."""
    from petal_labeller.store.runs import finish_run, start_run

    conn = connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM papers ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
        cur.execute(
            "UPDATE papers SET ingested_at = '2026-11-03T10:00:00Z' WHERE id = ANY(%s)",
            (ids[:2],),
        )
    for version, run, rows in (
        ("v1", "petal_label_papers/r1", [(p, "move", 0.8) for p in ids[:3]]),
        ("v2", "petal_label_papers/r2", [(ids[0], "attach", 0.6)]),
    ):
        register_model_version(conn, version, base_model="m", artefact_uri=f"file:///{version}")
        start_run(conn, run, version)
        upsert_model_labels(conn, rows, version, run)
        finish_run(conn, run, papers_labelled=len(rows), labels_written=len(rows))
    conn.close()
    return ids


def _export(petal, *args: str) -> list[dict]:
    return [json.loads(line) for line in petal("labels", "export", *args).stdout.splitlines()]


def test_labels_export_of_one_run_carries_the_run_id_on_every_label(petal, two_runs):
    records = _export(petal, "--run", "petal_label_papers/r1")

    assert [r["paper_id"] for r in records] == two_runs[:3]
    assert all(
        r["predicted"] == [
            {"label": "move", "score": 0.8, "model_version": "v1",
             "run_id": "petal_label_papers/r1"}
        ]
        for r in records
    )  # fmt: skip


def test_labels_export_by_version_paper_window_and_limit(petal, two_runs):
    [by_version] = _export(petal, "--version", "v2")
    assert by_version["paper_id"] == two_runs[0]
    assert [p["run_id"] for p in by_version["predicted"]] == ["petal_label_papers/r2"]

    [one] = _export(petal, "--paper", str(two_runs[2]))
    assert one["paper_id"] == two_runs[2] and len(one["predicted"]) == 1

    window = _export(petal, "--since", "2026-11-01", "--until", "2026-12-01")
    assert [r["paper_id"] for r in window] == two_runs[:2]
    both = _export(petal, "--since", "2026-11-01", "--until", "2026-12-01", "--version", "v1")
    assert [len(r["predicted"]) for r in both] == [1, 1]

    assert len(_export(petal, "--limit", "4")) == 4


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--run", "petal_label_papers/nope"], "no labelling run 'petal_label_papers/nope'"),
        (["--version", "v9"], "model version 'v9' is not registered"),
        (["--paper", "999999999"], "no paper with id 999999999"),
        (["--paper", "0"], "'--paper': 0 is not in the range x>=1"),
        (["--since", "2026-12-01", "--until", "2026-11-01"], "is not before --until"),
        (["--since", "last tuesday"], "'--since': since must be an ISO 8601"),
        (["--limit", "0"], "'--limit': 0 is not in the range 1<=x<=1000000"),
    ],
    ids=["unknown run", "unknown version", "unknown paper", "paper id 0", "empty window",
         "unparsable date", "limit 0"],
)  # fmt: skip
def test_labels_export_refuses_unusable_filters_with_exit_2(petal, two_runs, args, said):
    result = petal("labels", "export", *args, code=2)
    assert said in result.output and "Traceback" not in result.output
    assert '"paper_id"' not in result.output  # nothing exported


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
