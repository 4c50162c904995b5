"""
### PeTaL: retrain the labeller, promote it only if it is better

Weekly, or triggered by hand with Params: exports the curator-labelled papers
(a stable held-out split by paper identity), trains a candidate (`local` on the
worker, or a SageMaker training job via the Amazon provider), scores the
candidate **and** the current production model on the same held-out papers,
and promotes the candidate only if it beats production on micro-F1 (the
`quality_gate` task log shows both sets of numbers).

Promotion registers the model version in the PeTaL database and updates the
Asset `petal_production_model`, which starts `petal_relabel_papers` to label
every paper with the new model.

* **Params**: `model_version` (name of the new version), `backend`,
  `max_papers`, `instance_type`, `dry_run` (evaluate, do not promote),
  `preset`, `train_options` (training config overrides).
* **Alerts**: a failed run e-mails PETAL_ALERT_TO via connection `petal_smtp`.
"""

from __future__ import annotations

from airflow.sdk import DAG

from petal_labeller.airflow.defaults import dag_kwargs, start_date
from petal_labeller.airflow.training import training_flow, training_params

with DAG(
    dag_id="petal_train_model",
    schedule="@weekly",
    start_date=start_date(),
    catchup=False,
    params=training_params(),
    # HyperParameters come from XCom as a dict; native rendering keeps them a dict.
    render_template_as_native_obj=True,
    **dag_kwargs(__doc__, tags=["model"]),
):
    training_flow()
