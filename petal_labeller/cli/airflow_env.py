"""`petal airflow ...`: a working `airflow standalone` on a laptop, on any port.

`eval "$(petal airflow env --port N)"` sets what Airflow needs (stdout, nothing
secret); what it set up, the store's URL included, goes to stderr as comments, so
the user sees it and a `2>&1` still evals.
"""

from __future__ import annotations

import click

from petal_labeller.airflow.laptop.env import DEFAULT_PORT, METADATA_DATABASE


@click.group()
def airflow() -> None:
    """Airflow on this machine: its settings, and stopping the embedded PostgreSQL."""


@airflow.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    envvar="AIRFLOW__API__PORT",
    default=DEFAULT_PORT,
    show_default=True,
    help="The API server's (and UI's) port; default: $AIRFLOW__API__PORT, else 8080.",
)
@click.option(
    "--host",
    default="localhost",
    show_default=True,
    help="The host name tasks and browsers reach the API server by.",
)
@click.option(
    "--metadata-database",
    default=METADATA_DATABASE,
    show_default=True,
    help="Airflow's metadata database on the store's server (created if missing).",
)
def env(port: int, host: str, metadata_database: str) -> None:
    """Print `export` lines for `eval`: the API's port and URLs, metadata in PostgreSQL."""
    from petal_labeller.airflow.laptop.env import laptop_env
    from petal_labeller.extras import require_extra

    require_extra("airflow", "petal airflow env")
    try:
        setup = laptop_env(port, host, metadata_database)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from exc
    where = (
        f"the embedded PostgreSQL in {setup.embedded}; stop it with `petal airflow stop-db`"
        if setup.embedded
        else "PETAL_DATABASE_URL"
    )
    click.echo(f"# PeTaL store:      {setup.store} ({where})", err=True)
    click.echo(f"# Airflow metadata: {setup.metadata}", err=True)
    click.echo(f"# Airflow UI:       {setup.ui_url} (once `airflow standalone` is up)", err=True)
    click.echo(setup.shell(), nl=False)


@airflow.command("stop-db")
def stop_db() -> None:
    """Stop the embedded PostgreSQL (store and Airflow metadata); stop Airflow first."""
    from petal_labeller import config
    from petal_labeller.store.connection import stop_embedded

    data_dir = config.petal_home() / "pgdata"
    if stop_embedded(data_dir):
        click.echo(f"stopped the embedded PostgreSQL in {data_dir}")
    else:
        click.echo(f"the embedded PostgreSQL in {data_dir} is not running")
