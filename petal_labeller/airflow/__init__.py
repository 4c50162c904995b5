"""The only part of petal_labeller that imports Airflow: operator configs, notifier, assets.

DAG files in `dags/` wire these together; the work itself lives in
`petal_labeller.pipeline`, which knows nothing about Airflow.
"""
