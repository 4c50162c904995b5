"""`petal papers ...`: import papers and list the ones waiting for a model."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from petal_labeller.cli import EXIT_REJECTED, connection
from petal_labeller.instants import InstantError, parse_instant


class IsoDateTime(click.ParamType):
    """ISO 8601 date or date-time; offsets and `Z` allowed, naive means UTC.

    `instant=True` (an ingestion time) also bounds it to 1900..now; interval bounds such
    as `--until` may lie in the future.
    """

    name = "ISO"

    def __init__(self, instant: bool = False):
        self.instant = instant

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(value, bounded=self.instant)
        except InstantError as error:
            self.fail(f"{param.name if param else 'value'} {error}", param, ctx)


@click.group()
def papers() -> None:
    """Papers in the store."""


@papers.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write rejected records here (JSONL: line, field, reason, record).",
)
@click.option(
    "--ingested-at",
    type=IsoDateTime(instant=True),
    metavar="ISO",
    help="Ingestion time of the new papers (default: now; UTC if no offset). Papers "
    "already stored keep theirs. A daily run labels the papers ingested in its day.",
)
@click.pass_context
def import_(
    ctx: click.Context, path: Path, rejects: Path | None, ingested_at: datetime | None
) -> None:
    """Import a JSONL file of papers; exit 1 when any record was rejected."""
    from petal_labeller.outputs import refuse_inputs_as_outputs
    from petal_labeller.store.papers import import_papers
    from petal_labeller.store.taxonomy import read_taxonomy

    refuse_inputs_as_outputs([("--rejects", rejects)], [("the input", path)])
    conn = connection(ctx)
    report = import_papers(conn, path, read_taxonomy(conn), rejects, ingested_at=ingested_at)
    click.echo(
        f"read {report.read} records: {report.inserted} new, {report.updated} updated, "
        f"{report.rejected} rejected; {report.curator_labels} curator labels"
    )
    for rejection in report.rejections[:20]:
        click.echo(f"  rejected line {rejection.line}: {rejection.reason}", err=True)
    if report.rejected > 20:
        click.echo(f"  ... and {report.rejected - 20} more", err=True)
    if report.rejected:
        if rejects:
            click.echo(f"rejected records written to {rejects}", err=True)
        ctx.exit(EXIT_REJECTED)


@papers.command()
@click.option("--since", required=True, type=IsoDateTime())
@click.option("--until", required=True, type=IsoDateTime())
@click.option("--model-version", help="Default: the production model.")
@click.option("--limit", type=click.IntRange(min=1))
@click.pass_context
def pending(
    ctx: click.Context,
    since: datetime,
    until: datetime,
    model_version: str | None,
    limit: int | None,
) -> None:
    """List papers ingested in [SINCE, UNTIL) (UTC) that the model has not labelled, as JSONL."""
    from petal_labeller.store.papers import pending_papers

    for row in pending_papers(connection(ctx), since, until, model_version, limit):
        row["ingested_at"] = row["ingested_at"].isoformat()
        click.echo(json.dumps(row, ensure_ascii=False))
