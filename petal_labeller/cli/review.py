"""`petal review queue | apply | publish | collect`: spend the curators' time where the
model is least sure. `publish`/`collect` are the review DAG's steps from a shell, for the
`files` and `label_studio` backends (a Ground Truth job needs the DAG's AWS connection)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from petal_labeller.cli import EXIT_REJECTED, CommandError, connection
from petal_labeller.review.label_studio import DEFAULT_PROJECT
from petal_labeller.review.queue import MAX_QUEUE
from petal_labeller.review.selection import SELECTIONS

#: Where Label Studio lives, and its API token (read from the environment only: an
#: option's value would show in `ps` and shell history; never printed).
LABEL_STUDIO_URL_ENV = "PETAL_LABEL_STUDIO_URL"
LABEL_STUDIO_TOKEN_ENV = "PETAL_LABEL_STUDIO_TOKEN"
CLI_BACKENDS = ("files", "label_studio")


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
    _exit_on_rejects(ctx, sink, "line ")


def _exit_on_rejects(ctx: click.Context, sink, where: str) -> None:
    """The first 20 rejections on stderr, and exit 1 if there were any."""
    for item in sink.first[:20]:
        click.echo(f"  rejected {where}{item.line}: {item.reason}", err=True)
    if sink.count > 20:
        click.echo(f"  ... and {sink.count - 20} more", err=True)
    if sink.count:
        ctx.exit(EXIT_REJECTED)


def _label_studio(url: str | None):
    from petal_labeller import config
    from petal_labeller.review.label_studio import LabelStudio, LabelStudioError

    try:  # the settings module's checks (a URL with a host; the token never shown)
        url = url or config.get(LABEL_STUDIO_URL_ENV)
        token = (config.get(LABEL_STUDIO_TOKEN_ENV) or "").strip()
    except config.SettingError as exc:
        raise CommandError(str(exc)) from exc
    if not url:
        raise CommandError(f"--label-studio-url (or {LABEL_STUDIO_URL_ENV}) is not set")
    if not token:
        raise CommandError(f"{LABEL_STUDIO_TOKEN_ENV} must hold the Label Studio API token")
    try:
        return LabelStudio(url.strip(), token)
    except LabelStudioError as exc:
        raise CommandError(str(exc)) from exc


def _backend_options(command, *, project: bool = False):
    """--backend and --label-studio-url; --project where a batch is sent."""
    if project:
        command = click.option(
            "--project", default=DEFAULT_PROJECT, show_default=True,
            help="label_studio: the project's title (created on first publish).",
        )(command)  # fmt: skip
    command = click.option(
        "--label-studio-url",
        help=f"label_studio: the server's URL (default ${LABEL_STUDIO_URL_ENV}); the token "
        f"is read from ${LABEL_STUDIO_TOKEN_ENV}.",
    )(command)  # fmt: skip
    return click.option(
        "--backend", type=click.Choice(CLI_BACKENDS), default="files", show_default=True
    )(command)


@review.command()
@click.option("--papers", default=50, show_default=True, type=click.IntRange(1, MAX_QUEUE))
@click.option(
    "--selection", type=click.Choice(list(SELECTIONS)), default="mixed",
    show_default=True, help="diverse: k-means over TF-IDF; mixed: diverse among the unsure.",
)  # fmt: skip
@click.option(
    "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="files: the queue file (.jsonl or .csv) the curators fill in as <name>.answers.jsonl.",
)  # fmt: skip
@click.option("--model-version", help="Whose labels to review. Default: the production model.")
@partial(_backend_options, project=True)
@click.pass_context
def publish(ctx, papers, selection, output, model_version, backend, label_studio_url, project):
    """Send a batch to the curators; a paper already out with them is never sent twice."""
    from petal_labeller.review import ReviewError
    from petal_labeller.review import publish as sending
    from petal_labeller.review.selection import select_papers
    from petal_labeller.store.taxonomy import read_taxonomy
    from petal_labeller.store.unit import StoreError

    if backend == "files" and output is None:
        raise CommandError("--output is needed for the files backend")
    client = _label_studio(label_studio_url) if backend == "label_studio" else None
    conn = connection(ctx)
    taxonomy = read_taxonomy(conn)
    try:
        records = select_papers(
            conn, taxonomy, papers, selection, model_version=model_version,
            neighbours=3 if backend == "files" else 0,
        )  # fmt: skip
        if not records:
            click.echo("nothing to send: the queue is empty or every paper is out with curators")
            return
        if backend == "files":
            fmt = "csv" if output.suffix.lower() == ".csv" else "jsonl"
            batch = sending.publish_files(conn, records, output, fmt)
            answers = output.with_name(f"{output.stem}.answers.jsonl")
            click.echo(f"sent {len(records)} papers as batch {batch}: curators fill in {output}")
            click.echo(f"  and save it as {answers}; then `petal review collect {output}`")
        else:
            project_id, ids = sending.publish_label_studio(conn, client, project, records, taxonomy)
            click.echo(
                f"sent {len(records)} papers to Label Studio project {project!r} "
                f"(id {project_id}): {len(ids)} tasks"
            )
    except (ReviewError, StoreError) as exc:
        raise CommandError(str(exc)) from exc


@review.command()
@click.argument(
    "queue_file", required=False, type=click.Path(dir_okay=False, path_type=Path)
)  # fmt: skip
@click.option(
    "--rejects", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write rejected answers here (JSONL: line, field, reason, record).",
)  # fmt: skip
@_backend_options
@click.pass_context
def collect(ctx, queue_file, rejects, backend, label_studio_url):
    """Apply the curators' answers (files: QUEUE_FILE's filled-in copy; label_studio: every
    open batch) through `apply`'s checks, in one transaction a batch; exit 1 on rejects."""
    from petal_labeller.outputs import refuse_inputs_as_outputs
    from petal_labeller.rejects import RejectSink
    from petal_labeller.review import ReviewError
    from petal_labeller.review import publish as sending
    from petal_labeller.review.answers import now_utc
    from petal_labeller.store import review_tasks
    from petal_labeller.store.taxonomy import read_taxonomy
    from petal_labeller.store.unit import StoreError

    if backend == "files" and queue_file is None:
        raise CommandError("QUEUE_FILE (the file `publish --output` wrote) is needed")
    if queue_file is not None:
        refuse_inputs_as_outputs([("--rejects", rejects)], [("the queue file", queue_file)])
    client = _label_studio(label_studio_url) if backend == "label_studio" else None
    conn = connection(ctx)
    taxonomy = read_taxonomy(conn)
    reports = []
    with RejectSink(rejects) as sink:
        try:
            if backend == "files":
                answers = sending.answers_file(queue_file)
                if answers is None:
                    raise CommandError(
                        f"no answers yet: {queue_file.stem}.answers.jsonl (or .csv) is not "
                        f"beside {queue_file}"
                    )
                reports.append(
                    sending.collect_files(conn, queue_file.name, answers, taxonomy, sink)
                )
            else:
                for batch in review_tasks.open_batches(conn, "label_studio"):
                    reports.append(
                        sending.collect_label_studio(
                            conn, client, int(batch), taxonomy, now_utc(), sink
                        )
                    )
        except (ReviewError, StoreError, UnicodeDecodeError) as exc:
            raise CommandError(str(exc)) from exc
    click.echo(
        f"{sum(r.curated for r in reports)} papers curated, {sum(r.answered for r in reports)} "
        f"answers applied, {sum(r.irrelevant for r in reports)} not relevant, "
        f"{sum(r.not_sure for r in reports)} not sure; {sink.count} rejected"
    )
    _exit_on_rejects(ctx, sink, "")
