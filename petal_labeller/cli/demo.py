"""`petal demo`: from nothing to a working store in one command (`make demo`).

The demo is a list of steps, each a function that takes the shared `Demo`
state and returns the line it prints. Later steps (train, label, show results)
are `MODEL_STEPS`: training runs the real `petal_train_model` DAG through
Airflow's `dag.test()` (with the fast `demo` preset unless told otherwise);
labelling runs `label_window`, the labelling run the DAGs' tasks and `petal
label` call. Long steps print progress as they go (demo_console.py).
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
from petal_labeller.cli.demo_console import StepConsole, quiet_known_warnings

#: The relabelling DAG a promotion's Asset event queues (dags/petal_relabel_papers.py).
RELABEL_DAG = "petal_relabel_papers"


@dataclass
class Demo:
    """What the steps share: where things are and what earlier steps made."""

    url: str | None
    home: Path
    shared: Path
    papers: int
    labelled: int
    preset: str = "demo"
    train_options: dict = field(default_factory=dict)
    conn: object = None
    taxonomy: object = None
    notes: dict = field(default_factory=dict)
    #: Midnight UTC of the day the demo imports its new papers (the curated ones are
    #: dated the day before): the day the label step labels.
    today: dt.datetime = field(default_factory=lambda: _midnight(dt.datetime.now(dt.UTC)))
    #: The running step's `[n/N]`, and whether it printed its first line already.
    step_prefix: str = ""
    announced: bool = False

    def announce(self, text: str) -> None:
        """A long step's first line, before its progress lines and its result."""
        click.echo(f"{self.step_prefix} {text}")
        self.announced = True

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


def _midnight(moment: dt.datetime) -> dt.datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def demo_subset(
    source: Path, target: Path, papers: int, labelled: int, earlier: dt.datetime
) -> Path:
    """The first `papers` records of the shared set; only the first `labelled` keep labels.

    Those are dated `earlier` (in the store before today, as a team's curated papers
    are); the rest stand for new papers, ingested now, that no curator has seen and a
    model must label.
    """
    with open(source, "rb") as lines, open(target, "wb") as out:
        for index, line in enumerate(lines):
            if index >= papers:
                break
            record = json.loads(line)
            if index >= labelled:
                record.pop("labels", None)
            else:
                record.setdefault("ingested_at", earlier.isoformat())
            out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
    return target


def import_demo_papers(demo: Demo) -> str:
    from petal_labeller.store.papers import import_papers

    source = demo.shared / "labelled_papers.jsonl"
    yesterday = demo.today - dt.timedelta(days=1)
    subset = demo_subset(
        source, demo.work_dir / "papers.jsonl", demo.papers, demo.labelled, yesterday
    )
    report = import_papers(
        demo.conn, subset, demo.taxonomy, demo.work_dir / "rejects.jsonl", source="demo"
    )
    return (
        f"papers: {report.imported} imported from {source} ({report.inserted} new, "
        f"{report.updated} already there, {report.rejected} rejected): "
        f"{demo.labelled} with curator labels, dated {yesterday:%Y-%m-%d}, and "
        f"{demo.papers - demo.labelled} new papers for the model to label"
    )


def summarise(demo: Demo) -> str:
    from petal_labeller.store.stats import collect_stats

    found = collect_stats(demo.conn)
    return (
        f"store now: {found.papers} papers, {found.curator_labelled} labelled by curators, "
        f"{found.model_labelled} by a model; try `petal stats` or `petal taxonomy show`"
    )


def _start_airflow(demo: Demo) -> None:
    """Point Airflow at the demo's home and store, and import it.

    Importing Airflow configures logging and resets its loggers' handlers, so it must
    happen before a `StepConsole` listens to one of them.
    """
    from petal_labeller.airflow.laptop import local_run

    if demo.url:
        os.environ["PETAL_DATABASE_URL"] = demo.url  # the DAG's tasks read the same store
    local_run.configure()
    import airflow  # noqa: F401


def _run_dag(demo: Demo, dag_id: str, logical_date: dt.datetime, conf: dict) -> str:
    """Run a DAG once through Airflow itself (`dag.test()`), no Airflow services needed."""
    from petal_labeller.airflow.laptop import local_run

    _start_airflow(demo)
    result = local_run.run_dag(dag_id, logical_date, conf)
    if result.state != "success":
        failed = [task for task, state in result.task_states.items() if state == "failed"]
        raise CommandError(f"{dag_id} run {result.run_id} ended {result.state}; failed: {failed}")
    return result.run_id


def clear_relabel_queue() -> int:
    """Drop the `petal_relabel_papers` run the demo's promotion queued; how many were queued.

    The promotion's Asset event (kept) queues a relabel for the next scheduler to
    start: `airflow standalone` started it before its services were up, so a user's
    first UI view was a failed run. The demo's label step labels the new papers at
    once; the curated ones have their curators' labels.
    """
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        result = session.execute(
            delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == RELABEL_DAG)
        )
        return result.rowcount or 0


def _preset_note(preset: str) -> str:
    if preset == "demo":
        return (
            "the fast `demo` preset (encoder reads 128 tokens, word n-grams, 3 inner folds): "
            "a first look in minutes; `petal demo --preset default` trains the production recipe"
        )
    return f"the `{preset}` preset"


def train_model(demo: Demo) -> str:
    """Train through `petal_train_model` on the curator-labelled papers, unless a model exists."""
    from petal_labeller.store.models import production_model

    current = production_model(demo.conn)
    if current is not None:
        return f"model: production model {current.version} already there, not retrained"
    demo.announce(f"model: training through petal_train_model with {_preset_note(demo.preset)}")
    started = time.monotonic()
    _start_airflow(demo)
    with StepConsole(click.echo, "training"):
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
    clear_relabel_queue()
    f1 = trained.metrics.get("micro_F1")
    quality = f", held-out micro-F1 {f1:.3f}" if isinstance(f1, int | float) else ""
    return (
        f"model: trained and promoted {trained.version} by petal_train_model "
        f"in {time.monotonic() - started:.0f} s{quality} ({trained.artefact_uri})"
    )


def label_papers(demo: Demo) -> str:
    """Label the papers ingested today (the new ones) as `petal_label_papers` does for a day.

    `petal_labeller.pipeline.run.label_window`, the function behind the labelling
    DAGs' tasks and `petal label`: no Airflow needed.
    """
    from petal_labeller.pipeline.run import label_window
    from petal_labeller.store.stats import collect_stats

    demo.announce(f"labelling: the papers ingested on {demo.today:%Y-%m-%d}, as petal_label_papers")
    started = time.monotonic()
    with StepConsole(click.echo, "labelling"):
        summary = label_window(demo.today, demo.today + dt.timedelta(days=1), database_url=demo.url)
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
@click.option(
    "--preset",
    default="demo",
    show_default=True,
    help="Training preset: `demo` is fast, for a first look; `default` is the production recipe.",
)
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
    # Before transformers is imported: its bars go to stderr; the steps print progress.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    loud_again = quiet_known_warnings()
    try:
        for number, (_, step) in enumerate(steps, start=1):
            state.step_prefix, state.announced = f"[{number}/{len(steps)}]", False
            line = step(state)
            click.echo(f"      {line}" if state.announced else f"{state.step_prefix} {line}")
    finally:
        loud_again()
        if state.conn is not None:
            state.conn.close()
