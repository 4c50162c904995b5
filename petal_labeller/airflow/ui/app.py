"""The PeTaL page and its JSON, as a FastAPI app for the Airflow API server.

Airflow mounts a plugin's FastAPI app with `app.mount()`, so the app inherits
none of the API server's authentication: every route here depends on
Airflow's own `requires_access_view(PLUGINS)`, declared once on the app, so a
route added later is protected too, and FastAPI's own /docs, /redoc and
/openapi.json (served outside those dependencies) are switched off. No token
or cookie -> 401; a token the auth manager rejects -> 403; a user without
access to plugin views -> 403.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from petal_labeller.airflow.ui.data import dashboard
from petal_labeller.airflow.ui.details import paper_detail, run_detail

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
#: The chart shows this many labels, most used by the models first.
CHART_LABELS = 25


#: Pages of runs a request may ask for (bounded: a hostile page number costs nothing).
MAX_PAGE = 100_000
#: Longest run id a request may name (Airflow's own run ids are at most 250 characters).
MAX_RUN_ID = 500
#: Largest paper id a request may name (papers.id is a bigint).
MAX_PAPER_ID = 2**63 - 1


def _summary(page: int = 1) -> dict[str, Any]:
    from petal_labeller.store.connection import connect

    with closing(connect()) as conn:
        return dashboard(conn, page=page)


def _read(view: Callable[..., dict[str, Any] | None], *args: Any) -> dict[str, Any]:
    """One detail view from the store; 404 when it names nothing there."""
    from petal_labeller.store.connection import connect

    with closing(connect()) as conn:
        found = view(conn, *args)
    if found is None:
        raise HTTPException(status_code=404, detail="not found")
    return found


def _html(template: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context))


def chart_rows(labels: list[dict[str, Any]], limit: int = CHART_LABELS) -> list[dict[str, Any]]:
    """The most-used labels with bar widths (percent of the largest count)."""
    used = [label for label in labels if label["model"] or label["curator"]]
    top = sorted(used, key=lambda label: (-label["model"], -label["curator"], label["label_id"]))
    top = top[:limit]
    largest = max([max(label["model"], label["curator"]) for label in top] or [1])
    return [
        {
            **label,
            "model_pct": round(100 * label["model"] / largest, 1),
            "curator_pct": round(100 * label["curator"] / largest, 1),
        }
        for label in top
    ]


def create_app() -> FastAPI:
    app = FastAPI(
        title="PeTaL labeller",
        dependencies=[Depends(requires_access_view(AccessView.PLUGINS))],
        # FastAPI serves these outside the app's dependencies: they would be public.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/api/summary")
    def summary(page: int = Query(1, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        """Everything the page shows, as JSON (`page` pages through the runs)."""
        return _summary(page)

    @app.get("/", response_class=HTMLResponse)
    def page(page: int = Query(1, ge=1, le=MAX_PAGE)) -> HTMLResponse:
        data = _summary(page)
        return _html("petal.html", data=data, chart=chart_rows(data["labels"]))

    run_id = Query(..., alias="id", min_length=1, max_length=MAX_RUN_ID)
    paper_id = Query(..., alias="id", ge=1, le=MAX_PAPER_ID)

    @app.get("/api/run")
    def run_json(id_: str = run_id, page: int = Query(1, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        """One run and a page of the papers and labels it wrote."""
        return _read(run_detail, id_, page)

    @app.get("/run", response_class=HTMLResponse)
    def run_page(id_: str = run_id, page: int = Query(1, ge=1, le=MAX_PAGE)) -> HTMLResponse:
        return _html("run.html", data=_read(run_detail, id_, page))

    @app.get("/api/paper")
    def paper_json(id_: int = paper_id) -> dict[str, Any]:
        """One paper's curator and model labels, with scores, versions and runs."""
        return _read(paper_detail, id_)

    @app.get("/paper", response_class=HTMLResponse)
    def paper_page(id_: int = paper_id) -> HTMLResponse:
        return _html("paper.html", data=_read(paper_detail, id_))

    return app
