"""The review queue: model-labelled papers the production model is least sure of, first.

Each paper comes with its title, abstract, DOI link, the model's labels and
scores, and the most similar curator-labelled papers as context. Papers with
curator labels or a review never appear, nor papers out with curators on a review
backend (an open `review_tasks` row) or called not biomimicry relevant.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg2.extensions

from petal_labeller.review.errors import ReviewError
from petal_labeller.store import reviews
from petal_labeller.taxonomy import Taxonomy

#: Most curator-labelled papers searched for context (the newest ones).
CONTEXT_PAPERS = 20_000
MAX_QUEUE = 10_000
#: Spreadsheets cap a cell at 32,767 characters.
CSV_CELL = 32_000
QUEUE_CSV = (
    "paper_id", "uncertainty", "doi_url", "title", "abstract", "model_version",
    "model_labels", "neighbours", "reviewer", "accept", "remove", "add",
)  # fmt: skip


def doi_url(doi: str | None) -> str | None:
    return f"https://doi.org/{doi}" if doi else None


def most_uncertain(conn, taxonomy: Taxonomy, version: str, limit: int) -> list[tuple]:
    """(uncertainty, candidate) for the `limit` most uncertain papers; ties: lower id first."""
    from petal_labeller.model.uncertainty import children_map, paper_uncertainty

    tree = children_map(taxonomy)
    scored = (
        (round(paper_uncertainty(c.scores, taxonomy, tree), 4), -c.paper_id, c)
        for c in reviews.review_candidates(conn, version)
    )
    return [(u, c) for u, _, c in heapq.nlargest(limit, scored, key=lambda t: t[:2])]


def _labels(scores: Mapping[str, float], taxonomy: Taxonomy) -> list[dict[str, Any]]:
    known = [label for label in scores if label in taxonomy]
    ordered = sorted(known, key=lambda label: (-scores[label], label))
    return [
        {"label": label, "name": taxonomy[label].name, "score": round(scores[label], 4)}
        for label in ordered
    ]


def build_queue(
    conn: psycopg2.extensions.connection,
    taxonomy: Taxonomy,
    limit: int,
    neighbours: int = 3,
    model_version: str | None = None,
) -> list[dict[str, Any]]:
    """The `limit` papers to review first, most uncertain first (see the module doc)."""
    model_version = model_version or production_version(conn)
    chosen = most_uncertain(conn, taxonomy, model_version, min(limit, MAX_QUEUE))
    return queue_records(conn, taxonomy, chosen, model_version, neighbours)


def production_version(conn: psycopg2.extensions.connection) -> str:
    """The production model's version; ReviewError when there is none."""
    from petal_labeller.store.models import production_model

    production = production_model(conn)
    if production is None:
        raise ReviewError("no production model yet: nothing has model labels to review")
    return production.version


def queue_records(
    conn: psycopg2.extensions.connection,
    taxonomy: Taxonomy,
    chosen: list[tuple],
    model_version: str,
    neighbours: int = 3,
) -> list[dict[str, Any]]:
    """The queue's record of each (uncertainty, candidate) chosen, in that order."""
    from petal_labeller.model.neighbours import nearest, paper_text

    context = reviews.curated_papers(conn, CONTEXT_PAPERS) if neighbours else []
    found = nearest(
        [paper_text(c.title, c.abstract) for _, c in chosen],
        [paper_text(p["title"], p["abstract"]) for p in context],
        neighbours,
    )
    return [
        {
            "paper_id": c.paper_id,
            "uncertainty": u,
            "doi": c.doi,
            "doi_url": doi_url(c.doi),
            "url": c.url,
            "title": c.title,
            "abstract": c.abstract,
            "model_version": model_version,
            "model_labels": _labels(c.scores, taxonomy),
            "neighbours": [_neighbour(context[i], s, taxonomy) for i, s in near],
            "reviewer": None,
            "accept": None,
            "remove": [],
            "add": [],
        }
        for (u, c), near in zip(chosen, found, strict=True)
    ]


def record_queue(conn: psycopg2.extensions.connection, records: list[dict[str, Any]]) -> int:
    """Remember which papers were sent for review, and the labels shown; commits."""
    return reviews.record_queue(
        conn,
        (
            (r["paper_id"], r["model_version"], [m["label"] for m in r["model_labels"]])
            for r in records
        ),
    )


def needs_review(
    conn: psycopg2.extensions.connection, taxonomy: Taxonomy, model_version: str | None, top: int
) -> dict[str, Any]:
    """For the PeTaL page: counts, and the `top` papers the queue would list first."""
    counts = reviews.review_counts(conn, model_version)
    chosen = most_uncertain(conn, taxonomy, model_version, top) if model_version else []
    return review_summary(counts, chosen, taxonomy)


def review_summary(counts: Any, chosen: list[tuple], taxonomy: Taxonomy) -> dict[str, Any]:
    """The page's "Needs review" block from review counts and (uncertainty, candidate)
    pairs, each paper's labels by name as the queue lists them (best first, ties by id)."""
    return {
        "waiting": counts.waiting,
        "reviewed": counts.reviewed,
        "with_curators": counts.with_curators,
        "irrelevant": counts.irrelevant,
        "papers": [
            {
                "paper_id": c.paper_id,
                "title": c.title,
                "doi_url": doi_url(c.doi),
                "uncertainty": u,
                "labels": ", ".join(taxonomy[m["label"]].name for m in _labels(c.scores, taxonomy)),
            }
            for u, c in chosen
        ],
    }


def _neighbour(paper: dict, similarity: float, taxonomy: Taxonomy) -> dict[str, Any]:
    return {
        "paper_id": paper["paper_id"],
        "title": paper["title"],
        "doi_url": doi_url(paper["doi"]),
        "similarity": similarity,
        "labels": [
            {"label": i, "name": taxonomy[i].name} for i in paper["labels"] if i in taxonomy
        ],
    }


_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " "})


def _cell(value: Any) -> str:
    """A spreadsheet-safe cell: bounded, on one line (`review apply` reads a row spanning
    lines as a quote left open), and never read as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    text = text.translate(_LINE_BREAKS)[:CSV_CELL]
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(record: dict[str, Any]) -> list[str]:
    labels = "; ".join(
        f"{m['label']} ({m['name']}) {m['score']:.3f}" for m in record["model_labels"]
    )
    near = " | ".join(
        f"{n['title']} [{', '.join(x['label'] for x in n['labels'])}] {n['doi_url'] or ''}"
        for n in record["neighbours"]
    )
    values = {**record, "model_labels": labels, "neighbours": near, "remove": "", "add": ""}
    return [_cell(values[name]) for name in QUEUE_CSV]


def write_queue(records: list[dict[str, Any]], path: Path, fmt: str) -> None:
    """JSONL (one paper a line) or CSV (QUEUE_CSV columns) for a spreadsheet."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            writer = csv.writer(handle)
            writer.writerow(QUEUE_CSV)
            writer.writerows(_csv_row(record) for record in records)
        else:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
