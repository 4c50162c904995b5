"""The review flow (`petal_review_papers`): send papers to curators, wait, apply the answers.

check_config -> select -> publish -> wait_for_answers (a sensor in reschedule mode:
no worker slot held between looks) -> collect_and_apply (emits Asset
`petal_curated_papers`); cleanup (teardown) closes this batch's unanswered tasks,
so their papers go back to the queue, and removes them from Label Studio or stops
the Ground Truth job. Each task is a few lines over `petal_labeller.review`;
Ground Truth goes through the Amazon provider's hooks (`review.aws`).

At the `timeout_hours` deadline the sensor succeeds with what has been answered
(a Ground Truth job is stopped first, so its output manifest holds the answered
papers): partial results are collected, never lost.
"""

from __future__ import annotations

import logging
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import BaseSensorOperator, Param, Variable, task
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException

from petal_labeller import config
from petal_labeller.airflow import variables
from petal_labeller.airflow.assets import CURATED_PAPERS
from petal_labeller.airflow.names import run_key
from petal_labeller.review.queue import MAX_QUEUE
from petal_labeller.review.selection import SELECTIONS

log = logging.getLogger(__name__)

BACKENDS = ("label_studio", "ground_truth", "files")
#: The sensor's own limit, past any `timeout_hours` the Param allows.
MAX_WAIT = timedelta(days=31)
MAX_TIMEOUT_HOURS = 24 * 30


def poll_seconds() -> int:
    """Read when the DAG is built: a bad value falls back to 10 minutes, with a warning."""
    try:
        return config.get("PETAL_REVIEW_POLL_SECONDS")
    except config.SettingError as exc:
        log.warning("%s; polling every 600 s", exc)
        return 600


def review_params() -> dict[str, Param]:
    return {
        "papers": Param(50, type="integer", minimum=1, maximum=MAX_QUEUE,
                        description="Papers to send to the curators."),
        "backend": Param(
            None, type=["null", "string"], enum=[None, *BACKENDS],
            description=(f"label_studio, ground_truth or files; empty = Variable "
                         f"'{variables.REVIEW_BACKEND}', else files."),
        ),
        "selection": Param("mixed", type="string", enum=list(SELECTIONS),
                           description="uncertain, diverse (k-means over TF-IDF) or mixed."),
        "timeout_hours": Param(168, type="number", minimum=0, maximum=MAX_TIMEOUT_HOURS,
                               description="Collect what is answered after this long."),
        "model_version": Param(None, type=["null", "string"], maxLength=100,
                               description="Whose labels to review; empty = production."),
    }  # fmt: skip


def _connect():
    from petal_labeller.store.connection import connect

    return closing(connect())


def _variable(name: str, default: str | None = None) -> str | None:
    value = Variable.get(name, default=None)
    return value.strip() if isinstance(value, str) and value.strip() else default


def label_studio_client():
    """The client for connection `petal_label_studio`: host (a URL, or host + schema +
    port), token in the password; the token is never logged."""
    from airflow.sdk import BaseHook

    from petal_labeller.review.label_studio import LabelStudio

    conn = BaseHook.get_connection(variables.LABEL_STUDIO_CONN_ID)
    host = (conn.host or "").strip()
    if not host.startswith(("http://", "https://")):
        scheme = conn.schema or "http"
        host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    return LabelStudio(host, conn.password or "")


def resolve_backend(requested: Any) -> str:
    backend = requested or _variable(variables.REVIEW_BACKEND, "files")
    if backend not in BACKENDS:
        raise AirflowFailException(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def _problems(backend: str) -> list[str]:
    if backend == "label_studio":
        from airflow.sdk import BaseHook

        try:
            conn = BaseHook.get_connection(variables.LABEL_STUDIO_CONN_ID)
        except Exception:
            return [f"connection {variables.LABEL_STUDIO_CONN_ID!r} is not defined"]
        missing = [what for what, value in (("host", conn.host), ("password (the API token)",
                   conn.password)) if not value]  # fmt: skip
        return [f"connection {variables.LABEL_STUDIO_CONN_ID!r} has no {m}" for m in missing]
    if backend == "ground_truth":
        from petal_labeller.airflow.aws.config_check import sagemaker_problems

        problems = sagemaker_problems(variables.GROUND_TRUTH)
        if not (_variable(variables.GROUND_TRUTH_ROLE) or _variable(variables.ROLE)):
            problems.append(
                f"Airflow Variable {variables.GROUND_TRUTH_ROLE!r} "
                f"(or {variables.ROLE!r}) is not set"
            )
        return problems
    return []


def _missing_packages(backend: str, selection: str) -> list[str]:
    """What the `[airflow]` extra alone lacks for this run: k-means over TF-IDF (diverse,
    mixed) and the similar curated papers a review file lists need scikit-learn."""
    if selection == "uncertain" and backend != "files":
        return []
    try:
        import sklearn  # noqa: F401
    except ImportError:
        needs = [f"the {selection} selection"] if selection != "uncertain" else []
        needs += ["a review file's similar papers"] if backend == "files" else []
        return [
            f"{' and '.join(needs)} need scikit-learn: install "
            "petal-labeller[airflow,review] on the workers"
        ]
    return []


@task(task_id="check_config", retries=0)
def check_config(**context: Any) -> str:
    """Resolve the backend and refuse a run that cannot work, at once, naming what is missing."""
    try:
        config.load()
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc
    backend = resolve_backend(context["params"]["backend"])
    problems = _problems(backend) + _missing_packages(backend, context["params"]["selection"])
    if problems:
        raise AirflowFailException(
            f"the {backend} backend is not configured: " + "; ".join(problems)
        )
    return backend


@task
def select(backend: str, **context: Any) -> list[dict[str, Any]]:
    """The batch: queue records of the papers to send (none already out with curators)."""
    from petal_labeller.review.selection import select_papers
    from petal_labeller.store.taxonomy import read_taxonomy

    params = context["params"]
    with _connect() as conn:
        records = select_papers(
            conn, read_taxonomy(conn), params["papers"], params["selection"],
            model_version=params.get("model_version"),
            neighbours=3 if backend == "files" else 0,
        )  # fmt: skip
    log.info("Selected %d papers (%s)", len(records), params["selection"])
    return records


def review_folder() -> Path:
    return config.petal_home() / "review"


@task
def publish(backend: str, records: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    """Send the batch; what the later tasks need to find it again (small, for XCom)."""
    from petal_labeller.review import publish as sending
    from petal_labeller.store.taxonomy import read_taxonomy

    sent: dict[str, Any] = {"backend": backend, "sent_at": datetime.now(UTC).isoformat(),
                            "papers": len(records)}  # fmt: skip
    if not records:
        log.info("Nothing to send: the queue is empty or every paper is out with curators")
        return {**sent, "batch": None}
    key = run_key(context["dag"].dag_id, context["run_id"]).replace("/", "-")
    with _connect() as conn:
        taxonomy = read_taxonomy(conn)
        if backend == "files":
            folder = review_folder()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{key}.jsonl"
            sent["batch"] = sending.publish_files(conn, records, path)
            sent["path"] = str(path)
            log.info(
                "Queue file %s: curators fill it in as %s", path, path.with_suffix(".answers.jsonl")
            )
        elif backend == "label_studio":
            from petal_labeller.review.label_studio import DEFAULT_PROJECT

            project_name = _variable(variables.LABEL_STUDIO_PROJECT, DEFAULT_PROJECT)
            project, ids = sending.publish_label_studio(
                conn, label_studio_client(), project_name, records, taxonomy
            )
            sent.update(batch=str(project), project=project, task_ids=ids)
        else:
            from petal_labeller.airflow.review import ground_truth_jobs

            sent.update(ground_truth_jobs.start_job(conn, records, taxonomy, key, context))
    log.info("Sent %d papers: %s batch %s", len(records), backend, sent["batch"])
    return sent


def _deadline(sent: dict[str, Any], hours: float) -> datetime:
    return datetime.fromisoformat(sent["sent_at"]) + timedelta(hours=float(hours))


def waiting(sent: dict[str, Any]) -> int | None:
    """Answers still missing (None: the backend cannot count them)."""
    if sent["backend"] == "files":
        from petal_labeller.review.publish import answers_file

        return 0 if answers_file(Path(sent["path"])) else None
    if sent["backend"] == "label_studio":
        from petal_labeller.review.publish import label_studio_waiting

        return label_studio_waiting(label_studio_client(), sent["project"], sent["task_ids"])
    from petal_labeller.airflow.review import ground_truth_jobs

    return 0 if ground_truth_jobs.finished(sent["batch"]) else None


def _poke(sent: dict[str, Any] | None, timeout_hours: float) -> PokeReturnValue:
    """Done when every paper is answered, or at the deadline (collect what there is)."""
    if not sent or sent["batch"] is None:
        return PokeReturnValue(True, {"timed_out": False})
    missing = waiting(sent)
    if missing == 0:
        return PokeReturnValue(True, {"timed_out": False})
    if datetime.now(UTC) < _deadline(sent, timeout_hours):
        log.info("Waiting for answers: %s", "unknown how many" if missing is None else missing)
        return PokeReturnValue(False)
    if sent["backend"] == "ground_truth":
        from petal_labeller.airflow.review import ground_truth_jobs

        if ground_truth_jobs.stop_job(sent["batch"]):  # its output manifest comes when stopped
            return PokeReturnValue(False)
    log.info("Deadline reached: collecting the answers there are")
    return PokeReturnValue(True, {"timed_out": True})


class AnswersSensor(BaseSensorOperator):
    """Waits for the curators' answers to `publish`'s batch, in reschedule mode.

    A subclass of the SDK's sensor rather than `@task.sensor`: the standard provider's
    PythonSensor behind that decorator imports a deprecated Airflow name, and its
    warning lands in every parse's log.
    """

    def poke(self, context: Any) -> PokeReturnValue:
        sent = context["ti"].xcom_pull(task_ids="publish")
        return _poke(sent, context["params"]["timeout_hours"])


@task(outlets=[CURATED_PAPERS])
def collect_and_apply(sent: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Every answer through `petal review apply`'s checks, in one transaction."""
    from petal_labeller.rejects import RejectSink
    from petal_labeller.review import publish as sending
    from petal_labeller.store.taxonomy import read_taxonomy

    if sent["batch"] is None:
        return {"curated": 0}
    now = datetime.now(UTC)
    folder = review_folder()
    folder.mkdir(parents=True, exist_ok=True)
    rejects_path = folder / f"{sent['backend']}-{sent['batch']}.rejects.jsonl".replace("/", "-")
    with _connect() as conn, RejectSink(rejects_path) as sink:
        taxonomy = read_taxonomy(conn)
        if sent["backend"] == "files":
            answers = sending.answers_file(Path(sent["path"]))
            report = (sending.collect_files(conn, sent["batch"], answers, taxonomy, sink)
                      if answers else sending.CollectReport(rejects=sink))  # fmt: skip
        elif sent["backend"] == "label_studio":
            report = sending.collect_label_studio(conn, label_studio_client(), sent["project"],
                                                  taxonomy, now, sink)  # fmt: skip
        else:
            from petal_labeller.airflow.review import ground_truth_jobs

            report = ground_truth_jobs.collect(conn, sent["batch"], taxonomy, now, sink)
        rejected = sink.count
        for item in sink.first[:20]:
            log.warning("Rejected answer %s: %s", item.line, item.reason)
    if not rejected:
        rejects_path.unlink(missing_ok=True)  # no empty rejects file beside the batch
    summary = {
        "curated": report.curated, "answered": report.answered, "irrelevant": report.irrelevant,
        "not_sure": report.not_sure, "rejected": rejected,
        "rejects": str(rejects_path) if rejected else None,
    }  # fmt: skip
    context["outlet_events"][CURATED_PAPERS].extra = {"count": report.curated, **summary}
    log.info("Collected: %s", summary)
    return summary


@task(task_id="cleanup")
def cleanup(**context: Any) -> list[str]:
    """Close this batch's unanswered tasks: their papers go back to the queue."""
    from petal_labeller.airflow.cleanup_steps import run_cleanup_steps
    from petal_labeller.store import review_tasks

    sent = context["ti"].xcom_pull(task_ids="publish")  # None when publish never finished
    if not sent or sent.get("batch") is None:
        return []
    backend, batch = sent["backend"], sent["batch"]
    mine = [str(i) for i in sent["task_ids"]] if backend == "label_studio" else None
    expired: list[str] = []

    def expire() -> int:
        with _connect() as conn:
            expired.extend(review_tasks.expire_tasks(conn, backend, batch, mine))
        return len(expired)

    steps = [("close the unanswered tasks", expire)]
    if backend == "label_studio":

        def remove() -> int:
            label_studio_client().delete_tasks([int(i) for i in expired])
            return len(expired)

        steps.append(("remove them from Label Studio", remove))
    if backend == "ground_truth":
        from petal_labeller.airflow.review import ground_truth_jobs

        steps.insert(0, ("stop the labelling job", lambda: ground_truth_jobs.stop_job(batch)))
    run_cleanup_steps(steps)
    return expired


def review_flow() -> None:
    backend = check_config()
    records = select(backend)
    sent = publish(backend, records)
    waited = AnswersSensor(
        task_id="wait_for_answers", mode="reschedule", poke_interval=poll_seconds(),
        timeout=MAX_WAIT.total_seconds(),
    )  # fmt: skip
    sent >> waited
    collected = collect_and_apply(sent)
    waited >> collected
    collected >> cleanup().as_teardown(setups=[sent])
