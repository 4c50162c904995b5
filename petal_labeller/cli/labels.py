"""`petal labels ...`: export papers with their curator and model labels, all or a slice."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from petal_labeller.cli import CommandError, connection
from petal_labeller.cli.papers import IsoDateTime

#: `--limit` at most: a bigger export goes to a file without one.
MAX_LIMIT = 1_000_000


@click.group()
def labels() -> None:
    """Labels in the store."""


@labels.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write here instead of stdout.",
)
@click.option("--run", "run_id", metavar="RUN", help="Only the papers and labels this run wrote.")
@click.option("--version", "model_version", metavar="V", help="Only this model version's labels.")
@click.option("--since", type=IsoDateTime(), help="Papers ingested at or after this (UTC).")
@click.option("--until", type=IsoDateTime(), help="Papers ingested before this (UTC).")
@click.option("--paper", "paper_id", type=click.IntRange(min=1), metavar="ID", help="One paper.")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), help="At most this many papers.")
@click.pass_context
def export(
    ctx: click.Context,
    output: Path | None,
    run_id: str | None,
    model_version: str | None,
    since: datetime | None,
    until: datetime | None,
    paper_id: int | None,
    limit: int | None,
) -> None:
    """Write papers as JSONL: paper_id, doi, title, abstract, venue, url, labels (curator)
    and predicted (label, score, model_version, run_id), in paper id order.

    Filters combine; an unknown run, version or paper, or an empty window, exits 2.
    """
    from petal_labeller.store.labels import ExportFilter, export_papers

    if since and until and since >= until:
        raise click.BadParameter(
            f"--since {since.isoformat()} is not before --until {until.isoformat()}",
            param_hint="'--since' / '--until'",
        )
    conn = connection(ctx)
    _check_exists(conn, run_id, model_version, paper_id)
    where = ExportFilter(run_id, model_version, since, until, paper_id, limit)
    count = 0
    handle = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        for record in export_papers(conn, where=where):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if output:
            handle.close()
    if output:
        click.echo(f"wrote {count} papers to {output}", err=True)


def _check_exists(conn, run_id: str | None, model_version: str | None, paper_id: int | None):
    """A filter naming nothing in the store is a typo, not an empty export: say so (exit 2)."""
    from petal_labeller.store.models import get_model_version
    from petal_labeller.store.runs import get_run

    if run_id is not None and get_run(conn, run_id) is None:
        raise CommandError(f"--run: no labelling run {run_id!r} (run ids are on the PeTaL page)")
    if model_version is not None and get_model_version(conn, model_version) is None:
        raise CommandError(f"--version: model version {model_version!r} is not registered")
    if paper_id is not None:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM papers WHERE id = %s", (paper_id,))
            if cur.fetchone() is None:
                raise CommandError(f"--paper: no paper with id {paper_id}")
