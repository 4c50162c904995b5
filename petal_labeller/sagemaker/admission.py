"""Who predicts now: a few prediction slots, a bounded queue, and work dropped with its client.

A request holds a slot only while its client is still there: the body's papers
are predicted in chunks of `CHUNK_LINES` (as the local backend's batch transform
does), and a watcher cancels the rest when the client disconnects, so at most
one chunk of an abandoned request still runs. Requests beyond the slots and the
queue are refused at once with 503 and Retry-After instead of waiting unbounded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from starlette.requests import Request

log = logging.getLogger(__name__)

#: Lines predicted per worker-thread call; the local backend's SageMaker mini-batch too.
CHUNK_LINES = 256


class Busy(Exception):
    """Every slot and queue place is taken; answer 503 with Retry-After."""


class ClientGone(Exception):
    """The client disconnected; nothing is sent back."""


class Admission:
    """`slots` predictions at once, at most `queue` more waiting for a slot."""

    def __init__(self, slots: int, queue: int) -> None:
        self.limiter = anyio.CapacityLimiter(slots)
        self.capacity = slots + queue
        self.admitted = 0

    async def run(self, request: Request, chunks: list[Callable[[], Any]]) -> list[Any]:
        """Each chunk in a worker thread, under a slot, while the client stays connected."""
        if self.admitted >= self.capacity:
            raise Busy
        self.admitted += 1
        try:
            return await _while_connected(request, self.limiter, chunks)
        finally:
            self.admitted -= 1


async def _while_connected(
    request: Request, limiter: anyio.CapacityLimiter, chunks: list[Callable[[], Any]]
) -> list[Any]:
    gone = anyio.Event()
    results: list[Any] = []
    error: Exception | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            # The body is read: the next ASGI message is the disconnect, if it comes.
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone.set()
            log.info("client disconnected from %s; its remaining work is dropped", request.url.path)
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            async with limiter:
                for chunk in chunks:
                    # Not abandoned on cancel: the running chunk ends, the next never starts.
                    results.append(await anyio.to_thread.run_sync(chunk))
        except Exception as exc:  # re-raised below, outside the group's ExceptionGroup
            error = exc
        group.cancel_scope.cancel()
    if gone.is_set():
        raise ClientGone
    if error is not None:
        raise error
    return results
