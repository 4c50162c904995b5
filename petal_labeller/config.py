"""Settings read from the environment, in one place, so every entry point agrees."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Where the shared, read-only PeTaL data lives beside a checkout.
SHARED_DATA_DIR = Path(os.environ.get("PETAL_SHARED_DATA", REPO_ROOT.parent / "shared/data/petal"))

BACKENDS = ("local", "sagemaker")


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
        raise ValueError(f"PETAL_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
    return backend
