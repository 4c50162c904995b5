"""Progress lines for training: where a run is, at INFO, on one logger.

Training is minutes of encoder passes and SVM fits; without these lines a task
log (and `make demo`'s screen, which shows this logger) says nothing until the
end. `PROGRESS_LOGGER` is the one name to listen to; lines inside a loop come at
most every `every_s` seconds, plus one when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: The logger every training progress line goes to (`petal demo` listens to it).
PROGRESS_LOGGER = "petal_labeller.model.progress"
#: At most one line per loop per this many seconds (and one at its end).
PROGRESS_EVERY_S = 10.0

log = logging.getLogger(PROGRESS_LOGGER)


def phase(message: str, *args: object) -> None:
    """One line as a phase starts ("training: fitting the combiner")."""
    log.info("training: " + message, *args)


class Meter:
    """`done/total` of a loop as `training: <what> done/total (elapsed s)`, throttled."""

    def __init__(
        self,
        what: str,
        total: int,
        every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.every_s, self.clock = what, total, every_s, clock
        self.started = clock()
        self.last = self.started

    def update(self, done: int) -> None:
        now = self.clock()
        if done < self.total and now - self.last < self.every_s:
            return
        self.last = now
        log.info("training: %s %d/%d (%.0f s)", self.what, done, self.total, now - self.started)
