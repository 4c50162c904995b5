"""Rejected records streamed to the rejects file, so memory stays flat in their number.

A command finds rejections in a few passes (reading the file, checking against the
store, the store's own refusals), each in line order. Each pass writes to a spool
file of its own beside the rejects file; `close()` merges the spools by line into
the rejects file (JSONL: line, field, reason, record). Only the count and the
first `keep` rejections by line stay in memory, for the command's summary.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from petal_labeller.papers import Rejection

#: Rejections kept in memory for a command's summary (the first ones, by line).
KEEP = 100


class RejectSink:
    """Counts rejections, keeps the first `keep` by line, streams all of them to `path`."""

    def __init__(self, path: str | os.PathLike | None, passes: int = 1, keep: int = KEEP):
        self.path = Path(path) if path is not None else None
        self.count = 0
        self._keep = keep
        self._first: list[tuple[int, int, Rejection]] = []  # max-heap on (line, order)
        self._spools: list[IO[str]] = []
        if self.path is not None:
            folder = self.path.parent
            for _ in range(passes):  # opened now: an unwritable folder fails before any work
                try:
                    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed by close)
                        "w+", encoding="utf-8", errors="backslashreplace", dir=folder,
                        prefix=f".{self.path.name}.", suffix=".spool", delete=False,
                    )  # fmt: skip
                except OSError as exc:  # named as the rejects file, not the spool
                    self.discard()
                    raise OSError(exc.errno, exc.strerror, str(self.path)) from None
                self._spools.append(handle)

    def add(self, item: Rejection, part: int = 0) -> None:
        """Record a rejection found by pass `part` (each pass adds in line order)."""
        self.count += 1
        entry = (-item.line, -self.count, item)
        if len(self._first) < self._keep:
            heapq.heappush(self._first, entry)
        elif entry > self._first[0]:
            heapq.heapreplace(self._first, entry)
        if self._spools:  # "line<TAB>record": the merge reads the line number alone
            record = json.dumps(item.to_record(), ensure_ascii=False)
            self._spools[part].write(f"{item.line}\t{record}\n")

    @property
    def first(self) -> list[Rejection]:
        """The first `keep` rejections, by line."""
        return [item for _, _, item in sorted(self._first, reverse=True)]

    def close(self) -> None:
        """Merge the spools by line into the rejects file and remove them."""
        if self.path is None:
            return
        try:
            for handle in self._spools:
                handle.flush()
                handle.seek(0)
            merged = heapq.merge(*(_lines(handle) for handle in self._spools))
            with open(self.path, "w", encoding="utf-8", errors="backslashreplace") as out:
                for _, _, text in merged:
                    out.write(text)
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the spools without writing the rejects file (the command failed)."""
        for handle in self._spools:
            handle.close()
            Path(handle.name).unlink(missing_ok=True)
        self._spools = []

    def __enter__(self) -> RejectSink:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def _lines(handle: IO[str]) -> Iterator[tuple[int, int, str]]:
    for order, text in enumerate(handle):
        line, _, record = text.partition("\t")
        yield int(line), order, record
