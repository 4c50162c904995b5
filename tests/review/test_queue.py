"""The review queue: most uncertain first, with context; curated and reviewed papers never."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from petal_labeller.cli import main
from petal_labeller.model.uncertainty import (
    best_path,
    binary_entropy,
    entropy_uncertainty,
    paper_uncertainty,
)
from petal_labeller.review import build_queue
from petal_labeller.store.labels import upsert_model_labels
from petal_labeller.store.reviews import ReviewDecision, apply_reviews
from tests.review.conftest import TREE


def test_uncertainty_by_hand():
    # Best path protect (0.5) -> heat (0.3, i.e. 0.6 given its parent): doubts 0.5 and 0.4,
    # weights 1 and 1/2.
    assert paper_uncertainty({"protect": 0.5, "heat": 0.3}, TREE) == pytest.approx(0.7 / 1.5)
    # A doubtful parent is counted once: a child as sure as its parent adds no doubt.
    assert paper_uncertainty({"protect": 0.6, "heat": 0.6}, TREE) == pytest.approx(0.4 / 1.5)
    # The path follows the best level-1 label and its best chosen child.
    scores = {"move": 0.9, "swim": 0.45, "protect": 0.2, "heat": 0.2}
    assert best_path(scores, TREE) == [("move", 0.9), ("swim", 0.5)]
    assert paper_uncertainty(scores, TREE) == pytest.approx((0.1 + 0.5 * 0.5) / 1.5)
    assert paper_uncertainty({}, TREE) == 1.0
    assert paper_uncertainty({"protect": 0.0, "heat": 0.0}, TREE) == 1.0
    # The first measure tried, kept for the benchmark's comparison.
    assert binary_entropy(0.5) == pytest.approx(1.0)
    assert entropy_uncertainty({"protect": 0.5, "heat": 0.3}, TREE) == pytest.approx(
        (1.0 + 0.5 * binary_entropy(0.6)) / 1.5
    )


def test_queue_orders_by_uncertainty_and_skips_curated_papers(store):
    queue = build_queue(store["conn"], TREE, limit=10)
    assert [r["doi"] for r in queue] == ["10.5555/torn", "10.5555/deep", "10.5555/sure"]
    assert queue[0]["uncertainty"] > queue[1]["uncertainty"] > queue[2]["uncertainty"]
    first = queue[0]
    assert first["doi_url"] == "https://doi.org/10.5555/torn"
    assert first["title"] == "Heat shock proteins shield cells"
    assert first["model_version"] == "v1"
    assert first["model_labels"] == [
        {"label": "protect", "name": "Protect from harm", "score": 0.5},
        {"label": "heat", "name": "Protect from temperature", "score": 0.3},
    ]
    # Context: the curated heat paper is the nearest; curated papers are never queued.
    assert first["neighbours"][0]["title"] == "Beetle shells shield heat"
    assert first["neighbours"][0]["labels"][1] == {
        "label": "heat",
        "name": "Protect from temperature",
    }
    assert [r["doi"] for r in build_queue(store["conn"], TREE, limit=2)] == [
        "10.5555/torn",
        "10.5555/deep",
    ]


def test_reviewed_papers_never_come_back(store):
    conn, ids = store["conn"], store["ids"]
    decision = ReviewDecision(ids["torn"], "ana", _now(), "v1", True, (), (), ("heat", "protect"))
    apply_reviews(conn, [decision], "test")
    assert [r["doi"] for r in build_queue(conn, TREE, limit=10)] == [
        "10.5555/deep",
        "10.5555/sure",
    ]
    # A newer labelling run over the reviewed paper does not put it back in the queue.
    upsert_model_labels(conn, [(ids["torn"], "move", 0.5)], "v1")
    assert "10.5555/torn" not in [r["doi"] for r in build_queue(conn, TREE, limit=10)]


def test_cli_queue_writes_jsonl_and_a_spreadsheet_safe_csv(store, database_url, tmp_path):
    with store["conn"].cursor() as cur:
        cur.execute("UPDATE papers SET title = '=HYPERLINK(1)' WHERE doi = '10.5555/sure'")
    store["conn"].commit()
    runner = CliRunner()
    out = tmp_path / "queue.jsonl"
    result = runner.invoke(
        main, ["--database-url", database_url, "review", "queue", "--limit", "2", "--output", out]
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 2
    sheet = tmp_path / "queue.csv"
    args = ["review", "queue", "--limit", "5", "--output", sheet, "--format", "csv"]
    result = runner.invoke(main, ["--database-url", database_url, *args])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    assert rows[0]["doi_url"] == "https://doi.org/10.5555/torn"
    assert rows[-1]["title"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert "protect (Protect from harm) 0.500" in rows[0]["model_labels"]


def test_queue_without_a_production_model_is_one_clear_error(db_conn, database_url, tmp_path):
    from petal_labeller.store.taxonomy import load_taxonomy

    load_taxonomy(db_conn, TREE)
    result = CliRunner().invoke(
        main, ["--database-url", database_url, "review", "queue", "--output", tmp_path / "q"]
    )
    assert result.exit_code == 2
    assert "no production model" in result.output


def _now():
    from datetime import UTC, datetime

    return datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_queue_json_is_what_apply_reads(store, tmp_path):
    """A queue line with the decision fields filled in is a valid decision line."""
    queue = build_queue(store["conn"], TREE, limit=1)
    assert {"reviewer", "accept", "remove", "add"} <= set(queue[0])
    json.dumps(queue[0])


def test_needs_review_lists_the_queue_head_with_counts(store):
    from petal_labeller.review import needs_review

    conn, ids = store["conn"], store["ids"]
    decision = ReviewDecision(ids["sure"], "ana", _now(), "v1", True, (), (), ("move", "swim"))
    apply_reviews(conn, [decision], "test")
    summary = needs_review(conn, TREE, "v1", top=1)
    assert (summary["waiting"], summary["reviewed"]) == (2, 1)
    assert summary["papers"] == [
        {
            "paper_id": ids["torn"],
            "title": "Heat shock proteins shield cells",
            "doi_url": "https://doi.org/10.5555/torn",
            "uncertainty": pytest.approx(0.7 / 1.5, abs=1e-4),
            "labels": "Protect from harm, Protect from temperature",
        }
    ]
    assert needs_review(conn, TREE, None, top=5)["papers"] == []
