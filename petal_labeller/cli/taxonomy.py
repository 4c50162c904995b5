"""`petal taxonomy ...`: load and show the label tree."""

from __future__ import annotations

from pathlib import Path

import click

from petal_labeller.cli import connection


@click.group()
def taxonomy() -> None:
    """The PeTaL function taxonomy."""


@taxonomy.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Load even an empty tree, or one dropping over half of the stored labels.",
)
@click.pass_context
def load(ctx: click.Context, path: Path, allow_shrink: bool) -> None:
    """Load taxonomy.json (a list of {id, name, level, parent}) into the database."""
    from petal_labeller.store.taxonomy import load_taxonomy
    from petal_labeller.taxonomy import Taxonomy

    tree = Taxonomy.load(path)
    count = load_taxonomy(connection(ctx), tree, allow_shrink=allow_shrink)
    levels = [sum(1 for label in tree if label.level == level) for level in (1, 2, 3)]
    click.echo(
        f"loaded {count} labels ({levels[0]} level-1, {levels[1]} level-2, {levels[2]} level-3)"
    )


@taxonomy.command()
@click.pass_context
def show(ctx: click.Context) -> None:
    """Print the stored tree, one label a line, indented by level."""
    from petal_labeller.store.taxonomy import read_taxonomy

    tree = read_taxonomy(connection(ctx))

    def walk(parent: str | None, depth: int) -> None:
        for label_id in tree.children(parent):
            click.echo(f"{'  ' * depth}{label_id}  ({tree[label_id].name})")
            walk(label_id, depth + 1)

    walk(None, 0)
