"""Issue 24 item 1: a decision applies only to a queued paper it names by id and DOI, and
never silently replaces another curator's labels (imported or reviewed)."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.review import build_queue, write_queue
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.reviews import record_queue
from tests.review.conftest import TREE, curator_labels


def _write(tmp_path, lines, name="decisions.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def apply_cli(database_url, tmp_path):
    """`petal review apply PATH ...`; returns (exit code, output, rejects by line)."""

    def run(path, *args):
        rejects = tmp_path / "rejects.jsonl"
        argv = ["--database-url", database_url, "review", "apply", str(path)]
        argv += ["--rejects", str(rejects), *args]
        result = CliRunner().invoke(main, argv)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        rows = [json.loads(x) for x in rejects.read_text().splitlines()] if rejects.exists() else []
        return result.exit_code, result.output, {r["line"]: r for r in rows}

    return run


def _review_row(conn, paper_id):
    with conn.cursor() as cur:
        cur.execute("SELECT reviewer, labels FROM paper_reviews WHERE paper_id = %s", (paper_id,))
        return cur.fetchone()


def test_an_accept_never_rewrites_an_imported_papers_curator_labels(store, tmp_path, apply_cli):
    conn, fish = store["conn"], store["papers"]["fish"]
    # A relabel run gives the curated paper model labels too: the attack's set-up.
    upsert_model_labels(
        conn, [(fish["paper_id"], "protect", 0.9), (fish["paper_id"], "heat", 0.8)], "v1"
    )
    before = curator_labels(conn, fish["paper_id"])
    path = _write(tmp_path, [{**fish, "accept": True, "reviewer": "mallory"}])
    for extra in ((), ("--override",)):  # never queued: no override makes it reviewable
        code, output, rejects = apply_cli(path, *extra)
        assert code == 1, output
        assert rejects[1]["field"] == "paper_id" and "never queued" in rejects[1]["reason"]
        assert curator_labels(conn, fish["paper_id"]) == before
        assert _review_row(conn, fish["paper_id"]) is None


def test_a_queued_paper_that_gained_imported_labels_needs_override(store, tmp_path, apply_cli):
    conn, fish = store["conn"], store["papers"]["fish"]
    upsert_model_labels(conn, [(fish["paper_id"], "protect", 0.9)], "v1")
    record_queue(conn, [(fish["paper_id"], "v1", ["protect"])])  # queued before the import
    before = curator_labels(conn, fish["paper_id"])
    path = _write(tmp_path, [{**fish, "accept": True, "reviewer": "ana"}])
    code, output, rejects = apply_cli(path)
    assert code == 1 and rejects[1]["field"] == "reviewer"
    assert "already has curator labels ['move', 'swim'] from an import" in rejects[1]["reason"]
    assert "--override" in rejects[1]["reason"]
    assert curator_labels(conn, fish["paper_id"]) == before
    code, output, _ = apply_cli(path, "--override")
    assert code == 0 and "1 applied" in output
    assert curator_labels(conn, fish["paper_id"]) == [("protect", "ana")]
    assert _review_row(conn, fish["paper_id"]) == ("ana", ["protect"])


def test_a_model_labelled_paper_not_in_any_queue_is_refused(store, tmp_path, apply_cli):
    conn, torn = store["conn"], store["papers"]["torn"]
    with conn.cursor() as cur:  # queued for v1 only; v2 labelled it afterwards
        cur.execute(
            "INSERT INTO model_versions (version, base_model, artefact_uri) VALUES ('v2', 't', 'x')"
        )
    conn.commit()
    upsert_model_labels(conn, [(torn["paper_id"], "move", 0.7)], "v2")
    path = _write(tmp_path, [{**torn, "accept": True, "reviewer": "ana", "model_version": "v2"}])
    code, _, rejects = apply_cli(path)
    assert code == 1 and "never queued for review with model 'v2'" in rejects[1]["reason"]
    assert curator_labels(conn, torn["paper_id"]) == []


@pytest.mark.parametrize(
    ("names", "field"),
    [
        ({}, "doi"),  # an id alone
        ({"doi": "10.5555/deep"}, "doi"),  # another paper's DOI
        ({"doi_url": "https://doi.org/10.5555/deep"}, "doi_url"),
        ({"doi": "10.5555/torn", "doi_url": "https://doi.org/10.5555/x"}, "doi_url"),  # disagree
        ({"doi_url": "https://example.org/10.5555/torn"}, "doi_url"),  # not a DOI link
    ],
)
def test_the_line_must_name_the_papers_doi(store, tmp_path, apply_cli, names, field):
    conn, torn = store["conn"], store["papers"]["torn"]["paper_id"]
    path = _write(tmp_path, [{"paper_id": torn, **names, "accept": True}])
    code, output, rejects = apply_cli(path, "--reviewer", "ana")
    assert code == 1, output
    assert rejects[1]["field"] == field
    assert curator_labels(conn, torn) == []


def test_a_doi_link_in_any_case_names_its_paper(store, tmp_path, apply_cli):
    conn, torn = store["conn"], store["papers"]["torn"]["paper_id"]
    line = {"paper_id": torn, "doi_url": "https://doi.org/10.5555/TORN", "accept": True}
    code, output, _ = apply_cli(_write(tmp_path, [line]), "--reviewer", "ana")
    assert code == 0 and "1 applied" in output
    assert [label for label, _ in curator_labels(conn, torn)] == ["heat", "protect"]


def test_a_csv_row_whose_doi_url_is_another_papers_is_refused(store, tmp_path, apply_cli):
    conn = store["conn"]
    sheet = tmp_path / "queue.csv"
    write_queue(build_queue(conn, TREE, limit=3, neighbours=0), sheet, "csv")
    rows = list(csv.DictReader(sheet.open(encoding="utf-8", newline="")))
    rows[0]["doi_url"], rows[1]["doi_url"] = rows[1]["doi_url"], rows[0]["doi_url"]
    for row in rows[:2]:
        row.update(reviewer="ana", accept="yes")
    with open(sheet, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, _, rejects = apply_cli(sheet)
    assert code == 1 and sorted(rejects) == [2, 3]
    assert all(r["field"] == "doi_url" for r in rejects.values())
    assert curator_labels(conn, int(rows[0]["paper_id"])) == []


@pytest.mark.parametrize("text", ["١٢", "²", "12\u0663", "\uff11", "1_0", " +3", "0x1"])
def test_non_ascii_digits_are_never_read_as_a_paper_id(store, tmp_path, apply_cli, text):
    path = _write(tmp_path, [{"paper_id": text, "doi": "10.5555/torn", "accept": True}])
    code, output, rejects = apply_cli(path, "--reviewer", "ana")
    assert code == 1, output
    assert rejects[1]["field"] == "paper_id" and "ASCII digits" in rejects[1]["reason"]
    assert "Traceback" not in output


def test_another_reviewers_decision_is_replaced_only_with_override(store, tmp_path, apply_cli):
    conn, torn = store["conn"], store["papers"]["torn"]
    first = _write(tmp_path, [{**torn, "reviewer": "ana", "remove": ["heat"]}], "ana.jsonl")
    assert apply_cli(first)[0] == 0
    other = _write(tmp_path, [{**torn, "reviewer": "bo", "add": ["cold"]}], "bo.jsonl")
    code, output, rejects = apply_cli(other)
    assert code == 1 and rejects[1]["field"] == "reviewer"
    assert "was decided by ana on" in rejects[1]["reason"] and "['protect']" in rejects[1]["reason"]
    assert curator_labels(conn, torn["paper_id"]) == [("protect", "ana")]
    assert _review_row(conn, torn["paper_id"]) == ("ana", ["protect"])
    # The same reviewer may correct their own decision; bo may with --override.
    mine = _write(tmp_path, [{**torn, "reviewer": "ana", "accept": True}], "ana2.jsonl")
    assert apply_cli(mine)[0] == 0
    assert _review_row(conn, torn["paper_id"]) == ("ana", ["protect", "heat"])
    code, output, _ = apply_cli(other, "--override")
    assert code == 0 and "1 applied" in output
    assert _review_row(conn, torn["paper_id"]) == ("bo", ["protect", "heat", "cold"])
    assert {label for label, _ in curator_labels(conn, torn["paper_id"])} == {
        "protect", "heat", "cold"
    }  # fmt: skip
