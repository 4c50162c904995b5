"""What the PeTaL page shows, gathered from the store in one read-only pass."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

import psycopg2.extensions

from petal_labeller.store.models import list_model_versions, production_model
from petal_labeller.store.promotions import promotion_history
from petal_labeller.store.runs import LabellingRun, count_runs, list_runs
from petal_labeller.store.stats import collect_stats
from petal_labeller.store.taxonomy import read_taxonomy

#: Papers listed under "Needs review", most uncertain first (`petal review queue` gives more).
NEEDS_REVIEW = 10


#: Runs shown per page.
RUNS_PER_PAGE = 10
#: An absolute file path (two or more parts); a viewer sees only its last part.
_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+~-]+/)+([\w.@+~-]+)")


def hide_paths(text: str | None) -> str | None:
    """Server file paths in text reduced to their last part: a viewer needs no layout."""
    return _PATH.sub(r"…/\1", text) if text else text


def run_link(run_id: str) -> str:
    """A run's own view, relative to the PeTaL page like every link it makes."""
    return f"run?id={quote(run_id, safe='')}"


def run_row(run: LabellingRun) -> dict[str, Any]:
    """One run as the page shows it: times, duration, counts, error, and its Airflow run."""
    dag_id = run.run_id.split("/", 1)[0] if run.airflow_run_id else None
    duration = (
        round((run.finished_at - run.started_at).total_seconds(), 1)
        if run.finished_at and run.started_at
        else None
    )
    return {
        "run_id": run.run_id,
        "dag_id": dag_id,
        "airflow_run_id": run.airflow_run_id,
        # Relative to Airflow's base URL, so it works behind a proxy prefix too.
        "airflow_link": (
            f"dags/{quote(dag_id, safe='')}/runs/{quote(run.airflow_run_id, safe='')}"
            if dag_id
            else None
        ),
        # The run's own view on the PeTaL page: the papers and labels it wrote.
        "detail_link": run_link(run.run_id),
        "status": run.status,
        "dry_run": run.dry_run,
        # What a dry run would have written (it wrote nothing).
        "labels_proposed": run.labels_proposed,
        "model_version": run.model_version,
        "interval_start": _iso(run.interval_start),
        "interval_end": _iso(run.interval_end),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_s": duration,
        "papers_selected": run.papers_selected,
        "papers_labelled": run.papers_labelled,
        "papers_rejected": run.papers_rejected,
        "labels_written": run.labels_written,
        # Papers whose labels the run changed; the others it labelled kept what they had.
        "papers_changed": run.papers_changed,
        "error": hide_paths(run.error),
        # The failure alert's fate: None (none due), "sent", or "failed" with the reason.
        "alert_status": run.alert_status,
        "alert_error": hide_paths(run.alert_error),
    }


#: Decimal places of a model's metrics on the page and in its JSON.
METRIC_DECIMALS = 4


def rounded_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Numbers rounded to METRIC_DECIMALS; anything else as stored."""
    return {
        name: round(value, METRIC_DECIMALS)
        if isinstance(value, int | float) and not isinstance(value, bool)
        else value
        for name, value in metrics.items()
    }


def _churn(churn: dict[str, Any] | None) -> dict[str, Any] | None:
    """The gate's churn estimate, as the page shows it."""
    if not churn:
        return None
    return {
        "changed": churn.get("changed"),
        "papers": churn.get("papers"),
        "fraction": round(churn.get("fraction") or 0.0, METRIC_DECIMALS),
        "sample": bool(churn.get("sample")),
    }


def promotion_row(history: dict[str, Any] | None) -> dict[str, Any]:
    """How a version's promotion was decided (who, their comment), the churn the gate
    expected and what its relabel runs changed."""
    history = history or {}
    comparison = history.get("comparison") or {}
    relabel = history.get("relabel")
    return {
        "decision": history.get("decision"),
        "decided_by": history.get("decided_by"),
        "decision_comment": history.get("comment"),
        "decided_at": _iso(history.get("decided_at")),
        "expected_churn": {
            "heldout": _churn(comparison.get("heldout_churn")),
            "store": _churn(comparison.get("store_churn")),
        },
        # Measured: papers the version's relabel runs gave labels different from before.
        "relabel": (
            {
                **relabel,
                "fraction": round(relabel["changed"] / relabel["papers"], METRIC_DECIMALS)
                if relabel["papers"] and relabel["changed"] is not None
                else None,
            }
            if relabel
            else None
        ),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _base_model_name(base_model: str) -> str:
    """A Hub-style name stays; a local path (e.g. under the virtualenv) shows its last part."""
    return base_model.rstrip("/").rsplit("/", 1)[-1] if base_model.startswith("/") else base_model


def dashboard(
    conn: psycopg2.extensions.connection, runs: int = RUNS_PER_PAGE, page: int = 1
) -> dict[str, Any]:
    """Coverage, papers waiting, model versions with metrics, a page of runs, per-label counts.

    Only what a viewer needs: no artefact locations or server paths.
    """
    stats = collect_stats(conn)
    production = production_model(conn)
    history = promotion_history(conn)
    labelled = next(
        (
            v.papers_labelled
            for v in stats.per_version
            if production and v.version == production.version
        ),
        0,
    )
    # Every paper has at most one mark per version, so the papers still waiting for the
    # production model are the rest: no walk over them (issue 24 item 10: 100,000 waiting
    # papers, streamed one by one to count them, cost seconds a view).
    waiting = stats.papers - labelled
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
                "base_model": _base_model_name(model.base_model),
                "metrics": rounded_metrics(model.metrics),
                "created_at": model.created_at.isoformat() if model.created_at else None,
                "promoted_at": model.promoted_at.isoformat() if model.promoted_at else None,
                **promotion_row(history.get(model.version)),
            }
            for model in list_model_versions(conn)
        ],
        "runs": [run_row(run) for run in list_runs(conn, limit=runs, offset=(page - 1) * runs)],
        "runs_page": page,
        "runs_pages": max(1, -(-count_runs(conn) // runs)),
        "labels": [asdict(label) for label in stats.per_label],
        "needs_review": _needs_review(conn, production.version if production else None, labelled),
    }


def _needs_review(conn: Any, version: str | None, labelled: int) -> dict[str, Any]:
    """The review queue's counts and head, each one bounded query: the head comes from
    the uncertainty stored on each mark, by index, not from ranking every waiting paper.
    Empty before `petal taxonomy load`, so the page still opens on a new store."""
    from petal_labeller.review.queue import review_summary
    from petal_labeller.store.uncertain import most_uncertain_head, review_counts
    from petal_labeller.taxonomy import TaxonomyError

    try:
        taxonomy = read_taxonomy(conn)
    except TaxonomyError:
        return {"waiting": 0, "reviewed": 0, "with_curators": 0, "irrelevant": 0, "papers": []}
    counts = review_counts(conn, version, labelled)
    head = most_uncertain_head(conn, version, NEEDS_REVIEW) if version else []
    return review_summary(counts, head, taxonomy)
