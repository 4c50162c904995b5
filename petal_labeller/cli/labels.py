"""`petal labels ...`: export every paper with its curator and model labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from petal_labeller.cli import connection


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
@click.pass_context
def export(ctx: click.Context, output: Path | None) -> None:
    """Write every paper as JSONL: doi, title, abstract, venue, url, labels, predicted."""
    from petal_labeller.store.labels import export_papers

    count = 0
    handle = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        for record in export_papers(connection(ctx)):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if output:
            handle.close()
    if output:
        click.echo(f"wrote {count} papers to {output}", err=True)
