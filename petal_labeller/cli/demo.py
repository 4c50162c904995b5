"""`petal demo`: from nothing to a working store in one command (`make demo`).

The demo is a list of steps, each a function that takes the shared `Demo`
state and returns the line it prints. Later steps (train, label, show results)
are added by appending to `STEPS`.
"""

from __future__ import annotations

import json
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


Step = Callable[[Demo], str]
STEPS: list[tuple[str, Step]] = [
    ("database", start_database),
    ("schema", apply_schema),
    ("taxonomy", load_taxonomy),
    ("papers", import_demo_papers),
    ("summary", summarise),
]


@click.command()
@click.option("--papers", default=40, show_default=True, help="Demo papers to import.")
@click.option("--labelled", default=10, show_default=True, help="How many keep curator labels.")
@click.pass_context
def demo(ctx: click.Context, papers: int, labelled: int) -> None:
    """Start the database (embedded unless configured), apply the schema, load demo data."""
    state = Demo(
        url=database_url(ctx) or config.database_url(),
        home=config.petal_home(),
        shared=config.SHARED_DATA_DIR,
        papers=papers,
        labelled=min(labelled, papers),
    )
    if not (state.shared / "labelled_papers.jsonl").is_file():
        raise CommandError(
            f"shared PeTaL data not found in {state.shared}; set PETAL_SHARED_DATA to its folder"
        )
    try:
        for number, (_, step) in enumerate(STEPS, start=1):
            click.echo(f"[{number}/{len(STEPS)}] {step(state)}")
    finally:
        if state.conn is not None:
            state.conn.close()
