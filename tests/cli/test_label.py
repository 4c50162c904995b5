"""`petal label`, `petal model register/promote`, `petal papers import --ingested-at`:
the labelling run and model registration from the command line, with no Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.store.connection import connect
from tests.fixtures.airflow import write_unlabelled_papers

pytestmark = pytest.mark.slow


def _petal(url: str, *args: str, code: int = 0):
    result = CliRunner().invoke(main, ["--database-url", url, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def _query(url: str, sql: str) -> list[tuple]:
    with closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_label_without_bounds_labels_every_pending_paper_and_records_the_run(
    labelling_database, petal_home
):
    url = labelling_database
    result = _petal(url, "label", "--json", code=1)  # 1: the paper with no text is rejected

    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["papers_selected"] == 12 and summary["papers_labelled"] == 11
    assert summary["papers_rejected"] == 1 and summary["labels_written"] > 0
    assert len(_query(url, "SELECT 1 FROM paper_labelling WHERE model_version = 'tiny'")) == 11
    [(status, started_before_finished, error)] = _query(
        url, "SELECT status, started_at < finished_at, error FROM labelling_runs"
    )
    assert status == "success" and started_before_finished and "rejected" in error
    assert not any((petal_home / "runs").rglob("*.jsonl")), "the workspace was left behind"
    # Only the rejected paper is still pending (quarantined for a fix): a second run
    # selects it alone and labels nothing twice.
    again = json.loads(_petal(url, "label", "--json", code=1).stdout.strip().splitlines()[-1])
    assert (again["papers_selected"], again["papers_labelled"]) == (1, 0)
    assert len(_query(url, "SELECT 1 FROM paper_labelling")) == 11


def test_label_outside_the_window_and_dry_run_write_nothing(labelling_database, petal_home):
    url = labelling_database
    out = _petal(url, "label", "--since", "2026-10-01", "--until", "2026-10-02").stdout
    assert "labelled 0 of 0 papers" in out
    dry = _petal(url, "label", "--since", "2026-11-02", "--until", "2026-11-03", "--dry-run",
                 "--max-papers", "3").stdout  # fmt: skip
    assert "labelled 3 of 3 papers" in dry and "would write" in dry
    assert _query(url, "SELECT count(*) FROM paper_labelling") == [(0,)]
    # The empty window is recorded as done with 0 papers; the dry run leaves its row,
    # marked dry run, with the labels it would have written and none written.
    rows = _query(
        url,
        "SELECT status, papers_selected, dry_run, labels_written, labels_proposed "
        "FROM labelling_runs ORDER BY started_at",
    )
    assert rows[0] == ("success", 0, False, 0, None)
    status, selected, dry_run, written, proposed = rows[1]
    assert (status, selected, dry_run, written) == ("success", 3, True, 0)
    assert proposed > 0 and f"would write {proposed} labels" in dry


def _pending_in(url: str, since: str, until: str) -> int:
    [(count,)] = _query(
        url,
        f"SELECT count(*) FROM papers WHERE ingested_at >= '{since}' AND ingested_at < '{until}' "
        "AND id NOT IN (SELECT paper_id FROM paper_labelling)",
    )
    return count


def test_a_run_that_leaves_papers_of_its_window_unlabelled_fails_and_says_how_many(
    labelling_database, petal_home
):
    """Issue 23 item 1: green means every paper of the window was labelled. A run (as
    the DAG's tasks make it) stopped short by a cap keeps the labels it wrote, marks its
    row failed naming how many it left, and raises; the next run labels the rest."""
    from petal_labeller.pipeline.coverage import CoverageError
    from petal_labeller.pipeline.run import finish_run, infer_run, stage_run

    url = labelling_database
    since, until = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    pending = _pending_in(url, "2026-11-02", "2026-11-03")
    assert pending > 2
    staged = stage_run(
        "dag/capped", "dag-capped", since=since, until=until, max_papers=2, database_url=url
    )
    infer_run(staged)

    with pytest.raises(CoverageError, match=f"^{pending - 2} paper\\(s\\) ingested in"):
        finish_run(staged, url)

    [(status, labelled, error)] = _query(
        url, "SELECT status, papers_labelled, error FROM labelling_runs"
    )
    assert (status, labelled) == ("failed", 2) and "still unlabelled" in error
    assert _pending_in(url, "2026-11-02", "2026-11-03") == pending - 2
    rest = CliRunner().invoke(main, ["--database-url", url, "label", "--since", "2026-11-02",
                                     "--until", "2026-11-03"])  # fmt: skip
    assert rest.exit_code in (0, 1), rest.output  # 1 only for a paper the model rejected
    assert "still unlabelled" not in rest.output
    assert _query(url, "SELECT status FROM labelling_runs ORDER BY started_at") == [
        ("failed",),
        ("success",),
    ]


def test_a_staging_failure_is_recorded_in_the_database_the_run_was_given(
    labelling_database, petal_home, monkeypatch
):
    """The failed row goes where the run reads and writes, not to PETAL_DATABASE_URL's."""
    from petal_labeller.pipeline.run import stage_run
    from petal_labeller.pipeline.stage import MaxPapersError

    url = labelling_database
    monkeypatch.setenv("PETAL_DATABASE_URL", "postgresql://petal@127.0.0.1:1/elsewhere")
    with pytest.raises(MaxPapersError):
        stage_run("dag/bad-cap", "dag-bad-cap", max_papers=-1, database_url=url)
    [(status, error)] = _query(url, "SELECT status, error FROM labelling_runs")
    assert status == "failed" and "max_papers -1" in error


def test_petal_label_with_max_papers_labels_that_many_and_says_how_many_are_left(
    labelling_database, petal_home
):
    """At a terminal a cap is a request, not a gap: the run succeeds and says what is left."""
    url = labelling_database
    pending = _pending_in(url, "2026-11-02", "2026-11-03")
    capped = CliRunner().invoke(
        main,
        ["--database-url", url, "label", "--since", "2026-11-02", "--until", "2026-11-03",
         "--max-papers", "2"],
    )  # fmt: skip

    assert capped.exit_code == 0, capped.output
    assert f"stopped at --max-papers 2: {pending - 2} papers of the window left" in capped.stderr
    [(status, error)] = _query(url, "SELECT status, error FROM labelling_runs")
    assert status == "success" and f"{pending - 2} paper(s)" in error


def test_label_with_no_model_is_one_error_line_and_a_failed_run_row(migrated_database_url):
    url = migrated_database_url
    result = _petal(url, "label", code=2)
    assert "no production model is registered" in result.output
    assert "Traceback" not in result.output
    assert _query(url, "SELECT status, model_version FROM labelling_runs") == [("failed", None)]


#: Runs `petal label` with every `airflow` module made unimportable.
NO_AIRFLOW = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoAirflow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "airflow" or name.startswith("airflow."):
                raise ImportError(f"airflow is not installed here ({name})")

    sys.meta_path.insert(0, NoAirflow())
    from petal_labeller.cli import main
    try:
        main(sys.argv[1:], prog_name="petal")
    finally:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "airflow")
        print("AIRFLOW-MODULES", loaded, file=sys.stderr)
    """
)


def test_label_runs_with_no_airflow_installed(labelling_database, petal_home):
    result = subprocess.run(
        [sys.executable, "-c", NO_AIRFLOW, "--database-url", labelling_database, "label",
         "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # 1: one paper rejected, the rest labelled
    assert "AIRFLOW-MODULES []" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["papers_labelled"] == 11


def test_model_register_promote_and_promote_again(
    labelling_database, tiny_model_tar, petal_home, monkeypatch
):
    monkeypatch.delenv("PETAL_AIRFLOW_URL", raising=False)
    url = labelling_database
    out = _petal(url, "model", "register", str(tiny_model_tar), "--version", "v2", "--promote")
    assert "registered v2" in out.stdout and "promoted v2 (was tiny)" in out.stdout
    assert "no Asset event sent" in out.stdout
    kept = petal_home / "models" / "v2" / "model.tar.gz"
    assert kept.is_file()
    rows = _query(url, "SELECT version, is_production, artefact_uri FROM model_versions "
                       "ORDER BY version")  # fmt: skip
    assert rows == [("tiny", False, str(tiny_model_tar)), ("v2", True, str(kept))]
    assert "promoted tiny (was v2)" in _petal(url, "model", "promote", "tiny").stdout
    assert "not registered" in _petal(url, "model", "promote", "v9", code=2).output


def test_model_register_refuses_a_broken_artefact(labelling_database, tmp_path, petal_home):
    broken = tmp_path / "model.tar.gz"
    broken.write_bytes(b"not a tar")
    result = _petal(labelling_database, "model", "register", str(broken), "--version", "x",
                    code=2)  # fmt: skip
    assert "Traceback" not in result.output
    versions = _query(labelling_database, "SELECT version FROM model_versions")
    assert versions == [("tiny",)]


def test_import_with_ingested_at_puts_a_historic_batch_into_its_day(
    migrated_database_url, tmp_path: Path
):
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    url = migrated_database_url
    with closing(connect(url)) as conn:
        load_taxonomy(conn, Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json"))
    papers = write_unlabelled_papers(tmp_path / "batch.jsonl", start=100, count=4)
    _petal(url, "papers", "import", str(papers), "--ingested-at", "2026-11-02T09:30:00Z")
    pending = _petal(url, "papers", "pending", "--since", "2026-11-02", "--until", "2026-11-03")
    assert len(pending.stdout.strip().splitlines()) == 4
    # Importing again keeps the first ingestion time.
    _petal(url, "papers", "import", str(papers), "--ingested-at", "2026-11-05")
    assert _query(url, "SELECT DISTINCT ingested_at::date::text FROM papers") == [("2026-11-02",)]
    for bad in ("yesterday", "9999-12-31", "1066-10-14"):  # unusable: exit 2, nothing read
        result = _petal(url, "papers", "import", str(papers), "--ingested-at", bad, code=2)
        assert "--ingested-at" in result.output


def test_a_record_may_carry_its_own_ingested_at(migrated_database_url, tmp_path: Path):
    """The per-record field wins over --ingested-at; a bad one rejects that record only."""
    from petal_labeller.config import SHARED_DATA_DIR
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    url = migrated_database_url
    with closing(connect(url)) as conn:
        load_taxonomy(conn, Taxonomy.load(SHARED_DATA_DIR / "taxonomy.json"))
    papers = write_unlabelled_papers(tmp_path / "batch.jsonl", start=110, count=3)
    records = [json.loads(line) for line in papers.read_text().splitlines()]
    records[0]["ingested_at"] = "2026-11-04T08:00:00+02:00"
    records[1]["ingested_at"] = "20260-11-04"
    papers.write_text("".join(json.dumps(r) + "\n" for r in records))

    result = _petal(url, "papers", "import", str(papers), "--ingested-at", "2026-11-02", code=1)

    assert "rejected line 2" in result.output and "ingested_at" in result.output
    days = _query(url, "SELECT ingested_at::date::text FROM papers ORDER BY ingested_at")
    assert days == [("2026-11-02",), ("2026-11-04",)]


def test_max_papers_beyond_the_bound_is_refused_everywhere(tmp_path):
    """Issue 24 item 13: 2**63 failed in SQL after 3 tries, 10**30 killed the task."""
    from petal_labeller.pipeline.stage import MAX_PAPERS, MaxPapersError, check_max_papers

    for value in (0, MAX_PAPERS + 1, 2**63, 10**30, True, "5"):
        with pytest.raises(MaxPapersError):
            check_max_papers(value)
    assert check_max_papers(MAX_PAPERS) == MAX_PAPERS and check_max_papers(None) is None
    result = CliRunner().invoke(main, ["label", "--max-papers", str(10**30)])
    assert result.exit_code == 2 and "--max-papers" in result.output
    for size in ("-1", "١٢", "1025"):  # item 15's rule for petal label too
        result = CliRunner().invoke(main, ["label", "--batch-size", size])
        assert result.exit_code == 2 and "--batch-size" in result.output
