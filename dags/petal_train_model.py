"""
### PeTaL: retrain the labeller, promote it only if it is really better

Weekly, when a review batch is applied (the Asset `petal_curated_papers`:
it trains once `petal_retrain_min_curated` papers, default 50, were curated
since the production model), or by hand with Params: exports the curator-labelled papers
(a stable held-out split by paper identity), trains a candidate (`local` on the
worker, or a SageMaker training job via the Amazon provider), scores the
candidate **and** the current production model on the same held-out papers
with the same scoring. `quality_gate` bootstraps the gain (paired, 95%
intervals for micro-F1, P@1, P@3, nDCG@3) and counts the label churn: it
promotes on its own only when the micro-F1 gain's lower bound clears
`gate_margin` and churn is under `max_churn`; a clearly worse candidate keeps
production; otherwise **`approve` asks a person** (Required Actions: both
models' numbers, churn, training data, the model card). Reject or no answer
within `approval_timeout_hours` keeps production; `record_decision` writes who
decided onto the version's row in `model_versions`. On
`sagemaker` both models label the held-out papers in SageMaker batch
transforms (the serving image) and the worker only scores their output, so it
needs no torch; every SageMaker model the run made is deleted at the end.

Promotion registers the model version in the PeTaL database and updates the
Asset `petal_production_model`, which starts `petal_relabel_papers` to label
every paper with the new model.

* **Params**: `model_version` (name of the new version), `backend`,
  `max_papers`, `instance_type` (training), `evaluation_instance_type`
  (the held-out transforms), `dry_run` (evaluate, do not promote),
  `preset`, `train_options` (training config overrides), `approval`
  (`auto` | `required` | `never`), `gate_margin`, `max_churn`,
  `store_churn_sample`, `approval_timeout_hours`.
* **Alerts**: a failed run e-mails PETAL_ALERT_TO via connection `petal_smtp`.
"""

from __future__ import annotations

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable

from petal_labeller.airflow.assets import CURATED_PAPERS
from petal_labeller.airflow.defaults import dag_kwargs
from petal_labeller.airflow.training.flow import training_flow, training_params

_kwargs = dag_kwargs(__doc__, tags=["model"])
# No start_date (as petal_label_papers): Airflow gives a manual run dated before a task's
# start_date no tasks at all, so a retrain triggered with an earlier logical date would
# "succeed" having trained nothing. Without catch-up the weekly schedule needs no start.
_kwargs["default_args"]["start_date"] = None

with DAG(
    dag_id="petal_train_model",
    # Weekly, and when a review batch is applied (enough_curated counts the new papers).
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@weekly", timezone="UTC"), assets=CURATED_PAPERS
    ),
    catchup=False,
    params=training_params(),
    **_kwargs,
):
    training_flow()
