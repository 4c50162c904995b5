"""Airflow cluster policy for a PeTaL deployment: SageMaker jobs share one capped pool.

Airflow imports `airflow_local_settings` from $AIRFLOW_HOME/config (the image copies
this file there; Compose mounts this folder over it). Every task that starts SageMaker
instances and waits for them is put in the pool PETAL_SAGEMAKER_POOL (default
`sagemaker`, made by `airflow-init` with PETAL_SAGEMAKER_POOL_SLOTS slots), so the
number of concurrent training and transform jobs - and the bill - has a ceiling
however many runs are backfilled at once. A DAG that names a pool itself keeps it.
"""

from __future__ import annotations

import os

#: Operators that start SageMaker instances (CreateModel and DeleteModel start none).
INSTANCE_OPERATORS = frozenset(
    {
        "SageMakerTrainingOperator",
        "SageMakerTransformOperator",
        "SageMakerProcessingOperator",
        "SageMakerTuningOperator",
    }
)
DEFAULT_POOL = "default_pool"


def sagemaker_pool() -> str:
    return os.environ.get("PETAL_SAGEMAKER_POOL") or "sagemaker"


def task_policy(task) -> None:
    """Route SageMaker job tasks left in the default pool to the SageMaker pool."""
    starts_instances = any(cls.__name__ in INSTANCE_OPERATORS for cls in type(task).__mro__)
    if starts_instances and task.pool == DEFAULT_POOL:
        task.pool = sagemaker_pool()
