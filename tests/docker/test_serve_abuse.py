"""The serve app under abuse (issue 12, items 12-14): abandoned requests, hang-ups, temp folders.

A gated stand-in model (predict blocks until the test releases it) makes the
order of events certain without timing anything; the app, uvicorn and the
sockets are real.
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from petal_labeller.sagemaker.admission import CHUNK_LINES
from petal_labeller.sagemaker.serve import ServeSettings, create_app
from tests.docker.conftest import running_server, wait_for, wait_until_ready

HEADERS = {"Content-Type": "application/jsonlines"}


class GatedModel:
    """Answers every paper with no labels once `release` is set; counts what it predicted."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.predicted = 0
        self.lock = threading.Lock()

    def predict(self, records: list[dict]) -> list[dict]:
        self.started.set()
        assert self.release.wait(120), "the test never released the model"
        with self.lock:
            self.predicted += len(records)
        return [{"paper_id": r.get("paper_id"), "labels": []} for r in records]


def body(count: int) -> bytes:
    return b"".join(
        json.dumps({"title": f"Paper {i}", "paper_id": i}).encode() + b"\n" for i in range(count)
    )


def raw_post(url: str, payload: bytes, declared: int | None = None) -> socket.socket:
    """Send a POST by hand (maybe only part of the body) and return the open socket."""
    where = urlparse(url)
    sock = socket.create_connection((where.hostname, where.port))
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: {where.netloc}\r\n"
        f"Content-Type: application/jsonlines\r\nContent-Length: {declared or len(payload)}\r\n\r\n"
    )
    sock.sendall(head.encode() + payload)
    return sock


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def matching(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]


@pytest.fixture
def logs():
    """Every record of our serve modules and of uvicorn's error logger (tracebacks land there)."""
    handler = Lines()
    loggers = [logging.getLogger(name) for name in ("petal_labeller.sagemaker", "uvicorn.error")]
    saved = [(lg, lg.level) for lg in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger, level in saved:
        logger.removeHandler(handler)
        logger.setLevel(level)


def gated_server(model: GatedModel, **settings):
    app = create_app(ServeSettings(model_path=Path("unused"), **settings), load=lambda: model)
    return running_server(app)


def test_an_abandoned_request_stops_after_its_chunk_and_frees_the_slot(logs):
    model = GatedModel()
    with gated_server(model, max_concurrency=1) as url:
        wait_until_ready(url)
        dropped = raw_post(url, body(4 * CHUNK_LINES))
        assert model.started.wait(60)
        dropped.close()
        wait_for(lambda: logs.matching("client disconnected"), "the disconnect to be noticed")
        model.release.set()
        answer = httpx.post(f"{url}/invocations", content=body(2), headers=HEADERS, timeout=60)
    assert answer.status_code == 200, answer.text
    # One chunk of the dropped request ran; the other three never did.
    assert model.predicted == CHUNK_LINES + 2
    assert len(logs.matching("client disconnected")) == 1


def test_requests_beyond_the_slots_and_the_queue_get_503_with_retry_after():
    model = GatedModel()
    with gated_server(model, max_concurrency=1, max_queue=0) as url:
        wait_until_ready(url)
        with httpx.Client(base_url=url, timeout=60) as first:
            pending = threading.Thread(
                target=first.post,
                args=("/invocations",),
                kwargs={"content": body(2), "headers": HEADERS},
            )
            pending.start()
            assert model.started.wait(60)
            refused = httpx.post(f"{url}/invocations", content=body(2), headers=HEADERS, timeout=10)
            model.release.set()
            pending.join(60)
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0


def test_each_hang_up_during_upload_is_one_log_line_without_traceback(logs):
    model = GatedModel()
    model.release.set()
    with gated_server(model) as url:
        wait_until_ready(url)
        for _ in range(3):
            raw_post(url, b'{"title": "half a pa', declared=100_000).close()
        wait_for(lambda: len(logs.matching("disconnected")) >= 3, "three disconnects logged")
        assert httpx.post(f"{url}/invocations", content=body(1), headers=HEADERS).status_code == 200
    assert len(logs.matching("disconnected")) == 3
    assert not [r for r in logs.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.slow
def test_serving_a_tarball_leaves_no_unpacked_copy_behind(tiny_model_tar, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with running_server(create_app(ServeSettings(model_path=tiny_model_tar))) as url:
        wait_until_ready(url)
        answer = httpx.post(f"{url}/invocations", content=body(1), headers=HEADERS, timeout=60)
        assert answer.status_code == 200
        assert not list(tmp_path.glob("petal-model-*"))
