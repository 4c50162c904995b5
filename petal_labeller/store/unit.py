"""The transaction rule shared by every store write, and the store's error class.

Each write function takes `commit=True`: it then commits its own work or rolls
it all back on error. With `commit=False` it runs inside the caller's open
transaction, so the caller can make several writes (labels + run row) atomic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions


class StoreError(RuntimeError):
    """A write was refused; the message names the offending record."""


@contextmanager
def write_unit(conn: psycopg2.extensions.connection, commit: bool) -> Iterator[None]:
    """Commit on success and roll back on error when `commit`; else leave both to the caller."""
    try:
        yield
    except BaseException:
        if commit:
            conn.rollback()
        raise
    if commit:
        conn.commit()


def one_line(exc: psycopg2.Error) -> str:
    """The server's message and detail on one line, e.g. which key was missing."""
    diag = getattr(exc, "diag", None)
    primary = (diag.message_primary if diag else None) or str(exc).strip().splitlines()[0]
    detail = diag.message_detail if diag else None
    return f"{primary} ({detail})" if detail else primary
