"""The PeTaL page in the Airflow UI: a FastAPI app mounted by `petal_labeller/airflow/plugin.py`."""
