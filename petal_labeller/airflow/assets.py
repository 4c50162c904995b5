"""Airflow Assets: what one DAG produces and another waits for."""

from __future__ import annotations

from airflow.sdk import Asset

#: Updated when `petal_train_model` promotes a model; `petal_relabel_papers` runs on it.
PRODUCTION_MODEL = Asset(name="petal_production_model", uri="petal://models/production")
