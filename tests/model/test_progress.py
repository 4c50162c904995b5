"""Training progress lines: one per phase, loops throttled, the end always said."""

from __future__ import annotations

import logging

from petal_labeller.model.progress import PROGRESS_LOGGER, Meter, phase


def test_a_loop_logs_at_most_every_interval_and_always_its_end(caplog):
    now = [0.0]
    meter = Meter("label SVMs", 5, every_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger=PROGRESS_LOGGER):
        for done, at in [(1, 3.0), (2, 11.0), (3, 15.0), (4, 22.0), (5, 23.0)]:
            now[0] = at
            meter.update(done)
        phase("fitting the combiner")
    assert [r.getMessage() for r in caplog.records] == [
        "training: label SVMs 2/5 (11 s)",
        "training: label SVMs 4/5 (22 s)",
        "training: label SVMs 5/5 (23 s)",
        "training: fitting the combiner",
    ]
    assert {r.name for r in caplog.records} == {PROGRESS_LOGGER}
