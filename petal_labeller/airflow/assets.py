"""Airflow Assets: what one DAG produces and another waits for."""

from __future__ import annotations

from airflow.sdk import Asset

from petal_labeller.pipeline.promotion import PRODUCTION_MODEL_ASSET, PRODUCTION_MODEL_URI

#: Updated when a model is promoted (`petal_train_model`, `petal model promote`);
#: `petal_relabel_papers` runs on it.
PRODUCTION_MODEL = Asset(name=PRODUCTION_MODEL_ASSET, uri=PRODUCTION_MODEL_URI)

#: Updated when a review batch (`petal_review_papers`) added curator labels; its extra
#: holds the count of papers curated.
CURATED_PAPERS = Asset(name="petal_curated_papers", uri="petal://curated_papers")
