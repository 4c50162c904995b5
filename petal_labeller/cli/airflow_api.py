"""Tell a running Airflow that the production model changed: one Asset event over REST API v2.

`petal model register --promote` / `petal model promote` run without Airflow
installed, so they use Airflow's public HTTP API (as any client would) rather
than its Python internals: a JWT from `/auth/token`, the Asset's id from
`GET /api/v2/assets`, then `POST /api/v2/assets/events`, the same event the
training DAG's `promote` task emits, which starts `petal_relabel_papers`.
Standard library HTTP: three small JSON calls do not justify a new dependency.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from petal_labeller import config

URL_ENV = "PETAL_AIRFLOW_URL"
USER_ENV, PASSWORD_ENV = "PETAL_AIRFLOW_USER", "PETAL_AIRFLOW_PASSWORD"
TIMEOUT_S = 30
MAX_RESPONSE_BYTES = 1 << 20
#: A JWT: base64url parts joined by dots; anything else would go into a header.
TOKEN = re.compile(r"[A-Za-z0-9_.~+/=-]+")
MAX_TOKEN_LENGTH = 16 * 1024


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
            raw = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise AirflowApiError(f"{where}: HTTP {exc.code} {config.shown(str(exc.reason))}") from None
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
        reason = str(getattr(exc, "reason", exc))
        raise AirflowApiError(f"{where}: {config.shown(reason, secret=False)}") from None
    if len(raw) > MAX_RESPONSE_BYTES:
        raise AirflowApiError(f"{where}: the reply is over {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(raw or b"null")
    # A deeply nested reply ([[[[...) makes the decoder recurse past the stack.
    except (ValueError, RecursionError):
        raise AirflowApiError(f"{where}: the reply is not JSON") from None


def _field(reply: Any, name: str, kind: type, where: str) -> Any:
    """`reply[name]` when the reply is an object holding one of `kind`, else one clear error."""
    value = reply.get(name) if isinstance(reply, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool) or value in ("", None):
        raise AirflowApiError(f"{where}: unexpected reply (no {kind.__name__} {name!r})")
    return value


def token(base_url: str, username: str, password: str) -> str:
    where = "POST /auth/token"
    reply = _call("POST", f"{base_url}/auth/token", {"username": username, "password": password})
    jwt = _field(reply, "access_token", str, where)
    if len(jwt) > MAX_TOKEN_LENGTH or not TOKEN.fullmatch(jwt):
        raise AirflowApiError(f"{where}: unexpected reply (access_token is not a token)")
    return jwt


def emit_asset_event(base_url: str, jwt: str, asset_uri: str, extra: dict[str, Any]) -> int:
    """Record an event for the Asset with `asset_uri`; returns the event's id."""
    query = urllib.parse.urlencode({"uri_pattern": asset_uri, "limit": 10})
    where = "GET /api/v2/assets"
    found = _call("GET", f"{base_url}/api/v2/assets?{query}", token=jwt)
    assets = _field(found, "assets", list, where)
    ids = [
        asset["id"]
        for asset in assets
        if isinstance(asset, dict) and asset.get("uri") == asset_uri
        and isinstance(asset.get("id"), int) and not isinstance(asset["id"], bool)
    ]  # fmt: skip
    if not ids:
        raise AirflowApiError(
            f"Airflow knows no Asset {asset_uri!r}: are the PeTaL DAGs deployed and parsed?"
        )
    event = _call(
        "POST", f"{base_url}/api/v2/assets/events", {"asset_id": ids[0], "extra": extra}, jwt
    )
    return _field(event, "id", int, "POST /api/v2/assets/events")


def airflow_target(base_url: str | None = None) -> tuple[str, str, str] | None:
    """(URL, user, password) to tell, from --airflow-url or the settings; None: not set.
    Checked before anything is promoted, so a bad one changes nothing."""
    if base_url:  # --airflow-url: the same rule as the setting
        base_url = config.SETTINGS[URL_ENV].parse(base_url)
    base_url = (base_url or config.get(URL_ENV) or "").rstrip("/")
    if not base_url:
        return None
    user, password = config.get(USER_ENV), config.get(PASSWORD_ENV)
    if not user or not password:
        raise AirflowApiError(f"{URL_ENV} is set but {USER_ENV} / {PASSWORD_ENV} are not")
    return base_url, user, password


def notify_promotion(extra: dict[str, Any], base_url: str | None = None) -> str:
    """Emit the production-model Asset event if an Airflow URL is configured; says what it did."""
    from petal_labeller.pipeline.promotion import PRODUCTION_MODEL_URI

    target = airflow_target(base_url)
    if target is None:
        return (
            f"no Asset event sent ({URL_ENV} not set): trigger petal_relabel_papers "
            "yourself to relabel with the new model"
        )
    base_url, user, password = target
    event = emit_asset_event(base_url, token(base_url, user, password), PRODUCTION_MODEL_URI, extra)
    return f"Asset event {event} sent to {base_url}: petal_relabel_papers will run"
