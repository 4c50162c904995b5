"""What `petal demo` shows while a long step runs: progress lines, a heartbeat, and
only the warnings a user can act on.

Training and labelling take minutes; their progress goes to loggers that are quiet by
default (`PROGRESS_LOGGERS`, at INFO). While a step runs, `StepConsole` prints those
lines, indented, with the time since the step began, and a heartbeat line whenever
nothing was printed for `HEARTBEAT_S`, so the screen never goes still for long.
`QUIET_WARNINGS` are warnings no user can act on, kept off the screen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from petal_labeller.model.progress import PROGRESS_LOGGER

#: `dag.test()`'s logger: of its INFO lines only "starting task_id=..." is shown.
DAG_TEST_LOGGER = "airflow.sdk.definitions.dag"
DAG_TEST_TASK_START = "[DAG TEST] starting task_id="
#: Where a long step says how far it is (Airflow tasks, training phases, papers labelled).
PROGRESS_LOGGERS = (PROGRESS_LOGGER, "petal_labeller.pipeline.infer", DAG_TEST_LOGGER)
#: A line at least this often while a step runs, whatever the step logs.
HEARTBEAT_S = 20.0
#: (logger, start of message) of warnings that are not the user's to act on.
QUIET_WARNINGS = (
    # dag.test()'s own loop while skipped branches settle; it lists every task instance.
    (DAG_TEST_LOGGER, "No tasks to run"),
    # `auto` precision checking bf16 and keeping fp32 is that setting working as designed.
    ("petal_labeller.runtime.precision", "bf16 moves a score"),
)


class _Quiet(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.getMessage().startswith(self.prefix)


def quiet_known_warnings() -> Callable[[], None]:
    """Keep `QUIET_WARNINGS` off the screen until the returned undo is called (errors
    still show); the demo undoes it when it ends, so a caller in the same process (a
    test, say) gets those loggers back as they were."""
    added: list[tuple[logging.Logger, logging.Filter]] = []
    for name, prefix in QUIET_WARNINGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Quiet) and f.prefix == prefix for f in logger.filters):
            quiet = _Quiet(prefix)
            logger.addFilter(quiet)
            added.append((logger, quiet))

    def undo() -> None:
        for logger, quiet in added:
            logger.removeFilter(quiet)

    return undo


def elapsed(seconds: float) -> str:
    """`m:ss`, as the step's lines show it."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


class StepConsole(logging.Handler):
    """Prints the progress loggers' lines and a heartbeat while a `with` block runs."""

    def __init__(
        self,
        echo: Callable[[str], None],
        what: str,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(logging.INFO)
        self.echo, self.what, self.heartbeat_s, self.clock = echo, what, heartbeat_s, clock
        self.poll_s = poll_s
        self.started = self.last_line = clock()
        self.latest = ""
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._saved: list[tuple[logging.Logger, int, bool]] = []

    def say(self, text: str) -> None:
        """One indented line with the step's elapsed time."""
        with self._lock:
            self.last_line = self.clock()
            self.echo(f"      {elapsed(self.last_line - self.started)} {text}")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.say(f"{record.levelname.lower()}: {message}")
            return
        if record.name == DAG_TEST_LOGGER:
            if not message.startswith(DAG_TEST_TASK_START):
                return  # the rest are task instance reprs
            message = f"Airflow task {message.removeprefix(DAG_TEST_TASK_START).split()[0]}"
        self.latest = message
        self.say(message)

    def _beat(self) -> None:
        while not self._done.wait(self.poll_s):
            if self.clock() - self.last_line >= self.heartbeat_s:
                now = f"; last: {self.latest}" if self.latest else ""
                self.say(f"still {self.what}{now}")

    def __enter__(self) -> StepConsole:
        # The progress loggers print here only: at INFO, not passed on to the root
        # logger, which would print them a second time in Airflow's format.
        for name in PROGRESS_LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level, logger.propagate))
            logger.setLevel(logging.INFO)
            logger.propagate = False
            logger.addHandler(self)
        self._thread = threading.Thread(target=self._beat, name="demo-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
        for logger, level, propagate in self._saved:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate
