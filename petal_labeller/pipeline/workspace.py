"""The files of one run: staged input, model output, and where rejected papers are kept.

Each worker works on local files under `PETAL_HOME/runs/<run key>` (the model and
psycopg2's COPY read and write plain files). With `PETAL_WORKSPACE_URL` set (for
example `s3://bucket/petal/`), the run's files also live in that object store: a
task publishes what it wrote before it ends and the next task, on whichever worker,
fetches it first, so no two workers need a shared disk. Without it the local folder
is the workspace, as on one machine.

fsspec is the layer that speaks every store (s3fs for S3); the library takes a URL
and, optionally, an already configured filesystem: only `petal_labeller/airflow`
turns an Airflow connection into credentials (`set_filesystem`).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petal_labeller import config

#: A filesystem configured by the caller (Airflow: from the `aws_default` connection)
#: for URLs with this protocol; others get fsspec's default for the URL.
_filesystems: dict[str, Any] = {}


class WorkspaceError(RuntimeError):
    """A file a task needs is not in the workspace."""


def workspace_url() -> str | None:
    """`PETAL_WORKSPACE_URL` (checked by the settings module); None when unset."""
    return config.get("PETAL_WORKSPACE_URL")


def set_filesystem(protocol: str, fs: Any) -> None:
    """Use `fs` for every workspace URL of `protocol` (e.g. "s3") in this process."""
    _filesystems[protocol] = fs


def forget_filesystems() -> None:
    """Drop what `set_filesystem` registered (a process that ran Airflow tasks and now
    acts as the CLI: its store access is the AWS SDK's own again)."""
    _filesystems.clear()


def _filesystem(url: str) -> Any:
    protocol = url.split("://", 1)[0]
    if protocol in _filesystems:
        return _filesystems[protocol]
    import fsspec

    # Afresh: fsspec's instance cache would keep the credentials and endpoint of the
    # first call for the process's lifetime.
    return fsspec.filesystem(protocol, skip_instance_cache=True)


@dataclass(frozen=True)
class Workspace:
    """Files of one labelling run: staged input, model output, and the quarantine report.

    `root` is this worker's local folder; `remote` the run's folder in the object
    store (None: the local folder is all there is).
    """

    root: Path
    remote: str | None = None

    @property
    def input_path(self) -> Path:
        return self.root / "papers.jsonl"

    @property
    def output_path(self) -> Path:
        return self.root / "predictions.jsonl"

    def remote_url(self, path: Path) -> str | None:
        """Where `path` (a file of this workspace) lives in the object store."""
        return f"{self.remote}/{path.name}" if self.remote else None

    def create(self) -> Workspace:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def publish(self, path: Path) -> None:
        """Put this worker's `path` in the object store for the run's next task.

        Written under a temporary name and then moved, so a reader sees the whole
        file or none (an S3 object appears whole anyway; a file:// store needs it).
        """
        target = self.remote_url(path)
        if target is None:
            return
        fs = _filesystem(target)
        partial = f"{target}.tmp-{uuid.uuid4().hex[:12]}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)  # a folder store needs it
        fs.put_file(str(path), partial)
        try:
            fs.mv(partial, target)
        finally:
            if fs.exists(partial):
                fs.rm(partial)

    def fetch(self, path: Path) -> Path:
        """Make `path` this worker's copy of the run's file in the object store.

        Always downloaded when there is a store: a retry on this worker must read
        what the last successful task published, not an older local copy.
        """
        source = self.remote_url(path)
        if source is None:
            return path
        fs = _filesystem(source)
        if not fs.exists(source):
            raise WorkspaceError(
                f"{path.name} of this run is not in the workspace ({config.shown(source)}): "
                "the task that writes it did not finish; run the DAG run again"
            )
        self.create()
        partial = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            fs.get_file(source, str(partial))
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    @contextmanager
    def local_copies(self) -> Iterator[Workspace]:
        """A task's use of the run's files: its local copies go when it ends, failed too
        (a retry or the next task fetches afresh, maybe on another worker)."""
        try:
            yield self
        finally:
            self.drop_local()

    def drop_local(self) -> None:
        """With an object store, this worker's copies go when its task is done: the
        next task may run elsewhere, and the cleanup runs on one worker only."""
        if self.remote and self.root.exists():
            shutil.rmtree(self.root)

    def remove(self) -> bool:
        """Delete the local folder and the run's folder in the store; True if either existed."""
        removed = False
        if self.root.exists():
            shutil.rmtree(self.root)
            removed = True
        if self.remote:
            fs = _filesystem(self.remote)
            if fs.exists(self.remote):
                fs.rm(self.remote, recursive=True)
                removed = True
        return removed


def runs_dir() -> Path:
    return config.petal_home() / "runs"


def quarantine_dir() -> Path:
    """Rejected papers outlive the run's workspace so someone can fix and re-import them."""
    return config.petal_home() / "quarantine"


def publish_quarantine(path: Path, run_key: str) -> str:
    """Keep a run's quarantine file in the object store too (this worker's disk may go
    with its container); returns where it is kept."""
    base = workspace_url()
    if base is None:
        return str(path)
    _check_key(run_key)
    target = f"{base}/quarantine/{run_key}.jsonl"
    fs = _filesystem(target)
    fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
    fs.put_file(str(path), target)
    return target


def publish_model(artefact: Path, version: str) -> str | None:
    """Keep a registered model's artefact in the object store, where every worker can
    fetch it; returns its URL (None without a workspace URL: the local copy is it)."""
    base = workspace_url()
    if base is None:
        return None
    _check_key(version)
    folder = Workspace(artefact.parent, f"{base}/models/{version}")
    folder.publish(artefact)
    return folder.remote_url(artefact)


def fetch_artefact(uri: str) -> Path:
    """A model artefact in the object store, downloaded once to this worker.

    Kept under PETAL_HOME/models/fetched/, named by the URI and the object's ETag and
    size (a replaced object is fetched again); the runtime cache then unpacks it once
    by content digest. Bounded by PETAL_ARTEFACT_MAX_MB before any byte is read.
    """
    import hashlib

    from petal_labeller.runtime.errors import ArtefactError

    try:
        fs = _filesystem(uri)
        info = fs.info(uri)
    except FileNotFoundError:
        raise ArtefactError(f"model artefact {config.shown(uri)} does not exist") from None
    except Exception as exc:  # no credentials, no access, no such bucket: named, not a trace
        raise ArtefactError(
            f"model artefact {config.shown(uri)} is not on this machine and cannot be "
            f"fetched: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    size = int(info.get("size") or 0)
    limit = config.get("PETAL_ARTEFACT_MAX_MB") * config.MIB
    if size > limit:
        raise ArtefactError(f"model artefact {config.shown(uri)}: {size} bytes exceed {limit}")
    tag = str(info.get("ETag") or info.get("etag") or info.get("mtime") or "")
    name = hashlib.sha256(f"{uri}\n{tag}\n{size}".encode()).hexdigest()[:32]
    target = config.petal_home() / "models" / "fetched" / name / "model.tar.gz"
    if target.is_file() and target.stat().st_size == size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".model.tar.gz.tmp-{uuid.uuid4().hex[:12]}")
    try:
        fs.get_file(uri, str(partial))
        if partial.stat().st_size != size:
            raise ArtefactError(f"model artefact {config.shown(uri)} changed while fetched")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _check_key(key: str) -> None:
    if Path(key).is_absolute() or ".." in Path(key).parts or "\\" in key:
        raise ValueError(f"workspace key {key!r} must be a relative path inside the runs folder")


def workspace_for(key: str, base: Path | None = None) -> Workspace:
    """The workspace of the run named `key` (a relative path such as `dag/abc123`)."""
    _check_key(key)
    remote = workspace_url() if base is None else None
    return Workspace((base or runs_dir()) / key, f"{remote}/runs/{key}" if remote else None)
