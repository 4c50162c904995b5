"""`petal stats`: counts of papers and labels."""

from __future__ import annotations

import click

from petal_labeller.cli import connection


@click.command()
@click.option("--all-labels", is_flag=True, help="List labels that nobody has used too.")
@click.pass_context
def stats(ctx: click.Context, all_labels: bool) -> None:
    """Print counts: papers, labelled papers, labels per label and per model version."""
    from petal_labeller.store.stats import collect_stats

    found = collect_stats(connection(ctx))
    click.echo(f"papers:                  {found.papers}")
    click.echo(f"labelled by curators:    {found.curator_labelled} ({found.curator_labels} labels)")
    click.echo(f"labelled by a model:     {found.model_labelled} ({found.model_labels} labels)")
    click.echo("model versions:")
    if not found.per_version:
        click.echo("  (none)")
    for version in found.per_version:
        flag = " [production]" if version.is_production else ""
        click.echo(
            f"  {version.version}{flag}: {version.papers_labelled} papers, "
            f"{version.labels} labels, {version.runs} runs"
        )
    click.echo("per label (curator / model):")
    for label in found.per_label:
        if all_labels or label.curator or label.model:
            indent = "  " * label.level
            click.echo(f"{indent}{label.label_id}: {label.curator} / {label.model}")
