"""A review batch as a SageMaker Ground Truth labelling job, through the provider's hooks.

The files go to `s3://<bucket>/petal/review/<run key>/` (manifest, label categories,
worker template) with S3Hook; CreateLabelingJob, DescribeLabelingJob and
StopLabelingJob are boto3 calls on SageMakerHook's client (the provider has no
labelling-job operator). The output manifest is read back bounded, line by line.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import datetime
from typing import Any

from petal_labeller.airflow import variables
from petal_labeller.airflow.variables import AWS_CONN_ID
from petal_labeller.review import ground_truth
from petal_labeller.taxonomy import Taxonomy

log = logging.getLogger(__name__)

PREFIX = "petal/review"
TERMINAL = ("Completed", "Failed", "Stopped")
#: Largest output manifest read (a 10,000-paper batch with nine answers each is ~200 MiB).
MAX_OUTPUT_BYTES = 512 << 20


def _hooks():
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    return S3Hook(aws_conn_id=AWS_CONN_ID), SageMakerHook(aws_conn_id=AWS_CONN_ID)


def _variable(name: str) -> str | None:
    from airflow.sdk import Variable

    value = Variable.get(name, default=None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def start_job(conn, records: list[dict], taxonomy: Taxonomy, key: str, context: Any) -> dict:
    """Upload the job's files, create the job, record its tasks; the batch's XCom fields."""
    from petal_labeller.review.publish import record_sent

    s3, sagemaker = _hooks()
    bucket = _variable(variables.BUCKET)
    prefix = f"{PREFIX}/{key}"
    files = {
        "manifest.jsonl": ground_truth.manifest(records),
        "categories.json": json.dumps(ground_truth.label_categories(taxonomy)).encode(),
        "template.liquid.html": ground_truth.worker_template(taxonomy).encode(),
    }
    for name, body in files.items():
        s3.load_bytes(body, key=f"{prefix}/{name}", bucket_name=bucket, replace=True)
    uri = f"s3://{bucket}/{prefix}"
    name = ground_truth.job_name("petal-review", f"{key}-t{context['ti'].try_number}")
    request = ground_truth.labeling_job_request(
        name=name,
        manifest_uri=f"{uri}/manifest.jsonl",
        output_uri=f"{uri}/output/",
        categories_uri=f"{uri}/categories.json",
        template_uri=f"{uri}/template.liquid.html",
        role_arn=_variable(variables.GROUND_TRUTH_ROLE) or _variable(variables.ROLE),
        workteam_arn=_variable(variables.GROUND_TRUTH_WORKTEAM),
        pre_lambda_arn=_variable(variables.GROUND_TRUTH_PRE_LAMBDA),
        post_lambda_arn=_variable(variables.GROUND_TRUTH_POST_LAMBDA),
        tags={"petal:dag_run": context["run_id"][:256]},
    )
    # Recorded first: a job whose tasks the store refused must not exist; and a job
    # SageMaker refused leaves no open task (a retry sends the same papers again).
    record_sent(conn, "ground_truth", name, records, [str(r["paper_id"]) for r in records])
    try:
        sagemaker.get_conn().create_labeling_job(**request)
    except Exception:
        from petal_labeller.store.review_tasks import expire_tasks

        expire_tasks(conn, "ground_truth", name)
        raise
    log.info("Labelling job %s created for %d papers", name, len(records))
    return {"batch": name, "s3_prefix": uri}


def describe(name: str) -> dict:
    _, sagemaker = _hooks()
    return sagemaker.get_conn().describe_labeling_job(LabelingJobName=name)


def finished(name: str) -> bool:
    return describe(name)["LabelingJobStatus"] in TERMINAL


def stop_job(name: str) -> bool:
    """Stop the job if it still runs; True when it was running (its output comes later)."""
    status = describe(name)["LabelingJobStatus"]
    if status in TERMINAL:
        return False
    if status == "InProgress" or status == "Initializing":
        _, sagemaker = _hooks()
        sagemaker.get_conn().stop_labeling_job(LabelingJobName=name)
        log.info("Labelling job %s stopped at the deadline", name)
    return True


def collect(conn, name: str, taxonomy: Taxonomy, now: datetime, rejects):
    """Apply the answers in the job's output manifest (none yet: nothing to apply)."""
    from airflow.sdk.exceptions import AirflowFailException

    from petal_labeller.review.answers import CollectReport
    from petal_labeller.review.publish import collect_ground_truth

    job = describe(name)
    output = (job.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
    if not output:
        if job["LabelingJobStatus"] == "Failed":
            raise AirflowFailException(f"labelling job {name} failed: {job.get('FailureReason')}")
        return CollectReport(rejects=rejects)
    s3, _ = _hooks()
    bucket, _, key = output.removeprefix("s3://").partition("/")
    size = s3.get_key(key, bucket_name=bucket).content_length
    if size > MAX_OUTPUT_BYTES:
        raise AirflowFailException(f"{output} is {size} bytes, over {MAX_OUTPUT_BYTES}")
    with tempfile.TemporaryDirectory(prefix="petal-review-") as folder:
        path = s3.download_file(
            key, bucket_name=bucket, local_path=folder, use_autogenerated_subdir=False
        )
        with open(path, "rb") as handle:
            return collect_ground_truth(conn, name, handle, taxonomy, now, rejects)
