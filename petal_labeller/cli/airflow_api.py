"""Tell a running Airflow that the production model changed: one Asset event over REST API v2.

`petal model register --promote` / `petal model promote` run without Airflow
installed, so they use Airflow's public HTTP API (as any client would) rather
than its Python internals: a JWT from `/auth/token`, the Asset's id from
`GET /api/v2/assets`, then `POST /api/v2/assets/events`, the same event the
training DAG's `promote` task emits, which starts `petal_relabel_papers`.
Standard library HTTP: three small JSON calls do not justify a new dependency.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

URL_ENV = "PETAL_AIRFLOW_URL"
USER_ENV, PASSWORD_ENV = "PETAL_AIRFLOW_USER", "PETAL_AIRFLOW_PASSWORD"
TIMEOUT_S = 30
MAX_RESPONSE_BYTES = 1 << 20


class AirflowApiError(RuntimeError):
    """The API could not be reached or refused a call; the message names the call."""


def _call(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode("utf-8") if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    where = f"{method} {urllib.parse.urlsplit(url).path}"
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read(MAX_RESPONSE_BYTES) or b"null")
    except urllib.error.HTTPError as exc:
        raise AirflowApiError(f"{where}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        raise AirflowApiError(f"{where}: {getattr(exc, 'reason', exc)}") from None


def token(base_url: str, username: str, password: str) -> str:
    reply = _call("POST", f"{base_url}/auth/token", {"username": username, "password": password})
    if not isinstance(reply, dict) or not reply.get("access_token"):
        raise AirflowApiError("POST /auth/token: no access_token in the reply")
    return reply["access_token"]


def emit_asset_event(base_url: str, jwt: str, asset_uri: str, extra: dict[str, Any]) -> int:
    """Record an event for the Asset with `asset_uri`; returns the event's id."""
    query = urllib.parse.urlencode({"uri_pattern": asset_uri, "limit": 10})
    found = _call("GET", f"{base_url}/api/v2/assets?{query}", token=jwt)
    ids = [a["id"] for a in (found or {}).get("assets", []) if a.get("uri") == asset_uri]
    if not ids:
        raise AirflowApiError(
            f"Airflow knows no Asset {asset_uri!r}: are the PeTaL DAGs deployed and parsed?"
        )
    event = _call(
        "POST", f"{base_url}/api/v2/assets/events", {"asset_id": ids[0], "extra": extra}, jwt
    )
    return int(event["id"])


def notify_promotion(extra: dict[str, Any], base_url: str | None = None) -> str:
    """Emit the production-model Asset event if an Airflow URL is configured; says what it did."""
    from petal_labeller.pipeline.promotion import PRODUCTION_MODEL_URI

    base_url = (base_url or os.environ.get(URL_ENV) or "").rstrip("/")
    if not base_url:
        return (
            f"no Asset event sent ({URL_ENV} not set): trigger petal_relabel_papers "
            "yourself to relabel with the new model"
        )
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if not user or not password:
        raise AirflowApiError(f"{URL_ENV} is set but {USER_ENV} / {PASSWORD_ENV} are not")
    event = emit_asset_event(base_url, token(base_url, user, password), PRODUCTION_MODEL_URI, extra)
    return f"Asset event {event} sent to {base_url}: petal_relabel_papers will run"
