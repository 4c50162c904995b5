"""Settings read from the environment, in one place, so every entry point agrees."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Where the shared, read-only PeTaL data lives beside a checkout.
SHARED_DATA_DIR = Path(os.environ.get("PETAL_SHARED_DATA", REPO_ROOT.parent / "shared/data/petal"))

BACKENDS = ("local", "sagemaker")


class SettingError(ValueError):
    """An environment setting is unusable; the message names it and what it accepts."""


def env_int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    """An integer setting within [minimum, maximum], read when used (never at import).

    Hand-written because the settings are few and plain: a settings library would be a
    new dependency of the slim serving image for four integers.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    # ASCII digits only: int() also reads "٣" and "1_000", which no operator means.
    value = int(text) if re.fullmatch(r"[+-]?[0-9]{1,18}", text) else None
    if value is None or not minimum <= value <= maximum:
        shown = repr(text[:20]) + ("..." if len(text) > 20 else "")
        raise SettingError(f"{name}={shown} must be a whole number from {minimum} to {maximum}")
    return value


def petal_home() -> Path:
    """The folder for local state: embedded database, models, staged files.

    A checkout's `.petal/`; an installed package's `~/.petal`, since site-packages
    is often read-only (MWAA, Astronomer) and shared by every user.
    """
    if os.environ.get("PETAL_HOME"):
        return Path(os.environ["PETAL_HOME"])
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".petal"
    return Path.home() / ".petal"


def database_url() -> str | None:
    """The configured PostgreSQL URL, or None to use the embedded server."""
    return os.environ.get("PETAL_DATABASE_URL") or None


def default_backend() -> str:
    backend = os.environ.get("PETAL_BACKEND", "local")
    if backend not in BACKENDS:
        shown = repr(backend[:20])
        raise SettingError(f"PETAL_BACKEND={shown} is not one of {', '.join(BACKENDS)}")
    return backend
