"""The run workspace's object store, reached with Airflow's own credentials.

`PETAL_WORKSPACE_URL=s3://...` is read by the library (`pipeline.workspace`), which
takes a URL and a filesystem but knows no Airflow. Here, at the start of every task
that touches a run's files, the `aws_default` connection becomes that filesystem,
through the Amazon provider's s3fs factory (the one `ObjectStoragePath` uses: the connection's
keys, role, region and endpoint), so the workers need no AWS settings of their own.
"""

from __future__ import annotations

from petal_labeller.airflow.aws.s3_staging import AWS_CONN_ID
from petal_labeller.pipeline.workspace import set_filesystem, workspace_url

_S3 = ("s3", "s3a", "s3n")


def use_workspace_storage() -> str | None:
    """Configure this process's workspace store from the connection; returns the URL."""
    url = workspace_url()
    if url is None:
        return None
    protocol = url.split("://", 1)[0]
    if protocol in _S3:
        # The provider's s3fs factory, the one ObjectStoragePath uses, called afresh:
        # ObjectStoragePath keeps one filesystem per connection id for the process, so a
        # long-lived worker would never see an edited connection (nor tests a new one).
        from airflow.providers.amazon.aws.fs.s3 import get_fs

        set_filesystem(protocol, get_fs(AWS_CONN_ID))
    return url
