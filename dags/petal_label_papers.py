"""
### PeTaL: label the papers of each day

Every day, for its **data interval**, this DAG selects the papers ingested in
that window that the production model has not labelled, runs batch inference,
checks the output, and writes the labels and a run record in one transaction.

* **Backends** (Param `backend`, else Variable `petal_backend`, else `local`):
  `local` runs the installed package's inference handlers on the worker;
  `sagemaker` runs a batch transform through the Amazon provider (S3 via
  `aws_default`).
* **Params**: `model_version` (empty = production), `max_papers`,
  `instance_type`, `dry_run` (write nothing).
* **Any day**: the schedule catches up from PETAL_START_DATE; a manual run or
  a backfill of an earlier day labels that day too (the DAG has no start_date).
  Every run dated D labels the day that holds D, whatever kind of run it is.
* **No gaps**: a run succeeds only if every paper of its window is labelled or
  quarantined; a run that leaves any (a `max_papers` cap) fails, saying how many.
* **Safe to re-run**: a re-run or backfill of an interval labels nothing twice;
  an empty window is a quick success that creates no SageMaker resource.
* **Cleanup**: the workspace, S3 staging and the SageMaker model are removed
  by teardown tasks whether the run succeeded or failed.
* **Alerts**: a failed run e-mails PETAL_ALERT_TO via connection `petal_smtp`.
* Papers a model cannot read are quarantined and reported; the rest go on.
"""

from __future__ import annotations

from airflow.sdk import DAG

from petal_labeller.airflow.defaults import dag_kwargs, start_date
from petal_labeller.airflow.labelling.flow import INTERVAL, labelling_flow, record_task_failure
from petal_labeller.airflow.labelling.timetable import CatchupFromTimetable
from petal_labeller.airflow.params import run_params

_kwargs = dag_kwargs(__doc__, tags=["labelling"], on_failure=[record_task_failure])
# Catch-up starts where the timetable says, not at a start_date: Airflow gives a manual
# run dated before a task's start_date no tasks at all, and it "succeeds" doing nothing.
# An explicit `start_date: None` tells Airflow's catchup check that this is deliberate.
_kwargs["default_args"]["start_date"] = None

with DAG(
    dag_id="petal_label_papers",
    schedule=CatchupFromTimetable("0 0 * * *", timezone="UTC", start=start_date()),
    catchup=True,
    params=run_params(),
    **_kwargs,
):
    labelling_flow(INTERVAL)
