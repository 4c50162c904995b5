"""Issue 24 items 5 and 6: serve bounds what one unauthenticated request can cost.

Headers: the real `serve` process (uvicorn as `main` configures it) must stop reading
an endless header at its limit, without growing, and refuse too many header fields.
Records: a request holding more papers than PETAL_SERVE_MAX_RECORDS is 413 before any
prediction (100,000 tiny records once held the only slot for 572 s).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from petal_labeller.sagemaker.serve import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_RECORDS,
    ServeSettings,
    create_app,
)
from tests.docker.conftest import free_port, ping_status, running_server, wait_for

JSONLINES = {"Content-Type": "application/jsonlines"}
#: What the test offers as one header line; the server must give up long before.
ENDLESS = 64 * 1024 * 1024
PIECE = 64 * 1024


@pytest.fixture(scope="module")
def serve_url(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """`python -m petal_labeller.sagemaker.serve` on a free port: (URL, server pid).

    The model path does not exist: the server listens (ping 503) and reads requests,
    which is all the header limits need.
    """
    port = free_port()
    missing = tmp_path_factory.mktemp("serve") / "no-model"
    process = subprocess.Popen(
        [sys.executable, "-m", "petal_labeller.sagemaker.serve", "--model", str(missing),
         "--port", str(port)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or ping_status(url) is not None, "serve")
        assert process.poll() is None, "serve exited early"
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def _endless_header(url: str) -> tuple[int, bytes]:
    """Send one header line that never ends; (bytes sent when the server stopped us, reply)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sent = 0
    try:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        while sent < ENDLESS:
            try:
                sock.sendall(b"a" * PIECE)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += PIECE
        try:
            reply = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            reply = b""
        return sent, reply
    finally:
        sock.close()


def test_an_endless_header_is_cut_off_at_the_limit_and_the_server_does_not_grow(serve_url):
    url, pid = serve_url
    server = psutil.Process(pid)
    before = server.memory_info().rss
    sent, reply = _endless_header(url)
    grown = server.memory_info().rss - before
    # The kernel's socket buffers take a few MiB after the server stops reading.
    assert sent < 16 * 1024 * 1024, f"the server read {sent} bytes of one header"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:100]
    assert grown < 32 * 1024 * 1024, f"server grew by {grown} bytes"
    assert ping_status(url) == 503  # still serving (no model here: 503 is its answer)


def test_headers_within_the_limit_still_pass(serve_url):
    url, _ = serve_url
    filler = "b" * (DEFAULT_MAX_HEADER_BYTES // 4)
    assert httpx.get(f"{url}/ping", headers={"X-Filler": filler}, timeout=10).status_code == 503


@pytest.mark.parametrize(("count", "status"), [(90, 503), (101, 431), (2000, 431)])
def test_too_many_header_fields_are_431(serve_url, count, status):
    url, _ = serve_url
    headers = {f"X-{i}": "1" for i in range(count)}  # httpx adds 5 of its own
    assert httpx.get(f"{url}/ping", headers=headers, timeout=10).status_code == status


class Instant:
    """Answers every paper at once with no labels; counts the papers it was given."""

    def __init__(self) -> None:
        self.predicted = 0

    def predict(self, records: list[dict]) -> list[dict]:
        self.predicted += len(records)
        return [{"paper_id": r.get("paper_id"), "labels": []} for r in records]


def _body(count: int) -> bytes:
    return b"".join(
        json.dumps({"title": "t", "paper_id": i}).encode() + b"\n" for i in range(count)
    )


def test_more_records_than_the_cap_are_413_before_any_prediction():
    model = Instant()
    settings = ServeSettings(model_path=Path("unused"), max_records=5)
    with running_server(create_app(settings, load=lambda: model)) as url:
        wait_for(lambda: ping_status(url) == 200, "the stand-in model")
        ok = httpx.post(f"{url}/invocations", content=_body(5) + b"\n\n", headers=JSONLINES)
        assert ok.status_code == 200 and model.predicted == 5
        over = httpx.post(f"{url}/invocations", content=_body(6), headers=JSONLINES)
        assert over.status_code == 413 and model.predicted == 5
        assert "6 records; the limit is 5" in over.json()["error"]
        assert "PETAL_SERVE_MAX_RECORDS" in over.json()["error"]


def test_the_default_cap_refuses_the_100k_tiny_records_of_the_attack():
    model = Instant()
    with running_server(create_app(ServeSettings(model_path=Path("u")), load=lambda: model)) as url:
        wait_for(lambda: ping_status(url) == 200, "the stand-in model")
        body = b"".join(b'{"title":"t"}\n' for _ in range(100_000))  # 1.4 MB, under 6 MiB
        response = httpx.post(f"{url}/invocations", content=body, headers=JSONLINES, timeout=60)
        assert response.status_code == 413 and model.predicted == 0


def test_the_record_and_header_limits_are_settings():
    settings = ServeSettings.from_environ(
        {"PETAL_SERVE_MAX_RECORDS": "50", "PETAL_SERVE_MAX_HEADER_BYTES": "4096",
         "PETAL_SERVE_MAX_HEADERS": "20"}
    )  # fmt: skip
    assert (settings.max_records, settings.max_header_bytes, settings.max_headers) == (50, 4096, 20)
    assert ServeSettings.from_environ({}).max_records == DEFAULT_MAX_RECORDS
    for name in ("PETAL_SERVE_MAX_RECORDS", "PETAL_SERVE_MAX_HEADERS"):
        with pytest.raises(ValueError, match=name):
            ServeSettings.from_environ({name: "0"})
