"""`pip install petal-labeller[airflow]` as a team with its own Airflow does it: the wheel in
a fresh virtualenv, requirements.txt as constraints, and no torch on the Airflow side.

SageMaker is a moto server with the fake container of tests/fixtures/airflow.py, both in
this (full) process: the container needs torch, the Airflow side must not.
"""

from __future__ import annotations

import json
import subprocess
from contextlib import closing
from pathlib import Path

import boto3
import pytest

from petal_labeller.store.connection import connect
from tests.fixtures.airflow import AWS_REGION, BUCKET, RUN_DATE_ISO, TINY_TRAINING
from tests.fixtures.packaging import REPO_ROOT, venv_env

pytestmark = pytest.mark.slow

DAG_RUN = Path(__file__).with_name("venv_dag_run.py")
DAG_IDS = [
    "petal_label_papers",
    "petal_relabel_papers",
    "petal_review_papers",
    "petal_train_model",
]


def _run(bin_dir: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """A command of the venv, outside the checkout (so the checkout is not importable)."""
    return subprocess.run(
        args, cwd=cwd, env=venv_env(bin_dir, **env), capture_output=True, text=True, timeout=300
    )


def _python(bin_dir: Path, code: str, cwd: Path, **env: str) -> dict:
    result = _run(bin_dir, [str(bin_dir / "python"), "-c", code], cwd, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _errors(output: str) -> str:
    """The lines of a run's output that say what failed (a full log is too long to read)."""
    lines = [line for line in output.splitlines() if "Error" in line or "Exception" in line]
    return "\n".join(lines[-30:]) + "\n...\n" + output[-2000:]


def _dag_run(
    bin_dir: Path, cwd: Path, conf: dict, *flags: str, dag_id: str = "petal_label_papers"
) -> tuple[dict, str]:
    """`dag.test()` of a DAG in the venv: (its JSON summary, everything it printed)."""
    args = [str(bin_dir / "python"), str(DAG_RUN), dag_id, RUN_DATE_ISO]
    result = _run(bin_dir, [*args, json.dumps(conf), *flags], cwd)
    output = result.stdout + result.stderr
    assert result.returncode == 0, _errors(output)
    return json.loads(result.stdout.strip().splitlines()[-1]), output


def test_the_airflow_extra_installs_airflow_and_no_model_stack(airflow_venv, tmp_path):
    found = _python(
        airflow_venv,
        "import importlib.util, json, petal_labeller\n"
        "names = ['airflow', 'airflow.providers.amazon', 'airflow.providers.smtp',\n"
        "         'torch', 'transformers', 'numpy', 'sklearn', 'safetensors']\n"
        "print(json.dumps({'package': petal_labeller.__file__,\n"
        "    **{n: importlib.util.find_spec(n) is not None for n in names}}))",
        tmp_path,
    )
    assert "site-packages" in found.pop("package")
    assert found == {
        "airflow": True,
        "airflow.providers.amazon": True,
        "airflow.providers.smtp": True,
        "torch": False,
        "transformers": False,
        "numpy": True,  # the worker's pre-run artefact check reads thresholds with it
        "sklearn": False,
        "safetensors": False,
    }
    check = _run(airflow_venv, [str(airflow_venv / "python"), "-m", "pip", "check"], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("plugins_folder", ["empty", "checkout"])
def test_airflow_lists_the_plugin_once_from_its_entry_point(airflow_venv, tmp_path, plugins_folder):
    """No plugins folder needed; and the checkout's plugins/ does not register it a second time."""
    folder = REPO_ROOT / "plugins" if plugins_folder == "checkout" else tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    result = _run(
        airflow_venv,
        [str(airflow_venv / "airflow"), "plugins", "--output", "json"],
        tmp_path,
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    plugins = json.loads(result.stdout[result.stdout.index("[") :])
    assert [p["name"] for p in plugins] == ["petal"]
    (petal,) = plugins
    assert "EntryPoint(name='petal'" in petal["source"]
    assert "petal_labeller.airflow.plugin:PetalPlugin" in petal["source"]
    assert [app["url_prefix"] for app in petal["fastapi_apps"]] == ["/petal"]
    assert "already registered" not in result.stdout + result.stderr


def test_the_packaged_dags_parse_as_a_folder_and_as_a_dag_bundle(airflow_venv, tmp_path):
    bundle = {"name": "petal", "classpath": "petal_labeller.airflow.bundle.PetalDagBundle"}
    parsed = _python(
        airflow_venv,
        "import json, sys\n"
        "from airflow.dag_processing.bundles.manager import DagBundlesManager\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "path = str(DagBundlesManager().get_bundle('petal').path)\n"
        "bag = DagBag(path)\n"
        "print(json.dumps({'path': path, 'dags': sorted(bag.dag_ids),\n"
        "    'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "    'torch': 'torch' in sys.modules}))",
        tmp_path,
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps([{**bundle, "kwargs": {}}]),
    )
    assert parsed["errors"] == {}
    assert parsed["dags"] == DAG_IDS
    assert parsed["torch"] is False
    # The documented one-liner for a team's own DAG folder prints the same folder.
    helper = [str(airflow_venv / "python"), "-m", "petal_labeller.airflow.dag_files"]
    printed = _run(airflow_venv, helper, tmp_path).stdout.strip()
    assert printed == parsed["path"]
    assert printed.endswith("site-packages/petal_labeller/dags")
    assert sorted(p.name for p in Path(printed).glob("petal_*.py")) == [
        f"{dag_id}.py" for dag_id in DAG_IDS
    ]


def test_a_sagemaker_labelling_run_completes_without_torch(
    airflow_venv, airflow_db, labelling_database, petal_home, moto_sagemaker, tmp_path
):
    summary, output = _dag_run(airflow_venv, tmp_path, {"backend": "sagemaker"})

    assert summary["state"] == "success", _errors(output)
    assert summary["tasks"]["sagemaker.transform"] == "success"
    assert summary["tasks"]["infer_local"] == "skipped"
    assert summary["heavy_modules"] == []
    assert "site-packages" in summary["package"]
    assert len(moto_sagemaker.jobs) == 1
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION
    )
    assert sagemaker.list_models()["Models"] == []
    with closing(connect(labelling_database)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, papers_selected, papers_labelled, papers_rejected FROM labelling_runs"
        )
        assert cur.fetchall() == [("success", 12, 11, 1)]
        cur.execute("SELECT count(DISTINCT paper_id) FROM paper_labels WHERE origin = 'model'")
        assert cur.fetchone()[0] > 0


def test_a_sagemaker_training_run_completes_without_torch(
    airflow_venv, airflow_db, curated_with_tiny_production, petal_home, moto_sagemaker,
    tmp_path,
):  # fmt: skip
    """Training and both models' held-out transforms in SageMaker; the worker only scores."""
    curated_database = curated_with_tiny_production
    conf = {"backend": "sagemaker", "model_version": "pkg-1", "train_options": TINY_TRAINING}
    conf["approval"] = "never"  # nobody answers an approval here

    summary, output = _dag_run(airflow_venv, tmp_path, conf, dag_id="petal_train_model")

    assert summary["state"] == "success", _errors(output)
    tasks = summary["tasks"]
    assert tasks["train_local"] == "skipped"
    for task_id in ("train", "transform_candidate", "transform_production", "download_results"):
        assert tasks[f"sagemaker.{task_id}"] == "success", task_id
    assert summary["heavy_modules"] == []
    evaluated = summary["evaluated"]
    assert evaluated["production_version"] == "tiny"
    papers = evaluated["candidate"]["papers"]
    assert 0 < papers == evaluated["production"]["papers"]  # the same held-out papers
    gate = tasks["auto_promote"] == "success"  # the paired bootstrap's call, on the worker
    assert tasks["promote"] == ("success" if gate else "skipped")
    assert tasks["approve"] == "skipped"
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION
    )
    assert len(moto_sagemaker.jobs) == 3  # training, then one transform per model
    assert sagemaker.list_models()["Models"] == []
    s3 = boto3.client("s3", endpoint_url=moto_sagemaker.endpoint_url, region_name=AWS_REGION)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="petal/training/").get("KeyCount", 0) == 0
    with closing(connect(curated_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM model_versions WHERE is_production")
        assert cur.fetchall() == [("pkg-1",) if gate else ("tiny",)]


@pytest.mark.parametrize(
    ("dag_id", "next_task"),
    [("petal_label_papers", "stage"), ("petal_train_model", "export")],
)
def test_a_local_run_fails_at_once_naming_the_extra(
    airflow_venv, airflow_db, labelling_database, petal_home, moto_sagemaker, tmp_path,
    dag_id, next_task,
):  # fmt: skip
    conf = {"backend": "local"}
    summary, output = _dag_run(airflow_venv, tmp_path, conf, "--keep-retries", dag_id=dag_id)

    assert summary["state"] == "failed"
    assert summary["tasks"]["check_config"] == "failed"
    assert summary["tries"]["check_config"] == 1
    assert summary["tasks"][next_task] in ("upstream_failed", None)
    assert "pip install 'petal-labeller[local]'" in output
    assert moto_sagemaker.jobs == []
    with closing(connect(labelling_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM paper_labels WHERE origin = 'model'")
        assert cur.fetchone()[0] == 0
