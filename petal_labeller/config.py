"""Every setting PeTaL reads from the environment, in one place: one table, one parser.

`SETTINGS` lists each variable with its kind, bounds and default (docs/deploy.md's
table says the same, and a test keeps the two in step); `get(name)` reads one when it
is used, never at import, and `load()` reads them all into a typed, frozen `Settings`
(the DAGs' check_config task, which fails a run naming every bad one). A bad value is
one `SettingError` naming the setting and what it accepts, showing at most 20
characters of the value (never a secret's).

Hand-written rather than pydantic-settings: the core package's dependencies are
click, psycopg2, pgserver and tqdm, and the slim serving image has no pydantic; and
pydantic's lax integers read "1_000" and "3.0" and echo the raw value in errors, so
each kind would need a validator of its own anyway. Digits are ASCII only: `int()`
also reads "١٢" and "1_000", which no operator means.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

BACKENDS = ("local", "sagemaker")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
MIB = 1024 * 1024
#: Longer values are refused before any parsing (a path, a URL, a DSN).
MAX_TEXT_LENGTH = 4096
SHOWN = 20
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_DURATION = re.compile(r"([0-9]{1,9})([smh]?)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600}


class SettingError(ValueError):
    """An environment setting is unusable; the message names it and what it accepts."""


def shown(text: str, secret: bool = False) -> str:
    """The value as an error shows it: a secret never, anything else its first 20 characters."""
    if secret:
        return "<hidden>"
    return repr(text[:SHOWN]) + ("..." if len(text) > SHOWN else "")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One environment variable: how to read it, its bounds, its default and what it is for."""

    name: str
    kind: str  # integer | seconds | date | url | store | path | choice | text | emails
    default: Any
    doc: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    secret: bool = False

    def accepts(self) -> str:
        """What a valid value looks like, as the error and the docs table say it."""
        if self.kind == "integer":
            return f"a whole number from {self.minimum} to {self.maximum}"
        if self.kind == "seconds":
            return f"seconds from {self.minimum} to {self.maximum} (or with m / h: 5m, 1h)"
        if self.kind == "date":
            return "a date YYYY-MM-DD"
        if self.kind == "url":
            return f"a {' or '.join(s + '://' for s in self.schemes)} URL with a host"
        if self.kind == "store":
            return "an s3://bucket/prefix/ or file:///folder/ URL (no '..', query or fragment)"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "emails":
            return "comma-separated e-mail addresses"
        return f"at most {MAX_TEXT_LENGTH} characters, no control characters"

    def parse(self, text: str) -> Any:
        """The typed value of `text`; SettingError naming the setting when unusable."""
        value = _parse(self, text.strip())
        if value is None:
            raise SettingError(f"{self.name}={shown(text, self.secret)} must be {self.accepts()}")
        return value

    def read(self, environ: Mapping[str, str] | None = None) -> Any:
        """The setting's value from `environ` (default os.environ); unset or blank: default."""
        text = (os.environ if environ is None else environ).get(self.name, "")
        return self.default if not text.strip() else self.parse(text)


def _parse(setting: Setting, text: str) -> Any:
    """The value, or None when `text` is not one (the caller words the error)."""
    if len(text) > MAX_TEXT_LENGTH or _CONTROL.search(text):
        return None
    kind = setting.kind
    if kind in ("integer", "seconds"):
        if kind == "integer":
            value = int(text) if _INTEGER.fullmatch(text) else None
        else:
            match = _DURATION.fullmatch(text)
            value = int(match[1]) * _UNIT_S[match[2]] if match else None
        if value is None or not setting.minimum <= value <= setting.maximum:
            return None
        return value
    if kind == "date":
        try:
            return dt.date.fromisoformat(text) if _DATE.fullmatch(text) else None
        except ValueError:
            return None
    if kind == "url":
        try:
            parts = urllib.parse.urlsplit(text)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            return None
        if parts.scheme not in setting.schemes or not parts.hostname or not port_ok:
            return None
        return text
    if kind == "store":
        return _store_url(setting, text)
    if kind == "choice":
        return text if text in setting.choices else None
    if kind == "emails":
        addresses = tuple(part.strip() for part in text.split(",") if part.strip())
        ok = addresses and all(re.fullmatch(r"[^@\s]+@[^@\s]+", a) for a in addresses)
        return addresses if ok else None
    if kind == "path":
        return Path(text)
    return text


def _store_url(setting: Setting, text: str) -> str | None:
    """An object store's URL without trailing slashes: a bucket for s3://, an absolute
    folder for file://; None when it is not one."""
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return None
    if parts.scheme not in setting.schemes or parts.query or parts.fragment:
        return None
    if any(ch.isspace() for ch in text) or ".." in parts.path.split("/"):
        return None
    if parts.scheme == "file":
        ok = not parts.netloc and parts.path.startswith("/") and parts.path.strip("/")
    else:
        ok = re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc) is not None
    return text.rstrip("/") if ok else None


def _setting(name: str, kind: str, default: Any, doc: str, **bounds: Any) -> Setting:
    return Setting(name, kind, default, doc, **bounds)


_SETTINGS = [
    # Where things are
    _setting("PETAL_HOME", "path", None,
             "Local state: embedded database, models, staged files, cache "
             "(default: a checkout's `.petal/`, else `~/.petal`)."),
    _setting("PETAL_WORKSPACE_URL", "store", None,
             "Object store the run's files and registered models pass through between "
             "workers that share no disk (docs/deploy.md, section 8); unset: PETAL_HOME.",
             schemes=("s3", "file")),
    _setting("PETAL_SHARED_DATA", "path", None,
             "The shared PeTaL data folder (default `../shared/data/petal` beside a checkout)."),
    _setting("PETAL_DATABASE_URL", "text", None,
             "PostgreSQL URL or libpq key=value string (default: the embedded server).",
             secret=True),
    _setting("PETAL_BACKEND", "choice", "local",
             "Backend when neither the Param nor Variable `petal_backend` names one.",
             choices=BACKENDS),
    # Airflow
    _setting("PETAL_START_DATE", "date", dt.date(2026, 11, 1),
             "First data interval of `petal_label_papers`'s catch-up. A bad value fails "
             "each run's check_config; the DAG still imports, on the default."),
    _setting("PETAL_ALERT_TO", "emails", ("petal-alerts@localhost",),
             "Who gets failure alerts (through connection `petal_smtp`)."),
    _setting("PETAL_SAGEMAKER_POLL_SECONDS", "seconds", None,
             "Seconds between the SageMaker operators' status polls (default: 30 for "
             "a batch transform, 60 for training). Checked like PETAL_START_DATE.",
             minimum=1, maximum=3600),
    _setting("PETAL_REVIEW_POLL_SECONDS", "seconds", 600,
             "Seconds between `petal_review_papers`' looks for the curators' answers "
             "(read when the DAG is parsed; a bad value: the default, with a warning).",
             minimum=1, maximum=86_400),
    # `petal review publish | collect --backend label_studio` (the DAG: connection
    # `petal_label_studio`)
    _setting("PETAL_LABEL_STUDIO_URL", "url", None,
             "Label Studio for `petal review publish/collect --backend label_studio`.",
             schemes=("http", "https")),
    _setting("PETAL_LABEL_STUDIO_TOKEN", "text", None,
             "Its API token (a personal access token or a legacy token).", secret=True),
    # `petal model register --promote` / `promote` telling Airflow
    _setting("PETAL_AIRFLOW_URL", "url", None,
             "Airflow API server the CLI sends the production-model Asset event to; "
             "unset: no event.", schemes=("http", "https")),
    _setting("PETAL_AIRFLOW_USER", "text", None, "User for PETAL_AIRFLOW_URL."),
    _setting("PETAL_AIRFLOW_PASSWORD", "text", None, "Password for PETAL_AIRFLOW_URL.",
             secret=True),
    # Model artefacts and inference
    _setting("PETAL_ARTEFACT_MAX_MB", "integer", 1024,
             "Cap on an artefact's unpacked size and on each member's, in MiB.",
             minimum=1, maximum=1 << 20),
    _setting("PETAL_ARTEFACT_CACHE", "path", None,
             "Folder of unpacked artefacts (default PETAL_HOME/cache/artefacts); "
             "only what the cache made there is ever removed."),
    _setting("PETAL_ARTEFACT_CACHE_ENTRIES", "integer", 3,
             "Unpacked artefacts kept in the cache.", minimum=1, maximum=1000),
    _setting("PETAL_ARTEFACT_CACHE_MB", "integer", 2048,
             "MiB the cache keeps in all.", minimum=1, maximum=1 << 24),
    _setting("PETAL_INFERENCE_BATCH_SIZE", "integer", 32,
             "Papers per encoder batch (SageMaker, serve, the local backend).",
             minimum=1, maximum=1024),
    _setting("PETAL_INFERENCE_PRECISION", "choice", "auto",
             "Encoder precision (`auto` keeps bf16 only where it moves no score).",
             choices=PRECISIONS),
    # The serving container (`<image> serve`)
    _setting("PETAL_SERVE_MODEL", "path", None,
             "Model folder or model.tar.gz to serve (else SM_MODEL_DIR, else "
             "SAGEMAKER_BASE_DIR/model)."),
    _setting("SM_MODEL_DIR", "path", None, "SageMaker's model folder."),
    _setting("SAGEMAKER_BASE_DIR", "path", Path("/opt/ml"), "SageMaker's root folder."),
    _setting("PETAL_SERVE_MAX_BODY_BYTES", "integer", None,
             "Request size limit, 413 above it (default SAGEMAKER_MAX_PAYLOAD_IN_MB).",
             minimum=1, maximum=1 << 30),
    _setting("SAGEMAKER_MAX_PAYLOAD_IN_MB", "integer", 6,
             "SageMaker's payload limit, the request size limit's default.",
             minimum=1, maximum=100),
    _setting("PETAL_SERVE_MAX_CONCURRENCY", "integer", 1,
             "Predictions run at once per worker (torch spreads one batch over every core).",
             minimum=1, maximum=64),
    _setting("PETAL_SERVE_MAX_QUEUE", "integer", 4,
             "Requests waiting for a prediction slot; more are answered 503.",
             minimum=0, maximum=1000),
    _setting("PETAL_SERVE_MAX_RECORDS", "integer", 10_000,
             "Papers per request; more are answered 413 before any work.",
             minimum=1, maximum=1_000_000),
    _setting("PETAL_SERVE_MAX_HEADER_BYTES", "integer", 16 * 1024,
             "Request line and headers together; more close the connection with 400.",
             minimum=1024, maximum=1 << 20),
    _setting("PETAL_SERVE_MAX_HEADERS", "integer", 100,
             "Header fields per request; more are answered 431.", minimum=1, maximum=1000),
    _setting("SAGEMAKER_MODEL_SERVER_WORKERS", "integer", 1,
             "uvicorn worker processes.", minimum=1, maximum=64),
    _setting("SAGEMAKER_BIND_TO_PORT", "integer", 8080, "Port to listen on.",
             minimum=1, maximum=65535),
]  # fmt: skip
SETTINGS: dict[str, Setting] = {setting.name: setting for setting in _SETTINGS}


def get(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The typed value of setting `name` now (SettingError when it is unusable)."""
    return SETTINGS[name].read(environ)


def get_or_default(
    name: str, environ: Mapping[str, str] | None = None, warn: Callable[[str], Any] | None = None
) -> Any:
    """For DAG parse time: the value, or the default when it is unusable (said through
    `warn`), so one bad variable never stops a DAG from importing; the run's
    check_config task then fails naming it (`load`)."""
    try:
        return get(name, environ)
    except SettingError as exc:
        if warn is not None:
            warn(f"{exc}; using the default until it is fixed")
        return SETTINGS[name].default


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting, typed; the attribute is the variable's name in lower case."""

    values: Mapping[str, Any]

    def __getattr__(self, attribute: str) -> Any:
        try:
            return self.values[attribute.upper()]
        except KeyError:
            raise AttributeError(attribute) from None


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """All settings read now; one SettingError naming every unusable one."""
    values, problems = {}, []
    for name, setting in SETTINGS.items():
        try:
            values[name] = setting.read(environ)
        except SettingError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingError("; ".join(problems))
    return Settings(values)


def bounded(name: str, value: Any, what: str) -> int:
    """`value` given as an argument (`--batch-size`) within setting `name`'s bounds, so an
    argument and its environment variable share one rule; ValueError naming `what`."""
    setting = SETTINGS[name]
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or not setting.minimum <= value <= setting.maximum:
        raise SettingError(
            f"{what} {shown(repr(value))} must be a whole number from "
            f"{setting.minimum} to {setting.maximum}"
        )
    return value


def env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An integer setting within [minimum, maximum], read when used (never at import)."""
    return Setting(name, "integer", default, "", minimum=minimum, maximum=maximum).read()


def petal_home() -> Path:
    """The folder for local state: embedded database, models, staged files.

    A checkout's `.petal/`; an installed package's `~/.petal`, since site-packages
    is often read-only (MWAA, Astronomer) and shared by every user.
    """
    home = get("PETAL_HOME")
    if home is not None:
        return home
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".petal"
    return Path.home() / ".petal"


#: Where the shared, read-only PeTaL data lives beside a checkout.
SHARED_DATA_DIR = get_or_default("PETAL_SHARED_DATA") or REPO_ROOT.parent / "shared/data/petal"


def database_url() -> str | None:
    """The configured PostgreSQL URL, or None to use the embedded server."""
    return get("PETAL_DATABASE_URL")


def default_backend() -> str:
    return get("PETAL_BACKEND")
