"""Run one PeTaL DAG with `dag.test()` inside the `[airflow]` virtualenv; print what happened.

Executed by that venv's python (tests/packaging), never imported by the suite's own
process: it sees the installed wheel, not this checkout. Its last line is JSON.
Usage: python venv_dag_run.py DAG_ID LOGICAL_DATE CONF_JSON [--keep-retries]
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime


def _return_value(run, task_id: str):
    """A task's XCom return value in this run (None if it returned nothing)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value"
    )
    with create_session() as session:
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def main(argv: list[str]) -> None:
    dag_id, logical_date, conf = argv[0], datetime.fromisoformat(argv[1]), json.loads(argv[2])
    import petal_labeller
    from petal_labeller.airflow.dag_files import dags_folder

    # The installed DAGs are the DAG folder, as in a team's Airflow (set before airflow loads).
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder())
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(dags_folder()))
    dag = bag.get_dag(dag_id)
    if "--keep-retries" not in argv:
        for task in dag.tasks:
            task.retries = 0
    run = dag.test(logical_date=logical_date, run_conf=conf)
    instances = run.get_task_instances()
    print(
        json.dumps(
            {
                "state": run.state,
                "tasks": {ti.task_id: ti.state for ti in instances},
                "tries": {ti.task_id: ti.try_number for ti in instances},
                "package": petal_labeller.__file__,
                "evaluated": _return_value(run, "evaluate"),  # training's gate numbers
                "heavy_modules": sorted(
                    {m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "sklearn"}
                ),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
