"""`petal review queue | apply`: spend the curators' time where the model is least sure."""

from __future__ import annotations

from pathlib import Path

import click

from petal_labeller.cli import EXIT_REJECTED, CommandError, connection


@click.group()
def review() -> None:
    """The review queue and the curators' decisions (see petal_labeller/review/)."""


@review.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path)
)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--neighbours", default=3, show_default=True, type=click.IntRange(0, 20))
@click.option("--model-version", help="Default: the production model.")
@click.pass_context
def queue(ctx, limit: int, output: Path, fmt: str, neighbours: int, model_version) -> None:
    """Write the papers the model is least sure of, most uncertain first."""
    from petal_labeller.review import ReviewError, build_queue, record_queue, write_queue
    from petal_labeller.store.taxonomy import read_taxonomy

    conn = connection(ctx)
    try:
        records = build_queue(conn, read_taxonomy(conn), limit, neighbours, model_version)
    except ReviewError as exc:
        raise CommandError(str(exc)) from exc
    write_queue(records, output, fmt)
    record_queue(conn, records)  # only queued papers can be decided
    click.echo(f"wrote {len(records)} papers to review to {output}")


@review.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Default: by suffix.")
@click.option("--reviewer", help="Who decided, for lines without a 'reviewer'.")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write rejected lines here (JSONL: line, field, reason, record).",
)
@click.option(
    "--override",
    is_flag=True,
    help="Let decisions replace another reviewer's decision or imported curator labels.",
)
@click.pass_context
def apply(
    ctx, path: Path, fmt: str | None, reviewer: str | None, rejects: Path | None, override: bool
) -> None:
    """Turn the decisions in PATH into curator labels, in one transaction; exit 1 on rejects."""
    from petal_labeller.outputs import refuse_inputs_as_outputs
    from petal_labeller.rejects import RejectSink
    from petal_labeller.review import ReviewError, apply_decisions, read_decisions
    from petal_labeller.store.taxonomy import read_taxonomy

    refuse_inputs_as_outputs([("--rejects", rejects)], [("the decision file", path)])
    conn = connection(ctx)
    taxonomy = read_taxonomy(conn)
    # Rejections stream to --rejects (three passes: reading, checking, the store's refusals).
    with RejectSink(rejects, passes=3) as sink:
        try:
            read = read_decisions(conn, path, taxonomy, fmt=fmt, reviewer=reviewer, rejects=sink)
        except (ReviewError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        report = apply_decisions(conn, read, f"review:{path.name}", override=override)
    click.echo(
        f"{len(read.decisions)} decisions: {report.applied} applied, {report.unchanged} "
        f"already so; {report.labels_added} curator labels added, {report.labels_removed} "
        f"removed; {read.skipped} lines without a decision; {sink.count} rejected"
    )
    for item in sink.first[:20]:
        click.echo(f"  rejected line {item.line}: {item.reason}", err=True)
    if sink.count > 20:
        click.echo(f"  ... and {sink.count - 20} more", err=True)
    if sink.count:
        ctx.exit(EXIT_REJECTED)
