"""
### PeTaL: relabel after a model promotion

Runs when `petal_train_model` promotes a model (the Asset
`petal_production_model` is updated): labels every paper the new production
model has not labelled yet, whatever day it was ingested, so papers labelled
by older versions get the new model's labels. Same tasks, Params, backends,
cleanup and alerts as `petal_label_papers`; can also be triggered by hand.
"""

from __future__ import annotations

from airflow.sdk import DAG

from petal_labeller.airflow.assets import PRODUCTION_MODEL
from petal_labeller.airflow.defaults import dag_kwargs
from petal_labeller.airflow.labelling.flow import EVERYTHING, labelling_flow, record_task_failure
from petal_labeller.airflow.params import run_params

with DAG(
    dag_id="petal_relabel_papers",
    schedule=[PRODUCTION_MODEL],
    # No start_date: a manual run dated before one would get no tasks at all.
    catchup=False,
    # A promotion must lead to a relabel run without anyone unpausing this DAG first.
    is_paused_upon_creation=False,
    params=run_params(),
    **dag_kwargs(__doc__, tags=["labelling", "model"], on_failure=[record_task_failure]),
):
    labelling_flow(EVERYTHING)
