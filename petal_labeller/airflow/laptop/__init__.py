"""Airflow on one machine: settings for `petal airflow env` and in-process `dag.test()` runs."""
