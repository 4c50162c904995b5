"""Registering and promoting a model version: what the training DAG's `promote` task and
`petal model register/promote` both do, so a hand-registered model is recorded the same way.

The production model's Asset is named here (without importing Airflow) so the
DAGs' `Asset` and the CLI's REST call name the same thing; the event's `extra`
is built by `asset_event_extra` for both.
"""

from __future__ import annotations

import hashlib
import shutil
from contextlib import closing
from pathlib import Path
from typing import Any

from petal_labeller import config
from petal_labeller.store.connection import connect
from petal_labeller.versions import check_version

#: The Asset `petal_train_model` updates and `petal_relabel_papers` is scheduled on.
PRODUCTION_MODEL_ASSET = "petal_production_model"
PRODUCTION_MODEL_URI = "petal://models/production"


def models_dir() -> Path:
    return config.petal_home() / "models"


def asset_event_extra(version: str, previous: str | None) -> dict[str, Any]:
    return {"version": version, "previous": previous}


def keep_artefact(version: str, artefact: Path) -> Path:
    """Copy a local artefact under PETAL_HOME/models/<version>/ (the run's workspace goes)."""
    target = models_dir() / check_version(version) / "model.tar.gz"
    if artefact.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artefact, target)
    return target


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
            artefact_uri = str(keep_artefact(version, path))
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
    from petal_labeller.store.models import production_model
    from petal_labeller.store.models import promote as promote_in_store

    with closing(connect(database_url)) as conn:
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
