"""Every DAG file imports cleanly and carries what operators need: tags, owner, retries, docs."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest

from tests.fixtures.airflow import DAGS_FOLDER

DAG_FILES = sorted(path.name for path in DAGS_FOLDER.glob("*.py"))
EXPECTED_DAGS = {"petal_label_papers", "petal_relabel_papers", "petal_train_model"}


def test_every_dag_file_imports_without_errors(dag_bag):
    assert dag_bag.import_errors == {}
    assert set(dag_bag.dag_ids) >= EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_has_tags_owner_retries_docs_and_alert(dag_bag, dag_id):
    dag = dag_bag.get_dag(dag_id)
    assert "petal" in dag.tags
    assert dag.doc_md and len(dag.doc_md) > 200
    assert dag.max_active_runs >= 1
    # One alert per failed run, from the DAG (it runs in the dag-processor, whatever failed).
    assert dag.on_failure_callback and dag.on_success_callback
    for task in dag.tasks:
        assert task.on_failure_callback, f"{task.task_id} must record its error"
        assert task.owner == "petal", task.task_id
        if task.task_id == "check_config":  # a configuration error is not retried
            assert task.retries == 0
            continue
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff, task.task_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_check_config_runs_before_anything_else(dag_bag, dag_id):
    dag = dag_bag.get_dag(dag_id)
    roots = [task.task_id for task in dag.roots]
    assert roots == ["check_config"], roots


def test_relabelling_is_not_paused_when_created(dag_bag):
    """A promotion's Asset event must start a relabel run without anyone unpausing it."""
    assert dag_bag.get_dag("petal_relabel_papers").is_paused_upon_creation is False


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_offers_the_run_params(dag_bag, dag_id):
    params = dag_bag.get_dag(dag_id).params
    for name in ("model_version", "backend", "max_papers", "instance_type", "dry_run"):
        assert name in params, name
    assert params["backend"] is None or params["backend"] in ("local", "sagemaker")
    assert params["dry_run"] is False


@pytest.mark.parametrize(
    "conf",
    [{"backend": "azure"}, {"max_papers": 0}, {"dry_run": "maybe"}, {"model_version": 3}],
    ids=["unknown backend", "max_papers below 1", "dry_run not a boolean", "version not text"],
)
def test_invalid_run_conf_is_refused_by_the_params(dag_bag, conf):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag_bag.get_dag("petal_label_papers").params)
    with pytest.raises(ParamValidationError):
        params.update(conf)
        params.validate()


def test_valid_run_conf_passes_the_params(dag_bag):
    params = copy.deepcopy(dag_bag.get_dag("petal_label_papers").params)
    params.update({"backend": "sagemaker", "max_papers": 5, "dry_run": True, "model_version": "v1"})
    assert params.validate()["backend"] == "sagemaker"


def test_labelling_dag_is_daily_with_catchup_and_real_data_intervals(dag_bag):
    from airflow.timetables.interval import CronDataIntervalTimetable

    from petal_labeller.airflow.defaults import start_date

    dag = dag_bag.get_dag("petal_label_papers")
    assert dag.catchup is True
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    # Catch-up starts at the timetable's start; no start_date, so that no manual run is
    # given zero tasks for being dated before it (issue 11, item 3).
    assert dag.timetable.start == start_date()
    assert dag.start_date is None and all(task.start_date is None for task in dag.tasks)


def test_training_dag_is_weekly_without_a_start_date(dag_bag):
    """A retrain triggered with any logical date runs its tasks (no start_date to be
    dated before), and the scheduler still starts one run a week."""
    from airflow.sdk import CronTriggerTimetable

    dag = dag_bag.get_dag("petal_train_model")
    weekly = dag.timetable.timetable  # and on applied review batches (tests/review)
    assert isinstance(weekly, CronTriggerTimetable) and dag.catchup is False
    assert weekly.expression == "0 0 * * 0"  # @weekly: Sundays, midnight UTC
    assert dag.start_date is None and all(task.start_date is None for task in dag.tasks)


def test_cleanup_tasks_are_teardowns_that_do_not_hide_a_failure(dag_bag):
    """Teardowns run whatever happened; left out of the run state, a failed run stays failed
    (a failing teardown records its error, and the DAG's success callback alerts)."""
    dag = dag_bag.get_dag("petal_label_papers")
    for task_id in ("cleanup", "sagemaker.delete_model"):
        task = dag.get_task(task_id)
        assert task.is_teardown and not task.on_failure_fail_dagrun, task_id
        assert task.on_failure_callback, task_id


def test_relabelling_runs_on_the_production_model_asset(dag_bag):
    from petal_labeller.airflow.assets import PRODUCTION_MODEL

    relabel = dag_bag.get_dag("petal_relabel_papers")
    assert PRODUCTION_MODEL in relabel.timetable.asset_condition.objects
    promote = dag_bag.get_dag("petal_train_model").get_task("promote")
    assert PRODUCTION_MODEL in promote.outlets


PARSE_ONE_FILE = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(sys.argv[1])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
    print(json.dumps({"errors": bag.import_errors, "dags": bag.dag_ids, "heavy": heavy[:5]}))
    """
)


@pytest.mark.parametrize("name", DAG_FILES)
def test_parsing_a_dag_file_is_light(airflow_db, name):
    """A fresh interpreter parses the file without torch/transformers (the seconds a heavy
    import costs at every parse); no timed assertion: parse time is load, not behaviour."""
    result = subprocess.run(
        [sys.executable, "-c", PARSE_ONE_FILE, str(DAGS_FOLDER / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"]
    assert report["heavy"] == [], f"{name} imports {report['heavy']} at parse time"


#: Issue 24 item 14: each of these once broke the import of every DAG, or passed.
BAD_SETTINGS = {
    "PETAL_START_DATE": "next tuesday",
    "PETAL_SAGEMAKER_POLL_SECONDS": "abc",
    "PETAL_ALERT_TO": "nobody",
}


@pytest.mark.parametrize("name", DAG_FILES)
def test_a_bad_setting_never_breaks_a_dag_import(airflow_db, name):
    import os

    result = subprocess.run(
        [sys.executable, "-c", PARSE_ONE_FILE, str(DAGS_FOLDER / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, **BAD_SETTINGS},
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {} and report["dags"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PETAL_START_DATE", "2026-13-01"),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "-5"),
        ("PETAL_SAGEMAKER_POLL_SECONDS", "١٢"),
        ("PETAL_INFERENCE_BATCH_SIZE", "9" * 5000),
    ],
)
def test_a_bad_setting_fails_check_config_naming_it(dag_bag, monkeypatch, name, value):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv(name, value)
    check = dag_bag.get_dag("petal_label_papers").get_task("check_config")
    with pytest.raises(AirflowFailException) as failed:
        check.python_callable(params={"backend": "local"})
    assert str(failed.value).startswith(f"{name}=") and len(str(failed.value)) < 160


#: Issue 24 item 13: each of these passed the Params, then failed (or misbehaved) in a task.
BAD_PARAMS = [
    ("petal_label_papers", {"model_version": "v1\n"}),
    ("petal_train_model", {"model_version": "v1\n"}),
    ("petal_label_papers", {"max_papers": 2**63}),
    ("petal_label_papers", {"max_papers": 10**30}),
    ("petal_relabel_papers", {"max_papers": 10**30}),
    ("petal_train_model", {"max_papers": 2**63}),
    ("petal_train_model", {"train_options": {"seed": "abc"}}),
    ("petal_train_model", {"train_options": {"tfidf_char": "no"}}),
    ("petal_train_model", {"train_options": {"max_length": "100"}}),
    ("petal_train_model", {"train_options": {"tune_folds": 1e9}}),
    ("petal_train_model", {"train_options": {"tune_folds": 10**9}}),
    ("petal_train_model", {"train_options": {"pooling": "max"}}),
    ("petal_train_model", {"train_options": {"learning_rate": 1}}),
    ("petal_train_model", {"train_options": {"preset": "demo"}}),
    ("petal_train_model", {"preset": "nonesuch"}),
]


@pytest.mark.parametrize(("dag_id", "conf"), BAD_PARAMS, ids=[str(c) for _, c in BAD_PARAMS])
def test_every_param_is_typed_and_bounded_in_its_schema(dag_bag, dag_id, conf):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag_bag.get_dag(dag_id).params)
    with pytest.raises(ParamValidationError):
        params.update(conf)
        params.validate()


def test_good_training_options_pass_the_schema(dag_bag):
    params = copy.deepcopy(dag_bag.get_dag("petal_train_model").params)
    options = {"seed": 7, "tfidf_char": False, "max_length": 128, "tfidf_c": 1, "knn_k": 0}
    params.update({"preset": "demo", "train_options": options, "max_papers": 10_000_000})
    assert params.validate()["train_options"] == options
