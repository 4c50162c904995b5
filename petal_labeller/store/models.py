"""Model versions: what was trained, from which base model, how well, and which one serves.

API:
- `register_model_version(conn, version, *, base_model, artefact_uri, metrics=None,
  promote=False, commit=True) -> ModelVersion` records a trained model (re-registering
  the same version updates it, so a retried training task is harmless).
- `promote(conn, version, *, commit=True) -> ModelVersion` makes it the one production model.
- `production_model(conn) -> ModelVersion | None`, `get_model_version(conn, version)`,
  `list_model_versions(conn) -> list[ModelVersion]` (newest first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import psycopg2.extensions
from psycopg2.extras import Json

from petal_labeller.store.unit import StoreError, write_unit
from petal_labeller.versions import VersionNameError, check_version

_COLUMNS = "version, base_model, metrics, artefact_uri, is_production, created_at, promoted_at"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    base_model: str
    metrics: dict = field(default_factory=dict)
    artefact_uri: str = ""
    is_production: bool = False
    created_at: datetime | None = None
    promoted_at: datetime | None = None


def _fetch(cur, where: str, params: tuple = ()) -> list[ModelVersion]:
    cur.execute(f"SELECT {_COLUMNS} FROM model_versions {where}", params)
    return [ModelVersion(*row) for row in cur.fetchall()]


def register_model_version(
    conn: psycopg2.extensions.connection,
    version: str,
    *,
    base_model: str,
    artefact_uri: str,
    metrics: Mapping[str, object] | None = None,
    promote: bool = False,
    commit: bool = True,
) -> ModelVersion:
    """Insert or update a model version; with `promote` it also becomes production."""
    try:
        check_version(version)
    except VersionNameError as error:
        raise StoreError(str(error)) from None
    with write_unit(conn, commit), conn.cursor() as cur:
        cur.execute(
            """INSERT INTO model_versions (version, base_model, metrics, artefact_uri)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (version) DO UPDATE SET base_model = EXCLUDED.base_model,
                   metrics = EXCLUDED.metrics, artefact_uri = EXCLUDED.artefact_uri""",
            (version, base_model, Json(dict(metrics or {})), artefact_uri),
        )
        if promote:
            _promote(cur, version)
        return _fetch(cur, "WHERE version = %s", (version,))[0]


def _promote(cur, version: str) -> None:
    # Demote first: the partial unique index allows one production row at a time.
    cur.execute(
        "UPDATE model_versions SET is_production = false WHERE is_production AND version <> %s",
        (version,),
    )
    cur.execute(
        "UPDATE model_versions SET is_production = true, promoted_at = now() "
        "WHERE version = %s AND NOT is_production",
        (version,),
    )


def promote(
    conn: psycopg2.extensions.connection, version: str, *, commit: bool = True
) -> ModelVersion:
    """Make `version` the production model (the one `pending_papers` uses by default)."""
    with write_unit(conn, commit), conn.cursor() as cur:
        if not _fetch(cur, "WHERE version = %s", (version,)):
            raise StoreError(f"model version {version!r} is not registered")
        _promote(cur, version)
        return _fetch(cur, "WHERE version = %s", (version,))[0]


def production_model(conn: psycopg2.extensions.connection) -> ModelVersion | None:
    with conn.cursor() as cur:
        found = _fetch(cur, "WHERE is_production")
    return found[0] if found else None


def get_model_version(conn: psycopg2.extensions.connection, version: str) -> ModelVersion | None:
    with conn.cursor() as cur:
        found = _fetch(cur, "WHERE version = %s", (version,))
    return found[0] if found else None


def list_model_versions(conn: psycopg2.extensions.connection) -> list[ModelVersion]:
    with conn.cursor() as cur:
        return _fetch(cur, "ORDER BY created_at DESC, version DESC")
