"""Run a teardown's steps so that one failing step never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


def run_cleanup_steps(steps: Sequence[tuple[str, Callable[[], Any]]]) -> None:
    """Try every `(what, step)`; log each result, then fail once, naming every step that failed.

    A cleanup that stopped at its first error would leave the later resources
    (and their bills) behind; one that swallowed errors would hide them.
    """
    failed = []
    for what, step in steps:
        try:
            log.info("Cleanup: %s -> %s", what, step())
        except Exception:
            log.exception("Cleanup could not %s", what)
            failed.append(what)
    if failed:
        raise RuntimeError(f"cleanup could not {', '.join(failed)}; see the log above")
