"""`petal demo`: from nothing to a working store in one command (`make demo`).

The demo is a list of steps, each a function that takes the shared `Demo`
state and returns the line it prints. Later steps (train, label, show results)
are `MODEL_STEPS`: training runs the real `petal_train_model` DAG through
Airflow's `dag.test()`; labelling runs `label_window`, the labelling run the
DAGs' tasks and `petal label` call.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from petal_labeller import config
from petal_labeller.cli import CommandError, database_url


@dataclass
class Demo:
    """What the steps share: where things are and what earlier steps made."""

    url: str | None
    home: Path
    shared: Path
    papers: int
    labelled: int
    preset: str = "default"
    train_options: dict = field(default_factory=dict)
    conn: object = None
    taxonomy: object = None
    notes: dict = field(default_factory=dict)

    @property
    def work_dir(self) -> Path:
        path = self.home / "demo"
        path.mkdir(parents=True, exist_ok=True)
        return path


def start_database(demo: Demo) -> str:
    from petal_labeller.store.connection import connect, embedded_url, redact

    if demo.url:
        where = f"PostgreSQL at {redact(demo.url)}"
    else:
        demo.url = embedded_url()
        where = f"embedded PostgreSQL in {demo.home / 'pgdata'} ({redact(demo.url)})"
    demo.conn = connect(demo.url)
    return f"database: {where}"


def apply_schema(demo: Demo) -> str:
    from petal_labeller.store.migrations import upgrade

    applied = upgrade(demo.conn)
    return f"schema: applied {', '.join(applied)}" if applied else "schema: up to date"


def load_taxonomy(demo: Demo) -> str:
    from petal_labeller.store.taxonomy import load_taxonomy as store_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    demo.taxonomy = Taxonomy.load(demo.shared / "taxonomy.json")
    count = store_taxonomy(demo.conn, demo.taxonomy)
    return f"taxonomy: {count} labels from {demo.shared / 'taxonomy.json'}"


def demo_subset(source: Path, target: Path, papers: int, labelled: int) -> Path:
    """The first `papers` records of the shared set; only the first `labelled` keep labels.

    The rest stand for new papers that no curator has seen and a model must label.
    """
    with open(source, "rb") as lines, open(target, "wb") as out:
        for index, line in enumerate(lines):
            if index >= papers:
                break
            record = json.loads(line)
            if index >= labelled:
                record.pop("labels", None)
            out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    return target


def import_demo_papers(demo: Demo) -> str:
    from petal_labeller.store.papers import import_papers

    source = demo.shared / "labelled_papers.jsonl"
    subset = demo_subset(source, demo.work_dir / "papers.jsonl", demo.papers, demo.labelled)
    report = import_papers(
        demo.conn, subset, demo.taxonomy, demo.work_dir / "rejects.jsonl", source="demo"
    )
    return (
        f"papers: {report.imported} imported from {source} ({report.inserted} new, "
        f"{report.updated} already there, {report.rejected} rejected), "
        f"{demo.labelled} with curator labels"
    )


def summarise(demo: Demo) -> str:
    from petal_labeller.store.stats import collect_stats

    found = collect_stats(demo.conn)
    return (
        f"store now: {found.papers} papers, {found.curator_labelled} labelled by curators, "
        f"{found.model_labelled} by a model; try `petal stats` or `petal taxonomy show`"
    )


def _run_dag(demo: Demo, dag_id: str, logical_date: dt.datetime, conf: dict) -> str:
    """Run a DAG once through Airflow itself (`dag.test()`), no Airflow services needed."""
    from petal_labeller.airflow import local_run

    if demo.url:
        os.environ["PETAL_DATABASE_URL"] = demo.url  # the DAG's tasks read the same store
    local_run.configure()
    result = local_run.run_dag(dag_id, logical_date, conf)
    if result.state != "success":
        failed = [task for task, state in result.task_states.items() if state == "failed"]
        raise CommandError(f"{dag_id} run {result.run_id} ended {result.state}; failed: {failed}")
    return result.run_id


def train_model(demo: Demo) -> str:
    """Train through `petal_train_model` on the curator-labelled papers, unless a model exists."""
    from petal_labeller.store.models import production_model

    current = production_model(demo.conn)
    if current is not None:
        return f"model: production model {current.version} already there, not retrained"
    started = time.monotonic()
    run_id = _run_dag(
        demo,
        "petal_train_model",
        dt.datetime.now(dt.UTC),
        {"backend": "local", "preset": demo.preset, "train_options": demo.train_options},
    )
    demo.conn.rollback()  # a fresh snapshot: the DAG's tasks wrote on their own connections
    trained = production_model(demo.conn)
    if trained is None:
        raise CommandError(f"petal_train_model run {run_id} promoted no model")
    return (
        f"model: trained and promoted {trained.version} by petal_train_model "
        f"in {time.monotonic() - started:.0f} s ({trained.artefact_uri})"
    )


def label_papers(demo: Demo) -> str:
    """Label today's papers (those the demo just ingested) with the run the DAGs make.

    `petal_labeller.pipeline.run.label_window`, the function behind
    `petal_label_papers`'s tasks and `petal label`: no Airflow needed.
    """
    from petal_labeller.pipeline.run import label_window
    from petal_labeller.store.stats import collect_stats

    started = time.monotonic()
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    summary = label_window(today, today + dt.timedelta(days=1), database_url=demo.url)
    demo.conn.rollback()  # a fresh snapshot: the run wrote on its own connection
    found = collect_stats(demo.conn)
    return (
        f"labelling: run {summary.run_id} labelled {summary.papers_labelled} of "
        f"{summary.papers_selected} new papers in {time.monotonic() - started:.0f} s; "
        f"{found.model_labelled} papers now carry model labels"
    )


def show_examples(demo: Demo, count: int = 3) -> str:
    from petal_labeller.store.labels import export_papers

    lines = []
    for paper in export_papers(demo.conn):
        if paper.get("labels") or not paper.get("predicted"):
            continue  # show papers no curator labelled: what the model added
        top = sorted(paper["predicted"], key=lambda item: -item["score"])[:4]
        labels = ", ".join(f"{item['label']} ({item['score']:.2f})" for item in top)
        lines.append(f"  - {paper['title'][:90]}\n      {labels}")
        if len(lines) == count:
            break
    return "examples (new papers and their model labels):\n" + "\n".join(lines)


def next_steps(demo: Demo) -> str:
    return (
        "next: `petal stats`, `petal labels export --output labels.jsonl`, the evaluation "
        f"report under {demo.home / 'models'}, and docs/airflow.md to run the UI "
        "(`airflow standalone`, Browse -> PeTaL)"
    )


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--train-options") from exc
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--train-options")
    return value


Step = Callable[[Demo], str]
STORE_STEPS: list[tuple[str, Step]] = [
    ("database", start_database),
    ("schema", apply_schema),
    ("taxonomy", load_taxonomy),
    ("papers", import_demo_papers),
    ("summary", summarise),
]
MODEL_STEPS: list[tuple[str, Step]] = [
    ("train", train_model),
    ("label", label_papers),
    ("examples", show_examples),
    ("next", next_steps),
]


@click.command()
@click.option("--papers", default=996, show_default=True, help="Demo papers to import.")
@click.option(
    "--labelled",
    default=966,
    show_default=True,
    help="How many keep curator labels (the model trains on them; the rest are new papers).",
)
@click.option("--preset", default="default", show_default=True, help="Training preset.")
@click.option(
    "--train-options",
    default="{}",
    show_default=True,
    help="TrainConfig overrides as JSON, e.g. '{\"knn_k\": 10}'.",
)
@click.option(
    "--label/--no-label",
    default=True,
    show_default=True,
    help="Train a model (through Airflow) if none is there and label the new papers.",
)
@click.pass_context
def demo(
    ctx: click.Context, papers: int, labelled: int, preset: str, train_options: str, label: bool
) -> None:
    """Set up the store, train a model if needed (through Airflow) and label new papers."""
    state = Demo(
        url=database_url(ctx) or config.database_url(),
        home=config.petal_home(),
        shared=config.SHARED_DATA_DIR,
        papers=papers,
        labelled=min(labelled, papers),
        preset=preset,
        train_options=_json_object(train_options),
    )
    steps = STORE_STEPS + (MODEL_STEPS if label else [])
    if not (state.shared / "labelled_papers.jsonl").is_file():
        raise CommandError(
            f"shared PeTaL data not found in {state.shared}; set PETAL_SHARED_DATA to its folder"
        )
    try:
        for number, (_, step) in enumerate(steps, start=1):
            click.echo(f"[{number}/{len(steps)}] {step(state)}")
    finally:
        if state.conn is not None:
            state.conn.close()
