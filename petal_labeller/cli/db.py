"""`petal db ...`: schema management."""

from __future__ import annotations

import click

from petal_labeller.cli import connection


@click.group()
def db() -> None:
    """The database schema."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Apply pending migrations (safe to run any number of times)."""
    from petal_labeller.store.migrations import upgrade as apply

    applied = apply(connection(ctx))
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        click.echo("schema is up to date")
