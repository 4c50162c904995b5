"""The only part of petal_labeller that imports Airflow; DAG files in `dags/` wire it together.

    labelling/  the labelling flow (stage -> infer -> write), its cleanup and timetable
    training/   the retraining flow, its SageMaker path and the approval step
    aws/        SageMaker configs and cleanup, the S3 layout and staging, the config check
    ui/         the PeTaL page (mounted by `plugin.py`, the `airflow.plugins` entry point)
    laptop/     Airflow on one machine: `petal airflow env`, and `dag.test()` runs
    the rest    what every DAG shares: defaults, failures and alerts, names, Variables,
                Params, Assets; `bundle.py` and `dag_files.py` ship the DAGs in the wheel

The work itself lives in `petal_labeller.pipeline`, which knows nothing about Airflow.
"""
