"""Stop SageMaker jobs and delete models a run left behind, through the provider's hook.

A transform whose operator gave up (max_ingestion_time, a killed worker) keeps
running and billing in SageMaker; a `create_model` try that created its model
but then failed (the reply lost, the worker killed) leaves that model behind,
because the `delete_model` teardown only knows the last try's model. The run's
cleanup finds every try's resources by their name prefix and removes them.
"""

from __future__ import annotations

import logging

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

log = logging.getLogger(__name__)

AWS_CONN_ID = "aws_default"


def stop_transform_jobs(name_prefix: str, aws_conn_id: str = AWS_CONN_ID) -> list[str]:
    """Stop every in-progress transform job whose name starts with `name_prefix`."""
    client = SageMakerHook(aws_conn_id=aws_conn_id).conn
    stopped = []
    pages = client.get_paginator("list_transform_jobs").paginate(
        NameContains=name_prefix, StatusEquals="InProgress"
    )
    for page in pages:
        for job in page["TransformJobSummaries"]:
            name = job["TransformJobName"]
            if name.startswith(name_prefix):
                log.warning("Stopping transform job %s, still running after the run ended", name)
                client.stop_transform_job(TransformJobName=name)
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
