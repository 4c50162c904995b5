"""S3 staging for the sagemaker backend, through the Amazon provider's S3Hook.

AWS access comes only from the Airflow connection (`aws_default` unless
configured), so credentials, region and endpoint live in Airflow, not here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk.exceptions import AirflowFailException

from petal_labeller.airflow.aws import s3_layout
from petal_labeller.airflow.variables import AWS_CONN_ID
from petal_labeller.pipeline.infer import local_path
from petal_labeller.pipeline.workspace import Workspace, WorkspaceError

log = logging.getLogger(__name__)


def s3_hook(aws_conn_id: str = AWS_CONN_ID) -> S3Hook:
    return S3Hook(aws_conn_id=aws_conn_id)


def ensure_model_in_s3(hook: S3Hook, artefact_uri: str, bucket: str, version: str) -> str:
    """The artefact's s3:// URI, uploading a local artefact once per model version."""
    if artefact_uri.startswith("s3://"):
        return artefact_uri
    key = s3_layout.model_key(version)
    if not hook.check_for_key(key, bucket_name=bucket):
        log.info("Uploading model %s from %s to s3://%s/%s", version, artefact_uri, bucket, key)
        hook.load_file(str(local_path(artefact_uri)), key, bucket_name=bucket, replace=True)
    return s3_layout.uri(bucket, key)


def upload(hook: S3Hook, path: Path, bucket: str, key: str) -> str:
    hook.load_file(str(path), key, bucket_name=bucket, replace=True)
    return f"s3://{bucket}/{key}"


def download(hook: S3Hook, bucket: str, key: str, path: Path, max_bytes: int | None = None) -> Path:
    """`s3://bucket/key` to `path`; with `max_bytes`, an object larger than that is refused
    before it is read (an output bounded by its papers, `MAX_RESULT_LINE_BYTES` each)."""
    if max_bytes is not None:
        _refuse_larger_than(hook, bucket, key, max_bytes)
    if not hook.check_for_key(key, bucket_name=bucket):
        raise FileNotFoundError(
            f"s3://{bucket}/{key} does not exist: the transform wrote no output"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    hook.get_key(key, bucket_name=bucket).download_file(str(path))
    return path


def _refuse_larger_than(hook: S3Hook, bucket: str, key: str, max_bytes: int) -> None:
    size = int((hook.head_object(key, bucket_name=bucket) or {}).get("ContentLength", 0))
    if size > max_bytes:
        raise AirflowFailException(
            f"s3://{bucket}/{key} is {size} bytes, more than the {max_bytes} its papers allow"
        )


def _split(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def stage_input(hook: S3Hook, workspace: Workspace, bucket: str, key: str) -> str:
    """The run's papers where the transform reads them: from an s3:// workspace a copy
    inside S3 (nothing passes through this worker), else an upload of the local file."""
    source = workspace.remote_url(workspace.input_path)
    if source is None or not source.startswith("s3://"):
        return upload(hook, workspace.fetch(workspace.input_path), bucket, key)
    source_bucket, source_key = _split(source)
    if not hook.check_for_key(source_key, bucket_name=source_bucket):
        raise WorkspaceError(
            f"{source} does not exist: the stage task did not finish; run the DAG run again"
        )
    hook.copy_object(source_key, key, source_bucket_name=source_bucket, dest_bucket_name=bucket)
    return s3_layout.uri(bucket, key)


def keep_output(hook: S3Hook, bucket: str, key: str, workspace: Workspace, max_bytes: int) -> str:
    """The transform's output as the run's output file: copied inside S3 to an s3://
    workspace, else downloaded here (and published to any other store). Either way an
    output larger than `max_bytes` (what its papers allow) is refused before a byte is
    read or copied: the next task would fetch it whole."""
    target = workspace.remote_url(workspace.output_path)
    if target is None or not target.startswith("s3://"):
        path = download(hook, bucket, key, workspace.output_path, max_bytes)
        workspace.publish(path)
        return str(path)
    if not hook.check_for_key(key, bucket_name=bucket):
        raise FileNotFoundError(
            f"s3://{bucket}/{key} does not exist: the transform wrote no output"
        )
    _refuse_larger_than(hook, bucket, key, max_bytes)
    target_bucket, target_key = _split(target)
    hook.copy_object(key, target_key, source_bucket_name=bucket, dest_bucket_name=target_bucket)
    return target


def delete_prefix(hook: S3Hook, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix/`; returns how many there were."""
    keys = hook.list_keys(bucket_name=bucket, prefix=prefix.rstrip("/") + "/")
    if keys:
        hook.delete_objects(bucket=bucket, keys=keys)
    return len(keys)
