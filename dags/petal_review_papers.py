"""
### PeTaL: curators review papers where curators work

Every week (or by hand) this DAG sends `papers` papers from the review queue to
the curators, waits for their answers and writes them as curator labels, the way
`petal review apply` does: labels checked against the taxonomy and closed upwards,
who and when kept, another curator's labels never replaced, one transaction.

* **Backends** (Param `backend`, else Variable `petal_review_backend`, else `files`):
  `label_studio` (tasks in the project named by Variable `petal_label_studio_project`,
  server and token in connection `petal_label_studio`), `ground_truth` (a SageMaker
  Ground Truth labelling job for the private workteam in Variable
  `petal_ground_truth_workteam`, with the pre/post Lambdas in
  `petal_ground_truth_pre_lambda` / `petal_ground_truth_post_lambda`), or `files`
  (a queue file under PETAL_HOME/review; curators return `<name>.answers.jsonl`).
* **Params**: `papers`, `selection` (`uncertain`, `diverse`: k-means over TF-IDF as
  the PeTaL team did in 2022, or `mixed`: the most uncertain, spread by k-means),
  `timeout_hours` (then the answers there are are collected), `model_version`.
* **Never sent twice**: a paper out with curators is not chosen again until its
  task is answered or the run ends; "not sure" sends it back to the queue, "not
  biomimicry relevant" takes it out of labelling and the queue for good.
* **Waiting** holds no worker slot (a sensor in reschedule mode).
* **Cleanup**: unanswered tasks are closed (removed from Label Studio, the job
  stopped), so their papers can be sent again; every answer collected stays.
* **Asset**: `petal_curated_papers`, with the count of papers curated.
* **Alerts**: a failed run e-mails PETAL_ALERT_TO via connection `petal_smtp`.
"""

from __future__ import annotations

from airflow.sdk import DAG
from airflow.timetables.trigger import CronTriggerTimetable

from petal_labeller.airflow.defaults import dag_kwargs
from petal_labeller.airflow.review.flow import review_flow, review_params

with DAG(
    dag_id="petal_review_papers",
    # Weekly, and by hand: a trigger timetable, no start_date (none to be dated before).
    schedule=CronTriggerTimetable("@weekly", timezone="UTC"),
    catchup=False,
    params=review_params(),
    **dag_kwargs(__doc__, tags=["review"]),
):
    review_flow()
