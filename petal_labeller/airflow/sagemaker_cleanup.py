"""Stop SageMaker jobs a run left running, through the provider's SageMakerHook.

A transform whose operator gave up (max_ingestion_time, a killed worker) keeps
running and billing in SageMaker; the run's cleanup finds every try's job by
its name prefix and stops the ones still in progress.
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
