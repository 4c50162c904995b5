"""`petal label`: label pending papers on this machine, the same run the DAGs make.

Calls `petal_labeller.pipeline.run.label_window` (stage -> infer -> check ->
write); no Airflow is imported or needed.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

import click

from petal_labeller.cli import EXIT_REJECTED, CommandError, database_url
from petal_labeller.cli.model import BatchSize
from petal_labeller.cli.papers import IsoDateTime
from petal_labeller.pipeline.stage import MAX_PAPERS


@click.command()
@click.option("--since", type=IsoDateTime(), help="Papers ingested at or after (UTC).")
@click.option("--until", type=IsoDateTime(), help="Papers ingested before (UTC).")
@click.option("--model", "model_version", help="Model version (default: the production model).")
@click.option("--max-papers", type=click.IntRange(1, MAX_PAPERS), help="Label at most this many.")
@click.option("--dry-run", is_flag=True, help="Label and check, but write nothing.")
@click.option("--batch-size", default=32, show_default=True, type=BatchSize())
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.pass_context
def label(
    ctx: click.Context,
    since: datetime | None,
    until: datetime | None,
    model_version: str | None,
    max_papers: int | None,
    dry_run: bool,
    batch_size: int,
    as_json: bool,
) -> None:
    """Label the papers ingested in [SINCE, UNTIL) that the model has not labelled.

    Without bounds, every pending paper. Exit code 1 when the model rejected some
    papers (kept in PETAL_HOME/quarantine/) or papers of the window were left unlabelled
    by no cap of yours, 2 when the run could not be made. With --max-papers the run
    labels that many and says how many are left.
    """
    from petal_labeller.pipeline.coverage import CoverageError
    from petal_labeller.pipeline.run import label_window
    from petal_labeller.pipeline.stage import NoModelError
    from petal_labeller.pipeline.validate import OutputError
    from petal_labeller.runtime.errors import ArtefactError

    if since and until and since >= until:
        raise click.BadParameter("--since must be before --until", param_hint="--since")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        summary = label_window(
            since,
            until,
            model_version=model_version,
            max_papers=max_papers,
            dry_run=dry_run,
            database_url=database_url(ctx),
            batch_size=batch_size,
        )
    except (NoModelError, ArtefactError, OutputError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    except CoverageError as exc:  # labels written, but the window is not done: say so
        click.echo(f"run failed: {exc}", err=True)
        ctx.exit(EXIT_REJECTED)
    if as_json:
        click.echo(json.dumps(summary.to_xcom()))
    else:
        if summary.dry_run:
            wrote = f"would write {summary.labels_proposed} labels (dry run: none written)"
        else:
            wrote = f"wrote {summary.labels_written} labels"
        click.echo(
            f"run {summary.run_id}: labelled {summary.papers_labelled} of "
            f"{summary.papers_selected} papers with model {summary.model_version}, "
            f"{wrote}, {summary.papers_rejected} rejected"
        )
    if summary.papers_left:
        click.echo(
            f"stopped at --max-papers {max_papers}: {summary.papers_left} papers of the "
            "window left; run again to label them",
            err=True,
        )
    if summary.papers_rejected:
        click.echo(f"rejected papers kept in {summary.quarantine}", err=True)
        ctx.exit(EXIT_REJECTED)
