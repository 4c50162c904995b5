"""The PeTaL page's two detail views: one labelling run with the papers and labels it
wrote, and one paper with every curator and model label. Read-only, bounded, and only
what a viewer needs (no artefact locations or server paths)."""

from __future__ import annotations

from typing import Any

import psycopg2.extensions

from petal_labeller.airflow.ui.data import run_link, run_row
from petal_labeller.review import doi_url
from petal_labeller.store.labels import count_run_papers, paper_view, run_papers
from petal_labeller.store.runs import get_run

#: Papers per page of a run's view.
PAPERS_PER_PAGE = 50


def paper_link(paper_id: int) -> str:
    """Relative to the PeTaL page, like every link it makes."""
    return f"paper?id={paper_id}"


def run_detail(
    conn: psycopg2.extensions.connection, run_id: str, page: int = 1
) -> dict[str, Any] | None:
    """A run as the runs table shows it, plus a page of the papers it labelled; None if
    no such run. A dry run wrote nothing, so its list is empty and `labels_proposed`
    says what it would have written."""
    run = get_run(conn, run_id)
    if run is None:
        return None
    total = count_run_papers(conn, run_id)
    papers = run_papers(conn, run_id, PAPERS_PER_PAGE, (page - 1) * PAPERS_PER_PAGE)
    return {
        "run": run_row(run),
        "papers_total": total,
        "page": page,
        "pages": max(1, -(-total // PAPERS_PER_PAGE)),
        "papers": [
            {
                **paper,
                "labelled_at": paper["labelled_at"].isoformat(),
                "doi_url": doi_url(paper["doi"]),
                "link": paper_link(paper["paper_id"]),
            }
            for paper in papers
        ],
    }


def paper_detail(conn: psycopg2.extensions.connection, paper_id: int) -> dict[str, Any] | None:
    """A paper's curator labels and each model version's labels, scores and runs."""
    paper = paper_view(conn, paper_id)
    if paper is None:
        return None
    by_version: dict[str, dict[str, Any]] = {}
    for mark in paper["labelled_by"]:
        by_version[mark["model_version"]] = {
            "model_version": mark["model_version"],
            "run_id": mark["run_id"],
            "run_link": run_link(mark["run_id"]) if mark["run_id"] else None,
            "labelled_at": mark["labelled_at"].isoformat(),
            # Unchanged from this version's labels, which it kept instead of rewriting.
            "carried_from": mark["carried_from"],
            "labels": [],
        }
    for label in paper["model"]:
        version = by_version.setdefault(
            label["model_version"],
            {"model_version": label["model_version"], "run_id": label["run_id"],
             "run_link": run_link(label["run_id"]) if label["run_id"] else None,
             "labelled_at": label["labelled_at"].isoformat(), "carried_from": None,
             "labels": []},
        )  # fmt: skip
        version["labels"].append(
            {"label": label["label"], "name": label["name"], "score": round(label["score"], 4)}
        )
    return {
        "paper_id": paper["paper_id"],
        "title": paper["title"],
        "doi": paper["doi"],
        "doi_url": doi_url(paper["doi"]),
        "abstract": paper["abstract"],
        "venue": paper["venue"],
        "ingested_at": paper["ingested_at"].isoformat(),
        "curator": [
            {
                "label": label["label"],
                "name": label["name"],
                "curated_by": label["curated_by"],
                "labelled_at": label["labelled_at"].isoformat(),
            }
            for label in paper["curator"]
        ],
        "models": list(by_version.values()),
        "irrelevant": (
            {"by": paper["irrelevant"]["by"], "at": paper["irrelevant"]["at"].isoformat()}
            if paper["irrelevant"]
            else None
        ),
        "with_curators": (
            {**paper["with_curators"], "sent_at": paper["with_curators"]["sent_at"].isoformat()}
            if paper["with_curators"]
            else None
        ),
    }
