"""What the PeTaL page shows, gathered from the store in one read-only pass."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import psycopg2.extensions

from petal_labeller.pipeline.stage import EARLIEST, LATEST
from petal_labeller.review import needs_review
from petal_labeller.store.models import list_model_versions, production_model
from petal_labeller.store.papers import pending_papers
from petal_labeller.store.runs import list_runs
from petal_labeller.store.stats import collect_stats
from petal_labeller.store.taxonomy import read_taxonomy

#: Papers listed under "Needs review", most uncertain first (`petal review queue` gives more).
NEEDS_REVIEW = 10


def dashboard(conn: psycopg2.extensions.connection, runs: int = 10) -> dict[str, Any]:
    """Coverage, papers waiting, model versions with metrics, recent runs, per-label counts."""
    stats = collect_stats(conn)
    production = production_model(conn)
    labelled = next(
        (
            v.papers_labelled
            for v in stats.per_version
            if production and v.version == production.version
        ),
        0,
    )
    waiting = (
        sum(1 for _ in pending_papers(conn, EARLIEST, LATEST, production.version))
        if production
        else stats.papers
    )
    return {
        "papers": stats.papers,
        "production_version": production.version if production else None,
        "labelled_by_production": labelled,
        "coverage": round(labelled / stats.papers, 4) if stats.papers else 0.0,
        "waiting": waiting,
        "curator_labelled": stats.curator_labelled,
        "model_versions": [
            {
                "version": model.version,
                "is_production": model.is_production,
                "base_model": model.base_model,
                "metrics": model.metrics,
                "created_at": model.created_at.isoformat() if model.created_at else None,
                "promoted_at": model.promoted_at.isoformat() if model.promoted_at else None,
            }
            for model in list_model_versions(conn)
        ],
        "runs": [
            {
                key: value.isoformat() if hasattr(value, "isoformat") else value
                for key, value in asdict(run).items()
            }
            for run in list_runs(conn, limit=runs)
        ],
        "labels": [asdict(label) for label in stats.per_label],
        "needs_review": needs_review(
            conn, read_taxonomy(conn), production.version if production else None, NEEDS_REVIEW
        ),
    }
