"""What `petal demo` prints while a step runs: progress, Airflow tasks, a heartbeat, and
no warning a user cannot act on (the end-to-end run is in test_demo_full.py)."""

from __future__ import annotations

import logging
import threading

from petal_labeller.cli.demo_console import (
    DAG_TEST_LOGGER,
    PROGRESS_LOGGERS,
    StepConsole,
    quiet_known_warnings,
)
from petal_labeller.model.progress import PROGRESS_LOGGER, phase


def _logger_states() -> list[tuple[int, bool, int]]:
    loggers = [logging.getLogger(name) for name in PROGRESS_LOGGERS]
    return [(lg.level, lg.propagate, len(lg.handlers)) for lg in loggers]


def test_a_step_prints_progress_and_task_starts_with_its_elapsed_time():
    lines: list[str] = []
    now = [100.0]
    dag_test = logging.getLogger(DAG_TEST_LOGGER)
    before = _logger_states()
    with StepConsole(lines.append, "training", heartbeat_s=1e9, clock=lambda: now[0]):
        now[0] = 104.0
        dag_test.info("[DAG TEST] starting task_id=%s map_index=%s", "train_local", -1)
        dag_test.info("[DAG TEST] running task %s", "<TaskInstance: a long repr>")
        now[0] = 172.0
        phase("inner fold %d/%d: bases on %d papers", 1, 3, 545)
        logging.getLogger("petal_labeller.pipeline.infer").warning("papers quarantined: 2")
    assert lines == [
        "      0:04 Airflow task train_local",
        "      1:12 training: inner fold 1/3: bases on 545 papers",
        "      1:12 warning: papers quarantined: 2",
    ]
    assert _logger_states() == before, "the loggers are left as they were"


def test_a_quiet_step_still_prints_a_heartbeat_naming_the_last_progress():
    lines: list[str] = []
    now = [0.0]
    printed = threading.Event()

    def echo(line: str) -> None:
        lines.append(line)
        if "still" in line:
            printed.set()

    with StepConsole(echo, "training", heartbeat_s=20.0, clock=lambda: now[0], poll_s=0.01):
        logging.getLogger(PROGRESS_LOGGER).info("training: encoding texts 64/818 (12 s)")
        now[0] = 25.0
        assert printed.wait(30), lines
    assert lines[-1] == "      0:25 still training; last: training: encoding texts 64/818 (12 s)"


def test_warnings_no_user_can_act_on_are_dropped_but_errors_are_not(caplog):
    undo = quiet_known_warnings()
    quiet_known_warnings()()  # idempotent: the demo may run twice in one process
    dag_test = logging.getLogger(DAG_TEST_LOGGER)
    precision = logging.getLogger("petal_labeller.runtime.precision")
    try:
        with caplog.at_level(logging.WARNING):
            dag_test.warning("No tasks to run. unrunnable tasks: %s", {"<TaskInstance ...>"})
            precision.warning("%s moves a score of the artefact's check papers by 0.0110", "bf16")
            dag_test.warning("Task failed; ti=%s", "x")
            dag_test.error("No tasks to run and the run is stuck")
    finally:
        undo()  # later tests in this process read these loggers' warnings
    assert [r.getMessage() for r in caplog.records] == [
        "Task failed; ti=x",
        "No tasks to run and the run is stuck",
    ]
    with caplog.at_level(logging.WARNING):
        precision.warning("bf16 moves a score (after the demo)")
    assert caplog.records[-1].getMessage() == "bf16 moves a score (after the demo)"
