"""
### PeTaL: label the papers of each day

Every day, for its **data interval**, this DAG selects the papers ingested in
that window that the production model has not labelled, runs batch inference,
checks the output, and writes the labels and a run record in one transaction.

* **Backends** (Param `backend`, else Variable `petal_backend`, else `local`):
  `local` runs the model's own `inference.py` on the worker; `sagemaker` runs a
  batch transform through the Amazon provider (S3 via `aws_default`).
* **Params**: `model_version` (empty = production), `max_papers`,
  `instance_type`, `dry_run` (write nothing).
* **Safe to re-run**: a re-run or backfill of an interval labels nothing twice;
  an empty window is a quick success that creates no SageMaker resource.
* **Cleanup**: the workspace, S3 staging and the SageMaker model are removed
  by teardown tasks whether the run succeeded or failed.
* **Alerts**: a failed run e-mails PETAL_ALERT_TO via connection `petal_smtp`.
* Papers a model cannot read are quarantined and reported; the rest go on.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable

from petal_labeller.airflow.defaults import dag_kwargs, start_date
from petal_labeller.airflow.labelling import INTERVAL, labelling_flow, record_task_failure
from petal_labeller.airflow.params import run_params

with DAG(
    dag_id="petal_label_papers",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=start_date(),
    catchup=True,
    params=run_params(),
    **dag_kwargs(__doc__, tags=["labelling"], on_failure=[record_task_failure]),
):
    labelling_flow(INTERVAL)
