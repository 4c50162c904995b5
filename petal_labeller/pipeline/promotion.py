"""Registering and promoting a model version: what the training DAG's `promote` task and
`petal model register/promote` both do, so a hand-registered model is recorded the same way.

The production model's Asset is named here (without importing Airflow) so the
DAGs' `Asset` and the CLI's REST call name the same thing; the event's `extra`
is built by `asset_event_extra` for both.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import urllib.parse
from contextlib import closing
from pathlib import Path, PurePosixPath
from typing import Any

from petal_labeller import config
from petal_labeller.runtime.errors import ArtefactError
from petal_labeller.store.connection import connect
from petal_labeller.versions import check_version

#: The Asset `petal_train_model` updates and `petal_relabel_papers` is scheduled on.
PRODUCTION_MODEL_ASSET = "petal_production_model"
PRODUCTION_MODEL_URI = "petal://models/production"


#: S3's own limit on a key, and on a whole URI here.
MAX_URI_LENGTH = 1024
#: S3 bucket names: 3-63 lower-case letters, digits, '.' and '-', alphanumeric at each end.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_artefact_uri(uri: str) -> str:
    """`uri` itself when it is a local path (or file://) or `s3://bucket/key`; anything
    else (http://, ftp://, a bare bucket, a key with a control character or a `..` or
    empty segment) is an ArtefactError, since a production model nothing can fetch
    fails every later run."""
    shown = config.shown(uri)
    if len(uri) > MAX_URI_LENGTH or _CONTROL.search(uri) or not uri.strip():
        raise ArtefactError(
            f"model artefact {shown}: at most {MAX_URI_LENGTH} characters, no control characters"
        )
    if "://" not in uri or uri.startswith("file://"):
        return uri
    parts = urllib.parse.urlsplit(uri)
    key = parts.path.removeprefix("/")
    segments = key.split("/")
    if (
        parts.scheme != "s3"
        or not _BUCKET.fullmatch(parts.netloc)
        or parts.query
        or parts.fragment
        or not key
        or any(segment in ("", ".", "..") for segment in segments)
    ):
        raise ArtefactError(
            f"model artefact {shown}: must be a local path or s3://bucket/key "
            "(no empty, '.' or '..' segments)"
        )
    return uri


def fetch_s3_artefact(uri: str, folder: Path) -> Path:
    """Download `s3://bucket/key` into `folder` (size capped by PETAL_ARTEFACT_MAX_MB) to
    check it before it becomes production; boto3 comes with the airflow extra."""
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise ArtefactError(
            f"model artefact {config.shown(uri)}: checking an s3:// artefact needs boto3 "
            "(pip install 'petal-labeller[airflow]')"
        ) from None
    parts = urllib.parse.urlsplit(uri)
    bucket, key = parts.netloc, parts.path.removeprefix("/")
    target = folder / PurePosixPath(key).name
    limit = config.get("PETAL_ARTEFACT_MAX_MB") * config.MIB
    try:
        client = boto3.client("s3")
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size > limit:
            raise ArtefactError(f"model artefact {uri}: {size} bytes exceed {limit}")
        client.download_file(bucket, key, str(target))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise ArtefactError(f"model artefact {config.shown(uri)}: cannot fetch it: {exc}") from None
    return target


def verify_before_promoting(conn: Any, uri: str) -> None:
    """The artefact at `uri` exists, unpacks safely and matches the stored taxonomy."""
    from petal_labeller.model.artefact import verify_artefact
    from petal_labeller.pipeline.infer import local_path
    from petal_labeller.store.taxonomy import read_taxonomy

    check_artefact_uri(uri)
    if "://" not in uri or uri.startswith("file://"):
        path = local_path(uri)
        if not path.is_file():
            raise ArtefactError(f"model artefact {path} does not exist")
        verify_artefact(path, read_taxonomy(conn))
        return
    with tempfile.TemporaryDirectory(prefix="petal-verify-") as tmp:
        verify_artefact(fetch_s3_artefact(uri, Path(tmp)), read_taxonomy(conn))


def models_dir() -> Path:
    return config.petal_home() / "models"


def asset_event_extra(version: str, previous: str | None) -> dict[str, Any]:
    return {"version": version, "previous": previous}


def keep_artefact(version: str, artefact: Path) -> str:
    """Copy a local artefact under PETAL_HOME/models/<version>/ (the run's workspace goes)
    and, with an object-storage workspace, into it: the URI every worker can read."""
    from petal_labeller.pipeline.workspace import publish_model

    target = models_dir() / check_version(version) / "model.tar.gz"
    if artefact.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artefact, target)
    return publish_model(target, version) or str(target)


def register_model(
    version: str,
    artefact_uri: str,
    *,
    metrics: dict[str, float] | None = None,
    base_model: str | None = None,
    promote: bool = False,
    verify: bool = True,
    database_url: str | None = None,
):
    """Register `version` (a local artefact is checked against the taxonomy and kept under
    PETAL_HOME/models; an s3:// URI is recorded as given) and optionally promote it.

    Returns `(model, previous production version)`.
    """
    from petal_labeller.store.models import production_model, register_model_version

    check_version(version)  # before anything is read or copied
    check_artefact_uri(artefact_uri)
    local = not ("://" in artefact_uri and not artefact_uri.startswith("file://"))
    with closing(connect(database_url)) as conn:
        if local:
            from petal_labeller.model.artefact import read_card, verify_artefact
            from petal_labeller.pipeline.infer import local_path
            from petal_labeller.store.taxonomy import read_taxonomy

            path = local_path(artefact_uri)
            if verify:
                verify_artefact(path, read_taxonomy(conn))
            card = read_card(path)
            base_model = base_model or str(card.get("base_model", "unknown"))
            if metrics is None:
                metrics = _recorded_metrics(conn, path)
            metrics = metrics if metrics is not None else _card_metrics(card)
            artefact_uri = keep_artefact(version, path)
        elif promote and verify:
            verify_before_promoting(conn, artefact_uri)
        previous = production_model(conn)
        model = register_model_version(
            conn,
            version,
            base_model=base_model or "unknown",
            artefact_uri=artefact_uri,
            metrics=metrics or {},
            promote=promote,
        )
    return model, previous.version if previous else None


def promote_version(version: str, database_url: str | None = None):
    """Make a registered version production; returns `(model, previous production version)`."""
    from petal_labeller.store.models import get_model_version, production_model
    from petal_labeller.store.models import promote as promote_in_store

    check_version(version)  # a 100k-character name is refused, not echoed
    with closing(connect(database_url)) as conn:
        registered = get_model_version(conn, version)
        if registered is not None:  # else the store's "not registered"
            verify_before_promoting(conn, registered.artefact_uri)
        previous = production_model(conn)
        model = promote_in_store(conn, version)
    return model, previous.version if previous else None


#: Decimal places of stored metrics: what the training DAG's held-out scores keep.
METRIC_DECIMALS = 4


def _card_metrics(card: dict[str, Any]) -> dict[str, float]:
    """The card's validation metrics, rounded as the held-out scores are."""
    metrics = card.get("metrics") or {}
    if not isinstance(metrics, dict):
        return {}
    return {
        k: round(float(v), METRIC_DECIMALS)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _recorded_metrics(conn: Any, artefact: Path) -> dict[str, Any] | None:
    """The metrics already recorded for these exact artefact bytes under another version.

    The training DAG records the held-out scores its quality gate compared; the card
    holds the training split's validation scores, another measure. Registering the same
    artefact again (the demo's model under a new name) must show the same numbers.
    """
    from petal_labeller.pipeline.infer import local_path
    from petal_labeller.store.models import list_model_versions

    size, digest = artefact.stat().st_size, None
    for model in list_model_versions(conn):
        if not model.metrics or "://" in model.artefact_uri.removeprefix("file://"):
            continue
        other = local_path(model.artefact_uri)
        if not other.is_file() or other.stat().st_size != size:
            continue
        digest = digest or _sha256(artefact)
        if _sha256(other) == digest:
            return dict(model.metrics)
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
