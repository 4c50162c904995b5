"""Stop SageMaker jobs and delete models a run left behind, through the provider's hook.

A transform or training job whose operator gave up (max_ingestion_time, a killed
worker) keeps running and billing in SageMaker; a `create_model` try that created its model
but then failed (the reply lost, the worker killed) leaves that model behind,
because the `delete_model` teardown only knows the last try's model. The run's
cleanup finds every try's resources by their name prefix and removes them.
"""

from __future__ import annotations

import logging

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

from petal_labeller.airflow.variables import AWS_CONN_ID

log = logging.getLogger(__name__)


#: What each kind of job is called in SageMaker's list and stop calls.
_JOB_API = {
    "transform": ("list_transform_jobs", "TransformJobSummaries", "TransformJobName"),
    "training": ("list_training_jobs", "TrainingJobSummaries", "TrainingJobName"),
}


def stop_jobs(kind: str, name_prefix: str, aws_conn_id: str = AWS_CONN_ID) -> list[str]:
    """Stop every in-progress `kind` job ("transform" or "training") named `name_prefix`..."""
    list_call, summaries, name_key = _JOB_API[kind]
    client = SageMakerHook(aws_conn_id=aws_conn_id).conn
    stopped = []
    pages = client.get_paginator(list_call).paginate(
        NameContains=name_prefix, StatusEquals="InProgress"
    )
    for page in pages:
        for job in page[summaries]:
            name = job[name_key]
            if name.startswith(name_prefix):
                log.warning("Stopping %s job %s, still running after the run ended", kind, name)
                getattr(client, f"stop_{kind}_job")(**{name_key: name})
                stopped.append(name)
    return stopped


def delete_models(name_prefix: str, aws_conn_id: str = AWS_CONN_ID) -> list[str]:
    """Delete every SageMaker model whose name starts with `name_prefix` (any try's)."""
    client = SageMakerHook(aws_conn_id=aws_conn_id).conn
    deleted = []
    for page in client.get_paginator("list_models").paginate(NameContains=name_prefix):
        for model in page["Models"]:
            name = model["ModelName"]
            if name.startswith(name_prefix):
                log.warning("Deleting model %s, left by an earlier try of this run", name)
                client.delete_model(ModelName=name)
                deleted.append(name)
    return deleted
