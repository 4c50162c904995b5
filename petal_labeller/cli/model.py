"""`petal model train | predict | evaluate`: thin over petal_labeller.model."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import click

from petal_labeller.cli import EXIT_REJECTED, CommandError
from petal_labeller.outputs import refuse_inputs_as_outputs

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class BatchSize(click.ParamType):
    """PETAL_INFERENCE_BATCH_SIZE's rule for `--batch-size`: click's IntRange reads "١٢"."""

    name = "integer"

    def convert(self, value, param, ctx):
        from petal_labeller import config

        text = str(value)
        setting = config.SETTINGS["PETAL_INFERENCE_BATCH_SIZE"]
        try:
            return setting.parse(text)
        except config.SettingError:
            self.fail(
                f"{config.shown(text)} is not a whole number from {setting.minimum} to "
                f"{setting.maximum}",
                param,
                ctx,
            )


@contextlib.contextmanager
def _user_errors():
    """Our data/artefact/config errors become one line on stderr and exit code 2."""
    from petal_labeller.model.artefact import UnsafeArtefactError
    from petal_labeller.model.config import ConfigError
    from petal_labeller.model.data import TrainingDataError
    from petal_labeller.runtime.errors import ArtefactError

    try:
        yield
    except (ArtefactError, UnsafeArtefactError, ConfigError, TrainingDataError) as exc:
        raise CommandError(str(exc)) from exc


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


@click.group()
def model() -> None:
    """Train, apply and evaluate the multi-label classifier."""


@model.command()
@click.option("--papers", required=True, type=EXISTING_FILE, help="Labelled papers (JSONL).")
@click.option("--taxonomy", required=True, type=EXISTING_FILE, help="taxonomy.json")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--base-model", default=None, help="HF name or local path (default: MiniLM).")
@click.option("--preset", "preset_name", default="default", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KNOB=VALUE", help="Any config knob.")
def train(papers, taxonomy, output, base_model, preset_name, overrides) -> None:
    """Write OUTPUT/model.tar.gz and OUTPUT/evaluation/ (validation report)."""
    from petal_labeller.model.artefact import ARTEFACT_NAME
    from petal_labeller.model.config import from_hyperparameters
    from petal_labeller.model.train import train_artefact

    local_base = base_model if base_model and Path(base_model).exists() else None
    refuse_inputs_as_outputs(
        [("--output", output / ARTEFACT_NAME), ("--output", output / "evaluation")],
        [("--papers", papers), ("--taxonomy", taxonomy), ("--base-model", local_base)],
    )
    _logging()
    with _user_errors():
        values = dict(item.split("=", 1) for item in overrides if "=" in item)
        values["preset"] = preset_name
        if base_model is not None:
            values["base_model"] = base_model
        config = from_hyperparameters(values)
        tar_path = train_artefact(papers, taxonomy, output, config)
    click.echo(str(tar_path))


@model.command()
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--papers", required=True, type=EXISTING_FILE, help="Papers to label (JSONL).")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--batch-size", default=32, show_default=True, type=BatchSize())
def predict(model_path, papers, output, batch_size) -> None:
    """One output line per input line; bad lines are reported and exit code is 1."""
    from petal_labeller.model.predict import predict_file

    partial = output.with_name(output.name + ".partial")  # written first, then renamed
    refuse_inputs_as_outputs(
        [("--output", output), ("--output", partial)],
        [("--model", model_path), ("--papers", papers)],
    )
    _logging()
    with _user_errors():
        summary = predict_file(model_path, papers, output, batch_size=batch_size)
    click.echo(
        f"labelled {summary.labelled} of {summary.lines} papers in {summary.seconds:.1f} s "
        f"({summary.precision}) -> {output}"
    )
    for error in summary.errors:
        click.echo(f"{papers} line {error['line']}: {error['error']}", err=True)
    if summary.errors:
        raise SystemExit(EXIT_REJECTED)


@model.command()
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path))
@click.option("--papers", required=True, type=EXISTING_FILE, help="Labelled papers (JSONL).")
@click.option("--taxonomy", type=EXISTING_FILE, help="Needed without --model.")
@click.option("--baseline-train", type=EXISTING_FILE, help="Fit TF-IDF+SVM on these papers too.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--split",
    type=click.Choice(["fixed", "cv"]),
    default=None,
    help="Without --model: train the preset on the shared folds (fold 0, or all k).",
)
@click.option("--folds", default=5, show_default=True)
@click.option("--preset", "preset_name", default="default", show_default=True)
def evaluate(model_path, papers, taxonomy, baseline_train, report_dir, split, folds, preset_name):
    """Print P@1/3/5, nDCG@3/5, micro/macro F1 and F1 per level (JSON)."""
    from petal_labeller.model.config import preset
    from petal_labeller.model.evaluate import evaluate_artefact, run_experiment

    refuse_inputs_as_outputs(
        [("--report", report_dir)],
        [("--model", model_path), ("--papers", papers), ("--taxonomy", taxonomy),
         ("--baseline-train", baseline_train)],
    )  # fmt: skip
    _logging()
    with _user_errors():
        if model_path is not None:
            rows = evaluate_artefact(
                model_path, papers, baseline_train=baseline_train, report_dir=report_dir
            )
        else:
            if taxonomy is None or split is None or report_dir is None:
                raise CommandError("without --model, give --taxonomy, --split and --report")
            result = run_experiment(
                papers,
                taxonomy,
                report_dir,
                preset(preset_name),
                folds=[0] if split == "fixed" else None,
                n_folds=folds,
            )
            rows = result["rows"]
    click.echo(json.dumps(rows, indent=2))


def _announce(model, previous: str | None, airflow_url: str | None) -> None:
    from petal_labeller.cli.airflow_api import AirflowApiError, notify_promotion
    from petal_labeller.pipeline.promotion import asset_event_extra

    click.echo(f"promoted {model.version} (was {previous or 'none'})")
    try:
        click.echo(notify_promotion(asset_event_extra(model.version, previous), airflow_url))
    except AirflowApiError as exc:
        raise CommandError(
            f"{model.version} is production, but Airflow was not told: {exc}"
        ) from exc


def _airflow_target(airflow_url: str | None) -> None:
    """Refuse a bad Airflow URL or missing credentials before anything is promoted."""
    from petal_labeller.cli.airflow_api import AirflowApiError, airflow_target

    try:
        airflow_target(airflow_url)
    except AirflowApiError as exc:
        raise CommandError(str(exc)) from exc


AIRFLOW_URL = click.option(
    "--airflow-url",
    metavar="URL",
    help="Airflow API server to send the Asset event to (default $PETAL_AIRFLOW_URL; "
    "user/password from PETAL_AIRFLOW_USER / PETAL_AIRFLOW_PASSWORD); unset: no event.",
)


@model.command()
@click.argument("artefact")
@click.option("--version", "version", required=True, help="Name of the new model version.")
@click.option("--base-model", help="Recorded base model (default: the artefact's model card).")
@click.option("--promote", is_flag=True, help="Also make it the production model.")
@AIRFLOW_URL
@click.pass_context
def register(ctx, artefact: str, version: str, base_model, promote: bool, airflow_url) -> None:
    """Register ARTEFACT (a model.tar.gz path or an s3:// URI) as model VERSION.

    A local artefact is checked against the stored taxonomy and kept under
    PETAL_HOME/models/VERSION/; with --promote the version becomes production
    and, like the training DAG, updates the Asset that starts petal_relabel_papers.
    """
    from petal_labeller.cli import database_url
    from petal_labeller.pipeline.promotion import check_artefact_uri, register_model

    with _user_errors():
        check_artefact_uri(artefact)
        if "://" not in artefact and not Path(artefact).is_file():
            raise CommandError(f"{artefact}: no such file")
        if promote:
            _airflow_target(airflow_url)

        registered, previous = register_model(
            version,
            artefact,
            base_model=base_model,
            promote=promote,
            database_url=database_url(ctx),
        )
    click.echo(f"registered {registered.version} ({registered.artefact_uri})")
    if promote:
        _announce(registered, previous, airflow_url)


@model.command()
@click.argument("version")
@AIRFLOW_URL
@click.pass_context
def promote(ctx, version: str, airflow_url) -> None:
    """Make the registered VERSION the production model (and update its Asset)."""
    from petal_labeller.cli import database_url
    from petal_labeller.pipeline.promotion import promote_version

    _airflow_target(airflow_url)
    with _user_errors():
        promoted, previous = promote_version(version, database_url(ctx))
    _announce(promoted, previous, airflow_url)


def _model_to_compare(ctx, name: str, what: str) -> tuple[Path, str | None]:
    """(artefact on this machine, registered version or None) for a PATH, VERSION or
    `production`; the database is only asked when `name` is not a file."""
    from petal_labeller.cli import database_url
    from petal_labeller.pipeline.infer import local_path
    from petal_labeller.store.connection import connect
    from petal_labeller.store.models import get_model_version, production_model
    from petal_labeller.versions import VERSION_PATTERN

    if Path(name).is_file():
        return Path(name), None
    if "/" in name or name.endswith(".tar.gz") or not re.fullmatch(VERSION_PATTERN, name):
        raise CommandError(f"{what} {name}: no such file")
    with contextlib.closing(connect(database_url(ctx))) as conn:
        found = production_model(conn) if name == "production" else get_model_version(conn, name)
    if found is None:
        raise CommandError(
            f"{what} {name!r}: no production model"
            if name == "production"
            else f"{what} {name!r}: no such file and no registered model version"
        )
    try:
        path = local_path(found.artefact_uri)
    except ValueError as exc:
        raise CommandError(f"{what} {found.version}: {exc}") from exc
    if not path.is_file():
        raise CommandError(f"{what} {found.version}: artefact {path} is missing")
    return path, found.version


def _comparison_lines(report: dict) -> list[str]:
    lines = [
        f"{report['candidate']} vs {report['against']} on {report['papers']} papers "
        f"(paired bootstrap, {report['resamples']} resamples, seed {report['seed']}):"
    ]
    for name, gain in report["gains"].items():
        lines.append(
            f"  {name:<9} {gain['candidate']:.4f} vs {gain['production']:.4f}  "
            f"gain {gain['gain']:+.4f}  95% [{gain['low']:+.4f}, {gain['high']:+.4f}]"
        )
    for which, churn in (("held-out", report["heldout_churn"]), ("store", report["store_churn"])):
        if churn:
            of = f" (a sample of {churn['population']})" if churn["sample"] else ""
            lines.append(
                f"  churn ({which}): {churn['changed']} of {churn['papers']} papers{of} "
                f"change label set, +{churn['labels_added']} -{churn['labels_removed']} labels"
            )
    return lines


@model.command()
@click.argument("candidate")
@click.option(
    "--against",
    default="production",
    show_default=True,
    help="`production`, a registered VERSION or a model.tar.gz PATH.",
)
@click.option("--papers", required=True, type=EXISTING_FILE, help="Held-out labelled papers.")
@click.option(
    "--store-sample",
    default=200,
    show_default=True,
    help="Against a registered version: also relabel (dry) up to this many of the papers "
    "it labelled in the store and count the changes; 0 = skip.",
)
@click.option("--resamples", default=2000, show_default=True, type=click.IntRange(min=100))
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.pass_context
def compare(ctx, candidate, against, papers, store_sample, resamples, seed, as_json) -> None:
    """Per-metric gain of CANDIDATE (a PATH or VERSION) over --against on the same labelled
    papers, with its 95% paired-bootstrap interval, and the label churn."""
    from petal_labeller.cli import database_url
    from petal_labeller.model.compare import ComparisonError, compare_artefacts
    from petal_labeller.pipeline.churn import store_churn

    candidate_path, candidate_version = _model_to_compare(ctx, candidate, "candidate")
    against_path, against_version = _model_to_compare(ctx, against, "--against")
    with _user_errors():
        try:
            result = compare_artefacts(candidate_path, against_path, papers, resamples, seed)
        except ComparisonError as exc:
            raise CommandError(str(exc)) from exc
        if against_version and store_sample > 0:
            churn = store_churn(candidate_path, against_version, store_sample, database_url(ctx))
            result = result.with_store_churn(churn)
    report = {
        "candidate": candidate_version or str(candidate_path),
        "against": against_version or str(against_path),
        **result.as_dict(),
    }
    click.echo(json.dumps(report, indent=2) if as_json else "\n".join(_comparison_lines(report)))
