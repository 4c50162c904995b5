"""The PeTaL page in the Airflow UI: a FastAPI app mounted by `plugins/petal_plugin.py`."""
