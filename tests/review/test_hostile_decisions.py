"""Issue 24 items 8, 9 and 11: decision files as hostile or careless hands make them.

What the curator saw is what is applied (item 9); instants PostgreSQL cannot store are
that line's reject (item 8); odd ids, lone surrogates, a BOM, an open quote, a column
named twice and concurrent applies are each handled as a class (item 11).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.review import build_queue, record_queue, write_queue
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.models import register_model_version
from petal_labeller.store.reviews import ReviewDecision, apply_reviews
from tests.review.conftest import TREE, curator_labels


def _write(tmp_path, lines, name="decisions.jsonl", encoding="utf-8"):
    path = tmp_path / name
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding=encoding)
    return path


@pytest.fixture
def apply_cli(database_url, tmp_path):
    """`petal review apply PATH ...`; returns (exit code, output, rejects by line)."""

    def run(path, *args):
        rejects = tmp_path / "rejects.jsonl"
        rejects.unlink(missing_ok=True)
        argv = ["--database-url", database_url, "review", "apply", str(path)]
        argv += ["--rejects", str(rejects), *args]
        result = CliRunner().invoke(main, argv)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert "Traceback" not in result.output
        rows = [json.loads(x) for x in rejects.read_text().splitlines()] if rejects.exists() else []
        return result.exit_code, result.output, {r["line"]: r for r in rows}

    return run


def _queue_file(conn, tmp_path, fmt="jsonl", version=None) -> list[dict]:
    records = build_queue(conn, TREE, limit=10, neighbours=0, model_version=version)
    record_queue(conn, records)
    return records


def _promote_v2(conn, scores: dict[int, dict[str, float]]) -> None:
    register_model_version(conn, "v2", base_model="test", artefact_uri="y", promote=True)
    rows = [(pid, label, s) for pid, labels in scores.items() for label, s in labels.items()]
    upsert_model_labels(conn, rows, "v2")


# Item 9 -----------------------------------------------------------------------------


def test_a_decision_without_its_model_never_resolves_against_a_newer_queue(
    store, tmp_path, apply_cli
):
    """The attack: after a promotion, `accept` meant the new model's labels."""
    conn, ids, sure = store["conn"], store["ids"], store["papers"]["sure"]
    _promote_v2(conn, {ids["sure"]: {"protect": 0.9, "heat": 0.8}})
    _queue_file(conn, tmp_path, version="v2")  # the paper now also waits under v2
    path = _write(tmp_path, [{**sure, "accept": True, "reviewer": "ana"}])  # seen under v1
    code, output, rejects = apply_cli(path)
    assert code == 1, output
    assert rejects[1]["field"] == "model_version" and "['v1', 'v2']" in rejects[1]["reason"]
    assert curator_labels(conn, ids["sure"]) == []
    # The queue's own line says what was seen: v1's labels, whatever production is now.
    line = {**sure, "model_version": "v1", "model_labels": ["move", "swim"], "accept": True}
    code, output, _ = apply_cli(_write(tmp_path, [{**line, "reviewer": "ana"}]))
    assert code == 0 and "1 applied" in output
    assert curator_labels(conn, ids["sure"]) == [("move", "ana"), ("swim", "ana")]


def test_reapplying_the_queue_file_after_a_promotion_changes_nothing(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    records = build_queue(conn, TREE, limit=10, neighbours=0)
    for record in records:
        record.update(reviewer="ana", accept=True)
    path = _write(tmp_path, records)
    assert apply_cli(path)[0] == 0
    before = {key: curator_labels(conn, pid) for key, pid in ids.items()}
    _promote_v2(conn, {pid: {"protect": 0.9, "heat": 0.8} for pid in ids.values()})
    code, output, _ = apply_cli(path)
    assert code == 0 and "0 applied, 3 already so" in output
    assert {key: curator_labels(conn, pid) for key, pid in ids.items()} == before


def test_labels_changed_since_the_queue_are_refused_naming_the_record(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    records = {r["paper_id"]: r for r in build_queue(conn, TREE, limit=10, neighbours=0)}
    # v1 labels the paper again with other labels after the queue was written.
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM paper_labels WHERE paper_id = %s AND origin = 'model'", (ids["torn"],)
        )
    conn.commit()
    upsert_model_labels(conn, [(ids["torn"], "move", 0.6), (ids["torn"], "swim", 0.55)], "v1")
    lines = [{**records[ids[k]], "reviewer": "ana", "accept": True} for k in ("torn", "sure")]
    code, output, rejects = apply_cli(_write(tmp_path, lines))
    assert code == 1 and "1 applied" in output
    # The same line without the queue's labels: the store's record of what was sent decides.
    bare = {**store["papers"]["torn"], "reviewer": "ana", "accept": True}
    code, output, again = apply_cli(_write(tmp_path, [bare], "bare.jsonl"))
    assert code == 1 and "0 applied" in output
    for found in (rejects, again):
        assert list(found) == [1] and found[1]["field"] == "model_labels"
        assert f"paper {ids['torn']}'s labels from model 'v1' are now" in found[1]["reason"]
    assert curator_labels(conn, ids["torn"]) == []


def test_shown_labels_edited_in_the_file_are_not_what_the_queue_sent(store, tmp_path, apply_cli):
    conn, torn = store["conn"], store["papers"]["torn"]
    line = {**torn, "model_version": "v1", "model_labels": ["protect"], "accept": True}
    code, _, rejects = apply_cli(_write(tmp_path, [{**line, "reviewer": "ana"}]))
    assert code == 1 and rejects[1]["field"] == "model_labels"
    assert "not the labels the queue sent" in rejects[1]["reason"]
    assert curator_labels(conn, torn["paper_id"]) == []


def test_the_store_refuses_a_decision_whose_shown_labels_changed_under_it(store):
    conn, ids = store["conn"], store["ids"]
    decision = ReviewDecision(
        ids["torn"], "ana", store_now(), "v1", True, (), (), ("protect", "heat"),
        shown=("protect", "heat"),
    )  # fmt: skip
    upsert_model_labels(conn, [(ids["torn"], "cold", 0.7)], "v1")  # read, then relabelled
    report = apply_reviews(conn, [decision], "test")
    assert report.applied == 0 and report.refused[0].field == "model_labels"
    assert curator_labels(conn, ids["torn"]) == []


def store_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def test_the_queue_csv_carries_what_the_curator_saw(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    sheet = tmp_path / "queue.csv"
    write_queue(build_queue(conn, TREE, limit=3, neighbours=0), sheet, "csv")
    rows = list(csv.DictReader(sheet.open(encoding="utf-8", newline="")))
    assert {r["model_version"] for r in rows} == {"v1"}
    assert all(r["model_labels"] for r in rows)
    for row in rows:
        row.update(reviewer="ana", accept="yes")
    _promote_v2(conn, {pid: {"move": 0.9} for pid in ids.values()})
    _rewrite(sheet, rows)
    code, output, _ = apply_cli(sheet)
    assert code == 0 and "3 applied" in output
    assert curator_labels(conn, ids["torn"]) == [("heat", "ana"), ("protect", "ana")]


def _rewrite(sheet, rows, encoding="utf-8"):
    with open(sheet, "w", encoding=encoding, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# Item 8 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    ["2026-11-20T10:00:00-23:59", "2026-11-20T10:00:00+16:00", "2026-11-20T10:00+01:00:00.5"],
)
def test_a_reviewed_at_postgresql_cannot_store_is_that_lines_reject(
    store, tmp_path, apply_cli, when
):
    conn, ids = store["conn"], store["ids"]
    lines = [
        {**store["papers"]["torn"], "accept": True, "reviewed_at": when},
        {**store["papers"]["sure"], "accept": True, "reviewed_at": "2026-11-20T10:00:00+15:59"},
    ]
    code, output, rejects = apply_cli(_write(tmp_path, lines), "--reviewer", "ana")
    assert code == 1 and "1 applied" in output, output
    assert list(rejects) == [1] and rejects[1]["field"] == "reviewed_at"
    assert curator_labels(conn, ids["sure"]) == [("move", "ana"), ("swim", "ana")]


# Item 11 ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["²", "١٢", "12\u0663", "\uff11"])
def test_odd_digits_in_a_csv_paper_id_are_that_rows_reject(store, tmp_path, apply_cli, text):
    sheet = tmp_path / "d.csv"
    sheet.write_text(
        f"paper_id,doi,reviewer,accept\n{text},10.5555/torn,ana,yes\n", encoding="utf-8"
    )
    code, _, rejects = apply_cli(sheet)
    assert code == 1 and rejects[2]["field"] == "paper_id"


@pytest.mark.parametrize("field", ["reviewer", "model_version", "doi", "reviewed_at"])
def test_a_lone_surrogate_in_any_text_field_is_that_lines_reject(store, tmp_path, apply_cli, field):
    conn, ids = store["conn"], store["ids"]
    line = {**store["papers"]["torn"], "accept": True, "reviewer": "ana"}
    bad = json.dumps({key: value for key, value in line.items() if key != field})
    bad = bad[:-1] + f', "{field}": "ana\\ud800"}}'
    good = {**store["papers"]["sure"], "accept": True, "reviewer": "ana"}
    code, output, rejects = apply_cli(_write(tmp_path, [bad, good]))
    assert code == 1 and "1 applied" in output, output
    assert list(rejects) == [1] and rejects[1]["field"] == field
    assert curator_labels(conn, ids["sure"]) == [("move", "ana"), ("swim", "ana")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_utf8_bom_is_read_past(store, tmp_path, apply_cli, fmt):
    conn, ids = store["conn"], store["ids"]
    path = tmp_path / f"queue.{fmt}"
    write_queue(build_queue(conn, TREE, limit=3, neighbours=0), path, fmt)
    if fmt == "csv":
        rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
        for row in rows:
            row.update(reviewer="ana", accept="yes")
        _rewrite(path, rows, encoding="utf-8-sig")  # Excel's "CSV UTF-8"
    else:
        lines = [{**json.loads(x), "reviewer": "ana", "accept": True} for x in path.open()]
        _write(tmp_path, lines, path.name, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    code, output, _ = apply_cli(path)
    assert code == 0 and "3 applied" in output, output
    assert curator_labels(conn, ids["sure"]) == [("move", "ana"), ("swim", "ana")]


def test_an_open_quote_swallows_no_decision_silently(store, tmp_path, apply_cli):
    conn, ids, doi = store["conn"], store["ids"], "https://doi.org/10.5555/"
    sheet = tmp_path / "d.csv"
    sheet.write_text(
        "paper_id,doi_url,title,model_version,reviewer,accept,add\n"
        f'{ids["torn"]},{doi}torn,"Heat shock proteins,v1,ana,yes,\n'  # the quote never closes
        f'{ids["deep"]},{doi}deep,Desert snails",v1,ana,,cold\n'  # here it does: one "row"
        f"{ids['sure']},{doi}sure,How eels swim,v1,ana,yes,\n",
        encoding="utf-8",
    )
    code, output, rejects = apply_cli(sheet)
    assert code == 1 and "1 applied" in output, output
    assert list(rejects) == [2] and "lines 2-3" in rejects[2]["reason"]
    assert "Heat shock" in rejects[2]["record"] and "Desert snails" in rejects[2]["record"]
    assert curator_labels(conn, ids["torn"]) == [] and curator_labels(conn, ids["deep"]) == []
    assert curator_labels(conn, ids["sure"]) == [("move", "ana"), ("swim", "ana")]


def test_a_quote_open_to_the_end_of_the_file_is_a_reject_not_silence(store, tmp_path, apply_cli):
    ids, doi = store["ids"], "https://doi.org/10.5555/"
    sheet = tmp_path / "d.csv"
    sheet.write_text(
        "paper_id,doi_url,title,reviewer,accept\n"
        f"{ids['sure']},{doi}sure,How eels swim,ana,yes\n"
        f'{ids["torn"]},{doi}torn,"Heat shock,ana,yes\n'
        f"{ids['deep']},{doi}deep,Desert snails,ana,yes\n",
        encoding="utf-8",
    )
    code, output, rejects = apply_cli(sheet)
    assert code == 1 and "1 applied" in output, output
    assert list(rejects) == [3] and "quote left open" in rejects[3]["reason"]


def test_a_column_named_twice_refuses_the_file(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    sheet = tmp_path / "d.csv"
    sheet.write_text(
        f"paper_id,doi,reviewer,accept,accept\n{ids['sure']},10.5555/sure,ana,no,yes\n",
        encoding="utf-8",
    )
    code, output, _ = apply_cli(sheet)
    assert code == 2 and "'accept' more than once" in output
    assert curator_labels(conn, ids["sure"]) == []


def test_concurrent_applies_of_one_file_report_only_what_each_applied(
    store, tmp_path, migrated_database_url
):
    """Three `petal review apply` processes started together over one file: each says it
    applied only the decisions it wrote; the others find them already so."""
    conn = store["conn"]
    records = build_queue(conn, TREE, limit=10, neighbours=0)
    path = _write(tmp_path, [{**r, "reviewer": "ana", "accept": True} for r in records])
    argv = [sys.executable, "-m", "petal_labeller.cli", "--database-url", migrated_database_url]
    argv += ["review", "apply", str(path)]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    runs += [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    runs += [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    counts = [re.search(r"(\d+) applied, (\d+) already so", out).groups() for out in outputs]
    applied = [int(a) for a, _ in counts]
    assert sum(applied) == len(records), outputs
    assert all(int(a) + int(u) == len(records) for a, u in counts), outputs


def test_a_queue_csv_row_stays_on_one_line_whatever_the_title(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE papers SET title = %s, abstract = %s WHERE id = %s",
            ("Heat shock\nproteins", "Line one.\r\nLine two.", ids["torn"]),
        )
    conn.commit()
    sheet = tmp_path / "queue.csv"
    write_queue(build_queue(conn, TREE, limit=3, neighbours=0), sheet, "csv")
    assert len(sheet.read_text(encoding="utf-8").splitlines()) == 4
    rows = list(csv.DictReader(sheet.open(encoding="utf-8", newline="")))
    for row in rows:
        row.update(reviewer="ana", accept="yes")
    _rewrite(sheet, rows)
    code, output, _ = apply_cli(sheet)
    assert code == 0 and "3 applied" in output, output


@pytest.mark.parametrize("name", ["ana\udcff", "ana\nbo", "x" * 201])
def test_an_unusable_reviewer_option_is_exit_2_before_anything_is_applied(
    store, tmp_path, apply_cli, name
):
    path = _write(tmp_path, [{**store["papers"]["sure"], "accept": True}])
    code, output, _ = apply_cli(path, "--reviewer", name)
    assert code == 2 and "--reviewer" in output, output
    assert curator_labels(store["conn"], store["ids"]["sure"]) == []


def test_a_key_named_twice_in_a_jsonl_line_is_that_lines_reject(store, tmp_path, apply_cli):
    torn = json.dumps({**store["papers"]["torn"], "reviewer": "ana"})
    bad = torn[:-1] + ', "accept": false, "accept": true}'
    good = {**store["papers"]["sure"], "accept": True, "reviewer": "ana"}
    code, output, rejects = apply_cli(_write(tmp_path, [bad, good]))
    assert code == 1 and "1 applied" in output, output
    assert list(rejects) == [1] and "'accept' appears twice" in rejects[1]["reason"]
    assert curator_labels(store["conn"], store["ids"]["torn"]) == []


def test_the_review_row_keeps_the_labels_the_curator_saw(store, tmp_path, apply_cli):
    conn, ids = store["conn"], store["ids"]
    records = {r["paper_id"]: r for r in build_queue(conn, TREE, limit=10, neighbours=0)}
    line = {**records[ids["torn"]], "reviewer": "ana", "remove": ["heat"], "add": ["cold"]}
    assert apply_cli(_write(tmp_path, [line]))[0] == 0
    with conn.cursor() as cur:
        cur.execute(
            "SELECT model_version, shown, labels FROM paper_reviews WHERE paper_id = %s",
            (ids["torn"],),
        )
        assert cur.fetchone() == ("v1", ["protect", "heat"], ["protect", "cold"])
