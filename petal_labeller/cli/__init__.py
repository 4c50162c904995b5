"""`petal`: the command line, a thin shell over the library.

Subcommand groups live in their own modules and are imported only when used,
so `petal --help` and quick commands start fast. To add a group, add one line
to `COMMANDS` ("name": "module:attribute").

Exit codes: 0 success; 1 the command ran but refused some input (e.g. rejected
records on import); 2 usage error or the command could not run (database
unavailable, schema missing, bad file): one line on stderr, never a traceback.
"""

from __future__ import annotations

import importlib

import click

#: Subcommand name -> "module:attribute" of its click command or group.
COMMANDS: dict[str, str] = {
    "db": "petal_labeller.cli.db:db",
    "taxonomy": "petal_labeller.cli.taxonomy:taxonomy",
    "papers": "petal_labeller.cli.papers:papers",
    "labels": "petal_labeller.cli.labels:labels",
    "stats": "petal_labeller.cli.stats:stats",
    "demo": "petal_labeller.cli.demo:demo",
    "model": "petal_labeller.cli.model:model",
    "review": "petal_labeller.cli.review:review",
    "label": "petal_labeller.cli.label:label",
    "airflow": "petal_labeller.cli.airflow_env:airflow",
}

EXIT_REJECTED = 1
EXIT_FAILED = 2


class CommandError(click.ClickException):
    """A command cannot do its job; click prints `Error: <message>` and exits 2."""

    exit_code = EXIT_FAILED


def expected_error(exc: BaseException) -> str | None:
    """A one-line message for errors users can fix; None for bugs (which keep their traceback)."""
    from petal_labeller.config import SettingError
    from petal_labeller.outputs import OutputPathError
    from petal_labeller.papers import PaperError
    from petal_labeller.store.connection import DatabaseUnavailable
    from petal_labeller.store.migrations import MigrationError
    from petal_labeller.store.unit import StoreError
    from petal_labeller.taxonomy import TaxonomyError
    from petal_labeller.versions import VersionNameError

    if isinstance(
        exc,
        DatabaseUnavailable
        | MigrationError
        | StoreError
        | TaxonomyError
        | PaperError
        | SettingError
        | VersionNameError
        | OutputPathError,
    ):
        return str(exc)
    from petal_labeller.extras import MissingExtraError, extra_for_module

    if isinstance(exc, MissingExtraError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and extra_for_module(exc.name):
        extra = extra_for_module(exc.name)
        return (
            f"this command needs petal-labeller's {extra!r} extra (no module {exc.name!r}): "
            f"pip install 'petal-labeller[{extra}]' -c requirements.txt"
        )
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    import psycopg2.errors

    if isinstance(exc, psycopg2.errors.UndefinedTable):
        return "the database has no PeTaL schema yet: run `petal db upgrade` first"
    if isinstance(exc, psycopg2.OperationalError):
        from petal_labeller.store.unit import one_line

        return f"database error: {one_line(exc)}"
    return None


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented pattern)."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attribute = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            message = expected_error(exc)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            ctx.exit(EXIT_FAILED)


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="PostgreSQL URL (default: $PETAL_DATABASE_URL, else an embedded server in PETAL_HOME).",
)
@click.version_option(package_name="petal-labeller")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """PeTaL Labeller: label biology papers with the functions nature performs."""
    ctx.obj = {"database_url": database_url or None}


def database_url(ctx: click.Context) -> str | None:
    """The `--database-url` given to `petal`, if any (None: configured or embedded)."""
    return (ctx.find_root().obj or {}).get("database_url")


def connection(ctx: click.Context):
    """A connection for this command, closed when the command ends."""
    from petal_labeller.store.connection import connect

    conn = connect(database_url(ctx))
    ctx.call_on_close(conn.close)
    return conn
